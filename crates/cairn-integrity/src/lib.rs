//! cairn-integrity owns what proves a trail's files were not changed: digest files in
//! CloudTrail's exact format (`digest_file`), the per-region RSA keys that sign them and that
//! `ListPublicKeys` publishes (`keys`), and the validator that walks a digest chain as
//! `aws cloudtrail validate-logs` does (`validation`). It knows neither the store nor HTTP:
//! delivery hands it what to seal, and the validator reads through the `BucketReader` its
//! caller supplies.

pub mod digest_file;
pub mod keys;
pub mod merkle;
pub mod note;
pub mod validation;

pub use digest_file::{
    digest_time, seal, ChainLink, DigestFile, DigestFileName, LogFileEntry, SealedDigest,
};
pub use keys::{fingerprint, DigestKeys, SigningKey};

#[derive(Debug, thiserror::Error)]
pub enum IntegrityError {
    #[error("signing key: {0}")]
    Key(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
