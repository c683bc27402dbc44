//! The embedded backend: one SQLite database in WAL mode.
//!
//! One writer thread owns the write connection. Appends queue to it; it takes everything
//! queued, writes it in one transaction and commits with `synchronous=FULL`, so one fsync of
//! the WAL makes a whole group durable (group commit). Readers use their own connections and
//! never wait for the writer. A second process (`cairn import` next to a running server)
//! writes through SQLite's own file locks.
//!
//! Lookups go through one narrow table, `lookup_entries(value_id, category, event_time,
//! seq)`, which serves every lookup attribute but EventId with a single index range scan,
//! newest first. `value_id` codes an (attribute, value) pair through `lookup_values`: an
//! entry is four integers instead of the value's text, so the index is a fraction of the
//! pages to insert into, log and checkpoint, and its keys compare as integers. A value ID is
//! never deleted or reused, which lets the writer cache IDs across transactions. EventId goes through `events_by_key`, an index on a 64-bit hash of the eventID
//! (the text is compared too): eventIDs are random, so every import batch touches pages all
//! over that index, and an 8-byte key keeps it a third of the size of one on the UUID text.
//! The same index makes appends idempotent.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use cairn_model::{IndexedEvent, LookupAttributeKey, Precondition, StateChange};
use crossbeam_channel::{Receiver, Sender};
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::compression::{RecordCodec, TrainedDictionary, TrainingSchedule};
use crate::indexing::{attr_code, fnv1a, lookup_entries};
use crate::{
    AppendOutcome, AppendReply, AppendResult, EventStore, LookupPage, LookupQuery, PendingAppend,
    StoreError, StoredEvent,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq           INTEGER PRIMARY KEY,
    event_key     INTEGER NOT NULL,
    event_id      TEXT    NOT NULL,
    event_time    INTEGER NOT NULL,
    category      INTEGER NOT NULL,
    record        BLOB    NOT NULL,
    fed           INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS events_by_key ON events(event_key);
CREATE INDEX IF NOT EXISTS events_by_time ON events(category, event_time, seq);
CREATE TABLE IF NOT EXISTS lookup_values (
    value_id INTEGER PRIMARY KEY,
    attr     INTEGER NOT NULL,
    value    TEXT    NOT NULL,
    UNIQUE (attr, value)
);
CREATE TABLE IF NOT EXISTS lookup_entries (
    value_id   INTEGER NOT NULL,
    category   INTEGER NOT NULL,
    event_time INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    PRIMARY KEY (value_id, category, event_time, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS record_dictionaries (
    dict_id    INTEGER NOT NULL UNIQUE,
    dictionary BLOB    NOT NULL
);
CREATE TABLE IF NOT EXISTS state (
    namespace TEXT NOT NULL,
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID;
";

/// The indexed fields (name, source, user, key, resources) are not stored twice: a read
/// rebuilds them from the record, which costs microseconds and saves a quarter of the bytes
/// every append writes.
const EVENT_COLUMNS: &str = "e.seq, e.event_id, e.event_time, e.category, e.record";

/// How long a write waits for another process (an import) holding the database lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

struct PreparedEvent {
    event: IndexedEvent,
    compressed_record: Vec<u8>,
}

struct AppendRequest {
    events: Vec<PreparedEvent>,
    /// Whether the events join the feed trails deliver from (imported ones do not).
    fed: bool,
    /// Applied in the same transaction, after the events.
    state: Vec<StateChange>,
    reply: AppendReply,
}

enum WriterMessage {
    Append(AppendRequest),
    /// A newly trained record dictionary, stored before any record is compressed with it.
    StoreDictionary {
        dictionary: TrainedDictionary,
        reply: Sender<Result<(), StoreError>>,
    },
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
    writer: Mutex<Option<Sender<WriterMessage>>>,
    writer_thread: Mutex<Option<thread::JoinHandle<()>>>,
    readers: Mutex<Vec<Connection>>,
    /// Records are stored zstd-compressed with a dictionary learned from the store's own
    /// records (see `compression`): a fifth of the bytes of plain per-record zstd, and a
    /// third of its CPU. Compression runs in `submit`, on the caller's thread, so the single
    /// writer thread does not pay for it.
    codec: Arc<RecordCodec>,
}

impl SqliteEventStore {
    /// Events after `after_seq` in sequence order, only the fed ones or all.
    fn events_after(
        &self,
        after_seq: i64,
        limit: usize,
        fed_only: bool,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.with_reader(|connection| {
            let rows = {
                let mut statement = connection.prepare_cached(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events e WHERE e.seq > ?1 AND (e.fed = 1 OR ?3 = 0) \
                     ORDER BY e.seq LIMIT ?2"
                ))?;
                let rows = statement
                    .query_map(params![after_seq, limit as i64, fed_only], stored_row)?
                    .collect::<Result<Vec<_>, _>>()?;
                rows
            };
            self.events_from_rows(connection, rows)
        })
    }

    /// Opens (creating if needed) `events.db` in `data_dir`, durable on every append.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(data_dir, SyncMode::EveryAppend)
    }

    pub fn open_with(data_dir: &Path, sync_mode: SyncMode) -> Result<Self, StoreError> {
        Self::open_with_schedule(data_dir, sync_mode, TrainingSchedule::default())
    }

    /// As [`Self::open_with`], training record dictionaries on `schedule`.
    pub fn open_with_schedule(
        data_dir: &Path,
        sync_mode: SyncMode,
        schedule: TrainingSchedule,
    ) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir)?;
        let path = data_dir.join("events.db");
        let connection = open_connection(&path)?;
        connection.execute_batch(SCHEMA)?;
        migrate_text_lookup_index(&connection)?;
        rekey_events(&connection)?;
        add_fed_column(&connection)?;
        if sync_mode == SyncMode::OnFlush {
            // WAL with NORMAL stays consistent through a crash; it only defers the fsync.
            connection.execute_batch("PRAGMA synchronous=NORMAL;")?;
        }
        let codec = Arc::new(RecordCodec::new(schedule));
        let newest_dictionary: Option<(u32, Vec<u8>)> = connection
            .query_row(
                "SELECT dict_id, dictionary FROM record_dictionaries ORDER BY rowid DESC LIMIT 1",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        if let Some((id, bytes)) = newest_dictionary {
            codec.install_stored(id, &bytes);
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
            codec,
        })
    }

    fn submit_request(
        &self,
        events: Vec<IndexedEvent>,
        state: Vec<StateChange>,
        fed: bool,
    ) -> Result<PendingAppend, StoreError> {
        if events.is_empty() && state.is_empty() {
            return Ok(PendingAppend::settled(Ok(AppendOutcome::default())));
        }
        let events = events
            .into_iter()
            .map(|event| {
                let compressed_record = self.compress_record(&event.record_json)?;
                Ok(PreparedEvent {
                    event,
                    compressed_record,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let (reply, pending) = PendingAppend::channel();
        {
            let writer = self.writer.lock().map_err(|_| poisoned())?;
            let writer = writer.as_ref().ok_or(StoreError::WriterStopped)?;
            writer
                .send(WriterMessage::Append(AppendRequest {
                    events,
                    fed,
                    state,
                    reply,
                }))
                .map_err(|_| StoreError::WriterStopped)?;
        }
        Ok(pending)
    }

    /// The dictionary new records are compressed with, if one has been trained.
    pub fn record_dictionary_id(&self) -> Option<u32> {
        self.codec.active_dictionary_id()
    }

    fn compress_record(&self, record: &str) -> Result<Vec<u8>, StoreError> {
        let compressed = self
            .codec
            .compress(record.as_bytes())
            .map_err(|error| StoreError::Compression(error.to_string()))?;
        if let Some(samples) = compressed.training_due {
            self.start_training(samples);
        }
        Ok(compressed.frame)
    }

    /// Trains a dictionary on its own thread, has the writer store it, then installs it.
    fn start_training(&self, samples: Vec<Vec<u8>>) {
        let writer = match self.writer.lock() {
            Ok(writer) => writer.clone(),
            Err(_) => None,
        };
        let codec = Arc::clone(&self.codec);
        let Some(writer) = writer else {
            codec.training_finished();
            return;
        };
        let spawned = thread::Builder::new()
            .name("cairn-dictionary".into())
            .spawn({
                let codec = Arc::clone(&codec);
                move || {
                    if let Some(dictionary) = RecordCodec::train(&samples) {
                        let (id, bytes) = (dictionary.id, dictionary.bytes.clone());
                        let (reply, stored) = crossbeam_channel::bounded(1);
                        let sent = writer.send(WriterMessage::StoreDictionary { dictionary, reply });
                        match sent.ok().and_then(|()| stored.recv().ok()) {
                            Some(Ok(())) => codec.install(id, &bytes),
                            Some(Err(error)) => {
                                tracing::warn!(%error, "record dictionary not stored; records stay compressed without it");
                            }
                            None => {}
                        }
                    }
                    codec.training_finished();
                }
            });
        if spawned.is_err() {
            codec.training_finished();
        }
    }

    fn event_from_row(
        &self,
        connection: &Connection,
        row: StoredRow,
    ) -> Result<StoredEvent, StoreError> {
        let record = self
            .codec
            .decompress(&row.record, |id| {
                connection
                    .query_row(
                        "SELECT dictionary FROM record_dictionaries WHERE dict_id = ?1",
                        [id],
                        |row| row.get(0),
                    )
                    .ok()
            })
            .map_err(|error| StoreError::Corrupt(format!("event {}: {error}", row.seq)))?;
        crate::stored_event(
            row.seq,
            row.event_id,
            row.event_time_millis,
            row.category,
            record,
        )
    }

    fn events_from_rows(
        &self,
        connection: &Connection,
        rows: Vec<StoredRow>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        rows.into_iter()
            .map(|row| self.event_from_row(connection, row))
            .collect()
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

fn run_writer(mut connection: Connection, messages: Receiver<WriterMessage>) {
    let mut value_ids = LookupValueIds::default();
    while let Ok(first) = messages.recv() {
        let mut group = Vec::new();
        let mut next = Some(first);
        // Take everything queued: one transaction and one sync for all of it.
        while let Some(message) = next {
            match message {
                WriterMessage::Append(request) => group.push(request),
                WriterMessage::StoreDictionary { dictionary, reply } => {
                    let _ = reply.send(store_dictionary(&mut connection, &dictionary));
                }
            }
            next = messages.try_recv().ok();
        }
        if group.is_empty() {
            continue;
        }
        let started = std::time::Instant::now();
        let events: usize = group.iter().map(|request| request.events.len()).sum();
        let written = write_group(&mut connection, &group, &mut value_ids);
        metrics::histogram!("cairn_commit_seconds").record(started.elapsed().as_secs_f64());
        metrics::histogram!("cairn_commit_group_events").record(events as f64);
        match written {
            Ok(outcomes) => {
                for (request, outcome) in group.into_iter().zip(outcomes) {
                    request.reply.send(outcome);
                }
            }
            Err(error) => {
                metrics::counter!("cairn_commit_failures_total").increment(1);
                tracing::error!(%error, requests = group.len(), "event store write failed");
                // A full disk or an I/O error: nothing of the group was committed, and a
                // later write may succeed once the cause is gone.
                let message = error.to_string();
                for request in group {
                    request.reply.send(Err(StoreError::Unavailable(format!(
                        "the write failed: {message}"
                    ))));
                }
            }
        }
    }
}

/// Stores a dictionary unless the store already holds it; an ID held by different bytes
/// (two dictionaries whose content hashes collide) is refused, so it is never used.
fn store_dictionary(
    connection: &mut Connection,
    dictionary: &TrainedDictionary,
) -> Result<(), StoreError> {
    let transaction =
        connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    transaction.execute(
        "INSERT OR IGNORE INTO record_dictionaries (dict_id, dictionary) VALUES (?1, ?2)",
        params![dictionary.id, dictionary.bytes],
    )?;
    let held: Vec<u8> = transaction.query_row(
        "SELECT dictionary FROM record_dictionaries WHERE dict_id = ?1",
        [dictionary.id],
        |row| row.get(0),
    )?;
    transaction.commit()?;
    if held == dictionary.bytes {
        Ok(())
    } else {
        Err(StoreError::Corrupt(format!(
            "record dictionary {} is already held with other content",
            dictionary.id
        )))
    }
}

fn write_group(
    connection: &mut Connection,
    group: &[AppendRequest],
    value_ids: &mut LookupValueIds,
) -> Result<Vec<AppendResult>, StoreError> {
    // Value IDs resolved in a group that fails anywhere, not only at commit, were never
    // stored: they must be forgotten, or a later lookup would be filed under them.
    let written = write_group_uncommitted(connection, group, value_ids);
    match written {
        Ok(_) => value_ids.committed(),
        Err(_) => value_ids.rolled_back(),
    }
    written
}

fn write_group_uncommitted(
    connection: &mut Connection,
    group: &[AppendRequest],
    value_ids: &mut LookupValueIds,
) -> Result<Vec<AppendResult>, StoreError> {
    let transaction =
        connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut outcomes = Vec::with_capacity(group.len());
    {
        let mut already_stored = transaction
            .prepare_cached("SELECT 1 FROM events WHERE event_key = ?1 AND event_id = ?2")?;
        let mut insert_event = transaction.prepare_cached(
            "INSERT INTO events (seq, event_key, event_id, event_time, category, record, fed) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        // Numbers are given here, inside the write lock, in commit order and never twice:
        // the feed trails deliver from may then read "everything after N" as final.
        let mut next_seq = highest_seq(&transaction)? + 1;
        let mut insert_lookup = transaction.prepare_cached(
            "INSERT OR IGNORE INTO lookup_entries (value_id, category, event_time, seq) \
             VALUES (?1, ?2, ?3, ?4)",
        )?;
        // Lookup rows are gathered for the whole group and inserted in primary-key order:
        // the same rows, but each index page is visited once, in order, instead of once per
        // event at random.
        let mut lookup_rows: Vec<(i64, i64, i64, i64)> = Vec::new();
        for request in group {
            // Requests are applied in order, each with its state changes, so that what one
            // requires sees what those before it changed.
            if let Some(refusal) = unmet_requirement(&transaction, &request.state)? {
                outcomes.push(Err(refusal));
                continue;
            }
            let mut inserted = Vec::with_capacity(request.events.len());
            for prepared in &request.events {
                let event = &prepared.event;
                let key = event_key(&event.event_id);
                if already_stored.exists(params![key, event.event_id])? {
                    inserted.push(false);
                    continue;
                }
                let seq = next_seq;
                let changed = insert_event.execute(params![
                    seq,
                    key,
                    event.event_id,
                    event.event_time_millis,
                    event.category.code(),
                    prepared.compressed_record,
                    request.fed,
                ])?;
                if changed == 1 {
                    next_seq += 1;
                    for (key, value) in lookup_entries(event) {
                        lookup_rows.push((
                            value_ids.resolve(&transaction, key, value)?,
                            event.category.code(),
                            event.event_time_millis,
                            seq,
                        ));
                    }
                }
                inserted.push(changed == 1);
            }
            apply_state_changes(&transaction, &request.state)?;
            outcomes.push(Ok(AppendOutcome { inserted }));
        }
        lookup_rows.sort_unstable();
        for (value_id, category, event_time, seq) in lookup_rows {
            insert_lookup.execute(params![value_id, category, event_time, seq])?;
        }
    }
    transaction.commit()?;
    Ok(outcomes)
}

/// The refusal of a request whose [`Precondition::Requires`] does not hold.
fn unmet_requirement(
    transaction: &Connection,
    changes: &[StateChange],
) -> Result<Option<StoreError>, StoreError> {
    for change in changes {
        if let Precondition::Requires(expected) = &change.precondition {
            let held: Option<String> = transaction
                .prepare_cached("SELECT value FROM state WHERE namespace = ?1 AND key = ?2")?
                .query_row(params![change.namespace, change.key], |row| row.get(0))
                .optional()?;
            if held.as_deref() != Some(expected.as_str()) {
                return Ok(Some(crate::requirement_refused(change)));
            }
        }
    }
    Ok(None)
}

fn apply_state_changes(
    transaction: &Connection,
    changes: &[StateChange],
) -> Result<(), StoreError> {
    for change in changes {
        let (namespace, key) = (&change.namespace, &change.key);
        let sql = match (&change.value, &change.precondition) {
            (_, Precondition::Requires(_)) => continue,
            (Some(_), Precondition::Always) => {
                "INSERT INTO state (namespace, key, value) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value"
            }
            (Some(_), Precondition::IfAbsent) => {
                "INSERT INTO state (namespace, key, value) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (namespace, key) DO NOTHING"
            }
            (Some(_), Precondition::IfHolds(_)) => {
                "UPDATE state SET value = ?3 WHERE namespace = ?1 AND key = ?2 AND value = ?4"
            }
            (None, Precondition::Always | Precondition::IfAbsent) => {
                "DELETE FROM state WHERE namespace = ?1 AND key = ?2"
            }
            (None, Precondition::IfHolds(_)) => {
                "DELETE FROM state WHERE namespace = ?1 AND key = ?2 AND value = ?4"
            }
        };
        let mut statement = transaction.prepare_cached(sql)?;
        let value = change.value.as_deref();
        match &change.precondition {
            Precondition::IfHolds(read) if value.is_some() => {
                statement.execute(params![namespace, key, value, read])?
            }
            Precondition::IfHolds(read) => {
                // ?3 is unused by the DELETE; SQLite still wants every number bound.
                statement.execute(params![namespace, key, Option::<&str>::None, read])?
            }
            _ if value.is_some() => statement.execute(params![namespace, key, value])?,
            _ => statement.execute(params![namespace, key])?,
        };
    }
    Ok(())
}

/// The writer's memory of (attribute, value) → value ID, one map per attribute so that a
/// probe borrows the value instead of allocating a key. IDs made in a transaction are held
/// apart until it commits: a rolled-back ID may be handed out again for another value.
#[derive(Default)]
struct LookupValueIds {
    known: [HashMap<String, i64>; 8],
    known_count: usize,
    uncommitted: [HashMap<String, i64>; 8],
}

/// Past this many cached values the cache starts over; any ID can be read back from the
/// table, so this only bounds memory.
const MAX_CACHED_VALUE_IDS: usize = 1 << 20;

impl LookupValueIds {
    fn resolve(
        &mut self,
        connection: &Connection,
        key: LookupAttributeKey,
        value: &str,
    ) -> Result<i64, StoreError> {
        let attr = attr_code(key);
        let slot = attr as usize;
        if let Some(id) = self.known[slot]
            .get(value)
            .or_else(|| self.uncommitted[slot].get(value))
        {
            return Ok(*id);
        }
        let mut find = connection
            .prepare_cached("SELECT value_id FROM lookup_values WHERE attr = ?1 AND value = ?2")?;
        if let Some(id) = find
            .query_row(params![attr, value], |row| row.get(0))
            .optional()?
        {
            self.remember(slot, value.to_owned(), id);
            return Ok(id);
        }
        let mut insert =
            connection.prepare_cached("INSERT INTO lookup_values (attr, value) VALUES (?1, ?2)")?;
        insert.execute(params![attr, value])?;
        let id = connection.last_insert_rowid();
        self.uncommitted[slot].insert(value.to_owned(), id);
        Ok(id)
    }

    fn remember(&mut self, slot: usize, value: String, id: i64) {
        if self.known_count >= MAX_CACHED_VALUE_IDS {
            self.known.iter_mut().for_each(HashMap::clear);
            self.known_count = 0;
        }
        if self.known[slot].insert(value, id).is_none() {
            self.known_count += 1;
        }
    }

    fn committed(&mut self) {
        for slot in 0..self.uncommitted.len() {
            for (value, id) in std::mem::take(&mut self.uncommitted[slot]) {
                self.remember(slot, value, id);
            }
        }
    }

    fn rolled_back(&mut self) {
        self.uncommitted.iter_mut().for_each(HashMap::clear);
    }
}

/// Stores made before lookup values were integer-coded keep their index in `lookup(attr,
/// value, ...)`: it is recoded into `lookup_values`/`lookup_entries` once, in one
/// transaction, on first open.
fn migrate_text_lookup_index(connection: &Connection) -> Result<(), StoreError> {
    let old_index_exists: bool = connection.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'lookup'",
        [],
        |row| row.get(0),
    )?;
    if !old_index_exists {
        return Ok(());
    }
    tracing::info!("recoding the lookup index with integer value IDs (one-time upgrade)");
    connection.execute_batch(
        "BEGIN IMMEDIATE;
         INSERT OR IGNORE INTO lookup_values (attr, value) SELECT DISTINCT attr, value FROM lookup;
         INSERT OR IGNORE INTO lookup_entries (value_id, category, event_time, seq)
             SELECT v.value_id, l.category, l.event_time, l.seq
             FROM lookup l JOIN lookup_values v ON v.attr = l.attr AND v.value = l.value;
         DROP TABLE lookup;
         COMMIT;",
    )?;
    Ok(())
}

/// Stores made before the feed existed get its `fed` column (every event then fed; a
/// trail's position starts at the newest event, so none of them is delivered twice).
fn add_fed_column(connection: &Connection) -> Result<(), StoreError> {
    let has_it: bool = connection.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info('events') WHERE name = 'fed'",
        [],
        |row| row.get(0),
    )?;
    if !has_it {
        connection.execute_batch("ALTER TABLE events ADD COLUMN fed INTEGER NOT NULL DEFAULT 1")?;
    }
    Ok(())
}

/// The state entry that remembers the highest sequence number ever given, so that a sweep
/// which removes the newest events cannot let a number be given again.
const SEQ_FLOOR: (&str, &str) = ("store", "seq_floor");

/// The highest sequence number given so far, removed events included.
fn highest_seq(connection: &Connection) -> Result<i64, StoreError> {
    Ok(connection.query_row(
        "SELECT max(coalesce((SELECT max(seq) FROM events), 0),          coalesce((SELECT CAST(value AS INTEGER) FROM state WHERE namespace = ?1 AND key = ?2), 0))",
        params![SEQ_FLOOR.0, SEQ_FLOOR.1],
        |row| row.get(0),
    )?)
}

/// The store's layout version (`PRAGMA user_version`): 1 since event keys of time-ordered
/// (version 7) UUIDs are their leading 64 bits instead of a hash.
const LAYOUT_VERSION: i64 = 1;

/// Brings stored event keys up to [`event_key`] as it is now, once per layout change: an
/// event stored under an older key would be missed by EventId lookups and deduplication.
fn rekey_events(connection: &Connection) -> Result<(), StoreError> {
    let version: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if version >= LAYOUT_VERSION {
        return Ok(());
    }
    let transaction = connection.unchecked_transaction()?;
    let stale: Vec<(i64, i64)> = {
        let mut events = transaction.prepare("SELECT seq, event_key, event_id FROM events")?;
        let rows = events.query_map([], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, String>(2)?,
            ))
        })?;
        let mut stale = Vec::new();
        for row in rows {
            let (seq, stored, event_id) = row?;
            let key = event_key(&event_id);
            if key != stored {
                stale.push((seq, key));
            }
        }
        stale
    };
    if !stale.is_empty() {
        tracing::info!(events = stale.len(), "re-keying events (one-time upgrade)");
        let mut update = transaction.prepare("UPDATE events SET event_key = ?2 WHERE seq = ?1")?;
        for (seq, key) in stale {
            update.execute(params![seq, key])?;
        }
    }
    transaction.execute_batch(&format!("PRAGMA user_version = {LAYOUT_VERSION}"))?;
    transaction.commit()?;
    Ok(())
}

/// The index key of an eventID; only a pre-filter, since the eventID text is compared as
/// well. It is stored, so it must be stable across versions and platforms (a change needs a
/// new [`LAYOUT_VERSION`]). A time-ordered (version 7) UUID, as Cairn gives its own events,
/// keys by its leading 64 bits, millisecond time first: appends then land at the end of the
/// index instead of on a random page each, which halves the pages every commit writes. Any
/// other eventID (AWS's are random version 4 UUIDs) keys by its FNV-1a hash.
fn event_key(event_id: &str) -> i64 {
    if let Ok(id) = uuid::Uuid::parse_str(event_id) {
        if id.get_version_num() == 7 {
            return (id.as_u128() >> 64) as i64;
        }
    }
    fnv1a(event_id.as_bytes()) as i64
}

/// An event row as read, its record still compressed.
struct StoredRow {
    seq: i64,
    event_id: String,
    event_time_millis: i64,
    category: i64,
    record: Vec<u8>,
}

fn stored_row(row: &Row<'_>) -> rusqlite::Result<StoredRow> {
    Ok(StoredRow {
        seq: row.get(0)?,
        event_id: row.get(1)?,
        event_time_millis: row.get(2)?,
        category: row.get(3)?,
        record: row.get(4)?,
    })
}

impl EventStore for SqliteEventStore {
    fn append(&self, events: Vec<IndexedEvent>) -> Result<AppendOutcome, StoreError> {
        self.submit(events)?.wait()
    }

    fn submit(&self, events: Vec<IndexedEvent>) -> Result<PendingAppend, StoreError> {
        self.submit_with_state(events, Vec::new())
    }

    fn submit_with_state(
        &self,
        events: Vec<IndexedEvent>,
        state: Vec<StateChange>,
    ) -> Result<PendingAppend, StoreError> {
        self.submit_request(events, state, true)
    }

    fn submit_imported(&self, events: Vec<IndexedEvent>) -> Result<PendingAppend, StoreError> {
        self.submit_request(events, Vec::new(), false)
    }

    fn feed(&self, after_seq: i64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        self.events_after(after_seq, limit, true)
    }

    fn every_event(&self, after_seq: i64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        self.events_after(after_seq, limit, false)
    }

    fn last_seq(&self) -> Result<i64, StoreError> {
        self.with_reader(highest_seq)
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
                            stored_row,
                        )
                        .optional()?;
                    rows.extend(found);
                }
                Some(attribute) => {
                    let mut statement = connection.prepare_cached(&format!(
                        "SELECT {EVENT_COLUMNS} FROM lookup_entries l JOIN events e ON e.seq = l.seq \
                         WHERE l.value_id = (SELECT value_id FROM lookup_values \
                                             WHERE attr = ?1 AND value = ?2) \
                         AND l.category = ?3 \
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
                        stored_row,
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
                        stored_row,
                    )?;
                    for row in found {
                        rows.push(row?);
                    }
                }
            }
            self.events_from_rows(connection, rows)
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
                let rows = statement
                    .query_map(params![cutoff_millis, BATCH], stored_row)?
                    .collect::<Result<Vec<_>, _>>()?;
                self.events_from_rows(&transaction, rows)?
            };
            if expired.is_empty() {
                transaction.commit()?;
                return Ok(removed);
            }
            let floor = highest_seq(&transaction)?;
            transaction.execute(
                "INSERT INTO state (namespace, key, value) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value",
                params![SEQ_FLOOR.0, SEQ_FLOOR.1, floor.to_string()],
            )?;
            {
                let mut delete_lookup = transaction.prepare_cached(
                    "DELETE FROM lookup_entries WHERE value_id = \
                     (SELECT value_id FROM lookup_values WHERE attr = ?1 AND value = ?2) \
                     AND category = ?3 AND event_time = ?4 AND seq = ?5",
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

    fn state(&self, namespace: &str) -> Result<Vec<(String, String)>, StoreError> {
        self.with_reader(|connection| {
            let mut statement = connection
                .prepare_cached("SELECT key, value FROM state WHERE namespace = ?1 ORDER BY key")?;
            let rows = statement
                .query_map([namespace], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
    }

    fn state_value(&self, namespace: &str, key: &str) -> Result<Option<String>, StoreError> {
        self.with_reader(|connection| {
            let mut statement = connection
                .prepare_cached("SELECT value FROM state WHERE namespace = ?1 AND key = ?2")?;
            Ok(statement
                .query_row([namespace, key], |row| row.get(0))
                .optional()?)
        })
    }

    fn count_older_than(&self, cutoff_millis: i64) -> Result<u64, StoreError> {
        self.with_reader(|connection| {
            let count: i64 = connection.query_row(
                "SELECT count(*) FROM events WHERE event_time < ?1",
                [cutoff_millis],
                |row| row.get(0),
            )?;
            Ok(count as u64)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::event_store_conformance!(|dir: &std::path::Path| SqliteEventStore::open(dir).unwrap());

    fn wait_for_dictionary(store: &SqliteEventStore) -> u32 {
        for _ in 0..500 {
            if let Some(id) = store.record_dictionary_id() {
                return id;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("no record dictionary was trained");
    }

    #[test]
    fn time_ordered_event_ids_key_in_order_and_other_keys_are_unchanged() {
        let keys: Vec<i64> = (0..2000)
            .map(|_| event_key(&uuid::Uuid::now_v7().to_string()))
            .collect();
        assert!(keys.windows(2).all(|pair| pair[0] <= pair[1]));
        assert!(keys[0] > 0);
        // Stored keys of random IDs must never change: old stores hold them.
        assert_eq!(
            event_key("3b2c4d5e-6f70-4182-93a4-b5c6d7e8f901"),
            fnv_for_test("3b2c4d5e-6f70-4182-93a4-b5c6d7e8f901")
        );
        assert_eq!(event_key("not-a-uuid"), fnv_for_test("not-a-uuid"));
        assert_eq!(event_key("not-a-uuid"), -2_123_504_347_174_997_824);
    }

    fn fnv_for_test(text: &str) -> i64 {
        text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        }) as i64
    }

    #[test]
    fn a_store_keyed_by_an_older_layout_is_rekeyed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let ordered = uuid::Uuid::now_v7().to_string();
        let event = || {
            let sample = crate::conformance::sample_event;
            vec![sample(
                &ordered,
                1_700_000_000,
                "DescribeKey",
                "alice",
                "AKIA1",
            )]
        };
        SqliteEventStore::open(dir.path())
            .unwrap()
            .append(event())
            .unwrap();
        {
            // As the previous layout stored it: every key a hash, user_version 0.
            let connection = Connection::open(dir.path().join("events.db")).unwrap();
            connection
                .execute("UPDATE events SET event_key = ?1", [fnv_for_test(&ordered)])
                .unwrap();
            connection.execute_batch("PRAGMA user_version = 0").unwrap();
        }
        let store = SqliteEventStore::open(dir.path()).unwrap();
        let mut by_id = LookupQuery::all(crate::HistoryView::Management, 10);
        by_id.attribute = Some(cairn_model::LookupAttribute {
            key: LookupAttributeKey::EventId,
            value: ordered.clone(),
        });
        let found = store.lookup(&by_id).unwrap();
        assert_eq!(
            found.events.len(),
            1,
            "found by the key the code now computes"
        );
        let again = store.append(event()).unwrap();
        assert_eq!(again.inserted, [false], "still deduplicated");
    }

    fn stored_record_bytes(store: &SqliteEventStore, event_id: &str) -> Vec<u8> {
        store
            .with_reader(|connection| {
                Ok(connection.query_row(
                    "SELECT record FROM events WHERE event_id = ?1",
                    [event_id],
                    |row| row.get(0),
                )?)
            })
            .unwrap()
    }

    #[test]
    fn records_are_compressed_with_a_learned_dictionary_that_survives_reopening() {
        use crate::conformance::sample_event;
        let dir = tempfile::tempdir().unwrap();
        let schedule = TrainingSchedule {
            first_after: 300,
            growth: 1_000,
        };
        let event = |n: usize| {
            sample_event(
                &format!("event-{n:05}"),
                1_700_000_000 + n as i64,
                "DescribeInstances",
                &format!("user-{}", n % 17),
                "AKIAEXAMPLE",
            )
        };
        let dictionary_id;
        {
            let store =
                SqliteEventStore::open_with_schedule(dir.path(), SyncMode::EveryAppend, schedule)
                    .unwrap();
            for chunk in (0..300).collect::<Vec<_>>().chunks(50) {
                store
                    .append(chunk.iter().map(|n| event(*n)).collect())
                    .unwrap();
            }
            dictionary_id = wait_for_dictionary(&store);
            store.append((300..400).map(event).collect()).unwrap();
            let before = stored_record_bytes(&store, "event-00010");
            let after = stored_record_bytes(&store, "event-00310");
            assert_eq!(zstd::zstd_safe::get_dict_id_from_frame(&before), None);
            assert_eq!(
                zstd::zstd_safe::get_dict_id_from_frame(&after).map(|id| id.get()),
                Some(dictionary_id)
            );
            assert!(
                after.len() * 2 < before.len(),
                "{} vs {}",
                after.len(),
                before.len()
            );
        }
        // A new instance (as another process would) reads both kinds and compresses new
        // records with the stored dictionary without training again.
        let store =
            SqliteEventStore::open_with_schedule(dir.path(), SyncMode::EveryAppend, schedule)
                .unwrap();
        assert_eq!(store.record_dictionary_id(), Some(dictionary_id));
        store.append((400..410).map(event).collect()).unwrap();
        let newest = stored_record_bytes(&store, "event-00405");
        assert_eq!(
            zstd::zstd_safe::get_dict_id_from_frame(&newest).map(|id| id.get()),
            Some(dictionary_id)
        );
        let mut query = crate::LookupQuery::all(crate::HistoryView::Management, 50);
        let mut seen = 0;
        loop {
            let page = store.lookup(&query).unwrap();
            for stored in &page.events {
                let n: usize = stored.event.event_id["event-".len()..].parse().unwrap();
                assert_eq!(stored.event.record_json, event(n).record_json);
                seen += 1;
            }
            match page.next {
                Some(cursor) => query.after = Some(cursor),
                None => break,
            }
        }
        assert_eq!(seen, 410);
    }

    #[test]
    fn a_store_with_the_text_keyed_lookup_index_is_recoded_on_open() {
        use crate::conformance::sample_event;
        use cairn_model::LookupAttribute;
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SqliteEventStore::open(dir.path()).unwrap();
            store
                .append(
                    (0..20)
                        .map(|n| {
                            sample_event(
                                &format!("old-{n}"),
                                1_700_000_000 + n,
                                "CreateKey",
                                &format!("user-{}", n % 3),
                                "AKIAOLDLAYOUT",
                            )
                        })
                        .collect(),
                )
                .unwrap();
        }
        // Put the index back the way earlier versions laid it out.
        let connection = open_connection(&dir.path().join("events.db")).unwrap();
        connection
            .execute_batch(
                "CREATE TABLE lookup (attr INTEGER NOT NULL, value TEXT NOT NULL, \
                     category INTEGER NOT NULL, event_time INTEGER NOT NULL, seq INTEGER NOT NULL, \
                     PRIMARY KEY (attr, value, category, event_time, seq)) WITHOUT ROWID;
                 INSERT INTO lookup SELECT v.attr, v.value, l.category, l.event_time, l.seq \
                     FROM lookup_entries l JOIN lookup_values v USING (value_id);
                 DELETE FROM lookup_entries; DELETE FROM lookup_values;",
            )
            .unwrap();
        drop(connection);
        let store = SqliteEventStore::open(dir.path()).unwrap();
        let by_user = |user: &str| {
            let mut query = crate::LookupQuery::all(crate::HistoryView::Management, 50);
            query.attribute = Some(LookupAttribute {
                key: LookupAttributeKey::Username,
                value: user.to_owned(),
            });
            store.lookup(&query).unwrap().events.len()
        };
        assert_eq!(
            (by_user("user-0"), by_user("user-1"), by_user("user-2")),
            (7, 7, 6)
        );
        let old_table_left: i64 = store
            .with_reader(|connection| {
                Ok(connection.query_row(
                    "SELECT count(*) FROM sqlite_master WHERE name = 'lookup'",
                    [],
                    |row| row.get(0),
                )?)
            })
            .unwrap();
        assert_eq!(old_table_left, 0);
    }

    #[test]
    fn value_ids_made_in_a_rolled_back_transaction_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteEventStore::open(dir.path()).unwrap();
        drop(store);
        let mut connection = open_connection(&dir.path().join("events.db")).unwrap();
        let mut ids = LookupValueIds::default();
        {
            let transaction = connection.transaction().unwrap();
            let made = ids
                .resolve(&transaction, LookupAttributeKey::Username, "ghost")
                .unwrap();
            assert_eq!(
                ids.resolve(&transaction, LookupAttributeKey::Username, "ghost")
                    .unwrap(),
                made
            );
            drop(transaction);
        }
        ids.rolled_back();
        let transaction = connection.transaction().unwrap();
        let other = ids
            .resolve(&transaction, LookupAttributeKey::EventName, "Other")
            .unwrap();
        let ghost = ids
            .resolve(&transaction, LookupAttributeKey::Username, "ghost")
            .unwrap();
        assert_ne!(
            other, ghost,
            "an ID handed out again must not alias two values"
        );
        transaction.commit().unwrap();
        ids.committed();
        let stored: i64 = connection
            .query_row(
                "SELECT value_id FROM lookup_values WHERE attr = 3 AND value = 'ghost'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(stored, ghost);
    }

    #[test]
    fn lookup_by_attribute_uses_the_lookup_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteEventStore::open(dir.path()).unwrap();
        store
            .with_reader(|connection| {
                let plan: Vec<String> = connection
                    .prepare(
                        "EXPLAIN QUERY PLAN SELECT l.seq FROM lookup_entries l JOIN events e ON e.seq = l.seq \
                         WHERE l.value_id = (SELECT value_id FROM lookup_values \
                                             WHERE attr = 1 AND value = 'x') AND l.category = 0 \
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
