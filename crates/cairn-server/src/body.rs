//! A request body as the edge reads it: whole up to a bound, or the start of a body that
//! streams because its signature covers a declared payload; and the check of a body read
//! whole against what its signed `x-amz-content-sha256` declares; and the budget of bytes
//! all requests together may hold in memory past the first MiB each.

use axum::body::{Body, Bytes};
use bytes::BytesMut;
use cairn_wire::sigv4::{DeclaredPayload, InvalidDeclaredPayload, VerifiedSignature};
use cairn_wire::AwsError;
use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How many bytes of request bodies beyond [`crate::MAX_REQUEST_BODY_BYTES`] each may be held
/// at once across all requests. A body must be read whole before its signature can be
/// checked, so without this a few hundred connections could make Cairn hold gigabytes.
pub const BUFFERED_BODY_BUDGET_BYTES: usize = 512 << 20;

/// The shared budget of [`BUFFERED_BODY_BUDGET_BYTES`], counted in KiB.
pub struct BodyBudget {
    kib: std::sync::Arc<Semaphore>,
}

impl Default for BodyBudget {
    fn default() -> Self {
        Self {
            kib: std::sync::Arc::new(Semaphore::new(BUFFERED_BODY_BUDGET_BYTES >> 10)),
        }
    }
}

impl BodyBudget {
    /// Room for a body of up to `bytes`, held until the permit is dropped; `None` when the
    /// budget is spent (the caller answers 503 and the client retries).
    pub(crate) fn reserve(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        let kib = u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX);
        self.kib.clone().try_acquire_many_owned(kib).ok()
    }
}

/// A request body as far as the edge reads it before verifying the signature, with what its
/// signed `x-amz-content-sha256` declares about it.
pub(crate) enum ReadBody {
    /// Not yet checked against the declaration: see [`check_declared_payload`].
    Whole {
        body: Bytes,
        declared: Result<DeclaredPayload, InvalidDeclaredPayload>,
    },
    /// Over the limit with a declared payload, so it may stream: what was read, and the
    /// rest still unread.
    Oversized {
        prefix: Bytes,
        rest: Body,
        declared: DeclaredPayload,
    },
}

impl ReadBody {
    /// The bytes the record may describe: a streamed body is content, not parameters.
    pub(crate) fn recordable(&self) -> &Bytes {
        static NOTHING: Bytes = Bytes::new();
        match self {
            Self::Whole { body, .. } => body,
            Self::Oversized { .. } => &NOTHING,
        }
    }
}

/// A body read whole against the `x-amz-content-sha256` its signature covers; signed
/// aws-chunked bodies against the verified request's `chunk_signing`.
pub(crate) fn check_declared_payload(
    declared: Result<DeclaredPayload, InvalidDeclaredPayload>,
    verified: &VerifiedSignature,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<DeclaredPayload, AwsError> {
    let declared = declared.map_err(|invalid| AwsError::invalid_declared_payload(&invalid))?;
    let checked = verified
        .payload_check(declared, headers)
        .and_then(|check| match check {
            Some(mut check) => check.update(body).and_then(|()| check.finish()),
            None => Ok(()),
        });
    checked.map_err(|error| AwsError::from_payload_error(&error))?;
    Ok(declared)
}

fn too_large(limit: usize) -> AwsError {
    AwsError::new(
        "RequestEntityTooLargeException",
        format!("The request body must not be larger than {limit} bytes."),
    )
    .with_status(StatusCode::PAYLOAD_TOO_LARGE)
}

/// Reads the body whole if it fits in `limit`. Past that it stops reading: the body
/// streams if it `may_stream` and declares a payload, else it is refused.
pub(crate) async fn read_bounded(
    headers: &HeaderMap,
    mut body: Body,
    declared: Result<DeclaredPayload, InvalidDeclaredPayload>,
    may_stream: bool,
    limit: usize,
) -> Result<ReadBody, AwsError> {
    let stream_as = match declared {
        Ok(DeclaredPayload::Absent) | Err(_) => None,
        Ok(declared) => may_stream.then_some(declared),
    };
    let oversized = |prefix: Bytes, rest: Body| match stream_as {
        Some(declared) => Ok(ReadBody::Oversized {
            prefix,
            rest,
            declared,
        }),
        None => Err(too_large(limit)),
    };
    let length = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|length| length.to_str().ok())
        .and_then(|length| length.parse::<u64>().ok());
    if length.is_some_and(|length| length > limit as u64) {
        return oversized(Bytes::new(), body);
    }
    let mut read = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| {
            AwsError::serialization(format!("The request body could not be read: {error}"))
        })?;
        if let Ok(chunk) = frame.into_data() {
            read.extend_from_slice(&chunk);
        }
        if read.len() > limit {
            return oversized(read.freeze(), body);
        }
    }
    Ok(ReadBody::Whole {
        body: read.freeze(),
        declared,
    })
}
