//! The edge: every request passes here. It bounds the body, verifies SigV4, routes by the
//! signing service, and makes sure the call is recorded before it is answered.

use std::net::{IpAddr, SocketAddr};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::response::Response;
use bytes::BytesMut;
use cairn_auth::{CredentialError, SessionError};
use cairn_capture::{Protocol, RoutingTable};
use cairn_wire::cloudtrail::{self, Operation};
use cairn_wire::sigv4::{
    self, DeclaredPayload, InvalidDeclaredPayload, PayloadCheck, SignedRequest, VerifiedSignature,
};
use cairn_wire::AwsError;
use chrono::{TimeZone, Utc};
use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;

use crate::lookup::lookup_events;
use crate::recorder::{Call, Caller};
use crate::{AppState, MAX_REQUEST_BODY_BYTES};

const CLOUDTRAIL_SERVICE: &str = "cloudtrail";
const STS_SERVICE: &str = "sts";

/// The protocol of the service a request was signed for, so that even a refusal is shaped as
/// that service's clients expect.
fn protocol_of_signing_name(signing_name: &str) -> Option<Protocol> {
    match signing_name {
        CLOUDTRAIL_SERVICE => Some(Protocol::Json),
        STS_SERVICE => Some(Protocol::Query),
        other => RoutingTable::builtin()
            .services()
            .iter()
            .find(|service| service.signing_name == other)
            .map(|service| service.protocol),
    }
}

fn is_query_shaped(protocol: Option<Protocol>) -> bool {
    matches!(
        protocol,
        Some(Protocol::Query | Protocol::Ec2 | Protocol::RestXml)
    )
}

pub async fn handle(State(state): State<AppState>, request: Request) -> Response {
    let request_id = state.ids.new_id();
    let (parts, body) = request.into_parts();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([127, 0, 0, 1]), |ConnectInfo(peer)| peer.ip());
    let source_ip_address = crate::client_address::source_ip_address(
        peer,
        &parts.headers,
        &state.settings.trusted_proxies,
    )
    .to_string();
    let target = header(&parts.headers, "x-amz-target").map(str::to_owned);
    let mut call = Call {
        event_source: cloudtrail::EVENT_SOURCE.to_owned(),
        event_name: cloudtrail::claimed_operation_name(target.as_deref())
            .unwrap_or_else(|| "Unknown".to_owned()),
        region: state.settings.default_region.clone(),
        caller: Caller::Unverified {
            access_key_id: None,
        },
        source_ip_address,
        user_agent: header(&parts.headers, "user-agent").map(str::to_owned),
        request_parameters: None,
        response_elements: None,
        error: None,
        read_only: false,
        request_id: request_id.clone(),
        api_version: None,
        event_category: "Management",
        resources: Vec::new(),
        event_type: "AwsApiCall",
        additional_event_data: None,
        service_event_details: None,
    };

    let raw_query = parts.uri.query().unwrap_or("").to_owned();
    let claim = sigv4::parse_claim(&SignedRequest {
        method: &parts.method,
        raw_path: parts.uri.path(),
        raw_query: &raw_query,
        headers: &parts.headers,
        body: b"",
    })
    .ok();
    // Only a gateway call whose signature covers a declared payload can be verified before
    // its body is read, and so streamed.
    let may_stream = claim
        .as_ref()
        .is_some_and(|claim| claim.service != CLOUDTRAIL_SERVICE && claim.service != STS_SERVICE);
    let declared = sigv4::declared_payload(&parts.headers);
    let read = read_bounded(&parts.headers, body, declared, may_stream).await;
    let read = match read {
        Ok(read) => read,
        Err(error) => {
            // Unread bodies cannot be verified; note what the request claimed.
            if let Some(claim) = &claim {
                note_claim(
                    &mut call,
                    &claim.service,
                    &claim.region,
                    Some(claim.access_key_id.clone()),
                );
            }
            return finish(&state, call, Err(error)).await;
        }
    };
    let body = read.recordable().clone();
    let signed = SignedRequest {
        method: &parts.method,
        raw_path: parts.uri.path(),
        raw_query: &raw_query,
        headers: &parts.headers,
        body: &body,
    };
    let now_millis = state.clock.now_millis();
    let now = Utc
        .timestamp_millis_opt(now_millis)
        .single()
        .unwrap_or_else(Utc::now);
    let session_token = claim.as_ref().and_then(|claim| claim.session_token.clone());
    let mut authenticated = None;
    let mut credential_error = None;
    let verified = sigv4::verify(&signed, now, |access_key_id| {
        match state
            .credentials
            .authenticate(access_key_id, session_token.as_deref(), now_millis)
        {
            Ok((principal, secret)) => {
                authenticated = Some(principal);
                Some(secret.expose().to_owned())
            }
            Err(error) => {
                credential_error = Some(error);
                None
            }
        }
    });
    let verified = match (verified, authenticated) {
        (Ok(verified), Some(principal)) => {
            call.caller = Caller::Verified(principal);
            verified
        }
        (outcome, _) => {
            if let Some(claim) = &claim {
                let presented = outcome
                    .as_ref()
                    .err()
                    .and_then(|error| error.access_key_id())
                    .map(str::to_owned);
                note_claim(&mut call, &claim.service, &claim.region, presented);
            }
            let error = match (&outcome, credential_error) {
                (_, Some(CredentialError::Session(session))) => {
                    AwsError::invalid_session_token(session == SessionError::Expired)
                }
                (Err(error), _) => {
                    tracing::info!(reason = %error, "refused an unauthenticated request");
                    AwsError::from_signature_error(error)
                }
                (Ok(_), _) => AwsError::internal_failure(),
            };
            // Only refusals need the protocol: served calls find theirs by routing.
            let protocol = claim
                .as_ref()
                .and_then(|claim| protocol_of_signing_name(&claim.service));
            let error = if is_query_shaped(protocol) {
                error.for_query_protocol()
            } else {
                error
            };
            return crate::gateway::fail(&state, call, protocol, error).await;
        }
    };
    call.region = verified.region.clone();
    call.event_source = format!("{}.amazonaws.com", verified.service);
    if verified.service != STS_SERVICE && verified.service != CLOUDTRAIL_SERVICE {
        return crate::gateway::proxy(&state, call, &parts, read, &verified).await;
    }
    // The signature covers a declared payload hash, if any, not the body: check the body.
    if let ReadBody::Whole { body, declared } = read {
        if let Err(error) = check_declared_payload(declared, &verified, &parts.headers, &body) {
            let protocol = protocol_of_signing_name(&verified.service);
            return crate::gateway::fail(&state, call, protocol, error).await;
        }
    }
    if verified.service == STS_SERVICE {
        return crate::sts::serve(&state, call, &parts, &body).await;
    }
    let outcome = serve_cloudtrail(&state, &mut call, target.as_deref(), &body).await;
    finish(&state, call, outcome).await
}

async fn serve_cloudtrail(
    state: &AppState,
    call: &mut Call,
    target: Option<&str>,
    body: &[u8],
) -> Result<Vec<u8>, AwsError> {
    call.api_version = Some(cloudtrail::API_VERSION);
    let operation = cloudtrail::parse_target(target)?;
    call.event_name = operation.name().to_owned();
    call.read_only = operation.is_read_only();
    let members = cloudtrail::parse_json_body(body)?;
    match operation {
        Operation::LookupEvents => {
            let (outcome, parameters) = lookup_events(state, &members).await;
            call.request_parameters = parameters;
            outcome
        }
        Operation::NotYetServed(name) => Err(AwsError::new(
            "UnsupportedOperationException",
            format!("Cairn does not serve {name} yet."),
        )),
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
    let checked = PayloadCheck::for_declared(declared, verified.chunk_signing.as_ref(), headers)
        .and_then(|check| match check {
            Some(mut check) => check.update(body).and_then(|()| check.finish()),
            None => Ok(()),
        });
    checked.map_err(|error| AwsError::from_payload_error(&error))?;
    Ok(declared)
}

fn note_claim(call: &mut Call, service: &str, region: &str, access_key_id: Option<String>) {
    if let Some(service) = cairn_wire::recordable_name(service) {
        call.event_source = format!("{service}.amazonaws.com");
    }
    if let Some(region) = cairn_wire::recordable_name(region) {
        call.region = region.to_owned();
    }
    call.caller = Caller::Unverified { access_key_id };
}

/// Records the call, then answers it. A call whose event cannot be stored is answered with
/// InternalFailure instead of its result.
async fn finish(state: &AppState, mut call: Call, outcome: Result<Vec<u8>, AwsError>) -> Response {
    let request_id = call.request_id.clone();
    if let Err(error) = &outcome {
        call.error = Some(error.clone());
    }
    if let Err(error) = state.record(call).await {
        return respond(&request_id, Err(error));
    }
    respond(&request_id, outcome)
}

fn respond(request_id: &str, outcome: Result<Vec<u8>, AwsError>) -> Response {
    let (status, body) = match outcome {
        Ok(body) => (StatusCode::OK, body),
        Err(error) => (error.status, error.json_body()),
    };
    Response::builder()
        .status(status)
        .header("x-amzn-RequestId", request_id)
        .header(http::header::CONTENT_TYPE, cloudtrail::JSON_CONTENT_TYPE)
        .body(Body::from(body))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

/// A request body as far as the edge reads it before verifying the signature, with what its
/// signed `x-amz-content-sha256` declares about it.
pub(crate) enum ReadBody {
    /// Not yet checked against the declaration: see [`check_declared_payload`].
    Whole {
        body: Bytes,
        declared: Result<DeclaredPayload, InvalidDeclaredPayload>,
    },
    /// Over [`MAX_REQUEST_BODY_BYTES`] with a declared payload, so it may stream: what was
    /// read, and the rest still unread.
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

fn too_large() -> AwsError {
    AwsError::new(
        "RequestEntityTooLargeException",
        format!("The request body must not be larger than {MAX_REQUEST_BODY_BYTES} bytes."),
    )
    .with_status(StatusCode::PAYLOAD_TOO_LARGE)
}

/// Reads the body whole if it fits in [`MAX_REQUEST_BODY_BYTES`]. Past that it stops
/// reading: the body streams if it `may_stream` and declares a payload, else it is refused.
async fn read_bounded(
    headers: &HeaderMap,
    mut body: Body,
    declared: Result<DeclaredPayload, InvalidDeclaredPayload>,
    may_stream: bool,
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
        None => Err(too_large()),
    };
    let length = header(headers, "content-length").and_then(|length| length.parse::<u64>().ok());
    if length.is_some_and(|length| length > MAX_REQUEST_BODY_BYTES as u64) {
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
        if read.len() > MAX_REQUEST_BODY_BYTES {
            return oversized(read.freeze(), body);
        }
    }
    Ok(ReadBody::Whole {
        body: read.freeze(),
        declared,
    })
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}
