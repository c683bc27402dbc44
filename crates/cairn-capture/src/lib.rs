//! cairn-capture owns how Cairn sees the calls it audits. So far: recognising which AWS
//! service and operation any request is, for every protocol botocore models (JSON 1.0/1.1 by
//! `X-Amz-Target`, query and ec2 by `Action`, rest-json and rest-xml by method and URI
//! template, Smithy RPC v2 CBOR by path), from a routing table generated from botocore's own
//! service models (`tools/generate_routing_table.py`, output committed in `data/`).
//!
//! The gateway that forwards calls to an upstream and the per-service recording rules will
//! live here too (issue 3). This crate knows nothing of storage or of SigV4.

pub mod routing;

pub use routing::{Call, Protocol, Recognized, RoutingTable, ServiceModel};
