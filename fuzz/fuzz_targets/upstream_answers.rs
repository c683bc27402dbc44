//! Any upstream answer (JSON, query XML, ec2 XML, an error document) becomes
//! `responseElements`, an error code or nothing, never a panic.
#![no_main]

use cairn_capture::outcome::{upstream_error, upstream_request_id};
use cairn_capture::parameters::response_elements;
use cairn_capture::Protocol;
use http::{HeaderMap, StatusCode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for (protocol, service_id, operation) in [
        (Protocol::Json, "secretsmanager", "CreateSecret"),
        (Protocol::Query, "iam", "CreateAccessKey"),
        (Protocol::Ec2, "ec2", "RunInstances"),
        (Protocol::RestXml, "s3", "PutObject"),
    ] {
        let _ = response_elements(Some(protocol), service_id, operation, data);
        let _ = upstream_error(Some(protocol), StatusCode::BAD_REQUEST, &HeaderMap::new(), data);
    }
    let _ = upstream_request_id(&HeaderMap::new(), data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = cairn_wire::xml::Element::parse(text);
    }
});
