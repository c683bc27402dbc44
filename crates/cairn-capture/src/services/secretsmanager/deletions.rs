//! The end of a Secrets Manager recovery window. DeleteSecret with a window records
//! `StartSecretVersionDelete` with the deletion date in `serviceEventDetails`; when that date
//! passes with no `CancelSecretVersionDelete` (RestoreSecret) or `EndSecretVersionDelete`
//! after it, Cairn records `EndSecretVersionDelete`. The schedule is read from the history
//! itself, so it survives restarts and needs no table of its own.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cairn_model::parse_event_time;
use serde_json::Value;

use super::{
    CANCEL_SECRET_VERSION_DELETE, END_SECRET_VERSION_DELETE, SECRETS_MANAGER_SOURCE,
    START_SECRET_VERSION_DELETE,
};
use crate::services::hooks::{HostError, RecordedEvent, ServiceHost};
use crate::services::ServiceEvent;

const CHECK_INTERVAL: Duration = Duration::from_secs(30);
/// Recovery windows are at most 30 days; look a little further back.
const LOOKBACK_MILLIS: i64 = 31 * 86_400_000;

pub(crate) async fn run_scheduler(host: Arc<dyn ServiceHost>) {
    loop {
        match end_due_deletions(&*host).await {
            Ok(0) => {}
            Ok(ended) => tracing::info!(ended, "recorded the end of secret recovery windows"),
            Err(error) => tracing::error!(%error, "secret deletion check failed"),
        }
        tokio::time::sleep(CHECK_INTERVAL).await;
    }
}

/// Records `EndSecretVersionDelete` for every recovery window that has ended; returns how
/// many.
pub async fn end_due_deletions(host: &dyn ServiceHost) -> Result<usize, HostError> {
    let now = host.now_millis();
    let since = now - LOOKBACK_MILLIS;
    let starts = secret_events(host, START_SECRET_VERSION_DELETE, since).await?;
    if starts.is_empty() {
        return Ok(0);
    }
    // The latest cancel or end per secret.
    let mut settled: HashMap<String, i64> = HashMap::new();
    for name in [CANCEL_SECRET_VERSION_DELETE, END_SECRET_VERSION_DELETE] {
        for (secret, time, _) in secret_events(host, name, since).await? {
            let latest = settled.entry(secret).or_insert(time);
            *latest = (*latest).max(time);
        }
    }
    let mut ended = 0;
    for (secret, started, record) in starts {
        let due = record
            .pointer("/serviceEventDetails/deletionDate")
            .and_then(Value::as_str)
            .and_then(|date| parse_event_time(date).ok());
        let Some(due) = due else { continue };
        if due > now || settled.get(&secret).is_some_and(|time| *time >= started) {
            continue;
        }
        let text = |name: &str| {
            record
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let end = RecordedEvent {
            event: ServiceEvent {
                event_source: SECRETS_MANAGER_SOURCE,
                event_name: END_SECRET_VERSION_DELETE,
                resource_arn: secret.clone(),
                details: None,
            },
            account_id: text("recipientAccountId"),
            region: text("awsRegion"),
        };
        host.record(vec![end]).await?;
        settled.insert(secret, now);
        ended += 1;
    }
    Ok(ended)
}

/// (SecretId, eventTime, record) of every Secrets Manager event named `name` since `since`.
pub(crate) async fn secret_events(
    host: &dyn ServiceHost,
    name: &'static str,
    since: i64,
) -> Result<Vec<(String, i64, Value)>, HostError> {
    let found = host
        .events_named(SECRETS_MANAGER_SOURCE, name, since)
        .await?;
    Ok(found
        .into_iter()
        .filter_map(|(time, record)| {
            let secret = record
                .pointer("/additionalEventData/SecretId")?
                .as_str()?
                .to_owned();
            Some((secret, time, record))
        })
        .collect())
}
