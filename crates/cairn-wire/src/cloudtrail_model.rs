//! CloudTrail's API as botocore models it (`data/cloudtrail-model.json`, written by the one
//! committed generator, `crates/cairn-capture/tools/generate_routing_table.py`): every
//! operation with its input, output and errors, and every shape with its members and
//! constraints. Cairn's CloudTrail operations are checked against it rather than against
//! hand-kept lists.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::Value;

const MODEL: &str = include_str!("../data/cloudtrail-model.json");

#[derive(Debug, Deserialize)]
pub struct OperationModel {
    #[serde(rename = "operation")]
    pub name: String,
    #[serde(default)]
    pub input: Option<ShapeRef>,
    #[serde(default)]
    pub output: Option<ShapeRef>,
    #[serde(default)]
    pub errors: Vec<ShapeRef>,
}

#[derive(Debug, Deserialize)]
pub struct ShapeRef {
    pub shape: String,
}

pub struct CloudTrailModel {
    pub botocore_version: String,
    pub operations: BTreeMap<String, OperationModel>,
    /// Shapes as the model writes them (type, members, required, min/max, enum, pattern).
    pub shapes: BTreeMap<String, Value>,
}

impl CloudTrailModel {
    pub fn builtin() -> &'static Self {
        static MODEL_TABLE: OnceLock<CloudTrailModel> = OnceLock::new();
        MODEL_TABLE
            .get_or_init(|| Self::parse(MODEL).expect("the committed CloudTrail model parses"))
    }

    fn parse(text: &str) -> Result<Self, serde_json::Error> {
        let mut lines = text.lines();
        let header: Value = serde_json::from_str(lines.next().unwrap_or("{}"))?;
        let mut operations = BTreeMap::new();
        let mut shapes = BTreeMap::new();
        for line in lines {
            let value: Value = serde_json::from_str(line)?;
            if value.get("operation").is_some() {
                let operation: OperationModel = serde_json::from_value(value)?;
                operations.insert(operation.name.clone(), operation);
            } else if let Some(name) = value.get("shape").and_then(Value::as_str) {
                shapes.insert(name.to_owned(), value);
            }
        }
        Ok(Self {
            botocore_version: header
                .get("botocore")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            operations,
            shapes,
        })
    }

    /// The model's own spelling of an operation name, if it has one.
    pub fn operation_name(&self, name: &str) -> Option<&str> {
        self.operations
            .get_key_value(name)
            .map(|(name, _)| name.as_str())
    }
}

/// Why a request does not fit its operation's input shape.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    #[error("Value null at '{0}' failed to satisfy constraint: Member must not be null")]
    Missing(String),
    #[error("Value at '{path}' failed to satisfy constraint: Member must be of type {expected}")]
    WrongType {
        path: String,
        expected: &'static str,
    },
    #[error(
        "Value at '{path}' failed to satisfy constraint: Member must have length {bound} {limit}"
    )]
    Length {
        path: String,
        bound: &'static str,
        limit: u64,
    },
    #[error("Value '{value}' at '{path}' failed to satisfy constraint: Member must satisfy enum value set: [{allowed}]")]
    NotInEnum {
        path: String,
        value: String,
        allowed: String,
    },
}

impl ShapeError {
    /// The member the error is about, as its message names it.
    pub fn path(&self) -> &str {
        match self {
            Self::Missing(path)
            | Self::WrongType { path, .. }
            | Self::Length { path, .. }
            | Self::NotInEnum { path, .. } => path,
        }
    }
}

/// What one walk over a request body checks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// JSON types only.
    Types,
    /// Required members, lengths and enum values.
    Constraints,
}

/// The exception CloudTrail documents for a bad value of a member, by the member's first
/// path segment: a request that breaks the model there answers it, when the operation lists
/// it, rather than the generic `InvalidParameterException`. (Trail names have no bound in
/// the model; their rules, spec §2.3, are the trail API's own.)
const MEMBER_EXCEPTIONS: &[(&str, &str)] = &[
    ("eventSelectors", "InvalidEventSelectorsException"),
    ("advancedEventSelectors", "InvalidEventSelectorsException"),
    ("insightSelectors", "InvalidInsightSelectorsException"),
    ("tagsList", "InvalidTagParameterException"),
];

impl CloudTrailModel {
    /// The code a request to `operation` that breaks the model as `error` says is answered
    /// with: for a bad value, the member's own exception where the operation has one (more
    /// tags than the model allows is `TagsLimitExceededException`); else, and for a member
    /// left out, `InvalidParameterException`.
    pub fn input_error_code(&self, operation: &str, error: &ShapeError) -> &'static str {
        let listed = |code: &str| {
            self.operations
                .get(operation)
                .is_some_and(|operation| operation.errors.iter().any(|listed| listed.shape == code))
        };
        // A member left out is the request's fault, not the member's value.
        if matches!(error, ShapeError::Missing(_)) {
            return "InvalidParameterException";
        }
        // A value of the wrong JSON type never reaches the operation: AWS's JSON protocol
        // refuses it while reading the body, as LookupEvents does.
        if matches!(error, ShapeError::WrongType { .. }) {
            return "SerializationException";
        }
        let path = error.path();
        let member = path.split('.').next().unwrap_or_default();
        if path == "tagsList"
            && matches!(error, ShapeError::Length { .. })
            && listed("TagsLimitExceededException")
        {
            return "TagsLimitExceededException";
        }
        MEMBER_EXCEPTIONS
            .iter()
            .find(|(named, code)| *named == member && listed(code))
            .map_or("InvalidParameterException", |(_, code)| code)
    }

    /// Checks `members`, the JSON body of a call to `operation`, against the model's input
    /// shape: required members, types, lengths and enum values, at any depth.
    pub fn check_input(
        &self,
        operation: &str,
        members: &serde_json::Map<String, Value>,
    ) -> Result<(), ShapeError> {
        let Some(shape) = self
            .operations
            .get(operation)
            .and_then(|operation| operation.input.as_ref())
        else {
            return Ok(());
        };
        let body = Value::Object(members.clone());
        // AWS reads the whole body before it checks a constraint: a value of the wrong type
        // anywhere is the answer even beside a missing member.
        self.check(&shape.shape, &body, "", Pass::Types)?;
        self.check(&shape.shape, &body, "", Pass::Constraints)
    }

    fn check(
        &self,
        shape_name: &str,
        value: &Value,
        path: &str,
        pass: Pass,
    ) -> Result<(), ShapeError> {
        let Some(shape) = self.shapes.get(shape_name) else {
            return Ok(());
        };
        let kind = shape.get("type").and_then(Value::as_str).unwrap_or("");
        let wrong = |expected| ShapeError::WrongType {
            path: path.to_owned(),
            expected,
        };
        let bound = |length: u64| {
            if pass == Pass::Types {
                return Ok(());
            }
            let over = |name: &str| shape.get(name).and_then(Value::as_u64);
            if let Some(min) = over("min").filter(|min| length < *min) {
                return Err(ShapeError::Length {
                    path: path.to_owned(),
                    bound: "greater than or equal to",
                    limit: min,
                });
            }
            if let Some(max) = over("max").filter(|max| length > *max) {
                return Err(ShapeError::Length {
                    path: path.to_owned(),
                    bound: "less than or equal to",
                    limit: max,
                });
            }
            Ok(())
        };
        match kind {
            "structure" => {
                let Value::Object(members) = value else {
                    return Err(wrong("structure"));
                };
                let declared = shape.get("members").and_then(Value::as_object);
                for required in shape
                    .get("required")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .filter(|_| pass == Pass::Constraints)
                {
                    if members.get(required).is_none_or(Value::is_null) {
                        return Err(ShapeError::Missing(member_path(path, required)));
                    }
                }
                for (name, member) in members {
                    let Some(target) = declared
                        .and_then(|declared| declared.get(name))
                        .and_then(|member| member.get("shape"))
                        .and_then(Value::as_str)
                    else {
                        // As AWS's JSON services do, a member the model does not know is
                        // ignored: a newer client may send it.
                        continue;
                    };
                    if !member.is_null() {
                        self.check(target, member, &member_path(path, name), pass)?;
                    }
                }
                Ok(())
            }
            "list" => {
                let Value::Array(items) = value else {
                    return Err(wrong("list"));
                };
                bound(items.len() as u64)?;
                let item = shape
                    .pointer("/member/shape")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                for (index, element) in items.iter().enumerate() {
                    self.check(item, element, &format!("{path}.{}", index + 1), pass)?;
                }
                Ok(())
            }
            "map" => {
                let Value::Object(entries) = value else {
                    return Err(wrong("map"));
                };
                bound(entries.len() as u64)?;
                Ok(())
            }
            "string" => {
                let Value::String(text) = value else {
                    return Err(wrong("string"));
                };
                bound(text.chars().count() as u64)?;
                if let Some(allowed) = shape
                    .get("enum")
                    .and_then(Value::as_array)
                    .filter(|_| pass == Pass::Constraints)
                {
                    if !allowed.iter().any(|choice| choice == value) {
                        let allowed: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
                        return Err(ShapeError::NotInEnum {
                            path: path.to_owned(),
                            value: text.chars().take(64).collect(),
                            allowed: allowed.join(", "),
                        });
                    }
                }
                Ok(())
            }
            "boolean" if !value.is_boolean() => Err(wrong("boolean")),
            "integer" | "long" if !(value.is_i64() || value.is_u64()) => Err(wrong("integer")),
            // botocore sends every timestamp of this protocol as epoch seconds.
            "timestamp" if !value.is_number() => Err(wrong("timestamp in epoch seconds")),
            "blob" if !value.is_string() => Err(wrong("blob")),
            _ => Ok(()),
        }
    }

    /// `value` with only the members `operation`'s output shape has, at any depth: what
    /// Cairn answers never carries a member the model does not.
    pub fn shape_output(&self, operation: &str, value: Value) -> Value {
        match self
            .operations
            .get(operation)
            .and_then(|operation| operation.output.as_ref())
        {
            Some(shape) => self.keep_modelled(&shape.shape, value),
            None => Value::Object(serde_json::Map::new()),
        }
    }

    fn keep_modelled(&self, shape_name: &str, value: Value) -> Value {
        let Some(shape) = self.shapes.get(shape_name) else {
            return value;
        };
        match (shape.get("type").and_then(Value::as_str), value) {
            (Some("structure"), Value::Object(members)) => {
                let declared = shape.get("members").and_then(Value::as_object);
                Value::Object(
                    members
                        .into_iter()
                        .filter(|(_, member)| !member.is_null())
                        .filter_map(|(name, member)| {
                            let target = declared?.get(&name)?.get("shape")?.as_str()?;
                            Some((name, self.keep_modelled(target, member)))
                        })
                        .collect(),
                )
            }
            (Some("list"), Value::Array(items)) => {
                let item = shape
                    .pointer("/member/shape")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                Value::Array(
                    items
                        .into_iter()
                        .map(|element| self.keep_modelled(item, element))
                        .collect(),
                )
            }
            (_, value) => value,
        }
    }
}

/// `trailName`, `eventSelectors.1.dataResources` as AWS's validation messages name members:
/// lower camel case, list positions from 1.
fn member_path(path: &str, member: &str) -> String {
    let mut chars = member.chars();
    let lowered: String = chars
        .next()
        .map(|first| first.to_ascii_lowercase().to_string() + chars.as_str())
        .unwrap_or_default();
    if path.is_empty() {
        lowered
    } else {
        format!("{path}.{lowered}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_checked_against_the_model_at_any_depth() {
        let model = CloudTrailModel::builtin();
        let members = |value: Value| value.as_object().unwrap().clone();
        let check = |operation, value| model.check_input(operation, &members(value));
        assert_eq!(
            check(
                "CreateTrail",
                serde_json::json!({"Name": "t", "S3BucketName": "b"})
            ),
            Ok(())
        );
        assert_eq!(
            check("CreateTrail", serde_json::json!({"Name": "t"})),
            Err(ShapeError::Missing("s3BucketName".into()))
        );
        assert!(matches!(
            check(
                "CreateTrail",
                serde_json::json!({"Name": 3, "S3BucketName": "b"})
            ),
            Err(ShapeError::WrongType { .. })
        ));
        assert!(matches!(
            check(
                "PutEventSelectors",
                serde_json::json!({"TrailName": "t", "EventSelectors": [{"ReadWriteType": "Sometimes"}]})
            ),
            Err(ShapeError::NotInEnum { path, .. }) if path == "eventSelectors.1.readWriteType"
        ));
        assert_eq!(
            check("GetTrail", serde_json::json!({"Name": "t", "Extra": 1})),
            Ok(()),
            "unknown members are ignored"
        );
        let shaped = model.shape_output(
            "GetTrail",
            serde_json::json!({"Trail": {"Name": "t", "Secret": "x", "KmsKeyId": null}}),
        );
        assert_eq!(shaped, serde_json::json!({"Trail": {"Name": "t"}}));
    }

    #[test]
    fn a_bad_member_answers_its_own_exception_where_the_operation_lists_one() {
        let model = CloudTrailModel::builtin();
        let code = |operation, value: Value| {
            let error = model
                .check_input(operation, value.as_object().unwrap())
                .expect_err("breaks the model");
            model.input_error_code(operation, &error)
        };
        let long = "k".repeat(129);
        assert_eq!(
            code(
                "AddTags",
                serde_json::json!({"ResourceId": "arn", "TagsList": [{"Key": long}]})
            ),
            "InvalidTagParameterException"
        );
        let many: Vec<Value> = (0..201)
            .map(|n| serde_json::json!({"Key": format!("k{n}")}))
            .collect();
        assert_eq!(
            code(
                "CreateTrail",
                serde_json::json!({"Name": "t", "S3BucketName": "b", "TagsList": many})
            ),
            "TagsLimitExceededException"
        );
        assert_eq!(
            code(
                "PutEventSelectors",
                serde_json::json!({"TrailName": "t", "EventSelectors": [{"ReadWriteType": "Sometimes"}]})
            ),
            "InvalidEventSelectorsException"
        );
        assert_eq!(
            code("GetTrail", serde_json::json!({"Name": 7})),
            "SerializationException",
            "a wrong JSON type is refused as the body is read, as DynamoDB's NUMBER_VALUE is"
        );
        assert_eq!(
            code(
                "ListPublicKeys",
                serde_json::json!({"StartTime": "yesterday"})
            ),
            "SerializationException",
            "a timestamp is epoch seconds"
        );
        assert_eq!(
            code("CreateTrail", serde_json::json!({"S3BucketName": 7})),
            "SerializationException",
            "a wrong type beside a missing member: the body is read before it is checked"
        );
        assert_eq!(
            code("GetTrail", serde_json::json!({})),
            "InvalidParameterException",
            "a member left out is the request's fault"
        );
        assert_eq!(
            code("CreateTrail", serde_json::json!({"Name": "t"})),
            "InvalidParameterException",
            "a missing bucket has no exception of its own"
        );
    }

    #[test]
    fn the_committed_model_has_every_operation_and_its_shapes() {
        let model = CloudTrailModel::builtin();
        assert_eq!(model.operations.len(), 60, "spec §2.1");
        let create = &model.operations["CreateTrail"];
        assert_eq!(create.input.as_ref().unwrap().shape, "CreateTrailRequest");
        assert!(create
            .errors
            .iter()
            .any(|error| error.shape == "S3BucketDoesNotExistException"));
        for operation in model.operations.values() {
            for shape in operation.input.iter().chain(&operation.output) {
                assert!(model.shapes.contains_key(&shape.shape), "{}", shape.shape);
            }
        }
    }
}
