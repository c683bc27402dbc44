//! Whether a Secrets Manager call abandons a rotation in progress.
//!
//! Secrets Manager emits `RotationAbandoned` when a version is created by hand while another
//! version is labelled AWSPENDING: the manual change wins and the pending rotation is given
//! up. Whether AWSPENDING exists is the upstream's state, not something a call carries, so
//! before forwarding such a call the gateway asks the upstream (`DescribeSecret`, signed with
//! the caller's own credentials, so an upstream that checks signatures and permissions sees
//! the caller) and remembers the answer for the record.
//!
//! A version is created by hand by `PutSecretValue` not labelled AWSPENDING (the rotation's
//! own `createSecret` step labels its version AWSPENDING) and by `UpdateSecret` with a new
//! value. If the question cannot be answered (the upstream fails), no event is emitted: an
//! audit trail must not claim what it did not see.

use cairn_wire::sigv4::{self, SignedRequest};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method};
use serde_json::Value;

use crate::AppState;
use cairn_capture::OutgoingBody;

const PENDING_STAGE: &str = "AWSPENDING";

/// A call that creates a secret version by hand.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ManualVersion {
    secret_id: String,
    /// The version the call creates, when the caller named it: a pending version with this
    /// ID is the one being written, not one being abandoned.
    version_id: Option<String>,
}

/// Reads the request body of `operation` for a manual version creation.
pub(crate) fn manual_version(operation: &str, body: &[u8]) -> Option<ManualVersion> {
    let input: Value = serde_json::from_slice(body).ok()?;
    let secret_id = input.get("SecretId")?.as_str()?.to_owned();
    let creates_value = input.get("SecretString").is_some() || input.get("SecretBinary").is_some();
    let labelled_pending = input
        .get("VersionStages")
        .and_then(Value::as_array)
        .is_some_and(|stages| stages.iter().any(|stage| stage == PENDING_STAGE));
    let manual = match operation {
        "PutSecretValue" => !labelled_pending,
        "UpdateSecret" => creates_value,
        _ => false,
    };
    manual.then(|| ManualVersion {
        secret_id,
        version_id: input
            .get("ClientRequestToken")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

/// Whether a version other than the one `manual` creates is labelled AWSPENDING, asked of
/// `upstream` as the caller. `None` when the upstream did not answer.
pub(crate) async fn rotation_pending(
    state: &AppState,
    upstream: &http::Uri,
    parts: &Parts,
    region: &str,
    manual: &ManualVersion,
) -> Option<bool> {
    let body = serde_json::to_vec(&serde_json::json!({ "SecretId": manual.secret_id })).ok()?;
    let headers = signed_describe_secret(state, parts, region, &body)?;
    let reply = state
        .gateway
        .forward(
            upstream,
            &Method::POST,
            "/",
            &headers,
            OutgoingBody::whole(body.into()),
        )
        .await
        .ok()?;
    if !reply.status.is_success() {
        tracing::debug!(status = %reply.status, "DescribeSecret before a manual version failed");
        return None;
    }
    let described: Value = serde_json::from_slice(reply.body.recorded()).ok()?;
    Some(has_other_pending_version(
        &described,
        manual.version_id.as_deref(),
    ))
}

fn has_other_pending_version(described: &Value, own_version: Option<&str>) -> bool {
    described
        .get("VersionIdsToStages")
        .and_then(Value::as_object)
        .is_some_and(|versions| {
            versions.iter().any(|(version, stages)| {
                Some(version.as_str()) != own_version
                    && stages
                        .as_array()
                        .is_some_and(|stages| stages.iter().any(|stage| stage == PENDING_STAGE))
            })
        })
}

/// A DescribeSecret request's headers, signed with the credentials the caller signed with.
fn signed_describe_secret(
    state: &AppState,
    parts: &Parts,
    region: &str,
    body: &[u8],
) -> Option<HeaderMap> {
    let claim = sigv4::parse_claim(&SignedRequest {
        method: &parts.method,
        raw_path: parts.uri.path(),
        raw_query: parts.uri.query().unwrap_or(""),
        headers: &parts.headers,
        body: &[],
    })
    .ok()?;
    let now = state.clock.now_millis();
    let (_, secret) = state
        .credentials
        .authenticate(&claim.access_key_id, claim.session_token.as_deref(), now)
        .ok()?;
    let amz_date = chrono::DateTime::from_timestamp_millis(now)?
        .format("%Y%m%dT%H%M%SZ")
        .to_string();
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::HOST,
        parts.headers.get(http::header::HOST)?.clone(),
    );
    headers.insert("x-amz-date", HeaderValue::from_str(&amz_date).ok()?);
    headers.insert(
        "x-amz-target",
        HeaderValue::from_static("secretsmanager.DescribeSecret"),
    );
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    if let Some(token) = &claim.session_token {
        headers.insert("x-amz-security-token", HeaderValue::from_str(token).ok()?);
    }
    sigv4::sign_json_post(
        &mut headers,
        body,
        &claim.access_key_id,
        secret.expose(),
        region,
        "secretsmanager",
    )
    .ok()?;
    Some(headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn manual_versions_are_told_from_the_rotations_own() {
        let body = |value: Value| serde_json::to_vec(&value).unwrap();
        assert_eq!(
            manual_version(
                "PutSecretValue",
                &body(json!({"SecretId": "db", "SecretString": "x", "ClientRequestToken": "v9"}))
            ),
            Some(ManualVersion {
                secret_id: "db".into(),
                version_id: Some("v9".into())
            })
        );
        let rotation_step =
            json!({"SecretId": "db", "SecretString": "x", "VersionStages": ["AWSPENDING"]});
        assert_eq!(manual_version("PutSecretValue", &body(rotation_step)), None);
        assert_eq!(
            manual_version(
                "UpdateSecret",
                &body(json!({"SecretId": "db", "Description": "d"}))
            ),
            None,
            "an update without a value creates no version"
        );
        assert!(manual_version(
            "UpdateSecret",
            &body(json!({"SecretId": "db", "SecretBinary": "eA=="}))
        )
        .is_some());
        assert_eq!(
            manual_version("GetSecretValue", &body(json!({"SecretId": "db"}))),
            None
        );
        assert_eq!(manual_version("PutSecretValue", b"not json"), None);
    }

    #[test]
    fn only_another_versions_pending_label_counts() {
        let described = json!({"VersionIdsToStages": {"v1": ["AWSCURRENT"], "v2": ["AWSPENDING"]}});
        assert!(has_other_pending_version(&described, None));
        assert!(has_other_pending_version(&described, Some("v3")));
        assert!(!has_other_pending_version(&described, Some("v2")));
        let settled = json!({"VersionIdsToStages": {"v1": ["AWSCURRENT"], "v0": ["AWSPREVIOUS"]}});
        assert!(!has_other_pending_version(&settled, None));
        assert!(!has_other_pending_version(&json!({}), None));
    }
}
