//! What the history is found by, the same for every backend: the (attribute, value) pairs
//! of an event that LookupEvents can ask for, their stored codes, and the one stable hash
//! stored keys are made with.

use cairn_model::{IndexedEvent, LookupAttribute, LookupAttributeKey};

/// Every (attribute, value) pair an event is found by, EventId excepted.
pub(crate) fn lookup_entries(event: &IndexedEvent) -> Vec<(LookupAttributeKey, &str)> {
    let mut entries = Vec::with_capacity(6 + 2 * event.resources.len());
    fn push<'a>(
        entries: &mut Vec<(LookupAttributeKey, &'a str)>,
        key: LookupAttributeKey,
        value: Option<&'a String>,
    ) {
        if let Some(value) = value {
            entries.push((key, value.as_str()));
        }
    }
    push(
        &mut entries,
        LookupAttributeKey::EventName,
        event.event_name.as_ref(),
    );
    push(
        &mut entries,
        LookupAttributeKey::EventSource,
        event.event_source.as_ref(),
    );
    push(
        &mut entries,
        LookupAttributeKey::Username,
        event.username.as_ref(),
    );
    push(
        &mut entries,
        LookupAttributeKey::AccessKeyId,
        event.access_key_id.as_ref(),
    );
    for resource in &event.resources {
        push(
            &mut entries,
            LookupAttributeKey::ResourceType,
            resource.resource_type.as_ref(),
        );
        push(
            &mut entries,
            LookupAttributeKey::ResourceName,
            resource.resource_name.as_ref(),
        );
    }
    if let Some(read_only) = event.read_only {
        entries.push((
            LookupAttributeKey::ReadOnly,
            if read_only { "true" } else { "false" },
        ));
    }
    entries
}

/// Whether LookupEvents asking for `attribute` finds `event`: what `cairn tail` filters by,
/// so that it shows exactly what a lookup would.
pub fn found_by(event: &IndexedEvent, attribute: &LookupAttribute) -> bool {
    match attribute.key {
        LookupAttributeKey::EventId => event.event_id == attribute.value,
        key => lookup_entries(event)
            .into_iter()
            .any(|(found, value)| found == key && value == attribute.value),
    }
}

pub(crate) fn attr_code(key: LookupAttributeKey) -> i64 {
    match key {
        LookupAttributeKey::EventId => 0,
        LookupAttributeKey::EventName => 1,
        LookupAttributeKey::ReadOnly => 2,
        LookupAttributeKey::Username => 3,
        LookupAttributeKey::ResourceType => 4,
        LookupAttributeKey::ResourceName => 5,
        LookupAttributeKey::EventSource => 6,
        LookupAttributeKey::AccessKeyId => 7,
    }
}

/// FNV-1a, 64 bits. Stored keys are made with it, so it must never change.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_found_by_each_attribute_it_has_and_no_other() {
        let event = IndexedEvent::from_json_text(
            serde_json::json!({
                "eventVersion": "1.11", "eventTime": "2026-12-02T00:00:00Z", "eventID": "e-1",
                "eventSource": "s3.amazonaws.com", "eventName": "CreateBucket", "readOnly": false,
                "userIdentity": {"type": "IAMUser", "userName": "alice", "accessKeyId": "AKIA1"},
                "resources": [{"type": "AWS::S3::Bucket", "ARN": "arn:aws:s3:::b"}],
            })
            .to_string(),
        )
        .unwrap();
        let found = |key, value: &str| {
            found_by(
                &event,
                &LookupAttribute {
                    key,
                    value: value.into(),
                },
            )
        };
        assert!(found(LookupAttributeKey::EventId, "e-1"));
        assert!(found(LookupAttributeKey::EventName, "CreateBucket"));
        assert!(found(LookupAttributeKey::ReadOnly, "false"));
        assert!(!found(LookupAttributeKey::ReadOnly, "true"));
        assert!(found(LookupAttributeKey::Username, "alice"));
        assert!(found(LookupAttributeKey::AccessKeyId, "AKIA1"));
        assert!(found(LookupAttributeKey::ResourceType, "AWS::S3::Bucket"));
        assert!(found(LookupAttributeKey::ResourceName, "arn:aws:s3:::b"));
        assert!(!found(LookupAttributeKey::ResourceName, "b"));
        assert!(!found(LookupAttributeKey::EventSource, "kms.amazonaws.com"));
        assert!(!found(LookupAttributeKey::EventId, "e-2"));
    }
}
