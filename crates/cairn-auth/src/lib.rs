//! cairn-auth owns identities: accounts, IAM-style users and their access keys, kept in
//! `DIR/identities.json` (mode 0600) and optionally declared in the config file. It creates
//! the administrator key on first start and writes the AWS shared-credentials and config
//! files that make the `aws` CLI and boto3 use it.
//!
//! It also owns roles with their trust policies (`roles.rs`) and the temporary credentials
//! STS hands out (`sessions.rs`), which it verifies on later calls.
//!
//! Secret access keys are held in [`SecretAccessKey`], whose `Debug` never shows the value
//! and which has no `Display`: a secret cannot reach a log line by accident. This crate
//! knows nothing of HTTP or of SigV4; `cairn-wire` verifies signatures with the secret it
//! is handed.

mod roles;
mod sealer;
mod sessions;

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use rand::Rng;
use serde::{Deserialize, Serialize};

pub use roles::{DeclaredRole, Role, DEFAULT_MAX_SESSION_DURATION_SECS};
pub use sealer::Sealer;
pub use sessions::{
    SessionError, SessionKey, TemporaryCredentials, MAX_SESSION_TOKEN_BYTES, SESSION_KEY_FILE,
};

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
    #[serde(default)]
    pub roles: Vec<Role>,
}

/// Who signed a request, as the record's `userIdentity` will show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub account_id: String,
    /// `arn:aws:iam::…:user/…`, or `arn:aws:sts::…:assumed-role/…/…` for a role session.
    pub arn: String,
    /// `AIDA…` for a user, `AROA…:session-name` for a role session.
    pub principal_id: String,
    pub access_key_id: String,
    pub kind: PrincipalKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrincipalKind {
    /// An IAM user, with its long-term key or with GetSessionToken credentials.
    User {
        user_name: String,
        session: Option<SessionTimes>,
    },
    /// A session of a role, from AssumeRole.
    AssumedRole {
        role_name: String,
        role_id: String,
        role_arn: String,
        session_name: String,
        session: SessionTimes,
    },
    /// An access key Cairn does not know, let in without a signature check because
    /// `accept_any_credentials` is on (a development mode): who it is, nobody verified.
    Unverified,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionTimes {
    pub created_at_millis: i64,
    pub expires_at_millis: i64,
}

impl Principal {
    pub fn user_name(&self) -> Option<&str> {
        match &self.kind {
            PrincipalKind::User { user_name, .. } => Some(user_name),
            PrincipalKind::AssumedRole { .. } | PrincipalKind::Unverified => None,
        }
    }

    /// The role a role session belongs to.
    pub fn role_arn(&self) -> Option<String> {
        match &self.kind {
            PrincipalKind::AssumedRole { role_arn, .. } => Some(role_arn.clone()),
            PrincipalKind::User { .. } | PrincipalKind::Unverified => None,
        }
    }

    /// Whether the request's signature was checked (it always is, unless
    /// `accept_any_credentials` let an unknown key in).
    pub fn is_verified(&self) -> bool {
        !matches!(self.kind, PrincipalKind::Unverified)
    }

    pub fn session(&self) -> Option<SessionTimes> {
        match &self.kind {
            PrincipalKind::User { session, .. } => *session,
            PrincipalKind::AssumedRole { session, .. } => Some(*session),
            PrincipalKind::Unverified => None,
        }
    }
}

/// Why a request's credentials are not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("unknown access key")]
    UnknownAccessKey,
    #[error("{0}")]
    Session(#[from] SessionError),
}

/// Why AssumeRole or GetSessionToken refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StsRefusal {
    /// The role does not exist or does not trust the caller (AWS does not tell which).
    #[error("{caller} is not authorized to perform: sts:AssumeRole on resource: {role_arn}")]
    NotTrusted { caller: String, role_arn: String },
    #[error("The requested DurationSeconds exceeds the MaxSessionDuration set for this role.")]
    DurationTooLong,
    #[error("Cannot call GetSessionToken with session credentials")]
    SessionCredentials,
    /// Temporary credentials are never issued to a caller whose signature was not checked.
    #[error("Cairn issues no temporary credentials to a caller whose signature it did not verify")]
    Unverified,
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
pub struct CredentialStore {
    /// Replaced whole when the identities change under a running server (several nodes
    /// sharing a store: one node's declared users reach the others).
    known: std::sync::RwLock<Known>,
    sessions: SessionKey,
    default_account_id: String,
    accept_any_credentials: bool,
}

/// The long-term keys and the roles, by access key ID and by role ARN.
struct Known {
    by_access_key: HashMap<String, (Principal, SecretAccessKey)>,
    roles: HashMap<String, Role>,
}

impl Known {
    fn of(identities: &Identities) -> Self {
        let mut by_access_key = HashMap::new();
        for user in &identities.users {
            for key in user.access_keys.iter().filter(|key| key.status == "Active") {
                let principal = Principal {
                    account_id: user.account_id.clone(),
                    arn: user.arn(),
                    principal_id: user.user_id.clone(),
                    access_key_id: key.access_key_id.clone(),
                    kind: PrincipalKind::User {
                        user_name: user.user_name.clone(),
                        session: None,
                    },
                };
                by_access_key.insert(
                    key.access_key_id.clone(),
                    (principal, key.secret_access_key.clone()),
                );
            }
        }
        let roles = identities
            .roles
            .iter()
            .map(|role| (role.arn(), role.clone()))
            .collect();
        Self {
            by_access_key,
            roles,
        }
    }
}

impl CredentialStore {
    pub fn new(identities: &Identities, sessions: SessionKey) -> Self {
        let default_account_id = identities
            .users
            .first()
            .map(|user| user.account_id.clone())
            .unwrap_or_default();
        Self {
            known: std::sync::RwLock::new(Known::of(identities)),
            sessions,
            default_account_id,
            accept_any_credentials: false,
        }
    }

    /// Takes `identities` as the keys and roles from now on (the default account stays).
    pub fn replace_identities(&self, identities: &Identities) {
        let known = Known::of(identities);
        match self.known.write() {
            Ok(mut current) => *current = known,
            Err(poisoned) => *poisoned.into_inner() = known,
        }
    }

    fn known(&self) -> std::sync::RwLockReadGuard<'_, Known> {
        self.known
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The account that receives events whose caller is unknown, and that unknown keys are
    /// taken to be in (instead of the first user's).
    pub fn with_default_account(mut self, account_id: String) -> Self {
        self.default_account_id = account_id;
        self
    }

    /// Development mode: an access key Cairn does not know is let in without a signature
    /// check (see [`CredentialStore::unverified`]).
    pub fn accepting_any_credentials(mut self, accept: bool) -> Self {
        self.accept_any_credentials = accept;
        self
    }

    pub fn accepts_any_credentials(&self) -> bool {
        self.accept_any_credentials
    }

    /// In development mode, the principal an unknown access key is let in as: a 12-digit
    /// key is that account (as LocalStack maps keys), any other key the default account.
    /// `None` when the mode is off or the key could not be presented by an SDK.
    pub fn unverified(&self, access_key_id: &str) -> Option<Principal> {
        if !self.accept_any_credentials
            || !is_presentable_access_key_id(access_key_id)
            || self.known().by_access_key.contains_key(access_key_id)
        {
            return None;
        }
        let account_id = if access_key_id.len() == 12
            && access_key_id.bytes().all(|byte| byte.is_ascii_digit())
        {
            access_key_id.to_owned()
        } else {
            self.default_account_id.clone()
        };
        Some(Principal {
            arn: format!("arn:aws:iam::{account_id}:root"),
            principal_id: access_key_id.to_owned(),
            account_id,
            access_key_id: access_key_id.to_owned(),
            kind: PrincipalKind::Unverified,
        })
    }

    /// The principal and secret behind an access key: a long-term key, or temporary
    /// credentials whose `session_token` this server issued and which have not expired at
    /// `now` (epoch ms). A long-term key presented with a session token is refused, as AWS
    /// refuses it.
    pub fn authenticate(
        &self,
        access_key_id: &str,
        session_token: Option<&str>,
        now: i64,
    ) -> Result<(Principal, SecretAccessKey), CredentialError> {
        match session_token {
            None => self
                .known()
                .by_access_key
                .get(access_key_id)
                .cloned()
                .ok_or(CredentialError::UnknownAccessKey),
            Some(_) if self.known().by_access_key.contains_key(access_key_id) => {
                Err(SessionError::Invalid.into())
            }
            Some(token) => Ok(self.sessions.open(access_key_id, token, now)?),
        }
    }

    /// AssumeRole: credentials for a session of `role_arn`, if the role trusts `caller`.
    /// `duration_secs` defaults to one hour and may not exceed the role's maximum.
    pub fn assume_role(
        &self,
        caller: &Principal,
        role_arn: &str,
        session_name: &str,
        duration_secs: Option<u32>,
        now: i64,
    ) -> Result<(TemporaryCredentials, Principal), StsRefusal> {
        if !caller.is_verified() {
            return Err(StsRefusal::Unverified);
        }
        let role = self
            .role(role_arn)
            .filter(|role| role.trusts(caller))
            .ok_or_else(|| StsRefusal::NotTrusted {
                caller: caller.arn.clone(),
                role_arn: role_arn.to_owned(),
            })?;
        let duration = duration_secs.unwrap_or(DEFAULT_MAX_SESSION_DURATION_SECS);
        if duration > role.max_session_duration_secs {
            return Err(StsRefusal::DurationTooLong);
        }
        let session = SessionTimes {
            created_at_millis: now,
            expires_at_millis: now + i64::from(duration) * 1000,
        };
        let mut assumed = Principal {
            account_id: role.account_id.clone(),
            arn: format!(
                "arn:aws:sts::{}:assumed-role/{}/{session_name}",
                role.account_id, role.role_name
            ),
            principal_id: format!("{}:{session_name}", role.role_id),
            access_key_id: String::new(),
            kind: PrincipalKind::AssumedRole {
                role_name: role.role_name.clone(),
                role_id: role.role_id.clone(),
                role_arn: role.arn(),
                session_name: session_name.to_owned(),
                session,
            },
        };
        let credentials = self
            .sessions
            .issue(&assumed, now, session.expires_at_millis);
        assumed.access_key_id = credentials.access_key_id.clone();
        Ok((credentials, assumed))
    }

    /// GetSessionToken: temporary credentials for the user `caller` itself.
    pub fn session_token(
        &self,
        caller: &Principal,
        duration_secs: u32,
        now: i64,
    ) -> Result<TemporaryCredentials, StsRefusal> {
        if !caller.is_verified() {
            return Err(StsRefusal::Unverified);
        }
        if caller.session().is_some() {
            return Err(StsRefusal::SessionCredentials);
        }
        Ok(self
            .sessions
            .issue(caller, now, now + i64::from(duration_secs) * 1000))
    }

    pub fn role(&self, role_arn: &str) -> Option<Role> {
        self.known().roles.get(role_arn).cloned()
    }

    /// The account of the first user: the one that receives events whose caller is unknown.
    pub fn default_account_id(&self) -> &str {
        &self.default_account_id
    }
}

/// What the generated `config` file tells the aws CLI and boto3.
#[derive(Clone, Debug, Default)]
pub struct ClientSettings {
    pub region: String,
    pub endpoint_url: String,
    /// The certificate to trust when Cairn serves HTTPS with its own.
    pub ca_bundle: Option<std::path::PathBuf>,
}

impl ClientSettings {
    pub fn new(region: &str, endpoint_url: &str) -> Self {
        Self {
            region: region.to_owned(),
            endpoint_url: endpoint_url.to_owned(),
            ca_bundle: None,
        }
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

/// The data directory's file of accounts, users, access keys and roles.
pub const IDENTITIES_FILE: &str = "identities.json";
pub const ADMIN_USER_NAME: &str = "admin";

/// Loads `DIR/identities.json`, merges users declared in the config, creates an
/// administrator with an access key when there is no user at all, and (re)writes
/// `DIR/credentials` and `DIR/config` for the first user's first key.
/// Loads the identities in `data_dir`, merges the declared users and roles, and on first
/// start creates an administrator, in `account_id` when one is configured (else in an account
/// of its own).
pub fn load_or_bootstrap(
    data_dir: &Path,
    declared: &[DeclaredUser],
    declared_roles: &[DeclaredRole],
    client: &ClientSettings,
    account_id: Option<&str>,
) -> Result<Bootstrap, AuthError> {
    if let Some(account_id) = account_id {
        check_account_id(account_id, "the configured account_id")?;
    }
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
        identities.users.push(new_admin(account_id));
        changed = true;
        tracing::info!(
            user = ADMIN_USER_NAME,
            "created the administrator access key"
        );
    }
    changed |= merge_declared_roles(&mut identities, declared_roles)?;
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
    let mut config = format!(
        "[default]\nregion = {}\nendpoint_url = {}\n",
        client.region, client.endpoint_url
    );
    if let Some(ca_bundle) = &client.ca_bundle {
        config.push_str(&format!("ca_bundle = {}\n", ca_bundle.display()));
    }
    write_private(&config_file, config.as_bytes())?;
    Ok(Bootstrap {
        identities,
        created_admin,
        credentials_file,
        config_file,
    })
}

/// The longest access key ID Cairn keeps (AWS's are 16 to 128 characters).
pub const MAX_ACCESS_KEY_ID_BYTES: usize = 128;

/// Whether an SDK can present `access_key_id` in a SigV4 credential scope: any printable
/// text that does not break the scope (`KEY/date/region/service/aws4_request`) or the
/// `Authorization` header's `name=value, ...` list. Emulators' keys (`test`, `FOOBARKEY`)
/// are such keys.
pub fn is_presentable_access_key_id(access_key_id: &str) -> bool {
    !access_key_id.is_empty()
        && access_key_id.len() <= MAX_ACCESS_KEY_ID_BYTES
        && access_key_id
            .bytes()
            .all(|byte| byte.is_ascii_graphic() && !matches!(byte, b'/' | b',' | b'='))
}

fn check_account_id(account_id: &str, what: &str) -> Result<(), AuthError> {
    if account_id.len() == 12 && account_id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(AuthError::Invalid(format!(
            "{what} {account_id:?} is not 12 digits"
        )))
    }
}

fn merge_declared(
    identities: &mut Identities,
    declared: &[DeclaredUser],
) -> Result<bool, AuthError> {
    let mut changed = false;
    for user in declared {
        check_account_id(
            &user.account_id,
            &format!("account_id of user {:?}", user.user_name),
        )?;
        if !is_presentable_access_key_id(&user.access_key_id) {
            return Err(AuthError::Invalid(format!(
                "access_key_id of user {:?} must be 1 to {MAX_ACCESS_KEY_ID_BYTES} printable characters \
                 without spaces, '/', ',' or '='",
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

fn merge_declared_roles(
    identities: &mut Identities,
    declared: &[DeclaredRole],
) -> Result<bool, AuthError> {
    let mut changed = false;
    for role in declared {
        let account_id = match &role.account_id {
            Some(account) => account.clone(),
            None => identities
                .users
                .first()
                .map(|user| user.account_id.clone())
                .unwrap_or_default(),
        };
        if account_id.len() != 12 || !account_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AuthError::Invalid(format!(
                "account_id {account_id:?} of role {:?} is not 12 digits",
                role.role_name
            )));
        }
        let name_ok = (1..=64).contains(&role.role_name.len())
            && role
                .role_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
        if !name_ok {
            return Err(AuthError::Invalid(format!(
                "role_name {:?} must be 1-64 letters, digits or +=,.@_-",
                role.role_name
            )));
        }
        if role.trust_policy.get("Statement").is_none() {
            return Err(AuthError::Invalid(format!(
                "the trust_policy of role {:?} has no Statement",
                role.role_name
            )));
        }
        let max_session_duration_secs = role
            .max_session_duration_secs
            .unwrap_or(DEFAULT_MAX_SESSION_DURATION_SECS);
        if !(3600..=43_200).contains(&max_session_duration_secs) {
            return Err(AuthError::Invalid(format!(
                "max_session_duration_secs of role {:?} must be 3600-43200",
                role.role_name
            )));
        }
        let known = identities
            .roles
            .iter_mut()
            .find(|known| known.account_id == account_id && known.role_name == role.role_name);
        match known {
            Some(known) => {
                if known.trust_policy != role.trust_policy
                    || known.max_session_duration_secs != max_session_duration_secs
                {
                    known.trust_policy = role.trust_policy.clone();
                    known.max_session_duration_secs = max_session_duration_secs;
                    changed = true;
                }
            }
            None => {
                identities.roles.push(Role {
                    account_id,
                    role_name: role.role_name.clone(),
                    role_id: random_id("AROA", 17),
                    trust_policy: role.trust_policy.clone(),
                    max_session_duration_secs,
                });
                changed = true;
            }
        }
    }
    Ok(changed)
}

fn new_admin(account_id: Option<&str>) -> User {
    let mut rng = rand::rng();
    let account_id: String = match account_id {
        Some(account_id) => account_id.to_owned(),
        None => (0..12)
            .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
            .collect(),
    };
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

pub(crate) fn random_id(prefix: &str, length: usize) -> String {
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

/// A 32-byte secret key kept in `path` (mode 0600), created at random on first use. Keys that
/// seal tokens live in the data directory so tokens survive a restart.
pub fn load_or_create_key(path: &Path) -> Result<[u8; 32], AuthError> {
    match std::fs::read(path) {
        Ok(bytes) => <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
            AuthError::Invalid(format!("{} must hold exactly 32 bytes", path.display()))
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut key);
            write_private(path, &key)?;
            Ok(key)
        }
        Err(source) => Err(AuthError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Writes a file readable by its owner only, atomically (write, fsync, rename, fsync of the
/// directory, so the rename itself survives a power cut). For files that hold credentials.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), AuthError> {
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
    #[cfg(unix)]
    if let Some(directory) = path.parent() {
        let directory = if directory.as_os_str().is_empty() {
            Path::new(".")
        } else {
            directory
        };
        std::fs::File::open(directory)
            .and_then(|directory| directory.sync_all())
            .map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_start_creates_an_admin_and_later_starts_keep_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_bootstrap(
            dir.path(),
            &[],
            &[],
            &ClientSettings::new("us-east-1", "http://127.0.0.1:1"),
            None,
        )
        .unwrap();
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
        let second = load_or_bootstrap(
            dir.path(),
            &[],
            &[],
            &ClientSettings::new("us-east-1", "http://127.0.0.1:1"),
            None,
        )
        .unwrap();
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
        let boot = load_or_bootstrap(
            dir.path(),
            &declared,
            &[],
            &ClientSettings::new("eu-west-1", "http://x"),
            None,
        )
        .unwrap();
        assert!(
            !boot.created_admin,
            "a declared user means no generated admin"
        );
        let store = CredentialStore::new(&boot.identities, SessionKey::random());
        let (principal, secret) = store.authenticate("AKIAIOSFODNN7EXAMPLE", None, 0).unwrap();
        assert_eq!(principal.arn, "arn:aws:iam::111122223333:user/ci");
        assert_eq!(secret.expose(), "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
        assert_eq!(
            store.authenticate("AKIAUNKNOWN", None, 0).unwrap_err(),
            CredentialError::UnknownAccessKey
        );
        assert_eq!(
            store
                .authenticate("AKIAIOSFODNN7EXAMPLE", Some("token"), 0)
                .unwrap_err(),
            CredentialError::Session(SessionError::Invalid)
        );
        assert_eq!(store.default_account_id(), "111122223333");
    }

    #[test]
    fn identities_replaced_under_a_running_store_take_effect_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let client = ClientSettings::new("us-east-1", "http://x");
        let first = load_or_bootstrap(dir.path(), &[], &[], &client, None).unwrap();
        let store = CredentialStore::new(&first.identities, SessionKey::random());
        let admin = first.identities.users[0].access_keys[0]
            .access_key_id
            .clone();
        let declared = vec![DeclaredUser {
            account_id: "111122223333".into(),
            user_name: "ci".into(),
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: SecretAccessKey::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        }];
        assert!(store.authenticate("AKIAIOSFODNN7EXAMPLE", None, 0).is_err());
        let merged = load_or_bootstrap(dir.path(), &declared, &[], &client, None).unwrap();
        store.replace_identities(&merged.identities);
        assert!(store.authenticate("AKIAIOSFODNN7EXAMPLE", None, 0).is_ok());
        assert!(store.authenticate(&admin, None, 0).is_ok(), "kept");
        store.replace_identities(&Identities::default());
        assert_eq!(
            store.authenticate(&admin, None, 0).unwrap_err(),
            CredentialError::UnknownAccessKey
        );
    }

    #[test]
    fn declared_roles_can_be_assumed_by_whom_they_trust() {
        let dir = tempfile::tempdir().unwrap();
        let users = vec![DeclaredUser {
            account_id: "111122223333".into(),
            user_name: "ci".into(),
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: SecretAccessKey::new("s"),
        }];
        let roles: Vec<DeclaredRole> = vec![toml_role(
            "role_name = 'deployer'\ntrust_policy = '''{\"Statement\": [{\"Effect\": \"Allow\", \"Principal\": {\"AWS\": \"arn:aws:iam::111122223333:user/ci\"}, \"Action\": \"sts:AssumeRole\"}]}'''",
        )];
        let boot = load_or_bootstrap(
            dir.path(),
            &users,
            &roles,
            &ClientSettings::new("us-east-1", "http://x"),
            None,
        )
        .unwrap();
        let role_id = boot.identities.roles[0].role_id.clone();
        assert!(role_id.starts_with("AROA"));
        let again = load_or_bootstrap(
            dir.path(),
            &users,
            &roles,
            &ClientSettings::new("us-east-1", "http://x"),
            None,
        )
        .unwrap();
        assert_eq!(
            again.identities.roles[0].role_id, role_id,
            "role IDs are stable"
        );
        let store = CredentialStore::new(&boot.identities, SessionKey::random());
        let (ci, _) = store.authenticate("AKIAIOSFODNN7EXAMPLE", None, 0).unwrap();
        let arn = "arn:aws:iam::111122223333:role/deployer";
        let (credentials, assumed) = store.assume_role(&ci, arn, "build-7", None, 1_000).unwrap();
        assert_eq!(
            assumed.arn,
            "arn:aws:sts::111122223333:assumed-role/deployer/build-7"
        );
        assert_eq!(assumed.principal_id, format!("{role_id}:build-7"));
        assert_eq!(credentials.expiration_millis, 1_000 + 3_600_000);
        let (session, secret) = store
            .authenticate(
                &credentials.access_key_id,
                Some(&credentials.session_token),
                2_000,
            )
            .unwrap();
        assert_eq!(session, assumed);
        assert_eq!(secret, credentials.secret_access_key);
        assert!(matches!(
            store.assume_role(&ci, "arn:aws:iam::111122223333:role/nope", "s", None, 0),
            Err(StsRefusal::NotTrusted { .. })
        ));
        assert_eq!(
            store.assume_role(&ci, arn, "s", Some(7200), 0).unwrap_err(),
            StsRefusal::DurationTooLong
        );
        // The role does not trust its own sessions, so no chaining here.
        assert!(store
            .assume_role(&session, arn, "again", None, 2_000)
            .is_err());
        assert_eq!(
            store.session_token(&session, 900, 2_000).unwrap_err(),
            StsRefusal::SessionCredentials
        );
        let user_session = store.session_token(&ci, 900, 2_000).unwrap();
        let (same_user, _) = store
            .authenticate(
                &user_session.access_key_id,
                Some(&user_session.session_token),
                3_000,
            )
            .unwrap();
        assert_eq!(same_user.user_name(), Some("ci"));
        assert!(same_user.session().is_some());
    }

    fn toml_role(text: &str) -> DeclaredRole {
        toml::from_str(text).unwrap()
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
            load_or_bootstrap(
                dir.path(),
                &declared,
                &[],
                &ClientSettings::new("us-east-1", "http://x"),
                None
            ),
            Err(AuthError::Invalid(_))
        ));
    }
}
