//! Where an operation's JSON input and output hold maps, and where a query or ec2 input holds
//! numbers and booleans, from botocore's service models (`tools/generate_routing_table.py`
//! writes `data/map-shapes.json`).
//!
//! CloudTrail lower-camel-cases member names (`TableName` → `tableName`) but keeps a map's
//! keys as the caller wrote them: tag keys, DynamoDB table and attribute names, SNS
//! attribute names are data, not member names. Nothing in a JSON body tells a map from a
//! structure, so the model's shapes do. Only shapes from which a map can be reached are kept;
//! anywhere else every object is a structure.
//!
//! A query or ec2 request is all text, yet CloudTrail logs `"maxItems": 100` and `"dryRun":
//! false`: for those services the kept shapes are the ones from which a number or a boolean
//! can be reached, their members named as the request spells them.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::Value;

const TABLE: &str = include_str!("../data/map-shapes.json");

/// One kept shape: the members that lead to a map, a list's items, or a map's values.
#[derive(Debug)]
pub enum Shape {
    Structure(HashMap<String, u32>),
    List(u32),
    /// A map; its values' shape when a map can be reached from them.
    Map(Option<u32>),
    /// An integer, long, float or double (query and ec2 inputs only).
    Number,
    /// A boolean (query and ec2 inputs only).
    Boolean,
    /// A timestamp (JSON 1.0/1.1 services only, which send epoch seconds).
    Timestamp,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ShapeLine {
    Structure(HashMap<String, u32>),
    Tagged(Vec<Value>),
}

#[derive(Deserialize)]
struct ServiceLine {
    id: String,
    operations: HashMap<String, [Option<u32>; 2]>,
    shapes: Vec<ShapeLine>,
}

/// One service's kept shapes.
#[derive(Debug)]
pub struct ServiceShapes {
    operations: HashMap<String, [Option<u32>; 2]>,
    shapes: Vec<Shape>,
}

/// Which end of a call a body is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Input = 0,
    Output = 1,
}

/// A position in a service's shapes: what the value found there is.
#[derive(Clone, Copy)]
pub struct ShapeRef<'a> {
    service: &'a ServiceShapes,
    index: u32,
}

impl<'a> ShapeRef<'a> {
    pub fn shape(&self) -> Option<&'a Shape> {
        self.service.shapes.get(self.index as usize)
    }

    /// The shape at `index` in the same service.
    pub fn at(&self, index: u32) -> Self {
        Self {
            service: self.service,
            index,
        }
    }
}

/// Every service's kept shapes.
#[derive(Debug)]
pub struct MapShapes {
    services: HashMap<String, ServiceShapes>,
}

impl MapShapes {
    /// The table generated from botocore's models, parsed on first use.
    pub fn builtin() -> &'static Self {
        static SHAPES: OnceLock<MapShapes> = OnceLock::new();
        SHAPES.get_or_init(|| Self::parse(TABLE).expect("the committed map-shapes table parses"))
    }

    fn parse(text: &str) -> Result<Self, String> {
        let mut services = HashMap::new();
        // The first line names the botocore version the table came from.
        for line in text.lines().skip(1).filter(|line| !line.is_empty()) {
            let line: ServiceLine =
                serde_json::from_str(line).map_err(|error| error.to_string())?;
            let shapes = line
                .shapes
                .into_iter()
                .map(|shape| match shape {
                    ShapeLine::Structure(members) => Ok(Shape::Structure(members)),
                    ShapeLine::Tagged(tagged) => {
                        let index = tagged.get(1).and_then(Value::as_u64).map(|i| i as u32);
                        match (tagged.first().and_then(Value::as_str), index) {
                            (Some("list"), Some(index)) => Ok(Shape::List(index)),
                            (Some("map"), index) => Ok(Shape::Map(index)),
                            (Some("number"), None) => Ok(Shape::Number),
                            (Some("boolean"), None) => Ok(Shape::Boolean),
                            (Some("timestamp"), None) => Ok(Shape::Timestamp),
                            _ => Err(format!("{}: unknown shape {tagged:?}", line.id)),
                        }
                    }
                })
                .collect::<Result<_, String>>()?;
            services.insert(
                line.id,
                ServiceShapes {
                    operations: line.operations,
                    shapes,
                },
            );
        }
        Ok(Self { services })
    }

    /// The shape of `operation`'s `end`, when a map (JSON) or a typed value (query, ec2)
    /// can be reached from it.
    pub fn of(&self, service_id: &str, operation: &str, end: End) -> Option<ShapeRef<'_>> {
        let service = self.services.get(service_id)?;
        let index = service.operations.get(operation)?[end as usize]?;
        Some(ShapeRef { service, index })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_table_parses_and_points_inside_itself() {
        let table = MapShapes::builtin();
        assert!(table.services.len() > 200);
        for (id, service) in &table.services {
            let count = service.shapes.len() as u32;
            let inside = |index: &u32| *index < count;
            for ends in service.operations.values() {
                assert!(ends.iter().flatten().all(inside), "{id}");
            }
            for shape in &service.shapes {
                match shape {
                    Shape::Structure(members) => assert!(members.values().all(inside), "{id}"),
                    Shape::List(index) | Shape::Map(Some(index)) => assert!(inside(index), "{id}"),
                    Shape::Map(None) | Shape::Number | Shape::Boolean | Shape::Timestamp => {}
                }
            }
        }
    }

    #[test]
    fn dynamodb_items_and_tags_are_maps() {
        let table = MapShapes::builtin();
        let put = table.of("dynamodb", "PutItem", End::Input).unwrap();
        let Some(Shape::Structure(members)) = put.shape() else {
            panic!("PutItem's input is a structure");
        };
        assert!(matches!(
            put.at(members["Item"]).shape(),
            Some(Shape::Map(Some(_)))
        ));
        let tags = table.of("lambda", "TagResource", End::Input).unwrap();
        let Some(Shape::Structure(members)) = tags.shape() else {
            panic!("TagResource's input is a structure");
        };
        assert!(matches!(
            tags.at(members["Tags"]).shape(),
            Some(Shape::Map(None))
        ));
        assert!(table.of("kms", "DisableKey", End::Input).is_none());
    }

    #[test]
    fn query_and_ec2_inputs_know_their_numbers_and_booleans_by_wire_name() {
        let table = MapShapes::builtin();
        let member = |service: &str, operation: &str, name: &str| {
            let input = table.of(service, operation, End::Input).unwrap();
            let Some(Shape::Structure(members)) = input.shape() else {
                panic!("{operation}'s input is a structure");
            };
            input.at(members[name]).shape()
        };
        assert!(matches!(
            member("iam", "ListUsers", "MaxItems"),
            Some(Shape::Number)
        ));
        // ec2 spells members by their capitalised locationName.
        assert!(matches!(
            member("ec2", "RunInstances", "MinCount"),
            Some(Shape::Number)
        ));
        assert!(matches!(
            member("ec2", "DescribeInstances", "DryRun"),
            Some(Shape::Boolean)
        ));
        assert!(table.of("sts", "GetCallerIdentity", End::Input).is_none());
        // Query answers are typed too (they become responseElements).
        assert!(table.of("iam", "CreateUser", End::Output).is_some());
        // ec2 answers are kept for the calls whose answers are recorded.
        assert!(table.of("ec2", "RunInstances", End::Output).is_some());
        assert!(table.of("ec2", "DescribeInstances", End::Output).is_none());
    }
}
