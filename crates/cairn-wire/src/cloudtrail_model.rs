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

#[cfg(test)]
mod tests {
    use super::*;

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
