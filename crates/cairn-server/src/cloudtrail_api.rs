//! CloudTrail's own API, served by Cairn (AWS JSON 1.1 on the `cloudtrail` endpoint): the
//! operation comes from `X-Amz-Target`, checked against the model; LookupEvents is served
//! (`lookup`), the trail operations by `trails`, the model's other operations answer
//! `UnsupportedOperationException`, and every call is recorded as a
//! `cloudtrail.amazonaws.com` event, in the same commit as the trail changes it makes.

use axum::response::Response;
use cairn_model::StateChange;
use cairn_wire::cloudtrail::{self, Operation};
use cairn_wire::cloudtrail_model::CloudTrailModel;
use cairn_wire::cloudtrail_shapes::TrailRequest;
use cairn_wire::{AwsError, Protocol};
use serde_json::Value;

use crate::lookup::lookup_events;
use crate::recorder::{Call, Caller};
use crate::respond::finish;
use crate::trails::{self, Asking};
use crate::AppState;

pub(crate) async fn serve(
    state: &AppState,
    mut call: Call,
    target: Option<&str>,
    body: &[u8],
) -> Response {
    // A trail call decides on the trails as they are and commits its changes with its event;
    // the next one waits until then.
    let _writing = match cloudtrail::parse_target(target) {
        Ok(Operation::Trail(_)) => Some(state.trails.writes.clone().lock_owned().await),
        _ => None,
    };
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
) -> Result<(Vec<u8>, Vec<StateChange>), AwsError> {
    call.api_version = Some(cloudtrail::API_VERSION);
    let operation = cloudtrail::parse_target(target)?;
    call.event_name = operation.name().to_owned();
    call.read_only = operation.is_read_only();
    let members = cloudtrail::parse_json_body(body)?;
    match operation {
        Operation::LookupEvents => {
            let (outcome, parameters) = lookup_events(state, &members).await;
            call.request_parameters = parameters;
            outcome.map(|body| (body, Vec::new()))
        }
        Operation::Trail(name) => {
            call.request_parameters = Some(Value::Object(members.clone()));
            let model = CloudTrailModel::builtin();
            model.check_input(name, &members).map_err(|error| {
                AwsError::new(model.input_error_code(name, &error), error.to_string())
            })?;
            let Caller::Verified(principal) = &call.caller else {
                return Err(AwsError::internal_failure());
            };
            let event_id = state.ids.new_id();
            call.event_id = Some(event_id.clone());
            let asking = Asking {
                account_id: &principal.account_id,
                region: &call.region,
                now_millis: state.clock.now_millis(),
                event_id: &event_id,
            };
            let request = match TrailRequest::parse(name, Value::Object(members)) {
                Some(Ok(request)) => request,
                // The model's check passed, so the generated types take the body: a failure
                // here is a type the check does not see, refused as the protocol refuses one.
                Some(Err(failure)) => {
                    return Err(AwsError::serialization(format!(
                        "The request does not fit {name}: {failure}"
                    )))
                }
                None => return Err(AwsError::internal_failure()),
            };
            let answer = trails::serve(state, request, &asking).await?;
            let body = model.shape_output(name, answer.body);
            if !call.read_only && body.as_object().is_some_and(|members| !members.is_empty()) {
                call.response_elements = Some(body.clone());
            }
            Ok((body.to_string().into_bytes(), answer.changes))
        }
        Operation::NotYetServed(name) => Err(AwsError::new(
            "UnsupportedOperationException",
            format!("Cairn does not serve {name} yet."),
        )),
    }
}
