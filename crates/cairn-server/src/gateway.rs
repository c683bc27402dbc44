//! Calls for services Cairn does not serve itself: recognised, forwarded to their upstream,
//! recorded as CloudTrail would record them, then answered with the upstream's answer.

use axum::body::Body;
use axum::response::Response;
use cairn_capture::dynamodb_items::tables_needing_key_schema;
use cairn_capture::map_shapes::{End, MapShapes};
use cairn_capture::outcome::{upstream_error, upstream_request_id};
use cairn_capture::parameters::{
    dynamodb_input, dynamodb_request_parameters, event_category, is_read_only, lower_camel_shaped,
    request_parameters, response_elements,
};
use cairn_capture::service_rules::{self, CapturedCall, RotationSeen, Transfer};
use cairn_capture::{
    s3_path_style_path, s3_virtual_host_bucket, GatewayError, OutgoingBody, Protocol, RoutingTable,
    StreamFailure,
};
use cairn_wire::sigv4::{decode_pairs, PayloadCheck, VerifiedSignature};
use cairn_wire::AwsError;
use http::request::Parts;
use http::StatusCode;

use serde_json::{json, Value};

use crate::asking::Asker;
use crate::edge::{check_declared_payload, ReadBody};
use crate::recorder::{Call, Caller};
use crate::{key_schemas, secret_rotation, AppState, MAX_STREAMED_BODY_BYTES};

pub async fn proxy(
    state: &AppState,
    mut call: Call,
    parts: &Parts,
    read: ReadBody,
    verified: &VerifiedSignature,
) -> Response {
    let signing_name = verified.service.as_str();
    let body = read.recordable().clone();
    let query = decode_pairs(parts.uri.query().unwrap_or(""));
    // Query and ec2 calls carry their parameters in a form-encoded body.
    let is_form = header(parts, "content-type")
        .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
    let form = if is_form {
        decode_pairs(std::str::from_utf8(&body).unwrap_or(""))
    } else {
        Vec::new()
    };
    let target = header(parts, "x-amz-target");
    // A virtual-hosted S3 request names its bucket in Host: it is routed and recorded as the
    // path-style request it is equivalent to, and forwarded as it came.
    let virtual_bucket = (signing_name == "s3")
        .then(|| header(parts, "host").and_then(s3_virtual_host_bucket))
        .flatten();
    let routed_path: std::borrow::Cow<'_, str> = match virtual_bucket {
        Some(bucket) => s3_path_style_path(bucket, parts.uri.path()).into(),
        None => parts.uri.path().into(),
    };
    let recognized = RoutingTable::builtin().recognize(&cairn_capture::Call {
        signing_name: Some(signing_name),
        method: parts.method.as_str(),
        raw_path: &routed_path,
        query: &query,
        target,
        form: &form,
        headers: Some(&parts.headers),
    });
    let protocol = recognized.map(|found| found.service.protocol);
    let service_id = recognized
        .map_or(signing_name, |found| found.service.id.as_str())
        .to_owned();
    // The API's name for the call, which every rule below is written in; the record may
    // carry another (`event_names`).
    let operation = match recognized {
        Some(found) => found.operation.to_owned(),
        None => claimed_name(target, &form, &query).unwrap_or_else(|| "Unknown".to_owned()),
    };
    if let Some(found) = recognized {
        call.event_source = found.service.event_source();
        call.event_name = found.service.event_name(&operation).to_owned();
        call.api_version = None;
    } else {
        call.event_source = format!("{signing_name}.amazonaws.com");
        call.event_name = operation.clone();
    }
    call.read_only = is_read_only(&operation);
    call.event_category = event_category(&service_id, &operation);
    let path_labels = recognized.map_or_else(Vec::new, |found| found.path_labels(&routed_path));
    call.request_parameters = request_parameters(
        protocol,
        &service_id,
        &operation,
        &body,
        &form,
        &query,
        &path_labels,
    );

    // The signature covers the declared payload hash, not the body: a body read whole is
    // checked here, a streamed one on its way upstream.
    let outgoing = match read {
        ReadBody::Whole { body, declared } => {
            match check_declared_payload(declared, verified, &parts.headers, &body) {
                Ok(_) => OutgoingBody::whole(body),
                Err(error) => return fail(state, call, protocol, error).await,
            }
        }
        ReadBody::Oversized {
            prefix,
            rest,
            declared,
        } => {
            let check = match PayloadCheck::for_declared(
                declared,
                verified.chunk_signing.as_ref(),
                &parts.headers,
            ) {
                Ok(check) => check,
                Err(error) => {
                    let error = AwsError::from_payload_error(&error);
                    return fail(state, call, protocol, error).await;
                }
            };
            let idle = state.gateway.timeout();
            OutgoingBody::streamed(prefix, rest, check, MAX_STREAMED_BODY_BYTES, idle)
        }
    };

    let Some(upstream) = state.upstreams.for_service(
        recognized.map(|found| found.service.id.as_str()),
        signing_name,
    ) else {
        let error = GatewayError::NoUpstream(service_id.clone());
        return fail(
            state,
            call,
            protocol,
            AwsError::new("ServiceUnavailable", error.to_string())
                .with_status(StatusCode::SERVICE_UNAVAILABLE),
        )
        .await;
    };
    // A secret version made by hand abandons a pending rotation, and a RotateSecret that
    // fails may leave one begun: both are the upstream's state, asked before the call
    // changes it.
    let rotation_watch = match (&call.caller, service_id.as_str()) {
        (Caller::Verified(_), "secretsmanager") => {
            secret_rotation::RotationWatch::of(&operation, &body)
        }
        _ => None,
    };
    // Which of a DynamoDB item's attributes are its key decides which values its record may
    // show; without a verified caller to ask as, none are shown.
    let key_schema_scope = match (&call.caller, service_id.as_str()) {
        (Caller::Verified(principal), "dynamodb") => Some(key_schemas::scope(
            &principal.account_id,
            &call.region,
            upstream,
        )),
        _ => None,
    };
    let asker = if rotation_watch.is_some() || key_schema_scope.is_some() {
        Asker::for_call(state, upstream, parts, &call.region)
    } else {
        None
    };
    let before_rotation = match (&rotation_watch, &asker) {
        (Some(watch), Some(asker)) => secret_rotation::before(asker, watch).await,
        _ => None,
    };
    if let (Some(scope), Some(asker)) = (&key_schema_scope, &asker) {
        if let Some(input) = dynamodb_input(&operation, &body) {
            let tables = tables_needing_key_schema(&operation, &input);
            if !tables.is_empty() {
                let known = state.key_schemas.resolve(asker, scope, &tables).await;
                call.request_parameters = dynamodb_request_parameters(input, &known);
            }
        }
    }
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |value| value.as_str());
    let reply = match state
        .gateway
        .forward(
            upstream,
            &parts.method,
            path_and_query,
            &parts.headers,
            outgoing,
        )
        .await
    {
        Ok(reply) => reply,
        Err(error) => {
            tracing::warn!(%error, service = %service_id, "upstream call failed");
            return fail(state, call, protocol, gateway_error(&error)).await;
        }
    };
    let recorded = reply.body.recorded();
    if let Some(request_id) = upstream_request_id(&reply.headers, recorded) {
        call.request_id = request_id;
    }
    let failure = upstream_error(protocol, reply.status, &reply.headers, recorded);
    let succeeded = failure.is_none();
    match failure {
        Some((code, message)) => {
            let code = match recognized {
                Some(found) => found.service.error_code(&code, reply.status.as_u16()),
                None => code,
            };
            call.error = Some(AwsError::new(&code, message).with_status(reply.status))
        }
        // A streamed answer is content (an object, a download), never response elements.
        None if reply.body.is_whole() => {
            call.response_elements = response_elements(protocol, &service_id, &operation, recorded)
        }
        None => {}
    }
    let rotation = match (&rotation_watch, &asker) {
        (Some(watch), Some(asker)) => {
            secret_rotation::seen(asker, watch, before_rotation.as_ref(), succeeded).await
        }
        _ => RotationSeen::Nothing,
    };
    if let (Some(scope), true) = (&key_schema_scope, succeeded) {
        let now = state.clock.now_millis();
        state
            .key_schemas
            .learn_from_answer(scope, &operation, recorded, now);
    }
    let still_running = match &rotation {
        RotationSeen::StartedStillPending {
            secret_arn,
            version_id,
        } => Some((secret_arn.clone(), version_id.clone())),
        _ => None,
    };
    let seen = SeenCall {
        host: header(parts, "host").map(str::to_owned),
        transfer: Transfer {
            presigned: query.iter().any(|(key, _)| key == "X-Amz-Signature"),
            bytes_in: declared_length(&parts.headers).unwrap_or(body.len() as u64),
            bytes_out: declared_length(&reply.headers).unwrap_or(recorded.len() as u64),
        },
        rotation,
    };
    let service_events = apply_service_rules(
        &mut call,
        &service_id,
        &operation,
        protocol,
        succeeded,
        recorded,
        seen,
    );
    let rotation_started = service_events
        .iter()
        .any(|event| event.event_name == service_rules::ROTATION_STARTED);
    let request_id = call.request_id.clone();
    if let Err(error) = state.record(call).await {
        return error_response(protocol, &error, &request_id);
    }
    for event in service_events {
        if let Err(error) = state.record(event).await {
            return error_response(protocol, &error, &request_id);
        }
    }
    if let (Some((secret_arn, version_id)), Some(asker), true) =
        (still_running, asker, rotation_started)
    {
        secret_rotation::watch_rotation(asker, secret_arn, version_id).await;
    }
    reply.into_response().map(Body::new)
}

/// What the client is told when the call did not get an answer from its upstream.
fn gateway_error(error: &GatewayError) -> AwsError {
    let unavailable =
        |status| AwsError::new("ServiceUnavailable", error.to_string()).with_status(status);
    match error {
        GatewayError::Timeout(_) => unavailable(StatusCode::GATEWAY_TIMEOUT),
        GatewayError::RequestBody(StreamFailure::Payload(error)) => {
            AwsError::from_payload_error(error)
        }
        GatewayError::RequestBody(StreamFailure::TooLarge { .. }) => AwsError::new(
            "EntityTooLarge",
            "Your proposed upload exceeds the maximum allowed size.",
        ),
        GatewayError::RequestBody(StreamFailure::Stalled { .. }) => AwsError::new(
            "RequestTimeout",
            "Your socket connection to the server was not read from or written to within the timeout period.",
        ),
        GatewayError::RequestBody(StreamFailure::Client(_)) => AwsError::new(
            "IncompleteBody",
            "The request body ended before the number of bytes its Content-Length promised.",
        ),
        _ => unavailable(StatusCode::BAD_GATEWAY),
    }
}

/// What the gateway saw of a call beyond its parameters, for the rules that log it.
struct SeenCall {
    host: Option<String>,
    transfer: Transfer,
    rotation: RotationSeen,
}

fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Runs the service's own record rules over the call and returns the service events the
/// call causes, ready to record after it.
fn apply_service_rules(
    call: &mut Call,
    service_id: &str,
    operation: &str,
    protocol: Option<Protocol>,
    succeeded: bool,
    body: &[u8],
    seen: SeenCall,
) -> Vec<Call> {
    let Caller::Verified(principal) = &call.caller else {
        return Vec::new();
    };
    let upstream_response = match protocol {
        Some(Protocol::Json | Protocol::RestJson) if succeeded => {
            let shape = MapShapes::builtin().of(service_id, operation, End::Output);
            let response = serde_json::from_slice::<Value>(body).ok();
            response.map(|response| lower_camel_shaped(response, shape))
        }
        _ => None,
    };
    let mut captured = CapturedCall {
        service_id: service_id.to_owned(),
        operation: operation.to_owned(),
        region: call.region.clone(),
        account_id: principal.account_id.clone(),
        request_parameters: call.request_parameters.take(),
        response_elements: call.response_elements.take(),
        upstream_response,
        succeeded,
        read_only: call.read_only,
        host: seen.host,
        transfer: Some(seen.transfer),
        rotation: seen.rotation,
        ..CapturedCall::default()
    };
    service_rules::apply(&mut captured);
    call.additional_event_data = captured.additional_event_data.take();
    call.request_parameters = captured.request_parameters;
    call.response_elements = captured.response_elements;
    call.read_only = captured.read_only;
    call.resources = std::mem::take(&mut captured.resources);
    let deletion_date = captured
        .upstream_response
        .as_ref()
        .and_then(|response| response.get("deletionDate"))
        .and_then(Value::as_f64);
    captured
        .service_events
        .into_iter()
        .map(|event| {
            let details = (event.event_name == service_rules::START_SECRET_VERSION_DELETE)
                .then_some(deletion_date)
                .flatten()
                .map(|seconds| {
                    json!({ "deletionDate": cairn_model::format_event_time((seconds * 1000.0) as i64) })
                });
            crate::recorder::service_event(
                event.event_source,
                event.event_name,
                &event.resource_arn,
                &captured.account_id,
                &call.region,
                details,
            )
        })
        .collect()
}

pub(crate) async fn fail(
    state: &AppState,
    mut call: Call,
    protocol: Option<Protocol>,
    error: AwsError,
) -> Response {
    call.error = Some(error.clone());
    let request_id = call.request_id.clone();
    if let Err(record_error) = state.record(call).await {
        return error_response(protocol, &record_error, &request_id);
    }
    error_response(protocol, &error, &request_id)
}

/// An error Cairn itself raises for a proxied call, in that service's protocol's shape.
pub(crate) fn error_response(
    protocol: Option<Protocol>,
    error: &AwsError,
    request_id: &str,
) -> Response {
    let escape = |text: &str| {
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let (content_type, body) = match protocol {
        Some(Protocol::Query) => (
            "text/xml",
            format!(
                "<ErrorResponse><Error><Type>{}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
                if error.status.is_server_error() { "Receiver" } else { "Sender" },
                escape(&error.code), escape(&error.message), escape(request_id)
            ),
        ),
        Some(Protocol::Ec2) => (
            "text/xml",
            format!(
                "<Response><Errors><Error><Code>{}</Code><Message>{}</Message></Error></Errors><RequestID>{}</RequestID></Response>",
                escape(&error.code), escape(&error.message), escape(request_id)
            ),
        ),
        Some(Protocol::RestXml) => (
            "application/xml",
            format!(
                "<Error><Code>{}</Code><Message>{}</Message><RequestId>{}</RequestId></Error>",
                escape(&error.code), escape(&error.message), escape(request_id)
            ),
        ),
        _ => ("application/x-amz-json-1.1", String::from_utf8_lossy(&error.json_body()).into_owned()),
    };
    Response::builder()
        .status(error.status)
        .header("x-amzn-RequestId", request_id)
        .header("x-amzn-ErrorType", error.code.as_str())
        .header(http::header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

fn claimed_name(
    target: Option<&str>,
    form: &[(String, String)],
    query: &[(String, String)],
) -> Option<String> {
    let name = match target {
        Some(target) => target.rsplit('.').next()?,
        None => form
            .iter()
            .chain(query)
            .find(|(key, _)| key == "Action")
            .map(|(_, value)| value.as_str())?,
    };
    cairn_wire::recordable_name(name).map(str::to_owned)
}

fn header<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get(name)
        .and_then(|value| value.to_str().ok())
}
