//! The delivery loop: every interval, each trail reads the store's feed from its position,
//! keeps the events it takes, and writes them as log files. Exactly once, across crashes:
//!
//! 1. the stretch of the feed about to be delivered, the time that names its files and the
//!    trail as it then was are committed as the trail's *pending* delivery;
//! 2. the files are written (their keys follow from the pending stretch, not from chance);
//! 3. the position moves past the stretch, with the trail's status, in one commit.
//!
//! A crash between 1 and 3 leaves the pending stretch, which the next run writes again to
//! the same keys with the same contents: a file may be written twice, never be there twice,
//! and no event is skipped. The trail is read after the feed, so an event the feed gave is
//! judged by a trail state at least as new as the event, and that state keeps what chose
//! events before each change (`earlier_selections`): each event is judged as it would
//! have been when it was recorded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cairn_model::trail::Trail;
use cairn_model::{format_event_time, Clock, LookupAttribute, LookupAttributeKey, StateChange};
use cairn_store::{EventStore, HistoryView, LookupQuery, StoredEvent};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::lease::Lease;
use crate::log_file::{assemble_hashed, LogFileName};
use crate::notify::Notifier;
use crate::objects::{ObjectPut, ObjectStore};
use crate::selection::{in_logging_period, trail_takes, Judges, RecordFacts};
use crate::{DeliveryError, TRAILS, TRAIL_DELIVERY, TRAIL_STATUS};

#[derive(Clone, Debug)]
pub struct DeliverySettings {
    /// How often log files are written: AWS's is about 5 minutes.
    pub interval: Duration,
    /// A file holds at most this many records, or this many bytes of JSON, before the next
    /// one is started.
    pub max_records_per_file: usize,
    pub max_file_json_bytes: usize,
    /// How many events are read from the feed at a time.
    pub feed_batch: usize,
    /// How often a trail with log file validation writes its digest files: AWS's is hourly.
    pub digest_interval: Duration,
    /// How many deliveries' notices a trail keeps owing while its endpoints fail (see
    /// [`crate::notices`]).
    pub owed_notices_per_trail: usize,
    /// For the exactly-once test only: abort the process after the first file is written
    /// and before the position moves, as a crash would.
    pub abort_after_first_upload: bool,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(300),
            max_records_per_file: 10_000,
            max_file_json_bytes: 32 << 20,
            feed_batch: 20_000,
            digest_interval: Duration::from_secs(3600),
            owed_notices_per_trail: crate::DEFAULT_OWED_NOTICES_PER_TRAIL,
            abort_after_first_upload: false,
        }
    }
}

/// Where a trail's delivery stands, kept in `trail-delivery` under its ARN.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DeliveryPosition {
    /// Every event up to this feed position has been delivered (or was not the trail's).
    pub position: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingDelivery>,
}

/// A stretch of the feed whose files may have been written, partly or wholly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PendingDelivery {
    pub after_seq: i64,
    pub through_seq: i64,
    pub delivered_millis: i64,
    pub trail: Trail,
}

/// What one round delivered, for logs and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoundReport {
    pub files: Vec<String>,
    pub events: usize,
    pub failures: usize,
}

pub struct Deliverer {
    store: Arc<dyn EventStore>,
    objects: Arc<dyn ObjectStore>,
    clock: Arc<dyn Clock>,
    settings: DeliverySettings,
    /// Where each StopLogging event sits in the feed, once looked up.
    stop_seqs: Mutex<HashMap<String, i64>>,
    uploads: std::sync::atomic::AtomicUsize,
    notifier: Option<Notifier>,
    /// Trails whose last delivery failed, and when to try again.
    backoff: Backoff,
    /// Trails whose owed notices could not be sent, and when to try again.
    pub(crate) notice_backoff: Backoff,
    /// Signs digest files; without it no trail writes digests.
    pub(crate) digest_keys: Option<Arc<cairn_integrity::DigestKeys>>,
    /// On a shared store: delivery runs only while this node holds the lease, and every
    /// write it makes is fenced by it.
    lease: Option<Arc<Lease>>,
}

type FeedRead = tokio::task::JoinHandle<Result<Vec<StoredEvent>, cairn_store::StoreError>>;

/// The longest wait of [`Backoff`] (unless the interval is longer).
const MAX_BACKOFF_MILLIS: i64 = 60_000;

impl Deliverer {
    pub fn new(
        store: Arc<dyn EventStore>,
        objects: Arc<dyn ObjectStore>,
        clock: Arc<dyn Clock>,
        settings: DeliverySettings,
    ) -> Self {
        Self {
            store,
            objects,
            clock,
            settings,
            stop_seqs: Mutex::default(),
            uploads: Default::default(),
            notifier: None,
            backoff: Backoff::default(),
            notice_backoff: Backoff::default(),
            digest_keys: None,
            lease: None,
        }
    }

    /// Delivers only while `lease` is held (several nodes on one store), fencing each write.
    pub fn with_lease(mut self, lease: Arc<Lease>) -> Self {
        self.lease = Some(lease);
        self
    }

    /// Writes digest files for trails with log file validation, signed with `keys`.
    pub fn with_digest_keys(mut self, keys: Arc<cairn_integrity::DigestKeys>) -> Self {
        self.digest_keys = Some(keys);
        self
    }

    pub(crate) fn settings(&self) -> &DeliverySettings {
        &self.settings
    }

    pub(crate) fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Sends SNS notifications and CloudWatch Logs events through `notifier`.
    pub fn with_notifier(mut self, notifier: Notifier) -> Self {
        self.notifier = Some(notifier);
        self
    }

    pub(crate) fn notifier(&self) -> Option<&Notifier> {
        self.notifier.as_ref()
    }

    pub fn objects(&self) -> &Arc<dyn ObjectStore> {
        &self.objects
    }

    /// Delivers every interval, for ever.
    pub async fn run(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(self.settings.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            if self
                .lease
                .as_ref()
                .is_some_and(|lease| lease.fence().is_none())
            {
                continue;
            }
            match self.deliver_round().await {
                Ok(report) if !report.files.is_empty() => tracing::info!(
                    files = report.files.len(),
                    events = report.events,
                    "delivered log files"
                ),
                Ok(_) => {}
                Err(error) => tracing::error!(%error, "delivery round failed; retried next round"),
            }
        }
    }

    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&dyn EventStore) -> Result<T, cairn_store::StoreError> + Send + 'static,
    ) -> Result<T, DeliveryError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || work(store.as_ref()))
            .await
            .map_err(|error| DeliveryError::Objects(error.to_string()))?
            .map_err(DeliveryError::from)
    }

    pub(crate) async fn commit(&self, mut changes: Vec<StateChange>) -> Result<(), DeliveryError> {
        if let Some(lease) = &self.lease {
            let fence = lease.fence().ok_or_else(|| {
                cairn_store::StoreError::Refused(
                    "this node no longer holds the delivery lease".into(),
                )
            })?;
            changes.push(fence);
        }
        let pending = self.store.submit_with_state(Vec::new(), changes)?;
        pending.completion().await?;
        Ok(())
    }

    async fn trails(&self) -> Result<HashMap<String, Trail>, DeliveryError> {
        let entries = self.blocking(|store| store.state(TRAILS)).await?;
        Ok(entries
            .into_iter()
            .filter_map(|(arn, text)| Some((arn, serde_json::from_str(&text).ok()?)))
            .collect())
    }

    async fn positions(&self) -> Result<HashMap<String, DeliveryPosition>, DeliveryError> {
        let entries = self.blocking(|store| store.state(TRAIL_DELIVERY)).await?;
        Ok(entries
            .into_iter()
            .filter_map(|(arn, text)| Some((arn, serde_json::from_str(&text).ok()?)))
            .collect())
    }

    /// One round: every trail with something to deliver delivers it.
    pub async fn deliver_round(&self) -> Result<RoundReport, DeliveryError> {
        let trails = self.trails().await?;
        let positions = self.positions().await?;
        let mut chains = self.digest_chains().await?;
        let mut report = RoundReport::default();
        let now = self.clock.now_millis();
        for (arn, trail) in &trails {
            let chain = chains.remove(arn);
            // A closed or new chain is settled before delivery, so that the files delivered
            // next are listed by the digest that follows them.
            let chain = match self.open_or_close_chain(arn, Some(trail), chain).await {
                Ok(chain) => chain,
                Err(error) => {
                    self.digest_failed(arn, &error).await;
                    None
                }
            };
            let (arn, trail) = (arn.clone(), trail.clone());
            if !self.backoff.ready(&arn, now) {
                continue;
            }
            let position = positions.get(&arn).cloned();
            let outcome = self
                .deliver_trail(&arn, trail.clone(), position, &mut report)
                .await;
            if outcome.is_ok() {
                if let Some(chain) = chain {
                    if let Err(error) = self.digest_if_due(&arn, Some(&trail), chain).await {
                        self.digest_failed(&arn, &error).await;
                    }
                }
            }
            self.backoff
                .settle(&arn, outcome.is_ok(), now, self.settings.interval);
            if let Err(error) = outcome {
                report.failures += 1;
                tracing::warn!(%error, trail = %arn, "delivery failed; retried next round");
                let message = error.to_string();
                let _ = self
                    .update_status(&arn, |status, now| {
                        status.insert(
                            "LatestDeliveryAttemptTime".into(),
                            json!(format_event_time(now)),
                        );
                        status.insert("LatestDeliveryError".into(), json!(message));
                    })
                    .await;
            }
        }
        if let Err(error) = self.send_owed_notices().await {
            tracing::warn!(%error, "owed notices not sent; tried again next round");
        }
        // Chains whose trail was deleted end with a final digest.
        for (arn, chain) in chains {
            if let Err(error) = self.digest_if_due(&arn, None, chain).await {
                tracing::warn!(%error, trail = %arn, "final digest failed; retried next round");
            }
        }
        Ok(report)
    }

    /// Where the call named `event_id`, which ended a logging period or a selection, sits
    /// in the feed. Such a change is committed with its own event, so an event that cannot
    /// be found has left the history: the change ended before every event still stored
    /// (`i64::MIN`), and is not asked about again.
    async fn end_seq(&self, event_id: &str) -> Result<i64, DeliveryError> {
        if let Some(seq) = self
            .stop_seqs
            .lock()
            .ok()
            .and_then(|known| known.get(event_id).copied())
        {
            return Ok(seq);
        }
        let query = LookupQuery {
            attribute: Some(LookupAttribute {
                key: LookupAttributeKey::EventId,
                value: event_id.to_owned(),
            }),
            ..LookupQuery::all(HistoryView::Management, 1)
        };
        let page = self.blocking(move |store| store.lookup(&query)).await?;
        let seq = page.events.first().map_or(i64::MIN, |event| event.seq);
        if let Ok(mut known) = self.stop_seqs.lock() {
            known.insert(event_id.to_owned(), seq);
        }
        Ok(seq)
    }

    /// Where each of the trail's ended logging periods and earlier selections ends in the
    /// feed.
    async fn stops_of(&self, trail: &Trail) -> Result<HashMap<String, i64>, DeliveryError> {
        let mut stops = HashMap::new();
        let ends = trail
            .logging
            .periods
            .iter()
            .filter_map(|period| period.until_event_id.as_ref())
            .chain(
                trail
                    .earlier_selections
                    .iter()
                    .map(|earlier| &earlier.until_event_id),
            );
        for end in ends {
            stops.insert(end.clone(), self.end_seq(end).await?);
        }
        Ok(stops)
    }

    async fn deliver_trail(
        &self,
        arn: &str,
        trail: Trail,
        position: Option<DeliveryPosition>,
        report: &mut RoundReport,
    ) -> Result<(), DeliveryError> {
        let Some(first) = trail.logging.periods.first() else {
            return Ok(());
        };
        let mut position = position.unwrap_or(DeliveryPosition {
            position: first.after_seq,
            pending: None,
        });
        if let Some(mut pending) = position.pending.take() {
            // What is still to write goes where the trail points now: an UpdateTrail to a
            // new bucket after the old one was lost is how a user gets delivery going again.
            // The stretch, and so what each file holds, stays as it was committed.
            pending.trail.s3_bucket_name = trail.s3_bucket_name.clone();
            pending.trail.s3_key_prefix = trail.s3_key_prefix.clone();
            let events = self.stretch(&pending).await?;
            let written = self.write_files(arn, &pending, &events, report).await?;
            self.finish(arn, &pending, &written).await?;
            position.position = pending.through_seq;
        }
        // The next batch is read while this one is written: reading and writing each take
        // a core.
        let mut prefetched: Option<(i64, FeedRead)> = None;
        loop {
            let stops = self.stops_of(&trail).await?;
            // Skip to the first period the position has not passed; nothing else is wanted.
            let Some(next) =
                trail
                    .logging
                    .periods
                    .iter()
                    .find(|period| match period.until_event_id.as_ref() {
                        Some(stop) => stops
                            .get(stop)
                            .is_some_and(|stop| *stop > position.position),
                        None => true,
                    })
            else {
                return Ok(());
            };
            position.position = position.position.max(next.after_seq);
            let after = position.position;
            let batch = self.settings.feed_batch;
            let events = match prefetched.take() {
                Some((from, reading)) if from == after => reading
                    .await
                    .map_err(|error| DeliveryError::Objects(error.to_string()))?
                    .map_err(DeliveryError::from)?,
                _ => self.blocking(move |store| store.feed(after, batch)).await?,
            };
            let Some(last) = events.last() else {
                return Ok(());
            };
            let through_seq = last.seq;
            let read = events.len();
            // Read after the feed: a trail change committed after these events cannot be
            // missed, one committed before them is seen.
            let Some(trail) = self.trails().await?.remove(arn) else {
                return Ok(());
            };
            let pending = PendingDelivery {
                after_seq: after,
                through_seq,
                delivered_millis: self.clock.now_millis(),
                trail,
            };
            if read == batch {
                let store = self.store.clone();
                prefetched = Some((
                    through_seq,
                    tokio::task::spawn_blocking(move || store.feed(through_seq, batch)),
                ));
            }
            let taken = self.taken(&pending, events).await?;
            if taken.is_empty() {
                self.commit(vec![position_change(arn, through_seq, None)])
                    .await?;
            } else {
                self.commit(vec![position_change(arn, after, Some(&pending))])
                    .await?;
                let written = self.write_files(arn, &pending, &taken, report).await?;
                self.finish(arn, &pending, &written).await?;
            }
            position.position = through_seq;
            if read < batch {
                return Ok(());
            }
        }
    }

    /// The pending stretch's events again, as the trail then was would take them.
    async fn stretch(&self, pending: &PendingDelivery) -> Result<Vec<Taken>, DeliveryError> {
        let (after, through) = (pending.after_seq, pending.through_seq);
        let limit = usize::try_from(through - after).unwrap_or(usize::MAX);
        let events = self.blocking(move |store| store.feed(after, limit)).await?;
        let events = events
            .into_iter()
            .filter(|event| event.seq <= through)
            .collect();
        self.taken(pending, events).await
    }

    pub(crate) async fn taken(
        &self,
        pending: &PendingDelivery,
        events: Vec<StoredEvent>,
    ) -> Result<Vec<Taken>, DeliveryError> {
        let stops = self.stops_of(&pending.trail).await?;
        let trail = pending.trail.clone();
        // Reading every record is the CPU-heavy part: off the async workers.
        tokio::task::spawn_blocking(move || {
            let judges = Judges::of(&trail, |stop| stops.get(stop).copied());
            events
                .into_iter()
                .filter(|event| {
                    in_logging_period(&trail, event.seq, |stop| stops.get(stop).copied())
                })
                .filter_map(|event| {
                    let facts = RecordFacts::from_json(&event.event.record_json)?;
                    let judge = judges.at(&trail, event.seq);
                    trail_takes(judge, &facts).then(|| Taken {
                        organization_id: judge
                            .organization_id
                            .clone()
                            .filter(|_| judge.is_organization_trail),
                        account_id: facts.account_id,
                        region: facts.region,
                        event,
                    })
                })
                .collect()
        })
        .await
        .map_err(|error| DeliveryError::Objects(error.to_string()))
    }

    async fn write_files(
        &self,
        arn: &str,
        pending: &PendingDelivery,
        events: &[Taken],
        report: &mut RoundReport,
    ) -> Result<Vec<PlannedFile>, DeliveryError> {
        let planned = files(arn, pending, events, &self.settings);
        // Compressing is the other CPU-heavy part: off the async workers, on every core.
        let (mut planned, bodies) = tokio::task::spawn_blocking(move || {
            let bodies = compress_all(&planned);
            (planned, bodies)
        })
        .await
        .map_err(|error| DeliveryError::Objects(error.to_string()))?;
        for (file, (body, hash)) in planned.iter_mut().zip(bodies) {
            file.hash = hash;
            self.objects
                .put_object(ObjectPut {
                    bucket: pending.trail.s3_bucket_name.clone(),
                    key: file.key.clone(),
                    body: Bytes::from(body),
                    content_type: "application/json",
                    content_encoding: Some("gzip"),
                    metadata: Vec::new(),
                })
                .await?;
            if self.settings.abort_after_first_upload
                && self
                    .uploads
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                    == 0
            {
                eprintln!(
                    "cairn: aborting after the first upload (CAIRN_TEST_ABORT_AFTER_FIRST_UPLOAD)"
                );
                std::process::abort();
            }
            report.events += file.records.len();
            report.files.push(file.key.clone());
        }
        Ok(planned)
    }

    async fn finish(
        &self,
        arn: &str,
        pending: &PendingDelivery,
        written: &[PlannedFile],
    ) -> Result<(), DeliveryError> {
        let mut status = self.status(arn).await?;
        let now = self.clock.now_millis();
        status.insert("LatestDeliveryTime".into(), json!(now));
        status.insert(
            "LatestDeliveryAttemptTime".into(),
            json!(format_event_time(now)),
        );
        status.insert(
            "LatestDeliveryAttemptSucceeded".into(),
            json!(format_event_time(now)),
        );
        status.remove("LatestDeliveryError");
        let mut changes = vec![
            position_change(arn, pending.through_seq, None),
            StateChange::put(TRAIL_STATUS, arn, Value::Object(status).to_string()),
        ];
        if pending.trail.log_file_validation_enabled {
            changes.extend(crate::digests::listed_files(arn, pending, written));
        }
        changes.extend(crate::notices::owed_for(arn, pending, written));
        self.commit(changes).await
    }

    pub(crate) async fn status(&self, arn: &str) -> Result<Map<String, Value>, DeliveryError> {
        let arn = arn.to_owned();
        let entries = self.blocking(|store| store.state(TRAIL_STATUS)).await?;
        Ok(entries
            .into_iter()
            .find(|(key, _)| *key == arn)
            .and_then(|(_, text)| serde_json::from_str(&text).ok())
            .unwrap_or_default())
    }

    pub(crate) async fn update_status(
        &self,
        arn: &str,
        change: impl FnOnce(&mut Map<String, Value>, i64),
    ) -> Result<(), DeliveryError> {
        let mut status = self.status(arn).await?;
        change(&mut status, self.clock.now_millis());
        self.commit(vec![StateChange::put(
            TRAIL_STATUS,
            arn,
            Value::Object(status).to_string(),
        )])
        .await
    }
}

/// Per trail: how many failures in a row, and when to try again. A failing trail is tried
/// again after the interval, doubled for each failure in a row, up to
/// [`MAX_BACKOFF_MILLIS`] (or the interval, if longer).
#[derive(Default)]
pub(crate) struct Backoff(Mutex<HashMap<String, (u32, i64)>>);

impl Backoff {
    pub(crate) fn ready(&self, arn: &str, now: i64) -> bool {
        self.0
            .lock()
            .ok()
            .and_then(|waiting| waiting.get(arn).copied())
            .is_none_or(|(_, retry_at)| now >= retry_at)
    }

    pub(crate) fn settle(&self, arn: &str, succeeded: bool, now: i64, interval: Duration) {
        let Ok(mut waiting) = self.0.lock() else {
            return;
        };
        if succeeded {
            waiting.remove(arn);
            return;
        }
        let failures = waiting
            .get(arn)
            .map_or(1, |(failures, _)| failures.saturating_add(1));
        let interval = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
        let delay = interval
            .saturating_mul(1i64 << failures.min(20))
            .min(MAX_BACKOFF_MILLIS.max(interval));
        waiting.insert(arn.to_owned(), (failures, now.saturating_add(delay)));
    }
}

fn position_change(arn: &str, position: i64, pending: Option<&PendingDelivery>) -> StateChange {
    let value = DeliveryPosition {
        position,
        pending: pending.cloned(),
    };
    StateChange::put(
        TRAIL_DELIVERY,
        arn,
        serde_json::to_string(&value).unwrap_or_default(),
    )
}

/// Each file's gzipped bytes and the SHA-256 of its JSON, compressed on as many threads as
/// there are cores.
fn compress_all(files: &[PlannedFile]) -> Vec<(Vec<u8>, String)> {
    let workers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(files.len())
        .max(1);
    let mut bodies = vec![(Vec::new(), String::new()); files.len()];
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|worker| {
                scope.spawn(move || {
                    files
                        .iter()
                        .enumerate()
                        .filter(|(index, _)| index % workers == worker)
                        .map(|(index, file)| {
                            (
                                index,
                                assemble_hashed(file.records.iter().map(String::as_str)),
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for handle in handles {
            for (index, body) in handle.join().unwrap_or_default() {
                bodies[index] = body;
            }
        }
    });
    bodies
}

/// An event a trail takes, with where its file goes.
#[derive(Clone, Debug)]
pub struct Taken {
    /// The organization folder, for an organization trail, as the trail was when the event
    /// was recorded.
    pub organization_id: Option<String>,
    pub account_id: String,
    pub region: String,
    pub event: StoredEvent,
}

/// One log file to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedFile {
    pub key: String,
    pub account_id: String,
    pub region: String,
    pub records: Vec<String>,
    /// Each record's eventTime (epoch ms), for CloudWatch Logs and digests.
    pub event_times: Vec<i64>,
    /// Hex SHA-256 of the decompressed file, once it is assembled.
    pub hash: String,
}

/// The files a pending stretch's taken events make: one per account and region (and
/// organization folder, for an organization trail), in order of first appearance, split
/// where a file would grow past its limits.
pub fn files(
    arn: &str,
    pending: &PendingDelivery,
    events: &[Taken],
    settings: &DeliverySettings,
) -> Vec<PlannedFile> {
    type Place<'t> = (Option<&'t str>, &'t str, &'t str);
    let mut groups: Vec<(Place<'_>, Vec<&StoredEvent>)> = Vec::new();
    for taken in events {
        let place = (
            taken.organization_id.as_deref(),
            taken.account_id.as_str(),
            taken.region.as_str(),
        );
        match groups.iter_mut().find(|(known, _)| *known == place) {
            Some((_, members)) => members.push(&taken.event),
            None => groups.push((place, vec![&taken.event])),
        }
    }
    let mut planned = Vec::new();
    for ((organization, account, region), members) in groups {
        let mut part = 0usize;
        let mut records: Vec<String> = Vec::new();
        let mut times: Vec<i64> = Vec::new();
        let mut bytes = 0usize;
        let mut flush = |records: &mut Vec<String>, times: &mut Vec<i64>, part: &mut usize| {
            if records.is_empty() {
                return;
            }
            // The organization joins the identity only where there is one, so that the keys
            // of a plain trail's redone delivery stay those first written.
            let mut identity = format!(
                "{arn}|{}|{}|{account}|{region}|{part}",
                pending.after_seq, pending.through_seq
            );
            if let Some(organization) = organization {
                identity.push('|');
                identity.push_str(organization);
            }
            let key = LogFileName {
                prefix: pending.trail.s3_key_prefix.as_deref(),
                organization_id: organization,
                account_id: account,
                region,
                delivered_millis: pending.delivered_millis,
                identity: &identity,
            }
            .key();
            planned.push(PlannedFile {
                key,
                account_id: account.to_owned(),
                region: region.to_owned(),
                records: std::mem::take(records),
                event_times: std::mem::take(times),
                hash: String::new(),
            });
            *part += 1;
        };
        for event in members {
            let text = &event.event.record_json;
            if !records.is_empty()
                && (records.len() >= settings.max_records_per_file
                    || bytes + text.len() > settings.max_file_json_bytes)
            {
                flush(&mut records, &mut times, &mut part);
                bytes = 0;
            }
            bytes += text.len() + 1;
            records.push(text.clone());
            times.push(event.event.event_time_millis);
        }
        flush(&mut records, &mut times, &mut part);
    }
    planned
}

#[cfg(test)]
mod tests {
    use cairn_model::IndexedEvent;

    use super::*;

    fn taken(seq: i64, account: &str, region: &str) -> Taken {
        let record = serde_json::json!({
            "eventVersion": "1.11", "eventTime": "2026-12-02T00:00:00Z", "eventID": format!("e{seq}"),
            "eventSource": "kms.amazonaws.com", "eventName": "ListKeys", "awsRegion": region,
            "recipientAccountId": account, "userIdentity": {"type": "IAMUser"},
        });
        Taken {
            organization_id: None,
            account_id: account.to_owned(),
            region: region.to_owned(),
            event: StoredEvent {
                seq,
                event: IndexedEvent::from_json_text(record.to_string()).unwrap(),
            },
        }
    }

    #[test]
    fn files_are_per_account_and_region_and_roll_at_their_caps() {
        let pending = PendingDelivery {
            after_seq: 0,
            through_seq: 7,
            delivered_millis: 1_764_633_900_000,
            trail: Trail::default(),
        };
        let events = vec![
            taken(1, "111111111111", "us-east-1"),
            taken(2, "111111111111", "eu-west-1"),
            taken(3, "111111111111", "us-east-1"),
            taken(4, "222222222222", "us-east-1"),
            taken(5, "111111111111", "us-east-1"),
        ];
        let capped = DeliverySettings {
            max_records_per_file: 2,
            ..DeliverySettings::default()
        };
        let planned = files("arn", &pending, &events, &capped);
        let shape: Vec<(&str, &str, usize)> = planned
            .iter()
            .map(|file| {
                (
                    file.account_id.as_str(),
                    file.region.as_str(),
                    file.records.len(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            [
                ("111111111111", "us-east-1", 2),
                ("111111111111", "us-east-1", 1),
                ("111111111111", "eu-west-1", 1),
                ("222222222222", "us-east-1", 1),
            ]
        );
        let keys: std::collections::BTreeSet<_> = planned.iter().map(|file| &file.key).collect();
        assert_eq!(keys.len(), planned.len(), "every part has its own key");
        assert!(planned[2].key.contains("/CloudTrail/eu-west-1/"));
        // The same stretch always makes the same keys: a redone delivery overwrites.
        assert_eq!(files("arn", &pending, &events, &capped), planned);
        let by_bytes = DeliverySettings {
            max_file_json_bytes: 1,
            ..DeliverySettings::default()
        };
        assert_eq!(
            files("arn", &pending, &events[..1], &by_bytes).len(),
            1,
            "a record larger than the cap still goes"
        );
        assert_eq!(files("arn", &pending, &events[..3], &by_bytes).len(), 3);
        // An organization trail's events recorded before and after it became one go to
        // their own folders, and the plain ones keep the keys they had.
        let mut organized = events[..2].to_vec();
        organized[1].region = "us-east-1".into();
        organized[1].organization_id = Some("o-aa111bb222".into());
        let split = files("arn", &pending, &organized, &DeliverySettings::default());
        assert_eq!(split.len(), 2);
        assert_eq!(
            split[0].key,
            files("arn", &pending, &events[..1], &capped)[0].key
        );
        assert!(split[1]
            .key
            .starts_with("AWSLogs/o-aa111bb222/111111111111/CloudTrail/us-east-1/"));
    }
}
