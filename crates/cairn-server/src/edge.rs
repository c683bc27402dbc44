//! The edge: every AWS request passes here. It bounds the body, verifies SigV4, and routes
//! by the signing service: CloudTrail's API and STS are served by Cairn, everything else
//! goes through the gateway. Whatever happens, the call is recorded before it is answered.
//!
//! Dependencies point down: edge → cloudtrail_api | sts | gateway → respond, recorder, body.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::response::Response;
use cairn_auth::{CredentialError, SessionError};
use cairn_capture::RoutingTable;
use cairn_wire::cloudtrail;
use cairn_wire::sigv4::{self, SignatureError, SignedRequest, VerifiedSignature};
use cairn_wire::{AwsError, Protocol};
use chrono::{TimeZone, Utc};
use http::{HeaderMap, StatusCode};

use crate::body::{check_declared_payload, read_bounded, ReadBody};
use crate::recorder::{Call, Caller};
use crate::respond::fail;
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
    protocol.is_some_and(Protocol::speaks_xml)
}

pub async fn handle(State(state): State<AppState>, request: Request) -> Response {
    let arrived_millis = state.clock.now_millis();
    let request_id = state.ids.new_id();
    let (parts, body) = request.into_parts();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([127, 0, 0, 1]), |ConnectInfo(peer)| peer.ip());
    let source_ip = crate::client_address::source_ip_address(
        peer,
        &parts.headers,
        &state.settings.trusted_proxies,
    );
    let source_ip_address = source_ip.to_string();
    let target = header(&parts.headers, "x-amz-target").map(str::to_owned);
    let tls = parts
        .extensions
        .get::<crate::tls::ConnectionTls>()
        .cloned()
        .map(|tls| {
            (
                tls,
                header(&parts.headers, "host")
                    .unwrap_or_default()
                    .to_owned(),
            )
        });
    let mut call = Call {
        arrived_millis,
        tls,
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
        event_id: None,
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
    let declared = match &claim {
        Some(claim) => claim.declared_payload(&parts.headers),
        None => sigv4::declared_payload(&parts.headers),
    };
    // Cairn's own APIs take small bodies; a gateway call may carry what its service takes.
    let limit = match &claim {
        Some(claim) if may_stream => cairn_capture::services::request_body_limit(&claim.service),
        _ => MAX_REQUEST_BODY_BYTES,
    };
    // More than a MiB is read only for a key that could verify, and only within the budget
    // all requests share: reading comes before verifying, so it must not be free.
    let limit = match &claim {
        Some(claim) if limit > MAX_REQUEST_BODY_BYTES => {
            let may_verify = state
                .credentials
                .authenticate(
                    &claim.access_key_id,
                    claim.session_token.as_deref(),
                    arrived_millis,
                )
                .is_ok()
                || (claim.session_token.is_none()
                    && state.credentials.unverified(&claim.access_key_id).is_some());
            if may_verify {
                limit
            } else {
                MAX_REQUEST_BODY_BYTES
            }
        }
        _ => limit,
    };
    let declared_length = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|length| length.to_str().ok()?.parse::<usize>().ok());
    let _held_body = if limit > MAX_REQUEST_BODY_BYTES {
        let wanted = declared_length.unwrap_or(limit).min(limit);
        match state
            .body_budget
            .reserve(wanted.saturating_sub(MAX_REQUEST_BODY_BYTES))
        {
            Some(permit) => Some(permit),
            None => {
                tracing::warn!(
                    wanted,
                    "the buffered body budget is spent; asked the client to retry"
                );
                let protocol = claim
                    .as_ref()
                    .and_then(|claim| protocol_of_signing_name(&claim.service));
                let error = AwsError::new(
                    "ServiceUnavailable",
                    "Too many large requests are being read at once; retry.",
                )
                .with_status(StatusCode::SERVICE_UNAVAILABLE);
                return crate::respond::error_response(protocol, &error, &request_id);
            }
        }
    } else {
        None
    };
    let read = read_bounded(&parts.headers, body, declared, may_stream, limit).await;
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
            let protocol = claim
                .as_ref()
                .and_then(|claim| protocol_of_signing_name(&claim.service));
            return fail(&state, call, protocol, error).await;
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
    // Development mode: a key Cairn does not know is let in unchecked, and its records say so.
    // Only a key Cairn has never heard of, sent without a session token: a known key or a
    // Cairn-issued session that fails to open must never be let in by this path.
    let unchecked = match (&verified, &claim, &credential_error) {
        (
            Err(SignatureError::UnknownAccessKey { access_key_id }),
            Some(claim),
            Some(CredentialError::UnknownAccessKey),
        ) if session_token.is_none() => state
            .credentials
            .unverified(access_key_id)
            .and_then(|principal| Some((principal, sigv4::accept_unchecked(claim).ok()?))),
        _ => None,
    };
    let verified = match (verified, authenticated, unchecked) {
        (Ok(verified), Some(principal), _) => {
            call.caller = Caller::Verified(principal);
            verified
        }
        (_, _, Some((principal, unchecked))) => {
            tracing::debug!(access_key_id = %principal.access_key_id, "let an unknown key in unchecked");
            call.caller = Caller::Verified(principal);
            unchecked
        }
        (Err(SignatureError::Missing), _, None) if claim.is_none() => {
            // AWS serves a few operations unsigned (Cognito's sign-in, STS's federation):
            // they are forwarded and recorded with the caller their input names.
            if let Some((signing_name, caller)) =
                crate::gateway::unsigned_operation(&state.upstreams, &parts, &body)
            {
                call.caller = Caller::Anonymous(caller);
                let unsigned =
                    VerifiedSignature::unsigned(&signing_name, &state.settings.default_region, now);
                call.event_source = format!("{signing_name}.amazonaws.com");
                return crate::gateway::proxy(&state, call, &parts, read, &unsigned).await;
            }
            if !state.refusals.allow(source_ip) {
                return throttled(None, &call.request_id);
            }
            tracing::info!("refused an unsigned request");
            let protocol = None;
            let error = AwsError::from_signature_error(&SignatureError::Missing);
            return fail(&state, call, protocol, error).await;
        }
        (outcome, _, None) => {
            if let Some(claim) = &claim {
                let presented = outcome
                    .as_ref()
                    .err()
                    .and_then(|error| error.access_key_id())
                    .map(str::to_owned);
                note_claim(&mut call, &claim.service, &claim.region, presented);
                if claim.service != CLOUDTRAIL_SERVICE && claim.service != STS_SERVICE {
                    crate::gateway::name_refused_call(&mut call, &parts, &body, &claim.service);
                }
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
            if !state.refusals.allow(source_ip) {
                return throttled(protocol, &call.request_id);
            }
            let error = if is_query_shaped(protocol) {
                error.for_query_protocol()
            } else {
                error
            };
            return fail(&state, call, protocol, error).await;
        }
    };
    call.region = verified.region.clone();
    call.event_source = format!("{}.amazonaws.com", verified.service);
    // Every service but S3 signs the normalised path; the path served, recorded and
    // forwarded must be the one that was signed, so `/a/../b` and `//` are refused.
    if !sigv4::is_path_as_signed(parts.uri.path(), &verified.service) {
        let protocol = protocol_of_signing_name(&verified.service);
        let error = AwsError::new(
            "InvalidRequest",
            "The request path must not contain empty, '.' or '..' segments.",
        );
        return fail(&state, call, protocol, error).await;
    }
    if verified.service != STS_SERVICE && verified.service != CLOUDTRAIL_SERVICE {
        return crate::gateway::proxy(&state, call, &parts, read, &verified).await;
    }
    // The signature covers a declared payload hash, if any, not the body: check the body.
    if let ReadBody::Whole { body, declared } = read {
        if let Err(error) = check_declared_payload(declared, &verified, &parts.headers, &body) {
            let protocol = protocol_of_signing_name(&verified.service);
            return fail(&state, call, protocol, error).await;
        }
    }
    if verified.service == STS_SERVICE {
        return crate::sts::serve(&state, call, &parts, &body).await;
    }
    crate::cloudtrail_api::serve(&state, call, target.as_deref(), &body).await
}

/// A refusal past the source's rate: answered, and counted, but not recorded.
fn throttled(protocol: Option<Protocol>, request_id: &str) -> Response {
    let error = AwsError::new(
        "ThrottlingException",
        "Too many unauthenticated requests from this address; slow down.",
    );
    let error = if is_query_shaped(protocol) {
        AwsError {
            code: "Throttling".to_owned(),
            ..error
        }
    } else {
        error
    };
    crate::respond::error_response(protocol, &error, request_id)
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

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}
