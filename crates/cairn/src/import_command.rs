//! `cairn import`: the terminal front end of cairn-import (progress bar, report).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use cairn_import::{collect_files, import_files, FileReport, ImportOptions, Progress};
use cairn_store::retention;
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::Settings;

struct Bar(ProgressBar);

impl Progress for Bar {
    fn file_started(&self, path: &Path) {
        self.0.set_message(path.display().to_string());
    }

    fn bytes_read(&self, bytes: u64) {
        self.0.inc(bytes);
    }
}

/// Returns whether every file was read (records may still have been skipped).
pub fn run(
    settings: &Settings,
    paths: &[PathBuf],
    max_decompressed_bytes: u64,
    json: bool,
) -> anyhow::Result<bool> {
    let files = collect_files(paths)?;
    let total_bytes: u64 = files
        .iter()
        .filter_map(|file| std::fs::metadata(file).ok())
        .map(|metadata| metadata.len())
        .sum();
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::new(total_bytes)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let store = crate::event_store::open(
        &settings.store,
        &settings.data_dir,
        crate::event_store::Purpose::BulkLoad,
    )?;
    let now = chrono_now_millis();
    let retention_days = retention::settle(store.as_ref(), settings.retention_days, now)?;
    let options = ImportOptions {
        max_decompressed_bytes,
        retention_cutoff_millis: retention::cutoff_millis(retention_days, now),
        ..ImportOptions::default()
    };
    let started = std::time::Instant::now();
    let reports = import_files(store, &files, &options, &Bar(bar.clone()))?;
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    if json {
        println!("{}", serde_json_report(&reports));
    } else {
        print_text_report(&reports, elapsed);
    }
    Ok(reports.iter().all(|report| report.error.is_none()))
}

fn chrono_now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or(0)
}

fn print_text_report(reports: &[FileReport], elapsed: std::time::Duration) {
    let (mut records, mut imported, mut skipped, mut rejected) = (0, 0, 0, 0);
    for report in reports {
        records += report.records;
        imported += report.imported;
        skipped += report.skipped_total();
        match &report.error {
            Some(error) => {
                rejected += 1;
                println!(
                    "{}: rejected, nothing imported: {error}",
                    report.path.display()
                );
            }
            None => {
                let reasons: Vec<String> = report
                    .skipped
                    .iter()
                    .map(|(reason, count)| format!("{count} {reason}"))
                    .collect();
                let reasons = if reasons.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", reasons.join("; "))
                };
                println!(
                    "{}: {} records, {} imported, {} skipped{reasons}",
                    report.path.display(),
                    report.records,
                    report.imported,
                    report.skipped_total()
                );
            }
        }
    }
    let rate = imported as f64 / elapsed.as_secs_f64().max(1e-9);
    println!(
        "total: {} files, {records} records, {imported} imported, {skipped} skipped, {rejected} files rejected, {:.2}s ({rate:.0} events/s)",
        reports.len(),
        elapsed.as_secs_f64()
    );
}

fn serde_json_report(reports: &[FileReport]) -> String {
    let files: Vec<serde_json::Value> = reports
        .iter()
        .map(|report| {
            serde_json::json!({
                "path": report.path.display().to_string(),
                "records": report.records,
                "imported": report.imported,
                "skipped": report.skipped,
                "error": report.error,
            })
        })
        .collect();
    serde_json::json!({ "files": files }).to_string()
}
