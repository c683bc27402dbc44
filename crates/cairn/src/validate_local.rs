//! `cairn validate-logs --local-copy DIR`: a trail's bucket as `aws s3 sync s3://BUCKET DIR`
//! left it on disk. A sync keeps each object's bytes and (as the file's mtime) its
//! LastModified, but not its user metadata, where a digest's signature lives. Every digest
//! but the newest of a chain still has its signature in the copy: its successor holds it as
//! `previousDigestSignature`, and only the signing key could have made it. The newest one's
//! is only in S3, so it is reported as not checkable rather than valid.
//!
//! A copy may hold millions of keys, so nothing here grows with the bucket: a listing reads
//! one directory at a time, in S3's key order, and keeps at most a window of keys ahead per
//! directory level; signatures are kept only for the digests a run may read.

use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fs::ReadDir;
use std::io::Read;
use std::ops::RangeInclusive;
use std::path::{Component, Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::UNIX_EPOCH;

use cairn_integrity::validation::{
    key_stamp, too_large, BucketReader, Fetched, ListedKey, ReadError, MAX_FETCHED_BYTES,
};
use serde_json::Value;

/// Keys handed out per listing page, as S3's ListObjects.
const PAGE_KEYS: usize = 1000;
/// Keys a listing reads ahead and keeps: a directory of millions of files is then scanned
/// once per this many keys rather than once per page, and never held whole.
const WINDOW_KEYS: usize = 50_000;
/// Entries a pass over one directory keeps at the least, however few keys are still
/// wanted: a folder of many empty subfolders is then not re-read for each one.
const PASS_ENTRIES: usize = 1024;
/// A digest larger than this is not read for its predecessor's signature.
const MAX_DIGEST_BYTES: u64 = 64 << 20;

pub struct LocalCopy {
    root: PathBuf,
    /// The names' times of the digests whose signatures a run may need.
    wanted: RangeInclusive<String>,
    page_keys: usize,
    window_keys: usize,
    pass_entries: usize,
    /// The keys read ahead by the last listing, for the page that follows it.
    ahead: Mutex<Option<Window>>,
    /// (bucket, digest key) → the signature its successor recorded for it.
    signatures: OnceLock<HashMap<(String, String), String>>,
}

/// Keys under `prefix` after `after`, in order, read ahead of the pages that will ask.
struct Window {
    prefix: String,
    after: String,
    keys: VecDeque<String>,
    /// More keys follow the window's last.
    more: bool,
}

impl LocalCopy {
    /// A copy at `root`, for a run that reads the digests named with times in `wanted`.
    pub fn new(root: &Path, wanted: RangeInclusive<String>) -> anyhow::Result<Self> {
        anyhow::ensure!(
            root.is_dir(),
            "no local copy of a bucket at {}",
            root.display()
        );
        Ok(Self {
            root: root.to_owned(),
            wanted,
            page_keys: PAGE_KEYS,
            window_keys: WINDOW_KEYS,
            pass_entries: PASS_ENTRIES,
            ahead: Mutex::default(),
            signatures: OnceLock::new(),
        })
    }

    /// The file a key names, never outside the copy.
    fn path_of(&self, key: &str) -> Option<PathBuf> {
        let relative = Path::new(key);
        relative
            .components()
            .all(|part| matches!(part, Component::Normal(_)))
            .then(|| self.root.join(relative))
    }

    /// The deepest directory every key under `prefix` lies in, and its key (`a/b/`).
    fn directory_of(&self, prefix: &str) -> (PathBuf, String) {
        let Some(end) = prefix.rfind('/') else {
            return (self.root.clone(), String::new());
        };
        let plain = prefix[..end]
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..");
        match self.path_of(&prefix[..end]).filter(|_| plain) {
            Some(directory) => (directory, prefix[..=end].to_owned()),
            // No key the copy holds starts so; the root's walk finds none.
            None => (self.root.clone(), String::new()),
        }
    }

    /// Appends to `out`, in key order, the keys under `directory` (whose key is
    /// `directory_key`) that start with `prefix` and sort after `marker`, until it holds
    /// `want`. A directory is read in passes, each keeping the nearest entries still wanted.
    fn collect(
        &self,
        directory: &Path,
        directory_key: &str,
        listing: (&str, &str),
        want: usize,
        out: &mut Vec<String>,
    ) {
        let (prefix, marker) = listing;
        let mut resume: Option<String> = None;
        loop {
            let Ok(entries) = std::fs::read_dir(directory) else {
                return;
            };
            let room = want.saturating_sub(out.len()).max(self.pass_entries);
            // A directory's key ends in `/`, so entries sort as their keys do in S3.
            let mut nearest: BinaryHeap<(String, bool)> = BinaryHeap::new();
            let mut passed_over = false;
            for entry in entries.flatten() {
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                let (key, relevant) = if kind.is_dir() {
                    let key = format!("{directory_key}{name}/");
                    let relevant = (key.starts_with(prefix) || prefix.starts_with(&key))
                        && (key.as_str() > marker || marker.starts_with(&key));
                    (key, relevant)
                } else if kind.is_file() {
                    let key = format!("{directory_key}{name}");
                    let relevant = key.starts_with(prefix) && key.as_str() > marker;
                    (key, relevant)
                } else {
                    continue;
                };
                if !relevant || resume.as_ref().is_some_and(|done| key <= *done) {
                    continue;
                }
                nearest.push((key, kind.is_dir()));
                if nearest.len() > room {
                    nearest.pop();
                    passed_over = true;
                }
            }
            let nearest = nearest.into_sorted_vec();
            for (key, is_directory) in &nearest {
                if *is_directory {
                    let name = &key[directory_key.len()..key.len() - 1];
                    self.collect(&directory.join(name), key, listing, want, out);
                } else {
                    out.push(key.clone());
                }
                if out.len() >= want {
                    return;
                }
            }
            match nearest.last() {
                Some((last, _)) if passed_over => resume = Some(last.clone()),
                _ => return,
            }
        }
    }

    /// The keys after `marker` under `prefix`, from the window the last page left, or read.
    fn window(&self, prefix: &str, marker: &str) -> Window {
        let mut ahead = self.ahead.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(window) = ahead.take() {
            if window.prefix == prefix && window.after == marker {
                return window;
            }
        }
        drop(ahead);
        let (directory, directory_key) = self.directory_of(prefix);
        let mut keys = Vec::new();
        self.collect(
            &directory,
            &directory_key,
            (prefix, marker),
            self.window_keys + 1,
            &mut keys,
        );
        let more = keys.len() > self.window_keys;
        keys.truncate(self.window_keys);
        Window {
            prefix: prefix.to_owned(),
            after: marker.to_owned(),
            keys: keys.into(),
            more,
        }
    }

    fn last_modified_millis(&self, key: &str) -> i64 {
        self.path_of(key)
            .and_then(|path| std::fs::metadata(path).ok())
            .and_then(|metadata| metadata.modified().ok())
            .and_then(|at| at.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |since| since.as_millis() as i64)
    }

    /// Every digest in the copy named with a time from `from` on, to `visit`. Log files'
    /// folders are not walked, and only one open directory per level is held.
    fn digests_from(&self, from: &str, mut visit: impl FnMut(String)) {
        // (entries, the directory's key, whether it lies under an `AWSLogs/`)
        let mut open: Vec<(ReadDir, String, bool)> = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&self.root) {
            open.push((entries, String::new(), false));
        }
        while let Some((entries, directory_key, under_logs)) = open.last_mut() {
            let Some(entry) = entries.next() else {
                open.pop();
                continue;
            };
            let under_logs = *under_logs;
            let Some((entry, kind, name)) = entry.ok().and_then(|entry| {
                let kind = entry.file_type().ok()?;
                let name = entry.file_name().to_str()?.to_owned();
                Some((entry, kind, name))
            }) else {
                continue;
            };
            let key = format!("{directory_key}{name}");
            if kind.is_dir() {
                let log_files =
                    under_logs && (name == "CloudTrail" || name == "CloudTrail-Insight");
                if let (false, Ok(inner)) = (log_files, std::fs::read_dir(entry.path())) {
                    open.push((inner, format!("{key}/"), under_logs || name == "AWSLogs"));
                }
            } else if kind.is_file()
                && key.contains("/CloudTrail-Digest/")
                && key.ends_with(".json.gz")
                && key_stamp(&key).is_some_and(|stamp| stamp >= from)
            {
                visit(key);
            }
        }
    }

    /// The signatures the copy's digests record for the wanted digests before them.
    fn signatures(&self) -> &HashMap<(String, String), String> {
        self.signatures.get_or_init(|| {
            let (first, last) = (self.wanted.start().as_str(), self.wanted.end().as_str());
            // (bucket, predecessor) → (successor, signature): of two digests naming one
            // predecessor (a forked chain), the first by key, whatever the folders' order.
            let mut found: HashMap<(String, String), (String, String)> = HashMap::new();
            // A successor is never older than the digest it follows.
            self.digests_from(first, |key| {
                let Some(digest) = self.read_digest(&key) else {
                    return;
                };
                let text = |name: &str| digest.get(name).and_then(Value::as_str);
                let (Some(previous), Some(signature), Some(bucket)) = (
                    text("previousDigestS3Object"),
                    text("previousDigestSignature"),
                    text("previousDigestS3Bucket"),
                ) else {
                    return;
                };
                if key_stamp(previous).is_some_and(|stamp| first <= stamp && stamp <= last) {
                    let named = (bucket.to_owned(), previous.to_owned());
                    if found
                        .get(&named)
                        .is_none_or(|(successor, _)| key < *successor)
                    {
                        found.insert(named, (key.clone(), signature.to_owned()));
                    }
                }
            });
            found
                .into_iter()
                .map(|(named, (_, signature))| (named, signature))
                .collect()
        })
    }

    fn read_digest(&self, key: &str) -> Option<Value> {
        let file = std::fs::File::open(self.path_of(key)?).ok()?;
        let mut text = Vec::new();
        flate2::read::GzDecoder::new(file.take(MAX_DIGEST_BYTES))
            .take(MAX_DIGEST_BYTES)
            .read_to_end(&mut text)
            .ok()?;
        serde_json::from_slice(&text).ok()
    }
}

impl BucketReader for LocalCopy {
    fn list_page(
        &self,
        _bucket: &str,
        prefix: &str,
        marker: &str,
    ) -> Result<(Vec<ListedKey>, bool), ReadError> {
        let mut window = self.window(prefix, marker);
        let take = window.keys.len().min(self.page_keys);
        let page: Vec<ListedKey> = window
            .keys
            .drain(..take)
            .map(|key| ListedKey {
                last_modified_millis: self.last_modified_millis(&key),
                key,
            })
            .collect();
        let more = !window.keys.is_empty() || window.more;
        if let (Some(last), false) = (page.last(), window.keys.is_empty()) {
            window.after = last.key.clone();
            *self.ahead.lock().unwrap_or_else(PoisonError::into_inner) = Some(window);
        }
        Ok((page, more))
    }

    fn get_range(
        &self,
        _bucket: &str,
        key: &str,
        offset: u64,
        length: u64,
    ) -> Result<(Vec<u8>, u64), ReadError> {
        use std::os::unix::fs::FileExt;
        let unreadable = |error: std::io::Error| match error.kind() {
            std::io::ErrorKind::NotFound => ReadError::NotFound,
            _ => ReadError::Other(error.to_string()),
        };
        let path = self.path_of(key).ok_or(ReadError::NotFound)?;
        let file = std::fs::File::open(path).map_err(unreadable)?;
        let size = file.metadata().map_err(unreadable)?.len();
        let mut bytes = vec![0; length.min(size.saturating_sub(offset)) as usize];
        let mut filled = 0;
        while filled < bytes.len() {
            match file.read_at(&mut bytes[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(read) => filled += read,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Err(unreadable(error)),
            }
        }
        bytes.truncate(filled);
        Ok((bytes, size))
    }

    fn get(&self, bucket: &str, key: &str) -> Result<Fetched, ReadError> {
        let path = self.path_of(key).ok_or(ReadError::NotFound)?;
        let size = match std::fs::metadata(&path) {
            Ok(metadata) => metadata.len(),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(ReadError::NotFound)
            }
            Err(error) => return Err(ReadError::Other(error.to_string())),
        };
        if size > MAX_FETCHED_BYTES {
            return Err(too_large());
        }
        let body = match std::fs::read(&path) {
            Ok(body) => body,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(ReadError::NotFound)
            }
            Err(error) => return Err(ReadError::Other(error.to_string())),
        };
        let mut metadata = HashMap::new();
        if key.contains("/CloudTrail-Digest/") {
            let Some(signature) = self.signatures().get(&(bucket.to_owned(), key.to_owned()))
            else {
                return Err(ReadError::Other(
                    "signature not in a local copy (S3 keeps it as object metadata, which a sync does not download)"
                        .into(),
                ));
            };
            metadata.insert("signature".to_owned(), signature.clone());
            metadata.insert("signature-algorithm".to_owned(), "SHA256withRSA".to_owned());
        }
        Ok(Fetched { body, metadata })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_time() -> RangeInclusive<String> {
        "00000000T000000Z".to_owned()..="99999999T999999Z".to_owned()
    }

    /// Every key, page by page from `marker`, as the validator walks a listing.
    fn listed(copy: &LocalCopy, prefix: &str, mut marker: String) -> Vec<String> {
        let mut keys = Vec::new();
        loop {
            let (page, more) = copy.list_page("b", prefix, &marker).unwrap();
            assert!(page.len() <= copy.page_keys);
            keys.extend(page.iter().map(|listed| listed.key.clone()));
            match page.last() {
                Some(last) if more => marker = last.key.clone(),
                _ => {
                    assert!(!more, "a page that says more follow is never empty");
                    return keys;
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// However small the pages and windows, a listing gives what sorting every key
        /// would: S3's order (`a-b` < `a/x` < `a0`), the prefix, the marker.
        #[test]
        fn listings_read_in_windows_match_a_sorted_walk(
            keys in proptest::collection::btree_set("[ab0/-]{0,2}[ab][0-]?/?[ab0-]{1,2}", 1..40),
            prefix in "[ab0/-]{0,3}",
            marker in "[ab0/-]{0,4}",
            page_keys in 1usize..5,
            window_keys in 1usize..7,
            pass_entries in 1usize..4,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut written = Vec::new();
            for key in &keys {
                if key.starts_with('/') || key.ends_with('/') || key.contains("//") {
                    continue;
                }
                let path = dir.path().join(key);
                // A key that is another's folder cannot also be a file.
                if std::fs::create_dir_all(path.parent().unwrap()).is_err()
                    || path.is_dir()
                    || std::fs::write(&path, b"x").is_err()
                {
                    continue;
                }
                written.push(key.clone());
            }
            let written: std::collections::BTreeSet<String> = written
                .into_iter()
                .filter(|key| dir.path().join(key).is_file())
                .collect();
            let mut copy = LocalCopy::new(dir.path(), any_time()).unwrap();
            copy.page_keys = page_keys;
            copy.window_keys = window_keys;
            copy.pass_entries = pass_entries;
            let expected: Vec<String> = written
                .iter()
                .filter(|key| key.starts_with(&prefix) && key.as_str() > marker.as_str())
                .cloned()
                .collect();
            prop_assert_eq!(listed(&copy, &prefix, marker.clone()), expected);
        }
    }

    /// A gzipped digest at `path` that records `signature` for `predecessor` in bucket `b`.
    fn write_successor(path: &Path, predecessor: &str, signature: &str) {
        let body = serde_json::json!({
            "previousDigestS3Bucket": "b",
            "previousDigestS3Object": predecessor,
            "previousDigestSignature": signature,
        });
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, body.to_string().as_bytes()).unwrap();
        std::fs::write(path, gz.finish().unwrap()).unwrap();
    }

    /// Two digests naming one predecessor (a forked chain): the first by key gives its
    /// signature, whichever folder the copy reads first.
    #[test]
    fn a_forked_chain_gives_the_first_successors_signature() {
        let dir = tempfile::tempdir().unwrap();
        let digest = |folder: &str, stamp: &str| {
            format!("AWSLogs/111122223333/CloudTrail-Digest/us-east-1/{folder}/111122223333_CloudTrail-Digest_us-east-1_t_us-east-1_{stamp}.json.gz")
        };
        let predecessor = digest("2026/12/01", "20261201T230000Z");
        for (folder, stamp) in [
            ("2026/12/02", "20261202T000000Z"),
            ("2026/12/01", "20261201T235959Z"),
        ] {
            let key = digest(folder, stamp);
            std::fs::create_dir_all(dir.path().join(&key).parent().unwrap()).unwrap();
            write_successor(
                &dir.path().join(key),
                &predecessor,
                &format!("recorded by {stamp}"),
            );
        }
        let copy = LocalCopy::new(dir.path(), any_time()).unwrap();
        assert_eq!(
            copy.signatures()[&("b".to_owned(), predecessor)],
            "recorded by 20261201T235959Z"
        );
    }

    /// The signatures a copy keeps are only those of the digests the run may read: a
    /// bucket's older history costs nothing.
    #[test]
    fn only_the_wanted_digests_signatures_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let folder = "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/12/01";
        let name = |stamp: &str| {
            format!("{folder}/111122223333_CloudTrail-Digest_us-east-1_t_us-east-1_{stamp}.json.gz")
        };
        std::fs::create_dir_all(dir.path().join(folder)).unwrap();
        let stamps = [
            "20261201T010000Z",
            "20261201T020000Z",
            "20261201T030000Z",
            "20261201T040000Z",
        ];
        std::fs::write(
            dir.path().join(name(stamps[0])),
            b"the first, before the range",
        )
        .unwrap();
        for pair in stamps.windows(2) {
            let signature = format!("signature of {}", pair[0]);
            write_successor(&dir.path().join(name(pair[1])), &name(pair[0]), &signature);
        }
        let wanted = "20261201T020000Z".to_owned()..="20261201T030000Z".to_owned();
        let copy = LocalCopy::new(dir.path(), wanted).unwrap();
        let mut kept: Vec<&str> = copy.signatures().values().map(String::as_str).collect();
        kept.sort_unstable();
        assert_eq!(
            kept,
            [
                "signature of 20261201T020000Z",
                "signature of 20261201T030000Z"
            ]
        );
        let metadata = copy.get("b", &name(stamps[1])).unwrap().metadata;
        assert_eq!(metadata["signature"], "signature of 20261201T020000Z");
        assert!(matches!(
            copy.get("b", &name(stamps[0])),
            Err(ReadError::Other(_))
        ));
        assert!(matches!(
            copy.get("other", &name(stamps[1])),
            Err(ReadError::Other(_))
        ));
    }

    #[test]
    fn keys_never_leave_the_copy_and_pages_follow_the_marker() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a/1", "a/2", "a/3", "b/1"] {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, name).unwrap();
        }
        let copy = LocalCopy::new(dir.path(), any_time()).unwrap();
        assert!(copy.path_of("../etc/passwd").is_none());
        assert!(copy.path_of("/etc/passwd").is_none());
        assert!(matches!(
            copy.get("b", "a/../../x"),
            Err(ReadError::NotFound)
        ));
        let (page, more) = copy.list_page("b", "a/", "a/1").unwrap();
        let keys: Vec<&str> = page.iter().map(|listed| listed.key.as_str()).collect();
        assert_eq!((keys, more), (vec!["a/2", "a/3"], false));
        assert_eq!(copy.get("b", "b/1").unwrap().body, b"b/1");
        // Log files are read in ranges: the bytes asked for, cut at the end, and the size.
        assert_eq!(
            copy.get_range("b", "b/1", 1, 1).unwrap(),
            (b"/".to_vec(), 3)
        );
        assert_eq!(
            copy.get_range("b", "b/1", 1, 10).unwrap(),
            (b"/1".to_vec(), 3)
        );
        assert_eq!(copy.get_range("b", "b/1", 5, 10).unwrap(), (Vec::new(), 3));
        assert!(matches!(
            copy.get_range("b", "b/2", 0, 10),
            Err(ReadError::NotFound)
        ));
        // A huge file, fetched whole as a digest is, is a verdict, never read (sparse:
        // nothing is written).
        std::fs::File::create(dir.path().join("a/huge"))
            .unwrap()
            .set_len(MAX_FETCHED_BYTES + 1)
            .unwrap();
        match copy.get("b", "a/huge") {
            Err(ReadError::Other(why)) => assert_eq!(why, "larger than 256 MiB"),
            other => panic!("{:?}", other.map(|fetched| fetched.body.len())),
        }
    }
}
