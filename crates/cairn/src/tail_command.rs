//! `cairn tail`: follows the store's feed and prints each new event as it is recorded, one
//! line each (time, region, source, name, user, error) or, with `--json`, the record itself.
//! It reads the data directory directly, beside a running server: whoever may read the
//! data directory may read its events, and no one else.

use std::io::Write;
use std::time::Duration;

use cairn_model::{LookupAttribute, LookupAttributeKey};
use cairn_store::found_by;
use serde_json::Value;

use crate::config::Settings;

/// What `cairn tail` prints: every filter is a LookupEvents attribute, matched as a lookup
/// matches it, and an event is printed when it has all of them.
#[derive(clap::Args, Debug, Default)]
pub struct TailFilters {
    /// Only the event with this eventID
    #[arg(long)]
    pub event_id: Option<String>,
    /// Only events with this eventName
    #[arg(long)]
    pub event_name: Option<String>,
    /// Only events from this eventSource (kms.amazonaws.com, ...)
    #[arg(long)]
    pub event_source: Option<String>,
    /// Only events by this user name (as LookupEvents' Username)
    #[arg(long)]
    pub username: Option<String>,
    /// Only events with this access key
    #[arg(long)]
    pub access_key_id: Option<String>,
    /// Only read-only (true) or write (false) events
    #[arg(long)]
    pub read_only: Option<bool>,
    /// Only events naming a resource of this type (AWS::S3::Bucket, AWS::KMS::Key, ...)
    #[arg(long)]
    pub resource_type: Option<String>,
    /// Only events naming this resource (its ARN, as LookupEvents' ResourceName)
    #[arg(long)]
    pub resource_name: Option<String>,
    /// Print each record as one line of JSON
    #[arg(long)]
    pub json: bool,
    /// Start from the oldest event still in the feed, not from now
    #[arg(long)]
    pub from_start: bool,
    /// Stop after printing this many events
    #[arg(long)]
    pub count: Option<u64>,
}

const POLL: Duration = Duration::from_millis(200);
const BATCH: usize = 1000;

impl TailFilters {
    fn attributes(&self) -> Vec<LookupAttribute> {
        let read_only = self.read_only.map(|wanted| wanted.to_string());
        [
            (LookupAttributeKey::EventId, &self.event_id),
            (LookupAttributeKey::EventName, &self.event_name),
            (LookupAttributeKey::EventSource, &self.event_source),
            (LookupAttributeKey::Username, &self.username),
            (LookupAttributeKey::AccessKeyId, &self.access_key_id),
            (LookupAttributeKey::ReadOnly, &read_only),
            (LookupAttributeKey::ResourceType, &self.resource_type),
            (LookupAttributeKey::ResourceName, &self.resource_name),
        ]
        .into_iter()
        .filter_map(|(key, value)| {
            Some(LookupAttribute {
                key,
                value: value.clone()?,
            })
        })
        .collect()
    }
}

/// One event as a line a person reads.
pub fn line(record: &Value) -> String {
    let text = |pointer: &str| {
        record
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or("-")
    };
    let who = record
        .pointer("/userIdentity/userName")
        .or_else(|| record.pointer("/userIdentity/sessionContext/sessionIssuer/userName"))
        .or_else(|| record.pointer("/userIdentity/invokedBy"))
        .and_then(Value::as_str)
        .unwrap_or("-");
    let mut line = format!(
        "{}  {}  {}  {}  {}",
        text("/eventTime"),
        text("/awsRegion"),
        text("/eventSource"),
        text("/eventName"),
        who
    );
    if let Some(code) = record.get("errorCode").and_then(Value::as_str) {
        line.push_str("  ");
        line.push_str(code);
    }
    line
}

pub fn run(settings: &Settings, filters: &TailFilters) -> anyhow::Result<()> {
    let store = crate::event_store::open(
        &settings.store,
        &settings.data_dir,
        crate::event_store::Purpose::Serving,
    )?;
    let mut position = if filters.from_start {
        0
    } else {
        store.last_seq()?
    };
    let attributes = filters.attributes();
    let mut printed = 0u64;
    let stdout = std::io::stdout();
    loop {
        let events = store.feed(position, BATCH)?;
        for event in &events {
            position = event.seq;
            if !attributes
                .iter()
                .all(|attribute| found_by(&event.event, attribute))
            {
                continue;
            }
            let record: Value = serde_json::from_str(&event.event.record_json)?;
            let mut out = stdout.lock();
            let shown = if filters.json {
                event.event.record_json.clone()
            } else {
                line(&record)
            };
            if writeln!(out, "{shown}").and_then(|()| out.flush()).is_err() {
                // The reader went away (a closed pipe): nothing left to do.
                return Ok(());
            }
            printed += 1;
            if filters.count.is_some_and(|count| printed >= count) {
                return Ok(());
            }
        }
        if events.len() < BATCH {
            std::thread::sleep(POLL);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn filters_are_lookup_attributes_and_lines_read_well() {
        let record = json!({
            "eventTime": "2026-12-02T01:00:00Z", "awsRegion": "eu-west-1",
            "eventSource": "kms.amazonaws.com", "eventName": "Decrypt", "readOnly": true,
            "userIdentity": {"userName": "alice", "accessKeyId": "AKIAEXAMPLE"},
            "resources": [{"ARN": "arn:aws:kms:eu-west-1:111111111111:key/k1"}],
            "errorCode": "AccessDenied",
        });
        assert_eq!(
            line(&record),
            "2026-12-02T01:00:00Z  eu-west-1  kms.amazonaws.com  Decrypt  alice  AccessDenied"
        );
        assert!(TailFilters::default().attributes().is_empty());
        let filters = TailFilters {
            event_id: Some("e-1".into()),
            read_only: Some(false),
            resource_type: Some("AWS::KMS::Key".into()),
            ..Default::default()
        };
        let attribute = |key, value: &str| LookupAttribute {
            key,
            value: value.into(),
        };
        assert_eq!(
            filters.attributes(),
            [
                attribute(LookupAttributeKey::EventId, "e-1"),
                attribute(LookupAttributeKey::ReadOnly, "false"),
                attribute(LookupAttributeKey::ResourceType, "AWS::KMS::Key"),
            ]
        );
    }
}
