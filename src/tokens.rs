//! Secrets in links: random confirmation tokens (stored only as hashes) and signed, non-expiring
//! "manage" tokens for unsubscribe and preferences links, which never contain the address.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use uuid::Uuid;

const MANAGE_PURPOSE: &[u8] = b"enlace/manage/v1";
const MAC_LEN: usize = 16;

/// 256 random bits, URL-safe (43 characters).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The stored form of a random token: hex SHA-256.
pub fn hash_token(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// A confirmation token looks like what `random_token` makes; anything else is rejected early.
pub fn is_well_formed(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Signs subscriber ids into unsubscribe/preferences tokens with the service key; tokens signed
/// with a previous key of a rotation are still accepted.
#[derive(Clone)]
pub struct ManageTokens {
    /// The current key first (the only one that signs), then the previous ones.
    keys: Vec<Vec<u8>>,
}

impl ManageTokens {
    pub fn new(key: &[u8]) -> Self {
        Self {
            keys: vec![key.to_vec()],
        }
    }

    /// Also accepts tokens signed with `previous` keys.
    pub fn with_previous(mut self, previous: &[Vec<u8>]) -> Self {
        self.keys.extend(previous.iter().cloned());
        self
    }

    fn mac(&self, id: &Uuid) -> Hmac<Sha256> {
        Self::mac_with(&self.keys[0], id)
    }

    fn mac_with(key: &[u8], id: &Uuid) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
        mac.update(MANAGE_PURPOSE);
        mac.update(id.as_bytes());
        mac
    }

    pub fn sign(&self, id: Uuid) -> String {
        let tag = self.mac(&id).finalize().into_bytes();
        let mut raw = Vec::with_capacity(16 + MAC_LEN);
        raw.extend_from_slice(id.as_bytes());
        raw.extend_from_slice(&tag[..MAC_LEN]);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// The subscriber id inside a genuine token; `None` for anything forged or malformed.
    pub fn verify(&self, token: &str) -> Option<Uuid> {
        if token.len() > 64 {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(token).ok()?;
        if raw.len() != 16 + MAC_LEN {
            return None;
        }
        let id = Uuid::from_slice(&raw[..16]).ok()?;
        // verify_truncated_left compares in constant time; every key is tried, so the time
        // taken does not say which one signed.
        let genuine = self.keys.iter().fold(false, |found, key| {
            let ok = Self::mac_with(key, &id)
                .verify_truncated_left(&raw[16..])
                .is_ok();
            found | ok
        });
        genuine.then_some(id)
    }
}

/// Hash of a normalised address for the suppression list (no address is kept there).
pub fn email_hash(normalised_email: &str) -> String {
    hex(&Sha256::digest(normalised_email.as_bytes()))
}

/// Lower-case hexadecimal of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manage_tokens_round_trip_and_reject_tampering() {
        let tokens = ManageTokens::new(b"0123456789abcdef0123456789abcdef");
        let id = Uuid::now_v7();
        let token = tokens.sign(id);
        assert_eq!(tokens.verify(&token), Some(id));
        let mut tampered = token.clone().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(tokens.verify(std::str::from_utf8(&tampered).unwrap()), None);
        let other = ManageTokens::new(b"another key that is long enough!!");
        assert_eq!(other.verify(&token), None);
        assert_eq!(tokens.verify("not-a-token"), None);
    }

    #[test]
    fn random_tokens_are_well_formed_and_distinct() {
        let a = random_token();
        assert!(is_well_formed(&a));
        assert_ne!(a, random_token());
        assert_eq!(hash_token(&a).len(), 64);
    }
}
