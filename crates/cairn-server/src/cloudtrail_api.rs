//! CloudTrail's own API, served by Cairn (AWS JSON 1.1 on the `cloudtrail` endpoint): the
//! operation comes from `X-Amz-Target`, checked against the model; LookupEvents is served
//! (`lookup`), the model's other operations answer `UnsupportedOperationException`, and
//! every call is recorded as a `cloudtrail.amazonaws.com` event.

use axum::response::Response;
use cairn_wire::cloudtrail::{self, Operation};
use cairn_wire::{AwsError, Protocol};

use crate::lookup::lookup_events;
use crate::recorder::Call;
use crate::respond::finish;
use crate::AppState;

pub(crate) async fn serve(
    state: &AppState,
    mut call: Call,
    target: Option<&str>,
    body: &[u8],
) -> Response {
    let outcome = answer(state, &mut call, target, body).await;
    finish(
        state,
        call,
        Protocol::Json,
        cloudtrail::JSON_CONTENT_TYPE,
        outcome,
    )
    .await
}

async fn answer(
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
        Operation::Trail(name) | Operation::NotYetServed(name) => Err(AwsError::new(
            "UnsupportedOperationException",
            format!("Cairn does not serve {name} yet."),
        )),
    }
}
