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
mod client_address;
mod edge;
mod gateway;
mod key_schemas;
mod lookup;
mod next_token;
mod recorder;
mod retention;
mod rotation_book;
mod secret_deletions;
mod secret_rotation;
mod sts;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use cairn_auth::CredentialStore;
use cairn_capture::{GatewayClient, Upstreams};
use cairn_model::{Clock, IdGen};
use cairn_store::EventStore;

pub use client_address::TrustedProxy;
pub use key_schemas::KeySchemaCache;
pub use next_token::TokenKey;
pub use retention::run_retention_sweeper;
pub use rotation_book::RotationBook;
pub use secret_deletions::run_secret_deletion_scheduler;
pub use secret_rotation::{resume_rotation_watches, RotationWatches};

/// What can go wrong in the server outside a request (a request's failures are AWS errors).
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("rotation watch book {path}: {reason}")]
    RotationBook { path: PathBuf, reason: String },
}

/// Bodies up to this are read whole (and recorded); larger ones are refused, or streamed
/// when their signature covers a declared payload hash (S3 uploads).
pub const MAX_REQUEST_BODY_BYTES: usize = 1 << 20;
/// The largest body Cairn streams through: S3's limit for one PutObject or UploadPart.
pub const MAX_STREAMED_BODY_BYTES: u64 = 5 << 30;

#[derive(Clone, Debug)]
pub struct ServerSettings {
    /// Region for events whose request named none (unsigned or malformed requests).
    pub default_region: String,
    /// 0 keeps events forever.
    pub retention_days: u32,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<TrustedProxy>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            default_region: "us-east-1".to_owned(),
            retention_days: 90,
            trusted_proxies: Vec::new(),
        }
    }
}

/// Everything a request handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn EventStore>,
    pub credentials: Arc<CredentialStore>,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGen>,
    pub token_key: Arc<TokenKey>,
    pub settings: Arc<ServerSettings>,
    /// Where calls for services Cairn does not serve go.
    pub upstreams: Arc<Upstreams>,
    pub gateway: Arc<GatewayClient>,
    /// What the gateway knows of DynamoDB tables' keys.
    pub key_schemas: Arc<KeySchemaCache>,
    /// Rotations the upstream finishes after answering, watched to their end.
    pub rotation_watches: Arc<RotationWatches>,
}

/// The one router: every path and method goes through the edge.
pub fn router(state: AppState) -> axum::Router {
    axum::Router::new().fallback(edge::handle).with_state(state)
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
