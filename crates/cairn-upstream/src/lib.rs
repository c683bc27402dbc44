//! cairn-upstream owns the transport of the gateway: the HTTP client that forwards a call to
//! the AWS-compatible service behind Cairn (`upstream`: per-service upstreams, a timeout,
//! hop-by-hop headers, answers read whole up to a bound and streamed past it), and bodies too
//! large to hold, streamed through while they are checked against their signed SHA-256 or
//! aws-chunked signatures (`streaming`).
//!
//! It knows nothing of records, services' rules or storage: bytes go out, bytes come back.

pub mod streaming;
pub mod upstream;

pub use streaming::{OutgoingBody, StreamFailure};
pub use upstream::{
    GatewayClient, GatewayError, ReplyBody, UpstreamReply, UpstreamRoutes, UpstreamTrust, Upstreams,
};
