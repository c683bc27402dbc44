//! How a proxied call's input and output appear in its record: member names in AWS's
//! lowerCamelCase, secrets taken out through one redaction table, `responseElements` only for
//! calls that change something.

use cairn_model::format_recorded_date;
use serde_json::{Map, Value};

use crate::dynamodb_items::{self, KeySchemas};
use crate::map_shapes::{End, MapShapes, Shape, ShapeRef};
use crate::routing::Protocol;
use crate::xml_answers::{ec2_response_elements, query_response_elements};

/// The general CloudTrail redaction token.
pub const HIDDEN: &str = "HIDDEN_DUE_TO_SECURITY_REASONS";

/// What happens to a field wherever it appears.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Redaction {
    /// The field is left out of the record entirely (AWS omits it).
    Omit,
    /// The field stays, its value replaced by [`HIDDEN`].
    Hide,
    /// The field stays, its value replaced by the service's own token.
    Replace(&'static str),
}

/// One row per secret-bearing field: (service id or `*` for every service, field name in
/// lowerCamelCase, what to do). Matching ignores case. Extend it here.
pub const REDACTIONS: &[(&str, &str, Redaction)] = &[
    ("secretsmanager", "secretString", Redaction::Omit),
    ("secretsmanager", "secretBinary", Redaction::Omit),
    ("secretsmanager", "rotationToken", Redaction::Omit),
    ("kms", "plaintext", Redaction::Omit),
    ("kms", "ciphertextBlob", Redaction::Omit),
    ("ssm", "value", Redaction::Hide),
    // A command's or automation's parameters (real SendCommand records hide them, in the
    // request and in the command answered).
    ("ssm", "parameters", Redaction::Hide),
    // A session's token opens its data channel (real StartSession records replace it so).
    (
        "ssm",
        "tokenValue",
        Redaction::Replace("Value hidden due to security reasons."),
    ),
    // Roles Anywhere hides its tags' keys and values (real CreateProfile records).
    ("rolesanywhere", "key", Redaction::Hide),
    ("rolesanywhere", "value", Redaction::Hide),
    // Lambda leaves out function code and environment variables (its developer guide lists
    // `ZipFile` and `Environment`; real records keep an empty `environment`).
    ("lambda", "zipFile", Redaction::Omit),
    ("lambda", "variables", Redaction::Omit),
    // EC2 keeps the member and drops its value (real RunInstances and
    // ModifyInstanceAttribute records); user data often carries credentials.
    (
        "ec2",
        "userData",
        Redaction::Replace("<sensitiveDataRemoved>"),
    ),
    // A new key pair's private key, in CreateKeyPair's answer.
    (
        "ec2",
        "keyMaterial",
        Redaction::Replace("<sensitiveDataRemoved>"),
    ),
    // VPN tunnels' pre-shared keys, asked for and answered (the customer gateway's
    // configuration holds them too).
    ("ec2", "preSharedKey", Redaction::Hide),
    ("ec2", "customerGatewayConfiguration", Redaction::Hide),
    // IAM leaves a new access key's secret and a login profile's password out entirely (real
    // CreateAccessKey and CreateLoginProfile records); first match wins, so these come first.
    ("iam", "secretAccessKey", Redaction::Omit),
    ("iam", "password", Redaction::Omit),
    ("*", "secretAccessKey", Redaction::Hide),
    ("*", "sessionToken", Redaction::Hide),
    ("*", "password", Redaction::Hide),
    ("*", "newPassword", Redaction::Hide),
    ("*", "oldPassword", Redaction::Hide),
    ("*", "masterUserPassword", Redaction::Hide),
    ("*", "privateKey", Redaction::Hide),
];

/// Operations whose response AWS never records (cryptographic output, secret values).
const RESPONSE_NEVER_RECORDED: &[(&str, &str)] = &[
    ("kms", "Encrypt"),
    ("kms", "Decrypt"),
    ("kms", "ReEncrypt"),
    ("kms", "GenerateDataKey"),
    ("kms", "GenerateDataKeyWithoutPlaintext"),
    ("kms", "GenerateDataKeyPair"),
    ("kms", "GenerateDataKeyPairWithoutPlaintext"),
    ("kms", "GenerateRandom"),
    ("kms", "GenerateMac"),
    ("kms", "Sign"),
    ("kms", "GetKeyPolicy"),
    ("secretsmanager", "GetSecretValue"),
    ("secretsmanager", "BatchGetSecretValue"),
    ("ssm", "GetParameter"),
    ("ssm", "GetParameters"),
    ("ssm", "GetParametersByPath"),
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

/// `Data` for the calls CloudTrail logs as data events, else `Management`.
pub fn event_category(service_id: &str, operation: &str) -> &'static str {
    let data = match service_id {
        "s3" => {
            operation.contains("Object")
                || operation.contains("MultipartUpload")
                || operation == "UploadPart"
                || operation == "UploadPartCopy"
                || operation == "ListParts"
        }
        "lambda" => operation == "Invoke" || operation == "InvokeWithResponseStream",
        "dynamodb" => matches!(
            operation,
            "GetItem"
                | "PutItem"
                | "UpdateItem"
                | "DeleteItem"
                | "BatchGetItem"
                | "BatchWriteItem"
                | "Query"
                | "Scan"
                | "TransactGetItems"
                | "TransactWriteItems"
                | "ExecuteStatement"
                | "BatchExecuteStatement"
                | "ExecuteTransaction"
        ),
        _ => false,
    };
    if data {
        "Data"
    } else {
        "Management"
    }
}

/// The record's `requestParameters` for a proxied call.
pub fn request_parameters(
    protocol: Option<Protocol>,
    service_id: &str,
    operation: &str,
    body: &[u8],
    form: &[(String, String)],
    query: &[(String, String)],
    path_labels: &[(String, String)],
) -> Option<Value> {
    let mut parameters = match protocol {
        Some(Protocol::Json | Protocol::RestJson) if !body.is_empty() => {
            json_parameters(service_id, operation, body)
                .unwrap_or_else(|| Value::Object(Map::new()))
        }
        Some(Protocol::Query | Protocol::Ec2) => unflatten_query(
            form.iter()
                .chain(query)
                .filter(|(key, _)| key != "Action" && key != "Version"),
            MapShapes::builtin().of(service_id, operation, End::Input),
        ),
        _ => Value::Object(
            query
                .iter()
                .filter(|(key, _)| !key.starts_with("X-Amz-"))
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
    logged_parameters(service_id, parameters, &KeySchemas::default())
}

/// A DynamoDB call's `requestParameters` once the key schemas of the tables it touches are
/// known (see [`dynamodb_items`]): [`request_parameters`] logs no key value it cannot
/// tell from an attribute value.
pub fn dynamodb_request_parameters(input: Value, key_schemas: &KeySchemas) -> Option<Value> {
    logged_parameters("dynamodb", input, key_schemas)
}

/// A DynamoDB call's whole input, lowerCamelCased, before anything is taken out of it: what
/// decides which tables' key schemas its record needs.
pub fn dynamodb_input(operation: &str, body: &[u8]) -> Option<Value> {
    json_parameters("dynamodb", operation, body)
}

fn json_parameters(service_id: &str, operation: &str, body: &[u8]) -> Option<Value> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(members)) => {
            let shape = MapShapes::builtin().of(service_id, operation, End::Input);
            Some(recorded_form(Value::Object(members), shape))
        }
        _ => None,
    }
}

/// The input as it is logged: secrets redacted, DynamoDB attribute values taken out.
fn logged_parameters(
    service_id: &str,
    mut parameters: Value,
    key_schemas: &KeySchemas,
) -> Option<Value> {
    redact(service_id, &mut parameters);
    if service_id == "dynamodb" {
        dynamodb_items::log_form(&mut parameters, key_schemas);
    }
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

/// A query value as the shape types it; a value that does not parse as its type stays text.
pub(crate) fn typed_text(text: String, shape: Option<&Shape>) -> Value {
    match shape {
        Some(Shape::Number) => match text.parse::<serde_json::Number>() {
            Ok(number) => Value::Number(number),
            Err(_) => Value::String(text),
        },
        Some(Shape::Boolean) if text.eq_ignore_ascii_case("true") => Value::Bool(true),
        Some(Shape::Boolean) if text.eq_ignore_ascii_case("false") => Value::Bool(false),
        _ => Value::String(text),
    }
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
        || RESPONSE_NEVER_RECORDED.contains(&(service_id, operation))
        // DynamoDB's item calls answer with items: their records never hold a response.
        || (service_id == "dynamodb" && event_category(service_id, operation) == "Data")
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
    redact(service_id, &mut value);
    match &value {
        Value::Object(members) if members.is_empty() => None,
        _ => Some(value),
    }
}

/// `KeyId` → `keyId`, `ARN` → `arn`, `KMSKeyId` → `kmsKeyId`, recursively, as CloudTrail
/// spells members: a leading run of capitals is an acronym, lowercased whole except for a
/// capital that starts the next word.
pub fn lower_camel(value: Value) -> Value {
    match value {
        Value::Object(members) => Value::Object(
            members
                .into_iter()
                .map(|(key, value)| (lower_camel_name(&key), lower_camel(value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(lower_camel).collect()),
        other => other,
    }
}

/// [`lower_camel`], except that the keys of the maps `shape` places in `value` are kept as
/// they are: they are the caller's data (tag keys, table and attribute names). Timestamps stay
/// as the service sent them, for rules that read them.
pub fn lower_camel_shaped(value: Value, shape: Option<ShapeRef<'_>>) -> Value {
    shaped(value, shape, Timestamps::AsSent)
}

/// [`lower_camel_shaped`], with the timestamps a JSON 1.0/1.1 service sent as epoch seconds
/// written as CloudTrail records them ("Aug 2, 2024, 8:23:24 AM").
pub fn recorded_form(value: Value, shape: Option<ShapeRef<'_>>) -> Value {
    shaped(value, shape, Timestamps::AsRecorded)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Timestamps {
    AsSent,
    AsRecorded,
}

fn shaped(value: Value, shape: Option<ShapeRef<'_>>, timestamps: Timestamps) -> Value {
    let Some(shape) = shape else {
        return lower_camel(value);
    };
    match (shape.shape(), value) {
        (Some(Shape::Map(values)), Value::Object(entries)) => Value::Object(
            entries
                .into_iter()
                .map(|(key, value)| {
                    let values = values.map(|index| shape.at(index));
                    (key, shaped(value, values, timestamps))
                })
                .collect(),
        ),
        (Some(Shape::List(item)), Value::Array(items)) => Value::Array(
            items
                .into_iter()
                .map(|value| shaped(value, Some(shape.at(*item)), timestamps))
                .collect(),
        ),
        (Some(Shape::Structure(members)), Value::Object(entries)) => Value::Object(
            entries
                .into_iter()
                .map(|(key, value)| {
                    let member = members.get(&key).map(|index| shape.at(*index));
                    (lower_camel_name(&key), shaped(value, member, timestamps))
                })
                .collect(),
        ),
        (Some(Shape::Timestamp), Value::Number(seconds))
            if timestamps == Timestamps::AsRecorded =>
        {
            match seconds.as_f64() {
                Some(seconds) if seconds.is_finite() => {
                    Value::String(format_recorded_date((seconds * 1000.0).floor() as i64))
                }
                _ => Value::Number(seconds),
            }
        }
        (_, value) => lower_camel(value),
    }
}

pub(crate) fn lower_camel_name(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let leading_capitals = chars.iter().take_while(|c| c.is_uppercase()).count();
    let lowered = match leading_capitals {
        0 => 0,
        n if n == chars.len() => n,
        1 => 1,
        // A plural acronym (`VPCs`) is one word.
        n if chars[n..] == ['s'] => n,
        // The last capital of the run starts the next word when a lowercase letter follows.
        n if chars[n].is_lowercase() => n - 1,
        n => n,
    };
    chars
        .iter()
        .enumerate()
        .flat_map(|(index, c)| {
            let lower: Vec<char> = if index < lowered {
                c.to_lowercase().collect()
            } else {
                vec![*c]
            };
            lower
        })
        .collect()
}

/// Applies [`REDACTIONS`] everywhere in `value`.
pub fn redact(service_id: &str, value: &mut Value) {
    match value {
        Value::Object(members) => {
            let keys: Vec<String> = members.keys().cloned().collect();
            for key in keys {
                let rule = REDACTIONS.iter().find(|(service, field, _)| {
                    (*service == "*" || *service == service_id) && field.eq_ignore_ascii_case(&key)
                });
                match rule.map(|(_, _, rule)| *rule) {
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
                            redact(service_id, inner);
                        }
                    }
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| redact(service_id, item)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            Some(Protocol::Json),
            service_id,
            operation,
            body,
            &[],
            &[],
            &[],
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
        request_parameters(Some(protocol), service_id, operation, b"", &form, &[], &[])
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
                Some(Protocol::RestJson),
                "lambda",
                "TagResource",
                tags,
                &[],
                &[],
                &labels
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
