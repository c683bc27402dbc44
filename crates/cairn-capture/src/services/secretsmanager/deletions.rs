//! The end of a Secrets Manager recovery window. DeleteSecret with a window records
//! `StartSecretVersionDelete`, with the deletion date in `serviceEventDetails`, and in the
//! same commit schedules the window's end as state (`RECOVERY_WINDOWS`, keyed by the secret's
//! ARN); RestoreSecret's `CancelSecretVersionDelete`, or a forced deletion's
//! `EndSecretVersionDelete`, removes it. When the date passes the scheduler records
//! `EndSecretVersionDelete` and removes the entry, again in one commit that requires the
//! entry unchanged, so an end is recorded once (by one node, where several share the store),
//! and only for windows Cairn itself saw begin: events imported from AWS schedule
//! nothing, and the history is never scanned for them.

use std::sync::Arc;
use std::time::Duration;

use cairn_model::StateChange;
use serde::{Deserialize, Serialize};

use super::{END_SECRET_VERSION_DELETE, SECRETS_MANAGER_SOURCE};
use crate::services::hooks::{HostError, RecordedEvent, ServiceHost};
use crate::services::ServiceEvent;

/// The state namespace of the recovery windows still open.
pub(crate) const RECOVERY_WINDOWS: &str = "secretsmanager/recovery-windows";

const CHECK_INTERVAL: Duration = Duration::from_secs(30);

/// A window still open: when it ends, and where the secret is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RecoveryWindow {
    pub due_millis: i64,
    pub account_id: String,
    pub region: String,
}

impl RecoveryWindow {
    /// The state change that schedules this window's end for `secret_arn`.
    pub(crate) fn schedule(&self, secret_arn: &str) -> StateChange {
        let value = serde_json::to_string(self).unwrap_or_default();
        StateChange::put(RECOVERY_WINDOWS, secret_arn, value)
    }
}

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

/// Records `EndSecretVersionDelete` for every scheduled recovery window that has ended;
/// returns how many.
pub async fn end_due_deletions(host: &dyn ServiceHost) -> Result<usize, HostError> {
    let now = host.now_millis();
    let mut ended = 0;
    for (secret_arn, value) in host.state(RECOVERY_WINDOWS).await? {
        let Ok(window) = serde_json::from_str::<RecoveryWindow>(&value) else {
            tracing::error!(%secret_arn, "a scheduled recovery window cannot be read; it is left as it is");
            continue;
        };
        if window.due_millis > now {
            continue;
        }
        let end = RecordedEvent {
            event: ServiceEvent {
                event_source: SECRETS_MANAGER_SOURCE,
                event_name: END_SECRET_VERSION_DELETE,
                resource_arn: secret_arn.clone(),
                details: None,
            },
            account_id: window.account_id,
            region: window.region,
        };
        // Recorded only if the window is still the one read: not when it was rescheduled
        // since (restored, deleted again), nor when another node sharing the store ended
        // it first.
        let still_open = StateChange::require(RECOVERY_WINDOWS, secret_arn.clone(), value);
        let done = StateChange::remove(RECOVERY_WINDOWS, secret_arn);
        if host.record(vec![end], vec![still_open, done]).await? {
            ended += 1;
        }
    }
    Ok(ended)
}

/// (SecretId, eventTime) of every Secrets Manager event named `name` recorded since
/// `since`.
pub(crate) async fn secret_events(
    host: &dyn ServiceHost,
    name: &'static str,
    since: i64,
) -> Result<Vec<(String, i64)>, HostError> {
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
            Some((secret, time))
        })
        .collect())
}
