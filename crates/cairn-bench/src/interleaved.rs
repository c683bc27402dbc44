//! `cairn-bench interleaved`: the gateway's throughput with one feature against without it,
//! measured as interleaved windows in one run: one logging trail against none
//! (`--compare trail`), or the transparency log on against off (`--compare transparency`).
//! Two `cairn serve` processes, alike in every setting (embedded S3, 1 s delivery cadence)
//! but the one compared, take turns under the same load, ABBA order, so a machine that
//! speeds up or slows down during the run weighs on both sides alike; separate runs minutes
//! apart on this machine differ by more than either feature costs. After each window a
//! pause lets background work (delivery, checkpoints) finish the window's last second, so it
//! does not run into the other side's window.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::gateway::{
    bench_runtime, cpu_per_call, load, read_credentials, read_head, serve_command, signed_request,
    start_fast_upstream, start_listening, start_trail, Load,
};
use crate::signed_json_request;

/// What the two sides differ in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Compared {
    /// No trail, against one multi-region trail logging every call.
    Trail,
    /// The transparency log off, against on (a checkpoint a second).
    Transparency,
}

pub struct InterleavedRun {
    pub compare: Compared,
    pub cairn_bin: PathBuf,
    pub data_dir: PathBuf,
    pub seconds: u64,
    pub rounds: usize,
    pub clients: usize,
}

/// Long enough for a 1 s cadence to deliver the window's last events.
const PAUSE: Duration = Duration::from_secs(3);

pub fn run(settings: &InterleavedRun) -> anyhow::Result<()> {
    bench_runtime()?.block_on(async {
        let upstream_address = start_fast_upstream().await?;
        let names = match settings.compare {
            Compared::Trail => ["none", "trail"],
            Compared::Transparency => ["off", "on"],
        };
        let mut sides = Vec::new();
        for name in names {
            let data_dir = settings.data_dir.join(name);
            std::fs::create_dir_all(&data_dir)?;
            let mut command = serve_command(&settings.cairn_bin, &data_dir, &upstream_address);
            command.args(["--embedded-s3", "--delivery-interval-secs", "1"]);
            if settings.compare == Compared::Transparency && name == "off" {
                command.args(["--checkpoint-interval-millis", "0"]);
            }
            let (child, address) = start_listening(command).await?;
            let (key, secret) = read_credentials(&data_dir)?;
            sides.push((child, address, key, secret));
        }
        if settings.compare == Compared::Trail {
            let (_, address, key, secret) = &sides[1];
            start_trail(address, key, secret).await?;
        }
        println!(
            "KMS TagResource through the gateway, {} clients, {} s windows (after 1 s warm-up), {} rounds in ABBA order",
            settings.clients, settings.seconds, settings.rounds
        );
        let [without, with] = names;
        println!(
            "{:>5} {:>12} {:>12} {:>8} {:>10} {:>10}",
            "round",
            format!("{without}/s"),
            format!("{with}/s"),
            "ratio",
            format!("{without} cpu"),
            format!("{with} cpu")
        );
        let duration = Duration::from_secs(settings.seconds);
        let mut ratios = Vec::new();
        let mut totals = [0.0f64; 2];
        let mut last_with_window_end = 0.0;
        for round in 0..settings.rounds {
            let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            let mut loads: [Option<Load>; 2] = [None, None];
            for side in order {
                let (child, address, key, secret) = &sides[side];
                let request = signed_request(address, key, secret)?;
                let pids: Vec<u32> = child.id().into_iter().collect();
                loads[side] = Some(load(address, request, settings.clients, duration, &pids).await?);
                if side == 1 {
                    last_with_window_end = epoch_secs();
                }
                tokio::time::sleep(PAUSE).await;
            }
            let [Some(without), Some(with)] = loads else {
                bail!("a window did not run");
            };
            let ratio = with.per_second / without.per_second;
            ratios.push(ratio);
            totals[0] += without.per_second;
            totals[1] += with.per_second;
            println!(
                "{:>5} {:>12.0} {:>12.0} {:>7.1}% {:>10} {:>10}",
                round + 1,
                without.per_second,
                with.per_second,
                100.0 * ratio,
                cpu_per_call(without.server_cpu_per_call),
                cpu_per_call(with.server_cpu_per_call),
            );
        }
        ratios.sort_by(f64::total_cmp);
        let median = match ratios.len() {
            0 => bail!("no rounds"),
            n if n % 2 == 1 => ratios[n / 2],
            n => (ratios[n / 2 - 1] + ratios[n / 2]) / 2.0,
        };
        println!(
            "median ratio {:.1}%, all windows together {:.1}% ({:.0} against {:.0} calls/s), lowest round {:.1}%",
            100.0 * median,
            100.0 * totals[1] / totals[0],
            totals[1] / settings.rounds as f64,
            totals[0] / settings.rounds as f64,
            100.0 * ratios[0],
        );
        if settings.compare == Compared::Trail {
            let (_, address, key, secret) = &sides[1];
            let status = trail_status(address, key, secret).await?;
            println!("the trail's GetTrailStatus after the run: {status}");
            let answer: serde_json::Value = serde_json::from_str(&status)?;
            let delivered_secs = answer["LatestDeliveryTime"].as_f64().unwrap_or(0.0);
            // The trail's last window's calls are delivered after it ends: a latest delivery
            // from before then means delivery fell behind during the run.
            if answer.get("LatestDeliveryError").is_some()
                || delivered_secs < last_with_window_end
            {
                bail!("the trail did not deliver to the end of the run: {status}");
            }
        }
        for (mut child, ..) in sides {
            child.kill().await.ok();
        }
        anyhow::Ok(())
    })
}

fn epoch_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

/// The trail's GetTrailStatus answer, as text: proof that it delivered during the run.
async fn trail_status(host: &str, key: &str, secret: &str) -> anyhow::Result<String> {
    let request = signed_json_request(
        host,
        "cloudtrail",
        "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.GetTrailStatus",
        br#"{"Name":"bench"}"#,
        key,
        secret,
    )?;
    let mut stream = BufReader::new(TcpStream::connect(host).await?);
    stream.get_mut().write_all(&request).await?;
    let mut status_line = String::new();
    stream.read_line(&mut status_line).await?;
    let length = read_head(&mut stream).await?;
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}
