//! Any body under any declared payload (a SHA-256, unsigned aws-chunked with trailers), fed
//! in any split, is accepted or refused, never a panic or an unbounded buffer.
#![no_main]

use cairn_wire::chunked::ChunkFraming;
use cairn_wire::sigv4::{DeclaredPayload, PayloadCheck};
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, body)) = data.split_first() else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-amz-decoded-content-length",
        HeaderValue::from(body.len() as u64 / 2),
    );
    for declared in [
        DeclaredPayload::Chunked(ChunkFraming::UnsignedWithTrailer),
        DeclaredPayload::Sha256([0u8; 32]),
    ] {
        let Ok(Some(mut check)) = PayloadCheck::for_declared(declared, None, &headers) else {
            continue;
        };
        let at = (split as usize).min(body.len());
        let fed = check.update(&body[..at]).and_then(|()| check.update(&body[at..]));
        if fed.is_ok() {
            let _ = check.finish();
        }
    }
});
