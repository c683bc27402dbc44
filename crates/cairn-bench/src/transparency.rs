//! `cairn-bench transparency`: the transparency log's own costs, in-process over the real
//! store: how many leaves a second one round appends (feed read, leaf hashes, stored hashes
//! synced, leaves and head committed, checkpoint signed), and how long an inclusion proof
//! for a random event takes (leaf lookup, record read, hashes read). The gateway benchmark
//! with and without `--transparency-off` gives its cost to capture.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_delivery::transparency::TransparencyLog;
use cairn_store::{EventStore, SqliteEventStore};
use rand::{Rng, SeedableRng};

use crate::delivery::bulk_load;
use crate::{load_templates, percentile, report};

pub fn run(samples: &Path, data_dir: &Path, events: usize, proofs: usize) -> anyhow::Result<()> {
    let templates = load_templates(samples)?;
    bulk_load(data_dir, &templates, events, "tlog")?;
    let store: Arc<dyn EventStore> = Arc::new(SqliteEventStore::open(data_dir)?);
    let log = TransparencyLog::open(data_dir, store)?;
    let started = Instant::now();
    let appended = log.append_round()?;
    let elapsed = started.elapsed();
    anyhow::ensure!(appended as usize == events, "every event is a leaf");
    println!(
        "transparency log: {appended} leaves appended in {:.2} s = {:.0} leaves/s",
        elapsed.as_secs_f64(),
        appended as f64 / elapsed.as_secs_f64()
    );
    let mut random = rand::rngs::StdRng::seed_from_u64(7);
    let mut latencies: Vec<Duration> = Vec::with_capacity(proofs);
    for _ in 0..proofs {
        let id = format!("tlog-{:09}", random.random_range(0..events));
        let started = Instant::now();
        let proof = log.prove(&id)?;
        latencies.push(started.elapsed());
        anyhow::ensure!(proof.is_some(), "{id} is proven");
    }
    let mut sorted = latencies.clone();
    sorted.sort();
    println!(
        "inclusion proof of a random event in a tree of {events}: p50 {:.3} ms, p99 {:.3} ms",
        percentile(&sorted, 0.50).as_secs_f64() * 1e3,
        percentile(&sorted, 0.99).as_secs_f64() * 1e3,
    );
    report("inclusion proof", latencies);
    Ok(())
}
