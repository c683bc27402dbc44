//! cairn-import owns loading existing CloudTrail logs into the event history: `.json` and
//! `.json.gz` files holding `{"Records":[...]}`, bare JSON arrays, or one record per line;
//! directories walked recursively as a trail lays them out.
//!
//! Rules it keeps: a file that is not well-formed (bad JSON, truncated gzip, over the
//! decompressed-size bound) adds nothing to the store; a record that is well-formed JSON but
//! not a valid CloudTrail record is skipped and counted with its reason; importing the same
//! events twice adds nothing (the store is idempotent by eventID). Memory stays bounded: a
//! file larger than [`IN_MEMORY_LIMIT`] decompressed is checked in one streaming pass and
//! loaded in a second, in batches bounded by count and by record bytes.
//! The importer never changes or deletes a stored event.

mod reader;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_model::IndexedEvent;
use cairn_store::{EventStore, PendingAppend, StoreError};

pub use reader::{RecordSource, IN_MEMORY_LIMIT};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// A file whose decompressed content is larger than this is rejected whole.
    pub max_decompressed_bytes: u64,
    /// Records older than this (epoch ms) are skipped: retention would sweep them at once.
    pub retention_cutoff_millis: Option<i64>,
    pub batch_size: usize,
    /// Record bytes a batch holds at most, whatever its count: the batches queued and
    /// being written are bounded by count and by this, so large records cannot fill memory
    /// while the store's writer is slow.
    pub batch_bytes: usize,
    /// Files up to this many decompressed bytes are parsed once from memory.
    pub in_memory_limit: u64,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            max_decompressed_bytes: 4 << 30,
            retention_cutoff_millis: None,
            batch_size: 4096,
            batch_bytes: 4 << 20,
            in_memory_limit: IN_MEMORY_LIMIT,
        }
    }
}

/// What happened to one file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileReport {
    pub path: PathBuf,
    pub records: u64,
    pub imported: u64,
    /// Skip reason → how many records.
    pub skipped: BTreeMap<String, u64>,
    /// Set when the file as a whole was rejected; nothing from it was stored.
    pub error: Option<String>,
}

impl FileReport {
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }
}

/// Told about progress; a terminal front end draws a bar from it.
pub trait Progress: Sync {
    fn file_started(&self, _path: &Path) {}
    fn bytes_read(&self, _bytes: u64) {}
}

pub struct NoProgress;
impl Progress for NoProgress {}

const DUPLICATE: &str = "already in the event history (same eventID)";

/// The files `paths` name: files as given, directories walked for `.json`, `.json.gz`,
/// `.jsonl` and `.ndjson` files in name order. Digest files are left out (they hold hashes,
/// not events).
pub fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ImportError> {
    let mut files = Vec::new();
    for path in paths {
        let metadata = std::fs::metadata(path).map_err(|source| ImportError::Io {
            path: path.clone(),
            source,
        })?;
        if metadata.is_dir() {
            walk(path, &mut files)?;
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), ImportError> {
    let io = |source| ImportError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(io)?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let path = entry.path();
        let file_type = entry.file_type().map_err(io)?;
        if file_type.is_dir() {
            if entry.file_name() != "CloudTrail-Digest" {
                walk(&path, files)?;
            }
        } else if file_type.is_file() && is_log_file_name(&path) {
            files.push(path);
        }
    }
    Ok(())
}

fn is_log_file_name(path: &Path) -> bool {
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("");
    let log_like = [
        ".json",
        ".json.gz",
        ".jsonl",
        ".jsonl.gz",
        ".ndjson",
        ".ndjson.gz",
    ]
    .iter()
    .any(|suffix| name.ends_with(suffix));
    log_like && !name.contains("_CloudTrail-Digest_")
}

/// Imports `files` into `store`, in order; returns one report per file.
pub fn import_files(
    store: Arc<dyn EventStore>,
    files: &[PathBuf],
    options: &ImportOptions,
    progress: &dyn Progress,
) -> Result<Vec<FileReport>, ImportError> {
    let (batches, received) = crossbeam_channel::bounded::<Batch>(8);
    // Appends run on their own thread so that parsing overlaps with writing. One thread, so
    // that when two files hold the same event the report credits the first file, always
    // (two appenders measured no faster: the store's single writer is the limit). Batches
    // waiting in the channel are appended together, so a directory of small files does not
    // pay one fsync per file.
    let target = (options.batch_size * 16, options.batch_bytes * 4);
    let appender_store = Arc::clone(&store);
    let appender =
        std::thread::spawn(move || append_batches(appender_store.as_ref(), &received, target));
    let mut reports = Vec::with_capacity(files.len());
    let mut send_failed = false;
    for (file_index, path) in files.iter().enumerate() {
        progress.file_started(path);
        let mut report = FileReport {
            path: path.clone(),
            ..FileReport::default()
        };
        let outcome = import_one_file(path, options, progress, &mut report, |batch| {
            if batches.send((file_index, batch)).is_err() {
                send_failed = true;
            }
        });
        if let Err(message) = outcome {
            report.error = Some(message);
            report.records = 0;
            report.skipped.clear();
        }
        reports.push(report);
        if send_failed {
            break;
        }
    }
    drop(batches);
    let counts = appender
        .join()
        .map_err(|_| StoreError::Corrupt("the import appender panicked".into()))??;
    // Nothing is reported imported before it is durable.
    store.flush()?;
    for (file_index, inserted, duplicates) in counts {
        let report = &mut reports[file_index];
        report.imported += inserted;
        if duplicates > 0 {
            *report.skipped.entry(DUPLICATE.to_owned()).or_default() += duplicates;
        }
    }
    Ok(reports)
}

type Batch = (usize, Vec<IndexedEvent>);

/// Appends batches as they arrive, several at a time, keeping [`IN_FLIGHT`] groups handed
/// to the store so that preparing one (the store compresses records on this thread) overlaps
/// with writing the previous one. A group ends at `target` (events, record bytes). Returns
/// (file, inserted, duplicates) for each batch.
fn append_batches(
    store: &dyn EventStore,
    received: &crossbeam_channel::Receiver<Batch>,
    target: (usize, usize),
) -> Result<Vec<(usize, u64, u64)>, StoreError> {
    let mut counts = Vec::new();
    let mut in_flight: std::collections::VecDeque<(Vec<(usize, usize)>, PendingAppend)> =
        std::collections::VecDeque::new();
    let settle = |sizes: Vec<(usize, usize)>,
                  pending: PendingAppend,
                  counts: &mut Vec<(usize, u64, u64)>| {
        let outcome = pending.wait()?;
        let mut flags = outcome.inserted.into_iter();
        for (file_index, size) in sizes {
            let inserted = flags
                .by_ref()
                .take(size)
                .filter(|inserted| *inserted)
                .count() as u64;
            counts.push((file_index, inserted, size as u64 - inserted));
        }
        Ok::<(), StoreError>(())
    };
    while let Ok(first) = received.recv() {
        let mut pending = (first.1.len(), record_bytes(&first.1));
        let mut group = vec![first];
        while pending.0 < target.0 && pending.1 < target.1 {
            match received.try_recv() {
                Ok(more) => {
                    pending = (pending.0 + more.1.len(), pending.1 + record_bytes(&more.1));
                    group.push(more);
                }
                Err(_) => break,
            }
        }
        let sizes: Vec<(usize, usize)> = group
            .iter()
            .map(|(file, batch)| (*file, batch.len()))
            .collect();
        let events: Vec<IndexedEvent> = group.into_iter().flat_map(|(_, batch)| batch).collect();
        in_flight.push_back((sizes, store.submit_imported(events)?));
        if in_flight.len() >= IN_FLIGHT {
            if let Some((sizes, pending)) = in_flight.pop_front() {
                settle(sizes, pending, &mut counts)?;
            }
        }
    }
    while let Some((sizes, pending)) = in_flight.pop_front() {
        settle(sizes, pending, &mut counts)?;
    }
    Ok(counts)
}

const IN_FLIGHT: usize = 2;

fn record_bytes(events: &[IndexedEvent]) -> usize {
    events.iter().map(|event| event.record_json.len()).sum()
}

/// Parses one file and hands its valid records on in batches. Returns the file-level error
/// when the file is not well-formed; in that case no batch was handed on.
fn import_one_file(
    path: &Path,
    options: &ImportOptions,
    progress: &dyn Progress,
    report: &mut FileReport,
    mut send: impl FnMut(Vec<IndexedEvent>),
) -> Result<(), String> {
    let source = RecordSource::open(
        path,
        options.max_decompressed_bytes,
        options.in_memory_limit,
        progress,
    )?;
    let mut batch = Vec::with_capacity(options.batch_size);
    let convert = |json: &[u8], report: &mut FileReport| {
        report.records += 1;
        match to_indexed_event(json, options.retention_cutoff_millis) {
            Ok(event) => Some(event),
            Err(reason) => {
                *report.skipped.entry(reason).or_default() += 1;
                None
            }
        }
    };
    match source {
        RecordSource::InMemory(content) => {
            // Parse everything before sending anything: a syntax error anywhere in the file
            // must leave the store unchanged.
            let mut events = Vec::new();
            reader::for_each_record_in(&content, |json| {
                events.extend(convert(json, report));
            })?;
            for chunk in events.chunks(options.batch_size) {
                send(chunk.to_vec());
            }
        }
        RecordSource::Streaming => {
            reader::check_well_formed(path, options.max_decompressed_bytes)?;
            let reader = reader::open_decompressed(path, options.max_decompressed_bytes, progress)?;
            let mut batch_bytes = 0;
            reader::for_each_record(reader, |json| {
                if let Some(event) = convert(json, report) {
                    batch_bytes += event.record_json.len();
                    batch.push(event);
                    if batch.len() >= options.batch_size || batch_bytes >= options.batch_bytes {
                        send(std::mem::take(&mut batch));
                        batch_bytes = 0;
                    }
                }
            })?;
            if !batch.is_empty() {
                send(batch);
            }
        }
    }
    Ok(())
}

/// What the importer makes of a log file's bytes, gzip or not, with no file and no store:
/// for each record, the event it would be stored as or why it would be skipped; or why the
/// whole file would be rejected. Every byte is untrusted (the fuzzer's entry point), and
/// decompressed content past `max_decompressed` bytes rejects the file.
pub fn read_log_bytes(
    bytes: &[u8],
    max_decompressed: u64,
) -> Result<Vec<Result<IndexedEvent, String>>, String> {
    let mut reader = reader::decompressed(std::io::Cursor::new(bytes), max_decompressed)?;
    let mut content = Vec::new();
    std::io::Read::read_to_end(&mut reader, &mut content)
        .map_err(|error| format!("the file is corrupt: {error}"))?;
    let mut events = Vec::new();
    reader::for_each_record_in(&content, |json| events.push(to_indexed_event(json, None)))?;
    Ok(events)
}

/// The record is kept as the exact text the file holds (every field, in its order); only the
/// indexed fields are read out of it.
fn to_indexed_event(json: &[u8], retention_cutoff: Option<i64>) -> Result<IndexedEvent, String> {
    let text = std::str::from_utf8(json).map_err(|error| format!("not UTF-8 text: {error}"))?;
    let event = IndexedEvent::from_json_text(text.to_owned()).map_err(|error| error.to_string())?;
    if let Some(cutoff) = retention_cutoff {
        if event.event_time_millis < cutoff {
            return Err("older than the retention window".to_owned());
        }
    }
    Ok(event)
}

#[cfg(test)]
mod tests;
