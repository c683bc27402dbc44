use sha2::{Digest, Sha256};

use crate::record::{CloudTrailRecord, RecordError};

/// Which part of the event history an event belongs to. Event history shows management
/// events; Insights events only when asked for; data and network-activity events never
/// (they are kept for trails and Lake).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventCategory {
    Management,
    Data,
    NetworkActivity,
    Insight,
}

impl EventCategory {
    pub fn code(self) -> i64 {
        match self {
            Self::Management => 0,
            Self::Data => 1,
            Self::NetworkActivity => 2,
            Self::Insight => 3,
        }
    }

    pub fn from_code(code: i64) -> Option<Self> {
        [
            Self::Management,
            Self::Data,
            Self::NetworkActivity,
            Self::Insight,
        ]
        .into_iter()
        .find(|category| category.code() == code)
    }

    pub fn of(record: &CloudTrailRecord) -> Self {
        Self::classify(
            record.event_type.get().map(String::as_str),
            record.event_category.get().map(String::as_str),
            record.management_event.get().copied(),
        )
    }

    /// The one rule for a record's category, from the three fields that decide it; the
    /// typed record and the borrowed view both use it.
    pub fn classify(
        event_type: Option<&str>,
        event_category: Option<&str>,
        management_event: Option<bool>,
    ) -> Self {
        if event_type == Some("AwsCloudTrailInsight") || event_category == Some("Insight") {
            return Self::Insight;
        }
        match event_category {
            Some("Data") => Self::Data,
            Some("NetworkActivity") => Self::NetworkActivity,
            Some(_) => Self::Management,
            // Records older than eventVersion 1.07 have no eventCategory; 1.06 added
            // managementEvent, which is false for data events.
            None if management_event == Some(false) => Self::Data,
            None => Self::Management,
        }
    }
}

/// A resource as LookupEvents reports it and as the ResourceType/ResourceName attributes match.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ResourceRef {
    pub resource_type: Option<String>,
    pub resource_name: Option<String>,
}

/// A record projected onto what the event history stores and indexes. The record text is
/// kept whole: `CloudTrailEvent` returns it.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexedEvent {
    pub event_id: String,
    pub event_time_millis: i64,
    pub category: EventCategory,
    pub read_only: Option<bool>,
    pub event_name: Option<String>,
    pub event_source: Option<String>,
    pub username: Option<String>,
    pub access_key_id: Option<String>,
    pub resources: Vec<ResourceRef>,
    pub record_json: String,
}

impl IndexedEvent {
    pub fn from_record(record: &CloudTrailRecord) -> Result<Self, RecordError> {
        Self::from_record_and_json(record, record.to_json())
    }

    fn from_record_and_json(
        record: &CloudTrailRecord,
        record_json: String,
    ) -> Result<Self, RecordError> {
        let event_time_millis = record.event_time_millis()?;
        let category = EventCategory::of(record);
        let (event_name, event_source) = match record.insight_details.get() {
            Some(details) if category == EventCategory::Insight => (
                details.event_name.get().cloned(),
                details.event_source.get().cloned(),
            ),
            _ => (
                record.event_name.get().cloned(),
                record.event_source.get().cloned(),
            ),
        };
        let identity = record.user_identity.get();
        let event_id = match record.event_id.get().filter(|id| !id.is_empty()) {
            Some(id) => id.clone(),
            // eventID arrived in eventVersion 1.01. For older records derive a stable ID from
            // the content so that importing the same file twice still adds nothing.
            None => derived_event_id(&record_json),
        };
        let resources = record
            .resources
            .get()
            .map(|resources| {
                resources
                    .iter()
                    .map(|resource| ResourceRef {
                        resource_type: resource.resource_type.get().cloned(),
                        resource_name: resource.arn.get().cloned(),
                    })
                    .filter(|resource| {
                        resource.resource_type.is_some() || resource.resource_name.is_some()
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            event_id,
            event_time_millis,
            category,
            read_only: record.read_only.get().copied(),
            event_name,
            event_source,
            username: identity.and_then(|identity| identity.display_user_name()),
            access_key_id: identity
                .and_then(|identity| identity.access_key_id.get())
                .filter(|key| !key.is_empty())
                .cloned(),
            resources,
            record_json,
        })
    }
}

pub(crate) fn derived_event_id(record_json: &str) -> String {
    let digest = Sha256::digest(record_json.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_sha1_bytes(bytes)
        .into_uuid()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn categories_follow_the_record() {
        let base = json!({"eventTime": "2024-01-01T00:00:00Z", "eventSource": "s3.amazonaws.com", "eventName": "GetObject"});
        let category = |extra: serde_json::Value| {
            let mut value = base.clone();
            value
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            EventCategory::of(&CloudTrailRecord::from_value(value).unwrap())
        };
        assert_eq!(category(json!({})), EventCategory::Management);
        assert_eq!(
            category(json!({"eventCategory": "Data"})),
            EventCategory::Data
        );
        assert_eq!(
            category(json!({"managementEvent": false})),
            EventCategory::Data
        );
        assert_eq!(
            category(
                json!({"eventType": "AwsCloudTrailInsight", "insightDetails": {"eventName": "X"}})
            ),
            EventCategory::Insight
        );
    }

    #[test]
    fn derived_ids_are_stable_for_records_without_event_id() {
        let value = json!({"eventTime": "2014-01-01T00:00:00Z", "eventSource": "ec2.amazonaws.com", "eventName": "RunInstances", "eventVersion": "1.0"});
        let record = CloudTrailRecord::from_value(value).unwrap();
        let first = IndexedEvent::from_record(&record).unwrap();
        let second = IndexedEvent::from_record(&record).unwrap();
        assert_eq!(first.event_id, second.event_id);
        assert_eq!(first.event_id.len(), 36);
    }

    #[test]
    fn stored_json_rebuilds_the_same_projection() {
        let value = json!({"eventTime": "2024-01-01T00:00:00Z", "eventSource": "kms.amazonaws.com", "eventName": "DisableKey",
            "eventID": "x", "readOnly": false, "userIdentity": {"type": "IAMUser", "userName": "u", "accessKeyId": "AKIA"},
            "resources": [{"ARN": "arn:aws:kms:us-east-1:1:key/k", "type": "AWS::KMS::Key"}]});
        let indexed =
            IndexedEvent::from_record(&CloudTrailRecord::from_value(value).unwrap()).unwrap();
        assert_eq!(
            IndexedEvent::from_json_text(indexed.record_json.clone()).unwrap(),
            indexed
        );
    }

    #[test]
    fn insight_records_index_their_details() {
        let value = json!({"eventVersion": "1.07", "eventTime": "2024-01-01T00:00:00Z", "eventType": "AwsCloudTrailInsight",
            "eventCategory": "Insight", "eventID": "i1",
            "insightDetails": {"state": "Start", "eventSource": "ec2.amazonaws.com", "eventName": "RunInstances", "insightType": "ApiCallRateInsight"}});
        let indexed =
            IndexedEvent::from_record(&CloudTrailRecord::from_value(value).unwrap()).unwrap();
        assert_eq!(indexed.category, EventCategory::Insight);
        assert_eq!(indexed.event_name.as_deref(), Some("RunInstances"));
        assert_eq!(indexed.event_source.as_deref(), Some("ec2.amazonaws.com"));
    }
}
