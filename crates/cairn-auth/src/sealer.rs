//! One sealer for every opaque token Cairn hands out: an STS session token carries its
//! session, a LookupEvents NextToken its page cursor, and neither can be forged or altered
//! because a MAC under a key only this server holds goes with it. Tags are HMAC-SHA256,
//! checked in constant time by the MAC itself.

use std::path::Path;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::AuthError;

type HmacSha256 = Hmac<Sha256>;

/// A key that seals tokens of one kind (each kind has its own key file).
pub struct Sealer([u8; 32]);

/// Shorter tags than this are not accepted: 128 bits is the least a forger must guess.
const MIN_TAG_BYTES: usize = 16;

impl Sealer {
    /// Loads the key at `path` (mode 0600), creating it on first use.
    pub fn load_or_create(path: &Path) -> Result<Self, AuthError> {
        crate::load_or_create_key(path).map(Self)
    }

    pub fn random() -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Self(key)
    }

    fn mac(&self, purpose: &[u8], payload: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC accepts keys of any length");
        mac.update(purpose);
        mac.update(payload);
        mac
    }

    /// The tag of `payload` sealed for `purpose` (a prefix that keeps one use's tags from
    /// standing for another's under the same key).
    pub fn tag(&self, purpose: &[u8], payload: &[u8]) -> [u8; 32] {
        self.mac(purpose, payload).finalize().into_bytes().into()
    }

    /// Whether `tag` is `payload`'s for `purpose`, whole or cut to its first bytes (at least
    /// 16). Constant-time.
    pub fn verify(&self, purpose: &[u8], payload: &[u8], tag: &[u8]) -> bool {
        tag.len() >= MIN_TAG_BYTES
            && self
                .mac(purpose, payload)
                .verify_truncated_left(tag)
                .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_verify_only_for_their_payload_purpose_and_key() {
        let sealer = Sealer::random();
        let tag = sealer.tag(b"token\0", b"payload");
        assert!(sealer.verify(b"token\0", b"payload", &tag));
        assert!(sealer.verify(b"token\0", b"payload", &tag[..16]));
        assert!(!sealer.verify(b"token\0", b"payload", &tag[..15]));
        assert!(!sealer.verify(b"token\0", b"payloaD", &tag));
        assert!(!sealer.verify(b"secret\0", b"payload", &tag));
        assert!(!Sealer::random().verify(b"token\0", b"payload", &tag));
        let mut altered = tag;
        altered[31] ^= 1;
        assert!(!sealer.verify(b"token\0", b"payload", &altered));
    }
}
