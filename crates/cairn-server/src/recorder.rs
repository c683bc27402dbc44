//! Turns a call Cairn served (or refused) into a CloudTrail record and makes it durable.

use cairn_auth::{Principal, PrincipalKind};
use cairn_capture::services::{RecordResource, ServiceEvent};
use cairn_model::{
    format_event_time, CloudTrailRecord, Field, IndexedEvent, Resource, SessionAttributes,
    SessionContext, SessionIssuer, StateChange, TlsDetails, UserIdentity, UserIdentityType,
    WebIdFederationData,
};
use cairn_store::StoreError;
use cairn_wire::AwsError;
use serde_json::{Map, Value};

use crate::tls::ConnectionTls;
use crate::AppState;

/// CloudTrail truncates these fields at 1 KB.
const MAX_SHORT_FIELD_BYTES: usize = 1024;
/// CloudTrail leaves out `requestParameters` and `responseElements` larger than 100 KB, and
/// `additionalEventData` larger than 28 KB ("CloudTrail record contents").
const MAX_PARAMETERS_BYTES: usize = 100 * 1024;
const MAX_ADDITIONAL_DATA_BYTES: usize = 28 * 1024;
/// A presented (unverified) access key ID longer than this is not worth keeping whole.
const MAX_PRESENTED_KEY_BYTES: usize = 128;

/// Who made a call, as far as Cairn could tell.
#[derive(Clone, Debug)]
pub enum Caller {
    Verified(Principal),
    /// Authentication failed or was missing; the access key the request presented, if any.
    Unverified {
        access_key_id: Option<String>,
    },
    /// An AWS service acting on its own (`AwsServiceEvent`), in an account.
    Service {
        invoked_by: String,
        account_id: String,
    },
    /// Nobody signed: an operation AWS serves without a signature (Cognito's sign-in, STS's
    /// federation), recorded as AWS records its caller.
    Anonymous(AnonymousCaller),
}

/// Who an unsigned call says it is, as far as its own input tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnonymousCaller {
    /// `{"type": "Unknown", "principalId": "Anonymous"}`, as AWS records Cognito's
    /// unauthenticated calls.
    Anonymous,
    /// STS AssumeRoleWithWebIdentity: the token's issuer, audience and subject (read, not
    /// verified: the upstream verifies the token).
    WebIdentity {
        identity_provider: String,
        principal_id: String,
        user_name: String,
    },
    /// STS AssumeRoleWithSAML: the identity provider's ARN and the assertion's subject.
    Saml {
        identity_provider: String,
        principal_id: String,
        user_name: String,
    },
}

/// One call, ready to be recorded.
#[derive(Clone, Debug)]
pub struct Call {
    /// When the request arrived (epoch ms): the record's `eventTime`, however long the call
    /// then took.
    pub arrived_millis: i64,
    /// The TLS connection it came over, and the `Host` the client gave: `tlsDetails`.
    pub tls: Option<(ConnectionTls, String)>,
    pub event_source: String,
    pub event_name: String,
    pub region: String,
    pub caller: Caller,
    pub source_ip_address: String,
    pub user_agent: Option<String>,
    /// `None` records `null`.
    pub request_parameters: Option<Value>,
    pub response_elements: Option<Value>,
    pub error: Option<AwsError>,
    pub read_only: bool,
    pub request_id: String,
    pub api_version: Option<&'static str>,
    /// `Management` or `Data`.
    pub event_category: &'static str,
    /// What the call acted on: (ARN, account, type).
    pub resources: Vec<RecordResource>,
    /// `AwsApiCall`, or `AwsServiceEvent` for what a service does on its own.
    pub event_type: &'static str,
    pub additional_event_data: Option<Value>,
    pub service_event_details: Option<Value>,
    /// The eventID, when the call had to know it before it was recorded (StopLogging);
    /// otherwise a new one is given.
    pub event_id: Option<String>,
}

impl Call {
    /// What kind of call this is, for metrics: a bounded set, whatever the request claimed.
    pub fn kind(&self) -> &'static str {
        match (&self.caller, self.event_source.as_str()) {
            (Caller::Service { .. }, _) => "service_event",
            (Caller::Unverified { .. }, _) => "refused",
            (_, "cloudtrail.amazonaws.com") => "cloudtrail",
            (_, "sts.amazonaws.com") => "sts",
            _ => "gateway",
        }
    }
}

/// An `AwsServiceEvent` about one resource, in the envelope Secrets Manager's own service
/// events have: the service as `invokedBy`, source and agent; the resource as
/// `additionalEventData.SecretId`; no parameters or response.
pub fn service_event(event: ServiceEvent, account_id: &str, region: &str, at_millis: i64) -> Call {
    let ServiceEvent {
        event_source,
        event_name,
        resource_arn,
        details: service_event_details,
    } = event;
    let request_id = if event_name.starts_with("Rotation") {
        format!("Rotation-{resource_arn}-{}", uuid::Uuid::new_v4())
    } else {
        uuid::Uuid::new_v4().to_string()
    };
    Call {
        arrived_millis: at_millis,
        tls: None,
        event_source: event_source.to_owned(),
        event_name: event_name.to_owned(),
        region: region.to_owned(),
        caller: Caller::Service {
            invoked_by: event_source.to_owned(),
            account_id: account_id.to_owned(),
        },
        source_ip_address: event_source.to_owned(),
        user_agent: Some(event_source.to_owned()),
        request_parameters: None,
        response_elements: None,
        error: None,
        read_only: false,
        request_id,
        api_version: None,
        event_category: "Management",
        resources: Vec::new(),
        event_type: "AwsServiceEvent",
        additional_event_data: Some(serde_json::json!({ "SecretId": resource_arn })),
        service_event_details,
        event_id: None,
    }
}

impl AppState {
    /// Appends the call's event and returns once it is durable.
    pub async fn record(&self, call: Call) -> Result<(), AwsError> {
        self.record_all(vec![call]).await
    }

    /// Appends the calls' events in one commit (a call and the service events it causes
    /// are stored together or not at all) and returns once they are durable.
    pub async fn record_all(&self, calls: Vec<Call>) -> Result<(), AwsError> {
        self.record_with_state(calls, Vec::new()).await
    }

    /// As [`AppState::record_all`], with the state changes the calls bring in the same
    /// commit.
    pub async fn record_with_state(
        &self,
        calls: Vec<Call>,
        changes: Vec<StateChange>,
    ) -> Result<(), AwsError> {
        if self.record_unless_refused(calls, changes).await? {
            Ok(())
        } else {
            tracing::error!("a state change the call needed no longer holds; failing it");
            Err(AwsError::internal_failure())
        }
    }

    /// As [`AppState::record_with_state`]; `Ok(false)`, with nothing recorded, when an
    /// entry the changes require (`StateChange::require`) no longer holds: someone else,
    /// on this node or another, got there first.
    pub async fn record_unless_refused(
        &self,
        calls: Vec<Call>,
        changes: Vec<StateChange>,
    ) -> Result<bool, AwsError> {
        for call in &calls {
            let outcome = if call.error.is_some() { "error" } else { "ok" };
            metrics::counter!("cairn_calls_total", "kind" => call.kind(), "outcome" => outcome)
                .increment(1);
        }
        let events = calls
            .into_iter()
            .map(|call| IndexedEvent::from_record(&self.build_record(call)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| {
                tracing::error!(%error, "a record Cairn built is not valid");
                AwsError::internal_failure()
            })?;
        // Submitting only queues the events for the writer; the task then awaits the group
        // commit without holding a thread.
        let appended = match self.store.submit_with_state(events, changes) {
            Ok(pending) => pending.completion().await,
            Err(error) => Err(error),
        };
        match appended {
            Ok(_) => Ok(true),
            Err(StoreError::Refused(why)) => {
                tracing::debug!(%why, "a submission was refused");
                Ok(false)
            }
            Err(error) => {
                tracing::error!(%error, "cannot record a call; failing it");
                Err(AwsError::internal_failure())
            }
        }
    }

    fn build_record(&self, call: Call) -> CloudTrailRecord {
        let default_account = self.credentials.default_account_id().to_owned();
        let (identity, recipient_account_id) = match &call.caller {
            Caller::Verified(principal) => (user_identity(principal), principal.account_id.clone()),
            Caller::Service {
                invoked_by,
                account_id,
            } => (
                UserIdentity {
                    account_id: Field::Present(account_id.clone()),
                    invoked_by: Field::Present(invoked_by.clone()),
                    ..UserIdentity::default()
                },
                account_id.clone(),
            ),
            Caller::Anonymous(anonymous) => (anonymous_identity(anonymous), default_account),
            Caller::Unverified { access_key_id } => (
                UserIdentity {
                    identity_type: Field::Present(UserIdentityType::Unknown),
                    principal_id: Field::Present(String::new()),
                    access_key_id: access_key_id
                        .as_deref()
                        .map(|key| truncate(key, MAX_PRESENTED_KEY_BYTES))
                        .into(),
                    ..UserIdentity::default()
                },
                default_account,
            ),
        };
        let (error_code, error_message) = match &call.error {
            Some(error) => (
                Field::Present(error.code.clone()),
                Field::Present(truncate(&error.message, MAX_SHORT_FIELD_BYTES)),
            ),
            None => (Field::Absent, Field::Absent),
        };
        let present_or_null = |value: Option<Value>| match value {
            Some(value) if fits(&value, MAX_PARAMETERS_BYTES) => Field::Present(value),
            _ => Field::Null,
        };
        CloudTrailRecord {
            event_version: Field::Present("1.11".to_owned()),
            user_identity: Field::Present(identity),
            event_time: Field::Present(format_event_time(call.arrived_millis)),
            tls_details: match &call.tls {
                Some((tls, host)) => Field::Present(TlsDetails {
                    tls_version: Field::Present(tls.tls_version.clone()),
                    cipher_suite: Field::Present(tls.cipher_suite.clone()),
                    client_provided_host_header: Field::Present(truncate(
                        host,
                        MAX_SHORT_FIELD_BYTES,
                    )),
                    ..TlsDetails::default()
                }),
                None => Field::Absent,
            },
            event_source: Field::Present(call.event_source),
            event_name: Field::Present(call.event_name),
            aws_region: Field::Present(call.region),
            source_ip_address: Field::Present(call.source_ip_address),
            user_agent: call
                .user_agent
                .map(|agent| truncate(&agent, MAX_SHORT_FIELD_BYTES))
                .into(),
            error_code,
            error_message,
            request_parameters: present_or_null(call.request_parameters),
            response_elements: present_or_null(call.response_elements),
            request_id: Field::Present(call.request_id),
            event_id: Field::Present(call.event_id.unwrap_or_else(|| self.ids.new_id())),
            read_only: Field::Present(call.read_only),
            event_type: Field::Present(call.event_type.to_owned()),
            additional_event_data: additional_event_data(&call.caller, call.additional_event_data)
                .filter(|data| fits(data, MAX_ADDITIONAL_DATA_BYTES))
                .into(),
            service_event_details: call.service_event_details.into(),
            api_version: call.api_version.map(str::to_owned).into(),
            management_event: Field::Present(call.event_category == "Management"),
            recipient_account_id: Field::Present(recipient_account_id),
            event_category: Field::Present(call.event_category.to_owned()),
            resources: if call.resources.is_empty() {
                Field::Absent
            } else {
                Field::Present(
                    call.resources
                        .into_iter()
                        .map(|resource| {
                            let mut other = Map::new();
                            let arn = if resource.arn_is_prefix {
                                other.insert("ARNPrefix".to_owned(), Value::String(resource.arn));
                                Field::Absent
                            } else {
                                Field::Present(resource.arn)
                            };
                            Resource {
                                arn,
                                account_id: resource.account_id.into(),
                                resource_type: Field::Present(resource.resource_type),
                                other,
                            }
                        })
                        .collect(),
                )
            },
            other: Map::new(),
            ..CloudTrailRecord::default()
        }
    }
}

/// `userIdentity` for a verified caller: an IAM user, or a role session with the role as
/// its `sessionIssuer`, as CloudTrail writes them.
fn user_identity(principal: &Principal) -> UserIdentity {
    let attributes = |created_at_millis: i64| SessionAttributes {
        creation_date: Field::Present(format_event_time(created_at_millis)),
        mfa_authenticated: Field::Present("false".to_owned()),
        other: Map::new(),
    };
    let (identity_type, user_name, session_context) = match &principal.kind {
        PrincipalKind::User { user_name, session } => (
            UserIdentityType::IAMUser,
            Field::Present(user_name.clone()),
            match session {
                Some(session) => Field::Present(SessionContext {
                    attributes: Field::Present(attributes(session.created_at_millis)),
                    ..SessionContext::default()
                }),
                None => Field::Absent,
            },
        ),
        PrincipalKind::AssumedRole {
            role_name,
            role_id,
            role_arn,
            session,
            ..
        } => (
            UserIdentityType::AssumedRole,
            Field::Absent,
            Field::Present(SessionContext {
                session_issuer: Field::Present(SessionIssuer {
                    issuer_type: Field::Present("Role".to_owned()),
                    principal_id: Field::Present(role_id.clone()),
                    arn: Field::Present(role_arn.clone()),
                    account_id: Field::Present(principal.account_id.clone()),
                    user_name: Field::Present(role_name.clone()),
                    other: Map::new(),
                }),
                web_id_federation_data: Field::Present(WebIdFederationData::default()),
                attributes: Field::Present(attributes(session.created_at_millis)),
                ..SessionContext::default()
            }),
        ),
        // Nobody verified who this is: only what the request presented.
        PrincipalKind::Unverified => {
            return UserIdentity {
                identity_type: Field::Present(UserIdentityType::Unknown),
                principal_id: Field::Present(principal.principal_id.clone()),
                account_id: Field::Present(principal.account_id.clone()),
                access_key_id: Field::Present(principal.access_key_id.clone()),
                ..UserIdentity::default()
            }
        }
    };
    UserIdentity {
        identity_type: Field::Present(identity_type),
        principal_id: Field::Present(principal.principal_id.clone()),
        arn: Field::Present(principal.arn.clone()),
        account_id: Field::Present(principal.account_id.clone()),
        access_key_id: Field::Present(principal.access_key_id.clone()),
        user_name,
        session_context,
        ..UserIdentity::default()
    }
}

fn anonymous_identity(caller: &AnonymousCaller) -> UserIdentity {
    let federated = |identity_type, provider: &str, principal: &str, user: &str| UserIdentity {
        identity_type: Field::Present(identity_type),
        principal_id: Field::Present(principal.to_owned()),
        user_name: Field::Present(user.to_owned()),
        identity_provider: Field::Present(provider.to_owned()),
        ..UserIdentity::default()
    };
    match caller {
        AnonymousCaller::Anonymous => UserIdentity {
            identity_type: Field::Present(UserIdentityType::Unknown),
            principal_id: Field::Present("Anonymous".to_owned()),
            ..UserIdentity::default()
        },
        AnonymousCaller::WebIdentity {
            identity_provider,
            principal_id,
            user_name,
        } => federated(
            UserIdentityType::WebIdentityUser,
            identity_provider,
            principal_id,
            user_name,
        ),
        AnonymousCaller::Saml {
            identity_provider,
            principal_id,
            user_name,
        } => federated(
            UserIdentityType::SAMLUser,
            identity_provider,
            principal_id,
            user_name,
        ),
    }
}

/// What the record adds to the service's own `additionalEventData`: that the signature was
/// not verified, when a development mode let the caller in unchecked.
fn additional_event_data(caller: &Caller, data: Option<Value>) -> Option<Value> {
    let Caller::Verified(principal) = caller else {
        return data;
    };
    if principal.is_verified() {
        return data;
    }
    let mut data = match data {
        Some(Value::Object(members)) => members,
        _ => Map::new(),
    };
    data.insert("signatureVerified".to_owned(), Value::Bool(false));
    data.insert(
        "signatureNotVerifiedBecause".to_owned(),
        Value::String("Cairn runs with accept_any_credentials: unknown access keys are let in without a signature check".to_owned()),
    );
    Some(Value::Object(data))
}

/// Whether `value` written as JSON takes at most `max` bytes.
fn fits(value: &Value, max: usize) -> bool {
    struct Budget(usize);
    impl std::io::Write for Budget {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 = self
                .0
                .checked_sub(bytes.len())
                .ok_or(std::io::ErrorKind::Other)?;
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    // Counts as it writes and stops at the budget: a huge value is not written out whole.
    serde_json::to_writer(Budget(max), value).is_ok()
}

/// Cuts `text` to at most `max` bytes on a character boundary.
fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_fit_their_budget_or_do_not() {
        let value = serde_json::json!({"data": "x".repeat(100)});
        assert!(super::fits(&value, 200));
        assert!(!super::fits(&value, 50));
        let huge = serde_json::json!({"records": vec!["y".repeat(1024); 200]});
        assert!(!super::fits(&huge, super::MAX_PARAMETERS_BYTES));
    }

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(super::truncate("héllo", 2), "h");
        assert_eq!(super::truncate("hello", 10), "hello");
    }
}
