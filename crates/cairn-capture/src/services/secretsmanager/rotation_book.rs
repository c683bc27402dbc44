//! The rotations being watched to their end (see `rotation`), written down so that a restart
//! resumes them instead of forgetting how they end; a RotateSecret is answered only once its
//! watch is written down. A watch holds its caller's session token (it asks as its caller).
//!
//! On one node the book is `DIR/rotation-watches.json`, rewritten whole and atomically when a
//! watch begins and ends, readable by its owner only, like the identities beside it. On a
//! store several nodes share, it is the state namespace [`ROTATION_WATCHES`], each watch
//! sealed by the [`Sealer`] the nodes share (no database reader sees a token), so that any
//! node can take up a watch another began; a watch's end is recorded in the commit that
//! strikes it out, and only if it is still there, so it is recorded once however many nodes
//! saw it end.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use cairn_model::StateChange;
use serde::{Deserialize, Serialize};

use crate::services::hooks::{AskingAs, RecordedEvent, ServiceHost};

/// A book that cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[error("rotation watch book {path}: {reason}")]
pub struct BookError {
    path: PathBuf,
    reason: String,
}

pub(crate) const BOOK_FILE: &str = "rotation-watches.json";
/// The state namespace of the watches on a shared store, keyed `<secret ARN> <version>`.
pub const ROTATION_WATCHES: &str = "secretsmanager/rotation-watches";

/// Seals what is kept where other processes read it (a shared database), and opens it again;
/// `name` is bound into the sealing, so a sealed value cannot be moved to another name.
pub trait Sealer: Send + Sync {
    fn seal(&self, name: &str, plain: &[u8]) -> Result<String, String>;
    fn open(&self, name: &str, sealed: &str) -> Result<Vec<u8>, String>;
}

/// One rotation being watched.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(PartialEq, Eq))]
pub(crate) struct WatchedRotation {
    pub secret_arn: String,
    /// The version the rotation labelled AWSPENDING, which becomes AWSCURRENT if it succeeds.
    pub version_id: String,
    pub started_millis: i64,
    /// When a rotation still pending is recorded as failed.
    pub give_up_at_millis: i64,
    pub caller: AskingAs,
}

impl WatchedRotation {
    pub(crate) fn key(&self) -> String {
        format!("{} {}", self.secret_arn, self.version_id)
    }
}

#[derive(Default, Serialize, Deserialize)]
struct BookFile {
    rotations: Vec<WatchedRotation>,
}

enum Keeping {
    Memory,
    File(PathBuf),
    /// In the store's state; each watch's sealed text as stored, by key, so that its end can
    /// require exactly it.
    Store {
        sealer: Arc<dyn Sealer>,
        stored: Mutex<HashMap<String, String>>,
    },
}

/// The watches, in memory and (unless built for tests) on disk or in the store.
pub struct RotationBook {
    keeping: Keeping,
    rotations: Mutex<Vec<WatchedRotation>>,
}

impl RotationBook {
    /// A book that is never written down: watches end with the process.
    pub fn in_memory() -> Self {
        Self {
            keeping: Keeping::Memory,
            rotations: Mutex::new(Vec::new()),
        }
    }

    /// The book kept in `data_dir`, with the watches a previous run left in it.
    pub fn open(data_dir: &Path) -> Result<Self, BookError> {
        let path = data_dir.join(BOOK_FILE);
        let rotations = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice::<BookFile>(&bytes)
                    .map_err(|error| BookError {
                        path: path.clone(),
                        reason: error.to_string(),
                    })?
                    .rotations
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(error) => {
                return Err(BookError {
                    path,
                    reason: error.to_string(),
                })
            }
        };
        Ok(Self {
            keeping: Keeping::File(path),
            rotations: Mutex::new(rotations),
        })
    }

    /// The book kept in the store's state, sealed by `sealer`: for nodes sharing a store.
    pub fn in_store(sealer: Arc<dyn Sealer>) -> Self {
        Self {
            keeping: Keeping::Store {
                sealer,
                stored: Mutex::new(HashMap::new()),
            },
            rotations: Mutex::new(Vec::new()),
        }
    }

    /// Whether the book is shared through the store: other nodes may begin watches in it.
    pub(crate) fn is_shared(&self) -> bool {
        matches!(self.keeping, Keeping::Store { .. })
    }

    /// Every watch written down (on a shared store: by any node, as the store holds them now).
    pub(crate) async fn rotations(
        &self,
        host: &dyn ServiceHost,
    ) -> Result<Vec<WatchedRotation>, BookError> {
        let Keeping::Store { sealer, stored } = &self.keeping else {
            return Ok(self
                .rotations
                .lock()
                .map(|rotations| rotations.clone())
                .unwrap_or_default());
        };
        let entries = host
            .state(ROTATION_WATCHES)
            .await
            .map_err(|error| self.error(error))?;
        let mut rotations = Vec::with_capacity(entries.len());
        let mut seen = HashMap::new();
        for (key, sealed) in entries {
            let opened = sealer
                .open(&key, &sealed)
                .and_then(|plain| {
                    serde_json::from_slice::<WatchedRotation>(&plain).map_err(|e| e.to_string())
                })
                .map_err(|reason| self.error(format!("watch {key}: {reason}")));
            match opened {
                Ok(rotation) => {
                    rotations.push(rotation);
                    seen.insert(key, sealed);
                }
                Err(error) => {
                    tracing::error!(%error, "a rotation watch cannot be read; it is left as it is")
                }
            }
        }
        if let Ok(mut kept) = stored.lock() {
            *kept = seen;
        }
        Ok(rotations)
    }

    /// Writes `rotation` down (replacing a watch of the same version).
    pub(crate) async fn add(
        self: &Arc<Self>,
        host: &dyn ServiceHost,
        rotation: WatchedRotation,
    ) -> Result<(), BookError> {
        if let Keeping::Store { sealer, stored } = &self.keeping {
            let key = rotation.key();
            let plain = serde_json::to_vec(&rotation).map_err(|error| self.error(error))?;
            let sealed = sealer
                .seal(&key, &plain)
                .map_err(|error| self.error(error))?;
            host.record(
                Vec::new(),
                vec![StateChange::put(
                    ROTATION_WATCHES,
                    key.clone(),
                    sealed.clone(),
                )],
            )
            .await
            .map_err(|error| self.error(error))?;
            if let Ok(mut stored) = stored.lock() {
                stored.insert(key, sealed);
            }
            return Ok(());
        }
        self.change(move |rotations| {
            rotations.retain(|kept| kept.key() != rotation.key());
            rotations.push(rotation);
        })
        .await
    }

    /// Records how `rotation` ended (`end`, if anything is to be recorded) and strikes its
    /// watch out. Returns whether this call did so: on a shared store, `false` when another
    /// node already had.
    pub(crate) async fn end(
        self: &Arc<Self>,
        host: &dyn ServiceHost,
        rotation: &WatchedRotation,
        end: Option<RecordedEvent>,
    ) -> Result<bool, BookError> {
        let events: Vec<RecordedEvent> = end.into_iter().collect();
        if let Keeping::Store { stored, .. } = &self.keeping {
            let key = rotation.key();
            let Some(sealed) = stored
                .lock()
                .ok()
                .and_then(|stored| stored.get(&key).cloned())
            else {
                return Ok(false);
            };
            let changes = vec![
                StateChange::require(ROTATION_WATCHES, key.clone(), sealed),
                StateChange::remove(ROTATION_WATCHES, key.clone()),
            ];
            let ended = host
                .record(events, changes)
                .await
                .map_err(|error| self.error(error))?;
            if let Ok(mut stored) = stored.lock() {
                stored.remove(&key);
            }
            return Ok(ended);
        }
        if !events.is_empty() {
            // Left written down if this fails: the next start asks again.
            let recorded = host
                .record(events, Vec::new())
                .await
                .map_err(|error| self.error(error))?;
            if !recorded {
                return Ok(false);
            }
        }
        let key = rotation.key();
        self.change(move |rotations| rotations.retain(|kept| kept.key() != key))
            .await?;
        Ok(true)
    }

    /// Applies `edit` and rewrites the file, under one lock so that the file's order of
    /// changes is the memory's.
    async fn change(
        self: &Arc<Self>,
        edit: impl FnOnce(&mut Vec<WatchedRotation>) + Send + 'static,
    ) -> Result<(), BookError> {
        let book = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let mut rotations = book
                .rotations
                .lock()
                .map_err(|_| book.error("the book's lock was poisoned"))?;
            edit(&mut rotations);
            let Keeping::File(path) = &book.keeping else {
                return Ok(());
            };
            let file = BookFile {
                rotations: rotations.clone(),
            };
            let text = serde_json::to_vec_pretty(&file).map_err(|error| book.error(error))?;
            cairn_auth::write_private(path, &text).map_err(|error| book.error(error))
        })
        .await
        .map_err(|error| self.error(error))?
    }

    fn error(&self, reason: impl ToString) -> BookError {
        let path = match &self.keeping {
            Keeping::File(path) => path.clone(),
            Keeping::Store { .. } => PathBuf::from(format!("(state {ROTATION_WATCHES})")),
            Keeping::Memory => PathBuf::new(),
        };
        BookError {
            path,
            reason: reason.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use cairn_model::Precondition;
    use serde_json::Value;

    use super::*;
    use crate::services::hooks::{BoxFuture, HostError, Upstream};

    fn rotation(version_id: &str, session_token: Option<&str>) -> WatchedRotation {
        WatchedRotation {
            secret_arn: "arn:aws:secretsmanager:us-east-1:111122223333:secret:db-AbCdEf".into(),
            version_id: version_id.into(),
            started_millis: 1_700_000_000_000,
            give_up_at_millis: 1_700_003_600_000,
            caller: AskingAs {
                region: "us-east-1".into(),
                access_key_id: "ASIAEXAMPLE".into(),
                session_token: session_token.map(str::to_owned),
                host: "127.0.0.1:4566".into(),
            },
        }
    }

    fn ended(version_id: &str) -> RecordedEvent {
        RecordedEvent {
            event: crate::services::ServiceEvent {
                event_source: "secretsmanager.amazonaws.com",
                event_name: "RotationSucceeded",
                resource_arn: format!("secret {version_id}"),
                details: None,
            },
            account_id: "111122223333".into(),
            region: "us-east-1".into(),
        }
    }

    /// A store's state and recorded events in memory, applying preconditions as the store
    /// does: a `Requires` that does not hold refuses the whole submission.
    #[derive(Default)]
    struct MemoryHost {
        state: Mutex<BTreeMap<(String, String), String>>,
        recorded: Mutex<Vec<RecordedEvent>>,
    }

    impl ServiceHost for MemoryHost {
        fn now_millis(&self) -> i64 {
            1_700_000_000_000
        }

        fn record(
            &self,
            events: Vec<RecordedEvent>,
            changes: Vec<StateChange>,
        ) -> BoxFuture<'_, Result<bool, HostError>> {
            Box::pin(async move {
                let mut state = self.state.lock().unwrap();
                let holds = changes.iter().all(|change| match &change.precondition {
                    Precondition::Requires(expected) => {
                        state.get(&(change.namespace.clone(), change.key.clone())) == Some(expected)
                    }
                    _ => true,
                });
                if !holds {
                    return Ok(false);
                }
                for change in changes {
                    if matches!(change.precondition, Precondition::Requires(_)) {
                        continue;
                    }
                    let at = (change.namespace, change.key);
                    match change.value {
                        Some(value) => state.insert(at, value),
                        None => state.remove(&at),
                    };
                }
                self.recorded.lock().unwrap().extend(events);
                Ok(true)
            })
        }

        fn state(
            &self,
            namespace: &'static str,
        ) -> BoxFuture<'_, Result<Vec<(String, String)>, HostError>> {
            Box::pin(async move {
                Ok(self
                    .state
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|((kept, _), _)| kept == namespace)
                    .map(|((_, key), value)| (key.clone(), value.clone()))
                    .collect())
            })
        }

        fn upstream_as(&self, _: &str, _: AskingAs) -> Option<Arc<dyn Upstream>> {
            None
        }

        fn events_named(
            &self,
            _: &'static str,
            _: &'static str,
            _: i64,
        ) -> BoxFuture<'_, Result<Vec<(i64, Value)>, HostError>> {
            Box::pin(async { Ok(Vec::new()) })
        }
    }

    /// Hex with the name bound in: enough to prove what the book stores is the sealer's
    /// output, not the watch in clear.
    struct HexSealer;

    fn to_hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    fn from_hex(text: &str) -> Result<Vec<u8>, String> {
        (0..text.len())
            .step_by(2)
            .map(|at| {
                text.get(at..at + 2)
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                    .ok_or_else(|| "not hex".to_owned())
            })
            .collect()
    }

    impl Sealer for HexSealer {
        fn seal(&self, name: &str, plain: &[u8]) -> Result<String, String> {
            Ok(format!("{}:{}", to_hex(name.as_bytes()), to_hex(plain)))
        }

        fn open(&self, name: &str, sealed: &str) -> Result<Vec<u8>, String> {
            let (bound, plain) = sealed.split_once(':').ok_or("not sealed")?;
            if bound != to_hex(name.as_bytes()) {
                return Err("sealed for another name".into());
            }
            from_hex(plain)
        }
    }

    #[tokio::test]
    async fn watches_written_down_are_there_after_reopening_until_struck_out() {
        let host = MemoryHost::default();
        let dir = tempfile::tempdir().unwrap();
        let book = Arc::new(RotationBook::open(dir.path()).unwrap());
        assert!(book.rotations(&host).await.unwrap().is_empty());
        book.add(&host, rotation("v2", Some("token")))
            .await
            .unwrap();
        book.add(&host, rotation("v3", None)).await.unwrap();
        book.add(&host, rotation("v2", Some("newer token")))
            .await
            .unwrap();

        let reopened = Arc::new(RotationBook::open(dir.path()).unwrap());
        let kept = reopened.rotations(&host).await.unwrap();
        assert_eq!(kept.len(), 2, "a version is watched once");
        assert!(kept.contains(&rotation("v3", None)));
        assert!(kept.contains(&rotation("v2", Some("newer token"))));

        assert!(reopened
            .end(&host, &rotation("v2", None), Some(ended("v2")))
            .await
            .unwrap());
        assert_eq!(host.recorded.lock().unwrap().len(), 1);
        let reopened = Arc::new(RotationBook::open(dir.path()).unwrap());
        assert!(reopened.rotations(&host).await.unwrap() == [rotation("v3", None)]);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn the_book_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let book = Arc::new(RotationBook::open(dir.path()).unwrap());
        book.add(&MemoryHost::default(), rotation("v2", Some("token")))
            .await
            .unwrap();
        let mode = std::fs::metadata(dir.path().join(BOOK_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_damaged_book_is_an_error_that_names_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(BOOK_FILE), b"{\"rotations\": [").unwrap();
        let error = RotationBook::open(dir.path()).err().unwrap().to_string();
        assert!(error.contains(BOOK_FILE), "{error}");
    }

    #[tokio::test]
    async fn a_book_in_memory_writes_nothing() {
        let host = MemoryHost::default();
        let book = Arc::new(RotationBook::in_memory());
        book.add(&host, rotation("v2", None)).await.unwrap();
        assert_eq!(book.rotations(&host).await.unwrap().len(), 1);
        assert!(host.state.lock().unwrap().is_empty());
        book.end(&host, &rotation("v2", None), None).await.unwrap();
        assert!(book.rotations(&host).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn on_a_shared_store_any_node_takes_a_watch_up_and_its_end_is_recorded_once() {
        let host = MemoryHost::default();
        let began = Arc::new(RotationBook::in_store(Arc::new(HexSealer)));
        began
            .add(&host, rotation("v2", Some("a session token")))
            .await
            .unwrap();
        let stored = host.state.lock().unwrap().clone();
        assert_eq!(stored.len(), 1);
        let ((namespace, _), value) = stored.iter().next().unwrap();
        assert_eq!(namespace, ROTATION_WATCHES);
        assert!(!value.contains("a session token"), "sealed: {value}");

        // Another node sees the watch; both see the rotation end; one end is recorded.
        let other = Arc::new(RotationBook::in_store(Arc::new(HexSealer)));
        let seen = other.rotations(&host).await.unwrap();
        assert!(seen == [rotation("v2", Some("a session token"))]);
        began.rotations(&host).await.unwrap();
        let first = began.end(&host, &seen[0], Some(ended("v2"))).await.unwrap();
        let second = other.end(&host, &seen[0], Some(ended("v2"))).await.unwrap();
        assert!(first && !second);
        assert_eq!(host.recorded.lock().unwrap().len(), 1);
        assert!(host.state.lock().unwrap().is_empty(), "struck out");
        assert!(other.rotations(&host).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_shared_watch_that_does_not_open_is_left_alone() {
        let host = MemoryHost::default();
        host.state.lock().unwrap().insert(
            (ROTATION_WATCHES.into(), "moved v9".into()),
            HexSealer
                .seal(
                    "another name",
                    &serde_json::to_vec(&rotation("v9", None)).unwrap(),
                )
                .unwrap(),
        );
        let book = Arc::new(RotationBook::in_store(Arc::new(HexSealer)));
        assert!(book.rotations(&host).await.unwrap().is_empty());
        assert_eq!(host.state.lock().unwrap().len(), 1, "kept, not dropped");
    }
}
