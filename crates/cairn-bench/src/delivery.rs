//! `cairn-bench delivery`: how fast trails turn the store's feed into log files, and how long
//! an acknowledged event waits until its file is listed.
//!
//! Throughput: a store holding N events (real sample records, bulk loaded), one logging
//! trail, and one delivery round timed (feed read, selection, gzip, durable puts into the
//! embedded S3, position commits). Lag: events appended at a sustained rate through the same
//! group commit the server uses, the deliverer running at a 1 s cadence, and a lister that
//! polls the bucket and, for each new file, notes when each of its events was acknowledged.
//! Both run in-process against the real store and embedded S3; the HTTP edge is measured by
//! `gateway` (with and without a trail).

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_delivery::{Deliverer, DeliverySettings, EmbeddedObjects, TRAILS};
use cairn_model::trail::{Logging, LoggingPeriod, Trail};
use cairn_model::{Clock, IndexedEvent, StateChange, SystemClock};
use cairn_s3::store::ListQuery;
use cairn_s3::{Bucket, BucketStore};
use cairn_store::{EventStore, SqliteEventStore, SyncMode};
use serde_json::{json, Value};

use crate::{load_templates, percentile, report};

pub struct DeliveryRun {
    pub samples: PathBuf,
    pub data_dir: PathBuf,
    pub events: usize,
    pub rate: usize,
    pub seconds: u64,
}

pub(crate) const ACCOUNT: &str = "111122223333";
pub(crate) const BUCKET: &str = "bench-trail";

pub(crate) fn record(template: &Value, id: &str, now_millis: i64) -> anyhow::Result<IndexedEvent> {
    let mut record = template.clone();
    record["eventID"] = json!(id);
    record["eventTime"] = json!(cairn_model::format_event_time(now_millis));
    record["awsRegion"] = json!("us-east-1");
    record["recipientAccountId"] = json!(ACCOUNT);
    record["eventCategory"] = json!("Management");
    record["managementEvent"] = json!(true);
    Ok(IndexedEvent::from_json_text(record.to_string())?)
}

pub(crate) fn trail(after_seq: i64) -> Trail {
    Trail {
        name: "bench".into(),
        account_id: ACCOUNT.into(),
        home_region: "us-east-1".into(),
        s3_bucket_name: BUCKET.into(),
        include_global_service_events: true,
        is_multi_region_trail: true,
        logging: Logging {
            is_logging: true,
            started_millis: Some(0),
            stopped_millis: None,
            periods: vec![LoggingPeriod {
                after_seq,
                until_event_id: None,
            }],
        },
        ..Trail::default()
    }
}

pub(crate) fn setup(dir: &Path) -> anyhow::Result<(Arc<SqliteEventStore>, Arc<BucketStore>)> {
    let store = Arc::new(SqliteEventStore::open(dir)?);
    let buckets = Arc::new(BucketStore::open(dir)?);
    buckets.create_bucket(&Bucket {
        name: BUCKET.into(),
        region: "us-east-1".into(),
        account_id: ACCOUNT.into(),
        created_millis: SystemClock.now_millis(),
    })?;
    Ok((store, buckets))
}

/// Stores `events` records made from `templates` (eventIDs `<name>-<n>`) in the store at
/// `dir`, in bulk: the benchmark's fixture, not what it times.
pub(crate) fn bulk_load(
    dir: &Path,
    templates: &[Value],
    events: usize,
    name: &str,
) -> anyhow::Result<()> {
    let bulk = SqliteEventStore::open_with(dir, SyncMode::OnFlush)?;
    let now = SystemClock.now_millis();
    let mut batch = Vec::new();
    for n in 0..events {
        batch.push(record(
            &templates[n % templates.len()],
            &format!("{name}-{n:09}"),
            now,
        )?);
        if batch.len() == 5000 {
            bulk.append(std::mem::take(&mut batch))?;
        }
    }
    bulk.append(batch)?;
    bulk.flush()?;
    Ok(())
}

/// Stores `trail` as the server would: a trail logging every event after its period's
/// feed position.
pub(crate) fn put_trail(store: &SqliteEventStore, trail: &Trail) -> anyhow::Result<()> {
    store
        .submit_with_state(
            Vec::new(),
            vec![StateChange::put(
                TRAILS,
                trail.arn(),
                serde_json::to_string(trail)?,
            )],
        )?
        .wait()?;
    Ok(())
}

/// A deliverer at a 1 s cadence into the embedded S3.
pub(crate) fn deliverer(
    store: Arc<SqliteEventStore>,
    buckets: Arc<BucketStore>,
    settings: DeliverySettings,
) -> Deliverer {
    Deliverer::new(
        store,
        Arc::new(EmbeddedObjects {
            buckets,
            clock: Arc::new(SystemClock),
        }),
        Arc::new(SystemClock),
        DeliverySettings {
            interval: Duration::from_secs(1),
            ..settings
        },
    )
}

pub fn run(settings: &DeliveryRun) -> anyhow::Result<()> {
    let templates = load_templates(&settings.samples)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;

    // Throughput.
    let dir = settings.data_dir.join("throughput");
    bulk_load(&dir, &templates, settings.events, "bulk")?;
    let (store, buckets) = setup(&dir)?;
    put_trail(&store, &trail(0))?;
    // Where a round's time goes, part by part, on one thread.
    let started = Instant::now();
    let events = store.feed(0, settings.events)?;
    let feed_read = started.elapsed();
    let started = Instant::now();
    let facts = events
        .iter()
        .filter_map(|event| {
            cairn_delivery::selection::RecordFacts::from_json(&event.event.record_json)
        })
        .count();
    let facts_read = started.elapsed();
    let started = Instant::now();
    let gzipped: usize = events
        .chunks(10_000)
        .map(|chunk| {
            cairn_delivery::log_file::assemble(
                chunk.iter().map(|event| event.event.record_json.as_str()),
            )
            .len()
        })
        .sum();
    let compressed = started.elapsed();
    println!(
        "\none thread, {} events: feed read {:.2} s, selection facts of {facts} {:.2} s, gzip to {:.1} MB {:.2} s",
        events.len(),
        feed_read.as_secs_f64(),
        facts_read.as_secs_f64(),
        gzipped as f64 / 1e6,
        compressed.as_secs_f64()
    );
    drop(events);
    let delivering = deliverer(store, buckets.clone(), DeliverySettings::default());
    let started = Instant::now();
    let round = runtime.block_on(delivering.deliver_round())?;
    let elapsed = started.elapsed();
    let listed = buckets.list_objects(
        BUCKET,
        &ListQuery {
            max_keys: 100_000,
            ..ListQuery::default()
        },
    )?;
    let bytes: u64 = listed.contents.iter().map(|object| object.size).sum();
    println!(
        "delivery throughput: {} events into {} files ({:.1} MB gzipped) in {:.2} s = {:.0} events/s",
        round.events,
        round.files.len(),
        bytes as f64 / 1e6,
        elapsed.as_secs_f64(),
        round.events as f64 / elapsed.as_secs_f64()
    );
    anyhow::ensure!(round.events == settings.events, "every event is delivered");

    // Lag at a 1 s cadence under a sustained rate.
    let dir = settings.data_dir.join("lag");
    let (store, buckets) = setup(&dir)?;
    put_trail(&store, &trail(store.last_seq()?))?;
    let delivering = Arc::new(deliverer(
        store.clone(),
        buckets.clone(),
        DeliverySettings::default(),
    ));
    let acknowledged: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let lags = runtime.block_on(async {
        let delivery = tokio::spawn(delivering.run());
        let writer = {
            let store = store.clone();
            let acknowledged = acknowledged.clone();
            let templates = templates.clone();
            let (rate, seconds) = (settings.rate, settings.seconds);
            tokio::spawn(async move {
                // Every 10 ms, a hundredth of a second's events, in one group commit.
                let per_tick = (rate / 100).max(1);
                let mut ticks = tokio::time::interval(Duration::from_millis(10));
                let mut n = 0usize;
                let until = Instant::now() + Duration::from_secs(seconds);
                while Instant::now() < until {
                    ticks.tick().await;
                    let now = SystemClock.now_millis();
                    let mut events = Vec::with_capacity(per_tick);
                    let mut ids = Vec::with_capacity(per_tick);
                    for _ in 0..per_tick {
                        let id = format!("lag-{n:09}");
                        events.push(record(&templates[n % templates.len()], &id, now)?);
                        ids.push(id);
                        n += 1;
                    }
                    store.submit(events)?.completion().await?;
                    let at = Instant::now();
                    let mut known = acknowledged.lock().expect("not poisoned");
                    for id in ids {
                        known.insert(id, at);
                    }
                }
                anyhow::Ok(n)
            })
        };
        let mut lags: Vec<Duration> = Vec::new();
        let mut seen: HashMap<String, ()> = HashMap::new();
        let mut duplicates = 0usize;
        let mut writer_done: Option<Instant> = None;
        let written = loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let listing = buckets.list_objects(
                BUCKET,
                &ListQuery {
                    max_keys: 10_000,
                    ..ListQuery::default()
                },
            )?;
            let listed_at = Instant::now();
            for object in listing.contents {
                if seen.insert(object.key.clone(), ()).is_some() {
                    continue;
                }
                let read = buckets.get_object(BUCKET, &object.key, None)?;
                let mut text = String::new();
                flate2::read::GzDecoder::new(read.bytes.as_slice()).read_to_string(&mut text)?;
                let file: Value = serde_json::from_str(&text)?;
                let known = acknowledged.lock().expect("not poisoned");
                for record in file["Records"].as_array().into_iter().flatten() {
                    let id = record["eventID"].as_str().unwrap_or_default();
                    match known.get(id) {
                        Some(at) => lags.push(listed_at.saturating_duration_since(*at)),
                        None => duplicates += usize::from(!id.starts_with("lag-")),
                    }
                }
            }
            if writer.is_finished() {
                let done = *writer_done.get_or_insert_with(Instant::now);
                let total = acknowledged.lock().expect("not poisoned").len();
                if lags.len() >= total || done.elapsed() > Duration::from_secs(10) {
                    break total;
                }
            }
        };
        delivery.abort();
        writer.await??;
        anyhow::ensure!(duplicates == 0, "records not written by the benchmark");
        anyhow::ensure!(
            lags.len() == written,
            "{} events delivered of {written} acknowledged",
            lags.len()
        );
        anyhow::Ok(lags)
    })?;
    let mut sorted = lags.clone();
    sorted.sort();
    println!(
        "delivery lag at a 1 s cadence, {} events/s for {} s ({} events): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        settings.rate,
        settings.seconds,
        sorted.len(),
        percentile(&sorted, 0.50).as_secs_f64() * 1e3,
        percentile(&sorted, 0.99).as_secs_f64() * 1e3,
        sorted.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    report("delivery lag (acknowledged -> listed)", lags);
    Ok(())
}
