//! Calls for services Cairn does not serve itself: recognised, forwarded to their upstream,
//! recorded as CloudTrail would record them, then answered with the upstream's answer.
//!
//! The gateway knows no service by name: what is particular to one comes from
//! `cairn_capture::services` (names, categories, rules, and hooks for what depends on the
//! upstream's state), and the transport from cairn-upstream.

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use cairn_capture::map_shapes::{End, MapShapes};
use cairn_capture::naming::lower_camel_shaped;
use cairn_capture::outcome::{upstream_error, upstream_request_id};
use cairn_capture::parameters::{is_read_only, request_parameters, response_elements, CallInput};
use cairn_capture::services::{self, CallHook, CapturedCall, Transfer, Upstream};
use cairn_capture::{s3_path_style_path, s3_virtual_host_bucket, Recognized, RoutingTable};
use cairn_upstream::{GatewayError, OutgoingBody, StreamFailure};
use cairn_wire::form::decode_pairs;
use cairn_wire::sigv4::VerifiedSignature;
use cairn_wire::{AwsError, Protocol};
use http::request::Parts;
use http::StatusCode;
use serde_json::Value;

use crate::asking::Asker;
use crate::body::{check_declared_payload, ReadBody};
use crate::embedded_s3::{self, EmbeddedCall};
use crate::federation;
use crate::host::Host;
use crate::recorder::{service_event, AnonymousCaller, Call, Caller};
use crate::respond::{error_response, fail};
use crate::{AppState, MAX_STREAMED_BODY_BYTES};

/// moto's multi-account header: requests carrying it are served in that account.
const UPSTREAM_ACCOUNT_HEADER: &str = "x-moto-account-id";

pub async fn proxy(
    state: &AppState,
    mut call: Call,
    parts: &Parts,
    read: ReadBody,
    verified: &VerifiedSignature,
) -> Response {
    let signing_name = verified.service.as_str();
    let body = read.recordable().clone();
    let view = RequestView::of(parts, &body, signing_name);
    let RequestView {
        query,
        form,
        routed_path,
        target,
    } = &view;
    let (query, form, target) = (query.as_slice(), form.as_slice(), *target);
    let recognized = view.recognize(parts, signing_name);
    let protocol = recognized.map(|found| found.service.protocol);
    let service_id = recognized
        .map_or(signing_name, |found| found.service.id.as_str())
        .to_owned();
    // The API's name for the call, which every rule below is written in; the record may
    // carry another (`event_names`).
    let operation = match recognized {
        Some(found) => found.operation.to_owned(),
        None => claimed_name(target, form, query).unwrap_or_else(|| "Unknown".to_owned()),
    };
    if let Some(found) = recognized {
        call.event_source = services::event_source(found.service);
        call.event_name = services::event_name(&found.service.id, &operation).to_owned();
        call.api_version = None;
    } else {
        call.event_source = format!("{signing_name}.amazonaws.com");
        call.event_name = operation.clone();
    }
    call.read_only = is_read_only(&operation);
    call.event_category = services::event_category(&service_id, &operation);
    let path_labels = recognized.map_or_else(Vec::new, |found| found.path_labels(routed_path));
    let input = CallInput {
        protocol,
        service_id: &service_id,
        operation: &operation,
        body: &body,
        form,
        query,
        path_labels: &path_labels,
    };
    call.request_parameters = request_parameters(&input, None);

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
            let check = match verified.payload_check(declared, &parts.headers) {
                Ok(check) => check,
                Err(error) => {
                    let error = AwsError::from_payload_error(&error);
                    return fail(state, call, protocol, error).await;
                }
            };
            let idle = state.upstreams.client().timeout();
            OutgoingBody::streamed(prefix, rest, check, MAX_STREAMED_BODY_BYTES, idle)
        }
    };

    // S3 goes to the embedded S3 when Cairn serves it; every other call to its upstream.
    let destination = match (&state.embedded_s3, service_id.as_str()) {
        (Some(buckets), "s3") => Destination::Embedded(buckets.clone()),
        _ => match state.upstreams.for_service(
            recognized.map(|found| found.service.id.as_str()),
            signing_name,
        ) {
            Some(upstream) => Destination::Upstream(upstream),
            None => {
                // Not a passing fault: an error the SDKs do not retry (501), so one call is
                // one event.
                let error = GatewayError::NoUpstream(service_id.clone());
                return fail(
                    state,
                    call,
                    protocol,
                    AwsError::new("NotImplemented", error.to_string())
                        .with_status(StatusCode::NOT_IMPLEMENTED),
                )
                .await;
            }
        },
    };
    let account_id = match &call.caller {
        Caller::Verified(principal) => principal.account_id.clone(),
        // Nobody signed: the call acts in the account whose resources it names, which Cairn
        // cannot know; its record goes to the default account.
        Caller::Anonymous(_) => state.credentials.default_account_id().to_owned(),
        _ => return fail(state, call, protocol, AwsError::internal_failure()).await,
    };
    let signed = matches!(call.caller, Caller::Verified(_));
    let mut captured = CapturedCall {
        service_id: service_id.clone(),
        operation: operation.clone(),
        region: call.region.clone(),
        account_id,
        request_parameters: call.request_parameters.clone(),
        read_only: call.read_only,
        ..CapturedCall::default()
    };
    // A service whose records depend on the upstream's state asks it, as the caller, around
    // the call; without a signature to ask as, it asks nothing and its records claim nothing.
    let mut hooked: Option<(Box<dyn CallHook>, Arc<Asker>)> = state
        .hooks
        .for_service(&service_id)
        .filter(|_| signed)
        .and_then(|hooks| hooks.begin(&captured, &body))
        .and_then(|hook| {
            let Destination::Upstream(upstream) = &destination else {
                return None;
            };
            let asker = Asker::for_call(state, upstream, parts, &call.region)?;
            Some((hook, Arc::new(asker)))
        });
    if let Some((hook, asker)) = &mut hooked {
        hook.before(&mut captured, asker.as_ref()).await;
        // What the hook learned may let the record show more of the input (a key's value).
        if let Some(observed) = &captured.observed {
            call.request_parameters = request_parameters(&input, Some(observed.as_ref()));
        }
    }
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |value| value.as_str());
    // The upstream is told which account the caller is in where it can be told (moto's
    // multi-account header), so the ARNs it answers with name the account the record does;
    // a value the caller sent is replaced, not believed.
    let mut headers = parts.headers.clone();
    if let Ok(account) = http::HeaderValue::from_str(&captured.account_id) {
        headers.insert(UPSTREAM_ACCOUNT_HEADER, account);
    }
    let answered = match destination {
        Destination::Embedded(buckets) => {
            let call = EmbeddedCall {
                operation: &operation,
                path_labels: &path_labels,
                query,
                headers: &parts.headers,
                account_id: &captured.account_id,
                region: &call.region,
                now_millis: state.clock.now_millis(),
                request_id: &call.request_id,
            };
            embedded_s3::answer(buckets, call, outgoing).await
        }
        Destination::Upstream(upstream) => {
            state
                .upstreams
                .client()
                .forward(upstream, &parts.method, path_and_query, &headers, outgoing)
                .await
        }
    };
    let reply = match answered {
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
                Some(found) => services::error_code(found.service, &code, reply.status.as_u16()),
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
    captured.succeeded = succeeded;
    captured.read_only = call.read_only;
    captured.request_parameters = call.request_parameters.take();
    captured.response_elements = call.response_elements.take();
    captured.upstream_response = match protocol {
        Some(Protocol::Json | Protocol::RestJson) if succeeded => {
            let shape = MapShapes::builtin().of(&service_id, &operation, End::Output);
            let response = serde_json::from_slice::<Value>(recorded).ok();
            response.map(|response| lower_camel_shaped(response, shape))
        }
        _ => None,
    };
    captured.host = header(parts, "host").map(str::to_owned);
    let legacy_signature = query.iter().any(|(key, _)| key == "AWSAccessKeyId");
    captured.transfer = Some(Transfer {
        presigned: legacy_signature || query.iter().any(|(key, _)| key == "X-Amz-Signature"),
        legacy_signature,
        bytes_in: declared_length(&parts.headers).unwrap_or(body.len() as u64),
        bytes_out: declared_length(&reply.headers).unwrap_or(recorded.len() as u64),
    });
    if let Some((hook, asker)) = &mut hooked {
        hook.after(&mut captured, recorded, asker.as_ref()).await;
    }
    services::apply(&mut captured);
    call.additional_event_data = captured.additional_event_data.take();
    call.request_parameters = captured.request_parameters.take();
    call.response_elements = captured.response_elements.take();
    call.read_only = captured.read_only;
    call.resources = std::mem::take(&mut captured.resources);
    let request_id = call.request_id.clone();
    let arrived_millis = call.arrived_millis;
    let mut calls = vec![call];
    calls.extend(captured.service_events.iter().cloned().map(|event| {
        service_event(
            event,
            &captured.account_id,
            &captured.region,
            arrived_millis,
        )
    }));
    let changes = std::mem::take(&mut captured.state_changes);
    if let Err(error) = state.record_with_state(calls, changes).await {
        return error_response(protocol, &error, &request_id);
    }
    if let Some((hook, asker)) = hooked {
        let host = Arc::new(Host(state.clone()));
        hook.recorded(&captured, asker as Arc<dyn Upstream>, host)
            .await;
    }
    reply.into_response().map(Body::new)
}

/// Who answers a forwarded call.
enum Destination<'u> {
    Embedded(Arc<cairn_s3::BucketStore>),
    Upstream(&'u http::Uri),
}

/// A request as recognition reads it: its query and form pairs, its path as the path-style
/// request it is equivalent to, and its `X-Amz-Target`.
struct RequestView<'p> {
    query: Vec<(String, String)>,
    form: Vec<(String, String)>,
    routed_path: String,
    target: Option<&'p str>,
}

impl<'p> RequestView<'p> {
    fn of(parts: &'p Parts, body: &[u8], signing_name: &str) -> Self {
        let query = decode_pairs(parts.uri.query().unwrap_or(""));
        // Query and ec2 calls carry their parameters in a form-encoded body.
        let is_form = header(parts, "content-type")
            .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
        let form = if is_form {
            decode_pairs(std::str::from_utf8(body).unwrap_or(""))
        } else {
            Vec::new()
        };
        // A virtual-hosted S3 request names its bucket in Host: it is routed and recorded as
        // the path-style request it is equivalent to, and forwarded as it came.
        let virtual_bucket = (signing_name == "s3")
            .then(|| header(parts, "host").and_then(s3_virtual_host_bucket))
            .flatten();
        let routed_path = match virtual_bucket {
            Some(bucket) => s3_path_style_path(bucket, parts.uri.path()),
            None => parts.uri.path().to_owned(),
        };
        Self {
            query,
            form,
            routed_path,
            target: header(parts, "x-amz-target"),
        }
    }

    fn recognize(&self, parts: &Parts, signing_name: &str) -> Option<Recognized<'static>> {
        RoutingTable::builtin().recognize(&cairn_capture::Call {
            signing_name: Some(signing_name),
            method: parts.method.as_str(),
            raw_path: &self.routed_path,
            query: &self.query,
            target: self.target,
            form: &self.form,
            headers: Some(&parts.headers),
        })
    }
}

/// An unsigned request for an operation AWS serves without a signature: the signing name of
/// its service, and who its input says the caller is. `None` for every other request, which
/// must be signed.
///
/// Only the exact wire shape AWS's clients send is accepted — `POST /` with the action in a
/// form body, or a JSON `X-Amz-Target` — because an upstream that multiplexes services (moto)
/// would serve any other unsigned request as S3. Rest operations (SSO's) need an upstream
/// configured for their service, for the same reason.
pub(crate) fn unsigned_operation(
    upstreams: &cairn_upstream::Upstreams,
    parts: &Parts,
    body: &[u8],
) -> Option<(String, AnonymousCaller)> {
    let view = RequestView::of(parts, body, "");
    let posted_to_root = parts.method == http::Method::POST && parts.uri.path() == "/";
    let found = RoutingTable::builtin().recognize(&cairn_capture::Call {
        signing_name: None,
        method: parts.method.as_str(),
        raw_path: &view.routed_path,
        query: &view.query,
        target: view.target,
        form: &view.form,
        headers: Some(&parts.headers),
    })?;
    if !found.service.serves_unsigned(found.operation) {
        return None;
    }
    let wire_shape_fits = match found.service.protocol {
        Protocol::Query | Protocol::Ec2 => {
            posted_to_root
                && view.form.iter().any(|(key, _)| key == "Action")
                && !view.query.iter().any(|(key, _)| key == "Action")
        }
        Protocol::Json => posted_to_root && view.target.is_some(),
        Protocol::RestJson | Protocol::RestXml | Protocol::SmithyRpcV2Cbor => {
            upstreams.has_own(&found.service.id, &found.service.signing_name)
        }
    };
    if !wire_shape_fits {
        return None;
    }
    let param = |name: &str| {
        view.form
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let caller = match found.operation {
        "AssumeRoleWithWebIdentity" => federation::web_identity(param("WebIdentityToken")?),
        "AssumeRoleWithSAML" => federation::saml(
            param("SAMLAssertion")?,
            param("PrincipalArn").unwrap_or_default(),
        ),
        _ => AnonymousCaller::Anonymous,
    };
    Some((found.service.signing_name.clone(), caller))
}

/// Names a call that was refused before it could be served (its signature failed): its
/// service, operation and category as the request claims them, so the refusal is recorded
/// under the operation that was attempted. Nothing of its input is recorded.
pub(crate) fn name_refused_call(call: &mut Call, parts: &Parts, body: &[u8], signing_name: &str) {
    let view = RequestView::of(parts, body, signing_name);
    let Some(found) = view.recognize(parts, signing_name) else {
        return;
    };
    call.event_source = services::event_source(found.service);
    call.event_name = services::event_name(&found.service.id, found.operation).to_owned();
    call.read_only = is_read_only(found.operation);
    call.event_category = services::event_category(&found.service.id, found.operation);
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

fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
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
