//! Cairn's embedded S3: buckets in the data directory, served by the S3 REST API on Cairn's
//! own port, so that the default install has somewhere real to deliver trail log files.
//! `store` keeps buckets and objects; `api` answers S3's operations over it. Modules depend
//! one way: `api → store`. Knows no signature, no record and no server: the gateway verifies
//! and records a call before and after `api::serve` answers it.

pub mod api;
pub mod store;

pub use api::{serve, S3Answer, S3Request};
pub use store::{Bucket, BucketError, BucketStore, ListQuery, NewObject, MAX_LIST_KEYS};
