//! The transparency log: beside the hourly digests, a Merkle tree (RFC 6962) over every
//! stored event (imported ones too), in sequence order, its leaf the SHA-256 of the
//! record's exact text, with
//! a signed checkpoint (C2SP signed note) after each round. For one event ID it proves
//! inclusion against a checkpoint; between two checkpoints, consistency.
//!
//! On one node, stored hashes are appended to `<data>/transparency/hashes` (32 bytes each,
//! fdatasync'd) before the round's head and its leaves (event ID → leaf index and
//! sequence number) are committed as state; a crash in between leaves hashes past the committed
//! head, which the next open cuts off. So the tree is exactly the committed head, and it only
//! grows. Events stored before the log took imported ones in are found once and appended
//! behind the leaves already there ([`Backfill`]).
//!
//! On a store several nodes share, the hashes are state too, in chunks of 256
//! ([`TRANSPARENCY_HASHES`]), committed with the head that covers them; only the node
//! holding the delivery lease appends, each commit requiring the lease's fence and the head
//! it started from, and every node serves proofs from the head as the store holds it.

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
use cairn_store::{EventStore, StoredEvent};
use serde::{Deserialize, Serialize};

use crate::lease::Lease;
use crate::objects::{ObjectPut, ObjectStore};
use crate::{DeliveryError, TRAILS};

/// The committed head: `{size, after_seq, checkpoint}`.
pub const TRANSPARENCY: &str = "transparency";
/// Event ID → `<leaf index> <feed position>`.
pub const TRANSPARENCY_LEAVES: &str = "transparency-leaves";
/// On a shared store: chunk number (12 digits) → the hex of its stored hashes.
pub const TRANSPARENCY_HASHES: &str = "transparency-hashes";
/// Stored hashes per chunk on a shared store (8 KiB of hashes).
const CHUNK: u64 = 256;
/// Chunks kept in memory on a shared store before the cache is emptied.
const CACHED_CHUNKS: usize = 4096;
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

/// Before schema V2 the log took its leaves from the feed, which leaves imported events
/// out, so an upgraded store holds imported events behind the head with no leaf. Once, the
/// events up to `until_seq` (the head when the upgraded log first ran) are read again, a
/// batch a round, and those without their leaf are appended after the leaves already
/// there: the tree only grows, so every checkpoint signed before stays a prefix of the
/// ones after. Kept beside the head, not in it, so that nodes of the version before, on a
/// shared store, still read and require the head they know.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Backfill {
    scanned_seq: i64,
    until_seq: i64,
}

impl Backfill {
    fn done(&self) -> bool {
        self.scanned_seq >= self.until_seq
    }
}

/// Where [`Backfill`] is kept, in [`TRANSPARENCY`].
const BACKFILL: &str = "backfill";
/// Events the backfill scan reads a round: each costs a leaf lookup.
const BACKFILL_BATCH: usize = 5_000;

/// One event's proof, with the record it proves (left out for a caller who may not read it).
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
    /// The leaf: RFC 6962's hash of the record's text, hex.
    pub leaf_hash: String,
    /// The record's text, as hashed into the leaf.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
}

/// Where the stored hashes are kept.
enum HashKeeping {
    /// `<data>/transparency/hashes`: one keeper per data directory.
    File(File),
    /// Chunks in the store's state, for nodes sharing the store; a chunk read is kept (a
    /// stored hash never changes), with as many hashes as it had when read.
    Store {
        chunks: Mutex<HashMap<u64, Arc<Vec<Hash>>>>,
    },
}

fn chunk_key(chunk: u64) -> String {
    format!("{chunk:012}")
}

fn stored(error: impl std::fmt::Display) -> MerkleError {
    MerkleError::Storage(error.to_string())
}

impl HashKeeping {
    fn read(&self, store: &dyn EventStore, index: u64) -> Result<Hash, MerkleError> {
        match self {
            Self::File(file) => {
                let mut hash = [0u8; 32];
                file.read_exact_at(&mut hash, index * 32).map_err(stored)?;
                Ok(hash)
            }
            Self::Store { .. } => {
                let (chunk, offset) = (index / CHUNK, (index % CHUNK) as usize);
                self.chunk(store, chunk, offset + 1)?
                    .get(offset)
                    .copied()
                    .ok_or_else(|| MerkleError::Storage(format!("no stored hash {index}")))
            }
        }
    }

    /// Chunk `chunk` with at least `wanted` hashes if the store has them (fewer otherwise).
    fn chunk(
        &self,
        store: &dyn EventStore,
        chunk: u64,
        wanted: usize,
    ) -> Result<Arc<Vec<Hash>>, MerkleError> {
        let Self::Store { chunks } = self else {
            return Err(stored("not a shared log"));
        };
        if let Some(kept) = chunks.lock().map_err(stored)?.get(&chunk) {
            if kept.len() >= wanted {
                return Ok(kept.clone());
            }
        }
        let text = store
            .state_value(TRANSPARENCY_HASHES, &chunk_key(chunk))
            .map_err(stored)?
            .unwrap_or_default();
        let bytes = hex::decode(text).map_err(stored)?;
        let hashes: Vec<Hash> = bytes
            .chunks_exact(32)
            .map(|hash| {
                let mut copy = [0u8; 32];
                copy.copy_from_slice(hash);
                copy
            })
            .collect();
        let hashes = Arc::new(hashes);
        self.remember(chunk, hashes.clone())?;
        Ok(hashes)
    }

    fn remember(&self, chunk: u64, hashes: Arc<Vec<Hash>>) -> Result<(), MerkleError> {
        if let Self::Store { chunks } = self {
            let mut chunks = chunks.lock().map_err(stored)?;
            if chunks.len() >= CACHED_CHUNKS {
                chunks.clear();
            }
            chunks.insert(chunk, hashes);
        }
        Ok(())
    }
}

/// Stored hashes: those written (file or store), then those of the round in progress.
struct Hashes<'a> {
    keeping: &'a HashKeeping,
    store: &'a dyn EventStore,
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
                self.keeping.read(self.store, index)
            })
            .collect()
    }
}

pub struct TransparencyLog {
    store: Arc<dyn EventStore>,
    signer: NoteSigner,
    hashes: HashKeeping,
    head: RwLock<Head>,
    /// One round at a time appends.
    appending: Mutex<()>,
    /// On a shared store: rounds are appended only while this node holds it.
    lease: Option<Arc<Lease>>,
    /// Set once the store says the [`Backfill`] scan is over, so rounds stop asking.
    backfilled: std::sync::atomic::AtomicBool,
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
            hashes: HashKeeping::File(file),
            head: RwLock::new(head),
            appending: Mutex::new(()),
            lease: None,
            backfilled: Default::default(),
        };
        if log.head().checkpoint.is_empty() {
            log.commit_head(Head::default(), Vec::new())?;
        }
        Ok(log)
    }

    /// The log of a store several nodes share: hashes in the store, appended only while
    /// this node holds `lease`. The signing key (`<data>/transparency-key/`) must be the one
    /// every node has (the caller shares it before opening).
    pub fn open_shared(
        data_dir: &Path,
        store: Arc<dyn EventStore>,
        lease: Arc<Lease>,
    ) -> Result<Self, DeliveryError> {
        let signer = NoteSigner::open(data_dir).map_err(failed)?;
        let head: Head = match store.state_value(TRANSPARENCY, HEAD)? {
            Some(text) => serde_json::from_str(&text).map_err(failed)?,
            None => Head::default(),
        };
        if !head.checkpoint.is_empty()
            && cairn_integrity::note::verify_checkpoint(&head.checkpoint, &signer.verifier_key())
                .is_none()
        {
            return Err(failed(
                "the store's transparency checkpoint is not signed by this node's key: every \
                 node must share the key in transparency-key/",
            ));
        }
        let log = Self {
            store,
            signer,
            hashes: HashKeeping::Store {
                chunks: Mutex::new(HashMap::new()),
            },
            head: RwLock::new(head),
            appending: Mutex::new(()),
            lease: Some(lease),
            backfilled: Default::default(),
        };
        if log.head().checkpoint.is_empty() {
            // Set once, by whichever node is first: a later empty head never replaces a
            // grown one.
            let mut empty = Head::default();
            let root = merkle::tree_hash(0, &log.reader(0, &[])).map_err(failed)?;
            empty.checkpoint = log
                .signer
                .sign(&checkpoint_text(log.signer.name(), 0, &root));
            let text = serde_json::to_string(&empty).map_err(failed)?;
            log.store
                .submit_with_state(
                    Vec::new(),
                    vec![StateChange::put_if_absent(TRANSPARENCY, HEAD, text)],
                )?
                .wait()?;
            log.reload_head()?;
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
            keeping: &self.hashes,
            store: self.store.as_ref(),
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

    /// Appends every event the store holds past the head, a batch per commit (first, while
    /// it lasts, one batch of the [`Backfill`] scan); returns how many.
    /// Blocking: run it off the async workers.
    pub fn append_round(&self) -> Result<u64, DeliveryError> {
        let _one = self.appending.lock().map_err(failed)?;
        let mut appended = 0;
        let mut scanned_this_round = false;
        loop {
            let mut fence = Vec::new();
            if let Some(lease) = &self.lease {
                let Some(held) = lease.fence() else {
                    return Ok(appended);
                };
                fence.push(held);
                // Another node may have appended while it held the lease.
                self.reload_head()?;
            }
            let head = self.head();
            if !scanned_this_round {
                if let Some(scan) = self.backfill(&head)? {
                    scanned_this_round = true;
                    let (events, next) = self.missing_leaves(scan)?;
                    self.append_leaves(&head, &events, head.after_seq, Some(next), fence)?;
                    appended += events.len() as u64;
                    continue;
                }
            }
            let events = self.store.every_event(head.after_seq, BATCH)?;
            let Some(last) = events.last() else {
                return Ok(appended);
            };
            let after_seq = last.seq;
            self.append_leaves(&head, &events, after_seq, None, fence)?;
            appended += events.len() as u64;
        }
    }

    /// The [`Backfill`] scan as the store holds it (a log an older Cairn kept has none: its
    /// scan starts at the head, and is recorded even when there is nothing to scan);
    /// `None` once it is recorded as over.
    fn backfill(&self, head: &Head) -> Result<Option<Backfill>, DeliveryError> {
        use std::sync::atomic::Ordering;
        if self.backfilled.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let scan = match self.store.state_value(TRANSPARENCY, BACKFILL)? {
            Some(text) => (serde_json::from_str(&text).map_err(failed)?, true),
            None => (
                Backfill {
                    scanned_seq: 0,
                    until_seq: head.after_seq,
                },
                false,
            ),
        };
        let (scan, recorded) = scan;
        if recorded && scan.done() {
            self.backfilled.store(true, Ordering::Relaxed);
            return Ok(None);
        }
        Ok(Some(scan))
    }

    /// One batch of the [`Backfill`] scan: the events read that have no leaf of their own
    /// (none, or one an earlier copy of the same event ID had), and where the scan is then.
    fn missing_leaves(
        &self,
        scan: Backfill,
    ) -> Result<(Vec<StoredEvent>, Backfill), DeliveryError> {
        if scan.done() {
            return Ok((Vec::new(), scan));
        }
        let read = self.store.every_event(scan.scanned_seq, BACKFILL_BATCH)?;
        let count = read.len();
        let behind: Vec<StoredEvent> = read
            .into_iter()
            .take_while(|event| event.seq <= scan.until_seq)
            .collect();
        // A batch that reaches past the head's old position ends the scan.
        let scanned_seq = match behind.last() {
            Some(last) if behind.len() == count => last.seq,
            _ => scan.until_seq,
        };
        let mut missing = Vec::new();
        for event in behind {
            let leaf = self
                .store
                .state_value(TRANSPARENCY_LEAVES, &event.event.event_id)?;
            let its_own = leaf
                .as_deref()
                .and_then(|leaf| leaf.split_once(' '))
                .is_some_and(|(_, seq)| seq.parse::<i64>().ok() == Some(event.seq));
            if !its_own {
                missing.push(event);
            }
        }
        Ok((
            missing,
            Backfill {
                scanned_seq,
                until_seq: scan.until_seq,
            },
        ))
    }

    /// Appends `events` as leaves after `head` and commits the head that covers them, read
    /// up to `after_seq` (with the [`Backfill`] scan's place when it moved).
    fn append_leaves(
        &self,
        head: &Head,
        events: &[StoredEvent],
        after_seq: i64,
        backfill: Option<Backfill>,
        fence: Vec<StateChange>,
    ) -> Result<(), DeliveryError> {
        let mut pending: Vec<Hash> = Vec::new();
        let mut changes = Vec::with_capacity(events.len() + 2);
        let mut size = head.size;
        for event in events {
            let leaf = merkle::leaf_hash(event.event.record_json.as_bytes());
            let hashes = merkle::hashes_for_append(size, leaf, &self.reader(head.size, &pending))
                .map_err(failed)?;
            pending.extend(hashes);
            changes.push(StateChange::put(
                TRANSPARENCY_LEAVES,
                event.event.event_id.clone(),
                format!("{size} {}", event.seq),
            ));
            size += 1;
        }
        if let Some(backfill) = backfill {
            changes.push(StateChange::put(
                TRANSPARENCY,
                BACKFILL,
                serde_json::to_string(&backfill).map_err(failed)?,
            ));
        }
        match &self.hashes {
            HashKeeping::File(file) => {
                let mut bytes = Vec::with_capacity(pending.len() * 32);
                for hash in &pending {
                    bytes.extend_from_slice(hash);
                }
                // After the committed hashes, over any a torn round left.
                let offset = merkle::stored_hash_count(head.size) * 32;
                file.write_all_at(&bytes, offset)?;
                file.sync_data()?;
            }
            HashKeeping::Store { .. } => {
                changes.extend(self.chunk_changes(head.size, &pending)?);
                changes.extend(fence);
                // Refused whole if another node moved the head since it was read.
                changes.push(StateChange::require(
                    TRANSPARENCY,
                    HEAD,
                    serde_json::to_string(head).map_err(failed)?,
                ));
            }
        }
        self.commit_head(
            Head {
                size,
                after_seq,
                checkpoint: String::new(),
            },
            changes,
        )
    }

    /// The chunks that hold the hashes of a tree of `size` and then `pending`, rewritten
    /// from the first one `pending` reaches; remembered at once, since a stored hash is the
    /// same whichever node computes it (the feed's order fixes the tree).
    fn chunk_changes(
        &self,
        size: u64,
        pending: &[Hash],
    ) -> Result<Vec<StateChange>, DeliveryError> {
        let written = merkle::stored_hash_count(size);
        let total = written + pending.len() as u64;
        if pending.is_empty() {
            return Ok(Vec::new());
        }
        let mut changes = Vec::new();
        for chunk in written / CHUNK..=(total - 1) / CHUNK {
            let start = chunk * CHUNK;
            let mut hashes: Vec<Hash> = Vec::with_capacity(CHUNK as usize);
            if start < written {
                let kept = (written - start) as usize;
                let existing = self
                    .hashes
                    .chunk(self.store.as_ref(), chunk, kept)
                    .map_err(failed)?;
                if existing.len() < kept {
                    return Err(failed(format!(
                        "chunk {chunk} of the stored hashes holds {} of {kept}",
                        existing.len()
                    )));
                }
                hashes.extend_from_slice(&existing[..kept]);
            }
            let from = start.max(written);
            let to = (start + CHUNK).min(total);
            hashes.extend_from_slice(&pending[(from - written) as usize..(to - written) as usize]);
            let text = hex::encode(hashes.concat());
            self.hashes
                .remember(chunk, Arc::new(hashes))
                .map_err(failed)?;
            changes.push(StateChange::put(
                TRANSPARENCY_HASHES,
                chunk_key(chunk),
                text,
            ));
        }
        Ok(changes)
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
            let appending = match &self.lease {
                Some(lease) => lease.fence().is_some(),
                None => true,
            };
            if !appending {
                // Serve the head another node appended.
                let log = self.clone();
                if let Ok(Err(error)) = tokio::task::spawn_blocking(move || log.reload_head()).await
                {
                    tracing::debug!(%error, "transparency head not read; retried");
                }
                continue;
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
            .every_event(seq - 1, 1)?
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
            leaf_hash: hex::encode(merkle::leaf_hash(record.event.record_json.as_bytes())),
            record: Some(record.event.record_json),
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
                &merkle::leaf_hash(proof.record.as_deref().unwrap().as_bytes()),
                &path,
                &checkpoint.root,
            )
    }

    fn consistent(
        log: &TransparencyLog,
        old: &cairn_integrity::note::Checkpoint,
        new: &cairn_integrity::note::Checkpoint,
    ) -> bool {
        let path: Vec<Hash> = log
            .consistency(old.size, new.size)
            .unwrap()
            .iter()
            .map(|hash| hex::decode(hash).unwrap().try_into().unwrap())
            .collect();
        merkle::verify_consistency(old.size, new.size, &old.root, &new.root, &path)
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
        assert!(consistent(&log, &old, &new));
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
        let first_leaf = merkle::leaf_hash(
            log.prove("e-0000")
                .unwrap()
                .unwrap()
                .record
                .unwrap()
                .as_bytes(),
        );
        assert_eq!(tile.len(), 20 * 32);
        assert_eq!(tile[..32], first_leaf);
        assert_eq!(log.tile(0, 0, 21).unwrap(), None);
        assert_eq!(log.tile(0, 0, 256).unwrap(), None);
        assert_eq!(log.tile(1, 0, 1).unwrap(), None);
    }

    /// What a Cairn before schema V2 did: leaves from the feed only, and a head that says
    /// nothing of a scan.
    fn append_as_before_v2(log: &TransparencyLog) {
        let head = log.head();
        let events = log.store.feed(head.after_seq, BATCH).unwrap();
        let after_seq = events.last().map_or(head.after_seq, |event| event.seq);
        log.append_leaves(&head, &events, after_seq, None, Vec::new())
            .unwrap();
    }

    #[test]
    fn events_imported_before_v2_become_leaves_after_the_upgrade_and_the_tree_only_grows() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn EventStore> = Arc::new(SqliteEventStore::open(dir.path()).unwrap());
        let submit = |range: std::ops::Range<usize>, imported: bool| {
            let events = range.map(record).collect();
            let pending = if imported {
                store.submit_imported(events)
            } else {
                store.submit(events)
            };
            pending.unwrap().wait().unwrap();
        };
        submit(0..4, false);
        submit(4..7, true);
        submit(7..10, false);
        let log = TransparencyLog::open(dir.path(), store.clone()).unwrap();
        append_as_before_v2(&log);
        let before = verify_checkpoint(&log.checkpoint(), &log.verifier_key()).unwrap();
        assert_eq!(before.size, 7);
        assert!(!verifies(&log, "e-0005"));
        drop(log);

        // The upgraded Cairn starts on that data directory.
        let log = TransparencyLog::open(dir.path(), store.clone()).unwrap();
        submit(10..12, false);
        assert_eq!(log.append_round().unwrap(), 3 + 2);
        for n in 0..12 {
            assert!(verifies(&log, &format!("e-{n:04}")), "{n}");
        }
        let after = verify_checkpoint(&log.checkpoint(), &log.verifier_key()).unwrap();
        assert_eq!(after.size, 12);
        assert!(consistent(&log, &before, &after));
        // Once: neither another round nor another start appends them again.
        assert_eq!(log.append_round().unwrap(), 0);
        drop(log);
        let log = TransparencyLog::open(dir.path(), store.clone()).unwrap();
        assert_eq!(log.append_round().unwrap(), 0);
        submit(12..14, true);
        assert_eq!(log.append_round().unwrap(), 2);
        assert!(verifies(&log, "e-0013"));
        assert_eq!(log.head().size, 14);
    }

    #[test]
    fn a_new_log_has_nothing_behind_its_head_to_scan() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn EventStore> = Arc::new(SqliteEventStore::open(dir.path()).unwrap());
        let log = TransparencyLog::open(dir.path(), store.clone()).unwrap();
        assert_eq!(log.append_round().unwrap(), 0);
        let scan: Backfill =
            serde_json::from_str(&store.state_value(TRANSPARENCY, BACKFILL).unwrap().unwrap())
                .unwrap();
        assert!(scan.done(), "{scan:?}");
        assert!(log.backfill(&log.head()).unwrap().is_none());
    }

    #[test]
    fn on_a_shared_store_one_node_appends_under_the_lease_and_every_node_proves() {
        use cairn_model::FixedClock;
        let shared = tempfile::tempdir().unwrap();
        let store: Arc<dyn EventStore> = Arc::new(SqliteEventStore::open(shared.path()).unwrap());
        let clock = Arc::new(FixedClock::new(1_000_000));
        let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let lease =
            |node: &str| Arc::new(Lease::new(store.clone(), clock.clone(), "delivery", node));
        let (a_lease, b_lease) = (lease("a"), lease("b"));
        assert!(a_lease.try_hold().unwrap());
        let a = TransparencyLog::open_shared(a_dir.path(), store.clone(), a_lease.clone()).unwrap();
        // A node with another key would make another log: refused.
        assert!(
            TransparencyLog::open_shared(b_dir.path(), store.clone(), b_lease.clone()).is_err()
        );
        std::fs::remove_dir_all(b_dir.path().join("transparency-key")).unwrap();
        std::fs::create_dir_all(b_dir.path().join("transparency-key")).unwrap();
        std::fs::copy(
            a_dir.path().join("transparency-key/signer.json"),
            b_dir.path().join("transparency-key/signer.json"),
        )
        .unwrap();
        let b = TransparencyLog::open_shared(b_dir.path(), store.clone(), b_lease.clone()).unwrap();
        assert!(
            !b_dir.path().join("transparency").exists(),
            "no hashes file"
        );

        // 300 events: their stored hashes fill more than two chunks.
        store
            .submit((0..300).map(record).collect())
            .unwrap()
            .wait()
            .unwrap();
        assert_eq!(b.append_round().unwrap(), 0, "b does not hold the lease");
        assert_eq!(a.append_round().unwrap(), 300);
        assert!(store.state(TRANSPARENCY_HASHES).unwrap().len() >= 3);
        b.reload_head().unwrap();
        for n in (0..300).step_by(7) {
            assert!(verifies(&b, &format!("e-{n:04}")), "{n}");
        }
        let old = verify_checkpoint(&b.checkpoint(), &b.verifier_key()).unwrap();

        // The lease passes to b (a stopped renewing); a's late round changes nothing.
        clock.set(1_000_000 + Lease::LENGTH.as_millis() as i64 + 1);
        assert!(b_lease.try_hold().unwrap());
        store
            .submit((300..350).map(record).collect())
            .unwrap()
            .wait()
            .unwrap();
        assert_eq!(a.append_round().unwrap(), 0, "a's lease has expired");
        assert_eq!(b.append_round().unwrap(), 50);
        a.reload_head().unwrap();
        for n in (0..350).step_by(5) {
            assert!(verifies(&a, &format!("e-{n:04}")), "{n}");
        }
        let new = verify_checkpoint(&a.checkpoint(), &a.verifier_key()).unwrap();
        assert_eq!((old.size, new.size), (300, 350));
        assert!(consistent(&a, &old, &new));
        assert_eq!(a.tile(0, 1, 44).unwrap(), b.tile(0, 1, 44).unwrap());

        // A round committed from a stale head (as by a node paused past its lease) is
        // refused whole: the head moves only from the one it was read as.
        let stale = StateChange::require(
            TRANSPARENCY,
            HEAD,
            serde_json::to_string(&Head {
                size: 300,
                ..Head::default()
            })
            .unwrap(),
        );
        let refused = store
            .submit_with_state(Vec::new(), vec![stale])
            .unwrap()
            .wait();
        assert!(matches!(refused, Err(cairn_store::StoreError::Refused(_))));
        // Reopened, a node goes on from the store's head.
        drop(b);
        let b = TransparencyLog::open_shared(b_dir.path(), store.clone(), b_lease).unwrap();
        assert_eq!(
            verify_checkpoint(&b.checkpoint(), &b.verifier_key()),
            Some(new)
        );
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
