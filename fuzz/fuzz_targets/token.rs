//! Bytes → every token verifier: none panics, and none accepts anything but the exact genuine
//! token. The first two bytes also pick a character of a genuine token to change.

#![no_main]

use std::sync::OnceLock;

use enlace::auth::jwt::JwtKeys;
use enlace::tokens::ManageTokens;
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"fuzz-secret-that-is-long-enough-0123456789";

struct Genuine {
    manage: ManageTokens,
    jwt: JwtKeys,
    manage_token: String,
    jwt_token: String,
}

static GENUINE: OnceLock<Genuine> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let g = GENUINE.get_or_init(|| {
        let manage = ManageTokens::new(SECRET);
        // Valid for 15 minutes; the genuine token is never asserted on, only the changes to it.
        let jwt = JwtKeys::new(SECRET, "http://127.0.0.1");
        let now = chrono::Utc::now().timestamp();
        Genuine {
            manage_token: manage.sign(uuid::Uuid::now_v7()),
            jwt_token: jwt.issue("staff-1", 0, now).unwrap(),
            manage,
            jwt,
        }
    });
    let text = String::from_utf8_lossy(data);
    let mut candidates = vec![text.to_string()];
    if let [at, c, ..] = data {
        if c.is_ascii() {
            for genuine in [&g.manage_token, &g.jwt_token] {
                let mut bytes = genuine.clone().into_bytes();
                let i = usize::from(*at) % bytes.len();
                bytes[i] = *c;
                candidates.push(String::from_utf8(bytes).unwrap());
            }
        }
    }
    for candidate in candidates {
        if candidate != g.manage_token {
            assert_eq!(g.manage.verify(&candidate), None, "{candidate}");
        }
        if candidate != g.jwt_token {
            assert_eq!(g.jwt.verify(&candidate), None, "{candidate}");
        }
        let _ = enlace::tokens::is_well_formed(&candidate);
        let _ = enlace::auth::hash_api_key(&candidate);
    }
});
