//! The embedded backend: one SQLite database in WAL mode.
//!
//! One writer thread owns the write connection. Appends queue to it; it takes everything
//! queued, writes it in one transaction and commits with `synchronous=FULL`, so one fsync of
//! the WAL makes a whole group durable (group commit). Readers use their own connections and
//! never wait for the writer. A second process (`cairn import` next to a running server)
//! writes through SQLite's own file locks.
//!
//! Lookups go through one narrow table, `lookup(attr, value, category, event_time, seq)`,
//! which serves every lookup attribute but EventId with a single index range scan, newest
//! first. EventId goes through `events_by_key`, an index on a 64-bit hash of the eventID
//! (the text is compared too): eventIDs are random, so every import batch touches pages all
//! over that index, and an 8-byte key keeps it a third of the size of one on the UUID text.
//! The same index makes appends idempotent.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use cairn_model::{EventCategory, IndexedEvent, LookupAttributeKey};
use crossbeam_channel::{Receiver, Sender};
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::{
    AppendOutcome, AppendReply, EventStore, LookupPage, LookupQuery, PendingAppend, StoreError,
    StoredEvent,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq           INTEGER PRIMARY KEY,
    event_key     INTEGER NOT NULL,
    event_id      TEXT    NOT NULL,
    event_time    INTEGER NOT NULL,
    category      INTEGER NOT NULL,
    record        BLOB    NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_key ON events(event_key);
CREATE INDEX IF NOT EXISTS events_by_time ON events(category, event_time, seq);
CREATE TABLE IF NOT EXISTS lookup (
    attr       INTEGER NOT NULL,
    value      TEXT    NOT NULL,
    category   INTEGER NOT NULL,
    event_time INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    PRIMARY KEY (attr, value, category, event_time, seq)
) WITHOUT ROWID;
";

/// The indexed fields (name, source, user, key, resources) are not stored twice: a read
/// rebuilds them from the record, which costs microseconds and saves a quarter of the bytes
/// every append writes.
const EVENT_COLUMNS: &str = "e.seq, e.event_id, e.event_time, e.category, e.record";

/// How long a write waits for another process (an import) holding the database lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// Records are stored zstd-compressed: they are four fifths of the bytes, compress about
/// fourfold, and fewer bytes is fewer WAL frames to write and checkpoint. Compression runs in
/// `append`, on the caller's thread, so the single writer thread does not pay for it.
const RECORD_COMPRESSION_LEVEL: i32 = 1;

struct PreparedEvent {
    event: IndexedEvent,
    compressed_record: Vec<u8>,
}

struct AppendRequest {
    events: Vec<PreparedEvent>,
    reply: AppendReply,
}

/// When appends become durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// Every commit fsyncs the WAL before `append` returns: for serving, where each event's
    /// call is answered right after.
    EveryAppend,
    /// Commits are consistent but not yet durable until [`EventStore::flush`]: for bulk
    /// loading, where nothing is acknowledged before the end, and per-commit fsyncs of a
    /// hundred megabytes would leave the CPU idle.
    OnFlush,
}

pub struct SqliteEventStore {
    path: PathBuf,
    sync_mode: SyncMode,
    writer: Mutex<Option<Sender<AppendRequest>>>,
    writer_thread: Mutex<Option<thread::JoinHandle<()>>>,
    readers: Mutex<Vec<Connection>>,
}

impl SqliteEventStore {
    /// Opens (creating if needed) `events.db` in `data_dir`, durable on every append.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(data_dir, SyncMode::EveryAppend)
    }

    pub fn open_with(data_dir: &Path, sync_mode: SyncMode) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir)?;
        let path = data_dir.join("events.db");
        let connection = open_connection(&path)?;
        connection.execute_batch(SCHEMA)?;
        if sync_mode == SyncMode::OnFlush {
            // WAL with NORMAL stays consistent through a crash; it only defers the fsync.
            connection.execute_batch("PRAGMA synchronous=NORMAL;")?;
        }
        let (sender, receiver) = crossbeam_channel::unbounded();
        let writer_thread = thread::Builder::new()
            .name("cairn-store-writer".into())
            .spawn(move || run_writer(connection, receiver))?;
        Ok(Self {
            path,
            sync_mode,
            writer: Mutex::new(Some(sender)),
            writer_thread: Mutex::new(Some(writer_thread)),
            readers: Mutex::new(Vec::new()),
        })
    }

    pub fn database_path(&self) -> &Path {
        &self.path
    }

    /// Bytes the database occupies on disk (main file plus WAL).
    pub fn disk_bytes(&self) -> Result<u64, StoreError> {
        let mut total = std::fs::metadata(&self.path)?.len();
        let wal = self.path.with_extension("db-wal");
        if let Ok(metadata) = std::fs::metadata(wal) {
            total += metadata.len();
        }
        Ok(total)
    }

    /// Folds the WAL into the main file, so that size figures and backups see one file.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.with_reader(|connection| {
            connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            Ok(())
        })
    }

    fn with_reader<T>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = self.readers.lock().map_err(|_| poisoned())?.pop();
        let connection = match pooled {
            Some(connection) => connection,
            None => open_connection(&self.path)?,
        };
        let result = work(&connection);
        if let Ok(mut readers) = self.readers.lock() {
            readers.push(connection);
        }
        result
    }
}

impl Drop for SqliteEventStore {
    fn drop(&mut self) {
        if let Ok(mut writer) = self.writer.lock() {
            writer.take();
        }
        if let Ok(mut handle) = self.writer_thread.lock() {
            if let Some(handle) = handle.take() {
                let _ = handle.join();
            }
        }
    }
}

fn poisoned() -> StoreError {
    StoreError::Corrupt("a store lock was poisoned by a panic".into())
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let connection = Connection::open(path)?;
    connection.busy_timeout(BUSY_TIMEOUT)?;
    connection.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))?;
    // FULL makes every commit fsync the WAL: an acknowledged event survives a crash.
    // Index pages keyed by eventID and lookup value are hit at random; a 256 MiB page cache (an upper bound, not an allocation)
    // keeps them in memory instead of re-reading them for every batch.
    connection.execute_batch(
        "PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF; PRAGMA cache_size=-65536; \
         PRAGMA wal_autocheckpoint=65536;",
    )?;
    Ok(connection)
}

fn run_writer(mut connection: Connection, requests: Receiver<AppendRequest>) {
    while let Ok(first) = requests.recv() {
        let mut group = vec![first];
        while let Ok(more) = requests.try_recv() {
            group.push(more);
        }
        match write_group(&mut connection, &group) {
            Ok(outcomes) => {
                for (request, outcome) in group.into_iter().zip(outcomes) {
                    request.reply.send(Ok(outcome));
                }
            }
            Err(error) => {
                tracing::error!(%error, requests = group.len(), "event store write failed");
                let message = error.to_string();
                for request in group {
                    request
                        .reply
                        .send(Err(StoreError::Corrupt(format!("write failed: {message}"))));
                }
            }
        }
    }
}

fn write_group(
    connection: &mut Connection,
    group: &[AppendRequest],
) -> Result<Vec<AppendOutcome>, StoreError> {
    let transaction =
        connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut outcomes = Vec::with_capacity(group.len());
    {
        let mut already_stored = transaction
            .prepare_cached("SELECT 1 FROM events WHERE event_key = ?1 AND event_id = ?2")?;
        let mut insert_event = transaction.prepare_cached(
            "INSERT INTO events (event_key, event_id, event_time, category, record) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let mut insert_lookup = transaction.prepare_cached(
            "INSERT OR IGNORE INTO lookup (attr, value, category, event_time, seq) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        // Lookup rows are gathered for the whole group and inserted in primary-key order:
        // the same rows, but each index page is visited once, in order, instead of once per
        // event at random.
        let mut lookup_rows: Vec<(i64, &str, i64, i64, i64)> = Vec::new();
        for request in group {
            let mut inserted = Vec::with_capacity(request.events.len());
            for prepared in &request.events {
                let event = &prepared.event;
                let key = event_key(&event.event_id);
                if already_stored.exists(params![key, event.event_id])? {
                    inserted.push(false);
                    continue;
                }
                let changed = insert_event.execute(params![
                    key,
                    event.event_id,
                    event.event_time_millis,
                    event.category.code(),
                    prepared.compressed_record,
                ])?;
                if changed == 1 {
                    let seq = transaction.last_insert_rowid();
                    for (key, value) in lookup_entries(event) {
                        lookup_rows.push((
                            attr_code(key),
                            value,
                            event.category.code(),
                            event.event_time_millis,
                            seq,
                        ));
                    }
                }
                inserted.push(changed == 1);
            }
            outcomes.push(AppendOutcome { inserted });
        }
        lookup_rows.sort_unstable();
        for (attr, value, category, event_time, seq) in lookup_rows {
            insert_lookup.execute(params![attr, value, category, event_time, seq])?;
        }
    }
    transaction.commit()?;
    Ok(outcomes)
}

/// Every (attribute, value) pair an event is found by, EventId excepted.
fn lookup_entries(event: &IndexedEvent) -> Vec<(LookupAttributeKey, &str)> {
    let mut entries = Vec::with_capacity(6 + 2 * event.resources.len());
    fn push<'a>(
        entries: &mut Vec<(LookupAttributeKey, &'a str)>,
        key: LookupAttributeKey,
        value: Option<&'a String>,
    ) {
        if let Some(value) = value {
            entries.push((key, value.as_str()));
        }
    }
    push(
        &mut entries,
        LookupAttributeKey::EventName,
        event.event_name.as_ref(),
    );
    push(
        &mut entries,
        LookupAttributeKey::EventSource,
        event.event_source.as_ref(),
    );
    push(
        &mut entries,
        LookupAttributeKey::Username,
        event.username.as_ref(),
    );
    push(
        &mut entries,
        LookupAttributeKey::AccessKeyId,
        event.access_key_id.as_ref(),
    );
    for resource in &event.resources {
        push(
            &mut entries,
            LookupAttributeKey::ResourceType,
            resource.resource_type.as_ref(),
        );
        push(
            &mut entries,
            LookupAttributeKey::ResourceName,
            resource.resource_name.as_ref(),
        );
    }
    if let Some(read_only) = event.read_only {
        entries.push((
            LookupAttributeKey::ReadOnly,
            if read_only { "true" } else { "false" },
        ));
    }
    entries
}

/// FNV-1a over the eventID: stable across versions and platforms (it is stored), cheap, and
/// only a pre-filter, since the eventID text is compared as well.
fn event_key(event_id: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in event_id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash as i64
}

fn attr_code(key: LookupAttributeKey) -> i64 {
    match key {
        LookupAttributeKey::EventId => 0,
        LookupAttributeKey::EventName => 1,
        LookupAttributeKey::ReadOnly => 2,
        LookupAttributeKey::Username => 3,
        LookupAttributeKey::ResourceType => 4,
        LookupAttributeKey::ResourceName => 5,
        LookupAttributeKey::EventSource => 6,
        LookupAttributeKey::AccessKeyId => 7,
    }
}

thread_local! {
    // A zstd context is costly to create (it allocates its window); reuse one per thread.
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

fn compress_record(json: &str) -> std::io::Result<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Compressor::new(RECORD_COMPRESSION_LEVEL)?);
        }
        match slot.as_mut() {
            Some(compressor) => compressor.compress(json.as_bytes()),
            None => Err(std::io::Error::other("no zstd compressor")),
        }
    })
}

fn decompress_record(compressed: &[u8]) -> rusqlite::Result<String> {
    let conversion = |error: Box<dyn std::error::Error + Send + Sync>| {
        rusqlite::Error::FromSqlConversionFailure(10, rusqlite::types::Type::Blob, error)
    };
    let capacity = zstd::bulk::Decompressor::upper_bound(compressed)
        .ok_or_else(|| conversion("record has no content size".into()))?;
    let bytes = DECOMPRESSOR
        .with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.is_none() {
                *slot = Some(zstd::bulk::Decompressor::new()?);
            }
            match slot.as_mut() {
                Some(decompressor) => decompressor.decompress(compressed, capacity),
                None => Err(std::io::Error::other("no zstd decompressor")),
            }
        })
        .map_err(|error| conversion(Box::new(error)))?;
    String::from_utf8(bytes).map_err(|error| {
        rusqlite::Error::FromSqlConversionFailure(10, rusqlite::types::Type::Blob, Box::new(error))
    })
}

fn stored_event_from_row(row: &Row<'_>) -> rusqlite::Result<StoredEvent> {
    let category_code: i64 = row.get(3)?;
    let record_json = decompress_record(row.get_ref(4)?.as_blob()?)?;
    let mut event = IndexedEvent::from_json_text(record_json).map_err(|error| {
        rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Blob, Box::new(error))
    })?;
    // The columns are authoritative for what the record alone cannot say the same way
    // (an ID derived for a record without eventID, a category fixed at append).
    event.event_id = row.get(1)?;
    event.event_time_millis = row.get(2)?;
    event.category = EventCategory::from_code(category_code).unwrap_or(EventCategory::Management);
    Ok(StoredEvent {
        seq: row.get(0)?,
        event,
    })
}

impl EventStore for SqliteEventStore {
    fn append(&self, events: Vec<IndexedEvent>) -> Result<AppendOutcome, StoreError> {
        self.submit(events)?.wait()
    }

    fn submit(&self, events: Vec<IndexedEvent>) -> Result<PendingAppend, StoreError> {
        if events.is_empty() {
            return Ok(PendingAppend::settled(Ok(AppendOutcome::default())));
        }
        let events = events
            .into_iter()
            .map(|event| {
                let compressed_record = compress_record(&event.record_json)?;
                Ok(PreparedEvent {
                    event,
                    compressed_record,
                })
            })
            .collect::<Result<Vec<_>, std::io::Error>>()?;
        let (reply, pending) = PendingAppend::channel();
        {
            let writer = self.writer.lock().map_err(|_| poisoned())?;
            let writer = writer.as_ref().ok_or(StoreError::WriterStopped)?;
            writer
                .send(AppendRequest { events, reply })
                .map_err(|_| StoreError::WriterStopped)?;
        }
        Ok(pending)
    }

    fn lookup(&self, query: &LookupQuery) -> Result<LookupPage, StoreError> {
        let category = query.view.category().code();
        let start = query.start_millis.unwrap_or(i64::MIN);
        let end = query.end_millis.unwrap_or(i64::MAX);
        let (after_time, after_seq) = query
            .after
            .map(|cursor| (cursor.event_time_millis, cursor.seq))
            .unwrap_or((i64::MAX, i64::MAX));
        let fetch = query.limit.saturating_add(1) as i64;
        let rows = self.with_reader(|connection| {
            let mut rows = Vec::new();
            match &query.attribute {
                Some(attribute) if attribute.key == LookupAttributeKey::EventId => {
                    let mut statement = connection.prepare_cached(&format!(
                        "SELECT {EVENT_COLUMNS} FROM events e WHERE e.event_key = ?7 \
                         AND e.event_id = ?1 AND e.category = ?2 AND e.event_time BETWEEN ?3 AND ?4 \
                         AND (e.event_time, e.seq) < (?5, ?6)"
                    ))?;
                    let found = statement
                        .query_row(
                            params![
                                attribute.value,
                                category,
                                start,
                                end,
                                after_time,
                                after_seq,
                                event_key(&attribute.value)
                            ],
                            stored_event_from_row,
                        )
                        .optional()?;
                    rows.extend(found);
                }
                Some(attribute) => {
                    let mut statement = connection.prepare_cached(&format!(
                        "SELECT {EVENT_COLUMNS} FROM lookup l JOIN events e ON e.seq = l.seq \
                         WHERE l.attr = ?1 AND l.value = ?2 AND l.category = ?3 \
                         AND l.event_time BETWEEN ?4 AND ?5 AND (l.event_time, l.seq) < (?6, ?7) \
                         ORDER BY l.event_time DESC, l.seq DESC LIMIT ?8"
                    ))?;
                    let found = statement.query_map(
                        params![
                            attr_code(attribute.key),
                            attribute.value,
                            category,
                            start,
                            end,
                            after_time,
                            after_seq,
                            fetch
                        ],
                        stored_event_from_row,
                    )?;
                    for row in found {
                        rows.push(row?);
                    }
                }
                None => {
                    let mut statement = connection.prepare_cached(&format!(
                        "SELECT {EVENT_COLUMNS} FROM events e WHERE e.category = ?1 \
                         AND e.event_time BETWEEN ?2 AND ?3 AND (e.event_time, e.seq) < (?4, ?5) \
                         ORDER BY e.event_time DESC, e.seq DESC LIMIT ?6"
                    ))?;
                    let found = statement.query_map(
                        params![category, start, end, after_time, after_seq, fetch],
                        stored_event_from_row,
                    )?;
                    for row in found {
                        rows.push(row?);
                    }
                }
            }
            Ok(rows)
        })?;
        let mut events = rows;
        let next = if events.len() > query.limit {
            events.truncate(query.limit);
            events.last().map(StoredEvent::cursor)
        } else {
            None
        };
        Ok(LookupPage { events, next })
    }

    fn flush(&self) -> Result<(), StoreError> {
        if self.sync_mode == SyncMode::EveryAppend {
            return Ok(());
        }
        // Every committed frame is in the WAL file (or already checkpointed into the main
        // file): syncing both makes all of it durable.
        let wal = self.path.with_extension("db-wal");
        if wal.exists() {
            std::fs::File::open(&wal)?.sync_all()?;
        }
        std::fs::File::open(&self.path)?.sync_all()?;
        Ok(())
    }

    fn sweep_older_than(&self, cutoff_millis: i64) -> Result<u64, StoreError> {
        // Sweeps run on their own connection in bounded batches so that appends queued
        // behind them wait for one batch at most.
        const BATCH: i64 = 5_000;
        let mut connection = open_connection(&self.path)?;
        let mut removed = 0u64;
        loop {
            let transaction =
                connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let expired: Vec<StoredEvent> = {
                let mut statement = transaction.prepare_cached(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events e WHERE e.event_time < ?1 LIMIT ?2"
                ))?;
                let rows =
                    statement.query_map(params![cutoff_millis, BATCH], stored_event_from_row)?;
                rows.collect::<Result<_, _>>()?
            };
            if expired.is_empty() {
                transaction.commit()?;
                return Ok(removed);
            }
            {
                let mut delete_lookup = transaction.prepare_cached(
                    "DELETE FROM lookup WHERE attr = ?1 AND value = ?2 AND category = ?3 \
                     AND event_time = ?4 AND seq = ?5",
                )?;
                let mut delete_event =
                    transaction.prepare_cached("DELETE FROM events WHERE seq = ?1")?;
                for stored in expired {
                    for (key, value) in lookup_entries(&stored.event) {
                        delete_lookup.execute(params![
                            attr_code(key),
                            value,
                            stored.event.category.code(),
                            stored.event.event_time_millis,
                            stored.seq
                        ])?;
                    }
                    delete_event.execute(params![stored.seq])?;
                    removed += 1;
                }
            }
            transaction.commit()?;
        }
    }

    fn count(&self) -> Result<u64, StoreError> {
        self.with_reader(|connection| {
            let count: i64 =
                connection.query_row("SELECT count(*) FROM events", [], |row| row.get(0))?;
            Ok(count as u64)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::event_store_conformance!(|dir: &std::path::Path| SqliteEventStore::open(dir).unwrap());

    #[test]
    fn lookup_by_attribute_uses_the_lookup_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteEventStore::open(dir.path()).unwrap();
        store
            .with_reader(|connection| {
                let plan: Vec<String> = connection
                    .prepare(
                        "EXPLAIN QUERY PLAN SELECT l.seq FROM lookup l JOIN events e ON e.seq = l.seq \
                         WHERE l.attr = 1 AND l.value = 'x' AND l.category = 0 \
                         AND l.event_time BETWEEN 0 AND 10 AND (l.event_time, l.seq) < (5, 5) \
                         ORDER BY l.event_time DESC, l.seq DESC LIMIT 5",
                    )?
                    .query_map([], |row| row.get::<_, String>(3))?
                    .collect::<Result<_, _>>()?;
                let plan = plan.join("\n");
                assert!(plan.contains("SEARCH l USING PRIMARY KEY"), "{plan}");
                assert!(!plan.contains("TEMP B-TREE"), "{plan}");
                Ok(())
            })
            .unwrap();
    }
}
