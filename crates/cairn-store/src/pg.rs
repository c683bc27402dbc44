//! The shared backend: the event history in PostgreSQL, for several Cairn nodes on one
//! database.
//!
//! One writer thread per node owns a write connection and commits everything queued to it
//! at once (group commit, `synchronous_commit = on`, so a group is durable before any of
//! its calls is answered): a group of live events as one autocommitted statement, anything
//! else (imports, state changes) as one transaction. Every writer, on every node, locks the
//! one `feed_counter` row before it numbers events: sequence numbers are then given in
//! commit order and never twice, which is what lets trails read "everything after N" as
//! final. Table locks always come before that row lock (in the writers and in the sweep),
//! and day partitions, whose making locks a table exclusively, are made in transactions of
//! their own, so no two of them wait on each other in a cycle.
//! Readers are a small pool of threads with their own connections, so a caller on any
//! thread (an async task included) only waits on a channel, never drives a client.
//!
//! Events and lookup entries live in one partition per UTC day of eventTime; a retention
//! sweep drops the days wholly before its cutoff and deletes rows only in the day it cuts.
//! Lookup entries are keyed by a stable 64-bit hash of (attribute, value) and checked
//! against the record on read, so no table of values needs coordinating between nodes.
//! EventIDs are unique through one unpartitioned `event_ids` table (the one table whose
//! rows a sweep deletes one by one).
//! Statements are prepared once per connection and run generic plans that prune partitions
//! at execution: planning over months of day partitions costs more than running any of
//! them. A lookup by attribute walks the value's entries newest day first, takes one page of
//! them, and then reads each event by its (eventTime, seq) key.
//! The schema is versioned and migrated at open (refinery); a database migrated by a newer
//! Cairn is refused rather than written to.
//!
//! A lost connection fails the calls that needed it (the caller answers an AWS-shaped
//! error; nothing is acknowledged that was not committed) and is made again, no more often
//! than a backoff allows, by the next call.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use cairn_model::{IndexedEvent, LookupAttributeKey, Precondition, StateChange};
use crossbeam_channel::{Receiver, Sender};
use postgres::types::ToSql;
use postgres::{Client, GenericClient, NoTls, Row, Statement};

use crate::compression::{RecordCodec, TrainingSchedule};
use crate::indexing::{attr_code, fnv1a, lookup_entries};
use crate::{
    AppendOutcome, AppendReply, EventStore, LookupPage, LookupQuery, PendingAppend, StoreError,
    StoredEvent,
};

mod embedded {
    refinery::embed_migrations!("migrations/postgres");
}

const DAY_MILLIS: i64 = 86_400_000;
/// Reader connections per node: lookups are short, and two cores serve them.
const READERS: usize = 4;
/// A group holds at most this many events; what is queued beyond waits for the next one.
const MAX_GROUP_EVENTS: usize = 5_000;
/// How long a connection attempt may take before the call it serves fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// After a failed connection attempt, calls fail at once for this long instead of each
/// waiting out another attempt.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(500);
/// The columns [`decode_row`] reads, in its order (a macro, so that statements using it
/// stay `&'static str` and can be prepared once).
macro_rules! event_columns {
    () => {
        "seq, event_id, event_time, category, record"
    };
}

/// Where the store is: a `postgres://` URL, with Cairn's own `schema` parameter naming the
/// schema (created if missing) that holds every table.
#[derive(Clone)]
pub struct PostgresLocation {
    config: postgres::Config,
    schema: Option<String>,
    /// The URL without its password, for messages.
    shown: String,
}

impl std::fmt::Debug for PostgresLocation {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.shown)
    }
}

impl std::fmt::Display for PostgresLocation {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.shown)
    }
}

impl PostgresLocation {
    /// Parses `postgres://user[:password]@host[:port]/database[?schema=NAME&...]`.
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        let invalid = |why: &str| StoreError::Unavailable(format!("invalid store URL: {why}"));
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(invalid("it must start with postgres://"));
        }
        let (base, query) = match url.split_once('?') {
            Some((base, query)) => (base, Some(query)),
            None => (url, None),
        };
        let mut schema = None;
        let mut kept = Vec::new();
        for pair in query.into_iter().flat_map(|query| query.split('&')) {
            match pair.split_once('=') {
                Some(("schema", name)) => {
                    if name.is_empty()
                        || name.len() > 63
                        || !name
                            .bytes()
                            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
                    {
                        return Err(invalid(
                            "schema must be 1 to 63 letters, digits or underscores",
                        ));
                    }
                    schema = Some(name.to_ascii_lowercase());
                }
                _ if pair.is_empty() => {}
                _ => kept.push(pair),
            }
        }
        let rebuilt = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        let mut config =
            postgres::Config::from_str(&rebuilt).map_err(|error| invalid(&error.to_string()))?;
        if config.get_user().is_none() {
            config.user(&std::env::var("USER").unwrap_or_else(|_| "postgres".to_owned()));
        }
        config.connect_timeout(CONNECT_TIMEOUT);
        config.application_name("cairn");
        let shown = match config.get_password() {
            Some(password) if !password.is_empty() => {
                let password = String::from_utf8_lossy(password).into_owned();
                url.replacen(&format!(":{password}@"), ":***@", 1)
            }
            _ => url.to_owned(),
        };
        Ok(Self {
            config,
            schema,
            shown,
        })
    }

    /// The same database, another schema: what tests use to keep apart.
    pub fn with_schema(&self, schema: &str) -> Result<Self, StoreError> {
        let mut location = self.clone();
        let separator = if self.shown.contains('?') { '&' } else { '?' };
        let parsed = Self::parse(&format!("postgres://x/y?schema={schema}"))?;
        location.schema = parsed.schema;
        location.shown = format!("{}{separator}schema={schema}", self.shown);
        Ok(location)
    }

    fn connect(&self) -> Result<Client, StoreError> {
        let mut client = self.config.connect(NoTls).map_err(|error| {
            StoreError::Unavailable(format!(
                "cannot connect to PostgreSQL at {self}: {}",
                crate::postgres_reason(&error)
            ))
        })?;
        // Generic plans: a custom plan over a year of day partitions takes longer to make
        // (about 25 ms at 80 days) than any of Cairn's statements takes to run, and every
        // one of them prunes partitions as well at execution. No JIT for the same reason.
        let mut setup = String::from(
            "SET synchronous_commit = on; SET plan_cache_mode = force_generic_plan; SET jit = off; \
             SET standard_conforming_strings = on;",
        );
        if let Some(schema) = &self.schema {
            // Named after its schema, so an operator (or a test) can tell the stores apart.
            setup.push_str(&format!(
                "SET search_path TO \"{schema}\"; SET application_name TO 'cairn/{schema}';"
            ));
        }
        client.batch_execute(&setup)?;
        Ok(client)
    }
}

/// A connection that is made again when lost, at most once per backoff.
struct Connection {
    location: PostgresLocation,
    client: Option<Client>,
    failed_at: Option<(Instant, String)>,
    /// What is prepared on the current client; forgotten with it.
    statements: HashMap<&'static str, Statement>,
}

impl Connection {
    fn new(location: PostgresLocation, client: Option<Client>) -> Self {
        Self {
            location,
            client,
            failed_at: None,
            statements: HashMap::new(),
        }
    }

    fn client(&mut self) -> Result<&mut Client, StoreError> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
        }
        if self.client.is_none() {
            if let Some((at, why)) = &self.failed_at {
                if at.elapsed() < RECONNECT_BACKOFF {
                    return Err(StoreError::Unavailable(why.clone()));
                }
            }
            match self.location.connect() {
                Ok(client) => {
                    if self.failed_at.take().is_some() {
                        tracing::info!(store = %self.location, "reconnected to PostgreSQL");
                    }
                    self.client = Some(client);
                    self.statements.clear();
                }
                Err(error) => {
                    tracing::warn!(store = %self.location, %error, "PostgreSQL is unreachable");
                    self.failed_at = Some((Instant::now(), error.to_string()));
                    return Err(error);
                }
            }
        }
        self.client
            .as_mut()
            .ok_or_else(|| StoreError::Unavailable("no connection".into()))
    }

    /// The client with its prepared statements, connecting first if need be.
    fn prepared(&mut self) -> Result<Reads<'_>, StoreError> {
        self.client()?;
        let client = self
            .client
            .as_mut()
            .ok_or_else(|| StoreError::Unavailable("no connection".into()))?;
        Ok(Prepared {
            client,
            statements: &mut self.statements,
        })
    }

    /// After a transaction begun by hand failed: rolled back, or, if even that fails, the
    /// connection is dropped, so that no later statement runs inside the failed transaction.
    fn after_failed_transaction(&mut self) {
        if let Some(client) = &mut self.client {
            if client.is_closed() || client.batch_execute("ROLLBACK").is_err() {
                self.client = None;
            }
        }
    }

    /// After a failed call: a connection that broke is dropped, to be made again.
    fn after_error(&mut self) {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
        }
    }
}

struct PreparedEvent {
    event: IndexedEvent,
    compressed_record: Vec<u8>,
}

struct AppendRequest {
    events: Vec<PreparedEvent>,
    fed: bool,
    state: Vec<StateChange>,
    reply: AppendReply,
}

type ReadJob = Box<dyn FnOnce(&mut Connection) + Send>;

pub struct PostgresEventStore {
    location: PostgresLocation,
    writer: Mutex<Option<Sender<AppendRequest>>>,
    writer_thread: Mutex<Option<thread::JoinHandle<()>>>,
    readers: Mutex<Option<Sender<ReadJob>>>,
    reader_threads: Mutex<Vec<thread::JoinHandle<()>>>,
    codec: Arc<RecordCodec>,
}

impl PostgresEventStore {
    /// Events after `after_seq` in sequence order, only the fed ones or all. Two
    /// statements, not one with a flag: each has its own index (`events_fed_by_seq`,
    /// `events_by_seq`) under a generic plan.
    fn events_after(
        &self,
        after_seq: i64,
        limit: usize,
        fed_only: bool,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let limit = limit as i64;
        let rows = self.with_reader(move |reads| {
            let statement = if fed_only {
                concat!(
                    "SELECT ",
                    event_columns!(),
                    " FROM events WHERE fed AND seq > $1 ORDER BY seq LIMIT $2"
                )
            } else {
                concat!(
                    "SELECT ",
                    event_columns!(),
                    " FROM events WHERE seq > $1 ORDER BY seq LIMIT $2"
                )
            };
            reads.query(statement, &[&after_seq, &limit])
        })?;
        self.decode_rows(rows)
    }

    /// Connects, creates the schema if needed and migrates it, then starts the writer and
    /// the readers. Fails with a clear error when the database cannot be reached, refuses
    /// the login, or was migrated by a newer Cairn.
    pub fn open(location: &PostgresLocation) -> Result<Self, StoreError> {
        let mut client = location.connect()?;
        if let Some(schema) = &location.schema {
            client.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))?;
        }
        migrate(&mut client, location)?;
        let (sender, receiver) = crossbeam_channel::unbounded();
        let writer_connection = Connection::new(location.clone(), Some(client));
        let writer_thread = thread::Builder::new()
            .name("cairn-pg-writer".into())
            .spawn(move || run_writer(writer_connection, receiver))?;
        let (read_sender, read_receiver) = crossbeam_channel::unbounded::<ReadJob>();
        let mut reader_threads = Vec::with_capacity(READERS);
        for index in 0..READERS {
            let receiver = read_receiver.clone();
            let mut connection = Connection::new(location.clone(), None);
            reader_threads.push(
                thread::Builder::new()
                    .name(format!("cairn-pg-reader-{index}"))
                    .spawn(move || {
                        for job in receiver {
                            job(&mut connection);
                        }
                    })?,
            );
        }
        Ok(Self {
            location: location.clone(),
            writer: Mutex::new(Some(sender)),
            writer_thread: Mutex::new(Some(writer_thread)),
            readers: Mutex::new(Some(read_sender)),
            reader_threads: Mutex::new(reader_threads),
            // Plain zstd frames; dictionaries are the embedded backend's (they would have to
            // be shared between nodes before any node compresses with one).
            codec: Arc::new(RecordCodec::new(TrainingSchedule {
                first_after: u64::MAX,
                growth: 2,
            })),
        })
    }

    pub fn location(&self) -> &PostgresLocation {
        &self.location
    }

    /// Runs `work` on a reader connection and waits for it.
    fn with_reader<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Reads<'_>) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let job: ReadJob = Box::new(move |connection: &mut Connection| {
            let result = connection.prepared().and_then(|mut reads| work(&mut reads));
            if result.is_err() {
                connection.after_error();
            }
            let _ = reply.send(result);
        });
        {
            let readers = self.readers.lock().map_err(|_| poisoned())?;
            let readers = readers.as_ref().ok_or(StoreError::WriterStopped)?;
            readers.send(job).map_err(|_| StoreError::WriterStopped)?;
        }
        answer.recv().unwrap_or(Err(StoreError::WriterStopped))
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
                let compressed = self
                    .codec
                    .compress(event.record_json.as_bytes())
                    .map_err(|error| StoreError::Compression(error.to_string()))?;
                Ok(PreparedEvent {
                    event,
                    compressed_record: compressed.frame,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let (reply, pending) = PendingAppend::channel();
        let writer = self.writer.lock().map_err(|_| poisoned())?;
        let writer = writer.as_ref().ok_or(StoreError::WriterStopped)?;
        writer
            .send(AppendRequest {
                events,
                fed,
                state,
                reply,
            })
            .map_err(|_| StoreError::WriterStopped)?;
        Ok(pending)
    }

    fn decode_rows(&self, rows: Vec<Row>) -> Result<Vec<StoredEvent>, StoreError> {
        rows.into_iter()
            .map(|row| decode_row(&self.codec, &row))
            .collect()
    }

    /// One page of an attribute lookup: entries newest first, each event read back and
    /// checked against the attribute (a hash collision is skipped, and the page filled
    /// from further on).
    fn lookup_by_value(
        &self,
        query: &LookupQuery,
        key: LookupAttributeKey,
        value: &str,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let wanted = query.limit.saturating_add(1);
        let value_key = value_key(key, value);
        let category = query.view.category().code() as i16;
        let start = query.start_millis.unwrap_or(i64::MIN);
        let end = query.end_millis.unwrap_or(i64::MAX);
        let mut after = query
            .after
            .map(|cursor| (cursor.event_time_millis, cursor.seq))
            .unwrap_or((i64::MAX, i64::MAX));
        let mut found = Vec::new();
        loop {
            let fetch = (wanted - found.len()) as i64;
            let (after_time, after_seq) = after;
            let rows = self.with_reader(move |reads| {
                // The page's entries first (an ordered walk of the value's index, newest
                // day first), then each event by its key. The lateral `LIMIT 1` keeps the
                // two steps apart: joined freely, the planner may pick a plan that reads
                // the value's whole history before it sorts and cuts the page.
                reads.query(
                    concat!(
                        "SELECT e.seq, e.event_id, e.event_time, e.category, e.record \
                         FROM (SELECT event_time, seq FROM lookup_entries \
                               WHERE value_key = $1 AND category = $2 \
                                 AND event_time BETWEEN $3 AND $4 \
                                 AND (event_time, seq) < ($5, $6) \
                               ORDER BY event_time DESC, seq DESC LIMIT $7) l \
                         CROSS JOIN LATERAL (SELECT ",
                        event_columns!(),
                        " FROM events WHERE category = $2 \
                               AND event_time = l.event_time AND seq = l.seq LIMIT 1) e \
                         ORDER BY l.event_time DESC, l.seq DESC"
                    ),
                    &[
                        &value_key,
                        &category,
                        &start,
                        &end,
                        &after_time,
                        &after_seq,
                        &fetch,
                    ],
                )
            })?;
            let exhausted = (rows.len() as i64) < fetch;
            for stored in self.decode_rows(rows)? {
                after = (stored.event.event_time_millis, stored.seq);
                if lookup_entries(&stored.event).contains(&(key, value)) {
                    found.push(stored);
                }
            }
            if exhausted || found.len() >= wanted {
                return Ok(found);
            }
        }
    }
}

fn poisoned() -> StoreError {
    StoreError::Corrupt("a store lock was poisoned".into())
}

/// The hash an (attribute, value) pair is filed under.
fn value_key(key: LookupAttributeKey, value: &str) -> i64 {
    let mut bytes = Vec::with_capacity(value.len() + 1);
    bytes.push(attr_code(key) as u8);
    bytes.extend_from_slice(value.as_bytes());
    fnv1a(&bytes) as i64
}

fn migrate(client: &mut Client, location: &PostgresLocation) -> Result<(), StoreError> {
    let runner = embedded::migrations::runner()
        .set_abort_divergent(true)
        .set_abort_missing(true);
    match runner.run(client) {
        Ok(_) => Ok(()),
        Err(error) => {
            let known = embedded::migrations::runner()
                .get_migrations()
                .iter()
                .map(|migration| migration.version())
                .max()
                .unwrap_or(0);
            let applied = runner
                .get_last_applied_migration(client)
                .ok()
                .flatten()
                .map(|migration| migration.version());
            match applied {
                Some(version) if version > known => Err(StoreError::Refused(format!(
                    "the store at {location} has schema version {version}, made by a newer \
                     Cairn; this Cairn knows versions up to {known} and will not write to it"
                ))),
                _ => Err(StoreError::Unavailable(format!(
                    "cannot migrate the store at {location}: {error}"
                ))),
            }
        }
    }
}

fn decode_row(codec: &RecordCodec, row: &Row) -> Result<StoredEvent, StoreError> {
    let seq: i64 = row.try_get(0)?;
    let event_id: String = row.try_get(1)?;
    let event_time_millis: i64 = row.try_get(2)?;
    let category: i16 = row.try_get(3)?;
    let record: &[u8] = row.try_get(4)?;
    let record = codec
        .decompress(record, |_| None)
        .map_err(|error| StoreError::Corrupt(format!("event {seq}: {error}")))?;
    crate::stored_event(
        seq,
        event_id,
        event_time_millis,
        i64::from(category),
        record,
    )
}

fn day_of(event_time_millis: i64) -> i64 {
    event_time_millis.div_euclid(DAY_MILLIS)
}

fn partition_name(table: &str, day: i64) -> String {
    if day < 0 {
        format!("{table}_m{}", day.unsigned_abs())
    } else {
        format!("{table}_d{day}")
    }
}

/// `FROM (a) TO (b)` for one day, open-ended where the day's bound would overflow.
fn day_bounds(day: i64) -> String {
    let bound = |day: i64, open: &str| {
        day.checked_mul(DAY_MILLIS)
            .map_or_else(|| open.to_owned(), |millis| format!("({millis})"))
    };
    let to = day
        .checked_add(1)
        .map_or_else(|| "(MAXVALUE)".to_owned(), |next| bound(next, "(MAXVALUE)"));
    format!("FROM {} TO {to}", bound(day, "(MINVALUE)"))
}

/// A connection (or a transaction on one) whose statements are prepared once per
/// connection: each statement is then one round trip instead of two (parse, then execute),
/// and PostgreSQL may keep its plan.
struct Prepared<'a, C: GenericClient> {
    client: &'a mut C,
    statements: &'a mut HashMap<&'static str, Statement>,
}

impl<C: GenericClient> Prepared<'_, C> {
    fn statement(&mut self, sql: &'static str) -> Result<Statement, StoreError> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql)?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    fn execute(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let statement = self.statement(sql)?;
        Ok(self.client.execute(&statement, params)?)
    }

    fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let statement = self.statement(sql)?;
        Ok(self.client.query(&statement, params)?)
    }

    fn query_one(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, StoreError> {
        let statement = self.statement(sql)?;
        Ok(self.client.query_one(&statement, params)?)
    }

    fn query_opt(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, StoreError> {
        let statement = self.statement(sql)?;
        Ok(self.client.query_opt(&statement, params)?)
    }
}

/// The writer's connection, inside the transaction `write_group` began by hand.
type Writes<'a> = Prepared<'a, Client>;
type Reads<'a> = Prepared<'a, Client>;

fn run_writer(mut connection: Connection, requests: Receiver<AppendRequest>) {
    // Days whose partitions this writer has seen or made.
    let mut known_days: HashSet<i64> = HashSet::new();
    while let Ok(first) = requests.recv() {
        let mut events = first.events.len();
        let mut group = vec![first];
        while events < MAX_GROUP_EVENTS {
            match requests.try_recv() {
                Ok(request) => {
                    events += request.events.len();
                    group.push(request);
                }
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let result = connection
            .prepared()
            .and_then(|mut session| append_group(&mut session, &group, &mut known_days));
        metrics::histogram!("cairn_commit_seconds").record(started.elapsed().as_secs_f64());
        metrics::histogram!("cairn_commit_group_events").record(events as f64);
        let outcomes = match result {
            Ok(outcomes) => outcomes,
            Err(error) => {
                metrics::counter!("cairn_commit_failures_total").increment(1);
                connection.after_failed_transaction();
                tracing::error!(%error, "a group of appends was not committed");
                let message = error.to_string();
                group
                    .iter()
                    .map(|_| Err(StoreError::Unavailable(message.clone())))
                    .collect()
            }
        };
        for (request, outcome) in group.into_iter().zip(outcomes) {
            request.reply.send(outcome);
        }
    }
}

/// The refusal of a request whose [`Precondition::Requires`] does not hold.
fn unmet_requirement(
    transaction: &mut Writes<'_>,
    changes: &[StateChange],
) -> Result<Option<StoreError>, StoreError> {
    for change in changes {
        if let Precondition::Requires(expected) = &change.precondition {
            let held: Option<String> = transaction
                .query_opt(
                    "SELECT value FROM state WHERE namespace = $1 AND key = $2",
                    &[&change.namespace, &change.key],
                )?
                .map(|row| row.get(0));
            if held.as_deref() != Some(expected.as_str()) {
                return Ok(Some(crate::requirement_refused(change)));
            }
        }
    }
    Ok(None)
}

fn apply_state_changes(
    transaction: &mut Writes<'_>,
    changes: &[StateChange],
) -> Result<(), StoreError> {
    let mut index = 0;
    while index < changes.len() {
        // A run of plain puts (a transparency round's leaves, say) is one statement.
        let run = changes[index..]
            .iter()
            .take_while(|change| {
                change.value.is_some() && change.precondition == Precondition::Always
            })
            .count();
        if run > 1 {
            put_all(transaction, &changes[index..index + run])?;
            index += run;
            continue;
        }
        let change = &changes[index];
        index += 1;
        let (namespace, key) = (&change.namespace, &change.key);
        match (&change.value, &change.precondition) {
            (_, Precondition::Requires(_)) => 0,
            (Some(value), Precondition::Always) => transaction.execute(
                "INSERT INTO state (namespace, key, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value",
                &[namespace, key, value],
            )?,
            (Some(value), Precondition::IfAbsent) => transaction.execute(
                "INSERT INTO state (namespace, key, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (namespace, key) DO NOTHING",
                &[namespace, key, value],
            )?,
            (Some(value), Precondition::IfHolds(read)) => transaction.execute(
                "UPDATE state SET value = $3 WHERE namespace = $1 AND key = $2 AND value = $4",
                &[namespace, key, value, read],
            )?,
            (None, Precondition::Always | Precondition::IfAbsent) => transaction.execute(
                "DELETE FROM state WHERE namespace = $1 AND key = $2",
                &[namespace, key],
            )?,
            (None, Precondition::IfHolds(read)) => transaction.execute(
                "DELETE FROM state WHERE namespace = $1 AND key = $2 AND value = $3",
                &[namespace, key, read],
            )?,
        };
    }
    Ok(())
}

/// Puts every entry of `changes` (plain puts) in one statement; of two puts of one entry,
/// the later wins, as it would one by one.
fn put_all(transaction: &mut Writes<'_>, changes: &[StateChange]) -> Result<(), StoreError> {
    let mut last: HashMap<(&str, &str), usize> = HashMap::new();
    for (position, change) in changes.iter().enumerate() {
        last.insert((change.namespace.as_str(), change.key.as_str()), position);
    }
    let mut kept: Vec<usize> = last.into_values().collect();
    kept.sort_unstable();
    let namespaces: Vec<&str> = kept
        .iter()
        .map(|at| changes[*at].namespace.as_str())
        .collect();
    let keys: Vec<&str> = kept.iter().map(|at| changes[*at].key.as_str()).collect();
    let values: Vec<&str> = kept
        .iter()
        .map(|at| changes[*at].value.as_deref().unwrap_or_default())
        .collect();
    transaction.execute(
        "INSERT INTO state (namespace, key, value) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) \
         ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value",
        &[&namespaces, &keys, &values],
    )?;
    Ok(())
}

/// Whether `error` is a statement's whole failure that the group may be retried after: a
/// day partition swept away by another node (no partition for the row), or an eventID
/// stored before (the one-statement path does not check).
fn retryable(error: &StoreError) -> bool {
    use postgres::error::SqlState;
    matches!(error, StoreError::Postgres(error)
        if error.code() == Some(&SqlState::CHECK_VIOLATION)
            || error.code() == Some(&SqlState::UNIQUE_VIOLATION))
}

/// Commits one group: in one statement when it holds only live events with eventIDs new to
/// it (every call Cairn answers), else in a transaction that checks eventIDs and applies
/// state changes in order. Day partitions are made first, each in a transaction of its own:
/// making one locks its table exclusively, which no writer may ask for while it holds the
/// feed counter's row.
fn append_group(
    session: &mut Writes<'_>,
    group: &[AppendRequest],
    known_days: &mut HashSet<i64>,
) -> Result<Vec<crate::AppendResult>, StoreError> {
    let mut days: Vec<i64> = group
        .iter()
        .flat_map(|request| &request.events)
        .map(|prepared| day_of(prepared.event.event_time_millis))
        .collect();
    days.sort_unstable();
    days.dedup();
    make_days(session, &days, known_days)?;
    match append_live_events(session, group) {
        Ok(Some(outcomes)) => return Ok(outcomes),
        Ok(None) => {}
        Err(error) if retryable(&error) => {
            known_days.clear();
            make_days(session, &days, known_days)?;
        }
        Err(error) => return Err(error),
    }
    match write_group(session, group) {
        Err(error) if retryable(&error) => {
            // A day swept between making it and filling it: once more, after a rollback.
            session.client.batch_execute("ROLLBACK")?;
            known_days.clear();
            make_days(session, &days, known_days)?;
            write_group(session, group)
        }
        written => written,
    }
}

/// Makes the partitions of `days` that do not exist yet (another node may make one at the
/// same moment: then it is looked up again).
fn make_days(
    session: &mut Writes<'_>,
    days: &[i64],
    known_days: &mut HashSet<i64>,
) -> Result<(), StoreError> {
    let unknown: Vec<i64> = days
        .iter()
        .copied()
        .filter(|day| !known_days.contains(day))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    for attempt in 0..2 {
        let present: Vec<i64> = session
            .query(
                "SELECT day FROM event_days WHERE day = ANY($1)",
                &[&unknown],
            )?
            .into_iter()
            .map(|row| row.get(0))
            .collect();
        known_days.extend(present);
        let mut made = Ok(());
        let missing: Vec<i64> = unknown
            .iter()
            .copied()
            .filter(|day| !known_days.contains(day))
            .collect();
        for day in &missing {
            let bounds = day_bounds(*day);
            made = session.client.batch_execute(&format!(
                "BEGIN; \
                 CREATE TABLE IF NOT EXISTS {} PARTITION OF events FOR VALUES {bounds}; \
                 CREATE TABLE IF NOT EXISTS {} PARTITION OF lookup_entries FOR VALUES {bounds}; \
                 INSERT INTO event_days (day) VALUES ({day}) ON CONFLICT DO NOTHING; \
                 COMMIT;",
                partition_name("events", *day),
                partition_name("lookup_entries", *day),
            ));
            if made.is_err() {
                let _ = session.client.batch_execute("ROLLBACK");
                break;
            }
            known_days.insert(*day);
        }
        match made {
            Ok(()) => return Ok(()),
            Err(error) if attempt == 1 => return Err(error.into()),
            Err(error) => {
                tracing::debug!(%error, "a day partition was made meanwhile; looked up again")
            }
        }
    }
    Ok(())
}

/// The group in one autocommitted statement, which takes the feed lock, numbers the events
/// from the counter and inserts them with their IDs and lookup entries: one round trip.
/// Its tables are locked as the statement starts, before the counter's row, the writers'
/// order. `None` when the group needs the transaction: state changes, imported events, or
/// an eventID twice in it.
fn append_live_events(
    session: &mut Writes<'_>,
    group: &[AppendRequest],
) -> Result<Option<Vec<crate::AppendResult>>, StoreError> {
    if group
        .iter()
        .any(|request| !request.fed || !request.state.is_empty())
    {
        return Ok(None);
    }
    let events: Vec<&IndexedEvent> = group
        .iter()
        .flat_map(|request| &request.events)
        .map(|prepared| &prepared.event)
        .collect();
    let mut seen = HashSet::with_capacity(events.len());
    if events.is_empty()
        || !events
            .iter()
            .all(|event| seen.insert(event.event_id.as_str()))
    {
        return Ok(None);
    }
    let records: Vec<&[u8]> = group
        .iter()
        .flat_map(|request| &request.events)
        .map(|prepared| prepared.compressed_record.as_slice())
        .collect();
    let event_ids: Vec<&str> = events.iter().map(|event| event.event_id.as_str()).collect();
    let times: Vec<i64> = events.iter().map(|event| event.event_time_millis).collect();
    let categories: Vec<i16> = events
        .iter()
        .map(|event| event.category.code() as i16)
        .collect();
    let (mut entry_keys, mut entry_categories, mut entry_times, mut entry_ordinals) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (ordinal, event) in (1i64..).zip(&events) {
        for (key, value) in lookup_entries(event) {
            entry_keys.push(value_key(key, value));
            entry_categories.push(event.category.code() as i16);
            entry_times.push(event.event_time_millis);
            entry_ordinals.push(ordinal);
        }
    }
    let count = events.len() as i64;
    session.query_one(
        "WITH counter AS ( \
           UPDATE feed_counter SET last_seq = last_seq + $1 WHERE id = 1 \
           RETURNING last_seq - $1 AS base), \
         stored_events AS ( \
           INSERT INTO events (seq, event_id, event_time, category, fed, record) \
           SELECT counter.base + e.ordinal, e.event_id, e.event_time, e.category, true, e.record \
           FROM counter, unnest($2::text[], $3::int8[], $4::int2[], $5::bytea[]) \
             WITH ORDINALITY AS e(event_id, event_time, category, record, ordinal)), \
         stored_ids AS ( \
           INSERT INTO event_ids (event_id, event_time, seq) \
           SELECT e.event_id, e.event_time, counter.base + e.ordinal \
           FROM counter, unnest($2::text[], $3::int8[]) WITH ORDINALITY AS e(event_id, event_time, ordinal)), \
         stored_entries AS ( \
           INSERT INTO lookup_entries (value_key, category, event_time, seq) \
           SELECT l.value_key, l.category, l.event_time, counter.base + l.ordinal \
           FROM counter, unnest($6::int8[], $7::int2[], $8::int8[], $9::int8[]) \
             AS l(value_key, category, event_time, ordinal)) \
         SELECT base FROM counter",
        &[
            &count,
            &event_ids,
            &times,
            &categories,
            &records,
            &entry_keys,
            &entry_categories,
            &entry_times,
            &entry_ordinals,
        ],
    )?;
    Ok(Some(
        group
            .iter()
            .map(|request| {
                Ok(AppendOutcome {
                    inserted: vec![true; request.events.len()],
                })
            })
            .collect(),
    ))
}

/// `ARRAY['a','b']::text[]`, each item quoted (`standard_conforming_strings` is on, so a
/// quote doubled is the only escape).
fn text_array_literal(items: &[&str]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|item| format!("'{}'", item.replace('\'', "''")))
        .collect();
    format!("ARRAY[{}]::text[]", quoted.join(","))
}

/// Commits one group in a transaction begun and ended by hand, so that it costs three round
/// trips when it holds only events: BEGIN with the locks and the eventID check, the three
/// inserts as one statement, and the counter's update with COMMIT. Its days' partitions
/// exist (`make_days`). (Each round trip is
/// spent while every node's writers wait on the feed lock.) On an error the caller rolls
/// back (`Connection::after_failed_transaction`).
fn write_group(
    transaction: &mut Writes<'_>,
    group: &[AppendRequest],
) -> Result<Vec<crate::AppendResult>, StoreError> {
    let ids: Vec<&str> = group
        .iter()
        .flat_map(|request| &request.events)
        .map(|prepared| prepared.event.event_id.as_str())
        .collect();
    // The eventIDs already stored are asked in the same round trip as BEGIN and the locks,
    // as literals (a NUL cannot be one, and is left to a parameter). The tables are locked
    // before the feed counter's row, in the order every writer and the sweep take them.
    let inline = !ids.iter().any(|id| id.contains('\0'));
    let mut script = String::from(
        "BEGIN; LOCK TABLE ONLY events, ONLY lookup_entries IN ROW EXCLUSIVE MODE; \
         SELECT last_seq FROM feed_counter WHERE id = 1 FOR UPDATE;",
    );
    if inline {
        script.push_str(&format!(
            " SELECT event_id FROM event_ids WHERE event_id = ANY({});",
            text_array_literal(&ids),
        ));
    }
    // Rows of each statement of the script, in order (BEGIN's and LOCK's are none).
    let mut answers: Vec<Vec<String>> = vec![Vec::new(); 4];
    let mut statement = 0;
    for message in transaction.client.simple_query(&script)? {
        match message {
            postgres::SimpleQueryMessage::Row(row) => {
                if let Some(answer) = answers.get_mut(statement) {
                    answer.push(row.get(0).unwrap_or_default().to_owned());
                }
            }
            postgres::SimpleQueryMessage::CommandComplete(_) => statement += 1,
            _ => {}
        }
    }
    let last_seq: i64 = answers[2]
        .first()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| StoreError::Corrupt("the feed counter has no row".into()))?;
    let mut taken: HashSet<String> = if inline {
        answers[3].drain(..).collect()
    } else {
        transaction
            .query(
                "SELECT event_id FROM event_ids WHERE event_id = ANY($1)",
                &[&ids],
            )?
            .into_iter()
            .map(|row| row.get(0))
            .collect()
    };
    let mut next_seq = last_seq;
    let mut seqs: Vec<i64> = Vec::new();
    let mut event_ids: Vec<&str> = Vec::new();
    let mut times: Vec<i64> = Vec::new();
    let mut categories: Vec<i16> = Vec::new();
    let mut fed: Vec<bool> = Vec::new();
    let mut records: Vec<&[u8]> = Vec::new();
    let mut entry_keys: Vec<i64> = Vec::new();
    let mut entry_categories: Vec<i16> = Vec::new();
    let mut entry_times: Vec<i64> = Vec::new();
    let mut entry_seqs: Vec<i64> = Vec::new();
    let mut outcomes = Vec::with_capacity(group.len());
    for request in group {
        // Requests are applied in order, each with its state changes, so that what one
        // requires sees what those before it changed.
        if let Some(refusal) = unmet_requirement(transaction, &request.state)? {
            outcomes.push(Err(refusal));
            continue;
        }
        apply_state_changes(transaction, &request.state)?;
        let mut inserted = Vec::with_capacity(request.events.len());
        for prepared in &request.events {
            let event = &prepared.event;
            if !taken.insert(event.event_id.clone()) {
                inserted.push(false);
                continue;
            }
            next_seq += 1;
            let category = event.category.code() as i16;
            seqs.push(next_seq);
            event_ids.push(&event.event_id);
            times.push(event.event_time_millis);
            categories.push(category);
            fed.push(request.fed);
            records.push(&prepared.compressed_record);
            for (key, value) in lookup_entries(event) {
                entry_keys.push(value_key(key, value));
                entry_categories.push(category);
                entry_times.push(event.event_time_millis);
                entry_seqs.push(next_seq);
            }
            inserted.push(true);
        }
        outcomes.push(Ok(AppendOutcome { inserted }));
    }
    if !seqs.is_empty() {
        transaction.execute(
            "WITH stored_events AS ( \
               INSERT INTO events (seq, event_id, event_time, category, fed, record) \
               SELECT * FROM unnest($1::int8[], $2::text[], $3::int8[], $4::int2[], $5::bool[], $6::bytea[])), \
             stored_ids AS ( \
               INSERT INTO event_ids (event_id, event_time, seq) \
               SELECT * FROM unnest($2::text[], $3::int8[], $1::int8[])) \
             INSERT INTO lookup_entries (value_key, category, event_time, seq) \
             SELECT * FROM unnest($7::int8[], $8::int2[], $9::int8[], $10::int8[])",
            &[
                &seqs,
                &event_ids,
                &times,
                &categories,
                &fed,
                &records,
                &entry_keys,
                &entry_categories,
                &entry_times,
                &entry_seqs,
            ],
        )?;
    }
    // Literal, not a parameter: only the simple protocol takes two statements at once.
    transaction.client.batch_execute(&format!(
        "UPDATE feed_counter SET last_seq = {next_seq} WHERE id = 1 AND last_seq < {next_seq}; COMMIT"
    ))?;
    Ok(outcomes)
}

impl Drop for PostgresEventStore {
    fn drop(&mut self) {
        if let Ok(mut writer) = self.writer.lock() {
            writer.take();
        }
        if let Ok(mut handle) = self.writer_thread.lock() {
            if let Some(handle) = handle.take() {
                let _ = handle.join();
            }
        }
        if let Ok(mut readers) = self.readers.lock() {
            readers.take();
        }
        if let Ok(mut handles) = self.reader_threads.lock() {
            for handle in handles.drain(..) {
                let _ = handle.join();
            }
        }
    }
}

impl EventStore for PostgresEventStore {
    fn append(&self, events: Vec<IndexedEvent>) -> Result<AppendOutcome, StoreError> {
        self.submit(events)?.wait()
    }

    fn submit(&self, events: Vec<IndexedEvent>) -> Result<PendingAppend, StoreError> {
        self.submit_request(events, Vec::new(), true)
    }

    fn submit_with_state(
        &self,
        events: Vec<IndexedEvent>,
        changes: Vec<StateChange>,
    ) -> Result<PendingAppend, StoreError> {
        self.submit_request(events, changes, true)
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
        self.with_reader(|reads| {
            Ok(reads
                .query_one("SELECT last_seq FROM feed_counter WHERE id = 1", &[])?
                .get(0))
        })
    }

    fn state(&self, namespace: &str) -> Result<Vec<(String, String)>, StoreError> {
        let namespace = namespace.to_owned();
        self.with_reader(move |reads| {
            Ok(reads
                .query(
                    "SELECT key, value FROM state WHERE namespace = $1 ORDER BY key",
                    &[&namespace],
                )?
                .into_iter()
                .map(|row| (row.get(0), row.get(1)))
                .collect())
        })
    }

    fn state_value(&self, namespace: &str, key: &str) -> Result<Option<String>, StoreError> {
        let (namespace, key) = (namespace.to_owned(), key.to_owned());
        self.with_reader(move |reads| {
            Ok(reads
                .query_opt(
                    "SELECT value FROM state WHERE namespace = $1 AND key = $2",
                    &[&namespace, &key],
                )?
                .map(|row| row.get(0)))
        })
    }

    fn count_older_than(&self, cutoff_millis: i64) -> Result<u64, StoreError> {
        self.with_reader(move |reads| {
            let count: i64 = reads
                .query_one(
                    "SELECT count(*) FROM events WHERE event_time < $1",
                    &[&cutoff_millis],
                )?
                .get(0);
            Ok(count as u64)
        })
    }

    fn flush(&self) -> Result<(), StoreError> {
        // Every commit is durable (`synchronous_commit = on`).
        Ok(())
    }

    fn lookup(&self, query: &LookupQuery) -> Result<LookupPage, StoreError> {
        let category = query.view.category().code() as i16;
        let start = query.start_millis.unwrap_or(i64::MIN);
        let end = query.end_millis.unwrap_or(i64::MAX);
        let (after_time, after_seq) = query
            .after
            .map(|cursor| (cursor.event_time_millis, cursor.seq))
            .unwrap_or((i64::MAX, i64::MAX));
        let fetch = query.limit.saturating_add(1) as i64;
        let mut events = match &query.attribute {
            Some(attribute) if attribute.key == LookupAttributeKey::EventId => {
                let event_id = attribute.value.clone();
                let rows = self.with_reader(move |reads| {
                    let Some(found) = reads.query_opt(
                        "SELECT event_time, seq FROM event_ids WHERE event_id = $1",
                        &[&event_id],
                    )?
                    else {
                        return Ok(Vec::new());
                    };
                    let (time, seq): (i64, i64) = (found.get(0), found.get(1));
                    reads.query(
                        concat!(
                            "SELECT ",
                            event_columns!(),
                            " FROM events WHERE event_time = $1 AND seq = $2 \
                             AND category = $3 AND event_time BETWEEN $4 AND $5 \
                             AND (event_time, seq) < ($6, $7)"
                        ),
                        &[
                            &time,
                            &seq,
                            &category,
                            &start,
                            &end,
                            &after_time,
                            &after_seq,
                        ],
                    )
                })?;
                self.decode_rows(rows)?
            }
            Some(attribute) => self.lookup_by_value(query, attribute.key, &attribute.value)?,
            None => {
                let rows = self.with_reader(move |reads| {
                    reads.query(
                        concat!(
                            "SELECT ",
                            event_columns!(),
                            " FROM events WHERE category = $1 \
                             AND event_time BETWEEN $2 AND $3 AND (event_time, seq) < ($4, $5) \
                             ORDER BY event_time DESC, seq DESC LIMIT $6"
                        ),
                        &[&category, &start, &end, &after_time, &after_seq, &fetch],
                    )
                })?;
                self.decode_rows(rows)?
            }
        };
        let next = if events.len() > query.limit {
            events.truncate(query.limit);
            events.last().map(StoredEvent::cursor)
        } else {
            None
        };
        Ok(LookupPage { events, next })
    }

    fn sweep_older_than(&self, cutoff_millis: i64) -> Result<u64, StoreError> {
        self.with_reader(move |reads| {
            let wholly_before = |day: i64| {
                day.checked_add(1)
                    .and_then(|next| next.checked_mul(DAY_MILLIS))
                    .is_some_and(|end| end <= cutoff_millis)
            };
            let days_of = |rows: Vec<Row>| -> Vec<i64> { rows.into_iter().map(|row| row.get(0)).collect() };
            let dropping = days_of(reads.query("SELECT day FROM event_days ORDER BY day", &[])?)
                .into_iter()
                .any(wholly_before);
            let mut transaction = reads.client.transaction()?;
            // Locks in the writers' order (see `write_group`): the tables first (exclusively,
            // to drop a partition), then the feed counter's row, so that no partition is
            // made or filled while it is dropped and no writer waits in a cycle with this.
            if dropping {
                transaction.batch_execute(
                    "LOCK TABLE ONLY events, ONLY lookup_entries IN ACCESS EXCLUSIVE MODE",
                )?;
            }
            transaction.query_one("SELECT 1 FROM feed_counter WHERE id = 1 FOR UPDATE", &[])?;
            let days = days_of(transaction.query("SELECT day FROM event_days ORDER BY day", &[])?);
            let mut removed = 0u64;
            for day in days {
                let day_start = day.checked_mul(DAY_MILLIS).unwrap_or(i64::MIN);
                if day_start >= cutoff_millis {
                    break;
                }
                let events = partition_name("events", day);
                // A day made since the first look is emptied now and dropped next time.
                if dropping && wholly_before(day) {
                    let count: i64 = transaction
                        .query_one(&format!("SELECT count(*) FROM {events}"), &[])?
                        .get(0);
                    removed += count as u64;
                    transaction.batch_execute(&format!(
                        "DROP TABLE {events}; DROP TABLE {}; DELETE FROM event_days WHERE day = {day};",
                        partition_name("lookup_entries", day)
                    ))?;
                } else {
                    removed += transaction.execute(
                        &format!("DELETE FROM {events} WHERE event_time < $1"),
                        &[&cutoff_millis],
                    )?;
                    transaction.execute(
                        &format!(
                            "DELETE FROM {} WHERE event_time < $1",
                            partition_name("lookup_entries", day)
                        ),
                        &[&cutoff_millis],
                    )?;
                }
            }
            transaction.execute(
                "DELETE FROM event_ids WHERE event_time < $1",
                &[&cutoff_millis],
            )?;
            transaction.commit()?;
            Ok(removed)
        })
    }

    fn count(&self) -> Result<u64, StoreError> {
        self.with_reader(|reads| {
            let count: i64 = reads.query_one("SELECT count(*) FROM events", &[])?.get(0);
            Ok(count as u64)
        })
    }
}

/// The PostgreSQL the tests use: `CAIRN_TEST_POSTGRES`, or the local one with trust auth.
pub fn test_location() -> PostgresLocation {
    let url = std::env::var("CAIRN_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    PostgresLocation::parse(&url).expect("CAIRN_TEST_POSTGRES is not a postgres:// URL")
}

/// A store of its own for one test directory: the schema is named after the directory, so
/// reopening the same directory reopens the same store.
pub fn open_for_test(dir: &std::path::Path) -> PostgresEventStore {
    let schema = format!(
        "cairn_test_{:016x}",
        fnv1a(dir.to_string_lossy().as_bytes())
    );
    let location = test_location().with_schema(&schema).unwrap();
    PostgresEventStore::open(&location).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::event_store_conformance!(|dir: &std::path::Path| open_for_test(dir));

    #[test]
    fn a_store_url_names_its_schema_and_hides_its_password() {
        let location =
            PostgresLocation::parse("postgres://cairn:s3cret@db.example:6543/audit?schema=Prod")
                .unwrap();
        assert_eq!(location.schema.as_deref(), Some("prod"));
        assert_eq!(
            location.to_string(),
            "postgres://cairn:***@db.example:6543/audit?schema=Prod"
        );
        for bad in [
            "mysql://x/y",
            "postgres://x/y?schema=",
            "postgres://x/y?schema=a;drop",
            "postgres://x/y?nonsense=1",
        ] {
            assert!(PostgresLocation::parse(bad).is_err(), "{bad}");
        }
    }

    /// Every backend connection of the store is killed again and again while appends go on:
    /// calls caught by it fail (closed, with an error), later ones succeed on a new
    /// connection, and every acknowledged event is stored.
    #[test]
    fn connections_lost_mid_commit_lose_nothing_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(open_for_test(dir.path()));
        let schema = store.location().schema.clone().unwrap();
        let mut killer = test_location().connect().unwrap();
        let writers: Vec<_> = (0..4)
            .map(|thread| {
                let store = Arc::clone(&store);
                thread::spawn(move || {
                    let (mut acknowledged, mut failed) = (Vec::new(), 0);
                    for n in 0..150 {
                        let id = format!("lost{thread}-{n}");
                        let event = crate::conformance::sample_event(&id, n, "Put", "alice", "K");
                        match store.append(vec![event]) {
                            Ok(outcome) => {
                                assert_eq!(outcome.inserted, [true]);
                                acknowledged.push(id);
                            }
                            Err(StoreError::Unavailable(_) | StoreError::Postgres(_)) => {
                                failed += 1;
                            }
                            Err(other) => panic!("unexpected error: {other}"),
                        }
                        thread::sleep(Duration::from_millis(2));
                    }
                    (acknowledged, failed)
                })
            })
            .collect();
        let mut kills = 0;
        for _ in 0..8 {
            thread::sleep(Duration::from_millis(60));
            kills += killer
                .query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                    &[&format!("cairn/{schema}")],
                )
                .unwrap()
                .len();
        }
        let mut acknowledged = Vec::new();
        let mut failed = 0;
        for writer in writers {
            let (ids, lost) = writer.join().unwrap();
            acknowledged.extend(ids);
            failed += lost;
        }
        assert!(kills > 0, "no connection was killed");
        assert!(failed > 0, "no append was caught by a lost connection");
        assert!(!acknowledged.is_empty());
        for id in &acknowledged {
            let query = LookupQuery {
                attribute: Some(cairn_model::LookupAttribute {
                    key: LookupAttributeKey::EventId,
                    value: id.clone(),
                }),
                ..LookupQuery::all(crate::HistoryView::Management, 1)
            };
            assert_eq!(
                store.lookup(&query).unwrap().events.len(),
                1,
                "{id} was lost"
            );
        }
        // Sequence numbers stayed unique and in order through the reconnections.
        let fed = store.feed(0, 10_000).unwrap();
        assert!(fed.windows(2).all(|pair| pair[0].seq < pair[1].seq));
        assert!(fed.len() >= acknowledged.len());
    }

    #[test]
    fn a_store_migrated_by_a_newer_cairn_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(open_for_test(dir.path()));
        let schema = format!(
            "cairn_test_{:016x}",
            fnv1a(dir.path().to_string_lossy().as_bytes())
        );
        let location = test_location().with_schema(&schema).unwrap();
        let mut client = location.connect().unwrap();
        client
            .batch_execute(
                "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) \
                 VALUES (999, 'from_the_future', '2030-01-01T00:00:00Z', '1')",
            )
            .unwrap();
        let refused = PostgresEventStore::open(&location).err().unwrap();
        let message = refused.to_string();
        assert!(message.contains("newer"), "{message}");
        assert!(message.contains("999"), "{message}");
    }

    #[test]
    fn an_unreachable_or_refusing_database_is_a_clear_error() {
        let down = PostgresLocation::parse("postgres://postgres@127.0.0.1:1/test").unwrap();
        let message = PostgresEventStore::open(&down).err().unwrap().to_string();
        assert!(
            message
                .contains("cannot connect to PostgreSQL at postgres://postgres@127.0.0.1:1/test"),
            "{message}"
        );
        assert!(message.contains("refused"), "{message}");
        let nobody =
            PostgresLocation::parse("postgres://no_such_role:pw@127.0.0.1:5432/test").unwrap();
        let message = PostgresEventStore::open(&nobody).err().unwrap().to_string();
        assert!(
            message.contains(r#"role "no_such_role" does not exist"#),
            "{message}"
        );
        assert!(
            !message.contains(":pw@"),
            "the password was shown: {message}"
        );
    }

    #[test]
    fn event_ids_that_need_quoting_are_checked_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_for_test(dir.path());
        let odd = [
            "it's",
            "back\\slash",
            "''",
            "{a,b}",
            "\"quoted\"",
            "x'); DROP TABLE events; --",
        ];
        let events = |n: i64| {
            odd.iter()
                .map(|id| {
                    crate::conformance::sample_event(id, 1_700_000_000 + n, "Get", "a", "AKIA1")
                })
                .collect::<Vec<_>>()
        };
        let first = store.append(events(0)).unwrap();
        assert!(first.inserted.iter().all(|inserted| *inserted));
        let again = store.append(events(1)).unwrap();
        assert!(
            again.inserted.iter().all(|inserted| !inserted),
            "each seen as stored"
        );
        assert_eq!(store.count().unwrap(), odd.len() as u64);
    }

    #[test]
    fn a_day_swept_away_is_made_again_for_the_next_event_in_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_for_test(dir.path());
        let day_secs = 1_700_000_000 / 86_400 * 86_400;
        let event =
            |id: &str| crate::conformance::sample_event(id, day_secs + 60, "Get", "a", "AKIA1");
        store.append(vec![event("before")]).unwrap();
        assert_eq!(
            store.sweep_older_than((day_secs + 86_400) * 1000).unwrap(),
            1
        );
        // The writer made that day's partition, and the sweep dropped it behind its back.
        let again = store
            .append(vec![event("after"), event("and-more")])
            .unwrap();
        assert_eq!(again.inserted, [true, true]);
        assert_eq!(store.count().unwrap(), 2);
        let imported = store
            .submit_imported(vec![event("imported")])
            .unwrap()
            .wait()
            .unwrap();
        assert_eq!(imported.inserted, [true]);
        assert_eq!(
            store.sweep_older_than((day_secs + 86_400) * 1000).unwrap(),
            3
        );
        assert_eq!(store.append(vec![event("last")]).unwrap().inserted, [true]);
    }

    #[test]
    fn day_partitions_cover_every_time() {
        assert_eq!(day_bounds(0), "FROM (0) TO (86400000)");
        assert_eq!(day_bounds(-1), "FROM (-86400000) TO (0)");
        assert_eq!(day_of(-1), -1);
        assert!(day_bounds(day_of(i64::MAX)).ends_with("TO (MAXVALUE)"));
        assert!(day_bounds(day_of(i64::MIN)).starts_with("FROM (MINVALUE)"));
        assert_eq!(partition_name("events", -3), "events_m3");
    }
}
