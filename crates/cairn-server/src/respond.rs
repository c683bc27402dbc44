//! How a call is answered: its event is recorded first and the answer leaves only once the
//! event is durable; a call whose event cannot be stored is answered `InternalFailure`
//! instead (an audit trail fails closed). Errors are rendered by cairn-wire, in the
//! protocol the caller speaks.

use axum::body::Body;
use axum::response::Response;
use cairn_model::StateChange;
use cairn_wire::{AwsError, Protocol};
use http::StatusCode;

use crate::recorder::Call;
use crate::AppState;

/// Records `call` with `error` and answers the error.
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

/// Records `call`, then answers `outcome`: a success as `content_type`, with its state
/// changes committed in the same commit as its event (a failed call changes nothing); an
/// error in `protocol`'s shape.
pub(crate) async fn finish(
    state: &AppState,
    mut call: Call,
    protocol: Protocol,
    content_type: &'static str,
    outcome: Result<(Vec<u8>, Vec<StateChange>), AwsError>,
) -> Response {
    let (body, changes) = match outcome {
        Ok(answer) => answer,
        Err(error) => return fail(state, call, Some(protocol), error).await,
    };
    call.error = None;
    let request_id = call.request_id.clone();
    if let Err(error) = state.record_with_state(vec![call], changes).await {
        return error_response(Some(protocol), &error, &request_id);
    }
    Response::builder()
        .status(StatusCode::OK)
        .header("x-amzn-RequestId", &request_id)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

/// An error Cairn itself raises, in `protocol`'s shape.
pub(crate) fn error_response(
    protocol: Option<Protocol>,
    error: &AwsError,
    request_id: &str,
) -> Response {
    let document = error.render(protocol, request_id);
    let mut response = Response::builder()
        .status(document.status)
        .header(http::header::CONTENT_TYPE, document.content_type);
    for (name, value) in &document.headers {
        response = response.header(*name, value);
    }
    response
        .body(Body::from(document.body))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}
