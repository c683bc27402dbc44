//! `cairn-bench gateway`: requests/s and latency through the capture gateway against the same
//! calls sent straight to the upstream, with the data disk's fdatasync latency measured in
//! the same run (each gateway call is answered only after its event is fsynced).
//!
//! The upstream is deliberately trivial and fast (raw HTTP/1.1 over tokio, a fixed `{}`
//! answer), so the figures show what Cairn adds. Beside them, the same calls through a bare
//! proxy (`bare_proxy.rs`: Cairn's HTTP stack doing nothing but forward) show what any
//! gateway on this machine costs before it does its work. Clients keep their connections alive and
//! replay one request signed once, so client-side signing stays out of the figures while
//! Cairn still verifies every signature.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::{percentile, report, signed_json_request};

pub struct GatewayRun {
    pub cairn_bin: PathBuf,
    pub data_dir: PathBuf,
    pub seconds: u64,
    pub concurrency: Vec<usize>,
    /// Serve with the embedded S3 and one logging trail delivering every call at a 1 s
    /// cadence, to weigh delivery's cost against the same run without.
    pub with_trail: bool,
    /// Serve with the transparency log off, to weigh its cost against the same run with it.
    pub transparency_off: bool,
}

const TARGET: &str = "TrentService.TagResource";
const BODY: &str = r#"{"KeyId":"1234abcd-12ab-34cd-56ef-1234567890ab","Tags":[{"TagKey":"team","TagValue":"audit"}]}"#;

pub fn run(settings: &GatewayRun) -> anyhow::Result<()> {
    std::fs::create_dir_all(&settings.data_dir)?;
    let syncs = fdatasync_latencies(&settings.data_dir, 2000)?;
    report(
        "fdatasync of a 4 KiB append on the data disk",
        syncs.clone(),
    );
    let sync_p99 = percentile(&sorted(syncs), 0.99);

    bench_runtime()?.block_on(async {
        let upstream_address = start_fast_upstream().await?;
        let mut cairn_command =
            serve_command(&settings.cairn_bin, &settings.data_dir, &upstream_address);
        if settings.with_trail {
            cairn_command.args(["--embedded-s3", "--delivery-interval-secs", "1"]);
        }
        if settings.transparency_off {
            cairn_command.args(["--checkpoint-interval-millis", "0"]);
        }
        let (mut cairn, gateway_address) = start_listening(cairn_command).await?;
        let mut proxy_command = tokio::process::Command::new(std::env::current_exe()?);
        proxy_command
            .args(["bare-proxy", "--upstream"])
            .arg(format!("http://{upstream_address}"));
        let (mut proxy, proxy_address) = start_listening(proxy_command).await?;
        let (key, secret) = read_credentials(&settings.data_dir)?;
        if settings.with_trail {
            start_trail(&gateway_address, &key, &secret).await?;
            println!("\nwith one logging trail (embedded S3, 1 s delivery cadence)");
        }

        println!(
            "\nKMS TagResource ({} byte body), {} s per run, keep-alive connections",
            BODY.len(),
            settings.seconds
        );
        println!(
            "{:>7} {:>9} {:>8} {:>10} {:>9} {:>9} {:>10} {:>9} {:>9} {:>8} {:>8} {:>13} {:>9} {:>11}",
            "clients",
            "direct/s",
            "proxy/s",
            "gateway/s",
            "direct50",
            "direct99",
            "gateway50",
            "gateway99",
            "added99",
            "ratio",
            "of proxy",
            "goal99",
            "proxy cpu",
            "gateway cpu"
        );
        for &clients in &settings.concurrency {
            let direct_request = signed_request(&upstream_address, &key, &secret)?;
            let gateway_request = signed_request(&gateway_address, &key, &secret)?;
            let proxy_request = signed_request(&proxy_address, &key, &secret)?;
            let duration = Duration::from_secs(settings.seconds);
            let direct = load(&upstream_address, direct_request, clients, duration, &[]).await?;
            let proxied =
                load(&proxy_address, proxy_request, clients, duration, &pids(&proxy)).await?;
            let gateway =
                load(&gateway_address, gateway_request, clients, duration, &pids(&cairn)).await?;
            let direct_p99 = percentile(&direct.latencies, 0.99);
            let gateway_p99 = percentile(&gateway.latencies, 0.99);
            let added = gateway_p99.saturating_sub(direct_p99);
            let goal = sync_p99 + Duration::from_millis(1);
            println!(
                "{:>7} {:>9.0} {:>8.0} {:>10.0} {:>9} {:>9} {:>10} {:>9} {:>9} {:>7.1}% {:>7.1}% {:>13} {:>9} {:>11}",
                clients,
                direct.per_second,
                proxied.per_second,
                gateway.per_second,
                micros(percentile(&direct.latencies, 0.5)),
                micros(direct_p99),
                micros(percentile(&gateway.latencies, 0.5)),
                micros(gateway_p99),
                micros(added),
                100.0 * gateway.per_second / direct.per_second,
                100.0 * gateway.per_second / proxied.per_second,
                format!(
                    "{} {}",
                    micros(goal),
                    if added <= goal { "met" } else { "missed" }
                ),
                cpu_per_call(proxied.server_cpu_per_call),
                cpu_per_call(gateway.server_cpu_per_call),
            );
        }
        cairn.kill().await.ok();
        proxy.kill().await.ok();
        anyhow::Ok(())
    })
}

/// Starts `command` and waits for the `listening on http://ADDRESS` line it prints.
pub(crate) async fn start_listening(
    mut command: tokio::process::Command,
) -> anyhow::Result<(tokio::process::Child, String)> {
    let mut child = command
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("start {command:?}"))?;
    let stdout = child.stdout.take().context("the child's stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let address = loop {
        let Some(line) = lines.next_line().await? else {
            bail!("{command:?} exited before it listened");
        };
        if let Some(address) = line.split("listening on http://").nth(1) {
            break address
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
        }
    };
    // Keep draining its stdout so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, address))
}

pub(crate) fn cpu_per_call(cpu: Option<Duration>) -> String {
    cpu.map_or_else(
        || "-".to_owned(),
        |cpu| format!("{:.1}µs", cpu.as_secs_f64() * 1e6),
    )
}

pub(crate) fn micros(duration: Duration) -> String {
    format!("{}µs", duration.as_micros())
}

fn sorted(mut samples: Vec<Duration>) -> Vec<Duration> {
    samples.sort();
    samples
}

/// Appends 4 KiB and fdatasyncs it, `count` times: what one WAL commit costs the disk.
fn fdatasync_latencies(dir: &Path, count: usize) -> anyhow::Result<Vec<Duration>> {
    use std::io::Write;
    let path = dir.join("fdatasync-probe");
    let mut file = std::fs::File::create(&path)?;
    let block = [0x5au8; 4096];
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        file.write_all(&block)?;
        file.sync_data()?;
        samples.push(started.elapsed());
    }
    std::fs::remove_file(&path)?;
    Ok(samples)
}

pub(crate) fn read_credentials(data_dir: &Path) -> anyhow::Result<(String, String)> {
    let text = std::fs::read_to_string(data_dir.join("credentials"))?;
    let value = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .map(|rest| rest.trim_start_matches([' ', '=']).trim().to_owned())
            .with_context(|| format!("{name} in the credentials file"))
    };
    Ok((value("aws_access_key_id")?, value("aws_secret_access_key")?))
}

/// The raw bytes of one signed KMS TagResource call to `host`.
pub(crate) fn signed_request(host: &str, key: &str, secret: &str) -> anyhow::Result<Arc<Vec<u8>>> {
    let request = signed_json_request(host, "kms", TARGET, BODY.as_bytes(), key, secret)?;
    Ok(Arc::new(request))
}

pub(crate) struct Load {
    pub per_second: f64,
    pub latencies: Vec<Duration>,
    /// The server's CPU time (all its threads, user and system) per call answered in the
    /// measured window: steadier than calls/s on a machine whose load comes and goes.
    pub server_cpu_per_call: Option<Duration>,
}

fn pids(child: &tokio::process::Child) -> Vec<u32> {
    child.id().into_iter().collect()
}

/// User plus system CPU time of every thread of process `pid` so far, from
/// `/proc/PID/stat` (fields 14 and 15, in USER_HZ ticks, which Linux fixes at 100/s).
fn process_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it are plain.
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// The CPU time of every process in `pids` so far; `None` if any of them cannot be read.
fn processes_cpu(pids: &[u32]) -> Option<Duration> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|pid| process_cpu(*pid)).sum()
}

/// `clients` connections each sending `request` back to back for `duration`, after a
/// one-second warm-up whose calls are not counted; the CPU time of `server_pids` (the
/// server, and a database server's processes) is measured over the counted window.
pub(crate) async fn load(
    address: &str,
    request: Arc<Vec<u8>>,
    clients: usize,
    duration: Duration,
    server_pids: &[u32],
) -> anyhow::Result<Load> {
    let measuring = Arc::new(AtomicBool::new(false));
    let stopping = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let stream = TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        let request = request.clone();
        let measuring = measuring.clone();
        let stopping = stopping.clone();
        let failures = failures.clone();
        tasks.push(tokio::spawn(async move {
            let mut stream = BufReader::new(stream);
            let mut latencies = Vec::new();
            while !stopping.load(Ordering::Relaxed) {
                let started = Instant::now();
                let ok = exchange(&mut stream, &request).await?;
                if measuring.load(Ordering::Relaxed) {
                    latencies.push(started.elapsed());
                    if !ok {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            anyhow::Ok(latencies)
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    measuring.store(true, Ordering::Relaxed);
    let cpu_before = processes_cpu(server_pids);
    let started = Instant::now();
    tokio::time::sleep(duration).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let cpu_after = processes_cpu(server_pids);
    stopping.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let failed = failures.load(Ordering::Relaxed);
    if failed > 0 {
        bail!("{failed} calls to {address} did not succeed");
    }
    latencies.sort();
    let server_cpu_per_call = match (cpu_before, cpu_after) {
        (Some(before), Some(after)) if !latencies.is_empty() => {
            Some((after.saturating_sub(before)) / latencies.len() as u32)
        }
        _ => None,
    };
    Ok(Load {
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        latencies,
        server_cpu_per_call,
    })
}

/// Creates bucket `bench-trail` in the embedded S3 and a trail delivering to it, logging.
pub(crate) async fn start_trail(host: &str, key: &str, secret: &str) -> anyhow::Result<()> {
    let amz_date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let mut headers = http::HeaderMap::new();
    headers.insert("host", host.parse()?);
    headers.insert("x-amz-date", amz_date.parse()?);
    headers.insert("x-amz-content-sha256", EMPTY_SHA256.parse()?);
    let authorization = cairn_wire::sigv4::sign_request(
        &cairn_wire::sigv4::SignedRequest {
            method: &http::Method::PUT,
            raw_path: "/bench-trail",
            raw_query: "",
            headers: &headers,
            body: b"",
        },
        (key, secret),
        "us-east-1",
        "s3",
    )
    .map_err(|error| anyhow::anyhow!("{error}"))?;
    let authorization = authorization.to_str()?;
    let mut create_bucket = b"PUT /bench-trail HTTP/1.1\r\n".to_vec();
    for (name, value) in &headers {
        create_bucket.extend_from_slice(format!("{name}: {}\r\n", value.to_str()?).as_bytes());
    }
    create_bucket.extend_from_slice(
        format!("authorization: {authorization}\r\ncontent-length: 0\r\n\r\n").as_bytes(),
    );
    let target = |operation: &str| {
        format!("com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.{operation}")
    };
    let create_trail = signed_json_request(
        host,
        "cloudtrail",
        &target("CreateTrail"),
        br#"{"Name":"bench","S3BucketName":"bench-trail","IsMultiRegionTrail":true}"#,
        key,
        secret,
    )?;
    let start_logging = signed_json_request(
        host,
        "cloudtrail",
        &target("StartLogging"),
        br#"{"Name":"bench"}"#,
        key,
        secret,
    )?;
    let stream = TcpStream::connect(host).await?;
    let mut stream = BufReader::new(stream);
    for (what, request) in [
        ("CreateBucket", create_bucket),
        ("CreateTrail", create_trail),
        ("StartLogging", start_logging),
    ] {
        if !exchange(&mut stream, &request).await? {
            bail!("{what} failed");
        }
    }
    Ok(())
}

const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Sends one request and reads its response; true for a 200.
async fn exchange(stream: &mut BufReader<TcpStream>, request: &[u8]) -> anyhow::Result<bool> {
    stream.get_mut().write_all(request).await?;
    let mut status = String::new();
    if stream.read_line(&mut status).await? == 0 {
        bail!("the connection closed");
    }
    let length = read_head(stream).await?;
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await?;
    Ok(status.contains(" 200 "))
}

/// Reads header lines to the blank line; returns Content-Length.
pub(crate) async fn read_head(stream: &mut BufReader<TcpStream>) -> anyhow::Result<usize> {
    let mut length = 0;
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await? == 0 {
            bail!("the connection closed mid-head");
        }
        if line == "\r\n" {
            return Ok(length);
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse()?;
        }
    }
}

/// The runtime a load run drives its clients from: two workers, as the machine has cores.
pub(crate) fn bench_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// `cairn serve` on a free loopback port over `data_dir`, keeping every event, forwarding
/// to `upstream_address`: what every load run starts, before its own flags.
pub(crate) fn serve_command(
    cairn_bin: &Path,
    data_dir: &Path,
    upstream_address: &str,
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(cairn_bin);
    command
        .args(["serve", "--data-dir"])
        .arg(data_dir)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--retention-days",
            "0",
            "--upstream",
        ])
        .arg(format!("http://{upstream_address}"));
    command
}

/// Starts [`serve_upstream`] on a free loopback port; its address.
pub(crate) async fn start_fast_upstream() -> anyhow::Result<String> {
    let upstream = TcpListener::bind("127.0.0.1:0").await?;
    let address = upstream.local_addr()?.to_string();
    tokio::spawn(serve_upstream(upstream));
    Ok(address)
}

/// The fast upstream: answers every request on a connection with `{}` at once.
pub(crate) async fn serve_upstream(listener: TcpListener) {
    let counter = Arc::new(AtomicU64::new(0));
    while let Ok((stream, _)) = listener.accept().await {
        let _ = stream.set_nodelay(true);
        let counter = counter.clone();
        tokio::spawn(async move {
            let mut stream = BufReader::new(stream);
            loop {
                let mut request_line = String::new();
                match stream.read_line(&mut request_line).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                let Ok(length) = read_head(&mut stream).await else {
                    return;
                };
                let mut body = vec![0u8; length];
                if stream.read_exact(&mut body).await.is_err() {
                    return;
                }
                let id = counter.fetch_add(1, Ordering::Relaxed);
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\nx-amzn-RequestId: 00000000-0000-4000-8000-{id:012x}\r\ncontent-length: 2\r\n\r\n{{}}"
                );
                if stream
                    .get_mut()
                    .write_all(response.as_bytes())
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
    }
}
