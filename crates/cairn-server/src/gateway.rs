//! Calls for services Cairn does not serve itself: recognised, forwarded to their upstream,
//! recorded as CloudTrail would record them, then answered with the upstream's answer.

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use cairn_capture::outcome::{upstream_error, upstream_request_id};
use cairn_capture::parameters::{
    event_category, is_read_only, request_parameters, response_elements,
};
use cairn_capture::{GatewayError, Protocol, RoutingTable};
use cairn_wire::sigv4::decode_pairs;
use cairn_wire::AwsError;
use http::request::Parts;
use http::StatusCode;

use crate::recorder::Call;
use crate::AppState;

pub async fn proxy(
    state: &AppState,
    mut call: Call,
    parts: &Parts,
    body: Bytes,
    signing_name: &str,
) -> Response {
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
    let recognized = RoutingTable::builtin().recognize(&cairn_capture::Call {
        signing_name: Some(signing_name),
        method: parts.method.as_str(),
        raw_path: parts.uri.path(),
        query: &query,
        target,
        form: &form,
    });
    let protocol = recognized.map(|found| found.service.protocol);
    let service_id = recognized
        .map_or(signing_name, |found| found.service.id.as_str())
        .to_owned();
    if let Some(found) = recognized {
        call.event_source = found.service.event_source();
        call.event_name = found.operation.to_owned();
        call.api_version = None;
    } else {
        call.event_source = format!("{signing_name}.amazonaws.com");
        call.event_name =
            claimed_name(target, &form, &query).unwrap_or_else(|| "Unknown".to_owned());
    }
    call.read_only = is_read_only(&call.event_name);
    call.event_category = event_category(&service_id, &call.event_name);
    call.request_parameters = request_parameters(protocol, &service_id, &body, &form, &query);

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
            body,
        )
        .await
    {
        Ok(reply) => reply,
        Err(error) => {
            tracing::warn!(%error, service = %service_id, "upstream call failed");
            let status = if matches!(error, GatewayError::Timeout(_)) {
                StatusCode::GATEWAY_TIMEOUT
            } else {
                StatusCode::BAD_GATEWAY
            };
            return fail(
                state,
                call,
                protocol,
                AwsError::new("ServiceUnavailable", error.to_string()).with_status(status),
            )
            .await;
        }
    };
    if let Some(request_id) = upstream_request_id(&reply.headers, &reply.body) {
        call.request_id = request_id;
    }
    match upstream_error(protocol, reply.status, &reply.headers, &reply.body) {
        Some((code, message)) => {
            call.error = Some(AwsError::new(&code, message).with_status(reply.status))
        }
        None => {
            call.response_elements =
                response_elements(protocol, &service_id, &call.event_name, &reply.body)
        }
    }
    if let Err(error) = state.record(call).await {
        return error_response(protocol, &error, "");
    }
    let mut response = Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        if name != http::header::CONTENT_LENGTH {
            response = response.header(name, value);
        }
    }
    response
        .body(Body::from(reply.body))
        .unwrap_or_else(|_| Response::new(Body::empty()))
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
