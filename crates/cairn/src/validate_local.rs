//! `cairn validate-logs --local-copy DIR`: a trail's bucket as `aws s3 sync s3://BUCKET DIR`
//! left it on disk. A sync keeps each object's bytes and (as the file's mtime) its
//! LastModified, but not its user metadata, where a digest's signature lives. Every digest
//! but the newest of a chain still has its signature in the copy: its successor holds it as
//! `previousDigestSignature`, and only the signing key could have made it. The newest one's
//! is only in S3, so it is reported as not checkable rather than valid.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::UNIX_EPOCH;

use cairn_integrity::validation::{
    too_large, BucketReader, Fetched, ListedKey, ReadError, MAX_FETCHED_BYTES,
};
use serde_json::Value;

/// Keys handed out per listing page, as S3's ListObjects.
const PAGE_KEYS: usize = 1000;
/// A digest larger than this is not read for its predecessor's signature.
const MAX_DIGEST_BYTES: u64 = 64 << 20;

pub struct LocalCopy {
    root: PathBuf,
    /// Every key under a listed directory, sorted, walked once per directory.
    walked: Mutex<HashMap<PathBuf, Arc<Vec<ListedKey>>>>,
    /// Digest key → the signature its successor recorded for it.
    signatures: OnceLock<HashMap<String, String>>,
}

impl LocalCopy {
    pub fn new(root: &Path) -> anyhow::Result<Self> {
        anyhow::ensure!(
            root.is_dir(),
            "no local copy of a bucket at {}",
            root.display()
        );
        Ok(Self {
            root: root.to_owned(),
            walked: Mutex::default(),
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

    /// Every file under `directory` (of the copy), as keys with their mtimes, sorted.
    fn walk(&self, directory: &Path) -> Arc<Vec<ListedKey>> {
        if let Some(known) = self
            .walked
            .lock()
            .ok()
            .and_then(|walked| walked.get(directory).cloned())
        {
            return known;
        }
        let mut keys = Vec::new();
        let mut pending = vec![directory.to_owned()];
        while let Some(next) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&next) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                if kind.is_dir() {
                    pending.push(path);
                } else if kind.is_file() {
                    let key = path
                        .strip_prefix(&self.root)
                        .ok()
                        .and_then(Path::to_str)
                        .map(str::to_owned);
                    let modified = entry
                        .metadata()
                        .ok()
                        .and_then(|metadata| metadata.modified().ok())
                        .and_then(|at| at.duration_since(UNIX_EPOCH).ok())
                        .map_or(0, |since| since.as_millis() as i64);
                    if let Some(key) = key {
                        keys.push(ListedKey {
                            key,
                            last_modified_millis: modified,
                        });
                    }
                }
            }
        }
        keys.sort_by(|a, b| a.key.cmp(&b.key));
        let keys = Arc::new(keys);
        if let Ok(mut walked) = self.walked.lock() {
            walked.insert(directory.to_owned(), keys.clone());
        }
        keys
    }

    /// The signatures the copy's digests record for their predecessors in `bucket`.
    fn signatures(&self, bucket: &str) -> &HashMap<String, String> {
        self.signatures.get_or_init(|| {
            let mut found = HashMap::new();
            for listed in self.walk(&self.root).iter() {
                if !listed.key.contains("/CloudTrail-Digest/") || !listed.key.ends_with(".json.gz")
                {
                    continue;
                }
                let Some(digest) = self.read_digest(&listed.key) else {
                    continue;
                };
                let text = |name: &str| digest.get(name).and_then(Value::as_str);
                if let (Some(previous), Some(signature), Some(in_bucket)) = (
                    text("previousDigestS3Object"),
                    text("previousDigestSignature"),
                    text("previousDigestS3Bucket"),
                ) {
                    if in_bucket == bucket {
                        found.insert(previous.to_owned(), signature.to_owned());
                    }
                }
            }
            found
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
        let directory = match prefix.rfind('/') {
            Some(end) => self
                .path_of(&prefix[..end])
                .unwrap_or_else(|| self.root.clone()),
            None => self.root.clone(),
        };
        let keys = self.walk(&directory);
        let from = keys.partition_point(|listed| listed.key.as_str() <= marker);
        let matching: Vec<ListedKey> = keys[from..]
            .iter()
            .filter(|listed| listed.key.starts_with(prefix))
            .take(PAGE_KEYS + 1)
            .cloned()
            .collect();
        let more = matching.len() > PAGE_KEYS;
        Ok((matching.into_iter().take(PAGE_KEYS).collect(), more))
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
            let Some(signature) = self.signatures(bucket).get(key) else {
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

    #[test]
    fn keys_never_leave_the_copy_and_pages_follow_the_marker() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a/1", "a/2", "a/3", "b/1"] {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, name).unwrap();
        }
        let copy = LocalCopy::new(dir.path()).unwrap();
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
        // A huge file is a verdict, never read (sparse: nothing is written).
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
