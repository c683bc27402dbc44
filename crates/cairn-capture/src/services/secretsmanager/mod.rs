//! Secrets Manager (Secrets Manager user guide, "Logging Secrets Manager events with
//! CloudTrail"): secret values and rotation tokens never reach a record, nor GetSecretValue's
//! answer; the secret is the resource; and the service's own events (`AwsServiceEvent`):
//! a deletion's start, cancel and end (`deletions`: the end when the recovery window
//! passes), and a rotation's start, success, failure or abandonment (`rotation`: what the
//! upstream's version stages show around the calls, and a watch on rotations the upstream
//! finishes after answering, kept across restarts in `rotation_book`).

mod deletions;
mod rotation;
mod rotation_book;

use std::sync::Arc;

use cairn_model::{format_event_time, StateChange};
use serde_json::{json, Value};

use super::hooks::{BoxFuture, CallHook, ServiceHooks, ServiceHost};
use super::{member, push_resource, CapturedCall, Redaction, ServiceEvent, ServiceRules};

use deletions::{RecoveryWindow, RECOVERY_WINDOWS};

pub use deletions::end_due_deletions;
pub use rotation::RotationSettings;
pub use rotation_book::{RotationBook, Sealer, ROTATION_WATCHES};

pub const SECRETS_MANAGER_SOURCE: &str = "secretsmanager.amazonaws.com";
pub const START_SECRET_VERSION_DELETE: &str = "StartSecretVersionDelete";
pub const CANCEL_SECRET_VERSION_DELETE: &str = "CancelSecretVersionDelete";
pub const END_SECRET_VERSION_DELETE: &str = "EndSecretVersionDelete";
pub const ROTATION_ABANDONED: &str = "RotationAbandoned";
pub const ROTATION_STARTED: &str = "RotationStarted";
pub const ROTATION_SUCCEEDED: &str = "RotationSucceeded";
pub const ROTATION_FAILED: &str = "RotationFailed";

pub struct SecretsManager;

impl ServiceRules for SecretsManager {
    fn id(&self) -> &'static str {
        "secretsmanager"
    }

    fn redactions(&self) -> &'static [(&'static str, Redaction)] {
        &[
            ("secretString", Redaction::Omit),
            ("secretBinary", Redaction::Omit),
            ("rotationToken", Redaction::Omit),
        ]
    }

    fn hides_response(&self, operation: &str) -> bool {
        matches!(operation, "GetSecretValue" | "BatchGetSecretValue")
    }

    fn record(&self, call: &mut CapturedCall) {
        record_secret(call);
    }
}

/// A secret's rotation as the hooks saw it around one call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum RotationSeen {
    #[default]
    Nothing,
    /// Another version was labelled AWSPENDING before this call made one by hand.
    PendingBeforeManualVersion,
    /// This RotateSecret call labelled a new version AWSPENDING and failed, leaving it there:
    /// the rotation began and did not finish. A failed call's answer names no secret, so
    /// the ARN comes from the upstream's description of it.
    StartedAndFailed { secret_arn: String },
    /// This RotateSecret call was answered while the new version it began is still labelled
    /// AWSPENDING and not AWSCURRENT: the upstream rotates asynchronously (as AWS does, with
    /// a rotation function), so the rotation's end is yet to be seen.
    StartedStillPending {
        secret_arn: String,
        version_id: String,
    },
}

/// Secrets Manager's hooks: rotations asked about around the calls that bear on them and
/// watched to their end, and the end of recovery windows.
pub struct SecretsManagerHooks {
    watches: Arc<rotation::RotationWatches>,
}

impl SecretsManagerHooks {
    pub fn new(settings: RotationSettings, book: RotationBook) -> Self {
        Self {
            watches: Arc::new(rotation::RotationWatches::new(settings, book)),
        }
    }
}

impl ServiceHooks for SecretsManagerHooks {
    fn begin(&self, call: &CapturedCall, body: &[u8]) -> Option<Box<dyn CallHook>> {
        rotation::RotationHook::begin(&self.watches, &call.operation, body)
            .map(|hook| Box::new(hook) as Box<dyn CallHook>)
    }

    fn background(&self, host: Arc<dyn ServiceHost>) -> Vec<BoxFuture<'static, ()>> {
        vec![
            Box::pin(deletions::run_scheduler(Arc::clone(&host))),
            Box::pin(rotation::resume_watches(Arc::clone(&self.watches), host)),
        ]
    }
}

fn record_secret(call: &mut CapturedCall) {
    let rotation = call.observed::<RotationSeen>().cloned().unwrap_or_default();
    let failed_rotation = match &rotation {
        RotationSeen::StartedAndFailed { secret_arn } => Some(secret_arn.clone()),
        _ => None,
    };
    let secret_arn = [
        member(call.upstream_response.as_ref(), "arn"),
        member(call.request_parameters.as_ref(), "secretId"),
        failed_rotation.as_deref(),
    ]
    .into_iter()
    .flatten()
    .find(|id| id.starts_with("arn:"))
    .map(str::to_owned);
    let Some(secret_arn) = secret_arn else {
        return;
    };
    push_resource(call, secret_arn.clone(), "AWS::SecretsManager::Secret");
    // The recovery window's end, as the upstream answered it (epoch seconds).
    let deletion_millis = call
        .upstream_response
        .as_ref()
        .and_then(|response| response.get("deletionDate"))
        .and_then(Value::as_f64)
        .filter(|seconds| seconds.is_finite())
        .map(|seconds| (seconds * 1000.0) as i64);
    let (account_id, region) = (call.account_id.clone(), call.region.clone());
    let mut emit = |event_name| {
        let details = match (event_name, deletion_millis) {
            (START_SECRET_VERSION_DELETE, Some(due)) => {
                // The window's end is scheduled with the event that starts it.
                let window = RecoveryWindow {
                    due_millis: due,
                    account_id: account_id.clone(),
                    region: region.clone(),
                };
                call.state_changes.push(window.schedule(&secret_arn));
                Some(json!({ "deletionDate": format_event_time(due) }))
            }
            (CANCEL_SECRET_VERSION_DELETE | END_SECRET_VERSION_DELETE, _) => {
                call.state_changes
                    .push(StateChange::remove(RECOVERY_WINDOWS, secret_arn.clone()));
                None
            }
            _ => None,
        };
        call.service_events.push(ServiceEvent {
            event_source: SECRETS_MANAGER_SOURCE,
            event_name,
            resource_arn: secret_arn.clone(),
            details,
        })
    };
    if !call.succeeded {
        // A refused call changes nothing, except a rotation that began before it failed.
        if call.operation == "RotateSecret" && failed_rotation.is_some() {
            emit(ROTATION_STARTED);
            emit(ROTATION_FAILED);
        }
        return;
    }
    let parameter = |name: &str| {
        call.request_parameters
            .as_ref()
            .and_then(|parameters| parameters.get(name))
            .map(|value| value == &json!(true) || value == &json!("true"))
    };
    let forced_delete = parameter("forceDeleteWithoutRecovery").unwrap_or(false);
    // RotateImmediately=false only tests the rotation function; the rotation itself waits
    // for the schedule.
    let rotates_now = parameter("rotateImmediately").unwrap_or(true);
    let pending_before = rotation == RotationSeen::PendingBeforeManualVersion;
    match call.operation.as_str() {
        // A forced delete ends at once; otherwise the end comes when the recovery window
        // does (the gateway's scheduler emits it from the history).
        "DeleteSecret" if forced_delete => emit(END_SECRET_VERSION_DELETE),
        "DeleteSecret" => emit(START_SECRET_VERSION_DELETE),
        "RestoreSecret" => emit(CANCEL_SECRET_VERSION_DELETE),
        // A version made by hand while a rotation is pending abandons that rotation.
        "PutSecretValue" | "UpdateSecret" if pending_before => emit(ROTATION_ABANDONED),
        // An upstream that answers while the rotation runs: its end is the gateway's rotation
        // watch to record.
        "RotateSecret"
            if rotates_now && matches!(rotation, RotationSeen::StartedStillPending { .. }) =>
        {
            emit(ROTATION_STARTED)
        }
        // Otherwise the upstream answered RotateSecret once the rotation it ran had finished.
        "RotateSecret" if rotates_now => {
            emit(ROTATION_STARTED);
            emit(ROTATION_SUCCEEDED);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::services::{apply, test_call};

    #[test]
    fn a_version_made_by_hand_while_a_rotation_is_pending_abandons_it() {
        let arn = "arn:aws:secretsmanager:us-east-1:111122223333:secret:db-AbCdEf";
        let put = |pending: bool, succeeded: bool| {
            let mut put = test_call(
                "secretsmanager",
                "PutSecretValue",
                json!({"secretId": "db"}),
                Some(json!({"arn": arn, "versionId": "v3"})),
            );
            if pending {
                put.observed = Some(Arc::new(RotationSeen::PendingBeforeManualVersion));
            }
            put.succeeded = succeeded;
            apply(&mut put);
            put.service_events
                .iter()
                .map(|event| event.event_name)
                .collect::<Vec<_>>()
        };
        assert_eq!(put(true, true), vec![ROTATION_ABANDONED]);
        assert!(put(false, true).is_empty());
        assert!(
            put(true, false).is_empty(),
            "a refused call abandons nothing"
        );
    }

    #[test]
    fn secrets_manager_deletions_and_rotations_emit_service_events() {
        let arn = "arn:aws:secretsmanager:us-east-1:111122223333:secret:db-AbCdEf";
        let mut delete = test_call(
            "secretsmanager",
            "DeleteSecret",
            json!({"secretId": "db", "recoveryWindowInDays": 7}),
            Some(json!({"arn": arn, "name": "db"})),
        );
        apply(&mut delete);
        assert_eq!(
            delete.resources[0].resource_type,
            "AWS::SecretsManager::Secret"
        );
        assert_eq!(
            delete.service_events[0].event_name,
            START_SECRET_VERSION_DELETE
        );
        assert!(
            delete.state_changes.is_empty(),
            "no deletion date answered, nothing to schedule"
        );
        let mut windowed = test_call(
            "secretsmanager",
            "DeleteSecret",
            json!({"secretId": "db", "recoveryWindowInDays": 7}),
            Some(json!({"arn": arn, "name": "db", "deletionDate": 1_800_000_000.5})),
        );
        apply(&mut windowed);
        assert_eq!(
            windowed.service_events[0].details,
            Some(json!({"deletionDate": "2027-01-15T08:00:00Z"}))
        );
        assert_eq!(windowed.state_changes.len(), 1);
        assert_eq!(windowed.state_changes[0].namespace, RECOVERY_WINDOWS);
        assert_eq!(windowed.state_changes[0].key, arn);
        let scheduled: RecoveryWindow =
            serde_json::from_str(windowed.state_changes[0].value.as_deref().unwrap()).unwrap();
        assert_eq!(scheduled.due_millis, 1_800_000_000_500);
        let mut forced = test_call(
            "secretsmanager",
            "DeleteSecret",
            json!({"secretId": arn, "forceDeleteWithoutRecovery": true}),
            None,
        );
        apply(&mut forced);
        assert_eq!(
            forced.service_events[0].event_name,
            END_SECRET_VERSION_DELETE
        );
        let mut restore = test_call(
            "secretsmanager",
            "RestoreSecret",
            json!({"secretId": "db"}),
            Some(json!({"arn": arn})),
        );
        apply(&mut restore);
        assert_eq!(
            restore.service_events[0].event_name,
            CANCEL_SECRET_VERSION_DELETE
        );
        assert_eq!(
            restore.state_changes,
            [StateChange::remove(RECOVERY_WINDOWS, arn)],
            "a restored secret's window is no longer scheduled to end"
        );
        let mut rotate = test_call(
            "secretsmanager",
            "RotateSecret",
            json!({"secretId": "db"}),
            Some(json!({"arn": arn})),
        );
        apply(&mut rotate);
        let names: Vec<&str> = rotate.service_events.iter().map(|e| e.event_name).collect();
        assert_eq!(names, ["RotationStarted", "RotationSucceeded"]);
        let mut scheduled = test_call(
            "secretsmanager",
            "RotateSecret",
            json!({"secretId": "db", "rotateImmediately": false}),
            Some(json!({"arn": arn})),
        );
        apply(&mut scheduled);
        assert!(
            scheduled.service_events.is_empty(),
            "a rotation left to the schedule has not started"
        );
        let mut running = test_call(
            "secretsmanager",
            "RotateSecret",
            json!({"secretId": "db"}),
            Some(json!({"arn": arn})),
        );
        running.observed = Some(Arc::new(RotationSeen::StartedStillPending {
            secret_arn: arn.into(),
            version_id: "v2".into(),
        }));
        apply(&mut running);
        let names: Vec<&str> = running
            .service_events
            .iter()
            .map(|e| e.event_name)
            .collect();
        assert_eq!(
            names,
            ["RotationStarted"],
            "a rotation still running has not succeeded yet"
        );
        let mut refused = test_call(
            "secretsmanager",
            "DeleteSecret",
            json!({"secretId": arn}),
            None,
        );
        refused.succeeded = false;
        apply(&mut refused);
        assert!(refused.service_events.is_empty());
    }

    #[test]
    fn a_rotation_that_began_and_failed_emits_started_and_failed() {
        let arn = "arn:aws:secretsmanager:us-east-1:111122223333:secret:db-AbCdEf";
        let rotate = |rotation: RotationSeen| {
            let mut rotate = test_call(
                "secretsmanager",
                "RotateSecret",
                json!({"secretId": "db", "rotationLambdaARN": "arn:aws:lambda:us-east-1:111122223333:function:gone"}),
                None,
            );
            rotate.succeeded = false;
            rotate.observed = Some(Arc::new(rotation));
            apply(&mut rotate);
            rotate
        };
        let failed = rotate(RotationSeen::StartedAndFailed {
            secret_arn: arn.into(),
        });
        let names: Vec<&str> = failed.service_events.iter().map(|e| e.event_name).collect();
        assert_eq!(names, [ROTATION_STARTED, ROTATION_FAILED]);
        assert!(failed.service_events.iter().all(|e| e.resource_arn == arn));
        assert_eq!(
            failed.resources[0].arn, arn,
            "the refused call names its secret"
        );
        let refused = rotate(RotationSeen::Nothing);
        assert!(
            refused.service_events.is_empty(),
            "a call refused before the rotation began starts nothing"
        );
    }
}
