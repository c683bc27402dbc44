//! cairn-wire owns the AWS wire formats Cairn speaks: SigV4 verification, the AWS JSON 1.1
//! protocol (`X-Amz-Target` routing, `__type` errors, epoch-second timestamps), and the
//! CloudTrail operations' request and response shapes. Raw bytes come in; typed requests go
//! out to the domain, and typed results come back to be written as AWS writes them.
//!
//! It never touches storage, and it is the only crate that knows the wire spelling of
//! anything (`__type`, `EventTime` as a number, `ReadOnly` as a string).

pub mod cloudtrail;
pub mod error;
pub mod sigv4;

pub use error::AwsError;
