//! `cairn-bench ingest`: durable ingest through the API on SQLite against PostgreSQL, in one
//! run. The same signed KMS calls go through `cairn serve --upstream` to a trivial fast
//! upstream, once per backend; each call is answered only after its event is committed.
//! CPU per event counts Cairn's own process and, on PostgreSQL, every `postgres` process of
//! the machine (the database's work is part of what an event costs).

use std::path::PathBuf;
use std::time::Duration;

use crate::gateway::{
    bench_runtime, cpu_per_call, load, micros, read_credentials, serve_command, signed_request,
    start_fast_upstream, start_listening,
};
use crate::percentile;

pub struct IngestRun {
    pub cairn_bin: PathBuf,
    pub data_dir: PathBuf,
    pub postgres: String,
    pub seconds: u64,
    pub concurrency: Vec<usize>,
}

/// The pids of the machine's PostgreSQL server processes.
fn postgres_pids() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|name| name.trim() == "postgres")
        })
        .collect()
}

pub fn run(settings: &IngestRun) -> anyhow::Result<()> {
    bench_runtime()?.block_on(async {
        let upstream_address = start_fast_upstream().await?;
        let schema = format!("cairn_bench_ingest_{}", std::process::id());
        let separator = if settings.postgres.contains('?') { '&' } else { '?' };
        let backends = [
            ("sqlite", "sqlite".to_owned()),
            (
                "postgres",
                format!("{}{separator}schema={schema}", settings.postgres),
            ),
        ];
        println!(
            "\nKMS TagResource through cairn serve, {} s per run, keep-alive connections; \
             cpu/event = Cairn's process (+ PostgreSQL's processes)",
            settings.seconds
        );
        println!(
            "{:>9} {:>7} {:>9} {:>9} {:>9} {:>11} {:>10} {:>11}",
            "store", "clients", "events/s", "p50", "p99", "cairn cpu", "db cpu", "cpu/event"
        );
        let mut throughput: Vec<(usize, f64, f64)> = Vec::new();
        for (name, store) in &backends {
            let data_dir = settings.data_dir.join(name);
            std::fs::create_dir_all(&data_dir)?;
            let mut command = serve_command(&settings.cairn_bin, &data_dir, &upstream_address);
            command.arg("--store").arg(store);
            let (mut cairn, address) = start_listening(command).await?;
            let (key, secret) = read_credentials(&data_dir)?;
            let cairn_pid: Vec<u32> = cairn.id().into_iter().collect();
            let database: Vec<u32> = if *name == "postgres" {
                postgres_pids()
            } else {
                Vec::new()
            };
            for &clients in &settings.concurrency {
                let request = signed_request(&address, &key, &secret)?;
                let duration = Duration::from_secs(settings.seconds);
                let own = load(&address, request.clone(), clients, duration, &cairn_pid).await?;
                // The same load again, with the database's processes measured.
                let all = [cairn_pid.clone(), database.clone()].concat();
                let with_db = load(&address, request, clients, duration, &all).await?;
                let db_cpu = match (with_db.server_cpu_per_call, own.server_cpu_per_call) {
                    (Some(total), Some(own)) if !database.is_empty() => {
                        Some(total.saturating_sub(own))
                    }
                    _ => None,
                };
                println!(
                    "{:>9} {:>7} {:>9.0} {:>9} {:>9} {:>11} {:>10} {:>11}",
                    name,
                    clients,
                    own.per_second,
                    micros(percentile(&own.latencies, 0.5)),
                    micros(percentile(&own.latencies, 0.99)),
                    cpu_per_call(own.server_cpu_per_call),
                    cpu_per_call(db_cpu),
                    cpu_per_call(if database.is_empty() {
                        own.server_cpu_per_call
                    } else {
                        with_db.server_cpu_per_call
                    }),
                );
                match throughput.iter_mut().find(|(known, _, _)| *known == clients) {
                    Some(entry) => entry.2 = own.per_second,
                    None => throughput.push((clients, own.per_second, 0.0)),
                }
            }
            cairn.kill().await.ok();
        }
        for (clients, sqlite, postgres) in throughput {
            println!(
                "{clients:>3} clients: PostgreSQL ingests {:.1}% of SQLite's events/s (goal >= 50%)",
                100.0 * postgres / sqlite
            );
        }
        let _ = std::process::Command::new("psql")
            .arg(&settings.postgres)
            .args(["-q", "-c", &format!("DROP SCHEMA IF EXISTS {schema} CASCADE")])
            .status();
        anyhow::Ok(())
    })
}
