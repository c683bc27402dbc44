//! cairn-capture owns how Cairn sees the calls it audits, as pure rules: bytes and typed
//! values in, record fields out, nothing that opens a connection or touches storage.
//!
//! - Recognising which AWS service and operation any request is, for every protocol botocore
//!   models (`routing`, from a table generated from botocore's own service models by
//!   `tools/generate_routing_table.py`, output committed in `data/`).
//! - Turning input and output into `requestParameters` and `responseElements`
//!   (`parameters`, `naming`, `xml_answers`, with the model's map, number and timestamp
//!   shapes from `map_shapes`), secrets taken out by the general rules and each service's.
//! - Reading an upstream's error and request ID in every protocol's shape (`outcome`).
//! - Everything particular to one service, one module each (`services`): its names, data
//!   events, redactions, resources, service events, and hooks for what depends on the
//!   upstream's state.
//!
//! The gateway in cairn-server drives these and records the result; the transport is
//! cairn-upstream's. This crate depends on neither, nor on SigV4 or storage.

pub mod map_shapes;
pub mod naming;
pub mod outcome;
pub mod parameters;
pub mod routing;
pub mod sensitive;
pub mod services;
pub mod xml_answers;

pub use cairn_wire::s3_addressing::{s3_path_style_path, s3_virtual_host_bucket};
pub use routing::{Call, Protocol, Recognized, RoutingTable, ServiceModel};
