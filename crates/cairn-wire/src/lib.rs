//! cairn-wire owns the AWS wire formats Cairn speaks: SigV4 verification, the AWS JSON 1.1
//! protocol (`X-Amz-Target` routing, `__type` errors, epoch-second timestamps), and the
//! CloudTrail operations' request and response shapes. Raw bytes come in; typed requests go
//! out to the domain, and typed results come back to be written as AWS writes them.
//!
//! It never touches storage, and it is the only crate that knows the wire spelling of
//! anything (`__type`, `EventTime` as a number, `ReadOnly` as a string).

pub mod chunked;
pub mod cloudtrail;
pub mod cloudtrail_model;
pub mod cloudtrail_shapes;
pub mod error;
pub mod form;
pub mod protocol;
pub mod s3_addressing;
mod signing;
mod sigv2;
pub mod sigv4;
pub mod sts;
pub mod xml;

pub use error::{AwsError, ErrorDocument};
pub use protocol::Protocol;

/// Whether text taken from a request that may not be authentic (an operation name, a
/// service or region from a credential scope) is safe to put in a record as a name: short,
/// and only letters, digits and `-`. Anything else is recorded as unknown, so junk and
/// injection attempts never reach the history.
pub fn recordable_name(text: &str) -> Option<&str> {
    let plausible = !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-');
    plausible.then_some(text)
}
