//! Temporary credentials (AssumeRole, GetSessionToken) without a session table.
//!
//! The session token carries the session itself (who, which role, when it ends), sealed with
//! an HMAC under `DIR/session.key`; the secret access key is derived from that seal. So
//! nothing about a session is stored, tokens survive a restart, a token cannot be forged or
//! altered, and the secret exists only in the STS response and in the client.

use std::path::Path;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::sealer::Sealer;
use crate::{random_id, AuthError, Principal, PrincipalKind, SecretAccessKey, SessionTimes};

const TOKEN_PREFIX: &str = "CairnSession1.";
/// Tokens are a few hundred bytes; anything far longer is not one of ours.
pub const MAX_SESSION_TOKEN_BYTES: usize = 4096;

/// Credentials handed out by STS.
#[derive(Clone, Debug)]
pub struct TemporaryCredentials {
    pub access_key_id: String,
    pub secret_access_key: SecretAccessKey,
    pub session_token: String,
    pub expiration_millis: i64,
}

/// Why presented temporary credentials are not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("the security token included in the request is invalid")]
    Invalid,
    #[error("the security token included in the request is expired")]
    Expired,
}

/// What a session token says. Field names are short: the token travels on every request.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// Access key ID the token belongs to.
    k: String,
    /// Account, ARN and principal ID of the session.
    a: String,
    r: String,
    p: String,
    /// Issued and expiry times, epoch ms.
    i: i64,
    e: i64,
    /// The user (GetSessionToken) or role (AssumeRole).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    u: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role: Option<RoleClaims>,
}

#[derive(Debug, Serialize, Deserialize)]
struct RoleClaims {
    name: String,
    id: String,
    arn: String,
    session: String,
}

/// A token's seal, and what a session's secret is derived from.
const TOKEN_PURPOSE: &[u8] = b"token\0";
const SECRET_PURPOSE: &[u8] = b"secret\0";

/// The data directory's file of the key that seals session tokens.
pub const SESSION_KEY_FILE: &str = "session.key";

pub struct SessionKey(Sealer);

impl SessionKey {
    /// Loads `DIR/session.key` (mode 0600), creating it on first use.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, AuthError> {
        Sealer::load_or_create(&data_dir.join(SESSION_KEY_FILE)).map(Self)
    }

    pub fn random() -> Self {
        Self(Sealer::random())
    }

    fn secret_for(&self, seal: &[u8]) -> SecretAccessKey {
        let derived = self.0.tag(SECRET_PURPOSE, seal);
        SecretAccessKey::new(STANDARD.encode(derived)[..40].to_owned())
    }

    /// New credentials for `principal` (whose access key ID is ignored: the session gets
    /// its own), valid from `issued_at` until `expires_at` (epoch ms).
    pub fn issue(
        &self,
        principal: &Principal,
        issued_at: i64,
        expires_at: i64,
    ) -> TemporaryCredentials {
        let access_key_id = random_id("ASIA", 16);
        let (user, role) = match &principal.kind {
            PrincipalKind::User { user_name, .. } => (Some(user_name.clone()), None),
            // Never issued (see `StsRefusal::Unverified`); such a token would not open.
            PrincipalKind::Unverified => (None, None),
            PrincipalKind::AssumedRole {
                role_name,
                role_id,
                role_arn,
                session_name,
                ..
            } => (
                None,
                Some(RoleClaims {
                    name: role_name.clone(),
                    id: role_id.clone(),
                    arn: role_arn.clone(),
                    session: session_name.clone(),
                }),
            ),
        };
        let claims = Claims {
            k: access_key_id.clone(),
            a: principal.account_id.clone(),
            r: principal.arn.clone(),
            p: principal.principal_id.clone(),
            i: issued_at,
            e: expires_at,
            u: user,
            role,
        };
        let payload = serde_json::to_vec(&claims).expect("claims serialize");
        let seal = self.0.tag(TOKEN_PURPOSE, &payload);
        let session_token = format!(
            "{TOKEN_PREFIX}{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(seal)
        );
        TemporaryCredentials {
            secret_access_key: self.secret_for(&seal),
            access_key_id,
            session_token,
            expiration_millis: expires_at,
        }
    }

    /// The principal and secret of a session, if `token` is one this server issued for
    /// `access_key_id` and it has not expired at `now` (epoch ms).
    pub fn open(
        &self,
        access_key_id: &str,
        token: &str,
        now: i64,
    ) -> Result<(Principal, SecretAccessKey), SessionError> {
        if token.len() > MAX_SESSION_TOKEN_BYTES {
            return Err(SessionError::Invalid);
        }
        let body = token
            .strip_prefix(TOKEN_PREFIX)
            .ok_or(SessionError::Invalid)?;
        let (payload, seal) = body.split_once('.').ok_or(SessionError::Invalid)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| SessionError::Invalid)?;
        let seal = URL_SAFE_NO_PAD
            .decode(seal)
            .map_err(|_| SessionError::Invalid)?;
        if seal.len() != 32 || !self.0.verify(TOKEN_PURPOSE, &payload, &seal) {
            return Err(SessionError::Invalid);
        }
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| SessionError::Invalid)?;
        if claims.k != access_key_id {
            return Err(SessionError::Invalid);
        }
        if now >= claims.e {
            return Err(SessionError::Expired);
        }
        let times = SessionTimes {
            created_at_millis: claims.i,
            expires_at_millis: claims.e,
        };
        let kind = match (claims.u, claims.role) {
            (Some(user_name), None) => PrincipalKind::User {
                user_name,
                session: Some(times),
            },
            (None, Some(role)) => PrincipalKind::AssumedRole {
                role_name: role.name,
                role_id: role.id,
                role_arn: role.arn,
                session_name: role.session,
                session: times,
            },
            _ => return Err(SessionError::Invalid),
        };
        let principal = Principal {
            account_id: claims.a,
            arn: claims.r,
            principal_id: claims.p,
            access_key_id: claims.k,
            kind,
        };
        Ok((principal, self.secret_for(&seal)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assumed(session: SessionTimes) -> Principal {
        Principal {
            account_id: "111122223333".into(),
            arn: "arn:aws:sts::111122223333:assumed-role/deployer/ci".into(),
            principal_id: "AROAEXAMPLE:ci".into(),
            access_key_id: String::new(),
            kind: PrincipalKind::AssumedRole {
                role_name: "deployer".into(),
                role_id: "AROAEXAMPLE".into(),
                role_arn: "arn:aws:iam::111122223333:role/deployer".into(),
                session_name: "ci".into(),
                session,
            },
        }
    }

    #[test]
    fn issued_credentials_open_until_they_expire() {
        let key = SessionKey::random();
        let times = SessionTimes {
            created_at_millis: 1_000,
            expires_at_millis: 3_601_000,
        };
        let issued = key.issue(&assumed(times), 1_000, 3_601_000);
        assert!(issued.access_key_id.starts_with("ASIA"));
        assert_eq!(issued.access_key_id.len(), 20);
        assert_eq!(issued.secret_access_key.expose().len(), 40);
        let (principal, secret) = key
            .open(&issued.access_key_id, &issued.session_token, 2_000)
            .unwrap();
        assert_eq!(secret, issued.secret_access_key);
        assert_eq!(principal.access_key_id, issued.access_key_id);
        assert_eq!(
            principal.role_arn().unwrap(),
            "arn:aws:iam::111122223333:role/deployer"
        );
        assert_eq!(
            key.open(&issued.access_key_id, &issued.session_token, 3_601_000)
                .unwrap_err(),
            SessionError::Expired
        );
    }

    #[test]
    fn tokens_cannot_be_forged_moved_or_altered() {
        let key = SessionKey::random();
        let times = SessionTimes {
            created_at_millis: 0,
            expires_at_millis: 10_000,
        };
        let issued = key.issue(&assumed(times), 0, 10_000);
        let other = key.issue(&assumed(times), 0, 10_000);
        // Another session's key ID with this token.
        assert_eq!(
            key.open(&other.access_key_id, &issued.session_token, 1)
                .unwrap_err(),
            SessionError::Invalid
        );
        // Another server's key.
        assert_eq!(
            SessionKey::random()
                .open(&issued.access_key_id, &issued.session_token, 1)
                .unwrap_err(),
            SessionError::Invalid
        );
        // A payload with a later expiry, resealed without the key.
        let (payload, seal) = issued
            .session_token
            .strip_prefix(TOKEN_PREFIX)
            .unwrap()
            .split_once('.')
            .unwrap();
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        let altered = text.replace("\"e\":10000", "\"e\":99999999");
        let forged = format!("{TOKEN_PREFIX}{}.{seal}", URL_SAFE_NO_PAD.encode(altered));
        assert_eq!(
            key.open(&issued.access_key_id, &forged, 1).unwrap_err(),
            SessionError::Invalid
        );
        for garbage in [
            "",
            "CairnSession1.",
            "CairnSession1.a.b",
            "x".repeat(10_000).as_str(),
        ] {
            assert_eq!(
                key.open(&issued.access_key_id, garbage, 1).unwrap_err(),
                SessionError::Invalid
            );
        }
    }
}
