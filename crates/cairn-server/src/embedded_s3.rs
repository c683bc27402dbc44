//! S3 calls answered by Cairn's embedded S3 (cairn-s3) instead of an upstream: the gateway
//! verifies, names and records them as it does every S3 call, and this stands where the
//! upstream would, turning the verified request into `cairn_s3::serve`'s input and its
//! answer into an upstream reply.

use std::sync::Arc;

use cairn_s3::{BucketStore, S3Request};
use cairn_upstream::{GatewayError, OutgoingBody, ReplyBody, StreamFailure, UpstreamReply};
use http::{HeaderMap, HeaderValue};

/// Framing around a chunked upload's payload: a chunk header per 64 KiB at most, trailers.
const CHUNK_FRAMING_ALLOWANCE: usize = 1 << 20;

/// Who asks, and for what, as the gateway recognised it.
pub(crate) struct EmbeddedCall<'a> {
    pub operation: &'a str,
    pub path_labels: &'a [(String, String)],
    pub query: &'a [(String, String)],
    pub headers: &'a HeaderMap,
    pub account_id: &'a str,
    pub region: &'a str,
    pub now_millis: i64,
    pub request_id: &'a str,
}

fn is_aws_chunked(headers: &HeaderMap) -> bool {
    let header = |name| headers.get(name).and_then(|value| value.to_str().ok());
    header("content-encoding").is_some_and(|value| value.contains("aws-chunked"))
        || header("x-amz-content-sha256").is_some_and(|value| value.starts_with("STREAMING-"))
}

pub(crate) async fn answer(
    buckets: Arc<BucketStore>,
    call: EmbeddedCall<'_>,
    body: OutgoingBody,
) -> Result<UpstreamReply, GatewayError> {
    let body = body
        .collect(cairn_s3::store::MAX_PUT_BYTES + CHUNK_FRAMING_ALLOWANCE)
        .await?;
    let payload = if is_aws_chunked(call.headers) {
        cairn_wire::chunked::decode(&body)
            .map_err(|error| GatewayError::RequestBody(StreamFailure::Client(error.to_string())))?
    } else {
        body.to_vec()
    };
    let label = |name: &str| {
        call.path_labels
            .iter()
            .find(|(label, _)| label == name)
            .map(|(_, value)| value.clone())
    };
    let (bucket, key) = (label("Bucket"), label("Key"));
    let owned = OwnedCall {
        operation: call.operation.to_owned(),
        query: call.query.to_vec(),
        headers: call.headers.clone(),
        account_id: call.account_id.to_owned(),
        region: call.region.to_owned(),
        now_millis: call.now_millis,
        request_id: call.request_id.to_owned(),
    };
    let answer = tokio::task::spawn_blocking(move || {
        cairn_s3::serve(
            &buckets,
            &S3Request {
                operation: &owned.operation,
                bucket: bucket.as_deref(),
                key: key.as_deref(),
                query: &owned.query,
                headers: &owned.headers,
                body: &payload,
                account_id: &owned.account_id,
                region: &owned.region,
                now_millis: owned.now_millis,
                request_id: &owned.request_id,
            },
        )
    })
    .await
    .map_err(|error| GatewayError::BadResponse(format!("the embedded S3 failed: {error}")))?;
    let mut headers = answer.headers;
    if let Ok(request_id) = HeaderValue::from_str(call.request_id) {
        headers.insert("x-amz-request-id", request_id);
    }
    Ok(UpstreamReply {
        status: answer.status,
        headers,
        body: ReplyBody::Whole(answer.body),
    })
}

struct OwnedCall {
    operation: String,
    query: Vec<(String, String)>,
    headers: HeaderMap,
    account_id: String,
    region: String,
    now_millis: i64,
    request_id: String,
}
