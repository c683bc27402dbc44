//! The transparency log: beside the hourly digests, a Merkle tree (RFC 6962) over every
//! event of the feed, in feed order, its leaf the SHA-256 of the record's exact text, with
//! a signed checkpoint (C2SP signed note) after each round. For one event ID it proves
//! inclusion against a checkpoint; between two checkpoints, consistency.
//!
//! Stored hashes are appended to `<data>/transparency/hashes` (32 bytes each, fdatasync'd)
//! before the round's head and its leaves (event ID → leaf index and feed position) are
//! committed as state; a crash in between leaves hashes past the committed head, which the
//! next open cuts off. So the tree is exactly the committed head, and it only grows.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use cairn_integrity::merkle::{self, Hash, HashReader, MerkleError};
use cairn_integrity::note::{checkpoint_text, NoteSigner};
use cairn_model::trail::Trail;
use cairn_model::StateChange;
use cairn_store::EventStore;
use serde::{Deserialize, Serialize};

use crate::objects::{ObjectPut, ObjectStore};
use crate::{DeliveryError, TRAILS};

/// The committed head: `{size, after_seq, checkpoint}`.
pub const TRANSPARENCY: &str = "transparency";
/// Event ID → `<leaf index> <feed position>`.
pub const TRANSPARENCY_LEAVES: &str = "transparency-leaves";
const HEAD: &str = "head";
/// Feed events taken per commit.
const BATCH: usize = 20_000;
/// C2SP tlog-tiles: tiles of 256 hashes, 8 tree levels each.
const TILE_HEIGHT: u32 = 8;
const TILE_WIDTH: u64 = 256;

/// A tile's place as C2SP spells it in a path: `<L>/<N>` or `<L>/<N>.p/<W>`, with N in
/// groups of three digits, all but the last prefixed `x` (`x001/x234/067`).
pub fn parse_tile_path(path: &str) -> Option<(u32, u64, u64)> {
    let (level, rest) = path.split_once('/')?;
    // One spelling per tile: plain digits, no leading zeros.
    let canonical = |text: &str| {
        !text.is_empty()
            && text.bytes().all(|byte| byte.is_ascii_digit())
            && (text == "0" || !text.starts_with('0'))
    };
    if !canonical(level) {
        return None;
    }
    let level: u32 = level.parse().ok().filter(|level| *level < 8)?;
    let (number, width) = match rest.split_once(".p/") {
        Some((number, width)) => {
            if !canonical(width) {
                return None;
            }
            let width: u64 = width
                .parse()
                .ok()
                .filter(|width| (1..TILE_WIDTH).contains(width))?;
            (number, width)
        }
        None => (rest, TILE_WIDTH),
    };
    let groups: Vec<&str> = number.split('/').collect();
    let (last, leading) = groups.split_last()?;
    let mut index: u64 = 0;
    for group in leading
        .iter()
        .map(|group| group.strip_prefix('x'))
        .chain([Some(*last)])
    {
        let group =
            group.filter(|group| group.len() == 3 && group.bytes().all(|b| b.is_ascii_digit()))?;
        index = index.checked_mul(1000)?.checked_add(group.parse().ok()?)?;
    }
    Some((level, index, width))
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Head {
    size: u64,
    after_seq: i64,
    checkpoint: String,
}

/// One event's proof, with the record it proves.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventProof {
    pub event_id: String,
    pub leaf_index: u64,
    pub tree_size: u64,
    /// The audit path, bottom up, hex.
    pub inclusion_path: Vec<String>,
    /// The signed checkpoint of `tree_size`.
    pub checkpoint: String,
    /// The record's text, as hashed into the leaf.
    pub record: String,
}

/// Stored hashes: those written to the file, then those of the round in progress.
struct Hashes<'a> {
    file: &'a File,
    written: u64,
    pending: &'a [Hash],
}

impl HashReader for Hashes<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, MerkleError> {
        indexes
            .iter()
            .map(|&index| {
                if index >= self.written {
                    return self
                        .pending
                        .get((index - self.written) as usize)
                        .copied()
                        .ok_or_else(|| MerkleError::Storage(format!("no stored hash {index}")));
                }
                let mut hash = [0u8; 32];
                self.file
                    .read_exact_at(&mut hash, index * 32)
                    .map_err(|error| MerkleError::Storage(error.to_string()))?;
                Ok(hash)
            })
            .collect()
    }
}

pub struct TransparencyLog {
    store: Arc<dyn EventStore>,
    signer: NoteSigner,
    file: File,
    head: RwLock<Head>,
    /// One round at a time appends.
    appending: Mutex<()>,
}

impl std::fmt::Debug for TransparencyLog {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TransparencyLog")
            .field("signer", &self.signer)
            .finish_non_exhaustive()
    }
}

fn failed(error: impl std::fmt::Display) -> DeliveryError {
    DeliveryError::Transparency(error.to_string())
}

impl TransparencyLog {
    pub fn open(data_dir: &Path, store: Arc<dyn EventStore>) -> Result<Self, DeliveryError> {
        let signer = NoteSigner::open(data_dir).map_err(failed)?;
        let head: Head = match store.state_value(TRANSPARENCY, HEAD)? {
            Some(text) => serde_json::from_str(&text).map_err(failed)?,
            None => Head::default(),
        };
        let dir = data_dir.join("transparency");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("hashes");
        let created = !path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        // One keeper per data directory: another would cut off this one's round in flight.
        file.try_lock().map_err(|_| {
            failed(format!(
                "{} is held by another Cairn on this data directory",
                path.display()
            ))
        })?;
        if created {
            File::open(&dir)?.sync_all()?;
            File::open(data_dir)?.sync_all()?;
        }
        if !head.checkpoint.is_empty()
            && cairn_integrity::note::verify_checkpoint(&head.checkpoint, &signer.verifier_key())
                .is_none()
        {
            return Err(failed(
                "the stored checkpoint is not signed by the key in transparency-key/ (was the \
                 key replaced?): the log would become another log",
            ));
        }
        let committed = merkle::stored_hash_count(head.size) * 32;
        let length = file.metadata()?.len();
        if length < committed {
            return Err(failed(format!(
                "the transparency log holds {length} bytes of hashes, its head needs {committed}"
            )));
        }
        // Hashes of a round whose head was never committed.
        file.set_len(committed)?;
        file.sync_all()?;
        let log = Self {
            store,
            signer,
            file,
            head: RwLock::new(head),
            appending: Mutex::new(()),
        };
        if log.head().checkpoint.is_empty() {
            log.commit_head(Head::default(), Vec::new())?;
        }
        Ok(log)
    }

    /// The committed head. A writer that panicked holding it leaves the last one set.
    fn head(&self) -> Head {
        match self.head.read() {
            Ok(head) => head.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The head as the store holds it: after a commit whose outcome is unknown.
    fn reload_head(&self) -> Result<(), DeliveryError> {
        let head: Head = match self.store.state_value(TRANSPARENCY, HEAD)? {
            Some(text) => serde_json::from_str(&text).map_err(failed)?,
            None => Head::default(),
        };
        self.set_head(head);
        Ok(())
    }

    fn set_head(&self, head: Head) {
        match self.head.write() {
            Ok(mut current) => *current = head,
            Err(poisoned) => *poisoned.into_inner() = head,
        }
    }

    /// The hashes written for a tree of `size`, then `pending` (the round in progress).
    fn reader<'a>(&'a self, size: u64, pending: &'a [Hash]) -> Hashes<'a> {
        Hashes {
            file: &self.file,
            written: merkle::stored_hash_count(size),
            pending,
        }
    }

    fn commit_head(
        &self,
        mut head: Head,
        mut changes: Vec<StateChange>,
    ) -> Result<(), DeliveryError> {
        let root = merkle::tree_hash(head.size, &self.reader(head.size, &[])).map_err(failed)?;
        head.checkpoint = self
            .signer
            .sign(&checkpoint_text(self.signer.name(), head.size, &root));
        changes.push(StateChange::put(
            TRANSPARENCY,
            HEAD.to_owned(),
            serde_json::to_string(&head).map_err(failed)?,
        ));
        let committed = self
            .store
            .submit_with_state(Vec::new(), changes)
            .and_then(|pending| pending.wait());
        if let Err(error) = committed {
            // It may have been stored all the same: go on from what the store says.
            self.reload_head()?;
            return Err(error.into());
        }
        self.set_head(head);
        Ok(())
    }

    /// Appends every event the feed holds past the head, a batch per commit; returns how
    /// many. Blocking: run it off the async workers.
    pub fn append_round(&self) -> Result<u64, DeliveryError> {
        let _one = self.appending.lock().map_err(failed)?;
        let mut appended = 0;
        loop {
            let head = self.head();
            let events = self.store.feed(head.after_seq, BATCH)?;
            let Some(last) = events.last() else {
                return Ok(appended);
            };
            let after_seq = last.seq;
            let mut pending: Vec<Hash> = Vec::new();
            let mut changes = Vec::with_capacity(events.len() + 1);
            let mut size = head.size;
            for event in &events {
                let leaf = merkle::leaf_hash(event.event.record_json.as_bytes());
                let hashes =
                    merkle::hashes_for_append(size, leaf, &self.reader(head.size, &pending))
                        .map_err(failed)?;
                pending.extend(hashes);
                changes.push(StateChange::put(
                    TRANSPARENCY_LEAVES,
                    event.event.event_id.clone(),
                    format!("{size} {}", event.seq),
                ));
                size += 1;
            }
            let mut bytes = Vec::with_capacity(pending.len() * 32);
            for hash in &pending {
                bytes.extend_from_slice(hash);
            }
            // After the committed hashes, over any a torn round left.
            let offset = merkle::stored_hash_count(head.size) * 32;
            self.file.write_all_at(&bytes, offset)?;
            self.file.sync_data()?;
            self.commit_head(
                Head {
                    size,
                    after_seq,
                    checkpoint: String::new(),
                },
                changes,
            )?;
            appended += events.len() as u64;
        }
    }

    /// Appends and signs every `cadence`, for ever, and puts each new checkpoint into the
    /// bucket of every logging trail with log file validation (`objects`), at `<prefix>/AWSLogs/<account>/
    /// CloudTrail-Transparency/checkpoint`, where outside parties can keep them. A failed
    /// round or put is logged and retried; neither holds up capture or delivery.
    pub async fn run(self: Arc<Self>, cadence: Duration, objects: Option<Arc<dyn ObjectStore>>) {
        let mut ticks = tokio::time::interval(cadence);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Trail ARN → the checkpoint last put in its bucket.
        let mut published: HashMap<String, String> = HashMap::new();
        loop {
            ticks.tick().await;
            let log = self.clone();
            match tokio::task::spawn_blocking(move || log.append_round()).await {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => tracing::warn!(%error, "transparency log round failed; retried"),
                Err(error) => tracing::warn!(%error, "transparency log round stopped"),
            }
            if let Some(objects) = &objects {
                self.publish(objects.as_ref(), &mut published).await;
            }
        }
    }

    async fn publish(&self, objects: &dyn ObjectStore, published: &mut HashMap<String, String>) {
        let checkpoint = self.checkpoint();
        let store = self.store.clone();
        let trails = match tokio::task::spawn_blocking(move || store.state(TRAILS)).await {
            Ok(Ok(trails)) => trails,
            _ => return,
        };
        for (arn, text) in trails {
            let Ok(trail) = serde_json::from_str::<Trail>(&text) else {
                continue;
            };
            // Beside the digests: a trail that asked for integrity gets the checkpoints too.
            if !trail.logging.is_logging
                || !trail.log_file_validation_enabled
                || published.get(&arn) == Some(&checkpoint)
            {
                continue;
            }
            let mut key = String::new();
            if let Some(prefix) = trail
                .s3_key_prefix
                .as_deref()
                .filter(|prefix| !prefix.is_empty())
            {
                key.push_str(prefix);
                key.push('/');
            }
            key.push_str(&format!(
                "AWSLogs/{}/CloudTrail-Transparency/checkpoint",
                trail.account_id
            ));
            let put = objects.put_object(ObjectPut {
                bucket: trail.s3_bucket_name.clone(),
                key,
                body: checkpoint.clone().into(),
                content_type: "text/plain; charset=utf-8",
                content_encoding: None,
                metadata: Vec::new(),
            });
            match put.await {
                Ok(()) => {
                    published.insert(arn, checkpoint.clone());
                }
                Err(error) => {
                    tracing::debug!(%error, trail = %arn, "checkpoint not published; retried");
                }
            }
        }
    }

    /// The latest signed checkpoint.
    pub fn checkpoint(&self) -> String {
        self.head().checkpoint
    }

    /// The key that verifies the checkpoints, in signed-note verifier form.
    pub fn verifier_key(&self) -> String {
        self.signer.verifier_key()
    }

    /// The proof that `event_id` is in the latest checkpoint, if the log holds it.
    pub fn prove(&self, event_id: &str) -> Result<Option<EventProof>, DeliveryError> {
        let Some(leaf) = self.store.state_value(TRANSPARENCY_LEAVES, event_id)? else {
            return Ok(None);
        };
        let parsed = leaf
            .split_once(' ')
            .and_then(|(index, seq)| Some((index.parse::<u64>().ok()?, seq.parse::<i64>().ok()?)));
        let Some((leaf_index, seq)) = parsed else {
            return Err(failed(format!("leaf of {event_id} unreadable")));
        };
        let head = self.head();
        if leaf_index >= head.size {
            return Ok(None);
        }
        // The record as the feed gives it: gone only if the retention sweep removed it.
        let record = self
            .store
            .feed(seq - 1, 1)?
            .into_iter()
            .find(|event| event.seq == seq && event.event.event_id == event_id);
        let Some(record) = record else {
            return Ok(None);
        };
        let path = merkle::inclusion_proof(leaf_index, head.size, &self.reader(head.size, &[]))
            .map_err(failed)?;
        Ok(Some(EventProof {
            event_id: event_id.to_owned(),
            leaf_index,
            tree_size: head.size,
            inclusion_path: path.iter().map(hex::encode).collect(),
            checkpoint: head.checkpoint,
            record: record.event.record_json,
        }))
    }

    /// C2SP tlog-tiles: the level `level` tile `index` as `width` hashes (256 when whole),
    /// if the latest checkpoint's tree holds that much of it.
    pub fn tile(
        &self,
        level: u32,
        index: u64,
        width: u64,
    ) -> Result<Option<Vec<u8>>, DeliveryError> {
        let head = self.head();
        let height = level.checked_mul(TILE_HEIGHT).filter(|height| *height < 64);
        let Some(height) = height else {
            return Ok(None);
        };
        let nodes = head.size >> height;
        let first = index.saturating_mul(TILE_WIDTH);
        if width == 0 || width > TILE_WIDTH || first.saturating_add(width) > nodes {
            return Ok(None);
        }
        let indexes: Vec<u64> = (first..first + width)
            .map(|node| merkle::stored_hash_index(height, node))
            .collect();
        let hashes = self
            .reader(head.size, &[])
            .read_hashes(&indexes)
            .map_err(failed)?;
        Ok(Some(hashes.concat()))
    }

    /// The proof that the tree of `old` leaves is a prefix of the tree of `size`, both at
    /// most the latest checkpoint's.
    pub fn consistency(&self, old: u64, size: u64) -> Result<Vec<String>, DeliveryError> {
        let head = self.head();
        if size > head.size {
            return Err(failed(format!("the log holds {} leaves", head.size)));
        }
        let path =
            merkle::consistency_proof(old, size, &self.reader(head.size, &[])).map_err(failed)?;
        Ok(path.iter().map(hex::encode).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_integrity::merkle::verify_inclusion;
    use cairn_integrity::note::verify_checkpoint;
    use cairn_model::IndexedEvent;
    use cairn_store::SqliteEventStore;
    use std::io::Write;

    fn record(n: usize) -> IndexedEvent {
        IndexedEvent::from_json_text(format!(
            r#"{{"eventVersion":"1.11","eventTime":"2026-12-02T08:00:00Z","eventSource":"kms.amazonaws.com","eventName":"ListKeys","awsRegion":"us-east-1","eventID":"e-{n:04}","recipientAccountId":"111122223333","eventCategory":"Management","managementEvent":true}}"#
        ))
        .unwrap()
    }

    fn verifies(log: &TransparencyLog, id: &str) -> bool {
        let Some(proof) = log.prove(id).unwrap() else {
            return false;
        };
        let checkpoint = verify_checkpoint(&proof.checkpoint, &log.verifier_key()).unwrap();
        let path: Vec<Hash> = proof
            .inclusion_path
            .iter()
            .map(|hash| hex::decode(hash).unwrap().try_into().unwrap())
            .collect();
        checkpoint.size == proof.tree_size
            && verify_inclusion(
                proof.leaf_index,
                proof.tree_size,
                &merkle::leaf_hash(proof.record.as_bytes()),
                &path,
                &checkpoint.root,
            )
    }

    #[test]
    fn every_event_is_proven_across_rounds_reopening_and_a_torn_append() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn EventStore> = Arc::new(SqliteEventStore::open(dir.path()).unwrap());
        let log = TransparencyLog::open(dir.path(), store.clone()).unwrap();
        assert!(!verifies(&log, "e-0000"));
        store
            .submit((0..5).map(record).collect())
            .unwrap()
            .wait()
            .unwrap();
        assert_eq!(log.append_round().unwrap(), 5);
        store
            .submit((5..12).map(record).collect())
            .unwrap()
            .wait()
            .unwrap();
        assert_eq!(log.append_round().unwrap(), 7);
        assert_eq!(log.append_round().unwrap(), 0);
        for n in 0..12 {
            assert!(verifies(&log, &format!("e-{n:04}")), "{n}");
        }
        let old = verify_checkpoint(&log.checkpoint(), &log.verifier_key()).unwrap();
        // One keeper per data directory.
        assert!(TransparencyLog::open(dir.path(), store.clone()).is_err());
        // A round that wrote its hashes but crashed before its head was committed.
        drop(log);
        let mut file = OpenOptions::new()
            .append(true)
            .open(dir.path().join("transparency/hashes"))
            .unwrap();
        file.write_all(&[9u8; 96]).unwrap();
        let log = TransparencyLog::open(dir.path(), store.clone()).unwrap();
        assert_eq!(
            verify_checkpoint(&log.checkpoint(), &log.verifier_key()),
            Some(old.clone())
        );
        store
            .submit((12..20).map(record).collect())
            .unwrap()
            .wait()
            .unwrap();
        assert_eq!(log.append_round().unwrap(), 8);
        for n in 0..20 {
            assert!(verifies(&log, &format!("e-{n:04}")), "{n}");
        }
        let new = verify_checkpoint(&log.checkpoint(), &log.verifier_key()).unwrap();
        let path: Vec<Hash> = log
            .consistency(old.size, new.size)
            .unwrap()
            .iter()
            .map(|hash| hex::decode(hash).unwrap().try_into().unwrap())
            .collect();
        assert!(merkle::verify_consistency(
            old.size, new.size, &old.root, &new.root, &path
        ));
        assert!(log.consistency(1, new.size + 1).is_err());
        // A replaced signing key would make it another log: the keeper refuses to start.
        let kept = std::fs::read(dir.path().join("transparency-key/signer.json")).unwrap();
        let tile_check = log.tile(0, 0, 20).unwrap();
        drop(log);
        std::fs::remove_file(dir.path().join("transparency-key/signer.json")).unwrap();
        assert!(TransparencyLog::open(dir.path(), store.clone()).is_err());
        std::fs::write(dir.path().join("transparency-key/signer.json"), kept).unwrap();
        let log = TransparencyLog::open(dir.path(), store.clone()).unwrap();
        assert_eq!(log.tile(0, 0, 20).unwrap(), tile_check);
        // 20 leaves: level-0 tile 0 holds 20 of its 256 hashes, the leaves' own.
        let tile = log.tile(0, 0, 20).unwrap().unwrap();
        let first_leaf = merkle::leaf_hash(log.prove("e-0000").unwrap().unwrap().record.as_bytes());
        assert_eq!(tile.len(), 20 * 32);
        assert_eq!(tile[..32], first_leaf);
        assert_eq!(log.tile(0, 0, 21).unwrap(), None);
        assert_eq!(log.tile(0, 0, 256).unwrap(), None);
        assert_eq!(log.tile(1, 0, 1).unwrap(), None);
    }

    #[test]
    fn tile_paths_read_as_c2sp_spells_them() {
        assert_eq!(parse_tile_path("0/000"), Some((0, 0, 256)));
        assert_eq!(
            parse_tile_path("1/x001/x234/067"),
            Some((1, 1_234_067, 256))
        );
        assert_eq!(parse_tile_path("0/005.p/20"), Some((0, 5, 20)));
        for bad in [
            "0/5",
            "0/000.p/0",
            "0/000.p/256",
            "9/000",
            "0/001/234",
            "x/000",
            "0/x001",
            "+0/000",
            "00/000",
            "0/000.p/020",
            "0/000.p/+20",
        ] {
            assert_eq!(parse_tile_path(bad), None, "{bad}");
        }
    }
}
