//! LookupEvents NextTokens: the cursor of the last page, bound to the query's parameters and
//! sealed with an HMAC so that a client can neither forge one nor reuse one with other
//! parameters. The key lives in the data directory, so tokens survive a restart.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use cairn_auth::Sealer;
use cairn_store::Cursor;
use cairn_wire::cloudtrail::LookupEventsRequest;
use sha2::{Digest, Sha256};

const VERSION: u8 = 1;
const FINGERPRINT_LEN: usize = 16;
const MAC_LEN: usize = 16;
const PAYLOAD_LEN: usize = 1 + 8 + 8 + FINGERPRINT_LEN;

/// NextTokens have a key of their own, so their tags need no purpose prefix (and tokens
/// issued before there was one stay valid).
const PURPOSE: &[u8] = b"";

/// The data directory's file of the key that seals NextTokens.
pub const TOKEN_KEY_FILE: &str = "token.key";

pub struct TokenKey(Sealer);

impl TokenKey {
    /// Loads `DIR/token.key` (mode 0600), creating it on first use.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, cairn_auth::AuthError> {
        Sealer::load_or_create(&data_dir.join(TOKEN_KEY_FILE)).map(Self)
    }

    pub fn random() -> Self {
        Self(Sealer::random())
    }

    pub fn seal(&self, cursor: Cursor, request: &LookupEventsRequest) -> String {
        let mut bytes = Vec::with_capacity(PAYLOAD_LEN + MAC_LEN);
        bytes.push(VERSION);
        bytes.extend_from_slice(&cursor.event_time_millis.to_be_bytes());
        bytes.extend_from_slice(&cursor.seq.to_be_bytes());
        bytes.extend_from_slice(&fingerprint(request));
        let tag = self.0.tag(PURPOSE, &bytes);
        bytes.extend_from_slice(&tag[..MAC_LEN]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The cursor a token carries, if this server sealed it for these same parameters.
    pub fn open(&self, token: &str, request: &LookupEventsRequest) -> Option<Cursor> {
        let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
        if bytes.len() != PAYLOAD_LEN + MAC_LEN || bytes[0] != VERSION {
            return None;
        }
        let (payload, mac) = bytes.split_at(PAYLOAD_LEN);
        if !self.0.verify(PURPOSE, payload, mac) || payload[17..] != fingerprint(request) {
            return None;
        }
        Some(Cursor {
            event_time_millis: i64::from_be_bytes(payload[1..9].try_into().ok()?),
            seq: i64::from_be_bytes(payload[9..17].try_into().ok()?),
        })
    }
}

impl TokenKey {
    /// A NextToken for listings by position (ListTrails): the offset of the next page,
    /// sealed for one operation so a token of another cannot be replayed here.
    pub fn seal_offset(&self, operation: &str, offset: usize) -> String {
        let mut bytes = vec![VERSION];
        bytes.extend_from_slice(&(offset as u64).to_be_bytes());
        let tag = self.0.tag(operation.as_bytes(), &bytes);
        bytes.extend_from_slice(&tag[..MAC_LEN]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The offset a [`TokenKey::seal_offset`] token carries, if this server sealed it for
    /// `operation`.
    pub fn open_offset(&self, operation: &str, token: &str) -> Option<usize> {
        let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
        if bytes.len() != 9 + MAC_LEN || bytes[0] != VERSION {
            return None;
        }
        let (payload, mac) = bytes.split_at(9);
        if !self.0.verify(operation.as_bytes(), payload, mac) {
            return None;
        }
        usize::try_from(u64::from_be_bytes(payload[1..9].try_into().ok()?)).ok()
    }
}

/// What makes two LookupEvents calls "the same query": everything but the page size and the
/// token itself.
fn fingerprint(request: &LookupEventsRequest) -> [u8; FINGERPRINT_LEN] {
    let mut hasher = Sha256::new();
    match &request.attribute {
        Some(attribute) => {
            hasher.update(attribute.key.as_str().as_bytes());
            hasher.update([0]);
            hasher.update((attribute.value.len() as u64).to_be_bytes());
            hasher.update(attribute.value.as_bytes());
        }
        None => hasher.update([1]),
    }
    for bound in [request.start_millis, request.end_millis] {
        match bound {
            Some(millis) => {
                hasher.update([2]);
                hasher.update(millis.to_be_bytes());
            }
            None => hasher.update([3]),
        }
    }
    hasher.update([request.insight as u8]);
    let digest = hasher.finalize();
    let mut out = [0u8; FINGERPRINT_LEN];
    out.copy_from_slice(&digest[..FINGERPRINT_LEN]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_model::{LookupAttribute, LookupAttributeKey};

    fn request(value: &str) -> LookupEventsRequest {
        LookupEventsRequest {
            attribute: Some(LookupAttribute {
                key: LookupAttributeKey::EventName,
                value: value.into(),
            }),
            start_millis: Some(1),
            end_millis: None,
            insight: false,
            max_results: 50,
            next_token: None,
        }
    }

    #[test]
    fn tokens_open_only_for_the_same_query_and_key() {
        let key = TokenKey::random();
        let cursor = Cursor {
            event_time_millis: 123,
            seq: 456,
        };
        let token = key.seal(cursor, &request("A"));
        assert_eq!(key.open(&token, &request("A")), Some(cursor));
        let mut smaller_page = request("A");
        smaller_page.max_results = 5;
        assert_eq!(key.open(&token, &smaller_page), Some(cursor));
        assert_eq!(key.open(&token, &request("B")), None);
        assert_eq!(TokenKey::random().open(&token, &request("A")), None);
        let mut forged = URL_SAFE_NO_PAD.decode(&token).unwrap();
        forged[5] ^= 1;
        assert_eq!(
            key.open(&URL_SAFE_NO_PAD.encode(forged), &request("A")),
            None
        );
        assert_eq!(key.open("not base64 !!", &request("A")), None);
    }

    #[test]
    fn offset_tokens_open_only_for_their_operation() {
        let key = TokenKey::random();
        let token = key.seal_offset("ListTrails", 50);
        assert_eq!(key.open_offset("ListTrails", &token), Some(50));
        assert_eq!(key.open_offset("ListPublicKeys", &token), None);
        assert_eq!(TokenKey::random().open_offset("ListTrails", &token), None);
        let mut forged = URL_SAFE_NO_PAD.decode(&token).unwrap();
        forged[8] ^= 1;
        assert_eq!(
            key.open_offset("ListTrails", &URL_SAFE_NO_PAD.encode(forged)),
            None
        );
        let lookup = key.seal(
            Cursor {
                event_time_millis: 1,
                seq: 2,
            },
            &request("A"),
        );
        assert_eq!(
            key.open_offset("ListTrails", &lookup),
            None,
            "a LookupEvents token is not one"
        );
    }

    #[test]
    fn key_persists_in_the_data_directory() {
        let dir = tempfile::tempdir().unwrap();
        let first = TokenKey::load_or_create(dir.path()).unwrap();
        let second = TokenKey::load_or_create(dir.path()).unwrap();
        let cursor = Cursor {
            event_time_millis: 1,
            seq: 2,
        };
        let token = first.seal(cursor, &request("A"));
        assert_eq!(second.open(&token, &request("A")), Some(cursor));
        assert_eq!(TokenKey::random().open(&token, &request("A")), None);
    }
}
