//! `cairn-bench validate`: `cairn validate-logs` against the real `aws cloudtrail
//! validate-logs` on one trail's files, in one run, with their verdicts compared.
//!
//! The trail is built in-process with the real deliverer, store, embedded S3 and signing
//! keys: small log files (so that hundreds of them take seconds, not the hours AWS's 5-minute
//! cadence would) over several digest periods, then a StopLogging (its final digest). A
//! real `cairn serve` on that data directory then answers the aws CLI; `cairn validate-logs`
//! reads the same directory. Both run on the untouched files, then again after one log file
//! is changed, and must give the same summary and the same INVALID lines each time.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use cairn_delivery::DeliverySettings;
use cairn_integrity::DigestKeys;
use cairn_model::{Clock, SystemClock};
use cairn_s3::{ListQuery, NewObject};
use cairn_store::EventStore;

use crate::delivery::{deliverer, put_trail, record, setup, trail, ACCOUNT, BUCKET};
use crate::gateway::start_listening;
use crate::load_templates;

pub struct ValidateRun {
    pub samples: PathBuf,
    pub data_dir: PathBuf,
    pub cairn_bin: PathBuf,
    pub aws_bin: PathBuf,
    pub files: usize,
    pub records_per_file: usize,
    pub periods: usize,
    pub digest_interval_secs: u64,
    pub build_only: bool,
}

/// What one validator said: its exit code, summary lines and INVALID lines, and its time.
struct Verdict {
    exit_code: Option<i32>,
    summary: Vec<String>,
    invalid: Vec<String>,
    elapsed: Duration,
}

pub fn run(settings: &ValidateRun) -> anyhow::Result<()> {
    let dir = &settings.data_dir;
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!(
            "{} is not empty: the benchmark builds its own trail",
            dir.display()
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let started = Instant::now();
    let (arn, start_time, end_time) = build_trail(settings, &runtime)?;
    let log_keys = log_file_keys(dir)?;
    println!(
        "trail {arn}: {} log files of {} records over {} digest periods of {} s, built in {:.1} s; \
         range {start_time} to {end_time}",
        log_keys.len(),
        settings.records_per_file,
        settings.periods,
        settings.digest_interval_secs,
        started.elapsed().as_secs_f64()
    );
    if settings.build_only {
        return Ok(());
    }

    let mut serve = tokio::process::Command::new(&settings.cairn_bin);
    serve.arg("serve").arg("--data-dir").arg(dir).args([
        "--listen",
        "127.0.0.1:0",
        "--account-id",
        ACCOUNT,
    ]);
    let (server, _address) = runtime.block_on(start_listening(serve))?;
    let range = ["--start-time", &start_time, "--end-time", &end_time];
    let validators = |label: &str| -> anyhow::Result<(Verdict, Verdict)> {
        let mut aws = std::process::Command::new(&settings.aws_bin);
        aws.args(["cloudtrail", "validate-logs", "--trail-arn", &arn])
            .args(range)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", std::env::var_os("HOME").unwrap_or_default())
            .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("credentials"))
            .env("AWS_CONFIG_FILE", dir.join("config"))
            .env("AWS_EC2_METADATA_DISABLED", "true");
        let aws = verdict(aws)?;
        let mut cairn = std::process::Command::new(&settings.cairn_bin);
        cairn
            .args(["validate-logs", "--trail-arn", &arn])
            .args(range)
            .arg("--data-dir")
            .arg(dir);
        let cairn = verdict(cairn)?;
        for (name, got) in [
            ("aws cloudtrail validate-logs", &aws),
            ("cairn validate-logs", &cairn),
        ] {
            println!(
                "{label}: {name:<28} {:>7.2} s, exit {:?}, {}{}",
                got.elapsed.as_secs_f64(),
                got.exit_code,
                got.summary.join("; "),
                if got.invalid.is_empty() {
                    String::new()
                } else {
                    format!("; {} INVALID lines", got.invalid.len())
                }
            );
        }
        println!(
            "{label}: cairn validate-logs is {:.1}x faster",
            aws.elapsed.as_secs_f64() / cairn.elapsed.as_secs_f64()
        );
        ensure!(
            aws.summary == cairn.summary
                && aws.invalid == cairn.invalid
                && aws.exit_code == cairn.exit_code,
            "the two validators disagree:\naws: {:?} {:?}\ncairn: {:?} {:?}",
            aws.summary,
            aws.invalid,
            cairn.summary,
            cairn.invalid
        );
        Ok((aws, cairn))
    };
    let (clean, _) = validators("untouched")?;
    ensure!(clean.exit_code == Some(0), "the untouched trail validates");

    // One log file changed after delivery: both must name exactly it.
    let buckets = cairn_s3::BucketStore::open(dir)?;
    let victim = &log_keys[log_keys.len() / 2];
    let mut body = buckets.get_object(BUCKET, victim, None)?.bytes;
    let last = body.len() - 1;
    body[last] ^= 1;
    buckets.put_object(
        BUCKET,
        victim,
        &body,
        &NewObject::default(),
        SystemClock.now_millis(),
    )?;
    let (tampered, _) = validators("one log file changed")?;
    ensure!(
        tampered.exit_code == Some(1)
            && tampered.invalid.len() == 1
            && tampered.invalid[0].contains(victim.as_str()),
        "the changed file, and only it, is INVALID: {:?}",
        tampered.invalid
    );
    drop(server);
    Ok(())
}

/// Stores `files` log files' worth of events over `periods` digest periods, delivering them
/// and their digests, then stops logging. Returns the trail ARN and a range covering it.
fn build_trail(
    settings: &ValidateRun,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<(String, String, String)> {
    let templates = load_templates(&settings.samples)?;
    let dir = &settings.data_dir;
    let (store, buckets) = setup(dir)?;
    let keys = Arc::new(DigestKeys::open(dir, 30 * 24 * 3600 * 1000)?);
    let begun = SystemClock.now_millis();
    let mut trail = trail(store.last_seq()?);
    trail.is_multi_region_trail = false;
    trail.log_file_validation_enabled = true;
    trail.logging.started_millis = Some(begun);
    put_trail(&store, &trail)?;
    let interval = Duration::from_secs(settings.digest_interval_secs);
    let delivering = deliverer(
        store.clone(),
        buckets,
        DeliverySettings {
            max_records_per_file: settings.records_per_file,
            digest_interval: interval,
            ..DeliverySettings::default()
        },
    )
    .with_digest_keys(keys);
    // The first round opens the digest chain: its first period starts here.
    runtime.block_on(delivering.deliver_round())?;
    let per_period = settings.files.div_ceil(settings.periods) * settings.records_per_file;
    let mut n = 0usize;
    for _ in 0..settings.periods {
        let period_began = Instant::now();
        let now = SystemClock.now_millis();
        let mut events = Vec::with_capacity(per_period);
        for _ in 0..per_period {
            events.push(record(
                &templates[n % templates.len()],
                &format!("validate-{n:09}"),
                now,
            )?);
            n += 1;
        }
        store.submit(events)?.wait()?;
        runtime.block_on(delivering.deliver_round())?;
        // The next round after the period ends writes its digest.
        std::thread::sleep(
            (interval + Duration::from_millis(1100)).saturating_sub(period_began.elapsed()),
        );
        runtime.block_on(delivering.deliver_round())?;
    }
    // StopLogging: the chain ends with a final digest.
    trail.logging.is_logging = false;
    trail.logging.stopped_millis = Some(SystemClock.now_millis());
    put_trail(&store, &trail)?;
    runtime.block_on(delivering.deliver_round())?;
    let at = |millis: i64| {
        chrono::DateTime::from_timestamp_millis(millis)
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    Ok((
        trail.arn(),
        at(begun - 60_000),
        at(SystemClock.now_millis() + 2_000),
    ))
}

fn log_file_keys(dir: &Path) -> anyhow::Result<Vec<String>> {
    let buckets = cairn_s3::BucketStore::open(dir)?;
    let prefix = format!("AWSLogs/{ACCOUNT}/CloudTrail/");
    let mut keys = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = buckets.list_objects(
            BUCKET,
            &ListQuery {
                prefix: &prefix,
                after: after.as_deref(),
                max_keys: cairn_s3::MAX_LIST_KEYS,
                ..ListQuery::default()
            },
        )?;
        keys.extend(page.contents.into_iter().map(|object| object.key));
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    Ok(keys)
}

fn verdict(mut command: std::process::Command) -> anyhow::Result<Verdict> {
    let started = Instant::now();
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {command:?}"))?;
    let elapsed = started.elapsed();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Vec<String> = text
        .lines()
        .filter(|line| line.contains(" files valid"))
        .map(str::to_owned)
        .collect();
    ensure!(
        !summary.is_empty(),
        "{command:?} printed no summary:\n{text}"
    );
    let mut invalid: Vec<String> = text
        .lines()
        .filter(|line| line.contains("\tINVALID: "))
        .map(str::to_owned)
        .collect();
    invalid.sort();
    Ok(Verdict {
        exit_code: output.status.code(),
        summary,
        invalid,
        elapsed,
    })
}
