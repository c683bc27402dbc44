//! What a Secrets Manager call does to a secret's rotation, seen from the gateway.
//!
//! A rotation's state lives in the upstream (which version is labelled AWSPENDING), not in
//! the calls, so around the calls that can change it the gateway asks the upstream
//! (`DescribeSecret`, signed with the caller's own credentials, so an upstream that checks
//! signatures and permissions sees the caller):
//!
//! - **RotationAbandoned**: a version created by hand while another is labelled AWSPENDING.
//!   `PutSecretValue` not labelled AWSPENDING (the rotation's own `createSecret` step labels
//!   its version so) and `UpdateSecret` with a new value create versions by hand. Asked
//!   before the call.
//! - **RotationFailed**: a `RotateSecret` that fails after labelling a new version
//!   AWSPENDING (the rotation function could not be found or failed a step) began a rotation
//!   that did not finish. Asked before the call and, when it fails, again after.
//!
//! If a question cannot be answered (the upstream fails), nothing is emitted: an audit trail
//! must not claim what it did not see.

use cairn_capture::service_rules::RotationSeen;
use serde_json::Value;

use crate::asking::Asker;

const PENDING_STAGE: &str = "AWSPENDING";
const CURRENT_STAGE: &str = "AWSCURRENT";

/// A call whose effect on a rotation the gateway must ask the upstream about.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RotationWatch {
    /// A call that creates a secret version by hand.
    ManualVersion {
        secret_id: String,
        /// The version the call creates, when the caller named it: a pending version with
        /// this ID is the one being written, not one being abandoned.
        version_id: Option<String>,
    },
    /// A RotateSecret call.
    Rotation { secret_id: String },
}

impl RotationWatch {
    /// Reads the request body of `operation` for a call that bears on a rotation.
    pub(crate) fn of(operation: &str, body: &[u8]) -> Option<Self> {
        let input: Value = serde_json::from_slice(body).ok()?;
        let secret_id = input.get("SecretId")?.as_str()?.to_owned();
        let creates_value =
            input.get("SecretString").is_some() || input.get("SecretBinary").is_some();
        let labelled_pending = input
            .get("VersionStages")
            .and_then(Value::as_array)
            .is_some_and(|stages| stages.iter().any(|stage| stage == PENDING_STAGE));
        let manual = match operation {
            "RotateSecret" => return Some(Self::Rotation { secret_id }),
            "PutSecretValue" => !labelled_pending,
            "UpdateSecret" => creates_value,
            _ => false,
        };
        manual.then(|| Self::ManualVersion {
            secret_id,
            version_id: input
                .get("ClientRequestToken")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }

    fn secret_id(&self) -> &str {
        match self {
            Self::ManualVersion { secret_id, .. } | Self::Rotation { secret_id } => secret_id,
        }
    }
}

/// The secret's `DescribeSecret` answer; `None` when the upstream did not give one.
async fn describe(asker: &Asker<'_>, secret_id: &str) -> Option<Value> {
    asker
        .ask_json(
            "secretsmanager",
            "secretsmanager.DescribeSecret",
            "application/x-amz-json-1.1",
            &serde_json::json!({ "SecretId": secret_id }),
        )
        .await
}

/// What the gateway must know before forwarding `watch`: the secret as it was.
pub(crate) async fn before(asker: &Asker<'_>, watch: &RotationWatch) -> Option<Value> {
    describe(asker, watch.secret_id()).await
}

/// What `watch`'s call did to the rotation, given the secret as it was before and whether
/// the call succeeded.
pub(crate) async fn seen(
    asker: &Asker<'_>,
    watch: &RotationWatch,
    before: Option<&Value>,
    succeeded: bool,
) -> RotationSeen {
    let Some(before) = before else {
        return RotationSeen::Nothing;
    };
    match watch {
        RotationWatch::ManualVersion { version_id, .. } => {
            if pending_versions(before).any(|pending| Some(pending) != version_id.as_deref()) {
                RotationSeen::PendingBeforeManualVersion
            } else {
                RotationSeen::Nothing
            }
        }
        RotationWatch::Rotation { .. } if succeeded => RotationSeen::Nothing,
        RotationWatch::Rotation { secret_id } => {
            let Some(after) = describe(asker, secret_id).await else {
                return RotationSeen::Nothing;
            };
            rotation_left_pending(before, &after)
        }
    }
}

/// The versions labelled AWSPENDING and not AWSCURRENT in a DescribeSecret answer.
fn pending_versions(described: &Value) -> impl Iterator<Item = &str> {
    described
        .get("VersionIdsToStages")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(_, stages)| {
            let has = |label: &str| {
                stages
                    .as_array()
                    .is_some_and(|stages| stages.iter().any(|stage| stage == label))
            };
            has(PENDING_STAGE) && !has(CURRENT_STAGE)
        })
        .map(|(version, _)| version.as_str())
}

/// Whether a failed RotateSecret left a version pending that was not pending before it: the
/// rotation began and did not finish.
fn rotation_left_pending(before: &Value, after: &Value) -> RotationSeen {
    let was_pending: Vec<&str> = pending_versions(before).collect();
    let began = pending_versions(after).any(|version| !was_pending.contains(&version));
    match after.get("ARN").and_then(Value::as_str) {
        Some(arn) if began => RotationSeen::StartedAndFailed {
            secret_arn: arn.to_owned(),
        },
        _ => RotationSeen::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(value: Value) -> Vec<u8> {
        serde_json::to_vec(&value).unwrap()
    }

    #[test]
    fn manual_versions_are_told_from_the_rotations_own() {
        assert_eq!(
            RotationWatch::of(
                "PutSecretValue",
                &body(json!({"SecretId": "db", "SecretString": "x", "ClientRequestToken": "v9"}))
            ),
            Some(RotationWatch::ManualVersion {
                secret_id: "db".into(),
                version_id: Some("v9".into())
            })
        );
        let rotation_step =
            json!({"SecretId": "db", "SecretString": "x", "VersionStages": ["AWSPENDING"]});
        assert_eq!(
            RotationWatch::of("PutSecretValue", &body(rotation_step)),
            None
        );
        assert_eq!(
            RotationWatch::of(
                "UpdateSecret",
                &body(json!({"SecretId": "db", "Description": "d"}))
            ),
            None,
            "an update without a value creates no version"
        );
        assert!(RotationWatch::of(
            "UpdateSecret",
            &body(json!({"SecretId": "db", "SecretBinary": "eA=="}))
        )
        .is_some());
        assert_eq!(
            RotationWatch::of("GetSecretValue", &body(json!({"SecretId": "db"}))),
            None
        );
        assert_eq!(
            RotationWatch::of("RotateSecret", &body(json!({"SecretId": "db"}))),
            Some(RotationWatch::Rotation {
                secret_id: "db".into()
            })
        );
        assert_eq!(RotationWatch::of("PutSecretValue", b"not json"), None);
    }

    #[test]
    fn only_a_version_pending_and_not_current_counts_as_pending() {
        let described = json!({"VersionIdsToStages": {
            "v1": ["AWSCURRENT"], "v2": ["AWSPENDING"], "v3": ["AWSCURRENT", "AWSPENDING"]
        }});
        assert_eq!(pending_versions(&described).collect::<Vec<_>>(), ["v2"]);
        let settled = json!({"VersionIdsToStages": {"v1": ["AWSCURRENT"], "v0": ["AWSPREVIOUS"]}});
        assert_eq!(pending_versions(&settled).count(), 0);
        assert_eq!(pending_versions(&json!({})).count(), 0);
    }

    #[test]
    fn a_failed_rotation_began_only_if_it_left_a_new_version_pending() {
        let arn = "arn:aws:secretsmanager:us-east-1:111122223333:secret:db-AbCdEf";
        let described = |stages: Value| json!({"ARN": arn, "VersionIdsToStages": stages});
        let before = described(json!({"v1": ["AWSCURRENT"]}));
        let began = described(json!({"v1": ["AWSCURRENT"], "v2": ["AWSPENDING"]}));
        assert_eq!(
            rotation_left_pending(&before, &began),
            RotationSeen::StartedAndFailed {
                secret_arn: arn.into()
            }
        );
        assert_eq!(
            rotation_left_pending(&before, &before),
            RotationSeen::Nothing,
            "refused before it labelled anything"
        );
        assert_eq!(
            rotation_left_pending(&began, &began),
            RotationSeen::Nothing,
            "the version was already pending: an earlier rotation's, not this call's"
        );
    }
}
