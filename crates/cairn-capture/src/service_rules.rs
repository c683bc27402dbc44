//! What particular services add to, or take out of, their CloudTrail records, beyond the
//! general rules of `parameters`: KMS's key ARNs and quiet cryptographic calls, Systems
//! Manager's document, command, session and parameter ARNs, Secrets Manager's secret ARNs and
//! the service events (`AwsServiceEvent`) that its deletions, restores and rotations cause,
//! S3's buckets and objects, DynamoDB's tables and Lambda's functions.
//!
//! Rules see the call as it will be recorded (member names already lowerCamelCase, secrets
//! already redacted) plus the upstream's whole parsed response, which is read for ARNs only
//! and never recorded from here.

use serde_json::{json, Map, Value};

use crate::dynamodb_items;

/// A call as the gateway is about to record it.
#[derive(Clone, Debug, Default, PartialEq)]
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
    /// What the gateway learned from the upstream about the secret's rotation around this
    /// call (a rotation's state is the upstream's, not something a call carries).
    pub rotation: RotationSeen,
}

/// A secret's rotation as the gateway saw it around one call.
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

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Transfer {
    pub presigned: bool,
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

/// An `AwsServiceEvent` a call causes, about one secret (Secrets Manager is the one service
/// so far that emits them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceEvent {
    pub event_source: &'static str,
    pub event_name: &'static str,
    pub resource_arn: String,
}

pub const SECRETS_MANAGER_SOURCE: &str = "secretsmanager.amazonaws.com";
pub const START_SECRET_VERSION_DELETE: &str = "StartSecretVersionDelete";
pub const CANCEL_SECRET_VERSION_DELETE: &str = "CancelSecretVersionDelete";
pub const END_SECRET_VERSION_DELETE: &str = "EndSecretVersionDelete";
pub const ROTATION_ABANDONED: &str = "RotationAbandoned";
pub const ROTATION_STARTED: &str = "RotationStarted";
pub const ROTATION_SUCCEEDED: &str = "RotationSucceeded";
pub const ROTATION_FAILED: &str = "RotationFailed";

/// Applies the rules of the call's service, if it has any.
pub fn apply(call: &mut CapturedCall) {
    match call.service_id.as_str() {
        "kms" => kms(call),
        "ssm" => ssm(call),
        "secretsmanager" => secrets_manager(call),
        "s3" => s3(call),
        "dynamodb" => dynamodb(call),
        "lambda" => lambda(call),
        "ec2" => ec2(call),
        _ => {}
    }
}

/// DynamoDB names the table a call acts on, whether the caller gave its name or its ARN.
/// DynamoDB names its table in `tableName` or `resourceArn`; batch calls name theirs as the
/// keys of `requestItems` (kept as written: see `map_shapes`), transactions in each of the
/// `requestItems` they are logged as, PartiQL statements after `FROM`, `INTO` or `UPDATE`.
fn dynamodb(call: &mut CapturedCall) {
    let parameters = call.request_parameters.as_ref();
    let mut tables: Vec<String> = [
        member(parameters, "tableName"),
        member(parameters, "resourceArn"),
    ]
    .into_iter()
    .flatten()
    .take(1)
    .map(str::to_owned)
    .collect();
    if let Some(Value::Object(batch)) = parameters.and_then(|p| p.get("requestItems")) {
        tables.extend(batch.keys().cloned());
    }
    if let Some(Value::Array(items)) = parameters.and_then(|p| p.get("requestItems")) {
        tables.extend(
            items
                .iter()
                .filter_map(|item| item.get("tableName")?.as_str())
                .map(str::to_owned),
        );
    }
    if let Some(parameters) = parameters {
        let mut statements = dynamodb_items::statements(parameters);
        if let Some(Value::Array(items)) = parameters.get("requestItems") {
            statements.extend(
                items
                    .iter()
                    .filter_map(|item| item.get("statement")?.as_str()),
            );
        }
        tables.extend(
            statements
                .into_iter()
                .filter_map(dynamodb_items::statement_table)
                .map(str::to_owned),
        );
    }
    for table in tables {
        if let Some(arn) = dynamodb_table_arn(call, &table) {
            push_resource(call, arn, "AWS::DynamoDB::Table");
        }
    }
}

fn dynamodb_table_arn(call: &CapturedCall, table: &str) -> Option<String> {
    if !table.starts_with("arn:") {
        return Some(format!(
            "arn:aws:dynamodb:{}:{}:table/{table}",
            call.region, call.account_id
        ));
    }
    // A resource ARN may name an index or a stream under the table: the table is the
    // resource the event history is searched by.
    let (prefix, rest) = table.split_once(":table/")?;
    let name = rest.split('/').next().unwrap_or(rest);
    Some(format!("{prefix}:table/{name}"))
}

/// RunInstances names the instances it launched (real records list each as an
/// `AWS::EC2::Instance`), read from its answer.
fn ec2(call: &mut CapturedCall) {
    if call.operation != "RunInstances" || !call.succeeded {
        return;
    }
    let launched: Vec<String> = call
        .response_elements
        .as_ref()
        .and_then(|answer| answer.pointer("/instancesSet/items"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|instance| instance.get("instanceId")?.as_str())
        .map(|id| {
            format!(
                "arn:aws:ec2:{}:{}:instance/{id}",
                call.region, call.account_id
            )
        })
        .collect();
    for arn in launched {
        push_resource(call, arn, "AWS::EC2::Instance");
    }
}

/// Lambda names the function, however the caller wrote it: a name, `name:qualifier`, a
/// partial ARN (`account:function:name`) or a full ARN.
fn lambda(call: &mut CapturedCall) {
    let Some(function) = member(call.request_parameters.as_ref(), "functionName")
        .or_else(|| member(call.request_parameters.as_ref(), "resource"))
        .map(str::to_owned)
    else {
        return;
    };
    let arn = if function.starts_with("arn:") {
        function
    } else if function.split(':').nth(1) == Some("function") {
        format!("arn:aws:lambda:{}:{function}", call.region)
    } else {
        format!(
            "arn:aws:lambda:{}:{}:function:{function}",
            call.region, call.account_id
        )
    };
    if !arn.contains(":function:") {
        return;
    }
    push_resource(call, arn, "AWS::Lambda::Function");
}

/// Bucket listings whose resource is the prefix of the objects they cover.
const S3_LISTINGS: &[&str] = &["ListObjects", "ListObjectsV2", "ListObjectVersions"];

/// S3 logs the bucket as `bucketName` beside the `Host`, the object and its bucket as
/// resources (the object without an account, the bucket with its owner's), and how the call
/// was signed and how many bytes moved in `additionalEventData`.
fn s3(call: &mut CapturedCall) {
    // Every S3 call logs its Host, so even ListBuckets has parameters.
    let parameters = call.request_parameters.get_or_insert_with(|| json!({}));
    let Value::Object(parameters) = parameters else {
        return;
    };
    if let Some(bucket) = parameters.remove("bucket") {
        parameters.insert("bucketName".to_owned(), bucket);
    }
    if let Some(host) = &call.host {
        parameters.insert("Host".to_owned(), Value::String(host.clone()));
    }
    let bucket = member(call.request_parameters.as_ref(), "bucketName").map(str::to_owned);
    let key = member(call.request_parameters.as_ref(), "key").map(str::to_owned);
    if let Some(bucket) = bucket {
        let bucket_arn = format!("arn:aws:s3:::{bucket}");
        if let Some(key) = key {
            call.resources.push(RecordResource {
                arn: format!("{bucket_arn}/{key}"),
                account_id: None,
                resource_type: "AWS::S3::Object".to_owned(),
                arn_is_prefix: false,
            });
        } else if S3_LISTINGS.contains(&call.operation.as_str()) {
            let prefix = member(call.request_parameters.as_ref(), "prefix").unwrap_or("");
            call.resources.push(RecordResource {
                arn: format!("{bucket_arn}/{prefix}"),
                account_id: None,
                resource_type: "AWS::S3::Object".to_owned(),
                arn_is_prefix: true,
            });
        }
        call.resources.push(RecordResource {
            arn: bucket_arn,
            account_id: Some(call.account_id.clone()),
            resource_type: "AWS::S3::Bucket".to_owned(),
            arn_is_prefix: false,
        });
    }
    if let Some(transfer) = &call.transfer {
        let mut data = json!({
            "SignatureVersion": "SigV4",
            "AuthenticationMethod": if transfer.presigned { "QueryString" } else { "AuthHeader" },
        });
        if call
            .resources
            .iter()
            .any(|resource| resource.resource_type == "AWS::S3::Object")
        {
            data["bytesTransferredIn"] = json!(transfer.bytes_in as f64);
            data["bytesTransferredOut"] = json!(transfer.bytes_out as f64);
        }
        call.additional_event_data = Some(data);
    }
}

const KMS_CRYPTOGRAPHIC: &[&str] = &[
    "Encrypt",
    "Decrypt",
    "ReEncrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GenerateRandom",
    "GenerateMac",
    "VerifyMac",
    "Sign",
    "Verify",
    "DeriveSharedSecret",
];

/// Key-management calls whose record carries the key ARN as `responseElements.keyId`, even
/// when the API returns nothing.
const KMS_KEY_MANAGEMENT: &[&str] = &[
    "EnableKey",
    "DisableKey",
    "ScheduleKeyDeletion",
    "CancelKeyDeletion",
    "EnableKeyRotation",
    "DisableKeyRotation",
    "RotateKeyOnDemand",
    "PutKeyPolicy",
    "UpdateKeyDescription",
    "TagResource",
    "UntagResource",
    "ImportKeyMaterial",
    "DeleteImportedKeyMaterial",
    "UpdatePrimaryRegion",
];

fn kms(call: &mut CapturedCall) {
    let operation = call.operation.as_str();
    let cryptographic = KMS_CRYPTOGRAPHIC.contains(&operation);
    if cryptographic {
        // Cryptographic calls change nothing and their output is never recorded.
        call.read_only = true;
        call.response_elements = None;
    }
    if operation == "Decrypt" {
        // Decrypt's record always names the algorithm, even when the caller did not.
        let parameters = call
            .request_parameters
            .get_or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(parameters) = parameters {
            parameters
                .entry("encryptionAlgorithm")
                .or_insert_with(|| json!("SYMMETRIC_DEFAULT"));
        }
    }
    let requested = member(call.request_parameters.as_ref(), "keyId")
        .or_else(|| member(call.request_parameters.as_ref(), "destinationKeyId"));
    let answered = member(call.upstream_response.as_ref(), "keyId").or_else(|| {
        call.upstream_response
            .as_ref()
            .and_then(|response| response.get("keyMetadata"))
            .and_then(|metadata| metadata.get("arn"))
            .and_then(Value::as_str)
    });
    let key_arn = [requested, answered]
        .into_iter()
        .flatten()
        .find(|key| key.starts_with("arn:"))
        .map(str::to_owned)
        .or_else(|| {
            requested
                .filter(|key| !key.starts_with("alias/"))
                .map(|key| format!("arn:aws:kms:{}:{}:key/{key}", call.region, call.account_id))
        });
    let Some(key_arn) = key_arn.filter(|arn| arn.contains(":key/")) else {
        return;
    };
    if call.succeeded && KMS_KEY_MANAGEMENT.contains(&operation) {
        let mut elements = match call.response_elements.take() {
            Some(Value::Object(members)) => members,
            _ => Map::new(),
        };
        elements
            .entry("keyId")
            .or_insert_with(|| json!(key_arn.clone()));
        call.response_elements = Some(Value::Object(elements));
    }
    push_resource(call, key_arn, "AWS::KMS::Key");
}

fn ssm(call: &mut CapturedCall) {
    let region = call.region.clone();
    let account = call.account_id.clone();
    let arn = |kind: &str, name: &str| {
        if name.starts_with("arn:") {
            name.to_owned()
        } else {
            format!(
                "arn:aws:ssm:{region}:{account}:{kind}/{}",
                name.trim_start_matches('/')
            )
        }
    };
    let operation = call.operation.clone();
    let request = call.request_parameters.clone();
    let response = call.upstream_response.clone();
    let mut found: Vec<(String, &'static str)> = Vec::new();
    if operation.contains("Document") {
        if let Some(name) = member(request.as_ref(), "name") {
            found.push((arn("document", name), "AWS::SSM::Document"));
        }
    }
    if operation.contains("Parameter") {
        if let Some(name) = member(request.as_ref(), "name") {
            found.push((arn("parameter", name), "AWS::SSM::Parameter"));
        }
        for name in strings(request.as_ref(), "names") {
            found.push((arn("parameter", name), "AWS::SSM::Parameter"));
        }
    }
    if operation == "SendCommand" {
        if let Some(document) = member(request.as_ref(), "documentName") {
            found.push((arn("document", document), "AWS::SSM::Document"));
        }
        for instance in strings(request.as_ref(), "instanceIds") {
            found.push((
                format!("arn:aws:ec2:{region}:{account}:instance/{instance}"),
                "AWS::EC2::Instance",
            ));
        }
    }
    let command_id = member(request.as_ref(), "commandId").or_else(|| {
        response
            .as_ref()
            .and_then(|response| response.get("command"))
            .and_then(|command| command.get("commandId"))
            .and_then(Value::as_str)
    });
    if let Some(command) = command_id {
        found.push((arn("command", command), "AWS::SSM::Command"));
    }
    if operation.contains("Session") {
        if let Some(session) =
            member(request.as_ref(), "sessionId").or_else(|| member(response.as_ref(), "sessionId"))
        {
            found.push((arn("session", session), "AWS::SSM::Session"));
        }
        if operation == "StartSession" {
            if let Some(target) = member(request.as_ref(), "target") {
                found.push((
                    format!("arn:aws:ec2:{region}:{account}:instance/{target}"),
                    "AWS::EC2::Instance",
                ));
            }
        }
    }
    for (arn, resource_type) in found {
        push_resource(call, arn, resource_type);
    }
}

fn secrets_manager(call: &mut CapturedCall) {
    let failed_rotation = match &call.rotation {
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
    let mut emit = |event_name| {
        call.service_events.push(ServiceEvent {
            event_source: SECRETS_MANAGER_SOURCE,
            event_name,
            resource_arn: secret_arn.clone(),
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
    let pending_before = call.rotation == RotationSeen::PendingBeforeManualVersion;
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
            if rotates_now && matches!(call.rotation, RotationSeen::StartedStillPending { .. }) =>
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
mod tests {
    use super::*;

    fn call(
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

    #[test]
    fn run_instances_names_each_instance_it_launched() {
        let answer = json!({"instancesSet": {"items": [
            {"instanceId": "i-1"}, {"instanceId": "i-2"}
        ]}});
        let mut launched = call(
            "ec2",
            "RunInstances",
            json!({"imageId": "ami-1"}),
            Some(answer),
        );
        apply(&mut launched);
        let arns: Vec<&str> = launched.resources.iter().map(|r| r.arn.as_str()).collect();
        assert_eq!(
            arns,
            [
                "arn:aws:ec2:us-east-1:111122223333:instance/i-1",
                "arn:aws:ec2:us-east-1:111122223333:instance/i-2"
            ]
        );
        assert!(launched
            .resources
            .iter()
            .all(|r| r.resource_type == "AWS::EC2::Instance"));
        let mut refused = call("ec2", "RunInstances", json!({"imageId": "ami-1"}), None);
        refused.succeeded = false;
        apply(&mut refused);
        assert!(refused.resources.is_empty());
    }

    #[test]
    fn s3_object_calls_name_the_object_and_its_bucket() {
        let mut call = CapturedCall {
            service_id: "s3".into(),
            operation: "GetObject".into(),
            region: "us-east-1".into(),
            account_id: "111122223333".into(),
            request_parameters: Some(json!({"bucket": "b", "key": "dir/ring.txt"})),
            host: Some("127.0.0.1:4566".into()),
            transfer: Some(Transfer {
                presigned: false,
                bytes_in: 0,
                bytes_out: 89,
            }),
            succeeded: true,
            read_only: true,
            ..CapturedCall::default()
        };
        apply(&mut call);
        assert_eq!(
            call.request_parameters,
            Some(json!({"key": "dir/ring.txt", "bucketName": "b", "Host": "127.0.0.1:4566"}))
        );
        assert_eq!(call.resources.len(), 2);
        assert_eq!(call.resources[0].arn, "arn:aws:s3:::b/dir/ring.txt");
        assert_eq!(call.resources[0].account_id, None);
        assert_eq!(call.resources[1].arn, "arn:aws:s3:::b");
        assert_eq!(
            call.resources[1].account_id.as_deref(),
            Some("111122223333")
        );
        assert_eq!(
            call.additional_event_data,
            Some(
                json!({"SignatureVersion": "SigV4", "AuthenticationMethod": "AuthHeader",
                        "bytesTransferredIn": 0.0, "bytesTransferredOut": 89.0})
            )
        );
    }

    #[test]
    fn s3_listings_name_an_arn_prefix_and_bucket_calls_the_bucket() {
        let mut listing = CapturedCall {
            service_id: "s3".into(),
            operation: "ListObjectsV2".into(),
            account_id: "111122223333".into(),
            request_parameters: Some(json!({"bucket": "b", "list-type": "2", "prefix": "logs/"})),
            ..CapturedCall::default()
        };
        apply(&mut listing);
        assert_eq!(listing.resources[0].arn, "arn:aws:s3:::b/logs/");
        assert!(listing.resources[0].arn_is_prefix);
        let mut create = CapturedCall {
            service_id: "s3".into(),
            operation: "CreateBucket".into(),
            account_id: "111122223333".into(),
            request_parameters: Some(json!({"bucket": "b"})),
            ..CapturedCall::default()
        };
        apply(&mut create);
        assert_eq!(create.resources.len(), 1);
        assert_eq!(create.resources[0].resource_type, "AWS::S3::Bucket");
        let mut buckets = CapturedCall {
            service_id: "s3".into(),
            operation: "ListBuckets".into(),
            host: Some("localhost".into()),
            ..CapturedCall::default()
        };
        apply(&mut buckets);
        assert_eq!(
            buckets.request_parameters,
            Some(json!({"Host": "localhost"}))
        );
        assert!(buckets.resources.is_empty());
    }

    #[test]
    fn dynamodb_calls_name_their_table() {
        let mut put = call("dynamodb", "PutItem", json!({"tableName": "Music"}), None);
        apply(&mut put);
        assert_eq!(
            put.resources,
            vec![RecordResource {
                arn: "arn:aws:dynamodb:us-east-1:111122223333:table/Music".into(),
                account_id: Some("111122223333".into()),
                resource_type: "AWS::DynamoDB::Table".into(),
                arn_is_prefix: false,
            }]
        );
        let mut by_index_arn = call(
            "dynamodb",
            "TagResource",
            json!({"resourceArn": "arn:aws:dynamodb:eu-west-1:444455556666:table/Music/index/ByArtist"}),
            None,
        );
        apply(&mut by_index_arn);
        assert_eq!(
            by_index_arn.resources[0].arn,
            "arn:aws:dynamodb:eu-west-1:444455556666:table/Music"
        );
        assert_eq!(
            by_index_arn.resources[0].account_id.as_deref(),
            Some("444455556666")
        );
        let mut list = call("dynamodb", "ListTables", json!({}), None);
        apply(&mut list);
        assert!(list.resources.is_empty());
        let mut batch = call(
            "dynamodb",
            "BatchWriteItem",
            json!({"requestItems": {"Music": [], "arn:aws:dynamodb:us-east-1:111122223333:table/Albums": []}}),
            None,
        );
        apply(&mut batch);
        let mut arns: Vec<&str> = batch.resources.iter().map(|r| r.arn.as_str()).collect();
        arns.sort_unstable();
        assert_eq!(
            arns,
            [
                "arn:aws:dynamodb:us-east-1:111122223333:table/Albums",
                "arn:aws:dynamodb:us-east-1:111122223333:table/Music"
            ]
        );
        let mut transaction = call(
            "dynamodb",
            "TransactWriteItems",
            // As logged: see `dynamodb_items`.
            json!({"requestItems": [
                {"operation": "Put", "tableName": "Music", "items": []},
                {"operation": "ConditionCheck", "tableName": "Albums", "key": {}},
                {"operation": "Delete", "tableName": "Music", "key": {}}
            ]}),
            None,
        );
        apply(&mut transaction);
        assert_eq!(
            transaction.resources.len(),
            2,
            "each table once: {:?}",
            transaction.resources
        );
        let mut statements = call(
            "dynamodb",
            "BatchExecuteStatement",
            json!({"requestItems": [
                {"statement": "UPDATE \"Music\" SET a = ***(Redacted) WHERE Artist = 'A'"},
                {"statement": "INSERT INTO Albums VALUE {'Title' : ***(Redacted)}"}
            ]}),
            None,
        );
        apply(&mut statements);
        let tables: Vec<&str> = statements
            .resources
            .iter()
            .map(|r| r.arn.as_str())
            .collect();
        assert_eq!(
            tables,
            [
                "arn:aws:dynamodb:us-east-1:111122223333:table/Music",
                "arn:aws:dynamodb:us-east-1:111122223333:table/Albums"
            ]
        );
        let mut select = call(
            "dynamodb",
            "ExecuteStatement",
            json!({"statement": "SELECT * FROM Music WHERE Artist = 'A'"}),
            None,
        );
        apply(&mut select);
        assert_eq!(select.resources.len(), 1);
    }

    #[test]
    fn lambda_calls_name_their_function_however_it_was_written() {
        let cases = [
            (
                "my-function",
                "arn:aws:lambda:us-east-1:111122223333:function:my-function",
            ),
            (
                "my-function:prod",
                "arn:aws:lambda:us-east-1:111122223333:function:my-function:prod",
            ),
            (
                "444455556666:function:other",
                "arn:aws:lambda:us-east-1:444455556666:function:other",
            ),
            (
                "arn:aws:lambda:eu-west-1:444455556666:function:other",
                "arn:aws:lambda:eu-west-1:444455556666:function:other",
            ),
        ];
        for (written, arn) in cases {
            let mut invoke = call("lambda", "Invoke", json!({"functionName": written}), None);
            apply(&mut invoke);
            assert_eq!(invoke.resources.len(), 1, "{written}");
            assert_eq!(invoke.resources[0].arn, arn, "{written}");
            assert_eq!(invoke.resources[0].resource_type, "AWS::Lambda::Function");
        }
        let mut layer = call(
            "lambda",
            "GetLayerVersion",
            json!({"layerName": "arn:aws:lambda:us-east-1:111122223333:layer:x"}),
            None,
        );
        apply(&mut layer);
        assert!(layer.resources.is_empty());
    }

    #[test]
    fn kms_key_management_records_the_key_arn() {
        let mut disable = call("kms", "DisableKey", json!({"keyId": "1234abcd"}), None);
        apply(&mut disable);
        let arn = "arn:aws:kms:us-east-1:111122223333:key/1234abcd";
        assert_eq!(disable.response_elements, Some(json!({"keyId": arn})));
        assert_eq!(
            disable.resources,
            [RecordResource {
                arn: arn.into(),
                account_id: Some("111122223333".into()),
                resource_type: "AWS::KMS::Key".into(),
                arn_is_prefix: false,
            }]
        );
        let mut failed = call("kms", "DisableKey", json!({"keyId": "1234abcd"}), None);
        failed.succeeded = false;
        apply(&mut failed);
        assert_eq!(failed.response_elements, None);
        assert_eq!(failed.resources.len(), 1);
    }

    #[test]
    fn kms_cryptographic_calls_are_reads_with_no_response() {
        let other_account = "arn:aws:kms:eu-west-1:999988887777:key/k";
        let mut decrypt = call(
            "kms",
            "Decrypt",
            json!({}),
            Some(json!({"keyId": other_account, "encryptionAlgorithm": "SYMMETRIC_DEFAULT"})),
        );
        decrypt.request_parameters = None;
        apply(&mut decrypt);
        assert!(decrypt.read_only);
        assert_eq!(decrypt.response_elements, None);
        assert_eq!(
            decrypt.request_parameters,
            Some(json!({"encryptionAlgorithm": "SYMMETRIC_DEFAULT"}))
        );
        assert_eq!(decrypt.resources[0].arn, other_account);
        assert_eq!(
            decrypt.resources[0].account_id.as_deref(),
            Some("999988887777")
        );
        let mut by_alias = call("kms", "Encrypt", json!({"keyId": "alias/app"}), None);
        apply(&mut by_alias);
        assert!(by_alias.resources.is_empty(), "an alias alone names no key");
    }

    #[test]
    fn ssm_documents_commands_sessions_and_parameters_get_arns() {
        let mut delete = call("ssm", "DeleteDocument", json!({"name": "runbook"}), None);
        apply(&mut delete);
        assert_eq!(
            delete.resources[0].arn,
            "arn:aws:ssm:us-east-1:111122223333:document/runbook"
        );
        let mut send = call(
            "ssm",
            "SendCommand",
            json!({"documentName": "AWS-RunShellScript", "instanceIds": ["i-1"]}),
            Some(json!({"command": {"commandId": "c-9"}})),
        );
        apply(&mut send);
        let arns: Vec<&str> = send.resources.iter().map(|r| r.arn.as_str()).collect();
        assert_eq!(
            arns,
            [
                "arn:aws:ssm:us-east-1:111122223333:document/AWS-RunShellScript",
                "arn:aws:ec2:us-east-1:111122223333:instance/i-1",
                "arn:aws:ssm:us-east-1:111122223333:command/c-9"
            ]
        );
        let mut put = call(
            "ssm",
            "PutParameter",
            json!({"name": "/app/db", "value": "HIDDEN"}),
            None,
        );
        apply(&mut put);
        assert_eq!(
            put.resources[0].arn,
            "arn:aws:ssm:us-east-1:111122223333:parameter/app/db"
        );
        let mut session = call("ssm", "TerminateSession", json!({"sessionId": "s-1"}), None);
        apply(&mut session);
        assert_eq!(session.resources[0].resource_type, "AWS::SSM::Session");
    }

    #[test]
    fn a_version_made_by_hand_while_a_rotation_is_pending_abandons_it() {
        let arn = "arn:aws:secretsmanager:us-east-1:111122223333:secret:db-AbCdEf";
        let put = |pending: bool, succeeded: bool| {
            let mut put = call(
                "secretsmanager",
                "PutSecretValue",
                json!({"secretId": "db"}),
                Some(json!({"arn": arn, "versionId": "v3"})),
            );
            if pending {
                put.rotation = RotationSeen::PendingBeforeManualVersion;
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
        let mut delete = call(
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
        let mut forced = call(
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
        let mut restore = call(
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
        let mut rotate = call(
            "secretsmanager",
            "RotateSecret",
            json!({"secretId": "db"}),
            Some(json!({"arn": arn})),
        );
        apply(&mut rotate);
        let names: Vec<&str> = rotate.service_events.iter().map(|e| e.event_name).collect();
        assert_eq!(names, ["RotationStarted", "RotationSucceeded"]);
        let mut scheduled = call(
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
        let mut running = call(
            "secretsmanager",
            "RotateSecret",
            json!({"secretId": "db"}),
            Some(json!({"arn": arn})),
        );
        running.rotation = RotationSeen::StartedStillPending {
            secret_arn: arn.into(),
            version_id: "v2".into(),
        };
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
        let mut refused = call(
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
            let mut rotate = call(
                "secretsmanager",
                "RotateSecret",
                json!({"secretId": "db", "rotationLambdaARN": "arn:aws:lambda:us-east-1:111122223333:function:gone"}),
                None,
            );
            rotate.succeeded = false;
            rotate.rotation = rotation;
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
