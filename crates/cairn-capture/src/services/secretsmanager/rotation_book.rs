//! The rotations being watched to their end (see `rotation`), written down in
//! `DIR/rotation-watches.json` so that a restart resumes them instead of forgetting how they
//! end. The file is rewritten whole and atomically when a watch begins and when it ends, and a
//! RotateSecret is answered only once its watch is written down. It holds the callers'
//! session tokens (a watch asks as its caller), so it is readable by its owner only, like the
//! identities beside it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::services::hooks::AskingAs;

/// A book that cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[error("rotation watch book {path}: {reason}")]
pub struct BookError {
    path: PathBuf,
    reason: String,
}

pub(crate) const BOOK_FILE: &str = "rotation-watches.json";

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

#[derive(Default, Serialize, Deserialize)]
struct BookFile {
    rotations: Vec<WatchedRotation>,
}

/// The watches, in memory and (unless built for tests) on disk.
pub struct RotationBook {
    path: Option<PathBuf>,
    rotations: Mutex<Vec<WatchedRotation>>,
}

impl RotationBook {
    /// A book that is never written down: watches end with the process.
    pub fn in_memory() -> Self {
        Self {
            path: None,
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
            path: Some(path),
            rotations: Mutex::new(rotations),
        })
    }

    pub(crate) fn rotations(&self) -> Vec<WatchedRotation> {
        self.rotations
            .lock()
            .map(|rotations| rotations.clone())
            .unwrap_or_default()
    }

    /// Writes `rotation` down (replacing a watch of the same version).
    pub(crate) async fn add(self: &Arc<Self>, rotation: WatchedRotation) -> Result<(), BookError> {
        self.change(move |rotations| {
            rotations
                .retain(|kept| !same_version(kept, &rotation.secret_arn, &rotation.version_id));
            rotations.push(rotation);
        })
        .await
    }

    /// Strikes out the watch of `version_id` of `secret_arn`.
    pub(crate) async fn remove(
        self: &Arc<Self>,
        secret_arn: &str,
        version_id: &str,
    ) -> Result<(), BookError> {
        let (secret_arn, version_id) = (secret_arn.to_owned(), version_id.to_owned());
        self.change(move |rotations| {
            rotations.retain(|kept| !same_version(kept, &secret_arn, &version_id));
        })
        .await
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
            let Some(path) = &book.path else {
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
        BookError {
            path: self.path.clone().unwrap_or_default(),
            reason: reason.to_string(),
        }
    }
}

fn same_version(rotation: &WatchedRotation, secret_arn: &str, version_id: &str) -> bool {
    rotation.secret_arn == secret_arn && rotation.version_id == version_id
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[tokio::test]
    async fn watches_written_down_are_there_after_reopening_until_struck_out() {
        let dir = tempfile::tempdir().unwrap();
        let book = Arc::new(RotationBook::open(dir.path()).unwrap());
        assert!(book.rotations().is_empty());
        book.add(rotation("v2", Some("token"))).await.unwrap();
        book.add(rotation("v3", None)).await.unwrap();
        book.add(rotation("v2", Some("newer token"))).await.unwrap();

        let reopened = Arc::new(RotationBook::open(dir.path()).unwrap());
        let kept = reopened.rotations();
        assert_eq!(kept.len(), 2, "a version is watched once");
        assert!(kept.contains(&rotation("v3", None)));
        assert!(kept.contains(&rotation("v2", Some("newer token"))));

        reopened
            .remove(&rotation("v2", None).secret_arn, "v2")
            .await
            .unwrap();
        let reopened = RotationBook::open(dir.path()).unwrap();
        assert_eq!(reopened.rotations().len(), 1);
        assert!(reopened.rotations().contains(&rotation("v3", None)));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn the_book_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let book = Arc::new(RotationBook::open(dir.path()).unwrap());
        book.add(rotation("v2", Some("token"))).await.unwrap();
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
        let book = Arc::new(RotationBook::in_memory());
        book.add(rotation("v2", None)).await.unwrap();
        assert_eq!(book.rotations().len(), 1);
        book.remove(&rotation("v2", None).secret_arn, "v2")
            .await
            .unwrap();
        assert!(book.rotations().is_empty());
    }
}
