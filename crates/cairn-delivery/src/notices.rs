//! The notices a trail owes besides its files: an SNS notification per delivered file and
//! each delivered event to CloudWatch Logs. They are an outbox:
//!
//! 1. a delivery that owes notices commits them (`trail-notices`, keyed by ARN and the
//!    stretch's start) in the same commit that moves its position past the stretch, so a
//!    delivered file is owed its notices if and only if it exists;
//! 2. after the round's deliveries, owed notices are sent, oldest first, each trail's SNS
//!    and CloudWatch Logs stopping at their own first failure (reported in GetTrailStatus,
//!    tried again with backoff); a deleted trail's go with it;
//! 3. what was sent is struck out in a commit, with the trail's status.
//!
//! Nothing holds a file back, and an SNS or CloudWatch Logs endpoint that is down for a
//! while loses nothing: the notices wait, up to a bound (`owed_notices_per_trail`
//! deliveries per trail; 10,000 is 35 days at AWS's 5-minute cadence). Past it the oldest
//! are given up, logged and reported, so that a topic deleted for good does not grow the
//! outbox without end. A crash between 2 and 3, or a takeover by another
//! node, sends the unstruck part again (at least once, as AWS's own notifications are).
//! CloudWatch Logs events are not kept twice: the owed stretch is read from the feed again
//! and judged by the trail as it was, as a redone delivery is.

use std::collections::BTreeMap;

use cairn_model::{format_event_time, StateChange};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::deliverer::{files, Deliverer, PendingDelivery, PlannedFile};
use crate::{DeliveryError, TRAILS, TRAIL_NOTICES, TRAIL_STATUS};

/// How many of one trail's owed deliveries are sent in a round: a long outage is caught up
/// over several rounds rather than holding one up.
const MAX_OWED_PER_ROUND: usize = 100;

/// How many deliveries' notices a trail keeps owing by default.
pub const DEFAULT_OWED_NOTICES_PER_TRAIL: usize = 10_000;

/// What one delivery still owes, kept in `trail-notices`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OwedNotices {
    /// The stretch delivered, with the trail as it then was.
    pub stretch: PendingDelivery,
    /// The bucket its files went to.
    pub bucket: String,
    /// Keys of the files whose SNS notification is still owed, in delivery order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sns_keys: Vec<String>,
    /// CloudWatch Logs is owed the stretch's events after this feed position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs_after: Option<i64>,
}

impl OwedNotices {
    fn is_settled(&self) -> bool {
        self.sns_keys.is_empty() && self.logs_after.is_none()
    }
}

/// Takes out of `owed` (oldest first) the oldest entries past `bound`.
fn oldest_past_bound<T>(owed: &mut Vec<T>, bound: usize) -> Vec<T> {
    let excess = owed.len().saturating_sub(bound);
    owed.drain(..excess).collect()
}

fn notice_key(arn: &str, after_seq: i64) -> String {
    format!("{arn} {after_seq:020}")
}

/// The trail a notice key belongs to.
fn trail_of(key: &str) -> &str {
    key.rsplit_once(' ').map_or(key, |(arn, _)| arn)
}

/// What a delivery of `written` files owes, if its trail notifies at all.
pub(crate) fn owed_for(
    arn: &str,
    pending: &PendingDelivery,
    written: &[PlannedFile],
) -> Option<StateChange> {
    let trail = &pending.trail;
    let owed = OwedNotices {
        stretch: pending.clone(),
        bucket: trail.s3_bucket_name.clone(),
        sns_keys: match trail.sns_topic_arn {
            Some(_) => written.iter().map(|file| file.key.clone()).collect(),
            None => Vec::new(),
        },
        logs_after: trail
            .cloud_watch_logs_log_group_arn
            .as_ref()
            .map(|_| pending.after_seq),
    };
    if owed.is_settled() {
        return None;
    }
    Some(StateChange::put(
        TRAIL_NOTICES,
        notice_key(arn, pending.after_seq),
        serde_json::to_string(&owed).unwrap_or_default(),
    ))
}

/// Which of a trail's endpoints failed this round: later deliveries wait for that one.
#[derive(Default)]
struct Blocked {
    sns: bool,
    logs: bool,
}

/// How far sending one owed delivery got.
struct Sent {
    owed: OwedNotices,
    sns: Option<Result<(), DeliveryError>>,
    logs: Option<Result<(), DeliveryError>>,
}

impl Deliverer {
    /// Sends what every trail owes, oldest first, as far as each trail's endpoints take it:
    /// SNS and CloudWatch Logs each stop at their own first failure, in order, without
    /// holding the other back. What a deleted trail owed goes with it.
    pub(crate) async fn send_owed_notices(&self) -> Result<(), DeliveryError> {
        let entries = self.blocking(|store| store.state(TRAIL_NOTICES)).await?;
        if entries.is_empty() {
            return Ok(());
        }
        let trails = self.blocking(|store| store.state(TRAILS)).await?;
        let mut by_trail: BTreeMap<String, Vec<(String, OwedNotices)>> = BTreeMap::new();
        let mut orphaned = Vec::new();
        for (key, text) in entries {
            let arn = trail_of(&key).to_owned();
            if !trails.iter().any(|(known, _)| *known == arn) {
                orphaned.push(StateChange::remove(TRAIL_NOTICES, key));
                continue;
            }
            match serde_json::from_str::<OwedNotices>(&text) {
                Ok(owed) => by_trail.entry(arn).or_default().push((key, owed)),
                Err(error) => {
                    tracing::error!(%error, %key, "owed notices cannot be read; they are left");
                }
            }
        }
        if !orphaned.is_empty() {
            self.commit(orphaned).await?;
        }
        for (arn, mut owed) in by_trail {
            if !self.notice_backoff.ready(&arn, self.clock().now_millis()) {
                continue;
            }
            owed.sort_by(|(left, _), (right, _)| left.cmp(right));
            let given_up = oldest_past_bound(&mut owed, self.settings().owed_notices_per_trail);
            let mut blocked = Blocked::default();
            for (key, entry) in owed.into_iter().take(MAX_OWED_PER_ROUND) {
                let sent = self.send_owed(&arn, entry, &blocked).await;
                blocked.sns |= matches!(sent.sns, Some(Err(_)));
                blocked.logs |= matches!(sent.logs, Some(Err(_)));
                self.settle_owed(&arn, &key, sent).await?;
                if blocked.sns && blocked.logs {
                    break;
                }
            }
            self.notice_backoff.settle(
                &arn,
                !(blocked.sns || blocked.logs),
                self.clock().now_millis(),
                self.settings().interval,
            );
            if !given_up.is_empty() {
                self.give_up(&arn, given_up).await?;
            }
        }
        Ok(())
    }

    /// Strikes out notices past the bound, and says so in the log and the trail's status
    /// (after this round's own attempts, which would overwrite it).
    async fn give_up(
        &self,
        arn: &str,
        given_up: Vec<(String, OwedNotices)>,
    ) -> Result<(), DeliveryError> {
        let bound = self.settings().owed_notices_per_trail;
        let files: usize = given_up.iter().map(|(_, owed)| owed.sns_keys.len()).sum();
        let logs = given_up
            .iter()
            .filter(|(_, owed)| owed.logs_after.is_some())
            .count();
        tracing::error!(
            trail = %arn,
            deliveries = given_up.len(),
            sns_notifications = files,
            cloudwatch_logs_deliveries = logs,
            bound,
            "owed notices given up: more deliveries than the bound were owed"
        );
        let mut status = self.status(arn).await?;
        if files > 0 {
            status.insert(
                "LatestNotificationError".into(),
                json!(format!(
                    "{files} SNS notifications given up: more than {bound} deliveries' notices were owed"
                )),
            );
        }
        if logs > 0 {
            status.insert(
                "LatestCloudWatchLogsDeliveryError".into(),
                json!(format!(
                    "the events of {logs} deliveries given up: more than {bound} deliveries' notices were owed"
                )),
            );
        }
        let mut changes: Vec<StateChange> = given_up
            .into_iter()
            .map(|(key, _)| StateChange::remove(TRAIL_NOTICES, key))
            .collect();
        changes.push(StateChange::put(
            TRAIL_STATUS,
            arn,
            Value::Object(status).to_string(),
        ));
        self.commit(changes).await
    }

    async fn send_owed(&self, arn: &str, mut owed: OwedNotices, blocked: &Blocked) -> Sent {
        let trail = owed.stretch.trail.clone();
        let sns = match (&trail.sns_topic_arn, owed.sns_keys.is_empty()) {
            (Some(_), false) if blocked.sns => None,
            (Some(topic), false) => {
                let mut outcome = Ok(());
                while let Some(key) = owed.sns_keys.first() {
                    outcome = match self.notifier() {
                        Some(notifier) => notifier.publish_file(topic, &owed.bucket, key).await,
                        None => Err(DeliveryError::Objects("no upstream serves SNS".into())),
                    };
                    if outcome.is_err() {
                        break;
                    }
                    owed.sns_keys.remove(0);
                }
                Some(outcome)
            }
            (None, false) => {
                owed.sns_keys.clear();
                None
            }
            _ => None,
        };
        let logs = match (&trail.cloud_watch_logs_log_group_arn, owed.logs_after) {
            (Some(_), Some(_)) if blocked.logs => None,
            (Some(group), Some(_)) => Some(self.send_logs(arn, group, &mut owed).await),
            (None, Some(_)) => {
                owed.logs_after = None;
                None
            }
            _ => None,
        };
        Sent { owed, sns, logs }
    }

    /// The owed stretch's events, a feed batch at a time, to CloudWatch Logs.
    async fn send_logs(
        &self,
        arn: &str,
        group: &str,
        owed: &mut OwedNotices,
    ) -> Result<(), DeliveryError> {
        let Some(notifier) = self.notifier() else {
            return Err(DeliveryError::Objects(
                "no upstream serves CloudWatch Logs".into(),
            ));
        };
        let through = owed.stretch.through_seq;
        let batch = self.settings().feed_batch;
        while let Some(after) = owed.logs_after {
            let events = self.blocking(move |store| store.feed(after, batch)).await?;
            let read = events.len();
            let events: Vec<_> = events
                .into_iter()
                .filter(|event| event.seq <= through)
                .collect();
            let reached = events.last().map_or(through, |event| event.seq);
            let part = PendingDelivery {
                after_seq: after,
                through_seq: reached,
                ..owed.stretch.clone()
            };
            let taken = self.taken(&part, events).await?;
            for file in files(arn, &part, &taken, self.settings()) {
                let records: Vec<(i64, &str)> = file
                    .event_times
                    .iter()
                    .copied()
                    .zip(file.records.iter().map(String::as_str))
                    .collect();
                notifier
                    .put_log_events(group, &file.account_id, &file.region, &records)
                    .await?;
            }
            owed.logs_after = (read == batch && reached < through).then_some(reached);
        }
        Ok(())
    }

    /// Strikes out what was sent and reports it in the trail's status, in one commit.
    async fn settle_owed(&self, arn: &str, key: &str, sent: Sent) -> Result<(), DeliveryError> {
        let mut status = self.status(arn).await?;
        let now = self.clock().now_millis();
        let stamp = format_event_time(now);
        if let Some(outcome) = &sent.sns {
            status.insert("LatestNotificationAttemptTime".into(), json!(stamp));
            match outcome {
                Ok(()) => {
                    status.insert("LatestNotificationTime".into(), json!(now));
                    status.insert("LatestNotificationAttemptSucceeded".into(), json!(stamp));
                    status.remove("LatestNotificationError");
                }
                Err(error) => {
                    tracing::warn!(%error, trail = %arn, "SNS notification failed; kept to send again");
                    status.insert("LatestNotificationError".into(), json!(error.to_string()));
                }
            }
        }
        if let Some(outcome) = &sent.logs {
            match outcome {
                Ok(()) => {
                    status.insert("LatestCloudWatchLogsDeliveryTime".into(), json!(now));
                    status.remove("LatestCloudWatchLogsDeliveryError");
                }
                Err(error) => {
                    tracing::warn!(%error, trail = %arn, "CloudWatch Logs delivery failed; kept to send again");
                    status.insert(
                        "LatestCloudWatchLogsDeliveryError".into(),
                        json!(error.to_string()),
                    );
                }
            }
        }
        let owed = if sent.owed.is_settled() {
            StateChange::remove(TRAIL_NOTICES, key)
        } else {
            StateChange::put(
                TRAIL_NOTICES,
                key,
                serde_json::to_string(&sent.owed).unwrap_or_default(),
            )
        };
        self.commit(vec![
            owed,
            StateChange::put(TRAIL_STATUS, arn, Value::Object(status).to_string()),
        ])
        .await
    }
}

#[cfg(test)]
mod tests {
    use cairn_model::trail::Trail;

    use super::*;

    fn planned(key: &str) -> PlannedFile {
        PlannedFile {
            key: key.into(),
            account_id: "111122223333".into(),
            region: "us-east-1".into(),
            records: Vec::new(),
            event_times: Vec::new(),
            hash: String::new(),
        }
    }

    fn stretch(trail: Trail) -> PendingDelivery {
        PendingDelivery {
            after_seq: 41,
            through_seq: 99,
            delivered_millis: 0,
            trail,
        }
    }

    #[test]
    fn only_the_newest_owed_deliveries_are_kept_past_the_bound() {
        let mut owed: Vec<i64> = (1..=5).collect();
        assert_eq!(oldest_past_bound(&mut owed, 2), [1, 2, 3]);
        assert_eq!(owed, [4, 5]);
        assert!(oldest_past_bound(&mut owed, 2).is_empty());
        assert!(oldest_past_bound(&mut owed, 10).is_empty());
        assert_eq!(owed, [4, 5]);
    }

    #[test]
    fn a_delivery_owes_what_its_trail_notifies() {
        let arn = "arn:aws:cloudtrail:us-east-1:111122223333:trail/t";
        let written = [planned("a.json.gz"), planned("b.json.gz")];
        let quiet = Trail {
            s3_bucket_name: "bucket".into(),
            ..Trail::default()
        };
        assert_eq!(owed_for(arn, &stretch(quiet.clone()), &written), None);

        let notifying = Trail {
            sns_topic_arn: Some("arn:aws:sns:us-east-1:111122223333:files".into()),
            ..quiet.clone()
        };
        let change = owed_for(arn, &stretch(notifying), &written).unwrap();
        assert_eq!(change.key, format!("{arn} {:020}", 41));
        assert_eq!(trail_of(&change.key), arn);
        let owed: OwedNotices = serde_json::from_str(change.value.as_deref().unwrap()).unwrap();
        assert_eq!(owed.sns_keys, ["a.json.gz", "b.json.gz"]);
        assert_eq!(owed.logs_after, None);
        assert_eq!(owed.bucket, "bucket");

        let logging = Trail {
            cloud_watch_logs_log_group_arn: Some(
                "arn:aws:logs:us-east-1:111122223333:log-group:g:*".into(),
            ),
            ..quiet
        };
        let change = owed_for(arn, &stretch(logging), &written).unwrap();
        let owed: OwedNotices = serde_json::from_str(change.value.as_deref().unwrap()).unwrap();
        assert!(owed.sns_keys.is_empty());
        assert_eq!(owed.logs_after, Some(41), "the whole stretch is owed");
        assert!(!owed.is_settled());
    }
}
