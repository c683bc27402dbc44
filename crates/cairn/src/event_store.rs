//! Opens the event history the settings name: SQLite in the data directory, or a shared
//! PostgreSQL.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use cairn_store::{EventStore, PostgresEventStore, SqliteEventStore, SyncMode};

use crate::config::StoreChoice;

/// What the store is opened for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Every append durable before it returns.
    Serving,
    /// An import: durable at `flush`, which is all that is acknowledged.
    BulkLoad,
}

pub fn open(
    choice: &StoreChoice,
    data_dir: &Path,
    purpose: Purpose,
) -> anyhow::Result<Arc<dyn EventStore>> {
    Ok(match choice {
        StoreChoice::Embedded => {
            let sync_mode = match purpose {
                Purpose::Serving => SyncMode::EveryAppend,
                Purpose::BulkLoad => SyncMode::OnFlush,
            };
            Arc::new(
                SqliteEventStore::open_with(data_dir, sync_mode)
                    .context("cannot open the event store")?,
            )
        }
        StoreChoice::Postgres(location) => Arc::new(
            PostgresEventStore::open(location)
                .with_context(|| format!("cannot open the event store at {location}"))?,
        ),
    })
}
