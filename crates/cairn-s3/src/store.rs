//! Buckets and objects in one SQLite file of the data directory (`buckets.sqlite`): bucket
//! rows, object rows with their bytes, and multipart uploads with their parts. Every change
//! is one transaction with `synchronous=FULL`, so an acknowledged PutObject is durable, as a
//! trail's log file must be. Keys are compared as bytes, which is S3's listing order.

use std::path::Path;
use std::sync::Mutex;

use md5::{Digest, Md5};
use rusqlite::{params, Connection, OptionalExtension};

/// The largest object one PutObject or one part may carry. Bodies are held in memory while
/// they are checked and stored; larger files go up in parts.
pub const MAX_PUT_BYTES: usize = 64 << 20;
/// The largest object a multipart upload may assemble.
pub const MAX_OBJECT_BYTES: u64 = 1 << 30;
pub const MAX_PARTS: u32 = 10_000;
/// The most keys one listing answers (S3's own cap).
pub const MAX_LIST_KEYS: usize = 1000;
pub const MAX_BUCKETS: usize = 1000;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS buckets (
    name          TEXT PRIMARY KEY,
    region        TEXT NOT NULL,
    account_id    TEXT NOT NULL,
    created_millis INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS objects (
    bucket         TEXT NOT NULL,
    key            TEXT NOT NULL,
    body           BLOB NOT NULL,
    size           INTEGER NOT NULL,
    etag           TEXT NOT NULL,
    content_type   TEXT,
    content_encoding TEXT,
    metadata       TEXT NOT NULL,
    last_modified  INTEGER NOT NULL,
    UNIQUE (bucket, key)
);
CREATE TABLE IF NOT EXISTS uploads (
    upload_id      TEXT PRIMARY KEY,
    bucket         TEXT NOT NULL,
    key            TEXT NOT NULL,
    content_type   TEXT,
    content_encoding TEXT,
    metadata       TEXT NOT NULL,
    initiated      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS parts (
    upload_id   TEXT NOT NULL,
    part_number INTEGER NOT NULL,
    body        BLOB NOT NULL,
    etag        TEXT NOT NULL,
    PRIMARY KEY (upload_id, part_number)
);
";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BucketError {
    #[error("The specified bucket does not exist")]
    NoSuchBucket,
    #[error("The specified key does not exist.")]
    NoSuchKey,
    #[error("The specified upload does not exist.")]
    NoSuchUpload,
    #[error("Your previous request to create the named bucket succeeded and you already own it.")]
    BucketAlreadyOwnedByYou,
    #[error("The requested bucket name is not available.")]
    BucketAlreadyExists,
    #[error("The bucket you tried to delete is not empty")]
    BucketNotEmpty,
    #[error("The specified bucket is not valid.")]
    InvalidBucketName,
    #[error("You have attempted to create more buckets than allowed")]
    TooManyBuckets,
    #[error("Your proposed upload exceeds the maximum allowed size")]
    EntityTooLarge,
    #[error("One or more of the specified parts could not be found.")]
    InvalidPart,
    #[error("The list of parts was not in ascending order.")]
    InvalidPartOrder,
    #[error("The requested range is not satisfiable")]
    InvalidRange,
    #[error("the bucket store failed: {0}")]
    Store(String),
}

impl From<rusqlite::Error> for BucketError {
    fn from(error: rusqlite::Error) -> Self {
        Self::Store(error.to_string())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bucket {
    pub name: String,
    pub region: String,
    pub account_id: String,
    pub created_millis: i64,
}

/// What is stored beside an object's bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectHead {
    pub key: String,
    pub size: u64,
    /// Quoted, as S3 sends it: `"<md5 hex>"`, or `"<md5 of md5s>-<parts>"`.
    pub etag: String,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    /// `x-amz-meta-*` headers, names lowercased without the prefix.
    pub metadata: Vec<(String, String)>,
    pub last_modified_millis: i64,
}

/// What a PutObject or CreateMultipartUpload says of the object besides its bytes.
#[derive(Clone, Debug, Default)]
pub struct NewObject {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub metadata: Vec<(String, String)>,
}

/// A byte range of an object, as the `Range` header asks for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=a-b` (b inclusive) or `bytes=a-`.
    From { first: u64, last: Option<u64> },
    /// `bytes=-n`: the last n bytes.
    Suffix(u64),
}

impl ByteRange {
    /// The `Range` header's one range; `None` for anything else, which S3 ignores.
    pub fn parse(header: &str) -> Option<Self> {
        let spec = header.trim().strip_prefix("bytes=")?;
        if spec.contains(',') {
            return None;
        }
        let (first, last) = spec.split_once('-')?;
        if first.is_empty() {
            return last.parse().ok().map(Self::Suffix);
        }
        let first = first.parse().ok()?;
        let last = if last.is_empty() {
            None
        } else {
            Some(last.parse().ok()?)
        };
        if last.is_some_and(|last| last < first) {
            return None;
        }
        Some(Self::From { first, last })
    }

    /// The (offset, length) this range covers of an object of `size` bytes.
    pub fn resolve(self, size: u64) -> Result<(u64, u64), BucketError> {
        match self {
            Self::From { first, .. } if first >= size => Err(BucketError::InvalidRange),
            Self::From { first, last } => {
                let last = last.unwrap_or(u64::MAX).min(size - 1);
                Ok((first, last - first + 1))
            }
            Self::Suffix(0) => Err(BucketError::InvalidRange),
            Self::Suffix(count) => {
                let count = count.min(size);
                Ok((size - count, count))
            }
        }
    }
}

/// One page of a listing: keys, the common prefixes a delimiter rolled up, and where the
/// next page starts when there is one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    pub contents: Vec<ObjectHead>,
    pub common_prefixes: Vec<String>,
    /// The last key or prefix of this page, when more follow.
    pub next_after: Option<String>,
}

/// What GetObject reads: the head, the bytes asked for, and which (offset, length) they
/// are when a range was asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectRead {
    pub head: ObjectHead,
    pub bytes: Vec<u8>,
    pub span: Option<(u64, u64)>,
}

#[derive(Clone, Debug, Default)]
pub struct ListQuery<'a> {
    pub prefix: &'a str,
    pub delimiter: Option<&'a str>,
    /// Keys (and prefixes) after this one only.
    pub after: Option<&'a str>,
    pub max_keys: usize,
}

pub struct BucketStore {
    connection: Mutex<Connection>,
}

fn quoted_md5(bytes: &[u8]) -> String {
    format!("\"{}\"", hex::encode(Md5::digest(bytes)))
}

fn metadata_json(metadata: &[(String, String)]) -> String {
    serde_json::Value::Object(
        metadata
            .iter()
            .map(|(name, value)| (name.clone(), serde_json::Value::String(value.clone())))
            .collect(),
    )
    .to_string()
}

fn metadata_of(text: &str) -> Vec<(String, String)> {
    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text) {
        Ok(map) => map
            .into_iter()
            .filter_map(|(name, value)| Some((name, value.as_str()?.to_owned())))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Stores an object's bytes and head, replacing any of the same key.
fn write_object(
    connection: &Connection,
    bucket: &str,
    key: &str,
    body: &[u8],
    etag: &str,
    new: &NewObject,
    now_millis: i64,
) -> Result<(), BucketError> {
    connection.execute(
        "INSERT INTO objects (bucket, key, body, size, etag, content_type, content_encoding, metadata, last_modified) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
         ON CONFLICT (bucket, key) DO UPDATE SET body = excluded.body, size = excluded.size, \
         etag = excluded.etag, content_type = excluded.content_type, \
         content_encoding = excluded.content_encoding, metadata = excluded.metadata, \
         last_modified = excluded.last_modified",
        params![
            bucket,
            key,
            body,
            body.len() as i64,
            etag,
            new.content_type,
            new.content_encoding,
            metadata_json(&new.metadata),
            now_millis
        ],
    )?;
    Ok(())
}

const HEAD_COLUMNS: &str =
    "key, size, etag, content_type, content_encoding, metadata, last_modified";

fn head_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ObjectHead> {
    Ok(ObjectHead {
        key: row.get(0)?,
        size: row.get::<_, i64>(1)?.max(0) as u64,
        etag: row.get(2)?,
        content_type: row.get(3)?,
        content_encoding: row.get(4)?,
        metadata: metadata_of(&row.get::<_, String>(5)?),
        last_modified_millis: row.get(6)?,
    })
}

/// The smallest string greater than every key that starts with `prefix`: where a listing
/// resumes after rolling `prefix` up. U+10FFFF is the largest code point, so its UTF-8
/// bytes sort after any continuation of a UTF-8 key.
fn past_prefix(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

impl BucketStore {
    pub fn open(data_dir: &Path) -> Result<Self, BucketError> {
        std::fs::create_dir_all(data_dir).map_err(|error| BucketError::Store(error.to_string()))?;
        let connection = Connection::open(data_dir.join("buckets.sqlite"))?;
        connection.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;",
        )?;
        connection.execute_batch(SCHEMA)?;
        Ok(Self {
            connection: Mutex::new(connection),
        })
    }

    fn connection(&self) -> Result<std::sync::MutexGuard<'_, Connection>, BucketError> {
        self.connection
            .lock()
            .map_err(|_| BucketError::Store("the bucket store lock is poisoned".into()))
    }

    pub fn bucket(&self, name: &str) -> Result<Option<Bucket>, BucketError> {
        let connection = self.connection()?;
        Ok(connection
            .query_row(
                "SELECT name, region, account_id, created_millis FROM buckets WHERE name = ?1",
                params![name],
                |row| {
                    Ok(Bucket {
                        name: row.get(0)?,
                        region: row.get(1)?,
                        account_id: row.get(2)?,
                        created_millis: row.get(3)?,
                    })
                },
            )
            .optional()?)
    }

    fn existing(&self, name: &str) -> Result<Bucket, BucketError> {
        self.bucket(name)?.ok_or(BucketError::NoSuchBucket)
    }

    /// Creates a bucket; S3's answer for one that exists depends on who owns it and where
    /// (us-east-1 answers success to its owner).
    pub fn create_bucket(&self, bucket: &Bucket) -> Result<(), BucketError> {
        if !cairn_model::trail::is_valid_bucket_name(&bucket.name) {
            return Err(BucketError::InvalidBucketName);
        }
        if let Some(existing) = self.bucket(&bucket.name)? {
            return match (
                existing.account_id == bucket.account_id,
                existing.region.as_str(),
            ) {
                (true, "us-east-1") if bucket.region == "us-east-1" => Ok(()),
                (true, _) => Err(BucketError::BucketAlreadyOwnedByYou),
                (false, _) => Err(BucketError::BucketAlreadyExists),
            };
        }
        let connection = self.connection()?;
        let count: i64 =
            connection.query_row("SELECT COUNT(*) FROM buckets", [], |row| row.get(0))?;
        if count as usize >= MAX_BUCKETS {
            return Err(BucketError::TooManyBuckets);
        }
        connection.execute(
            "INSERT OR IGNORE INTO buckets (name, region, account_id, created_millis) VALUES (?1, ?2, ?3, ?4)",
            params![bucket.name, bucket.region, bucket.account_id, bucket.created_millis],
        )?;
        Ok(())
    }

    /// Deletes an empty bucket. A bucket that holds objects is never emptied by this.
    pub fn delete_bucket(&self, name: &str) -> Result<(), BucketError> {
        self.existing(name)?;
        let mut connection = self.connection()?;
        let transaction = connection.transaction()?;
        let holds: bool = transaction.query_row(
            "SELECT EXISTS (SELECT 1 FROM objects WHERE bucket = ?1)",
            params![name],
            |row| row.get(0),
        )?;
        if holds {
            return Err(BucketError::BucketNotEmpty);
        }
        transaction.execute(
            "DELETE FROM parts WHERE upload_id IN (SELECT upload_id FROM uploads WHERE bucket = ?1)",
            params![name],
        )?;
        transaction.execute("DELETE FROM uploads WHERE bucket = ?1", params![name])?;
        transaction.execute("DELETE FROM buckets WHERE name = ?1", params![name])?;
        transaction.commit()?;
        Ok(())
    }

    pub fn list_buckets(&self, account_id: &str) -> Result<Vec<Bucket>, BucketError> {
        let connection = self.connection()?;
        let mut statement = connection.prepare(
            "SELECT name, region, account_id, created_millis FROM buckets WHERE account_id = ?1 ORDER BY name",
        )?;
        let buckets = statement
            .query_map(params![account_id], |row| {
                Ok(Bucket {
                    name: row.get(0)?,
                    region: row.get(1)?,
                    account_id: row.get(2)?,
                    created_millis: row.get(3)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(buckets)
    }

    /// Stores an object, replacing any of the same key; returns its ETag.
    pub fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: &[u8],
        new: &NewObject,
        now_millis: i64,
    ) -> Result<String, BucketError> {
        if body.len() > MAX_PUT_BYTES {
            return Err(BucketError::EntityTooLarge);
        }
        self.existing(bucket)?;
        let etag = quoted_md5(body);
        let connection = self.connection()?;
        write_object(&connection, bucket, key, body, &etag, new, now_millis)?;
        Ok(etag)
    }

    pub fn head_object(&self, bucket: &str, key: &str) -> Result<ObjectHead, BucketError> {
        self.existing(bucket)?;
        let connection = self.connection()?;
        connection
            .query_row(
                &format!("SELECT {HEAD_COLUMNS} FROM objects WHERE bucket = ?1 AND key = ?2"),
                params![bucket, key],
                head_row,
            )
            .optional()?
            .ok_or(BucketError::NoSuchKey)
    }

    /// The object's head and the bytes of `range` (all of it when `None`).
    pub fn get_object(
        &self,
        bucket: &str,
        key: &str,
        range: Option<ByteRange>,
    ) -> Result<ObjectRead, BucketError> {
        let head = self.head_object(bucket, key)?;
        let span = range.map(|range| range.resolve(head.size)).transpose()?;
        let (offset, length) = span.unwrap_or((0, head.size));
        let (bytes, _) = self.read_range(bucket, key, offset, length)?;
        Ok(ObjectRead { head, bytes, span })
    }

    /// Up to `length` bytes of an object's body from `offset` on, and the body's size. The
    /// bytes are read from the database in place (SQLite's incremental blob I/O), so a
    /// range of a large body never loads the rest of it.
    pub fn read_range(
        &self,
        bucket: &str,
        key: &str,
        offset: u64,
        length: u64,
    ) -> Result<(Vec<u8>, u64), BucketError> {
        self.existing(bucket)?;
        let connection = self.connection()?;
        let (row, size): (i64, i64) = connection
            .query_row(
                "SELECT rowid, size FROM objects WHERE bucket = ?1 AND key = ?2",
                params![bucket, key],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?
            .ok_or(BucketError::NoSuchKey)?;
        let size = size as u64;
        if offset >= size {
            return Ok((Vec::new(), size));
        }
        let body = connection.blob_open(rusqlite::MAIN_DB, c"objects", c"body", row, true)?;
        let mut bytes = vec![0; length.min(size - offset) as usize];
        body.read_at_exact(&mut bytes, offset as usize)?;
        Ok((bytes, size))
    }

    /// Deletes an object; deleting one that does not exist succeeds, as in S3.
    pub fn delete_object(&self, bucket: &str, key: &str) -> Result<(), BucketError> {
        self.existing(bucket)?;
        let connection = self.connection()?;
        connection.execute(
            "DELETE FROM objects WHERE bucket = ?1 AND key = ?2",
            params![bucket, key],
        )?;
        Ok(())
    }

    /// One page of the keys under `query.prefix`, in byte order, with keys that share a
    /// part up to the delimiter rolled up into common prefixes (each counts as one key).
    pub fn list_objects(
        &self,
        bucket: &str,
        query: &ListQuery<'_>,
    ) -> Result<Listing, BucketError> {
        self.existing(bucket)?;
        let max_keys = query.max_keys.min(MAX_LIST_KEYS);
        let connection = self.connection()?;
        let mut statement = connection.prepare_cached(&format!(
            "SELECT {HEAD_COLUMNS} FROM objects WHERE bucket = ?1 AND key > ?2 AND key >= ?3 \
             ORDER BY key LIMIT ?4"
        ))?;
        let mut listing = Listing::default();
        let delimiter = query.delimiter.filter(|delimiter| !delimiter.is_empty());
        // Resuming after a common prefix skips every key it rolled up.
        let mut cursor = match (query.after, delimiter) {
            (Some(after), Some(delimiter))
                if after.ends_with(delimiter) && after.starts_with(query.prefix) =>
            {
                past_prefix(after)
            }
            (after, _) => after.unwrap_or("").to_owned(),
        };
        let mut taken = 0;
        'pages: loop {
            let batch = statement
                .query_map(params![bucket, cursor, query.prefix, 256], head_row)?
                .collect::<Result<Vec<_>, _>>()?;
            if batch.is_empty() {
                break;
            }
            for head in batch {
                if !head.key.starts_with(query.prefix) {
                    break 'pages;
                }
                if taken == max_keys {
                    listing.next_after = Some(cursor.clone());
                    break 'pages;
                }
                let rolled = delimiter.and_then(|delimiter| {
                    let rest = &head.key[query.prefix.len()..];
                    rest.find(delimiter)
                        .map(|at| head.key[..query.prefix.len() + at + delimiter.len()].to_owned())
                });
                taken += 1;
                match rolled {
                    Some(prefix) => {
                        cursor = past_prefix(&prefix);
                        listing.common_prefixes.push(prefix);
                        // The rest of this batch may be under the same prefix: ask again
                        // from past it.
                        continue 'pages;
                    }
                    None => {
                        cursor = head.key.clone();
                        listing.contents.push(head);
                    }
                }
            }
        }
        // A page cut exactly at max_keys resumes after its last key or prefix.
        if let Some(next) = &mut listing.next_after {
            if let Some(prefix) = listing.common_prefixes.last() {
                if *next == past_prefix(prefix) {
                    *next = prefix.clone();
                }
            }
        }
        Ok(listing)
    }

    pub fn create_upload(
        &self,
        bucket: &str,
        key: &str,
        new: &NewObject,
        now_millis: i64,
    ) -> Result<String, BucketError> {
        self.existing(bucket)?;
        let upload_id = uuid::Uuid::new_v4().simple().to_string();
        let connection = self.connection()?;
        connection.execute(
            "INSERT INTO uploads (upload_id, bucket, key, content_type, content_encoding, metadata, initiated) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                upload_id,
                bucket,
                key,
                new.content_type,
                new.content_encoding,
                metadata_json(&new.metadata),
                now_millis
            ],
        )?;
        Ok(upload_id)
    }

    fn upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<NewObject, BucketError> {
        self.existing(bucket)?;
        let connection = self.connection()?;
        connection
            .query_row(
                "SELECT content_type, content_encoding, metadata FROM uploads \
                 WHERE upload_id = ?1 AND bucket = ?2 AND key = ?3",
                params![upload_id, bucket, key],
                |row| {
                    Ok(NewObject {
                        content_type: row.get(0)?,
                        content_encoding: row.get(1)?,
                        metadata: metadata_of(&row.get::<_, String>(2)?),
                    })
                },
            )
            .optional()?
            .ok_or(BucketError::NoSuchUpload)
    }

    pub fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: &[u8],
    ) -> Result<String, BucketError> {
        if body.len() > MAX_PUT_BYTES {
            return Err(BucketError::EntityTooLarge);
        }
        if !(1..=MAX_PARTS).contains(&part_number) {
            return Err(BucketError::InvalidPart);
        }
        self.upload(bucket, key, upload_id)?;
        let etag = quoted_md5(body);
        let connection = self.connection()?;
        connection.execute(
            "INSERT INTO parts (upload_id, part_number, body, etag) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (upload_id, part_number) DO UPDATE SET body = excluded.body, etag = excluded.etag",
            params![upload_id, part_number, body, etag],
        )?;
        Ok(etag)
    }

    /// Assembles the named parts, in the order given (which must ascend), into the object;
    /// returns its ETag (`"<md5 of the parts' md5s>-<count>"`).
    pub fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
        now_millis: i64,
    ) -> Result<String, BucketError> {
        let new = self.upload(bucket, key, upload_id)?;
        if parts.is_empty() {
            return Err(BucketError::InvalidPart);
        }
        if parts.windows(2).any(|pair| pair[0].0 >= pair[1].0) {
            return Err(BucketError::InvalidPartOrder);
        }
        let mut connection = self.connection()?;
        let transaction = connection.transaction()?;
        let mut body = Vec::new();
        let mut digests = Vec::new();
        {
            let mut part = transaction.prepare(
                "SELECT body, etag FROM parts WHERE upload_id = ?1 AND part_number = ?2",
            )?;
            for (number, etag) in parts {
                let (bytes, stored_etag): (Vec<u8>, String) = part
                    .query_row(params![upload_id, number], |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })
                    .optional()?
                    .ok_or(BucketError::InvalidPart)?;
                if etag.trim_matches('"') != stored_etag.trim_matches('"') {
                    return Err(BucketError::InvalidPart);
                }
                if body.len() as u64 + bytes.len() as u64 > MAX_OBJECT_BYTES {
                    return Err(BucketError::EntityTooLarge);
                }
                digests.extend_from_slice(&Md5::digest(&bytes));
                body.extend_from_slice(&bytes);
            }
        }
        let etag = format!("\"{}-{}\"", hex::encode(Md5::digest(&digests)), parts.len());
        write_object(&transaction, bucket, key, &body, &etag, &new, now_millis)?;
        transaction.execute("DELETE FROM parts WHERE upload_id = ?1", params![upload_id])?;
        transaction.execute(
            "DELETE FROM uploads WHERE upload_id = ?1",
            params![upload_id],
        )?;
        transaction.commit()?;
        Ok(etag)
    }

    pub fn abort_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(), BucketError> {
        self.upload(bucket, key, upload_id)?;
        let mut connection = self.connection()?;
        let transaction = connection.transaction()?;
        transaction.execute("DELETE FROM parts WHERE upload_id = ?1", params![upload_id])?;
        transaction.execute(
            "DELETE FROM uploads WHERE upload_id = ?1",
            params![upload_id],
        )?;
        transaction.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, BucketStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = BucketStore::open(dir.path()).unwrap();
        store
            .create_bucket(&Bucket {
                name: "logs".into(),
                region: "us-east-1".into(),
                account_id: "111111111111".into(),
                created_millis: 1,
            })
            .unwrap();
        (dir, store)
    }

    fn keys(listing: &Listing) -> Vec<&str> {
        listing
            .contents
            .iter()
            .map(|head| head.key.as_str())
            .collect()
    }

    #[test]
    fn objects_round_trip_with_their_metadata_and_survive_reopening() {
        let (dir, store) = store();
        let new = NewObject {
            content_type: Some("application/json".into()),
            content_encoding: Some("gzip".into()),
            metadata: vec![("signature".into(), "abc".into())],
        };
        let etag = store
            .put_object("logs", "a/b.json.gz", b"hello", &new, 7)
            .unwrap();
        assert_eq!(etag, "\"5d41402abc4b2a76b9719d911017c592\"");
        drop(store);
        let store = BucketStore::open(dir.path()).unwrap();
        let ObjectRead { head, bytes, span } =
            store.get_object("logs", "a/b.json.gz", None).unwrap();
        assert_eq!(bytes, b"hello");
        assert_eq!(span, None);
        assert_eq!(
            head.metadata,
            vec![("signature".to_owned(), "abc".to_owned())]
        );
        assert_eq!(head.content_encoding.as_deref(), Some("gzip"));
        let part = store
            .get_object("logs", "a/b.json.gz", ByteRange::parse("bytes=1-3"))
            .unwrap();
        assert_eq!(
            (part.bytes.as_slice(), part.span),
            (&b"ell"[..], Some((1, 3)))
        );
        let tail = store
            .get_object("logs", "a/b.json.gz", ByteRange::parse("bytes=-2"))
            .unwrap();
        assert_eq!(tail.bytes, b"lo");
        assert_eq!(
            store.get_object("logs", "a/b.json.gz", ByteRange::parse("bytes=9-")),
            Err(BucketError::InvalidRange)
        );
        assert_eq!(
            store.head_object("logs", "missing").unwrap_err(),
            BucketError::NoSuchKey
        );
        assert_eq!(
            store.head_object("nobucket", "x").unwrap_err(),
            BucketError::NoSuchBucket
        );
    }

    #[test]
    fn a_bucket_holding_objects_is_never_deleted() {
        let (_dir, store) = store();
        store
            .put_object("logs", "k", b"x", &NewObject::default(), 1)
            .unwrap();
        assert_eq!(
            store.delete_bucket("logs"),
            Err(BucketError::BucketNotEmpty)
        );
        store.delete_object("logs", "k").unwrap();
        store.delete_bucket("logs").unwrap();
        assert_eq!(store.bucket("logs").unwrap(), None);
    }

    #[test]
    fn creating_a_bucket_that_exists_answers_as_s3_does() {
        let (_dir, store) = store();
        let mut again = Bucket {
            name: "logs".into(),
            region: "us-east-1".into(),
            account_id: "111111111111".into(),
            created_millis: 2,
        };
        assert_eq!(store.create_bucket(&again), Ok(()));
        again.region = "eu-west-1".into();
        assert_eq!(
            store.create_bucket(&again),
            Err(BucketError::BucketAlreadyOwnedByYou)
        );
        again.account_id = "222222222222".into();
        assert_eq!(
            store.create_bucket(&again),
            Err(BucketError::BucketAlreadyExists)
        );
        again.name = "Bad_Name".into();
        assert_eq!(
            store.create_bucket(&again),
            Err(BucketError::InvalidBucketName)
        );
    }

    #[test]
    fn listings_roll_up_prefixes_and_page_in_byte_order() {
        let (_dir, store) = store();
        for key in ["a/1", "a/2", "b", "c/x/1", "c/y", "d"] {
            store
                .put_object("logs", key, b"", &NewObject::default(), 1)
                .unwrap();
        }
        let all = store
            .list_objects(
                "logs",
                &ListQuery {
                    max_keys: 1000,
                    ..ListQuery::default()
                },
            )
            .unwrap();
        assert_eq!(keys(&all), ["a/1", "a/2", "b", "c/x/1", "c/y", "d"]);
        assert_eq!(all.next_after, None);
        let rolled = store
            .list_objects(
                "logs",
                &ListQuery {
                    delimiter: Some("/"),
                    max_keys: 1000,
                    ..ListQuery::default()
                },
            )
            .unwrap();
        assert_eq!(keys(&rolled), ["b", "d"]);
        assert_eq!(rolled.common_prefixes, ["a/", "c/"]);
        let under_c = store
            .list_objects(
                "logs",
                &ListQuery {
                    prefix: "c/",
                    delimiter: Some("/"),
                    max_keys: 1000,
                    ..ListQuery::default()
                },
            )
            .unwrap();
        assert_eq!(keys(&under_c), ["c/y"]);
        assert_eq!(under_c.common_prefixes, ["c/x/"]);
        // Pages of two, each resuming where the last stopped, see every entry once.
        let mut seen = Vec::new();
        let mut after = None::<String>;
        loop {
            let page = store
                .list_objects(
                    "logs",
                    &ListQuery {
                        delimiter: Some("/"),
                        after: after.as_deref(),
                        max_keys: 2,
                        ..ListQuery::default()
                    },
                )
                .unwrap();
            seen.extend(page.contents.iter().map(|head| head.key.clone()));
            seen.extend(page.common_prefixes.iter().cloned());
            match page.next_after {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        seen.sort();
        assert_eq!(seen, ["a/", "b", "c/", "d"]);
    }

    #[test]
    fn a_multipart_upload_assembles_its_parts_in_order() {
        let (_dir, store) = store();
        let id = store
            .create_upload("logs", "big", &NewObject::default(), 1)
            .unwrap();
        let first = store.upload_part("logs", "big", &id, 1, b"hello ").unwrap();
        let second = store.upload_part("logs", "big", &id, 2, b"world").unwrap();
        assert_eq!(
            store.complete_upload(
                "logs",
                "big",
                &id,
                &[(2, second.clone()), (1, first.clone())],
                2
            ),
            Err(BucketError::InvalidPartOrder)
        );
        let etag = store
            .complete_upload("logs", "big", &id, &[(1, first), (2, second)], 2)
            .unwrap();
        assert!(etag.ends_with("-2\""), "{etag}");
        assert_eq!(
            store.get_object("logs", "big", None).unwrap().bytes,
            b"hello world"
        );
        assert_eq!(
            store.upload_part("logs", "big", &id, 3, b"late"),
            Err(BucketError::NoSuchUpload)
        );
    }
}
