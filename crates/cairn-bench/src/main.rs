//! `cairn-bench`: the measuring side of BENCHMARKS.md. `generate` writes trail-shaped
//! `.json.gz` files made from real CloudTrail records; `lookup` times LookupEvents over a
//! data directory in-process (the store) and over HTTP (a running `cairn serve`), and reports
//! bytes on disk per event; `gateway` times calls through the capture gateway against the
//! same calls sent straight to a fast upstream. `scripts/bench` runs them all in one go.

mod bare_proxy;
mod delivery;
mod gateway;
mod ingest;
mod interleaved;
mod transparency;
mod validate;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use cairn_model::{LookupAttribute, LookupAttributeKey};
use cairn_store::{EventStore, HistoryView, LookupQuery, SqliteEventStore};
use cairn_wire::sigv4;
use clap::{Parser, Subcommand};
use flate2::write::GzEncoder;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Writes `files` gzipped log files of `per_file` records each, in a trail's layout.
    Generate {
        #[arg(long)]
        samples: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 1000)]
        files: usize,
        #[arg(long, default_value_t = 1000)]
        per_file: usize,
    },
    /// Times selective lookups in-process and, with --endpoint, over HTTP.
    Lookup {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, default_value_t = 2000)]
        iterations: usize,
        #[arg(long)]
        endpoint: Option<String>,
        /// Read this store instead of the data directory's SQLite (a postgres:// URL).
        #[arg(long)]
        store: Option<String>,
    },
    /// Requests/s and p50/p99 through `cairn serve --upstream` versus straight to the same
    /// upstream, beside the data disk's fdatasync p50/p99.
    Gateway {
        #[arg(long, default_value = "target/release/cairn")]
        cairn_bin: PathBuf,
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
        concurrency: Vec<usize>,
        /// With one logging trail delivering every call (embedded S3, 1 s cadence).
        #[arg(long)]
        with_trail: bool,
        /// With the transparency log off (it is on by default, a checkpoint a second).
        #[arg(long)]
        transparency_off: bool,
    },
    /// The gateway's calls/s with one feature against without it (a logging trail, the
    /// transparency log): two `cairn serve` processes alike but for it, loaded in turn
    /// (ABBA) for `rounds` rounds.
    Interleaved {
        #[arg(long, value_enum)]
        compare: interleaved::Compared,
        #[arg(long, default_value = "target/release/cairn")]
        cairn_bin: PathBuf,
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, default_value_t = 8)]
        seconds: u64,
        #[arg(long, default_value_t = 8)]
        rounds: usize,
        #[arg(long, default_value_t = 64)]
        clients: usize,
    },
    /// The transparency log in-process: leaves appended per second over `events` stored
    /// events, and the latency of `proofs` inclusion proofs for random events.
    Transparency {
        #[arg(long)]
        samples: PathBuf,
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, default_value_t = 200_000)]
        events: usize,
        #[arg(long, default_value_t = 2000)]
        proofs: usize,
    },
    /// Delivery throughput (one round over `events` stored events) and delivery lag at a 1 s
    /// cadence under `rate` events/s for `seconds`.
    Delivery {
        #[arg(long)]
        samples: PathBuf,
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, default_value_t = 200_000)]
        events: usize,
        #[arg(long, default_value_t = 5000)]
        rate: usize,
        #[arg(long, default_value_t = 20)]
        seconds: u64,
    },
    /// `cairn validate-logs` against `aws cloudtrail validate-logs` on one trail of `files`
    /// small log files over `periods` digest periods, untouched and with one file changed.
    Validate {
        #[arg(long)]
        samples: PathBuf,
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, default_value = "target/release/cairn")]
        cairn_bin: PathBuf,
        #[arg(long, default_value = "aws")]
        aws_bin: PathBuf,
        #[arg(long, default_value_t = 600)]
        files: usize,
        #[arg(long, default_value_t = 20)]
        records_per_file: usize,
        #[arg(long, default_value_t = 3)]
        periods: usize,
        #[arg(long, default_value_t = 10)]
        digest_interval_secs: u64,
        /// Build the trail and stop: for measuring validators other than the aws CLI on
        /// trails too large for it (scripts/bench-validate-memory).
        #[arg(long)]
        build_only: bool,
    },
    /// Durable ingest through the API, SQLite against PostgreSQL in one run: events/s and
    /// CPU per event (Cairn's and the database's).
    Ingest {
        #[arg(long, default_value = "target/release/cairn")]
        cairn_bin: PathBuf,
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
        postgres: String,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, value_delimiter = ',', default_value = "16,64")]
        concurrency: Vec<usize>,
    },
    /// The gateway benchmark's baseline: forwards every request to `upstream` over the same
    /// HTTP stack as Cairn, doing nothing else. Started by `gateway`.
    #[command(hide = true)]
    BareProxy {
        #[arg(long)]
        upstream: String,
    },
}

const USERS: usize = 1000;

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Generate {
            samples,
            out,
            files,
            per_file,
        } => generate(&samples, &out, files, per_file),
        Command::Lookup {
            data_dir,
            iterations,
            endpoint,
            store,
        } => lookup(&data_dir, iterations, endpoint.as_deref(), store.as_deref()),
        Command::Ingest {
            cairn_bin,
            data_dir,
            postgres,
            seconds,
            concurrency,
        } => ingest::run(&ingest::IngestRun {
            cairn_bin,
            data_dir,
            postgres,
            seconds,
            concurrency,
        }),
        Command::Gateway {
            cairn_bin,
            data_dir,
            seconds,
            concurrency,
            with_trail,
            transparency_off,
        } => gateway::run(&gateway::GatewayRun {
            cairn_bin,
            data_dir,
            seconds,
            concurrency,
            with_trail,
            transparency_off,
        }),
        Command::Interleaved {
            compare,
            cairn_bin,
            data_dir,
            seconds,
            rounds,
            clients,
        } => interleaved::run(&interleaved::InterleavedRun {
            compare,
            cairn_bin,
            data_dir,
            seconds,
            rounds,
            clients,
        }),
        Command::Transparency {
            samples,
            data_dir,
            events,
            proofs,
        } => transparency::run(&samples, &data_dir, events, proofs),
        Command::Validate {
            samples,
            data_dir,
            cairn_bin,
            aws_bin,
            files,
            records_per_file,
            periods,
            digest_interval_secs,
            build_only,
        } => validate::run(&validate::ValidateRun {
            samples,
            data_dir,
            cairn_bin,
            aws_bin,
            files,
            records_per_file,
            periods,
            digest_interval_secs,
            build_only,
        }),
        Command::BareProxy { upstream } => bare_proxy::run(&upstream),
        Command::Delivery {
            samples,
            data_dir,
            events,
            rate,
            seconds,
        } => delivery::run(&delivery::DeliveryRun {
            samples,
            data_dir,
            events,
            rate,
            seconds,
        }),
    }
}

fn load_templates(samples: &Path) -> anyhow::Result<Vec<Value>> {
    let mut templates = Vec::new();
    for entry in std::fs::read_dir(samples)? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "json") {
            let records: Vec<Value> = serde_json::from_slice(&std::fs::read(&path)?)?;
            templates.extend(records);
        }
    }
    if templates.is_empty() {
        bail!("no sample records in {}", samples.display());
    }
    Ok(templates)
}

fn generate(samples: &Path, out: &Path, files: usize, per_file: usize) -> anyhow::Result<()> {
    let templates = load_templates(samples)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let start = chrono::DateTime::parse_from_rfc3339("2026-09-01T00:00:00Z")?.timestamp();
    let span = 80 * 86_400;
    let mut bytes = 0u64;
    for file in 0..files {
        let file_start = start + (span as usize * file / files) as i64;
        let mut records = Vec::with_capacity(per_file);
        for n in 0..per_file {
            let mut record = templates[rng.random_range(0..templates.len())].clone();
            let user = rng.random_range(0..USERS);
            let when = file_start + (n as i64 * span / (files * per_file) as i64);
            record["eventID"] = json!(format!("{:08x}-0000-4000-8000-{:012x}", file, n));
            record["eventTime"] = json!(cairn_model::format_event_time(when * 1000));
            record["awsRegion"] = json!("us-east-1");
            if let Some(identity) = record
                .get_mut("userIdentity")
                .and_then(Value::as_object_mut)
            {
                identity.insert("userName".into(), json!(format!("user-{user:04}")));
                identity.insert("accessKeyId".into(), json!(format!("AKIABENCH{user:011}")));
                identity.insert("type".into(), json!("IAMUser"));
            }
            records.push(record);
        }
        let dir = out.join("AWSLogs/111122223333/CloudTrail/us-east-1/2026/09/01");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!(
            "111122223333_CloudTrail_us-east-1_20260901T0000Z_{file:016}.json.gz"
        ));
        let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::default());
        serde_json::to_writer(&mut encoder, &json!({ "Records": records }))?;
        let compressed = encoder.finish()?;
        bytes += compressed.len() as u64;
        std::fs::write(&path, compressed)?;
    }
    println!(
        "generated {} records in {files} files, {bytes} bytes gzipped",
        files * per_file
    );
    Ok(())
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * fraction).round() as usize]
}

fn report(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{label}: n={} p50={:.3} ms p99={:.3} ms max={:.3} ms",
        samples.len(),
        percentile(&samples, 0.50).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
        samples.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
    );
}

fn lookup(
    data_dir: &Path,
    iterations: usize,
    endpoint: Option<&str>,
    store_url: Option<&str>,
) -> anyhow::Result<()> {
    let store: Box<dyn EventStore> = match store_url {
        Some(url) => {
            let store =
                cairn_store::PostgresEventStore::open(&cairn_store::PostgresLocation::parse(url)?)?;
            println!("store: {} events in PostgreSQL ({url})", store.count()?);
            Box::new(store)
        }
        None => {
            let store = SqliteEventStore::open(data_dir)?;
            store.checkpoint()?;
            let count = store.count()?;
            let bytes = store.disk_bytes()?;
            println!(
                "store: {count} events, {bytes} bytes on disk, {:.0} bytes/event",
                bytes as f64 / count.max(1) as f64
            );
            Box::new(store)
        }
    };
    let store = store.as_ref();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let attributes: Vec<LookupAttribute> = (0..iterations)
        .map(|_| LookupAttribute {
            key: LookupAttributeKey::Username,
            value: format!("user-{:04}", rng.random_range(0..USERS)),
        })
        .collect();
    // Warm the page cache the way a long-running server would be warm.
    for attribute in attributes.iter().take(200) {
        run_store_lookup(store, attribute)?;
    }
    let mut in_process = Vec::with_capacity(iterations);
    let mut returned = 0usize;
    for attribute in &attributes {
        let started = Instant::now();
        returned += run_store_lookup(store, attribute)?;
        in_process.push(started.elapsed());
    }
    println!(
        "in-process lookups returned {:.1} events per page on average",
        returned as f64 / iterations as f64
    );
    report(
        "LookupEvents in-process (Username, MaxResults 50, first page)",
        in_process,
    );
    if let Some(endpoint) = endpoint {
        let mut client = HttpClient::connect(endpoint)?;
        for attribute in attributes.iter().take(200) {
            client.lookup(attribute)?;
        }
        let mut over_http = Vec::with_capacity(iterations);
        for attribute in &attributes {
            let started = Instant::now();
            client.lookup(attribute)?;
            over_http.push(started.elapsed());
        }
        report(
            "LookupEvents over HTTP (same lookups, SigV4, durable self-record)",
            over_http,
        );
    }
    Ok(())
}

fn run_store_lookup(store: &dyn EventStore, attribute: &LookupAttribute) -> anyhow::Result<usize> {
    let mut query = LookupQuery::all(HistoryView::Management, 50);
    query.attribute = Some(attribute.clone());
    let page = store.lookup(&query)?;
    // Include what the API does with a page: build the wire response.
    let events: Vec<cairn_wire::cloudtrail::EventOut> = page
        .events
        .iter()
        .map(|stored| (&stored.event).into())
        .collect();
    let body = serde_json::to_vec(&events)?;
    std::hint::black_box(body);
    Ok(events.len())
}

/// The raw bytes of a signed AWS JSON 1.1 call (POST /, `x-amz-target`) to `host`, region
/// us-east-1.
fn signed_json_request(
    host: &str,
    service: &str,
    target: &str,
    body: &[u8],
    key: &str,
    secret: &str,
) -> anyhow::Result<Vec<u8>> {
    let amz_date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let mut headers = http::HeaderMap::new();
    headers.insert("host", host.parse()?);
    headers.insert("x-amz-date", amz_date.parse()?);
    headers.insert("x-amz-target", target.parse()?);
    headers.insert("content-type", "application/x-amz-json-1.1".parse()?);
    headers.insert("user-agent", "cairn-bench".parse()?);
    sigv4::sign_json_post(&mut headers, body, key, secret, "us-east-1", service)
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    let mut request = b"POST / HTTP/1.1\r\n".to_vec();
    for (name, value) in &headers {
        request.extend_from_slice(name.as_str().as_bytes());
        request.extend_from_slice(b": ");
        request.extend_from_slice(value.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    request.extend_from_slice(body);
    Ok(request)
}

/// A keep-alive HTTP/1.1 client that signs LookupEvents calls with the data directory's
/// credentials file, so that client overhead stays out of the figure.
struct HttpClient {
    stream: BufReader<TcpStream>,
    host: String,
    key: String,
    secret: String,
}

impl HttpClient {
    fn connect(endpoint: &str) -> anyhow::Result<Self> {
        let host = endpoint
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let stream = TcpStream::connect(&host).with_context(|| format!("connect {host}"))?;
        stream.set_nodelay(true)?;
        let key =
            std::env::var("CAIRN_BENCH_ACCESS_KEY_ID").context("CAIRN_BENCH_ACCESS_KEY_ID")?;
        let secret = std::env::var("CAIRN_BENCH_SECRET_ACCESS_KEY")
            .context("CAIRN_BENCH_SECRET_ACCESS_KEY")?;
        Ok(Self {
            stream: BufReader::new(stream),
            host,
            key,
            secret,
        })
    }

    fn lookup(&mut self, attribute: &LookupAttribute) -> anyhow::Result<()> {
        let body = serde_json::to_vec(
            &json!({"LookupAttributes": [{"AttributeKey": attribute.key.as_str(), "AttributeValue": attribute.value}]}),
        )?;
        let target = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents";
        let request = signed_json_request(
            &self.host,
            "cloudtrail",
            target,
            &body,
            &self.key,
            &self.secret,
        )?;
        self.stream.get_mut().write_all(&request)?;
        let mut status = String::new();
        self.stream.read_line(&mut status)?;
        if !status.contains(" 200 ") {
            bail!("unexpected response: {status}");
        }
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            self.stream.read_line(&mut line)?;
            if line == "\r\n" {
                break;
            }
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse()?;
            }
        }
        let mut response = vec![0u8; length];
        self.stream.read_exact(&mut response)?;
        Ok(())
    }
}
