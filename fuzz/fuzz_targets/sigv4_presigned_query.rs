//! Any query string (SigV4 `X-Amz-*` or SigV2 `AWSAccessKeyId` presigned forms) and any path
//! are refused or verified, never a panic.
#![no_main]

use chrono::TimeZone;
use http::{HeaderMap, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (path, query) = text.split_once('?').unwrap_or(("/", text));
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("bucket.s3.example.com"));
    let request = cairn_wire::sigv4::SignedRequest {
        method: &Method::GET,
        raw_path: path,
        raw_query: query,
        headers: &headers,
        body: b"",
    };
    let now = chrono::Utc.timestamp_opt(1_440_938_160, 0).unwrap();
    if let Ok(claim) = cairn_wire::sigv4::parse_claim(&request) {
        let _ = claim.declared_payload(&headers);
        let _ = cairn_wire::sigv4::canonical_request(&request, &claim);
    }
    let _ = cairn_wire::sigv4::verify(&request, now, |_| Some("secret"));
    let _ = cairn_wire::form::decode_pairs(query);
});
