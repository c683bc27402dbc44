//! cairn-server owns Cairn's HTTP face: the edge every request passes (size bound, SigV4,
//! routing by signing service), the CloudTrail operations Cairn serves, and the recording of
//! each call Cairn serves as a CloudTrail event of its own, refused and failed calls
//! included. A call's event is durable before the call is answered; if it cannot be
//! recorded the call fails (an audit trail fails closed).
//!
//! STS (`sts.rs`) is served here too: Cairn issues the temporary credentials it verifies.
//! Calls for every other service go through the gateway (`gateway.rs`) to their configured
//! upstream, using cairn-capture to recognise, forward and describe them.
//!
//! It depends on cairn-wire for every wire spelling and on the [`EventStore`] trait, never
//! on a particular backend.

mod asking;
mod body;
mod client_address;
mod cloudtrail_api;
mod edge;
mod embedded_s3;
mod federation;
mod gateway;
mod host;
mod lookup;
mod next_token;
mod recorder;
mod refusals;
mod respond;
mod retention;
mod sts;
pub mod tls;
mod trails;
mod transparency;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use cairn_auth::CredentialStore;
use cairn_capture::services::hooks::ServiceHooksSet;
use cairn_model::{Clock, IdGen};
use cairn_store::EventStore;
use cairn_upstream::Upstreams;

pub use body::BodyBudget;
pub use client_address::TrustedProxy;
pub use metrics_exporter_prometheus::PrometheusHandle;
pub use next_token::{TokenKey, TOKEN_KEY_FILE};
pub use refusals::RefusalLimiter;
pub use retention::{run_retention_sweeper, Retention};

/// What can go wrong in the server outside a request (a request's failures are AWS errors).
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("TLS: {0}")]
    Tls(String),
}

/// Bodies of calls to Cairn's own APIs (CloudTrail, STS) up to this are read whole; larger
/// ones are refused. A gateway call's limit is its service's (`services::request_body_limit`),
/// and past it a body streams when its signature covers a declared payload hash (S3).
pub const MAX_REQUEST_BODY_BYTES: usize = 1 << 20;
/// The largest body Cairn streams through: S3's limit for one PutObject or UploadPart.
pub const MAX_STREAMED_BODY_BYTES: u64 = 5 << 30;

#[derive(Clone, Debug)]
pub struct ServerSettings {
    /// Region for events whose request named none (unsigned or malformed requests).
    pub default_region: String,
    /// The data directory's retention (0 keeps events forever), followed as it changes.
    pub retention: Retention,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<TrustedProxy>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            default_region: "us-east-1".to_owned(),
            retention: Retention::new(90),
            trusted_proxies: Vec::new(),
        }
    }
}

/// Everything a request handler needs; cheap to clone. Only general parts: what is
/// particular to a service lives with that service's hooks.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn EventStore>,
    pub credentials: Arc<CredentialStore>,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGen>,
    /// Seals LookupEvents NextTokens.
    pub next_tokens: Arc<TokenKey>,
    pub settings: Arc<ServerSettings>,
    /// Where calls for services Cairn does not serve go, and the client that takes them.
    pub upstreams: Arc<Upstreams>,
    /// The services whose records depend on the upstream's state.
    pub hooks: Arc<ServiceHooksSet>,
    /// Limits how many refusals per source address are recorded.
    pub refusals: Arc<RefusalLimiter>,
    /// The memory all requests together may hold for bodies read before verifying.
    pub body_budget: Arc<BodyBudget>,
    /// The embedded S3, when Cairn serves S3 itself (no S3 upstream, or `s3 = "embedded"`).
    pub embedded_s3: Option<Arc<cairn_s3::BucketStore>>,
    /// What the trail API checks a trail's bucket and topic against.
    pub trails: Arc<TrailSupport>,
    /// Prometheus metrics, when a recorder was installed (`/_cairn/metrics`).
    pub metrics: Option<PrometheusHandle>,
    /// The transparency log, unless it is off (`/_cairn/transparency/…`).
    pub transparency: Option<Arc<cairn_delivery::transparency::TransparencyLog>>,
}

/// Where trails deliver, as the trail API sees it.
pub struct TrailSupport {
    /// Where trail buckets live (the embedded S3, or the S3 upstream): CreateTrail checks
    /// its bucket there, and delivery writes there.
    pub objects: Arc<dyn cairn_delivery::ObjectStore>,
    /// SNS (and CloudWatch Logs) upstream calls: CreateTrail checks its topic with it.
    pub notifier: Option<cairn_delivery::notify::Notifier>,
    /// Trail calls change trails one at a time, each held until its event is committed, so
    /// two calls never decide on the same old state.
    pub writes: Arc<tokio::sync::Mutex<()>>,
    /// The keys digests are signed with, which ListPublicKeys publishes.
    pub digest_keys: Option<Arc<cairn_integrity::DigestKeys>>,
}

impl TrailSupport {
    pub fn new(
        objects: Arc<dyn cairn_delivery::ObjectStore>,
        notifier: Option<cairn_delivery::notify::Notifier>,
    ) -> Self {
        Self {
            objects,
            notifier,
            writes: Arc::default(),
            digest_keys: None,
        }
    }

    pub fn with_digest_keys(mut self, keys: Arc<cairn_integrity::DigestKeys>) -> Self {
        self.digest_keys = Some(keys);
        self
    }
}

/// Paths Cairn reserves for itself, in front of the AWS edge. No AWS API uses them (an S3
/// bucket name cannot begin with `_`), and they are never recorded: they are not AWS calls.
pub const RESERVED_PREFIX: &str = "/_cairn/";

/// The router: Cairn's own paths first, then every other path and method through the edge.
pub fn router(state: AppState) -> axum::Router {
    axum::Router::new()
        .route("/_cairn/health", get(health))
        .route("/_cairn/metrics", get(metrics))
        .route(
            "/_cairn/transparency/checkpoint",
            get(transparency::checkpoint),
        )
        .route("/_cairn/transparency/key", get(transparency::key))
        .route("/_cairn/transparency/proof", get(transparency::proof))
        .route(
            "/_cairn/transparency/consistency",
            get(transparency::consistency),
        )
        .route("/_cairn/transparency/tile/{*path}", get(transparency::tile))
        .fallback(edge::handle)
        .with_state(state)
}

/// Liveness: the server answers and its store can be read (a cheap read: counting a large
/// shared store would take seconds).
async fn health(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> (http::StatusCode, &'static str) {
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || store.last_seq()).await {
        Ok(Ok(_)) => (http::StatusCode::OK, "ok\n"),
        _ => (
            http::StatusCode::SERVICE_UNAVAILABLE,
            "the event store cannot be read\n",
        ),
    }
}

/// Prometheus's text format: calls by kind and outcome, commit latency and group sizes,
/// refusals throttled. Not recorded: it is not an AWS call.
async fn metrics(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> (http::StatusCode, String) {
    match &state.metrics {
        Some(handle) => (http::StatusCode::OK, handle.render()),
        None => (
            http::StatusCode::NOT_FOUND,
            "metrics are not collected by this server\n".to_owned(),
        ),
    }
}

/// Starts every service's background work (recovery windows, resumed rotation watches).
pub fn start_background_work(state: &AppState) {
    let host: Arc<dyn cairn_capture::services::ServiceHost> = Arc::new(host::Host(state.clone()));
    for work in state.hooks.background(host) {
        tokio::spawn(work);
    }
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // Answers are written whole; small ones must not wait for the client's ACK of the last.
    let listener = listener.tap_io(|stream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

#[cfg(test)]
mod tests;
