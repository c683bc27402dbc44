//! The CloudTrail record, field by field as the User Guide's "CloudTrail record contents"
//! lists them (eventVersion 1.0 to 1.11), and `userIdentity` with every identity type.
//!
//! Every struct keeps the fields it does not name in `other`, so a record read from a real
//! trail is written back with no field lost.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::field::Field;
use crate::time::{parse_event_time, EventTimeError};

/// Why bytes are not a CloudTrail record. Each names the one thing that is wrong, because
/// import reports it per record.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("not a JSON object: {0}")]
    NotAnObject(String),
    #[error("field {field} has the wrong type: {detail}")]
    WrongType { field: String, detail: String },
    #[error("missing {0}")]
    MissingField(&'static str),
    #[error(transparent)]
    InvalidEventTime(#[from] EventTimeError),
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CloudTrailRecord {
    #[serde(
        rename = "eventVersion",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub event_version: Field<String>,
    #[serde(
        rename = "userIdentity",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub user_identity: Field<UserIdentity>,
    #[serde(
        rename = "eventTime",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub event_time: Field<String>,
    #[serde(
        rename = "eventSource",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub event_source: Field<String>,
    #[serde(
        rename = "eventName",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub event_name: Field<String>,
    #[serde(
        rename = "awsRegion",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub aws_region: Field<String>,
    #[serde(
        rename = "sourceIPAddress",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub source_ip_address: Field<String>,
    #[serde(
        rename = "userAgent",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub user_agent: Field<String>,
    #[serde(
        rename = "errorCode",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub error_code: Field<String>,
    #[serde(
        rename = "errorMessage",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub error_message: Field<String>,
    #[serde(
        rename = "requestParameters",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub request_parameters: Field<Value>,
    #[serde(
        rename = "responseElements",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub response_elements: Field<Value>,
    #[serde(
        rename = "additionalEventData",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub additional_event_data: Field<Value>,
    #[serde(
        rename = "requestID",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub request_id: Field<String>,
    #[serde(rename = "eventID", default, skip_serializing_if = "Field::is_absent")]
    pub event_id: Field<String>,
    #[serde(rename = "readOnly", default, skip_serializing_if = "Field::is_absent")]
    pub read_only: Field<bool>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub resources: Field<Vec<Resource>>,
    #[serde(
        rename = "eventType",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub event_type: Field<String>,
    #[serde(
        rename = "apiVersion",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub api_version: Field<String>,
    #[serde(
        rename = "managementEvent",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub management_event: Field<bool>,
    #[serde(
        rename = "recipientAccountId",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub recipient_account_id: Field<String>,
    #[serde(
        rename = "sharedEventID",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub shared_event_id: Field<String>,
    #[serde(
        rename = "vpcEndpointId",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub vpc_endpoint_id: Field<String>,
    #[serde(
        rename = "vpcEndpointAccountId",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub vpc_endpoint_account_id: Field<String>,
    #[serde(
        rename = "serviceEventDetails",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub service_event_details: Field<Value>,
    #[serde(
        rename = "eventCategory",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub event_category: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub addendum: Field<Addendum>,
    #[serde(
        rename = "sessionCredentialFromConsole",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub session_credential_from_console: Field<String>,
    #[serde(
        rename = "edgeDeviceDetails",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub edge_device_details: Field<Value>,
    #[serde(
        rename = "tlsDetails",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub tls_details: Field<TlsDetails>,
    #[serde(
        rename = "insightDetails",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub insight_details: Field<InsightDetails>,
    #[serde(
        rename = "eventContext",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub event_context: Field<Value>,
    /// Fields this model does not name (vendor additions, future versions), kept verbatim.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `userIdentity.type`. Unknown spellings survive as `Other`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserIdentityType {
    Root,
    IAMUser,
    AssumedRole,
    Role,
    FederatedUser,
    Directory,
    AWSAccount,
    AWSService,
    IdentityCenterUser,
    SAMLUser,
    WebIdentityUser,
    Unknown,
    #[serde(untagged)]
    Other(String),
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UserIdentity {
    #[serde(rename = "type", default, skip_serializing_if = "Field::is_absent")]
    pub identity_type: Field<UserIdentityType>,
    #[serde(
        rename = "principalId",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub principal_id: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub arn: Field<String>,
    #[serde(
        rename = "accountId",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub account_id: Field<String>,
    #[serde(
        rename = "accessKeyId",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub access_key_id: Field<String>,
    #[serde(rename = "userName", default, skip_serializing_if = "Field::is_absent")]
    pub user_name: Field<String>,
    #[serde(
        rename = "invokedBy",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub invoked_by: Field<String>,
    #[serde(
        rename = "sessionContext",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub session_context: Field<SessionContext>,
    #[serde(
        rename = "onBehalfOf",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub on_behalf_of: Field<OnBehalfOf>,
    #[serde(
        rename = "inScopeOf",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub in_scope_of: Field<InScopeOf>,
    #[serde(
        rename = "credentialId",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub credential_id: Field<String>,
    #[serde(
        rename = "identityProvider",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub identity_provider: Field<String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionContext {
    #[serde(
        rename = "sessionIssuer",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub session_issuer: Field<SessionIssuer>,
    #[serde(
        rename = "webIdFederationData",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub web_id_federation_data: Field<WebIdFederationData>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub attributes: Field<SessionAttributes>,
    #[serde(
        rename = "sourceIdentity",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub source_identity: Field<String>,
    #[serde(
        rename = "ec2RoleDelivery",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub ec2_role_delivery: Field<String>,
    #[serde(
        rename = "assumedRoot",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub assumed_root: Field<String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionIssuer {
    #[serde(rename = "type", default, skip_serializing_if = "Field::is_absent")]
    pub issuer_type: Field<String>,
    #[serde(
        rename = "principalId",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub principal_id: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub arn: Field<String>,
    #[serde(
        rename = "accountId",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub account_id: Field<String>,
    #[serde(rename = "userName", default, skip_serializing_if = "Field::is_absent")]
    pub user_name: Field<String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WebIdFederationData {
    #[serde(
        rename = "federatedProvider",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub federated_provider: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub attributes: Field<Value>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `sessionContext.attributes`; AWS writes `mfaAuthenticated` as the string "true"/"false".
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionAttributes {
    #[serde(
        rename = "creationDate",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub creation_date: Field<String>,
    #[serde(
        rename = "mfaAuthenticated",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub mfa_authenticated: Field<String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OnBehalfOf {
    #[serde(rename = "userId", default, skip_serializing_if = "Field::is_absent")]
    pub user_id: Field<String>,
    #[serde(
        rename = "identityStoreArn",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub identity_store_arn: Field<String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InScopeOf {
    #[serde(
        rename = "sourceArn",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub source_arn: Field<String>,
    #[serde(
        rename = "sourceAccount",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub source_account: Field<String>,
    #[serde(
        rename = "issuerType",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub issuer_type: Field<String>,
    #[serde(
        rename = "credentialsIssuedTo",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub credentials_issued_to: Field<String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// One entry of `resources`; note AWS's upper-case `ARN`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    #[serde(rename = "ARN", default, skip_serializing_if = "Field::is_absent")]
    pub arn: Field<String>,
    #[serde(
        rename = "accountId",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub account_id: Field<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Field::is_absent")]
    pub resource_type: Field<String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TlsDetails {
    #[serde(
        rename = "tlsVersion",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub tls_version: Field<String>,
    #[serde(
        rename = "cipherSuite",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub cipher_suite: Field<String>,
    #[serde(
        rename = "clientProvidedHostHeader",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub client_provided_host_header: Field<String>,
    #[serde(
        rename = "keyExchange",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub key_exchange: Field<String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Addendum {
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub reason: Field<String>,
    #[serde(
        rename = "updatedFields",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub updated_fields: Field<String>,
    #[serde(
        rename = "originalRequestID",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub original_request_id: Field<String>,
    #[serde(
        rename = "originalEventID",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub original_event_id: Field<String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `insightDetails` of an Insights record (eventType `AwsCloudTrailInsight`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InsightDetails {
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub state: Field<String>,
    #[serde(
        rename = "eventSource",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub event_source: Field<String>,
    #[serde(
        rename = "eventName",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub event_name: Field<String>,
    #[serde(
        rename = "insightType",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub insight_type: Field<String>,
    #[serde(
        rename = "errorCode",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub error_code: Field<String>,
    #[serde(
        rename = "insightContext",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub insight_context: Field<Value>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl CloudTrailRecord {
    /// Parses one record and checks what the event history cannot do without: a parseable
    /// `eventTime`, and `eventSource` + `eventName` (or `insightDetails` for Insights).
    pub fn from_json(bytes: &[u8]) -> Result<Self, RecordError> {
        let first = bytes.iter().find(|byte| !byte.is_ascii_whitespace());
        if first != Some(&b'{') {
            // Parse anyway, for a precise message about what was found instead.
            let value: Value = serde_json::from_slice(bytes)
                .map_err(|error| RecordError::NotAnObject(error.to_string()))?;
            return Self::from_value(value);
        }
        let record: CloudTrailRecord = serde_json::from_slice(bytes).map_err(|error| {
            if error.is_syntax() || error.is_eof() {
                RecordError::NotAnObject(error.to_string())
            } else {
                RecordError::WrongType {
                    field: field_named_in(&error.to_string()),
                    detail: error.to_string(),
                }
            }
        })?;
        record.validate()?;
        Ok(record)
    }

    pub fn from_value(value: Value) -> Result<Self, RecordError> {
        if !value.is_object() {
            return Err(RecordError::NotAnObject(format!(
                "found {}",
                json_kind(&value)
            )));
        }
        let record: CloudTrailRecord =
            serde_json::from_value(value).map_err(|error| RecordError::WrongType {
                field: field_named_in(&error.to_string()),
                detail: error.to_string(),
            })?;
        record.validate()?;
        Ok(record)
    }

    fn validate(&self) -> Result<(), RecordError> {
        check_required(RequiredFields {
            event_time: self.event_time.get().map(String::as_str),
            insight: self.is_insight(),
            has_insight_details: self.insight_details.get().is_some(),
            has_event_source: self.event_source.get().is_some(),
            has_event_name: self.event_name.get().is_some(),
        })
        .map(|_| ())
    }

    pub fn event_time_millis(&self) -> Result<i64, RecordError> {
        let text = self
            .event_time
            .get()
            .ok_or(RecordError::MissingField("eventTime"))?;
        Ok(parse_event_time(text)?)
    }

    pub fn is_insight(&self) -> bool {
        crate::EventCategory::of(self) == crate::EventCategory::Insight
    }

    pub fn to_json(&self) -> String {
        // A struct of strings, maps and JSON values always serializes.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }
}

impl UserIdentity {
    /// The name Event history shows in its `Username` column: the IAM user name, the role
    /// session name for assumed roles and federated users, `root` for the root user, and the
    /// calling service for AWS service identities.
    pub fn display_user_name(&self) -> Option<String> {
        display_user_name(
            self.identity_type.get(),
            self.user_name.get().map(String::as_str),
            self.arn.get().map(String::as_str),
            self.invoked_by.get().map(String::as_str),
        )
    }
}

/// What makes a record usable by the event history, whichever way it was read.
pub(crate) struct RequiredFields<'a> {
    pub event_time: Option<&'a str>,
    pub insight: bool,
    pub has_insight_details: bool,
    pub has_event_source: bool,
    pub has_event_name: bool,
}

/// A parseable `eventTime`, and `eventSource` + `eventName` (or `insightDetails` for
/// Insights). Returns the event time in epoch milliseconds. Shared by the typed record and
/// the borrowed view, so both reject exactly the same records.
pub(crate) fn check_required(fields: RequiredFields<'_>) -> Result<i64, RecordError> {
    let event_time = fields
        .event_time
        .ok_or(RecordError::MissingField("eventTime"))?;
    let millis = parse_event_time(event_time)?;
    if fields.insight {
        if !fields.has_insight_details {
            return Err(RecordError::MissingField("insightDetails"));
        }
        return Ok(millis);
    }
    if !fields.has_event_source {
        return Err(RecordError::MissingField("eventSource"));
    }
    if !fields.has_event_name {
        return Err(RecordError::MissingField("eventName"));
    }
    Ok(millis)
}

/// See [`UserIdentity::display_user_name`]; shared with the borrowed record view.
pub(crate) fn display_user_name(
    identity_type: Option<&UserIdentityType>,
    user_name: Option<&str>,
    arn: Option<&str>,
    invoked_by: Option<&str>,
) -> Option<String> {
    if let Some(name) = user_name.filter(|name| !name.is_empty()) {
        return Some(name.to_owned());
    }
    match identity_type? {
        UserIdentityType::Root => Some("root".to_owned()),
        UserIdentityType::AssumedRole
        | UserIdentityType::FederatedUser
        | UserIdentityType::WebIdentityUser
        | UserIdentityType::SAMLUser => arn
            .and_then(|arn| arn.rsplit('/').next())
            .filter(|name| !name.is_empty())
            .map(str::to_owned),
        UserIdentityType::AWSService => invoked_by.map(str::to_owned),
        _ => None,
    }
}

pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// serde's messages do not carry the field name for a type mismatch inside a flattened
/// struct; keep whatever backtick-quoted name they do carry, for the import report.
pub(crate) fn field_named_in(message: &str) -> String {
    message
        .split('`')
        .nth(1)
        .map(str::to_owned)
        .unwrap_or_else(|| "record".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Value {
        json!({
            "eventVersion": "1.11",
            "userIdentity": {
                "type": "AssumedRole",
                "principalId": "AROAEXAMPLE:my-session",
                "arn": "arn:aws:sts::123456789012:assumed-role/Admin/my-session",
                "accountId": "123456789012",
                "accessKeyId": "ASIAEXAMPLE",
                "sessionContext": {
                    "sessionIssuer": {"type": "Role", "principalId": "AROAEXAMPLE",
                        "arn": "arn:aws:iam::123456789012:role/Admin",
                        "accountId": "123456789012", "userName": "Admin"},
                    "webIdFederationData": {},
                    "attributes": {"creationDate": "2024-01-01T00:00:00Z", "mfaAuthenticated": "false"},
                    "futureField": 7
                }
            },
            "eventTime": "2024-01-01T00:00:01Z",
            "eventSource": "kms.amazonaws.com",
            "eventName": "DisableKey",
            "awsRegion": "us-east-1",
            "sourceIPAddress": "10.0.0.1",
            "userAgent": "aws-cli/1.45",
            "requestParameters": {"keyId": "k"},
            "responseElements": null,
            "requestID": "r",
            "eventID": "e",
            "readOnly": false,
            "resources": [{"accountId": "123456789012", "type": "AWS::KMS::Key", "ARN": "arn:aws:kms:us-east-1:123456789012:key/k"}],
            "eventType": "AwsApiCall",
            "managementEvent": true,
            "recipientAccountId": "123456789012",
            "eventCategory": "Management",
            "tlsDetails": {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256", "clientProvidedHostHeader": "kms.us-east-1.amazonaws.com"},
            "@timestamp": "vendor field"
        })
    }

    #[test]
    fn round_trips_without_losing_fields_or_nulls() {
        let input = sample();
        let record = CloudTrailRecord::from_value(input.clone()).unwrap();
        assert_eq!(record.response_elements, Field::Null);
        assert_eq!(record.other.get("@timestamp"), Some(&json!("vendor field")));
        let output: Value = serde_json::from_str(&record.to_json()).unwrap();
        assert_eq!(output, input);
    }

    #[test]
    fn from_json_agrees_with_from_value() {
        let input = sample();
        let bytes = serde_json::to_vec(&input).unwrap();
        assert_eq!(
            CloudTrailRecord::from_json(&bytes).unwrap(),
            CloudTrailRecord::from_value(input).unwrap()
        );
        assert!(matches!(
            CloudTrailRecord::from_json(b"[1]"),
            Err(RecordError::NotAnObject(_))
        ));
        assert!(matches!(
            CloudTrailRecord::from_json(br#"{"eventTime": 5}"#),
            Err(RecordError::WrongType { .. })
        ));
    }

    #[test]
    fn reports_what_is_missing() {
        let mut input = sample();
        input.as_object_mut().unwrap().remove("eventTime");
        assert_eq!(
            CloudTrailRecord::from_value(input),
            Err(RecordError::MissingField("eventTime"))
        );
        let mut input = sample();
        input["eventTime"] = json!("yesterday");
        assert!(matches!(
            CloudTrailRecord::from_value(input),
            Err(RecordError::InvalidEventTime(_))
        ));
        assert!(matches!(
            CloudTrailRecord::from_value(json!([1])),
            Err(RecordError::NotAnObject(_))
        ));
        let mut input = sample();
        input["readOnly"] = json!("maybe");
        assert!(matches!(
            CloudTrailRecord::from_value(input),
            Err(RecordError::WrongType { .. })
        ));
    }

    #[test]
    fn display_user_name_follows_event_history() {
        let record = CloudTrailRecord::from_value(sample()).unwrap();
        let identity = record.user_identity.get().unwrap();
        assert_eq!(identity.display_user_name().as_deref(), Some("my-session"));
        let root: UserIdentity = serde_json::from_value(json!({"type": "Root"})).unwrap();
        assert_eq!(root.display_user_name().as_deref(), Some("root"));
        let user: UserIdentity =
            serde_json::from_value(json!({"type": "IAMUser", "userName": "alice"})).unwrap();
        assert_eq!(user.display_user_name().as_deref(), Some("alice"));
        let odd: UserIdentity = serde_json::from_value(json!({"type": "Quantum"})).unwrap();
        assert_eq!(
            odd.identity_type,
            Field::Present(UserIdentityType::Other("Quantum".into()))
        );
    }
}

#[cfg(test)]
mod real_records {
    use super::*;

    /// Every record of the shared real-world samples parses into the typed model and comes
    /// back as the same JSON: no field lost, no null turned into an absence.
    #[test]
    fn every_sample_record_round_trips() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/data/cloudtrail-samples/stratus-red-team-detonation-logs/detonation-logs");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).expect("the shared samples sit beside the repository")
        {
            let path = entry.unwrap().path();
            let records: Vec<Value> =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            for original in records {
                let record = CloudTrailRecord::from_value(original.clone())
                    .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
                let again: Value = serde_json::from_str(&record.to_json()).unwrap();
                assert_eq!(again, original, "{}", path.display());
                checked += 1;
            }
        }
        assert_eq!(checked, 310);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Any JSON value, a few levels deep.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "[a-zA-Z0-9 _:/.-]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-zA-Z@]{1,8}", inner, 0..4)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    /// Known fields with values of their own types, or null, plus arbitrary unknown fields.
    fn record() -> impl Strategy<Value = Value> {
        let text = || {
            prop_oneof![
                Just(Value::Null),
                "[a-zA-Z0-9:/._-]{0,16}".prop_map(Value::String)
            ]
        };
        (
            text(),
            text(),
            text(),
            prop_oneof![Just(Value::Null), any::<bool>().prop_map(Value::Bool)],
            json_value(),
            json_value(),
            prop::collection::btree_map("x[a-zA-Z]{1,8}", json_value(), 0..4),
            prop::option::of((text(), text(), text())),
        )
            .prop_map(|(name, source, agent, read_only, parameters, response, extra, identity)| {
                let mut record = serde_json::json!({
                    "eventTime": "2024-01-01T00:00:00Z",
                    "eventName": name, "eventSource": source, "userAgent": agent,
                    "readOnly": read_only, "requestParameters": parameters, "responseElements": response,
                });
                let object = record.as_object_mut().unwrap();
                if let Some((user, key, arn)) = identity {
                    object.insert(
                        "userIdentity".into(),
                        serde_json::json!({"type": "IAMUser", "userName": user, "accessKeyId": key, "arn": arn}),
                    );
                }
                object.extend(extra);
                record
            })
    }

    proptest! {
        #[test]
        fn typed_round_trip_is_lossless(input in record()) {
            let text = serde_json::to_vec(&input).unwrap();
            // Only records missing eventSource/eventName are rejected, never reshaped.
            match CloudTrailRecord::from_json(&text) {
                Ok(record) => {
                    let output: Value = serde_json::from_str(&record.to_json()).unwrap();
                    prop_assert_eq!(output, input);
                }
                Err(error) => prop_assert!(matches!(error, RecordError::MissingField(_)), "{error}"),
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = CloudTrailRecord::from_json(&bytes);
            if let Ok(text) = String::from_utf8(bytes) {
                let _ = crate::IndexedEvent::from_json_text(text);
            }
        }
    }
}
