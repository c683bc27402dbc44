//! A borrowed view of the few fields the event history indexes, read straight from a
//! record's JSON text without building the whole record. Bulk paths (import, reading a page
//! back from the store) use it; the record's own text is kept as it is, so nothing is lost.

use std::borrow::Cow;

use serde::Deserialize;

use crate::indexed::{derived_event_id, EventCategory, IndexedEvent, ResourceRef};
use crate::record::{check_required, RecordError, RequiredFields, UserIdentityType};

#[derive(Deserialize)]
struct RecordView<'a> {
    #[serde(rename = "eventTime", borrow, default)]
    event_time: Option<Cow<'a, str>>,
    #[serde(rename = "eventID", borrow, default)]
    event_id: Option<Cow<'a, str>>,
    #[serde(rename = "eventName", borrow, default)]
    event_name: Option<Cow<'a, str>>,
    #[serde(rename = "eventSource", borrow, default)]
    event_source: Option<Cow<'a, str>>,
    #[serde(rename = "eventType", borrow, default)]
    event_type: Option<Cow<'a, str>>,
    #[serde(rename = "eventCategory", borrow, default)]
    event_category: Option<Cow<'a, str>>,
    #[serde(rename = "managementEvent", default)]
    management_event: Option<bool>,
    #[serde(rename = "readOnly", default)]
    read_only: Option<bool>,
    #[serde(rename = "userIdentity", borrow, default)]
    user_identity: Option<IdentityView<'a>>,
    #[serde(borrow, default)]
    resources: Option<Vec<ResourceView<'a>>>,
    #[serde(rename = "insightDetails", borrow, default)]
    insight_details: Option<InsightView<'a>>,
}

#[derive(Deserialize)]
struct IdentityView<'a> {
    #[serde(rename = "type", default)]
    identity_type: Option<UserIdentityType>,
    #[serde(rename = "userName", borrow, default)]
    user_name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    arn: Option<Cow<'a, str>>,
    #[serde(rename = "invokedBy", borrow, default)]
    invoked_by: Option<Cow<'a, str>>,
    #[serde(rename = "accessKeyId", borrow, default)]
    access_key_id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ResourceView<'a> {
    #[serde(rename = "ARN", borrow, default)]
    arn: Option<Cow<'a, str>>,
    #[serde(rename = "type", borrow, default)]
    resource_type: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct InsightView<'a> {
    #[serde(rename = "eventName", borrow, default)]
    event_name: Option<Cow<'a, str>>,
    #[serde(rename = "eventSource", borrow, default)]
    event_source: Option<Cow<'a, str>>,
}

impl IndexedEvent {
    /// Projects a record given as JSON text, keeping that text as the stored record. Applies
    /// the same validity rules as [`crate::CloudTrailRecord::from_json`] to the fields it reads.
    pub fn from_json_text(record_json: String) -> Result<Self, RecordError> {
        let view: RecordView<'_> = parse_view(&record_json)?;
        let category = EventCategory::classify(
            view.event_type.as_deref(),
            view.event_category.as_deref(),
            view.management_event,
        );
        let is_insight = category == EventCategory::Insight;
        let event_time_millis = check_required(RequiredFields {
            event_time: view.event_time.as_deref(),
            insight: is_insight,
            has_insight_details: view.insight_details.is_some(),
            has_event_source: view.event_source.is_some(),
            has_event_name: view.event_name.is_some(),
        })?;
        let (event_name, event_source) = match view.insight_details.as_ref().filter(|_| is_insight)
        {
            Some(details) => (owned(&details.event_name), owned(&details.event_source)),
            None => (owned(&view.event_name), owned(&view.event_source)),
        };
        let identity = view.user_identity.as_ref();
        let event_id = match view.event_id.as_deref().filter(|id| !id.is_empty()) {
            Some(id) => id.to_owned(),
            None => derived_event_id(&record_json),
        };
        let resources = view
            .resources
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|resource| ResourceRef {
                resource_type: owned(&resource.resource_type),
                resource_name: owned(&resource.arn),
            })
            .filter(|resource| resource.resource_type.is_some() || resource.resource_name.is_some())
            .collect();
        let username = identity.and_then(|identity| {
            crate::record::display_user_name(
                identity.identity_type.as_ref(),
                identity.user_name.as_deref(),
                identity.arn.as_deref(),
                identity.invoked_by.as_deref(),
            )
        });
        let access_key_id = identity
            .and_then(|identity| identity.access_key_id.as_deref())
            .filter(|key| !key.is_empty())
            .map(str::to_owned);
        Ok(Self {
            event_id,
            event_time_millis,
            category,
            read_only: view.read_only,
            event_name,
            event_source,
            username,
            access_key_id,
            resources,
            record_json,
        })
    }
}

fn owned(text: &Option<Cow<'_, str>>) -> Option<String> {
    text.as_deref().map(str::to_owned)
}

fn parse_view(json: &str) -> Result<RecordView<'_>, RecordError> {
    let first = json.bytes().find(|byte| !byte.is_ascii_whitespace());
    if first != Some(b'{') {
        return Err(match serde_json::from_str::<serde_json::Value>(json) {
            Ok(value) => {
                RecordError::NotAnObject(format!("found {}", crate::record::json_kind(&value)))
            }
            Err(error) => RecordError::NotAnObject(error.to_string()),
        });
    }
    serde_json::from_str(json).map_err(|error| {
        if error.is_syntax() || error.is_eof() {
            RecordError::NotAnObject(error.to_string())
        } else {
            RecordError::WrongType {
                field: crate::record::field_named_in(&error.to_string()),
                detail: error.to_string(),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CloudTrailRecord;
    use serde_json::json;

    fn both(
        value: serde_json::Value,
    ) -> (
        Result<IndexedEvent, RecordError>,
        Result<IndexedEvent, RecordError>,
    ) {
        let text = serde_json::to_string(&value).unwrap();
        let typed = CloudTrailRecord::from_json(text.as_bytes())
            .and_then(|record| IndexedEvent::from_record(&record));
        (IndexedEvent::from_json_text(text), typed)
    }

    #[test]
    fn agrees_with_the_typed_model() {
        let cases = [
            json!({"eventTime": "2024-01-01T00:00:00Z", "eventSource": "kms.amazonaws.com", "eventName": "DisableKey", "eventID": "x",
                   "readOnly": false, "userIdentity": {"type": "AssumedRole", "arn": "arn:aws:sts::1:assumed-role/R/sess", "accessKeyId": "ASIA"},
                   "resources": [{"ARN": "arn:aws:kms:us-east-1:1:key/k", "type": "AWS::KMS::Key"}], "unknown": {"deep": [1]}}),
            json!({"eventTime": "2024-01-01T00:00:00Z", "eventSource": "s3.amazonaws.com", "eventName": "GetObject", "managementEvent": false}),
            json!({"eventTime": "2024-01-01T00:00:00Z", "eventType": "AwsCloudTrailInsight", "eventID": "i",
                   "insightDetails": {"eventName": "RunInstances", "eventSource": "ec2.amazonaws.com"}}),
            json!({"eventTime": "2024-01-01T00:00:00Z", "eventSource": "iam.amazonaws.com", "eventName": "X", "userIdentity": {"type": "Root"}}),
        ];
        for case in cases {
            let (view, typed) = both(case.clone());
            let (mut view, typed) = (view.unwrap(), typed.unwrap());
            // The view keeps the original text; the typed path re-serializes it.
            assert_eq!(
                serde_json::from_str::<serde_json::Value>(&view.record_json).unwrap(),
                case
            );
            view.record_json = typed.record_json.clone();
            if case.get("eventID").is_none() {
                view.event_id = typed.event_id.clone();
            }
            assert_eq!(view, typed);
        }
    }

    #[test]
    fn rejects_what_the_typed_model_rejects() {
        for (case, expected) in [
            (
                json!({"eventSource": "a", "eventName": "b"}),
                RecordError::MissingField("eventTime"),
            ),
            (
                json!({"eventTime": "2024-01-01T00:00:00Z", "eventName": "b"}),
                RecordError::MissingField("eventSource"),
            ),
            (
                json!({"eventTime": "2024-01-01T00:00:00Z", "eventSource": "a"}),
                RecordError::MissingField("eventName"),
            ),
        ] {
            let (view, typed) = both(case);
            assert_eq!(view.unwrap_err(), expected);
            assert_eq!(typed.unwrap_err(), expected);
        }
        let (view, _) = both(json!({"eventTime": "soon", "eventSource": "a", "eventName": "b"}));
        assert!(matches!(view, Err(RecordError::InvalidEventTime(_))));
        let (view, typed) = both(
            json!({"eventTime": "2024-01-01T00:00:00Z", "eventSource": "a", "eventName": "b", "readOnly": "yes"}),
        );
        assert!(matches!(view, Err(RecordError::WrongType { .. })));
        assert!(matches!(typed, Err(RecordError::WrongType { .. })));
        assert!(matches!(
            IndexedEvent::from_json_text("[1]".into()),
            Err(RecordError::NotAnObject(_))
        ));
    }
}
