//! cairn-delivery owns what trails write: the selection of each trail's events from the
//! store's feed (`selection`), log files in AWS's exact layout (`log_file`), the places they
//! go (`objects`: the embedded S3 or any S3-compatible endpoint), the exactly-once loop
//! that ties them (`deliverer`), the SNS and CloudWatch Logs notices they owe (`notices`,
//! an outbox), the digest files that follow them (`digests`), and the
//! transparency log, a Merkle tree over the whole feed with signed checkpoints
//! (`transparency`). It depends on the store trait and the model, never on the server: the
//! trail API writes trails as state, delivery reads them.

pub mod deliverer;
pub mod digests;
pub mod lease;
pub mod log_file;
pub mod notices;
pub mod notify;
pub mod objects;
pub mod selection;
pub mod signed;
pub mod transparency;

pub use deliverer::{Deliverer, DeliverySettings, RoundReport};
pub use notices::DEFAULT_OWED_NOTICES_PER_TRAIL;
pub use objects::{EmbeddedObjects, ObjectPut, ObjectStore, S3Endpoint};
pub use signed::{S3Credentials, SignedClient};

/// The state namespace of trails, keyed by ARN (written by the trail API).
pub const TRAILS: &str = "trails";
/// Delivery's status of each trail, keyed by ARN: what GetTrailStatus reports.
pub const TRAIL_STATUS: &str = "trail-status";
/// Each trail's delivery position and pending stretch, keyed by ARN.
pub const TRAIL_DELIVERY: &str = "trail-delivery";
/// Each trail's digest chains, keyed by ARN.
pub const TRAIL_DIGESTS: &str = "trail-digest";
/// Notices (SNS, CloudWatch Logs) owed for delivered files, keyed by ARN and feed position.
pub const TRAIL_NOTICES: &str = "trail-notices";
/// Delivered log files waiting for their digest, keyed by ARN, feed position and part.
pub const DIGEST_FILES: &str = "trail-digest-files";

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("store: {0}")]
    Store(#[from] cairn_store::StoreError),
    #[error("{0}")]
    Objects(String),
    #[error("transparency log: {0}")]
    Transparency(String),
    #[error("transparency log: {0}")]
    Io(#[from] std::io::Error),
}
