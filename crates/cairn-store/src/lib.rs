//! cairn-store owns the event history's storage: the [`EventStore`] trait every backend
//! implements, the embedded SQLite backend, record compression with dictionaries learned
//! from the store's own records, and the conformance suite that every backend must
//! pass unchanged (so a PostgreSQL backend can follow without touching callers).
//!
//! Beside the events it keeps named state (`state`: the data directory's settings,
//! schedules), changed only in the same commits as events.
//!
//! Invariants: an append returns only after its events are on disk (fsync'd; one sync is
//! shared by every append waiting at that moment). Nothing but [`EventStore::sweep_older_than`]
//! removes an event, and nothing changes one. The store knows records only as
//! [`cairn_model::IndexedEvent`]s; it knows nothing of HTTP or of AWS wire formats.

mod compression;
pub mod conformance;
mod indexing;
mod pg;
pub mod retention;
mod sqlite;

use cairn_model::{EventCategory, IndexedEvent, LookupAttribute, StateChange};

pub use compression::TrainingSchedule;
pub use indexing::found_by;
#[doc(hidden)]
pub use pg::{open_for_test as open_postgres_for_test, test_location as postgres_test_location};
pub use pg::{PostgresEventStore, PostgresLocation};
pub use sqlite::{SqliteEventStore, SyncMode};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("postgres: {}", postgres_reason(.0))]
    Postgres(#[from] postgres::Error),
    /// The database cannot be reached or used now (down, refused, lost mid-call); the call
    /// fails closed and a later one may succeed.
    #[error("{0}")]
    Unavailable(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("the store's writer has stopped")]
    WriterStopped,
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("record compression failed: {0}")]
    Compression(String),
    /// A change the store will not make without an explicit act (it would remove events).
    #[error("{0}")]
    Refused(String),
}

/// A PostgreSQL error with its causes: the error's own text is only its kind ("db error"),
/// and the reason (`FATAL: role "x" does not exist`, `Connection refused`) is in its sources.
pub(crate) fn postgres_reason(error: &postgres::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The two views Event history offers: management events (the default) and Insights events
/// (`EventCategory=insight`). Data and network-activity events are stored but never listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HistoryView {
    Management,
    Insight,
}

impl HistoryView {
    pub fn category(self) -> EventCategory {
        match self {
            Self::Management => EventCategory::Management,
            Self::Insight => EventCategory::Insight,
        }
    }
}

/// Where the previous page ended: results continue strictly older than this.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cursor {
    pub event_time_millis: i64,
    pub seq: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LookupQuery {
    pub attribute: Option<LookupAttribute>,
    /// Inclusive bounds in epoch milliseconds.
    pub start_millis: Option<i64>,
    pub end_millis: Option<i64>,
    pub view: HistoryView,
    pub limit: usize,
    pub after: Option<Cursor>,
}

impl LookupQuery {
    pub fn all(view: HistoryView, limit: usize) -> Self {
        Self {
            attribute: None,
            start_millis: None,
            end_millis: None,
            view,
            limit,
            after: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct StoredEvent {
    /// Order of arrival; breaks ties between events with the same eventTime.
    pub seq: i64,
    pub event: IndexedEvent,
}

/// An event as a backend reads it back: its stored columns and its record's bytes. The
/// columns are authoritative for what the record alone cannot say the same way (an ID
/// derived for a record without eventID, a category fixed at append).
pub(crate) fn stored_event(
    seq: i64,
    event_id: String,
    event_time_millis: i64,
    category: i64,
    record: Vec<u8>,
) -> Result<StoredEvent, StoreError> {
    let corrupt = |why: String| StoreError::Corrupt(format!("event {seq}: {why}"));
    let record_json = String::from_utf8(record).map_err(|error| corrupt(error.to_string()))?;
    let mut event =
        IndexedEvent::from_json_text(record_json).map_err(|error| corrupt(error.to_string()))?;
    event.event_id = event_id;
    event.event_time_millis = event_time_millis;
    event.category = EventCategory::from_code(category).unwrap_or(EventCategory::Management);
    Ok(StoredEvent { seq, event })
}

impl StoredEvent {
    pub fn cursor(&self) -> Cursor {
        Cursor {
            event_time_millis: self.event.event_time_millis,
            seq: self.seq,
        }
    }
}

/// One page, newest first; `next` is set when older matches remain.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LookupPage {
    pub events: Vec<StoredEvent>,
    pub next: Option<Cursor>,
}

/// For each appended event, in order: whether it was new (false: its eventID was stored
/// already, so it was left alone).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppendOutcome {
    pub inserted: Vec<bool>,
}

impl AppendOutcome {
    pub fn inserted_count(&self) -> usize {
        self.inserted.iter().filter(|inserted| **inserted).count()
    }
}

/// An append on its way to durability. A thread waits for it with [`PendingAppend::wait`];
/// an async task awaits [`PendingAppend::completion`] without holding a thread, which is what
/// lets a server keep many calls waiting on one group commit cheaply.
pub struct PendingAppend(Pending);

pub(crate) type AppendResult = Result<AppendOutcome, StoreError>;

/// Why a submission with an unmet [`cairn_model::Precondition::Requires`] was refused.
pub(crate) fn requirement_refused(change: &StateChange) -> StoreError {
    StoreError::Refused(format!(
        "refused: {}/{} no longer holds the value this write requires",
        change.namespace, change.key
    ))
}

enum Pending {
    Settled(AppendResult),
    Awaiting(tokio::sync::oneshot::Receiver<AppendResult>),
}

/// The writer's end of a [`PendingAppend`].
pub struct AppendReply(tokio::sync::oneshot::Sender<AppendResult>);

impl AppendReply {
    pub fn send(self, outcome: AppendResult) {
        // The caller may have stopped waiting; the append stands regardless.
        let _ = self.0.send(outcome);
    }
}

impl PendingAppend {
    /// An append that is already over.
    pub fn settled(outcome: AppendResult) -> Self {
        Self(Pending::Settled(outcome))
    }

    /// An append a writer will finish through the returned reply.
    pub fn channel() -> (AppendReply, Self) {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        (AppendReply(sender), Self(Pending::Awaiting(receiver)))
    }

    /// Blocks until the append is done (durable, as `append` would have returned). Not for
    /// async tasks: they await [`PendingAppend::completion`].
    pub fn wait(self) -> AppendResult {
        match self.0 {
            Pending::Settled(outcome) => outcome,
            Pending::Awaiting(receiver) => receiver
                .blocking_recv()
                .unwrap_or(Err(StoreError::WriterStopped)),
        }
    }

    pub async fn completion(self) -> AppendResult {
        match self.0 {
            Pending::Settled(outcome) => outcome,
            Pending::Awaiting(receiver) => receiver.await.unwrap_or(Err(StoreError::WriterStopped)),
        }
    }
}

pub trait EventStore: Send + Sync + 'static {
    /// Stores the events; returns once they are durable (unless the store was opened for
    /// bulk loading, where [`EventStore::flush`] makes them durable).
    fn append(&self, events: Vec<IndexedEvent>) -> Result<AppendOutcome, StoreError>;

    /// Starts an append and returns without waiting for it, so a bulk loader can prepare the
    /// next batch meanwhile. Appends submitted from one thread are applied in order.
    /// Backends whose appends block the calling thread must override this: async callers
    /// submit, then await the completion.
    fn submit(&self, events: Vec<IndexedEvent>) -> Result<PendingAppend, StoreError> {
        Ok(PendingAppend::settled(self.append(events)))
    }

    /// As [`EventStore::submit`], with changes to the state kept beside the events, all in
    /// one commit: the events and the changes are durable together, or none of them is.
    fn submit_with_state(
        &self,
        events: Vec<IndexedEvent>,
        changes: Vec<StateChange>,
    ) -> Result<PendingAppend, StoreError>;

    /// As [`EventStore::submit`] for events that were delivered elsewhere before (imported
    /// logs): kept in the history, never in the feed.
    fn submit_imported(&self, events: Vec<IndexedEvent>) -> Result<PendingAppend, StoreError>;

    /// The feed trails deliver from: events recorded after sequence number `after_seq`
    /// (imported ones excepted), in order, at most `limit`. Numbers are given in commit
    /// order and never twice, so once an event is seen, none will appear before it.
    fn feed(&self, after_seq: i64, limit: usize) -> Result<Vec<StoredEvent>, StoreError>;

    /// Every stored event after sequence number `after_seq`, imported ones too, in the same
    /// order and with the same guarantee as [`EventStore::feed`]: what the transparency log
    /// is a tree over.
    fn every_event(&self, after_seq: i64, limit: usize) -> Result<Vec<StoredEvent>, StoreError>;

    /// The highest sequence number given so far: where a trail that starts logging now
    /// starts reading the feed.
    fn last_seq(&self) -> Result<i64, StoreError>;

    /// Every entry of a state namespace, by key.
    fn state(&self, namespace: &str) -> Result<Vec<(String, String)>, StoreError>;

    /// One entry of a state namespace. Backends with an index override this scan.
    fn state_value(&self, namespace: &str, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .state(namespace)?
            .into_iter()
            .find(|(stored, _)| stored == key)
            .map(|(_, value)| value))
    }

    /// How many events are older than `cutoff_millis`: what a retention sweep would remove.
    fn count_older_than(&self, cutoff_millis: i64) -> Result<u64, StoreError>;

    /// Makes every append so far durable. A store opened for serving is always durable, and
    /// this is a no-op there.
    fn flush(&self) -> Result<(), StoreError>;

    /// Newest first, at most `query.limit` events.
    fn lookup(&self, query: &LookupQuery) -> Result<LookupPage, StoreError>;

    /// Removes every event whose eventTime is before `cutoff_millis`; returns how many.
    fn sweep_older_than(&self, cutoff_millis: i64) -> Result<u64, StoreError>;

    /// How many events are stored, of every category.
    fn count(&self) -> Result<u64, StoreError>;
}
