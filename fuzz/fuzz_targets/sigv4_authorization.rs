//! Any `Authorization` header (and any `X-Amz-Date`, `x-amz-content-sha256`) is refused or
//! verified, never a panic.
#![no_main]

use chrono::TimeZone;
use http::{HeaderMap, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |byte| *byte == b'\n');
    let (authorization, date, declared) = (parts.next(), parts.next(), parts.next());
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("example.amazonaws.com"));
    for (name, value) in [
        ("authorization", authorization),
        ("x-amz-date", date),
        ("x-amz-content-sha256", declared),
    ] {
        if let Some(Ok(value)) = value.map(HeaderValue::from_bytes) {
            headers.insert(name, value);
        }
    }
    let request = cairn_wire::sigv4::SignedRequest {
        method: &Method::POST,
        raw_path: "/",
        raw_query: "",
        headers: &headers,
        body: data,
    };
    let now = chrono::Utc.timestamp_opt(1_440_938_160, 0).unwrap();
    let _ = cairn_wire::sigv4::verify(&request, now, |_| Some("secret"));
    let _ = cairn_wire::sigv4::declared_payload(&headers);
});
