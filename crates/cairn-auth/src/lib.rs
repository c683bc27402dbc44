//! cairn-auth owns identities: accounts, IAM-style users and their access keys, kept in
//! `DIR/identities.json` (mode 0600) and optionally declared in the config file. It creates
//! the administrator key on first start and writes the AWS shared-credentials and config
//! files that make the `aws` CLI and boto3 use it.
//!
//! Secret access keys are held in [`SecretAccessKey`], whose `Debug` never shows the value
//! and which has no `Display`: a secret cannot reach a log line by accident. This crate
//! knows nothing of HTTP or of SigV4; `cairn-wire` verifies signatures with the secret it
//! is handed.

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use rand::Rng;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("io on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid identities file: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("invalid identity declaration: {0}")]
    Invalid(String),
}

/// A secret access key. Deliberately not `Display`; `Debug` is redacted.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretAccessKey(String);

impl SecretAccessKey {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for signature computation and for the credentials file only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretAccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretAccessKey(**redacted**)")
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKey {
    pub access_key_id: String,
    pub secret_access_key: SecretAccessKey,
    #[serde(default = "active")]
    pub status: String,
}

fn active() -> String {
    "Active".to_owned()
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub account_id: String,
    pub user_name: String,
    /// The stable principal ID AWS shows as `principalId` (`AIDA…`).
    pub user_id: String,
    pub access_keys: Vec<AccessKey>,
}

impl User {
    pub fn arn(&self) -> String {
        format!("arn:aws:iam::{}:user/{}", self.account_id, self.user_name)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identities {
    #[serde(default)]
    pub users: Vec<User>,
}

/// Who signed a request, as the record's `userIdentity` will show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub account_id: String,
    pub user_name: String,
    pub user_id: String,
    pub arn: String,
    pub access_key_id: String,
}

/// A user declared in the config file (`[[users]]`); merged with the identities file.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct DeclaredUser {
    pub account_id: String,
    pub user_name: String,
    pub access_key_id: String,
    pub secret_access_key: SecretAccessKey,
}

/// The verified-credential lookup table, built once at start.
#[derive(Clone, Debug, Default)]
pub struct CredentialStore {
    by_access_key: HashMap<String, (Principal, SecretAccessKey)>,
    default_account_id: String,
}

impl CredentialStore {
    pub fn new(identities: &Identities) -> Self {
        let mut by_access_key = HashMap::new();
        for user in &identities.users {
            for key in user.access_keys.iter().filter(|key| key.status == "Active") {
                let principal = Principal {
                    account_id: user.account_id.clone(),
                    user_name: user.user_name.clone(),
                    user_id: user.user_id.clone(),
                    arn: user.arn(),
                    access_key_id: key.access_key_id.clone(),
                };
                by_access_key.insert(
                    key.access_key_id.clone(),
                    (principal, key.secret_access_key.clone()),
                );
            }
        }
        let default_account_id = identities
            .users
            .first()
            .map(|user| user.account_id.clone())
            .unwrap_or_default();
        Self {
            by_access_key,
            default_account_id,
        }
    }

    pub fn find(&self, access_key_id: &str) -> Option<(&Principal, &SecretAccessKey)> {
        self.by_access_key
            .get(access_key_id)
            .map(|(principal, secret)| (principal, secret))
    }

    /// The account of the first user: the one that receives events whose caller is unknown.
    pub fn default_account_id(&self) -> &str {
        &self.default_account_id
    }
}

/// What [`load_or_bootstrap`] did, for the start-up message.
#[derive(Debug)]
pub struct Bootstrap {
    pub identities: Identities,
    /// Set when this start created the administrator key.
    pub created_admin: bool,
    pub credentials_file: PathBuf,
    pub config_file: PathBuf,
}

const IDENTITIES_FILE: &str = "identities.json";
pub const ADMIN_USER_NAME: &str = "admin";

/// Loads `DIR/identities.json`, merges users declared in the config, creates an
/// administrator with an access key when there is no user at all, and (re)writes
/// `DIR/credentials` and `DIR/config` for the first user's first key.
pub fn load_or_bootstrap(
    data_dir: &Path,
    declared: &[DeclaredUser],
    region: &str,
    endpoint_url: &str,
) -> Result<Bootstrap, AuthError> {
    std::fs::create_dir_all(data_dir).map_err(|source| AuthError::Io {
        path: data_dir.to_owned(),
        source,
    })?;
    let path = data_dir.join(IDENTITIES_FILE);
    let mut identities = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| AuthError::Parse {
            path: path.clone(),
            source,
        })?,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Identities::default(),
        Err(source) => return Err(AuthError::Io { path, source }),
    };
    let mut changed = merge_declared(&mut identities, declared)?;
    let created_admin = identities.users.is_empty();
    if created_admin {
        identities.users.push(new_admin());
        changed = true;
        tracing::info!(
            user = ADMIN_USER_NAME,
            "created the administrator access key"
        );
    }
    if changed {
        let text = serde_json::to_vec_pretty(&identities).map_err(|source| AuthError::Parse {
            path: path.clone(),
            source,
        })?;
        write_private(&path, &text)?;
    }
    let credentials_file = data_dir.join("credentials");
    let config_file = data_dir.join("config");
    if let Some(key) = identities.users[0].access_keys.first() {
        let credentials = format!(
            "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            key.access_key_id,
            key.secret_access_key.expose()
        );
        write_private(&credentials_file, credentials.as_bytes())?;
    }
    let config = format!("[default]\nregion = {region}\nendpoint_url = {endpoint_url}\n");
    write_private(&config_file, config.as_bytes())?;
    Ok(Bootstrap {
        identities,
        created_admin,
        credentials_file,
        config_file,
    })
}

fn merge_declared(
    identities: &mut Identities,
    declared: &[DeclaredUser],
) -> Result<bool, AuthError> {
    let mut changed = false;
    for user in declared {
        if user.account_id.len() != 12 || !user.account_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AuthError::Invalid(format!(
                "account_id {:?} of user {:?} is not 12 digits",
                user.account_id, user.user_name
            )));
        }
        if user.access_key_id.len() < 16
            || !user
                .access_key_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric())
        {
            return Err(AuthError::Invalid(format!(
                "access_key_id of user {:?} must be 16 or more letters and digits",
                user.user_name
            )));
        }
        let key = AccessKey {
            access_key_id: user.access_key_id.clone(),
            secret_access_key: user.secret_access_key.clone(),
            status: active(),
        };
        match identities
            .users
            .iter_mut()
            .find(|known| known.account_id == user.account_id && known.user_name == user.user_name)
        {
            Some(known) => {
                if !known.access_keys.contains(&key) {
                    known
                        .access_keys
                        .retain(|k| k.access_key_id != key.access_key_id);
                    known.access_keys.push(key);
                    changed = true;
                }
            }
            None => {
                identities.users.push(User {
                    account_id: user.account_id.clone(),
                    user_name: user.user_name.clone(),
                    user_id: random_id("AIDA", 17),
                    access_keys: vec![key],
                });
                changed = true;
            }
        }
    }
    Ok(changed)
}

fn new_admin() -> User {
    let mut rng = rand::rng();
    let account_id: String = (0..12)
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect();
    User {
        account_id,
        user_name: ADMIN_USER_NAME.to_owned(),
        user_id: random_id("AIDA", 17),
        access_keys: vec![AccessKey {
            access_key_id: random_id("AKIA", 16),
            secret_access_key: SecretAccessKey(random_secret()),
            status: active(),
        }],
    }
}

fn random_id(prefix: &str, length: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut rng = rand::rng();
    let mut id = prefix.to_owned();
    id.extend((0..length).map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())])));
    id
}

fn random_secret() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut rng = rand::rng();
    (0..40)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// Writes a file readable by its owner only, atomically (write, fsync, rename).
fn write_private(path: &Path, contents: &[u8]) -> Result<(), AuthError> {
    let io = |source| AuthError::Io {
        path: path.to_owned(),
        source,
    };
    let temporary = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&temporary).map_err(io)?;
    file.write_all(contents).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&temporary, path).map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_start_creates_an_admin_and_later_starts_keep_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_bootstrap(dir.path(), &[], "us-east-1", "http://127.0.0.1:1").unwrap();
        assert!(first.created_admin);
        let user = &first.identities.users[0];
        assert_eq!(user.user_name, "admin");
        assert!(user.access_keys[0].access_key_id.starts_with("AKIA"));
        let credentials = std::fs::read_to_string(&first.credentials_file).unwrap();
        assert!(credentials.contains(user.access_keys[0].secret_access_key.expose()));
        let config = std::fs::read_to_string(&first.config_file).unwrap();
        assert!(config.contains("region = us-east-1"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("identities.json"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let second = load_or_bootstrap(dir.path(), &[], "us-east-1", "http://127.0.0.1:1").unwrap();
        assert!(!second.created_admin);
        assert_eq!(second.identities, first.identities);
    }

    #[test]
    fn declared_users_are_merged_and_found() {
        let dir = tempfile::tempdir().unwrap();
        let declared = vec![DeclaredUser {
            account_id: "111122223333".into(),
            user_name: "ci".into(),
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: SecretAccessKey::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        }];
        let boot = load_or_bootstrap(dir.path(), &declared, "eu-west-1", "http://x").unwrap();
        assert!(
            !boot.created_admin,
            "a declared user means no generated admin"
        );
        let store = CredentialStore::new(&boot.identities);
        let (principal, secret) = store.find("AKIAIOSFODNN7EXAMPLE").unwrap();
        assert_eq!(principal.arn, "arn:aws:iam::111122223333:user/ci");
        assert_eq!(secret.expose(), "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
        assert!(store.find("AKIAUNKNOWN").is_none());
        assert_eq!(store.default_account_id(), "111122223333");
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let secret = SecretAccessKey::new("super-secret-value");
        assert!(!format!("{secret:?}").contains("super-secret-value"));
        let key = AccessKey {
            access_key_id: "AKIA".into(),
            secret_access_key: secret,
            status: active(),
        };
        assert!(!format!("{key:?}").contains("super-secret-value"));
    }

    #[test]
    fn rejects_malformed_declarations() {
        let dir = tempfile::tempdir().unwrap();
        let declared = vec![DeclaredUser {
            account_id: "12".into(),
            user_name: "x".into(),
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: SecretAccessKey::new("s"),
        }];
        assert!(matches!(
            load_or_bootstrap(dir.path(), &declared, "us-east-1", "http://x"),
            Err(AuthError::Invalid(_))
        ));
    }
}
