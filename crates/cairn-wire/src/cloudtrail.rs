//! The CloudTrail control-plane API (`cloudtrail`, AWS JSON 1.1, API version 2013-11-01):
//! operation routing by `X-Amz-Target`, and the LookupEvents request and response.

use cairn_model::{LookupAttribute, LookupAttributeKey};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::cloudtrail_shapes::TrailRequest;
use crate::error::AwsError;

pub const TARGET_PREFIX: &str = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.";
pub const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.1";
pub const EVENT_SOURCE: &str = "cloudtrail.amazonaws.com";
pub const API_VERSION: &str = "2013-11-01";

/// A CloudTrail operation Cairn recognised from `X-Amz-Target`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    LookupEvents,
    /// One of the trail operations ([`TrailRequest::SERVED`], generated with their types).
    Trail(&'static str),
    /// In the CloudTrail model but not served by Cairn yet.
    NotYetServed(&'static str),
}

impl Operation {
    pub fn name(self) -> &'static str {
        match self {
            Self::LookupEvents => "LookupEvents",
            Self::Trail(name) => name,
            Self::NotYetServed(name) => name,
        }
    }

    /// Get/Describe/List/Lookup calls are recorded with `readOnly: true`.
    pub fn is_read_only(self) -> bool {
        let name = self.name();
        ["Get", "Describe", "List", "Lookup", "Search"]
            .iter()
            .any(|prefix| name.starts_with(prefix))
    }
}

/// The operation a CloudTrail `X-Amz-Target` names.
pub fn parse_target(target: Option<&str>) -> Result<Operation, AwsError> {
    let unknown = || AwsError::new("UnknownOperationException", "");
    let name = target
        .and_then(|target| target.strip_prefix(TARGET_PREFIX))
        .ok_or_else(unknown)?;
    let name = crate::cloudtrail_model::CloudTrailModel::builtin()
        .operation_name(name)
        .ok_or_else(unknown)?;
    Ok(match name {
        "LookupEvents" => Operation::LookupEvents,
        other => match TrailRequest::SERVED.iter().find(|served| **served == other) {
            Some(served) => Operation::Trail(served),
            None => Operation::NotYetServed(other),
        },
    })
}

/// The operation name a target claims, for recording a call that could not be served; kept
/// only when it looks like an operation name, so junk never reaches a record.
pub fn claimed_operation_name(target: Option<&str>) -> Option<String> {
    crate::recordable_name(target?.rsplit('.').next()?).map(str::to_owned)
}

/// The JSON body of a JSON 1.1 request: an object, `{}` when empty.
pub fn parse_json_body(body: &[u8]) -> Result<Map<String, Value>, AwsError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(members)) => Ok(members),
        Ok(_) => Err(AwsError::serialization(
            "The request body must be a JSON object.",
        )),
        Err(error) => Err(AwsError::serialization(format!(
            "The request body is not valid JSON: {error}"
        ))),
    }
}

/// LookupEvents input, validated with AWS's rules (spec §2.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LookupEventsRequest {
    pub attribute: Option<LookupAttribute>,
    pub start_millis: Option<i64>,
    pub end_millis: Option<i64>,
    pub insight: bool,
    pub max_results: usize,
    pub next_token: Option<String>,
}

pub const DEFAULT_MAX_RESULTS: usize = 50;
const MAX_ATTRIBUTE_VALUE_LENGTH: usize = 2000;
/// The latest instant a JSON timestamp may name: 9999-12-31T23:59:59Z.
const MAX_TIMESTAMP_SECS: f64 = 253_402_300_799.0;

pub fn parse_lookup_events(members: &Map<String, Value>) -> Result<LookupEventsRequest, AwsError> {
    let attribute = match members.get("LookupAttributes") {
        None | Some(Value::Null) => None,
        Some(Value::Array(attributes)) => parse_lookup_attributes(attributes)?,
        Some(_) => return Err(type_error("LookupAttributes", "a list")),
    };
    let start_millis = parse_timestamp(members, "StartTime")?;
    let end_millis = parse_timestamp(members, "EndTime")?;
    if let (Some(start), Some(end)) = (start_millis, end_millis) {
        if start > end {
            return Err(AwsError::new(
                "InvalidTimeRangeException",
                "Start time must be earlier than or equal to end time.",
            ));
        }
    }
    let insight = match members.get("EventCategory") {
        None | Some(Value::Null) => false,
        Some(Value::String(category)) if category == "insight" => true,
        Some(Value::String(category)) => {
            return Err(AwsError::new(
                "InvalidEventCategoryException",
                format!("Event category {category:?} is not valid. The only valid event category is insight."),
            ))
        }
        Some(_) => return Err(type_error("EventCategory", "a string")),
    };
    if insight {
        if let Some(attribute) = &attribute {
            if !matches!(
                attribute.key,
                LookupAttributeKey::EventId
                    | LookupAttributeKey::EventName
                    | LookupAttributeKey::EventSource
            ) {
                return Err(AwsError::new(
                    "InvalidLookupAttributesException",
                    format!(
                        "Lookup attribute {} is not supported for Insights events. Use EventId, EventName or EventSource.",
                        attribute.key
                    ),
                ));
            }
        }
    }
    let max_results = match members.get("MaxResults") {
        None | Some(Value::Null) => DEFAULT_MAX_RESULTS,
        Some(Value::Number(number)) => match number.as_i64() {
            Some(value) if (1..=50).contains(&value) => value as usize,
            Some(value) => {
                return Err(AwsError::new(
                    "InvalidMaxResultsException",
                    format!("MaxResults {value} is not valid. It must be between 1 and 50."),
                ))
            }
            None => return Err(type_error("MaxResults", "an integer")),
        },
        Some(_) => return Err(type_error("MaxResults", "an integer")),
    };
    let next_token = match members.get("NextToken") {
        None | Some(Value::Null) => None,
        Some(Value::String(token)) if token.is_empty() => {
            return Err(AwsError::new(
                "InvalidNextTokenException",
                "NextToken must not be empty.",
            ))
        }
        Some(Value::String(token)) => Some(token.clone()),
        Some(_) => return Err(type_error("NextToken", "a string")),
    };
    Ok(LookupEventsRequest {
        attribute,
        start_millis,
        end_millis,
        insight,
        max_results,
        next_token,
    })
}

fn parse_lookup_attributes(attributes: &[Value]) -> Result<Option<LookupAttribute>, AwsError> {
    let invalid = |message: String| AwsError::new("InvalidLookupAttributesException", message);
    match attributes {
        [] => Ok(None),
        [single] => {
            let Value::Object(members) = single else {
                return Err(type_error("LookupAttributes[0]", "an object"));
            };
            let key = match members.get("AttributeKey") {
                Some(Value::String(key)) => key,
                None | Some(Value::Null) => {
                    return Err(invalid("AttributeKey is required.".into()))
                }
                Some(_) => return Err(type_error("AttributeKey", "a string")),
            };
            let key: LookupAttributeKey = key.parse().map_err(|_| {
                invalid(format!(
                    "AttributeKey {key:?} is not valid. Valid keys are EventId, EventName, ReadOnly, Username, \
                     ResourceType, ResourceName, EventSource and AccessKeyId."
                ))
            })?;
            let value = match members.get("AttributeValue") {
                Some(Value::String(value)) => value,
                None | Some(Value::Null) => {
                    return Err(invalid("AttributeValue is required.".into()))
                }
                Some(_) => return Err(type_error("AttributeValue", "a string")),
            };
            if value.is_empty() {
                return Err(invalid("AttributeValue must not be empty.".into()));
            }
            if attribute_value_length(value) > MAX_ATTRIBUTE_VALUE_LENGTH {
                return Err(invalid(format!(
                    "AttributeValue is longer than {MAX_ATTRIBUTE_VALUE_LENGTH} characters."
                )));
            }
            if key == LookupAttributeKey::ReadOnly && value != "true" && value != "false" {
                return Err(invalid(format!(
                    "AttributeValue {value:?} is not valid for ReadOnly. Use true or false."
                )));
            }
            Ok(Some(LookupAttribute {
                key,
                value: value.clone(),
            }))
        }
        _ => Err(invalid(
            "You can specify at most one lookup attribute.".into(),
        )),
    }
}

/// AttributeValue's length limit counts `_`, space, `,` and newline as two characters.
fn attribute_value_length(value: &str) -> usize {
    value
        .chars()
        .map(|c| {
            if matches!(c, '_' | ' ' | ',' | '\n') {
                2
            } else {
                1
            }
        })
        .sum()
}

fn parse_timestamp(members: &Map<String, Value>, name: &str) -> Result<Option<i64>, AwsError> {
    match members.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) => {
            let seconds = number.as_f64().unwrap_or(f64::NAN);
            if !(0.0..=MAX_TIMESTAMP_SECS).contains(&seconds) {
                return Err(AwsError::new(
                    "InvalidTimeRangeException",
                    format!("{name} {number} is outside the range of possible values."),
                ));
            }
            Ok(Some((seconds * 1000.0).round() as i64))
        }
        Some(_) => Err(type_error(
            name,
            "a timestamp in epoch seconds (a JSON number)",
        )),
    }
}

fn type_error(member: &str, expected: &str) -> AwsError {
    AwsError::serialization(format!("{member} must be {expected}."))
}

/// The request parameters AWS records for a LookupEvents call.
pub fn lookup_events_request_parameters(request: &LookupEventsRequest) -> Value {
    let mut parameters = Map::new();
    if let Some(attribute) = &request.attribute {
        parameters.insert(
            "lookupAttributes".into(),
            json!([{"attributeKey": attribute.key.as_str(), "attributeValue": attribute.value}]),
        );
    }
    if let Some(start) = request.start_millis {
        parameters.insert(
            "startTime".into(),
            json!(cairn_model::format_event_time(start)),
        );
    }
    if let Some(end) = request.end_millis {
        parameters.insert("endTime".into(), json!(cairn_model::format_event_time(end)));
    }
    if request.insight {
        parameters.insert("eventCategory".into(), json!("insight"));
    }
    parameters.insert("maxResults".into(), json!(request.max_results));
    Value::Object(parameters)
}

/// One entry of `LookupEvents.Events`, spelled as the wire spells it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EventOut {
    pub event_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_name: Option<String>,
    /// A string, "true" or "false", on the wire.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_only: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// Epoch seconds as a JSON number.
    pub event_time: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    pub resources: Vec<ResourceOut>,
    pub cloud_trail_event: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResourceOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LookupEventsResponse {
    pub events: Vec<EventOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

impl From<&cairn_model::IndexedEvent> for EventOut {
    fn from(event: &cairn_model::IndexedEvent) -> Self {
        Self {
            event_id: event.event_id.clone(),
            event_name: event.event_name.clone(),
            read_only: event.read_only.map(|read_only| read_only.to_string()),
            access_key_id: event.access_key_id.clone(),
            event_time: event.event_time_millis as f64 / 1000.0,
            event_source: event.event_source.clone(),
            username: event.username.clone(),
            resources: event
                .resources
                .iter()
                .map(|resource| ResourceOut {
                    resource_type: resource.resource_type.clone(),
                    resource_name: resource.resource_name.clone(),
                })
                .collect(),
            cloud_trail_event: event.record_json.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: Value) -> Result<LookupEventsRequest, AwsError> {
        parse_lookup_events(body.as_object().unwrap())
    }

    fn code(body: Value) -> String {
        parse(body).unwrap_err().code
    }

    #[test]
    fn every_served_operation_is_the_models_and_parses_into_its_typed_request() {
        let model = crate::cloudtrail_model::CloudTrailModel::builtin();
        for name in TrailRequest::SERVED {
            assert_eq!(model.operation_name(name), Some(*name));
            let target = format!("{TARGET_PREFIX}{name}");
            assert_eq!(parse_target(Some(&target)), Ok(Operation::Trail(name)));
        }
        let served = model
            .operations
            .keys()
            .filter(|name| TrailRequest::SERVED.contains(&name.as_str()))
            .count();
        assert_eq!(served, TrailRequest::SERVED.len());
        let request = TrailRequest::parse(
            "CreateTrail",
            json!({"Name": "t", "S3BucketName": "b", "TagsList": [{"Key": "k"}], "Unknown": 1}),
        );
        let Some(Ok(TrailRequest::CreateTrail(create))) = request else {
            panic!("{request:?}");
        };
        assert_eq!(
            (create.name.as_str(), create.s3_bucket_name.as_str()),
            ("t", "b")
        );
        assert_eq!(create.tags_list.unwrap()[0].value, None);
        assert!(TrailRequest::parse("CreateEventDataStore", json!({})).is_none());
        assert!(matches!(
            TrailRequest::parse("ListPublicKeys", json!({"StartTime": "yesterday"})),
            Some(Err(_))
        ));
    }

    #[test]
    fn routes_targets() {
        assert_eq!(
            parse_target(Some(
                "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents"
            )),
            Ok(Operation::LookupEvents)
        );
        assert_eq!(
            parse_target(Some(
                "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.CreateTrail"
            )),
            Ok(Operation::Trail("CreateTrail"))
        );
        assert_eq!(
            parse_target(Some(
                "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.CreateEventDataStore"
            )),
            Ok(Operation::NotYetServed("CreateEventDataStore"))
        );
        for target in [
            None,
            Some("LookupEvents"),
            Some("com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.Nope"),
        ] {
            assert_eq!(
                parse_target(target).unwrap_err().code,
                "UnknownOperationException"
            );
        }
        assert_eq!(
            claimed_operation_name(Some("x.y.DropTables")).as_deref(),
            Some("DropTables")
        );
        assert_eq!(claimed_operation_name(Some("x.<script>")), None);
    }

    #[test]
    fn defaults_and_valid_input() {
        let request = parse(json!({})).unwrap();
        assert_eq!(request.max_results, 50);
        assert!(!request.insight);
        let request = parse(json!({"LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "X"}],
            "StartTime": 10, "EndTime": 10.5, "MaxResults": 7, "EventCategory": "insight", "NextToken": "t"}))
        .unwrap();
        assert_eq!(request.start_millis, Some(10_000));
        assert_eq!(request.end_millis, Some(10_500));
        assert_eq!(request.max_results, 7);
        assert!(request.insight);
    }

    #[test]
    fn every_validation_error_has_its_code() {
        let attribute = |key: &str, value: Value| json!({"LookupAttributes": [{"AttributeKey": key, "AttributeValue": value}]});
        assert_eq!(
            code(attribute("Nope", json!("x"))),
            "InvalidLookupAttributesException"
        );
        assert_eq!(
            code(attribute("EventName", json!(""))),
            "InvalidLookupAttributesException"
        );
        assert_eq!(
            code(attribute("ReadOnly", json!("yes"))),
            "InvalidLookupAttributesException"
        );
        assert_eq!(
            code(attribute("EventName", json!("a".repeat(2001)))),
            "InvalidLookupAttributesException"
        );
        assert!(parse(attribute("EventName", json!("a".repeat(2000)))).is_ok());
        assert_eq!(
            code(attribute("EventName", json!("_".repeat(1001)))),
            "InvalidLookupAttributesException"
        );
        assert_eq!(
            code(attribute("EventName", json!(5))),
            "SerializationException"
        );
        assert_eq!(
            code(
                json!({"LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "a"}, {"AttributeKey": "EventId", "AttributeValue": "b"}]})
            ),
            "InvalidLookupAttributesException"
        );
        assert_eq!(
            code(json!({"StartTime": 20, "EndTime": 10})),
            "InvalidTimeRangeException"
        );
        assert_eq!(code(json!({"StartTime": -1})), "InvalidTimeRangeException");
        assert_eq!(
            code(json!({"StartTime": 1e300})),
            "InvalidTimeRangeException"
        );
        assert_eq!(
            code(json!({"StartTime": "yesterday"})),
            "SerializationException"
        );
        assert_eq!(code(json!({"MaxResults": 0})), "InvalidMaxResultsException");
        assert_eq!(
            code(json!({"MaxResults": 51})),
            "InvalidMaxResultsException"
        );
        assert_eq!(code(json!({"MaxResults": 2.5})), "SerializationException");
        assert_eq!(
            code(json!({"EventCategory": "Insight"})),
            "InvalidEventCategoryException"
        );
        assert_eq!(code(json!({"NextToken": ""})), "InvalidNextTokenException");
        assert_eq!(
            code(
                json!({"EventCategory": "insight", "LookupAttributes": [{"AttributeKey": "Username", "AttributeValue": "x"}]})
            ),
            "InvalidLookupAttributesException"
        );
    }

    #[test]
    fn body_must_be_a_json_object() {
        assert!(parse_json_body(b"").unwrap().is_empty());
        assert_eq!(
            parse_json_body(b"[1]").unwrap_err().code,
            "SerializationException"
        );
        assert_eq!(
            parse_json_body(b"{").unwrap_err().code,
            "SerializationException"
        );
    }

    #[test]
    fn event_out_uses_wire_spelling() {
        let out = EventOut {
            event_id: "e".into(),
            event_name: Some("N".into()),
            read_only: Some("true".into()),
            access_key_id: None,
            event_time: 1_700_000_000.0,
            event_source: None,
            username: None,
            resources: vec![],
            cloud_trail_event: "{}".into(),
        };
        let text = serde_json::to_string(&out).unwrap();
        assert!(text.contains(r#""EventTime":1700000000.0"#), "{text}");
        assert!(text.contains(r#""ReadOnly":"true""#));
        assert!(text.contains(r#""CloudTrailEvent":"{}""#));
        assert!(!text.contains("AccessKeyId"));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            ".{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 16, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("LookupAttributes".to_owned()),
                        Just("AttributeKey".to_owned()),
                        Just("AttributeValue".to_owned()),
                        Just("StartTime".to_owned()),
                        Just("EndTime".to_owned()),
                        Just("MaxResults".to_owned()),
                        Just("EventCategory".to_owned()),
                        Just("NextToken".to_owned()),
                        ".{0,6}"
                    ],
                    inner,
                    0..5
                )
                .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Any body gets either a request or an AWS error with a 400 status: never a panic.
        #[test]
        fn lookup_events_validation_is_total(body in json_value()) {
            let bytes = serde_json::to_vec(&body).unwrap();
            match parse_json_body(&bytes).and_then(|members| parse_lookup_events(&members)) {
                Ok(request) => {
                    prop_assert!((1..=50).contains(&request.max_results));
                    if let (Some(start), Some(end)) = (request.start_millis, request.end_millis) {
                        prop_assert!(start <= end);
                    }
                }
                Err(error) => prop_assert_eq!(error.status, http::StatusCode::BAD_REQUEST),
            }
        }
    }
}
