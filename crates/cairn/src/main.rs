//! The `cairn` binary: command line, configuration and wiring. The work is done by the
//! library crates; this file only decides which of them run, with which settings.

mod config;
mod event_store;
mod import_command;
mod shared_secrets;
mod tail_command;
mod validate_command;
mod validate_local;
mod validate_remote;
mod verify_command;

use config::StoreChoice;
use shared_secrets::SharedSecrets;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use cairn_auth::{CredentialStore, SessionKey};
use cairn_capture::services::{standard_hooks, RotationBook, RotationSettings};
use cairn_model::{Clock, SystemClock, TimeOrderedIds};
use cairn_server::{AppState, ServerSettings, TokenKey};
use cairn_upstream::{UpstreamRoutes, UpstreamTrust, Upstreams};
use clap::{Parser, Subcommand};

use crate::config::{Overrides, Settings};

#[derive(Parser)]
#[command(
    name = "cairn",
    version,
    about = "A self-hosted, AWS-CloudTrail-compatible audit trail"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (CloudTrail API on one port, embedded event store).
    Serve {
        #[command(flatten)]
        overrides: Overrides,
        /// Address to listen on (port 0 picks a free port).
        #[arg(long, env = "CAIRN_LISTEN")]
        listen: Option<SocketAddr>,
    },
    /// Show the data directory's retention, what a new one would remove, and with --apply
    /// set it and remove the events it no longer keeps.
    Retention {
        #[command(flatten)]
        overrides: Overrides,
        /// The retention to set, in days (0 keeps every event)
        #[arg(long)]
        days: Option<u32>,
        /// Set it, removing the events it no longer keeps (without it, only say what it would do)
        #[arg(long)]
        apply: bool,
    },
    /// Load existing CloudTrail log files or directories into the event history.
    Import {
        #[command(flatten)]
        overrides: Overrides,
        /// Print the per-file report as JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Reject any file whose decompressed content is larger than this many bytes.
        #[arg(long, default_value_t = 4 << 30)]
        max_decompressed_bytes: u64,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Follow the event history: print each new event as it is recorded.
    Tail {
        #[command(flatten)]
        overrides: Overrides,
        #[command(flatten)]
        filters: tail_command::TailFilters,
    },
    /// Validate a trail's log files against its digests, as `aws cloudtrail validate-logs`.
    ValidateLogs {
        #[command(flatten)]
        args: validate_command::ValidateArgs,
    },
    /// Prove one event is in the transparency log, as recorded.
    VerifyEvent {
        #[command(flatten)]
        args: verify_command::VerifyArgs,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // A log that cannot be written (its disk is full) is skipped: reporting that would
        // print to the same stderr, and a failed print panics the thread serving a call.
        .log_internal_errors(false)
        // Colours for a terminal only: a log file gets plain text that grep can read.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match Cli::parse().command {
        Command::Serve { overrides, listen } => {
            let settings = Settings::load(&overrides, listen)?;
            serve(settings)
        }
        Command::Tail { overrides, filters } => {
            let settings = Settings::load(&overrides, None)?;
            tail_command::run(&settings, &filters)
        }
        Command::ValidateLogs { args } => std::process::exit(validate_command::run(&args)),
        Command::VerifyEvent { args } => std::process::exit(verify_command::run(&args)),
        Command::Retention {
            overrides,
            days,
            apply,
        } => {
            let settings = Settings::load(&overrides, None)?;
            let store = event_store::open(
                &settings.store,
                &settings.data_dir,
                event_store::Purpose::Serving,
            )?;
            for line in cairn_store::retention::change(
                store.as_ref(),
                days,
                apply,
                SystemClock.now_millis(),
            )? {
                println!("{line}");
            }
            Ok(())
        }
        Command::Import {
            overrides,
            json,
            max_decompressed_bytes,
            paths,
        } => {
            let settings = Settings::load(&overrides, None)?;
            let clean = import_command::run(&settings, &paths, max_decompressed_bytes, json)?;
            std::process::exit(if clean { 0 } else { 1 });
        }
    }
}

fn serve(settings: Settings) -> anyhow::Result<()> {
    // Settled before the runtime starts: it waits on the store's writer.
    let store = event_store::open(
        &settings.store,
        &settings.data_dir,
        event_store::Purpose::Serving,
    )?;
    let retention_days = cairn_store::retention::settle(
        store.as_ref(),
        settings.retention_days,
        SystemClock.now_millis(),
    )?;
    // On a shared store, the node takes (or offers) the secrets every node must share
    // before anything loads them.
    let shared = match &settings.store {
        StoreChoice::Embedded => None,
        StoreChoice::Postgres(_) => {
            let key = shared_secrets::load_or_create_store_key(&settings.store_key_file)?;
            let shared = SharedSecrets::new(store.clone(), &settings.data_dir, &key)?;
            std::fs::create_dir_all(&settings.data_dir)?;
            TokenKey::load_or_create(&settings.data_dir).context("cannot load the token key")?;
            shared.sync_file(cairn_server::TOKEN_KEY_FILE)?;
            SessionKey::load_or_create(&settings.data_dir)?;
            shared.sync_file(cairn_auth::SESSION_KEY_FILE)?;
            shared.sync_file(cairn_auth::IDENTITIES_FILE)?;
            shared.sync_digest_keys()?;
            if settings.embedded_s3 {
                tracing::warn!(
                    "trails deliver into this node's embedded S3: with several nodes on one \
                     store, give an S3 upstream so that every node delivers to the same buckets"
                );
            }
            Some(Arc::new(shared))
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let address = listener.local_addr()?;
        let tls = match &settings.tls {
            Some((certificate, key)) => Some(cairn_server::tls::server_config(certificate, key)?),
            None => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let endpoint = format!("{scheme}://{}", endpoint_host(address));
        let client_settings = cairn_auth::ClientSettings {
            region: settings.region.clone(),
            endpoint_url: endpoint.clone(),
            ca_bundle: settings
                .tls
                .as_ref()
                .map(|(certificate, _)| std::fs::canonicalize(certificate).unwrap_or(certificate.clone())),
        };
        let bootstrap = || {
            cairn_auth::load_or_bootstrap(
                &settings.data_dir,
                &settings.users,
                &settings.roles,
                &client_settings,
                settings.account_id.as_deref(),
            )
        };
        let mut boot = bootstrap()?;
        if let Some(shared) = &shared {
            // The store's identities win (another node may have made the first administrator
            // meanwhile); this node's declared users and roles are merged into them again and
            // offered back, until no other node changes them in between.
            let mut agreed = false;
            for _ in 0..5 {
                if tokio::task::block_in_place(|| shared.sync_file(cairn_auth::IDENTITIES_FILE))? {
                    boot = bootstrap()?;
                }
                if tokio::task::block_in_place(|| shared.offer_file(cairn_auth::IDENTITIES_FILE))? {
                    agreed = true;
                    break;
                }
            }
            anyhow::ensure!(
                agreed,
                "the shared identities kept changing while this node merged its declared users in"
            );
        }

        let next_tokens =
            TokenKey::load_or_create(&settings.data_dir).context("cannot load the token key")?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .context("cannot install the metrics recorder")?;
        let hooks = standard_hooks(
            Arc::clone(&clock),
            RotationSettings {
                poll_every: settings.rotation_poll,
                give_up_after: settings.rotation_give_up,
            },
            match &shared {
                // Any node takes up a watch another began, and no database reader sees the
                // callers' tokens it holds.
                Some(shared) => RotationBook::in_store(shared.clone()),
                None => RotationBook::open(&settings.data_dir)?,
            },
        );
        let mut credentials = CredentialStore::new(
            &boot.identities,
            SessionKey::load_or_create(&settings.data_dir)?,
        )
        .accepting_any_credentials(settings.accept_any_credentials);
        if let Some(account_id) = &settings.account_id {
            credentials = credentials.with_default_account(account_id.clone());
        }
        let upstreams = Arc::new(
            Upstreams::trusting(
                UpstreamRoutes {
                    default: settings.upstream.clone(),
                    by_service: settings.upstreams.clone().into_iter().collect(),
                },
                std::time::Duration::from_secs(settings.upstream_timeout_secs),
                &UpstreamTrust {
                    extra_ca_file: settings.upstream_ca_file.clone(),
                },
            )
            .context("cannot set up the upstream client")?,
        );
        let embedded_s3 = match settings.embedded_s3 {
            true => Some(Arc::new(
                cairn_s3::BucketStore::open(&settings.data_dir)
                    .context("cannot open the embedded S3")?,
            )),
            false => None,
        };
        let signed = cairn_delivery::SignedClient {
            upstreams: upstreams.clone(),
            credentials: cairn_delivery::S3Credentials {
                access_key_id: settings.delivery_credentials.0.clone(),
                secret_access_key: settings.delivery_credentials.1.expose().to_owned(),
                region: settings.region.clone(),
            },
            clock: clock.clone(),
        };
        let trail_objects: Arc<dyn cairn_delivery::ObjectStore> =
            match (&embedded_s3, upstreams.for_service(Some("s3"), "s3")) {
                (Some(buckets), _) => Arc::new(cairn_delivery::EmbeddedObjects {
                    buckets: buckets.clone(),
                    clock: clock.clone(),
                }),
                (None, Some(endpoint)) => Arc::new(cairn_delivery::S3Endpoint {
                    endpoint: endpoint.clone(),
                    client: signed.clone(),
                }),
                (None, None) => anyhow::bail!("S3 is neither embedded nor served by an upstream"),
            };
        let notifier = cairn_delivery::notify::Notifier { client: signed };
        let mut digest_keys = cairn_integrity::DigestKeys::open(
            &settings.data_dir,
            i64::try_from(settings.digest_key_rotation.as_millis()).unwrap_or(i64::MAX),
        )
        .context("cannot open the digest signing keys")?;
        if let Some(shared) = &shared {
            let shared = shared.clone();
            digest_keys = digest_keys.with_new_key_hook(Arc::new(move || {
                shared.sync_digest_keys().map(|_| ()).map_err(|error| error.to_string())
            }));
        }
        let digest_keys = Arc::new(digest_keys);
        if let Some(shared) = &shared {
            tokio::spawn(share_digest_keys(shared.clone(), digest_keys.clone()));
        }
        // Several nodes may share the store: one delivers (trails, digests, the transparency
        // log's rounds) at a time, under a lease.
        let delivery_lease = shared.as_ref().map(|_| {
            let node = format!("node-{}", uuid::Uuid::new_v4().simple());
            tracing::info!(%node, "delivering only while holding the delivery lease");
            Arc::new(cairn_delivery::lease::Lease::new(
                store.clone(),
                clock.clone(),
                "delivery",
                &node,
            ))
        });
        let transparency = match settings.checkpoint_interval {
            // Opening may commit the first (empty) checkpoint, which waits on the store.
            Some(_) => Some(Arc::new(
                tokio::task::block_in_place(|| {
                    open_transparency_log(&settings.data_dir, &store, shared.as_deref(), delivery_lease.as_ref())
                })
                .context("cannot open the transparency log")?,
            )),
            None => None,
        };
        let state = AppState {
            store,
            credentials: Arc::new(credentials),
            clock,
            ids: Arc::new(TimeOrderedIds),
            next_tokens: Arc::new(next_tokens),
            settings: Arc::new(ServerSettings {
                default_region: settings.region.clone(),
                retention: cairn_server::Retention::new(retention_days),
                trusted_proxies: settings.trusted_proxies.clone(),
            }),
            upstreams,
            hooks: Arc::new(hooks),
            refusals: Arc::default(),
            body_budget: Arc::default(),
            embedded_s3,
            trails: Arc::new(
                cairn_server::TrailSupport::new(trail_objects.clone(), Some(notifier.clone()))
                    .with_digest_keys(digest_keys.clone()),
            ),
            metrics: Some(metrics),
            transparency: transparency.clone(),
        };
        if let (Some(log), Some(cadence)) = (transparency, settings.checkpoint_interval) {
            tokio::spawn(log.run(cadence, Some(trail_objects.clone())));
        }
        tracing::info!(
            embedded_s3 = settings.embedded_s3,
            delivery_interval_secs = settings.delivery_interval.as_secs(),
            "serving"
        );
        tokio::spawn(cairn_server::run_retention_sweeper(state.clone()));
        let deliverer = cairn_delivery::Deliverer::new(
            state.store.clone(),
            trail_objects,
            state.clock.clone(),
            cairn_delivery::DeliverySettings {
                interval: settings.delivery_interval,
                abort_after_first_upload: std::env::var_os("CAIRN_TEST_ABORT_AFTER_FIRST_UPLOAD")
                    .is_some(),
                digest_interval: settings.digest_interval,
                owed_notices_per_trail: settings.owed_notices_per_trail,
                ..cairn_delivery::DeliverySettings::default()
            },
        )
        .with_notifier(notifier)
        .with_digest_keys(digest_keys);
        let deliverer = match delivery_lease {
            Some(lease) => {
                tokio::spawn(lease.clone().keep());
                deliverer.with_lease(lease)
            }
            None => deliverer,
        };
        tokio::spawn(Arc::new(deliverer).run());
        if let Some(shared) = &shared {
            tokio::spawn(share_identities(shared.clone(), state.credentials.clone()));
        }
        cairn_server::start_background_work(&state);
        let data_dir =
            std::fs::canonicalize(&settings.data_dir).unwrap_or(settings.data_dir.clone());
        println!(
            "cairn listening on {endpoint} (data directory {})",
            data_dir.display()
        );
        if boot.created_admin {
            println!(
                "created an administrator access key in {}",
                boot.credentials_file.display()
            );
        }
        if settings.accept_any_credentials {
            println!(
                "WARNING: accept_any_credentials is on: access keys Cairn does not know are let in \
                 WITHOUT A SIGNATURE CHECK (recorded as unverified, in account {}). For development only.",
                state.credentials.default_account_id()
            );
            tracing::warn!("accept_any_credentials is on: unknown access keys are not verified");
        }
        println!("to use it with the aws CLI or boto3:");
        println!(
            "  export AWS_SHARED_CREDENTIALS_FILE={}",
            std::fs::canonicalize(&boot.credentials_file)
                .unwrap_or(boot.credentials_file)
                .display()
        );
        println!(
            "  export AWS_CONFIG_FILE={}",
            std::fs::canonicalize(&boot.config_file)
                .unwrap_or(boot.config_file)
                .display()
        );
        match tls {
            Some(config) => cairn_server::tls::serve(listener, state, config, shutdown_signal()).await?,
            None => cairn_server::serve(listener, state, shutdown_signal()).await?,
        }
        Ok(())
    })
}

/// Keeps this node's digest signing keys and the store's the same, every second, so that any
/// node lists (and, holding the lease, signs with) every key.
async fn share_digest_keys(shared: Arc<SharedSecrets>, keys: Arc<cairn_integrity::DigestKeys>) {
    let mut ticks = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        ticks.tick().await;
        let synced = {
            let shared = shared.clone();
            tokio::task::spawn_blocking(move || shared.sync_digest_keys()).await
        };
        match synced {
            Ok(Ok(true)) => keys.forget_loaded(),
            Ok(Ok(false)) => {}
            Ok(Err(error)) => tracing::warn!(%error, "digest signing keys not shared; retried"),
            Err(error) => tracing::error!(%error, "sharing digest signing keys failed"),
        }
    }
}

/// The transparency log: one node's own, or, on a shared store, the store's, signed with
/// the key every node shares (the first node to offer one sets it) and appended only under
/// the delivery lease.
fn open_transparency_log(
    data_dir: &std::path::Path,
    store: &Arc<dyn cairn_store::EventStore>,
    shared: Option<&SharedSecrets>,
    lease: Option<&Arc<cairn_delivery::lease::Lease>>,
) -> anyhow::Result<cairn_delivery::transparency::TransparencyLog> {
    use cairn_delivery::transparency::TransparencyLog;
    let (Some(shared), Some(lease)) = (shared, lease) else {
        return Ok(TransparencyLog::open(data_dir, store.clone())?);
    };
    let signer = cairn_integrity::note::SIGNER_FILE;
    // The store's key if it has one; else this node's (made now), offered; if another node
    // offered its own first, that one. All before anything is signed.
    shared.sync_file(signer)?;
    cairn_integrity::note::NoteSigner::open(data_dir)?;
    shared.sync_file(signer)?;
    Ok(TransparencyLog::open_shared(
        data_dir,
        store.clone(),
        lease.clone(),
    )?)
}

/// On a shared store: the identities as the store holds them, taken up by this running
/// node when another node brings in users or roles its configuration declares.
async fn share_identities(shared: Arc<SharedSecrets>, credentials: Arc<CredentialStore>) {
    let mut ticks = tokio::time::interval(std::time::Duration::from_secs(2));
    loop {
        ticks.tick().await;
        let synced = {
            let shared = shared.clone();
            tokio::task::spawn_blocking(
                move || -> anyhow::Result<Option<cairn_auth::Identities>> {
                    if !shared.sync_file(cairn_auth::IDENTITIES_FILE)? {
                        return Ok(None);
                    }
                    let text = std::fs::read(shared.path_of(cairn_auth::IDENTITIES_FILE))?;
                    Ok(Some(serde_json::from_slice(&text)?))
                },
            )
            .await
        };
        match synced {
            Ok(Ok(Some(identities))) => {
                credentials.replace_identities(&identities);
                tracing::info!("took up the shared identities another node changed");
            }
            Ok(Ok(None)) => {}
            Ok(Err(error)) => tracing::warn!(%error, "shared identities not read; retried"),
            Err(error) => tracing::error!(%error, "reading the shared identities failed"),
        }
    }
}

/// The host clients should use: a wildcard listen address is reached over loopback.
fn endpoint_host(address: SocketAddr) -> String {
    match address {
        SocketAddr::V4(v4) if v4.ip().is_unspecified() => format!("127.0.0.1:{}", v4.port()),
        SocketAddr::V6(v6) if v6.ip().is_unspecified() => format!("[::1]:{}", v6.port()),
        other => other.to_string(),
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutting down");
}
