//! cairn-capture owns how Cairn sees the calls it audits. So far: recognising which AWS
//! service and operation any request is, for every protocol botocore models (JSON 1.0/1.1 by
//! `X-Amz-Target`, query and ec2 by `Action`, rest-json and rest-xml by method and URI
//! template, Smithy RPC v2 CBOR by path), from a routing table generated from botocore's own
//! service models (`tools/generate_routing_table.py`, output committed in `data/`).
//!
//! It also owns the pieces of the gateway that are not HTTP serving: forwarding a call to its
//! upstream (`upstream`), streaming bodies too large to hold through Cairn while checking them
//! against their signed SHA-256 (`streaming`), reading the upstream's error and request ID in every protocol's
//! shape (`outcome`), and turning input and output into `requestParameters` and
//! `responseElements` with secrets removed through one redaction table (`parameters`), and
//! what particular services add to their records: resource ARNs, KMS's quiet cryptographic
//! calls, Secrets Manager's service events (`service_rules`), DynamoDB's rule that no attribute
//! value but a key's is logged (`dynamodb_items`), the names CloudTrail records calls
//! under where they are not the API's (`event_names`), and query services' XML answers as
//! `responseElements` (`xml_answers`). The
//! edge in cairn-server drives them and records the result. This crate knows nothing of
//! storage or of SigV4.

pub mod dynamodb_items;
pub mod event_names;
pub mod map_shapes;
pub mod outcome;
pub mod parameters;
pub mod routing;
pub mod service_rules;
pub mod streaming;
pub mod upstream;
pub mod xml_answers;

pub use routing::{
    s3_path_style_path, s3_virtual_host_bucket, Call, Protocol, Recognized, RoutingTable,
    ServiceModel,
};
pub use streaming::{OutgoingBody, StreamFailure};
pub use upstream::{GatewayClient, GatewayError, ReplyBody, UpstreamReply, Upstreams};
