//! Leases: which of several nodes on one shared store does a piece of work (delivering
//! trails), and the fencing token that keeps a node that lost its lease from writing.
//!
//! A lease is two state entries. `NAME` holds the holder, its epoch and when it expires;
//! the holder renews it every [`Lease::RENEW_EVERY`] and anyone may take it once it has
//! expired. `NAME.fence` holds "holder epoch" and changes only when the lease changes hands:
//! every write the holder makes for the leased work requires it unchanged
//! ([`cairn_model::Precondition::Requires`]), so a node that was paused past its expiry and
//! wakes up still believing it holds the lease has its writes refused, whatever it thinks.
//!
//! Expiry is judged by each node's own clock: nodes are assumed to agree on the time to
//! well within the lease's length (NTP does that).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_model::{Clock, StateChange};
use cairn_store::{EventStore, StoreError};
use serde::{Deserialize, Serialize};

/// The state namespace of leases.
pub const LEASES: &str = "leases";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    holder: String,
    epoch: u64,
    expires_millis: i64,
}

impl Record {
    fn fence(&self) -> String {
        format!("{} {}", self.holder, self.epoch)
    }
}

/// One node's side of one lease.
pub struct Lease {
    store: Arc<dyn EventStore>,
    clock: Arc<dyn Clock>,
    name: String,
    node: String,
    length: Duration,
    /// What this node holds: the record as it last wrote it.
    held: Mutex<Option<Record>>,
}

impl Lease {
    /// How often the keeper renews (or tries to take) the lease.
    pub const RENEW_EVERY: Duration = Duration::from_millis(1_000);
    /// How long a lease lasts without renewal: a holder that stops renewing (killed, cut
    /// off) is replaced this long after its last renewal, plus one try of the others.
    pub const LENGTH: Duration = Duration::from_millis(3_000);

    pub fn new(store: Arc<dyn EventStore>, clock: Arc<dyn Clock>, name: &str, node: &str) -> Self {
        Self {
            store,
            clock,
            name: name.to_owned(),
            node: node.to_owned(),
            length: Self::LENGTH,
            held: Mutex::new(None),
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    fn fence_key(&self) -> String {
        format!("{}.fence", self.name)
    }

    /// The write that fences work done under the lease, while this node believes it holds
    /// it unexpired; `None` otherwise.
    pub fn fence(&self) -> Option<StateChange> {
        let held = self.held.lock().ok()?.clone()?;
        if self.clock.now_millis() >= held.expires_millis {
            return None;
        }
        Some(StateChange::require(LEASES, self.fence_key(), held.fence()))
    }

    /// Renews the lease if this node holds it, takes it if it is free or expired; returns
    /// whether this node holds it now. Blocking: it waits for the store.
    pub fn try_hold(&self) -> Result<bool, StoreError> {
        let now = self.clock.now_millis();
        let expires_millis = now.saturating_add(self.length.as_millis() as i64);
        let stored = self.store.state_value(LEASES, &self.name)?;
        let current: Option<Record> = stored
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok());
        let mine = self.held.lock().map(|held| held.clone()).unwrap_or(None);
        let next = match (&current, &mine) {
            (Some(record), Some(held)) if record == held => Record {
                expires_millis,
                ..held.clone()
            },
            (Some(record), _) if record.expires_millis > now => {
                self.set_held(None);
                return Ok(false);
            }
            (Some(record), _) => Record {
                holder: self.node.clone(),
                epoch: record.epoch.saturating_add(1),
                expires_millis,
            },
            (None, _) => Record {
                holder: self.node.clone(),
                epoch: 1,
                expires_millis,
            },
        };
        let text = serde_json::to_string(&next).map_err(|error| {
            StoreError::Corrupt(format!("lease {} does not serialize: {error}", self.name))
        })?;
        let mut changes = Vec::new();
        match &stored {
            Some(read) => {
                changes.push(StateChange::require(LEASES, &self.name, read.clone()));
                changes.push(StateChange::put(LEASES, &self.name, text.clone()));
                changes.push(StateChange::put(LEASES, self.fence_key(), next.fence()));
            }
            None => {
                changes.push(StateChange::put_if_absent(LEASES, &self.name, text.clone()));
                changes.push(StateChange::put_if_absent(
                    LEASES,
                    self.fence_key(),
                    next.fence(),
                ));
            }
        }
        let taken = mine.as_ref().map(Record::fence) != Some(next.fence());
        match self.store.submit_with_state(Vec::new(), changes)?.wait() {
            Ok(_) => {}
            Err(StoreError::Refused(_)) => {
                self.set_held(None);
                return Ok(false);
            }
            Err(error) => return Err(error),
        }
        // A put-if-absent says nothing of who won: read it back.
        let won = stored.is_some() || self.store.state_value(LEASES, &self.name)? == Some(text);
        if won && taken {
            tracing::info!(lease = %self.name, node = %self.node, epoch = next.epoch, "took the lease");
        }
        self.set_held(won.then_some(next));
        Ok(won)
    }

    fn set_held(&self, record: Option<Record>) {
        if let Ok(mut held) = self.held.lock() {
            if held.is_some() && record.is_none() {
                tracing::info!(lease = %self.name, node = %self.node, "no longer holds the lease");
            }
            *held = record;
        }
    }

    /// Keeps trying to hold the lease, for ever.
    pub async fn keep(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(Self::RENEW_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let lease = Arc::clone(&self);
            match tokio::task::spawn_blocking(move || lease.try_hold()).await {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => {
                    tracing::warn!(%error, lease = %self.name, "lease not renewed; retried");
                }
                Err(error) => tracing::error!(%error, "lease keeper failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_model::FixedClock;
    use cairn_store::SqliteEventStore;

    fn lease(store: &Arc<dyn EventStore>, clock: &Arc<FixedClock>, node: &str) -> Lease {
        let clock: Arc<dyn Clock> = clock.clone();
        Lease::new(store.clone(), clock, "delivery", node)
    }

    #[test]
    fn one_node_holds_the_lease_until_it_stops_renewing_and_its_old_writes_are_fenced() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn EventStore> = Arc::new(SqliteEventStore::open(dir.path()).unwrap());
        let clock = Arc::new(FixedClock::new(1_000_000));
        let (a, b) = (lease(&store, &clock, "a"), lease(&store, &clock, "b"));
        assert!(a.try_hold().unwrap());
        assert!(!b.try_hold().unwrap());
        let fenced_by_a = a.fence().unwrap();
        assert!(b.fence().is_none());
        clock.set(1_001_000);
        assert!(a.try_hold().unwrap(), "renewed");
        assert!(!b.try_hold().unwrap());
        // A renewal leaves the fence alone: writes made under it still go through.
        store
            .submit_with_state(
                Vec::new(),
                vec![fenced_by_a.clone(), StateChange::put("work", "k", "1")],
            )
            .unwrap()
            .wait()
            .unwrap();
        // a stops renewing; once its lease has expired, b takes it.
        clock.set(1_001_000 + Lease::LENGTH.as_millis() as i64);
        assert!(a.fence().is_none(), "a knows its lease has run out");
        assert!(b.try_hold().unwrap());
        // a, paused through all of this, writes with the fence it had: refused.
        let late = store
            .submit_with_state(
                Vec::new(),
                vec![fenced_by_a, StateChange::put("work", "k", "stale")],
            )
            .unwrap()
            .wait();
        assert!(matches!(late, Err(StoreError::Refused(_))), "{late:?}");
        assert_eq!(
            store.state_value("work", "k").unwrap().as_deref(),
            Some("1")
        );
        assert!(!a.try_hold().unwrap(), "b's lease is live");
        let fenced_by_b = b.fence().unwrap();
        store
            .submit_with_state(
                Vec::new(),
                vec![fenced_by_b, StateChange::put("work", "k", "2")],
            )
            .unwrap()
            .wait()
            .unwrap();
    }

    #[test]
    fn two_nodes_taking_a_free_lease_at_once_leave_one_holder() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn EventStore> = Arc::new(SqliteEventStore::open(dir.path()).unwrap());
        let clock = Arc::new(FixedClock::new(5_000));
        let nodes: Vec<Arc<Lease>> = (0..6)
            .map(|n| Arc::new(lease(&store, &clock, &format!("n{n}"))))
            .collect();
        let threads: Vec<_> = nodes
            .iter()
            .map(|node| {
                let node = Arc::clone(node);
                std::thread::spawn(move || node.try_hold().unwrap())
            })
            .collect();
        let holders = threads
            .into_iter()
            .map(|thread| thread.join().unwrap())
            .filter(|held| *held)
            .count();
        assert_eq!(holders, 1);
        assert_eq!(
            nodes.iter().filter(|node| node.fence().is_some()).count(),
            1
        );
    }
}
