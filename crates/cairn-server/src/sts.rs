//! STS, served by Cairn itself: GetCallerIdentity, AssumeRole and GetSessionToken. Each call
//! is recorded like any other, as `sts.amazonaws.com` with `readOnly: true`, before it is
//! answered. The secret access key a response carries is never recorded.

use axum::body::Body;
use axum::response::Response;
use cairn_auth::{Principal, StsRefusal, TemporaryCredentials};
use cairn_capture::services::sts::{assumed_role, recorded_credentials};
use cairn_model::format_event_time;
use cairn_wire::form::decode_pairs;
use cairn_wire::sts::{self, CredentialsOut, StsRequest};
use cairn_wire::{AwsError, Protocol};
use http::request::Parts;
use http::StatusCode;
use serde_json::json;

use crate::recorder::{Call, Caller};
use crate::respond::{error_response, fail};
use crate::AppState;

pub async fn serve(state: &AppState, mut call: Call, parts: &Parts, body: &[u8]) -> Response {
    call.event_source = sts::EVENT_SOURCE.to_owned();
    call.read_only = true;
    let mut pairs = decode_pairs(std::str::from_utf8(body).unwrap_or(""));
    pairs.extend(decode_pairs(parts.uri.query().unwrap_or("")));
    call.event_name = sts::claimed_action(&pairs)
        .and_then(cairn_wire::recordable_name)
        .unwrap_or("Unknown")
        .to_owned();
    let Caller::Verified(caller) = call.caller.clone() else {
        return fail(
            state,
            call,
            Some(Protocol::Query),
            AwsError::internal_failure(),
        )
        .await;
    };
    let request = match sts::parse(&pairs) {
        Ok(request) => request,
        Err(error) => return fail(state, call, Some(Protocol::Query), error).await,
    };
    let now = state.clock.now_millis();
    let request_id = call.request_id.clone();
    let answer = match &request {
        StsRequest::GetCallerIdentity => Ok(sts::get_caller_identity_response(
            &caller.arn,
            &caller.principal_id,
            &caller.account_id,
            &request_id,
        )),
        StsRequest::AssumeRole(input) => {
            let mut parameters = json!({
                "roleArn": input.role_arn,
                "roleSessionName": input.role_session_name,
            });
            if let Some(duration) = input.duration_seconds {
                parameters["durationSeconds"] = json!(duration);
            }
            call.request_parameters = Some(parameters);
            match state.credentials.assume_role(
                &caller,
                &input.role_arn,
                &input.role_session_name,
                input.duration_seconds,
                now,
            ) {
                Ok((credentials, assumed)) => {
                    call.response_elements = Some(json!({
                        "credentials": recorded_credentials(
                            &credentials.access_key_id,
                            credentials.expiration_millis,
                        ),
                        "assumedRoleUser": {
                            "assumedRoleId": assumed.principal_id,
                            "arn": assumed.arn,
                        },
                    }));
                    if let Some(role) = state.credentials.role(&input.role_arn) {
                        call.resources
                            .push(assumed_role(role.arn(), role.account_id.clone()));
                    }
                    Ok(sts::assume_role_response(
                        &credentials_out(&credentials),
                        &assumed.arn,
                        &assumed.principal_id,
                        &request_id,
                    ))
                }
                Err(refusal) => Err(refused(&caller, refusal)),
            }
        }
        StsRequest::GetSessionToken { duration_seconds } => {
            call.request_parameters = Some(json!({ "durationSeconds": duration_seconds }));
            match state
                .credentials
                .session_token(&caller, *duration_seconds, now)
            {
                Ok(credentials) => {
                    call.response_elements = Some(json!({
                        "credentials": recorded_credentials(
                            &credentials.access_key_id,
                            credentials.expiration_millis,
                        ),
                    }));
                    Ok(sts::get_session_token_response(
                        &credentials_out(&credentials),
                        &request_id,
                    ))
                }
                Err(refusal) => Err(refused(&caller, refusal)),
            }
        }
    };
    call.event_name = request.name().to_owned();
    match answer {
        Ok(xml) => {
            if let Err(error) = state.record(call).await {
                return error_response(Some(Protocol::Query), &error, &request_id);
            }
            Response::builder()
                .status(StatusCode::OK)
                .header("x-amzn-RequestId", &request_id)
                .header(http::header::CONTENT_TYPE, sts::XML_CONTENT_TYPE)
                .body(Body::from(xml))
                .unwrap_or_else(|_| Response::new(Body::empty()))
        }
        Err(error) => fail(state, call, Some(Protocol::Query), error).await,
    }
}

fn refused(caller: &Principal, refusal: StsRefusal) -> AwsError {
    match refusal {
        StsRefusal::NotTrusted { .. } => {
            tracing::info!(caller = %caller.arn, %refusal, "refused AssumeRole");
            AwsError::new("AccessDenied", refusal.to_string()).with_status(StatusCode::FORBIDDEN)
        }
        StsRefusal::DurationTooLong => AwsError::new("ValidationError", refusal.to_string()),
        StsRefusal::SessionCredentials | StsRefusal::Unverified => {
            AwsError::new("AccessDenied", refusal.to_string()).with_status(StatusCode::FORBIDDEN)
        }
    }
}

fn credentials_out(credentials: &TemporaryCredentials) -> CredentialsOut<'_> {
    CredentialsOut {
        access_key_id: &credentials.access_key_id,
        secret_access_key: credentials.secret_access_key.expose(),
        session_token: &credentials.session_token,
        expiration: format_event_time(credentials.expiration_millis),
    }
}
