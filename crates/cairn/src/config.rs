//! Settings, from lowest to highest precedence: built-in defaults, the TOML file
//! (`--config`, `CAIRN_CONFIG`, or `./cairn.toml` when present), `CAIRN_*` environment
//! variables, command-line flags. clap reads a flag and its environment variable together
//! (a flag wins); the TOML file fills in what neither gave.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use cairn_auth::{DeclaredRole, DeclaredUser};
use serde::Deserialize;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:4590";
pub const DEFAULT_DATA_DIR: &str = "./cairn-data";
pub const DEFAULT_REGION: &str = "us-east-1";

#[derive(clap::Args, Debug, Default)]
pub struct Overrides {
    /// TOML configuration file [default: ./cairn.toml when present]
    #[arg(long, env = "CAIRN_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory (event store, identities, credentials) [default: ./cairn-data]
    #[arg(long, env = "CAIRN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Where the event history lives: `sqlite` (one database in the data directory) or a
    /// `postgres://user@host:port/database[?schema=NAME]` URL shared by several nodes
    /// [default: sqlite]
    #[arg(long, env = "CAIRN_STORE", hide_env_values = true)]
    pub store: Option<String>,
    /// With a postgres store: the key (64 hex digits) that seals the secrets nodes share in
    /// the database; every node must be given the same file. Made if missing
    /// [default: DIR/store.key]
    #[arg(long, env = "CAIRN_STORE_KEY_FILE")]
    pub store_key_file: Option<PathBuf>,
    /// Days of event history to keep; 0 keeps events forever. The data directory keeps its
    /// own (90 for a new one): this may lengthen it, never shorten it [see `cairn retention`]
    #[arg(long, env = "CAIRN_RETENTION_DAYS")]
    pub retention_days: Option<u32>,
    /// Region written to DIR/config and used for requests that name none [default: us-east-1]
    #[arg(long, env = "CAIRN_REGION")]
    pub region: Option<String>,
    /// Where calls for services Cairn does not serve go (moto_server, LocalStack, ...)
    #[arg(long, env = "CAIRN_UPSTREAM")]
    pub upstream: Option<String>,
    /// The account of the administrator created on first start, and of unknown callers
    /// [default: a random 12-digit account]
    #[arg(long, env = "CAIRN_ACCOUNT_ID")]
    pub account_id: Option<String>,
    /// DEVELOPMENT ONLY: let access keys Cairn does not know in without checking their
    /// signature (recorded as unverified)
    #[arg(long, env = "CAIRN_ACCEPT_ANY_CREDENTIALS")]
    pub accept_any_credentials: bool,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key)
    #[arg(long, env = "CAIRN_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert
    #[arg(long, env = "CAIRN_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve S3 from the embedded S3 in the data directory even when an upstream is given
    /// (the default when no upstream serves S3)
    #[arg(long, env = "CAIRN_EMBEDDED_S3")]
    pub embedded_s3: bool,
    /// Seconds between trail log file deliveries, 1 or more [default: 300, as AWS]
    #[arg(long, env = "CAIRN_DELIVERY_INTERVAL_SECS")]
    pub delivery_interval_secs: Option<u64>,
    /// Seconds between digest files of trails with log file validation, 10 or more
    /// [default: 3600, as AWS]
    #[arg(long, env = "CAIRN_DIGEST_INTERVAL_SECS")]
    pub digest_interval_secs: Option<u64>,
    /// Seconds a digest signing key signs before it is replaced, 10 or more
    /// [default: 2592000, 30 days]
    #[arg(long, env = "CAIRN_DIGEST_KEY_ROTATION_SECS")]
    pub digest_key_rotation_secs: Option<u64>,
    /// Milliseconds between the transparency log's signed checkpoints, 100 or more; 0 turns
    /// the log off [default: 1000]
    #[arg(long, env = "CAIRN_CHECKPOINT_INTERVAL_MILLIS")]
    pub checkpoint_interval_millis: Option<u64>,
    /// The access key trails sign with when they deliver to an S3 upstream [default: test]
    #[arg(long, env = "CAIRN_DELIVERY_ACCESS_KEY_ID")]
    pub delivery_access_key_id: Option<String>,
    /// Its secret [default: test, which moto and LocalStack accept]
    #[arg(long, env = "CAIRN_DELIVERY_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub delivery_secret_access_key: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    data_dir: Option<PathBuf>,
    store: Option<String>,
    store_key_file: Option<PathBuf>,
    listen: Option<SocketAddr>,
    retention_days: Option<u32>,
    region: Option<String>,
    upstream: Option<String>,
    account_id: Option<String>,
    accept_any_credentials: Option<bool>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    upstream_ca_file: Option<PathBuf>,
    #[serde(default)]
    upstreams: std::collections::BTreeMap<String, String>,
    upstream_timeout_secs: Option<u64>,
    embedded_s3: Option<bool>,
    delivery_interval_secs: Option<u64>,
    digest_interval_secs: Option<u64>,
    digest_key_rotation_secs: Option<u64>,
    checkpoint_interval_millis: Option<u64>,
    delivery_access_key_id: Option<String>,
    delivery_secret_access_key: Option<String>,
    rotation_poll_millis: Option<u64>,
    owed_notices_per_trail: Option<usize>,
    rotation_give_up_secs: Option<u64>,
    #[serde(default)]
    users: Vec<DeclaredUser>,
    #[serde(default)]
    roles: Vec<DeclaredRole>,
    #[serde(default)]
    trusted_proxies: Vec<String>,
}

/// Which backend holds the event history.
#[derive(Debug, Clone)]
pub enum StoreChoice {
    /// SQLite in the data directory: the default, for one machine.
    Embedded,
    /// PostgreSQL, shared by every node that names it.
    Postgres(Box<cairn_store::PostgresLocation>),
}

impl StoreChoice {
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        if text == "sqlite" {
            return Ok(Self::Embedded);
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(Self::Postgres(Box::new(
                cairn_store::PostgresLocation::parse(text)?,
            )));
        }
        anyhow::bail!("store must be sqlite or a postgres:// URL")
    }
}

#[derive(Debug)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub store: StoreChoice,
    /// Where the key sealing shared secrets is (a postgres store only).
    pub store_key_file: PathBuf,
    pub listen: SocketAddr,
    /// The retention asked for, if any: the data directory's own is settled against it.
    pub retention_days: Option<u32>,
    pub region: String,
    pub users: Vec<DeclaredUser>,
    /// Roles that STS AssumeRole can hand out sessions of.
    pub roles: Vec<DeclaredRole>,
    /// Peers (addresses or CIDR blocks) whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<cairn_server::TrustedProxy>,
    /// Default upstream for services Cairn does not serve, and per-service overrides
    /// (botocore service id or signing name → URL).
    pub upstream: Option<http::Uri>,
    pub upstreams: std::collections::BTreeMap<String, http::Uri>,
    pub upstream_timeout_secs: u64,
    /// The account of the administrator created on first start, and of unknown callers.
    pub account_id: Option<String>,
    /// Development mode: unknown access keys are let in without a signature check.
    pub accept_any_credentials: bool,
    /// HTTPS: the certificate chain and key, both PEM.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Certificate authorities (PEM) an `https` upstream may chain to, besides the system's.
    pub upstream_ca_file: Option<PathBuf>,
    /// How often a Secrets Manager rotation the upstream runs after answering is looked at,
    /// and how long until one still pending is recorded as failed.
    pub rotation_poll: std::time::Duration,
    pub rotation_give_up: std::time::Duration,
    /// How many deliveries' SNS and CloudWatch Logs notices a trail keeps owing while its
    /// endpoint fails: past this the oldest are given up, so a topic deleted for good does
    /// not grow the outbox without end.
    pub owed_notices_per_trail: usize,

    /// Whether S3 is served by the embedded S3 (no upstream serves S3, or it was asked for).
    pub embedded_s3: bool,
    /// How often logging trails deliver their log files.
    pub delivery_interval: std::time::Duration,
    /// How often trails with log file validation write digests, and how long a signing key
    /// signs before it is replaced.
    pub digest_interval: std::time::Duration,
    pub digest_key_rotation: std::time::Duration,
    /// How often the transparency log signs a checkpoint; `None` when it is off.
    pub checkpoint_interval: Option<std::time::Duration>,
    /// What trails sign with at an S3 upstream: (access key ID, secret).
    pub delivery_credentials: (String, cairn_auth::SecretAccessKey),
}

pub const DEFAULT_UPSTREAM_TIMEOUT_SECS: u64 = 30;
pub const DEFAULT_DELIVERY_INTERVAL_SECS: u64 = 300;
pub const DEFAULT_DIGEST_INTERVAL_SECS: u64 = 3600;
pub const DEFAULT_DIGEST_KEY_ROTATION_SECS: u64 = 30 * 24 * 3600;
pub const DEFAULT_CHECKPOINT_INTERVAL_MILLIS: u64 = 1000;
pub const DEFAULT_ROTATION_POLL_MILLIS: u64 = 15_000;
/// A rotation function runs four steps of at most 15 minutes each.
pub const DEFAULT_ROTATION_GIVE_UP_SECS: u64 = 3600;

impl Settings {
    pub fn load(overrides: &Overrides, listen: Option<SocketAddr>) -> anyhow::Result<Self> {
        let file = match &overrides.config {
            Some(path) => read_file(path)?,
            None if Path::new("cairn.toml").exists() => read_file(Path::new("cairn.toml"))?,
            None => FileSettings::default(),
        };
        Self::merge(overrides, listen, file)
    }

    fn merge(
        overrides: &Overrides,
        listen: Option<SocketAddr>,
        file: FileSettings,
    ) -> anyhow::Result<Self> {
        let parse_uri = |text: &str| -> anyhow::Result<http::Uri> {
            let uri: http::Uri = text
                .parse()
                .with_context(|| format!("upstream {text:?} is not a URL"))?;
            anyhow::ensure!(
                matches!(uri.scheme_str(), Some("http" | "https")) && uri.authority().is_some(),
                "upstream {text:?} must be an http:// or https:// URL with a host"
            );
            Ok(uri)
        };
        let upstream = match overrides.upstream.as_deref().or(file.upstream.as_deref()) {
            Some(text) => Some(parse_uri(text)?),
            None => None,
        };
        let mut upstreams = std::collections::BTreeMap::new();
        let mut s3_embedded_by_file = false;
        for (service, text) in &file.upstreams {
            if service == "s3" && text == "embedded" {
                s3_embedded_by_file = true;
                continue;
            }
            upstreams.insert(service.clone(), parse_uri(text)?);
        }
        let embedded_s3 = overrides.embedded_s3
            || file.embedded_s3.unwrap_or(false)
            || s3_embedded_by_file
            || (upstream.is_none() && !upstreams.contains_key("s3"));
        let delivery_interval_secs = overrides
            .delivery_interval_secs
            .or(file.delivery_interval_secs)
            .unwrap_or(DEFAULT_DELIVERY_INTERVAL_SECS);
        anyhow::ensure!(
            delivery_interval_secs >= 1,
            "delivery_interval_secs must be 1 or more"
        );
        let digest_interval_secs = overrides
            .digest_interval_secs
            .or(file.digest_interval_secs)
            .unwrap_or(DEFAULT_DIGEST_INTERVAL_SECS);
        anyhow::ensure!(
            digest_interval_secs >= 10,
            "digest_interval_secs must be 10 or more"
        );
        let digest_key_rotation_secs = overrides
            .digest_key_rotation_secs
            .or(file.digest_key_rotation_secs)
            .unwrap_or(DEFAULT_DIGEST_KEY_ROTATION_SECS);
        anyhow::ensure!(
            digest_key_rotation_secs >= 10,
            "digest_key_rotation_secs must be 10 or more"
        );
        let checkpoint_interval_millis = overrides
            .checkpoint_interval_millis
            .or(file.checkpoint_interval_millis)
            .unwrap_or(DEFAULT_CHECKPOINT_INTERVAL_MILLIS);
        anyhow::ensure!(
            checkpoint_interval_millis == 0 || checkpoint_interval_millis >= 100,
            "checkpoint_interval_millis must be 0 (off) or 100 or more"
        );
        let store = match overrides.store.as_deref().or(file.store.as_deref()) {
            Some(text) => StoreChoice::parse(text)?,
            None => StoreChoice::Embedded,
        };
        let data_dir = overrides
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        Ok(Self {
            store,
            store_key_file: overrides
                .store_key_file
                .clone()
                .or(file.store_key_file)
                .unwrap_or_else(|| data_dir.join("store.key")),
            embedded_s3,
            delivery_interval: std::time::Duration::from_secs(delivery_interval_secs),
            digest_interval: std::time::Duration::from_secs(digest_interval_secs),
            digest_key_rotation: std::time::Duration::from_secs(digest_key_rotation_secs),
            checkpoint_interval: (checkpoint_interval_millis > 0)
                .then(|| std::time::Duration::from_millis(checkpoint_interval_millis)),
            delivery_credentials: (
                overrides
                    .delivery_access_key_id
                    .clone()
                    .or(file.delivery_access_key_id)
                    .unwrap_or_else(|| "test".to_owned()),
                cairn_auth::SecretAccessKey::new(
                    overrides
                        .delivery_secret_access_key
                        .clone()
                        .or(file.delivery_secret_access_key)
                        .unwrap_or_else(|| "test".to_owned()),
                ),
            ),
            upstream,
            upstreams,
            account_id: overrides.account_id.clone().or(file.account_id),
            tls: match (
                overrides.tls_cert.clone().or(file.tls_cert),
                overrides.tls_key.clone().or(file.tls_key),
            ) {
                (Some(certificate), Some(key)) => Some((certificate, key)),
                (None, None) => None,
                _ => anyhow::bail!("tls_cert and tls_key go together: give both or neither"),
            },
            upstream_ca_file: file.upstream_ca_file,
            accept_any_credentials: overrides.accept_any_credentials
                || file.accept_any_credentials.unwrap_or(false),
            upstream_timeout_secs: file
                .upstream_timeout_secs
                .unwrap_or(DEFAULT_UPSTREAM_TIMEOUT_SECS),
            rotation_poll: std::time::Duration::from_millis(
                file.rotation_poll_millis
                    .unwrap_or(DEFAULT_ROTATION_POLL_MILLIS)
                    .max(1),
            ),
            owed_notices_per_trail: match file.owed_notices_per_trail {
                Some(0) => anyhow::bail!("owed_notices_per_trail must be 1 or more"),
                Some(bound) => bound,
                None => cairn_delivery::DEFAULT_OWED_NOTICES_PER_TRAIL,
            },
            rotation_give_up: std::time::Duration::from_secs(
                file.rotation_give_up_secs
                    .unwrap_or(DEFAULT_ROTATION_GIVE_UP_SECS),
            ),
            data_dir,
            listen: listen
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("a valid default address")),
            retention_days: overrides.retention_days.or(file.retention_days),
            region: overrides
                .region
                .clone()
                .or(file.region)
                .unwrap_or_else(|| DEFAULT_REGION.to_owned()),
            users: file.users,
            roles: file.roles,
            trusted_proxies: file
                .trusted_proxies
                .iter()
                .map(|text| text.parse().map_err(|error: String| anyhow::anyhow!(error)))
                .collect::<anyhow::Result<_>>()?,
        })
    }
}

fn read_file(path: &Path) -> anyhow::Result<FileSettings> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
    toml::from_str(&text)
        .with_context(|| format!("{} is not a valid Cairn configuration", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> FileSettings {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_apply_when_nothing_is_given() {
        let settings =
            Settings::merge(&Overrides::default(), None, FileSettings::default()).unwrap();
        assert_eq!(settings.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(settings.data_dir, PathBuf::from("./cairn-data"));
        assert_eq!(
            settings.retention_days, None,
            "the data directory's own retention applies"
        );
        assert_eq!(settings.rotation_poll.as_secs(), 15);
        assert_eq!(settings.rotation_give_up.as_secs(), 3600);
        let quick = file("rotation_poll_millis = 200\nrotation_give_up_secs = 3");
        let settings = Settings::merge(&Overrides::default(), None, quick).unwrap();
        assert_eq!(settings.rotation_poll.as_millis(), 200);
        assert_eq!(settings.rotation_give_up.as_secs(), 3);
    }

    #[test]
    fn flags_and_environment_beat_the_file() {
        let from_file = file("data_dir = '/from/file'\nretention_days = 7\nlisten = '127.0.0.1:1'\nregion = 'eu-west-1'");
        let overrides = Overrides {
            retention_days: Some(0),
            ..Overrides::default()
        };
        let settings =
            Settings::merge(&overrides, Some("127.0.0.1:2".parse().unwrap()), from_file).unwrap();
        assert_eq!(settings.retention_days, Some(0));
        assert_eq!(settings.listen.to_string(), "127.0.0.1:2");
        assert_eq!(settings.data_dir, PathBuf::from("/from/file"));
        assert_eq!(settings.region, "eu-west-1");
    }

    #[test]
    fn s3_is_embedded_unless_an_upstream_serves_it() {
        let alone = Settings::merge(&Overrides::default(), None, FileSettings::default()).unwrap();
        assert!(alone.embedded_s3);
        assert_eq!(alone.delivery_interval.as_secs(), 300);
        let proxied = file("upstream = 'http://127.0.0.1:5000'");
        assert!(
            !Settings::merge(&Overrides::default(), None, proxied)
                .unwrap()
                .embedded_s3
        );
        let chosen = file("upstream = 'http://127.0.0.1:5000'\n[upstreams]\ns3 = 'embedded'");
        let settings = Settings::merge(&Overrides::default(), None, chosen).unwrap();
        assert!(settings.embedded_s3 && !settings.upstreams.contains_key("s3"));
        let flagged = Overrides {
            upstream: Some("http://127.0.0.1:5000".into()),
            embedded_s3: true,
            delivery_interval_secs: Some(1),
            ..Overrides::default()
        };
        let settings = Settings::merge(&flagged, None, FileSettings::default()).unwrap();
        assert!(settings.embedded_s3);
        assert_eq!(settings.delivery_interval.as_secs(), 1);
        let zero = Overrides {
            delivery_interval_secs: Some(0),
            ..Overrides::default()
        };
        assert!(Settings::merge(&zero, None, FileSettings::default()).is_err());
        assert_eq!(alone.digest_interval.as_secs(), 3600);
        let digests = file("digest_interval_secs = 10\ndigest_key_rotation_secs = 30");
        let settings = Settings::merge(&Overrides::default(), None, digests).unwrap();
        assert_eq!(settings.digest_interval.as_secs(), 10);
        assert_eq!(settings.digest_key_rotation.as_secs(), 30);
        assert_eq!(
            alone.checkpoint_interval,
            Some(std::time::Duration::from_secs(1))
        );
        let off = file("checkpoint_interval_millis = 0");
        let settings = Settings::merge(&Overrides::default(), None, off).unwrap();
        assert_eq!(settings.checkpoint_interval, None);
        let too_often = Overrides {
            checkpoint_interval_millis: Some(50),
            ..Overrides::default()
        };
        assert!(Settings::merge(&too_often, None, FileSettings::default()).is_err());
        let too_often = Overrides {
            digest_interval_secs: Some(9),
            ..Overrides::default()
        };
        assert!(Settings::merge(&too_often, None, FileSettings::default()).is_err());
    }

    #[test]
    fn the_store_is_sqlite_unless_a_postgres_url_is_given() {
        let settings = Settings::merge(&Overrides::default(), None, file("")).unwrap();
        assert!(matches!(settings.store, StoreChoice::Embedded));
        let settings = Settings::merge(
            &Overrides::default(),
            None,
            file("store = 'postgres://cairn:secret@db:5432/audit?schema=prod'"),
        )
        .unwrap();
        let StoreChoice::Postgres(location) = &settings.store else {
            panic!("not postgres: {:?}", settings.store);
        };
        assert_eq!(
            location.to_string(),
            "postgres://cairn:***@db:5432/audit?schema=prod"
        );
        let overrides = Overrides {
            store: Some("sqlite".into()),
            ..Overrides::default()
        };
        let settings =
            Settings::merge(&overrides, None, file("store = 'postgres://db/audit'")).unwrap();
        assert!(matches!(settings.store, StoreChoice::Embedded));
        for bad in ["mysql://db/x", "postgres://db/x?schema=a-b", "sqlite3"] {
            let overrides = Overrides {
                store: Some(bad.into()),
                ..Overrides::default()
            };
            assert!(
                Settings::merge(&overrides, None, file("")).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn upstreams_are_validated() {
        let from_file =
            file("upstream = 'http://127.0.0.1:5000'\n[upstreams]\ns3 = 'http://127.0.0.1:9000'");
        let settings = Settings::merge(&Overrides::default(), None, from_file).unwrap();
        assert_eq!(
            settings.upstream.unwrap().to_string(),
            "http://127.0.0.1:5000/"
        );
        assert_eq!(
            settings.upstreams["s3"].to_string(),
            "http://127.0.0.1:9000/"
        );
        let overrides = Overrides {
            upstream: Some("ftp://nope".into()),
            ..Overrides::default()
        };
        assert!(Settings::merge(&overrides, None, FileSettings::default()).is_err());
    }

    #[test]
    fn users_may_be_declared_and_unknown_keys_are_refused() {
        let settings = file(
            "[[users]]\naccount_id = '111122223333'\nuser_name = 'ci'\naccess_key_id = 'AKIAIOSFODNN7EXAMPLE'\nsecret_access_key = 'x'",
        );
        assert_eq!(settings.users.len(), 1);
        assert!(toml::from_str::<FileSettings>("retention = 3").is_err());
    }
}
