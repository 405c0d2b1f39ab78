//! Staff access tokens: HS256 JWTs (the only algorithm accepted) with `exp`, `iat`, `iss`,
//! `aud`, `sub` and a key id, signed with a key derived from the service secret.

use hmac::{Hmac, Mac};
use jsonwebtoken::{
    decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const AUDIENCE: &str = "enlace-staff";
pub const LIFETIME_SECS: i64 = 15 * 60;

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    /// The account's token generation when issued; a later one signs this token out.
    #[serde(default)]
    pub generation: i32,
}

#[derive(Clone)]
pub struct JwtKeys {
    kid: String,
    encoding: EncodingKey,
    /// Keys that check tokens, by key id: the current one, then those of a rotation.
    decoding: Vec<(String, DecodingKey)>,
    issuer: String,
}

/// The token signing key for this purpose only, derived from a service secret, and its id.
fn derive(secret: &[u8]) -> (String, [u8; 32]) {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(b"enlace/jwt/v1");
    let key: [u8; 32] = mac.finalize().into_bytes().into();
    (crate::tokens::hex(&Sha256::digest(key)[..6]), key)
}

impl JwtKeys {
    /// A signing key for this purpose only, derived from the service secret; its id lets a
    /// rotated secret be told apart from the old one.
    pub fn new(secret: &[u8], issuer: &str) -> Self {
        let (kid, key) = derive(secret);
        Self {
            decoding: vec![(kid.clone(), DecodingKey::from_secret(&key))],
            kid,
            encoding: EncodingKey::from_secret(&key),
            issuer: issuer.to_owned(),
        }
    }

    /// Also accepts tokens signed with keys derived from `previous` secrets (a rotation):
    /// sessions signed before it stay valid until they expire.
    pub fn with_previous(mut self, previous: &[Vec<u8>]) -> Self {
        for secret in previous {
            let (kid, key) = derive(secret);
            self.decoding.push((kid, DecodingKey::from_secret(&key)));
        }
        self
    }

    pub fn issue(&self, staff_id: &str, generation: i32, now: i64) -> anyhow::Result<String> {
        self.sign(&Claims {
            sub: staff_id.to_owned(),
            iss: self.issuer.clone(),
            aud: AUDIENCE.to_owned(),
            iat: now,
            exp: now + LIFETIME_SECS,
            generation,
        })
    }

    /// Signs arbitrary claims with this key (tests use it to forge near-miss tokens).
    pub fn sign(&self, claims: &Claims) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.kid.clone());
        Ok(encode(&header, claims, &self.encoding)?)
    }

    /// The staff id and token generation of a genuine, current token for this service;
    /// `None` for anything else.
    pub fn verify(&self, token: &str) -> Option<(String, i32)> {
        let header = decode_header(token).ok()?;
        if header.alg != Algorithm::HS256 {
            return None;
        }
        let kid = header.kid?;
        let (_, decoding) = self.decoding.iter().find(|(k, _)| *k == kid)?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = 30;
        // The service never issues one, but a token that says it is not valid yet is not.
        validation.validate_nbf = true;
        decode::<Claims>(token, decoding, &validation)
            .ok()
            .map(|data| (data.claims.sub, data.claims.generation))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_for_their_key_issuer_and_time() {
        let keys = JwtKeys::new(b"0123456789abcdef0123456789abcdef", "http://x");
        let now = chrono::Utc::now().timestamp();
        let token = keys.issue("staff-1", 0, now).unwrap();
        assert_eq!(
            keys.verify(&token).map(|(sub, _)| sub).as_deref(),
            Some("staff-1")
        );
        assert_eq!(
            keys.verify(&keys.issue("s", 0, now - 3600).unwrap()),
            None,
            "expired"
        );
        let other = JwtKeys::new(b"another secret that is long enough!!", "http://x");
        assert_eq!(other.verify(&token), None);
        let elsewhere = JwtKeys::new(b"0123456789abcdef0123456789abcdef", "http://y");
        assert_eq!(elsewhere.verify(&token), None, "wrong issuer");
        // alg: none
        let parts: Vec<&str> = token.split('.').collect();
        let none_header = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            br#"{"alg":"none","typ":"JWT"}"#,
        );
        assert_eq!(keys.verify(&format!("{none_header}.{}.", parts[1])), None);
    }
}
