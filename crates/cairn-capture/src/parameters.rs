//! How a proxied call's input and output appear in its record: member names in AWS's
//! lowerCamelCase, secrets taken out through one redaction table, `responseElements` only for
//! calls that change something.

use serde_json::{Map, Value};

use crate::map_shapes::{End, MapShapes, Shape, ShapeRef};
use crate::naming::{json_input, lower_camel_name, recorded_form, typed_text};
use crate::routing::Protocol;
use crate::sensitive::SensitiveMembers;
use crate::services::{self, Observed, Redaction, HIDDEN};
use crate::xml_answers::{ec2_response_elements, query_response_elements};

/// What every service's records leave out or hide, wherever the member appears: (member in
/// lowerCamelCase, what to do). A service's own rules (`services`) come first; matching
/// ignores case.
const GENERAL_REDACTIONS: &[(&str, Redaction)] = &[
    ("secretAccessKey", Redaction::Hide),
    ("sessionToken", Redaction::Hide),
    ("password", Redaction::Hide),
    ("newPassword", Redaction::Hide),
    ("oldPassword", Redaction::Hide),
    ("masterUserPassword", Redaction::Hide),
    ("privateKey", Redaction::Hide),
];

/// Read-only calls are recorded with `readOnly: true` and no `responseElements`.
pub fn is_read_only(operation: &str) -> bool {
    [
        "Get", "Describe", "List", "Head", "Lookup", "Search", "Scan", "Query", "BatchGet",
        "Select",
    ]
    .iter()
    .any(|prefix| operation.starts_with(prefix))
}

/// What a proxied call carried, as the gateway read it.
#[derive(Clone, Copy)]
pub struct CallInput<'a> {
    pub protocol: Option<Protocol>,
    pub service_id: &'a str,
    pub operation: &'a str,
    pub body: &'a [u8],
    /// A query or ec2 call's form-encoded body.
    pub form: &'a [(String, String)],
    pub query: &'a [(String, String)],
    /// Members a rest call carries in its path (`/{Bucket}/{Key+}`).
    pub path_labels: &'a [(String, String)],
}

/// The record's `requestParameters` for a proxied call, given what the service's hooks
/// `observed` of the upstream, if anything.
pub fn request_parameters(input: &CallInput<'_>, observed: Option<&Observed>) -> Option<Value> {
    let CallInput {
        protocol,
        service_id,
        operation,
        body,
        form,
        query,
        path_labels,
    } = *input;
    let mut parameters = match protocol {
        Some(Protocol::Json | Protocol::RestJson) if !body.is_empty() => {
            json_input(service_id, operation, body).unwrap_or_else(|| Value::Object(Map::new()))
        }
        Some(Protocol::Query | Protocol::Ec2) => unflatten_query(
            form.iter()
                .chain(query.iter().filter(|(key, _)| !is_authentication(key)))
                .filter(|(key, _)| key != "Action" && key != "Version"),
            MapShapes::builtin().of(service_id, operation, End::Input),
        ),
        _ => Value::Object(
            query
                .iter()
                .filter(|(key, _)| !is_authentication(key) && !key.eq_ignore_ascii_case("Expires"))
                .map(|(key, value)| (lower_camel_name(key), Value::String(value.clone())))
                .collect(),
        ),
    };
    // Rest calls carry members in the path too (`/{Bucket}/{Key+}`); they are members of the
    // input like any other.
    if let Value::Object(members) = &mut parameters {
        for (name, value) in path_labels {
            members.insert(lower_camel_name(name), Value::String(value.clone()));
        }
    }
    logged_parameters(service_id, operation, parameters, observed)
}

/// Whether a query parameter is part of a presigned URL's authentication (SigV4's
/// `X-Amz-Signature`, SigV2's `Signature` and `AWSAccessKeyId`, a session token in any
/// case): recorded, it would let anyone who can read the history replay the URL.
fn is_authentication(key: &str) -> bool {
    key.get(..6)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("x-amz-"))
        || [
            "Signature",
            "AWSAccessKeyId",
            "SignatureMethod",
            "SignatureVersion",
        ]
        .iter()
        .any(|name| key.eq_ignore_ascii_case(name))
}

/// The input as it is logged: secrets redacted, and what the service never logs taken out
/// (given what its hooks `observed` of the upstream, if anything).
fn logged_parameters(
    service_id: &str,
    operation: &str,
    mut parameters: Value,
    observed: Option<&Observed>,
) -> Option<Value> {
    redact(service_id, operation, End::Input, &mut parameters);
    services::log_request(service_id, &mut parameters, observed);
    match &parameters {
        Value::Object(members) if members.is_empty() => None,
        _ => Some(parameters),
    }
}

/// Query and ec2 calls flatten their input into dotted keys (`Tags.member.1.Key`,
/// `Filter.1.Value.2`, `Attributes.entry.1.key`); CloudTrail logs the structure they encode.
/// Numbered segments become list positions (in number order, gaps closed), the query
/// protocol's `member` wrapper disappears, and `entry` lists of key/value pairs become maps.
/// Member names are lower-camel-cased; map keys stay as the caller wrote them.
/// A value is a number or a boolean where the operation's `shape` says so (a string of
/// digits may be a name); anywhere else it stays the string it was sent as.
fn unflatten_query<'a>(
    pairs: impl Iterator<Item = &'a (String, String)>,
    shape: Option<ShapeRef<'_>>,
) -> Value {
    let mut root = FlatNode::default();
    for (key, value) in pairs {
        let mut node = &mut root;
        for segment in key.split('.') {
            node = node.children.entry(segment.to_owned()).or_default();
        }
        node.value = Some(value.clone());
    }
    root.into_value(shape)
}

/// One dotted-key prefix of a query input and what lies under it.
#[derive(Default)]
struct FlatNode {
    value: Option<String>,
    children: std::collections::BTreeMap<String, FlatNode>,
}

impl FlatNode {
    fn into_value(self, shape: Option<ShapeRef<'_>>) -> Value {
        let kind = shape.and_then(|shape| shape.shape());
        if self.children.is_empty() {
            return self
                .value
                .map_or(Value::Null, |text| typed_text(text, kind));
        }
        let item = match kind {
            Some(Shape::List(item)) => shape.map(|shape| shape.at(*item)),
            _ => None,
        };
        let is_list = self
            .children
            .keys()
            .all(|key| key.parse::<u32>().is_ok_and(|index| index > 0));
        if is_list {
            let mut items: Vec<(u32, FlatNode)> = self
                .children
                .into_iter()
                .filter_map(|(key, node)| Some((key.parse().ok()?, node)))
                .collect();
            items.sort_by_key(|(index, _)| *index);
            return Value::Array(
                items
                    .into_iter()
                    .map(|(_, node)| node.into_value(item))
                    .collect(),
            );
        }
        let mut children = self.children;
        if children.len() == 1 {
            // A list's items sit under `member`, or under the name the model gives them.
            let wrapper = match kind {
                Some(Shape::List(_)) => children.keys().next().cloned(),
                _ => Some("member".to_owned()),
            };
            if let Some(wrapped) = wrapper.and_then(|wrapper| children.remove(&wrapper)) {
                return wrapped.into_value(shape);
            }
            if let Some(entries) = children.remove("entry") {
                return entries_to_map(entries.into_value(None));
            }
        }
        let members = match kind {
            Some(Shape::Structure(members)) => Some(members),
            _ => None,
        };
        Value::Object(
            children
                .into_iter()
                .map(|(key, node)| {
                    let member = members
                        .and_then(|members| members.get(&key))
                        .zip(shape)
                        .map(|(index, shape)| shape.at(*index));
                    (lower_camel_name(&key), node.into_value(member))
                })
                .collect(),
        )
    }
}

/// `[{"key": k, "value": v}, ...]` → `{k: v, ...}`; anything else is kept as it is.
fn entries_to_map(entries: Value) -> Value {
    let Value::Array(items) = entries else {
        return entries;
    };
    let pairs: Option<Map<String, Value>> = items
        .iter()
        .map(|item| {
            let key = item.get("key").or_else(|| item.get("Key"))?.as_str()?;
            let value = item.get("value").or_else(|| item.get("Value"))?.clone();
            Some((key.to_owned(), value))
        })
        .collect();
    pairs.map_or(Value::Array(items), Value::Object)
}

/// The record's `responseElements`: null for reads and for responses AWS never records.
pub fn response_elements(
    protocol: Option<Protocol>,
    service_id: &str,
    operation: &str,
    body: &[u8],
) -> Option<Value> {
    if is_read_only(operation)
        || services::hides_response(service_id, operation)
        || !matches!(
            protocol,
            Some(Protocol::Json | Protocol::RestJson | Protocol::Query | Protocol::Ec2)
        )
    {
        return None;
    }
    let shape = MapShapes::builtin().of(service_id, operation, End::Output);
    let mut value = match protocol {
        Some(Protocol::Query) => query_response_elements(service_id, operation, body, shape)?,
        Some(Protocol::Ec2) => ec2_response_elements(body, shape)?,
        _ => recorded_form(serde_json::from_slice::<Value>(body).ok()?, shape),
    };
    redact(service_id, operation, End::Output, &mut value);
    match &value {
        Value::Object(members) if members.is_empty() => None,
        _ => Some(value),
    }
}

/// Takes the secrets out of `value`, `operation`'s input or output, wherever they are: first
/// the service's own rules (CloudTrail's documented exceptions: a member left out, or
/// replaced by the service's token), then every member the model marks sensitive (hidden),
/// then [`GENERAL_REDACTIONS`] for secrets the model does not mark.
pub fn redact(service_id: &str, operation: &str, end: End, value: &mut Value) {
    let sensitive = SensitiveMembers::builtin();
    let rule_for = |key: &str| {
        services::redaction(service_id, key)
            .or_else(|| {
                sensitive
                    .is_sensitive(service_id, operation, end, key)
                    .then_some(Redaction::Hide)
            })
            .or_else(|| {
                GENERAL_REDACTIONS
                    .iter()
                    .find(|(field, _)| field.eq_ignore_ascii_case(key))
                    .map(|(_, rule)| *rule)
            })
    };
    redact_with(value, &rule_for);
}

fn redact_with(value: &mut Value, rule_for: &dyn Fn(&str) -> Option<Redaction>) {
    match value {
        Value::Object(members) => {
            let keys: Vec<String> = members.keys().cloned().collect();
            for key in keys {
                let rule = rule_for(&key);
                match rule {
                    Some(Redaction::Omit) => {
                        members.remove(&key);
                    }
                    Some(Redaction::Hide) => {
                        members.insert(key, Value::String(HIDDEN.to_owned()));
                    }
                    Some(Redaction::Replace(token)) => {
                        members.insert(key, Value::String(token.to_owned()));
                    }
                    None => {
                        if let Some(inner) = members.get_mut(&key) {
                            redact_with(inner, rule_for);
                        }
                    }
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| redact_with(item, rule_for)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::naming::lower_camel_shaped;
    use crate::services::event_category;

    #[test]
    fn query_inputs_are_logged_as_the_structures_they_flatten() {
        let pairs = [
            ("UserName", "ops"),
            ("Tags.member.2.Key", "env"),
            ("Tags.member.2.Value", "prod"),
            ("Tags.member.1.Key", "team"),
            ("Tags.member.1.Value", "audit"),
            ("Filter.1.Name", "instance-state-name"),
            ("Filter.1.Value.1", "running"),
            ("Filter.1.Value.3", "stopped"),
            ("InstanceId.1", "i-1"),
        ];
        let parameters = logged_form(Protocol::Query, "iam", "TagUser", &pairs);
        assert_eq!(
            parameters,
            Some(json!({
                "userName": "ops",
                "tags": [{"key": "team", "value": "audit"}, {"key": "env", "value": "prod"}],
                "filter": [{"name": "instance-state-name", "value": ["running", "stopped"]}],
                "instanceId": ["i-1"],
            }))
        );
    }

    #[test]
    fn query_entry_lists_become_maps() {
        let pairs: Vec<(String, String)> = [
            ("Attributes.entry.2.key", "Policy"),
            ("Attributes.entry.2.value", "{}"),
            ("Attributes.entry.1.key", "DisplayName"),
            ("Attributes.entry.1.value", "Alerts"),
        ]
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
        assert_eq!(
            unflatten_query(pairs.iter(), None),
            json!({"attributes": {"DisplayName": "Alerts", "Policy": "{}"}}),
            "member names are lower-camel-cased, the map's keys are the caller's"
        );
    }

    /// The parameters logged for a JSON call with `body`.
    fn logged_json(service_id: &str, operation: &str, body: &[u8]) -> Option<Value> {
        request_parameters(
            &CallInput {
                protocol: Some(Protocol::Json),
                service_id,
                operation,
                body,
                form: &[],
                query: &[],
                path_labels: &[],
            },
            None,
        )
    }

    /// The parameters logged for a query or ec2 call sent as `pairs` in its form body.
    fn logged_form(
        protocol: Protocol,
        service_id: &str,
        operation: &str,
        pairs: &[(&str, &str)],
    ) -> Option<Value> {
        let form: Vec<(String, String)> = pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        request_parameters(
            &CallInput {
                protocol: Some(protocol),
                service_id,
                operation,
                body: b"",
                form: &form,
                query: &[],
                path_labels: &[],
            },
            None,
        )
    }

    #[test]
    fn presigned_url_authentication_is_never_recorded() {
        let owned = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect()
        };
        let sigv2 = owned(&[
            ("AWSAccessKeyId", "AKIAIOSFODNN7EXAMPLE"),
            ("Signature", "UL5vXs9VhbdOpO5dwje5Pn4o6VQ="),
            ("Expires", "1796003600"),
            ("x-amz-security-token", "token"),
            ("versionId", "3"),
        ]);
        let sigv4 = owned(&[
            ("Action", "GetSessionToken"),
            ("DurationSeconds", "900"),
            ("Version", "2011-06-15"),
            (
                "X-Amz-Credential",
                "AKIAIOSFODNN7EXAMPLE/20261201/us-east-1/sts/aws4_request",
            ),
            ("X-Amz-Signature", "abc"),
            ("x-amz-security-token", "token"),
        ]);
        let cases = [
            (
                Protocol::RestXml,
                "s3",
                "GetObject",
                &sigv2,
                json!({"versionId": "3"}),
            ),
            (
                Protocol::Query,
                "sts",
                "GetSessionToken",
                &sigv4,
                json!({"durationSeconds": 900}),
            ),
        ];
        for (protocol, service_id, operation, query, expected) in cases {
            let parameters = request_parameters(
                &CallInput {
                    protocol: Some(protocol),
                    service_id,
                    operation,
                    body: b"",
                    form: &[],
                    query,
                    path_labels: &[],
                },
                None,
            );
            assert_eq!(parameters, Some(expected), "{service_id}");
        }
    }

    #[test]
    fn query_and_ec2_values_are_typed_as_the_model_types_them() {
        let list_users = [("MaxItems", "25"), ("PathPrefix", "/007/")];
        assert_eq!(
            logged_form(Protocol::Query, "iam", "ListUsers", &list_users),
            Some(json!({"maxItems": 25, "pathPrefix": "/007/"})),
            "a number where the model says so; digits in a string stay a string"
        );
        let run = [
            ("Action", "RunInstances"),
            ("ImageId", "ami-12345678"),
            ("MinCount", "1"),
            ("MaxCount", "2"),
            ("DryRun", "false"),
            ("EbsOptimized", "TRUE"),
            ("BlockDeviceMapping.1.DeviceName", "/dev/sda1"),
            ("BlockDeviceMapping.1.Ebs.VolumeSize", "8"),
            ("BlockDeviceMapping.1.Ebs.DeleteOnTermination", "true"),
            ("TagSpecification.1.Tag.1.Key", "MaxCount"),
            ("TagSpecification.1.Tag.1.Value", "7"),
            ("SecurityGroupId.1", "sg-1"),
        ];
        assert_eq!(
            logged_form(Protocol::Ec2, "ec2", "RunInstances", &run),
            Some(json!({
                "blockDeviceMapping": [{
                    "deviceName": "/dev/sda1",
                    "ebs": {"deleteOnTermination": true, "volumeSize": 8}
                }],
                "dryRun": false,
                "ebsOptimized": true,
                "imageId": "ami-12345678",
                "maxCount": 2,
                "minCount": 1,
                "securityGroupId": ["sg-1"],
                "tagSpecification": [{"tag": [{"key": "MaxCount", "value": "7"}]}]
            }))
        );
        assert_eq!(
            logged_form(Protocol::Query, "iam", "ListUsers", &[("MaxItems", "lots")]),
            Some(json!({"maxItems": "lots"})),
            "what does not parse as its type is logged as sent"
        );
    }

    #[test]
    fn map_keys_in_json_inputs_and_outputs_stay_as_the_caller_wrote_them() {
        let body = br#"{"RequestItems": {"Orders": [{"PutRequest": {"Item": {
            "OrderId": {"S": "o-1"}, "Lines": {"L": [{"M": {"SKU": {"S": "x"}}}]}}}}]},
            "ReturnConsumedCapacity": "TOTAL"}"#;
        let parameters = logged_json("dynamodb", "BatchWriteItem", body).unwrap();
        assert_eq!(
            parameters,
            json!({"requestItems": {"Orders": [{"putRequest": {"item": ["OrderId", "Lines"]}}]},
                "returnConsumedCapacity": "TOTAL"}),
            "attribute names are the caller's; their values are never logged"
        );
        let tags = br#"{"Tags": {"CostCenter": "42", "Env": "prod"}}"#;
        let labels = [(
            "ARN".to_string(),
            "arn:aws:lambda:us-east-1:1:function:f".to_string(),
        )];
        assert_eq!(
            request_parameters(
                &CallInput {
                    protocol: Some(Protocol::RestJson),
                    service_id: "lambda",
                    operation: "TagResource",
                    body: tags,
                    form: &[],
                    query: &[],
                    path_labels: &labels,
                },
                None,
            )
            .unwrap(),
            json!({"tags": {"CostCenter": "42", "Env": "prod"},
                   "arn": "arn:aws:lambda:us-east-1:1:function:f"})
        );
        let created = br#"{"ARN": "arn:aws:secretsmanager:us-east-1:1:secret:s", "Name": "s"}"#;
        assert_eq!(
            response_elements(
                Some(Protocol::Json),
                "secretsmanager",
                "CreateSecret",
                created
            ),
            Some(json!({"arn": "arn:aws:secretsmanager:us-east-1:1:secret:s", "name": "s"})),
            "an output without maps is lower-camel-cased throughout"
        );
        let described = br#"{"Table": {"TableName": "Orders"}, "Tags": {"Env": "x"}}"#;
        assert_eq!(
            response_elements(Some(Protocol::Json), "dynamodb", "UnknownOp", described),
            Some(json!({"table": {"tableName": "Orders"}, "tags": {"env": "x"}})),
            "an operation the models do not know is treated as all structures"
        );
    }

    #[test]
    fn a_password_at_any_depth_of_a_query_input_is_redacted() {
        // Flat, `Endpoints.member.1.Password` matched no redaction rule and was logged.
        let pairs = [
            ("UserName", "ops"),
            ("Password", "hunter1-value"),
            ("Endpoints.member.1.Password", "hunter2-value"),
        ];
        let parameters = logged_form(Protocol::Query, "rds", "TagUser", &pairs).unwrap();
        let logged = parameters.to_string();
        assert!(!logged.contains("hunter1-value"), "{logged}");
        assert!(!logged.contains("hunter2-value"), "{logged}");
        assert_eq!(parameters["endpoints"][0]["password"], json!(HIDDEN));
    }
    #[test]
    fn json_protocol_timestamps_are_recorded_as_cloudtrail_dates() {
        let created =
            br#"{"KeyMetadata": {"KeyId": "k", "CreationDate": 1722587004.657, "Enabled": true}}"#;
        assert_eq!(
            response_elements(Some(Protocol::Json), "kms", "CreateKey", created),
            Some(json!({"keyMetadata": {
                "keyId": "k", "creationDate": "Aug 2, 2024, 8:23:24 AM", "enabled": true
            }}))
        );
        let deleted = br#"{"ARN": "arn:x", "Name": "db", "DeletionDate": 1722628800}"#;
        assert_eq!(
            response_elements(
                Some(Protocol::Json),
                "secretsmanager",
                "DeleteSecret",
                deleted
            )
            .unwrap()["deletionDate"],
            json!("Aug 2, 2024, 8:00:00 PM")
        );
        // A number where the model has no timestamp stays a number; rules that read a
        // timestamp get it as sent.
        let rotated = br#"{"ARN": "arn:x", "DeletionDate": 1722628800, "Count": 5}"#;
        let shape = MapShapes::builtin().of("secretsmanager", "DeleteSecret", End::Output);
        let as_sent = lower_camel_shaped(serde_json::from_slice(rotated).unwrap(), shape);
        assert_eq!(as_sent["deletionDate"], json!(1722628800));
        assert_eq!(as_sent["count"], json!(5));
    }

    #[test]
    fn a_session_token_is_replaced_as_ssm_replaces_it() {
        let started =
            br#"{"SessionId": "s-1", "TokenValue": "AAEAAV-secret", "StreamUrl": "wss://x"}"#;
        assert_eq!(
            response_elements(Some(Protocol::Json), "ssm", "StartSession", started),
            Some(json!({
                "sessionId": "s-1",
                "tokenValue": "Value hidden due to security reasons.",
                "streamUrl": "wss://x"
            }))
        );
    }

    #[test]
    fn ec2_user_data_is_logged_as_removed_however_it_was_sent() {
        let run = [
            ("ImageId", "ami-1"),
            ("UserData", "cGFzc3dvcmQ9aHVudGVyMg=="),
        ];
        let parameters = logged_form(Protocol::Ec2, "ec2", "RunInstances", &run).unwrap();
        assert_eq!(parameters["userData"], json!("<sensitiveDataRemoved>"));
        let modify = [("InstanceId", "i-1"), ("UserData.Value", "aHVudGVyMg==")];
        let parameters =
            logged_form(Protocol::Ec2, "ec2", "ModifyInstanceAttribute", &modify).unwrap();
        assert_eq!(
            parameters,
            json!({"instanceId": "i-1", "userData": "<sensitiveDataRemoved>"})
        );
    }
    use serde_json::json;

    #[test]
    fn secrets_are_never_recorded() {
        let body =
            br#"{"Name": "db", "SecretString": "hunter2", "Tags": [{"Key": "k", "Value": "v"}]}"#;
        let parameters = logged_json("secretsmanager", "CreateSecret", body).unwrap();
        assert_eq!(
            parameters,
            json!({"name": "db", "tags": [{"key": "k", "value": "v"}]})
        );
        let body = br#"{"Name": "/app/db", "Value": "hunter2", "Type": "SecureString"}"#;
        let parameters = logged_json("ssm", "PutParameter", body).unwrap();
        assert_eq!(parameters["value"], HIDDEN);
        let body = br#"{"KeyId": "k", "Plaintext": "c2VjcmV0"}"#;
        assert_eq!(
            logged_json("kms", "Encrypt", body).unwrap(),
            json!({"keyId": "k"})
        );
        // IAM leaves passwords and new keys' secrets out; elsewhere they are hidden.
        let form = [
            ("Action", "CreateLoginProfile"),
            ("UserName", "u"),
            ("Password", "p4ss"),
        ];
        let parameters = logged_form(Protocol::Query, "iam", "CreateLoginProfile", &form).unwrap();
        assert_eq!(parameters, json!({"userName": "u"}));
        let form = [("Action", "ModifyCluster"), ("MasterUserPassword", "p4ss")];
        let parameters = logged_form(Protocol::Query, "redshift", "ModifyCluster", &form).unwrap();
        assert_eq!(parameters, json!({"masterUserPassword": HIDDEN}));
        let created = br#"<CreateAccessKeyResponse><CreateAccessKeyResult><AccessKey>
            <UserName>u</UserName><AccessKeyId>AKIAEXAMPLE</AccessKeyId><Status>Active</Status>
            <SecretAccessKey>wJalrXUtnFEMI</SecretAccessKey><CreateDate>2024-08-01T13:33:28Z</CreateDate>
            </AccessKey></CreateAccessKeyResult></CreateAccessKeyResponse>"#;
        let response =
            response_elements(Some(Protocol::Query), "iam", "CreateAccessKey", created).unwrap();
        assert_eq!(
            response,
            json!({"accessKey": {"userName": "u", "accessKeyId": "AKIAEXAMPLE", "status": "Active",
                "createDate": "Aug 1, 2024 1:33:28 PM"}})
        );
        let response = response_elements(
            Some(Protocol::Json),
            "glue",
            "CreateThing",
            br#"{"Key": {"AccessKeyId": "A", "SecretAccessKey": "S"}}"#,
        )
        .unwrap();
        assert_eq!(response["key"]["secretAccessKey"], HIDDEN);
        assert_eq!(
            response_elements(
                Some(Protocol::Json),
                "kms",
                "Encrypt",
                br#"{"CiphertextBlob": "x"}"#
            ),
            None
        );
    }

    #[test]
    fn member_names_are_lower_camel_case_acronyms_included() {
        for (name, expected) in [
            ("KeyId", "keyId"),
            ("ARN", "arn"),
            ("KMSKeyId", "kmsKeyId"),
            ("DBInstanceIdentifier", "dbInstanceIdentifier"),
            ("VPCs", "vpcs"),
            ("keyId", "keyId"),
            ("A", "a"),
            ("", ""),
        ] {
            assert_eq!(lower_camel_name(name), expected, "{name}");
        }
    }

    #[test]
    fn reads_have_no_response_elements_and_data_events_are_categorised() {
        assert_eq!(
            response_elements(
                Some(Protocol::Json),
                "kms",
                "DescribeKey",
                br#"{"KeyMetadata": {}}"#
            ),
            None
        );
        assert_eq!(event_category("s3", "GetObject"), "Data");
        assert_eq!(event_category("s3", "CreateBucket"), "Management");
        assert_eq!(event_category("lambda", "Invoke"), "Data");
        assert_eq!(event_category("dynamodb", "PutItem"), "Data");
        assert_eq!(event_category("dynamodb", "CreateTable"), "Management");
    }
}
