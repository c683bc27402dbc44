//! One module per AWS service that Cairn records with rules of its own: everything Cairn
//! does for that service is in its file (or folder). To change what is recorded for KMS,
//! open `kms.rs`; for Secrets Manager, `secretsmanager/`; and so on.
//!
//! A service's rules come through one trait, [`ServiceRules`]: the names CloudTrail records
//! its calls under, which calls are data events, the members its records leave out or hide
//! beyond the general rules of `parameters`, and [`ServiceRules::record`], which turns a call
//! into its record's resources, additional data and service events. Rules are pure: the call
//! as it will be recorded comes in, record fields go out, and every rule is testable without
//! a network. A service whose records depend on the upstream's state (a secret's rotation
//! stages, a DynamoDB table's key schema) also has hooks (`hooks`): before the call, after
//! it, once it is recorded, and background work. They ask the upstream through a trait the
//! server implements.
//!
//! Nothing outside this folder names a service: the gateway asks [`rules_for`] and
//! [`ServiceHooksSet`].

pub mod hooks;

mod apigateway;
mod dynamodb;
mod ec2;
mod iam;
mod kms;
mod lambda;
mod rolesanywhere;
mod s3;
mod s3control;
mod secretsmanager;
mod ssm;
pub mod sts;

use std::any::Any;
use std::sync::Arc;

use cairn_model::StateChange;
use serde_json::Value;

use crate::routing::ServiceModel;

/// The general CloudTrail redaction token.
pub const HIDDEN: &str = "HIDDEN_DUE_TO_SECURITY_REASONS";

/// What happens to a member wherever it appears.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Redaction {
    /// The member is left out of the record entirely (AWS omits it).
    Omit,
    /// The member stays, its value replaced by [`HIDDEN`].
    Hide,
    /// The member stays, its value replaced by the service's own token.
    Replace(&'static str),
}

/// What a service's hooks learned from the upstream around one call: the service's own
/// type, read back by its own rules.
pub type Observed = dyn Any + Send + Sync;

pub use dynamodb::{DynamoDbHooks, KeySchemas};
pub use hooks::{
    AskingAs, BoxFuture, CallHook, HostError, RecordedEvent, ServiceHooks, ServiceHooksSet,
    ServiceHost, Upstream,
};
pub use secretsmanager::{
    end_due_deletions, RotationBook, RotationSettings, Sealer, SecretsManagerHooks,
    ROTATION_WATCHES,
};

/// The hooks of every service that has them: DynamoDB's key schemas, Secrets Manager's
/// rotations (watched with `rotation`, written down in `rotation_book`) and recovery
/// windows.
pub fn standard_hooks(
    clock: Arc<dyn cairn_model::Clock>,
    rotation: RotationSettings,
    rotation_book: RotationBook,
) -> ServiceHooksSet {
    ServiceHooksSet::new(vec![
        ("dynamodb", Arc::new(DynamoDbHooks::new(clock))),
        (
            "secretsmanager",
            Arc::new(SecretsManagerHooks::new(rotation, rotation_book)),
        ),
    ])
}

/// What one service adds to, or takes out of, its records. Every method has a default that
/// means "nothing special": a service implements only what it does differently.
pub trait ServiceRules: Sync {
    /// The service's botocore id, as the routing table names it.
    fn id(&self) -> &'static str;

    /// `eventSource`, where it is not `<endpointPrefix>.amazonaws.com`.
    fn event_source(&self) -> Option<&'static str> {
        None
    }

    /// (operation, eventName) for the calls CloudTrail records under another name.
    fn renamed_operations(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }

    /// CloudTrail's `errorCode` for an error the service answered with `code` and HTTP
    /// `status`, where it is not the general rule's.
    fn error_code(&self, _code: &str, _status: u16) -> Option<String> {
        None
    }

    /// Whether CloudTrail logs `operation` as a data event.
    fn is_data_event(&self, _operation: &str) -> bool {
        false
    }

    /// (member in lowerCamelCase, what happens to it) for the members this service's
    /// records treat otherwise than the general rules do. First match wins; matching
    /// ignores case.
    fn redactions(&self) -> &'static [(&'static str, Redaction)] {
        &[]
    }

    /// Whether AWS leaves `operation`'s answer out of its record (cryptographic output,
    /// secret values, items).
    fn hides_response(&self, _operation: &str) -> bool {
        false
    }

    /// Takes out of a call's logged input what the service never logs, beyond redaction
    /// (DynamoDB's attribute values), given what its hooks `observed`.
    fn log_request(&self, _parameters: &mut Value, _observed: Option<&Observed>) {}

    /// The call's resources, additional event data and service events, and any change the
    /// service makes to its logged parameters, response or readOnly.
    fn record(&self, _call: &mut CapturedCall) {}
}

/// Every service with rules of its own.
static RULES: &[&dyn ServiceRules] = &[
    &apigateway::ApiGateway,
    &dynamodb::DynamoDb,
    &ec2::Ec2,
    &iam::Iam,
    &kms::Kms,
    &lambda::Lambda,
    &rolesanywhere::RolesAnywhere,
    &s3::S3,
    &s3control::S3Control,
    &secretsmanager::SecretsManager,
    &ssm::Ssm,
];

/// The largest request body AWS takes, by signing name, where it is over the gateway's
/// default: such bodies are read whole (their signature hashes them) and forwarded. JSON
/// carries binary data as base64, a third more than the limit AWS states on the data.
const REQUEST_BODY_LIMITS: &[(&str, usize)] = &[
    // BatchWriteItem and TransactWriteItems: 16 MB per request.
    ("dynamodb", 16 << 20),
    // PutRecords: 10 MiB of data per request, base64 in JSON.
    ("kinesis", 14 << 20),
    // PutRecordBatch: 4 MiB of data per request, base64 in JSON.
    ("firehose", 6 << 20),
    // CreateFunction / UpdateFunctionCode: a 50 MB zip, base64 in JSON.
    ("lambda", 70 << 20),
    // ImportRestApi / PutRestApi: definitions up to 10 MB (API Gateway's quotas).
    ("apigateway", 10 << 20),
];

/// The gateway's limit on a request body read whole, for services AWS states no larger one.
pub const DEFAULT_REQUEST_BODY_LIMIT: usize = 2 << 20;

/// The largest body a request signed for `signing_name` may have when it is read whole.
pub fn request_body_limit(signing_name: &str) -> usize {
    REQUEST_BODY_LIMITS
        .iter()
        .find(|(name, _)| *name == signing_name)
        .map_or(DEFAULT_REQUEST_BODY_LIMIT, |(_, limit)| *limit)
}

/// The rules of the service `service_id`, if it has any.
pub fn rules_for(service_id: &str) -> Option<&'static dyn ServiceRules> {
    RULES.iter().copied().find(|rules| rules.id() == service_id)
}

/// The `eventSource` CloudTrail records for calls to `service`.
pub fn event_source(service: &ServiceModel) -> String {
    rules_for(&service.id)
        .and_then(ServiceRules::event_source)
        .map_or_else(
            || format!("{}.amazonaws.com", service.endpoint_prefix),
            str::to_owned,
        )
}

/// The `eventName` CloudTrail records for `operation` of the service `service_id`.
pub fn event_name<'a>(service_id: &str, operation: &'a str) -> &'a str {
    rules_for(service_id)
        .and_then(|rules| {
            rules
                .renamed_operations()
                .iter()
                .find(|(renamed, _)| *renamed == operation)
        })
        .map_or(operation, |(_, event_name)| event_name)
}

/// CloudTrail's `errorCode` for an error `service` answered with `code` and HTTP `status`.
/// A refused authorization is `AccessDenied` whatever the service's protocol calls it (real
/// Organizations records, and Lambda's guide, record `AccessDeniedException` so); services
/// whose records name an error by its exception have the model's `errorNames`; a few services
/// spell codes their own way.
pub fn error_code(service: &ServiceModel, code: &str, status: u16) -> String {
    if let Some(code) = rules_for(&service.id).and_then(|rules| rules.error_code(code, status)) {
        return code;
    }
    if code == "AccessDeniedException" {
        return "AccessDenied".to_owned();
    }
    service
        .error_names
        .get(code)
        .cloned()
        .unwrap_or_else(|| code.to_owned())
}

/// `Data` for the calls CloudTrail logs as data events, else `Management`.
pub fn event_category(service_id: &str, operation: &str) -> &'static str {
    if rules_for(service_id).is_some_and(|rules| rules.is_data_event(operation)) {
        "Data"
    } else {
        "Management"
    }
}

/// Whether AWS leaves `operation`'s answer out of its record.
pub fn hides_response(service_id: &str, operation: &str) -> bool {
    rules_for(service_id).is_some_and(|rules| rules.hides_response(operation))
}

/// The service's own redaction of `member`, if it has one.
pub fn redaction(service_id: &str, member: &str) -> Option<Redaction> {
    rules_for(service_id)?
        .redactions()
        .iter()
        .find(|(field, _)| field.eq_ignore_ascii_case(member))
        .map(|(_, redaction)| *redaction)
}

/// Takes out of `parameters` what `service_id` never logs, beyond redaction.
pub fn log_request(service_id: &str, parameters: &mut Value, observed: Option<&Observed>) {
    if let Some(rules) = rules_for(service_id) {
        rules.log_request(parameters, observed);
    }
}

/// Applies the rules of the call's service, if it has any.
pub fn apply(call: &mut CapturedCall) {
    if let Some(rules) = rules_for(&call.service_id) {
        rules.record(call);
    }
}

/// A call as the gateway is about to record it.
#[derive(Clone, Default)]
pub struct CapturedCall {
    pub service_id: String,
    pub operation: String,
    pub region: String,
    /// The account the call acts in: the caller's.
    pub account_id: String,
    pub request_parameters: Option<Value>,
    pub response_elements: Option<Value>,
    /// The upstream's response, parsed and lowerCamelCased; `None` when it failed or was not
    /// JSON.
    pub upstream_response: Option<Value>,
    pub succeeded: bool,
    pub read_only: bool,
    pub resources: Vec<RecordResource>,
    /// Events the service itself emits because of this call.
    pub service_events: Vec<ServiceEvent>,
    /// The request's `Host` header (S3 logs it among the parameters).
    pub host: Option<String>,
    /// How the call was authenticated and how many body bytes went each way, for S3's
    /// `additionalEventData`.
    pub transfer: Option<Transfer>,
    pub additional_event_data: Option<Value>,
    /// What a service's hooks learned from the upstream around this call (a rotation's
    /// stages, a table's key schema).
    pub observed: Option<Arc<Observed>>,
    /// Changes to the state Cairn keeps beside the events (a schedule the call starts or
    /// ends), committed with the call's events.
    pub state_changes: Vec<StateChange>,
}

impl CapturedCall {
    /// What the service's hooks observed, if they observed a `T`.
    pub fn observed<T: Any>(&self) -> Option<&T> {
        self.observed.as_deref()?.downcast_ref()
    }
}

impl std::fmt::Debug for CapturedCall {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("CapturedCall")
            .field("service_id", &self.service_id)
            .field("operation", &self.operation)
            .field("succeeded", &self.succeeded)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Transfer {
    pub presigned: bool,
    /// SigV2 for S3's legacy presigned URLs.
    pub legacy_signature: bool,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// One entry of a record's `resources`: ARN, owning account, CloudFormation-style type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordResource {
    pub arn: String,
    /// Absent where AWS leaves it out (S3 objects).
    pub account_id: Option<String>,
    pub resource_type: String,
    /// Logged as `ARNPrefix` rather than `ARN`: the objects a listing covers.
    pub arn_is_prefix: bool,
}

/// An `AwsServiceEvent` a call causes, about one resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceEvent {
    pub event_source: &'static str,
    pub event_name: &'static str,
    pub resource_arn: String,
    /// `serviceEventDetails`, when the event has any.
    pub details: Option<Value>,
}

/// Adds a resource once; its account is the ARN's, or else the caller's.
fn push_resource(call: &mut CapturedCall, arn: String, resource_type: &str) {
    let account_id = arn
        .split(':')
        .nth(4)
        .filter(|account| !account.is_empty())
        .unwrap_or(&call.account_id)
        .to_owned();
    let resource = RecordResource {
        arn,
        account_id: Some(account_id),
        resource_type: resource_type.to_owned(),
        arn_is_prefix: false,
    };
    if !call.resources.contains(&resource) {
        call.resources.push(resource);
    }
}

fn member<'v>(value: Option<&'v Value>, name: &str) -> Option<&'v str> {
    value?.get(name)?.as_str().filter(|text| !text.is_empty())
}

fn strings<'v>(value: Option<&'v Value>, name: &str) -> Vec<&'v str> {
    match value.and_then(|value| value.get(name)) {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
pub(crate) fn test_call(
    service: &str,
    operation: &str,
    request: Value,
    response: Option<Value>,
) -> CapturedCall {
    CapturedCall {
        service_id: service.into(),
        operation: operation.into(),
        region: "us-east-1".into(),
        account_id: "111122223333".into(),
        request_parameters: Some(request),
        response_elements: response.clone(),
        upstream_response: response,
        succeeded: true,
        ..CapturedCall::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RoutingTable;

    #[test]
    fn error_codes_are_recorded_as_ec2_and_iam_record_them() {
        let table = RoutingTable::builtin();
        let code =
            |id: &str, code: &str, status| error_code(table.service(id).unwrap(), code, status);
        assert_eq!(
            code("ec2", "UnauthorizedOperation", 403),
            "Client.UnauthorizedOperation"
        );
        assert_eq!(code("ec2", "InternalError", 500), "Server.InternalError");
        assert_eq!(
            code("iam", "EntityTemporarilyUnmodifiable", 409),
            "EntityTemporarilyUnmodifiableException"
        );
        assert_eq!(code("iam", "NoSuchEntity", 404), "NoSuchEntityException");
        assert_eq!(
            code("iam", "AccessDenied", 403),
            "AccessDenied",
            "a code the model has no exception for stays as it is"
        );
        assert_eq!(
            code("organizations", "AccessDeniedException", 400),
            "AccessDenied"
        );
        assert_eq!(
            code("sns", "NotFound", 404),
            "NotFound",
            "other services' records keep the wire code"
        );
    }

    #[test]
    fn renamed_operations_keep_other_services_and_operations_as_they_are() {
        assert_eq!(
            event_name("lambda", "UpdateFunctionConfiguration"),
            "UpdateFunctionConfiguration20150331v2"
        );
        assert_eq!(event_name("lambda", "Invoke"), "Invoke");
        assert_eq!(event_name("s3", "ListObjectsV2"), "ListObjects");
        assert_eq!(
            event_name("s3", "PutBucketLifecycleConfiguration"),
            "PutBucketLifecycle"
        );
        assert_eq!(
            event_name("s3control", "PutPublicAccessBlock"),
            "PutAccountPublicAccessBlock"
        );
        assert_eq!(event_name("kms", "TagResource"), "TagResource");
        let table = RoutingTable::builtin();
        assert_eq!(
            event_source(table.service("s3control").unwrap()),
            "s3.amazonaws.com"
        );
        assert_eq!(
            event_source(table.service("kms").unwrap()),
            "kms.amazonaws.com"
        );
    }

    #[test]
    fn every_service_and_renamed_operation_is_one_the_routing_table_knows() {
        let table = RoutingTable::builtin();
        for rules in RULES {
            let service = table
                .service(rules.id())
                .unwrap_or_else(|| panic!("{} is not in the routing table", rules.id()));
            for (operation, _) in rules.renamed_operations() {
                assert!(
                    service.operations.iter().any(|known| known == operation),
                    "{} has no operation {operation}",
                    rules.id()
                );
            }
        }
    }
}
