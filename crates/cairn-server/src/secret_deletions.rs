//! The end of a Secrets Manager recovery window. DeleteSecret with a window records
//! `StartSecretVersionDelete` with the deletion date in `serviceEventDetails`; when that date
//! passes with no `CancelSecretVersionDelete` (RestoreSecret) or `EndSecretVersionDelete`
//! after it, Cairn records `EndSecretVersionDelete`. The schedule is read from the history
//! itself, so it survives restarts and needs no table of its own.

use std::collections::HashMap;
use std::time::Duration;

use cairn_capture::service_rules::{
    CANCEL_SECRET_VERSION_DELETE, END_SECRET_VERSION_DELETE, SECRETS_MANAGER_SOURCE,
    START_SECRET_VERSION_DELETE,
};
use cairn_model::{parse_event_time, LookupAttribute, LookupAttributeKey};
use cairn_store::{HistoryView, LookupQuery, StoredEvent};
use cairn_wire::AwsError;
use serde_json::Value;

use crate::recorder::service_event;
use crate::AppState;

const CHECK_INTERVAL: Duration = Duration::from_secs(30);
/// Recovery windows are at most 30 days; look a little further back.
const LOOKBACK_MILLIS: i64 = 31 * 86_400_000;

pub async fn run_secret_deletion_scheduler(state: AppState) {
    loop {
        match end_due_deletions(&state).await {
            Ok(0) => {}
            Ok(ended) => tracing::info!(ended, "recorded the end of secret recovery windows"),
            Err(error) => tracing::error!(%error, "secret deletion check failed"),
        }
        tokio::time::sleep(CHECK_INTERVAL).await;
    }
}

/// Records `EndSecretVersionDelete` for every recovery window that has ended; returns how
/// many.
pub async fn end_due_deletions(state: &AppState) -> Result<usize, AwsError> {
    let now = state.clock.now_millis();
    let since = now - LOOKBACK_MILLIS;
    let starts = events_named(state, START_SECRET_VERSION_DELETE, since).await?;
    if starts.is_empty() {
        return Ok(0);
    }
    // The latest cancel or end per secret.
    let mut settled: HashMap<String, i64> = HashMap::new();
    for name in [CANCEL_SECRET_VERSION_DELETE, END_SECRET_VERSION_DELETE] {
        for (secret, time, _) in events_named(state, name, since).await? {
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
        let account = record
            .get("recipientAccountId")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let region = record
            .get("awsRegion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let end = service_event(
            SECRETS_MANAGER_SOURCE,
            END_SECRET_VERSION_DELETE,
            &secret,
            account,
            region,
            None,
        );
        state.record(end).await?;
        settled.insert(secret, now);
        ended += 1;
    }
    Ok(ended)
}

/// (SecretId, eventTime, record) of every event named `name` since `since`.
pub(crate) async fn events_named(
    state: &AppState,
    name: &str,
    since: i64,
) -> Result<Vec<(String, i64, Value)>, AwsError> {
    let store = state.store.clone();
    let name = name.to_owned();
    let found = tokio::task::spawn_blocking(move || {
        let mut query = LookupQuery::all(HistoryView::Management, 500);
        query.start_millis = Some(since);
        query.attribute = Some(LookupAttribute {
            key: LookupAttributeKey::EventName,
            value: name,
        });
        let mut found: Vec<StoredEvent> = Vec::new();
        loop {
            let page = store.lookup(&query)?;
            found.extend(page.events);
            match page.next {
                Some(cursor) => query.after = Some(cursor),
                None => return Ok::<_, cairn_store::StoreError>(found),
            }
        }
    })
    .await
    .map_err(|_| AwsError::internal_failure())?
    .map_err(|error| {
        tracing::error!(%error, "cannot read the history");
        AwsError::internal_failure()
    })?;
    Ok(found
        .into_iter()
        .filter_map(|stored| {
            let record: Value = serde_json::from_str(&stored.event.record_json).ok()?;
            if record.get("eventSource").and_then(Value::as_str) != Some(SECRETS_MANAGER_SOURCE) {
                return None;
            }
            let secret = record
                .pointer("/additionalEventData/SecretId")?
                .as_str()?
                .to_owned();
            Some((secret, stored.event.event_time_millis, record))
        })
        .collect())
}
