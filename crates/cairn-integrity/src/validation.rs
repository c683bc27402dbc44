//! Validates a trail's digest chain and log files as `aws cloudtrail validate-logs` does
//! (spec §5.5), line for line and verdict for verdict, and one check more: a log file that
//! sits in the covered time but that no digest lists was slipped in (the aws CLI never lists
//! log files, so it cannot see one). Digests are fetched a few ahead and log files checked
//! a window at a time on several threads; each line is handed on as soon as the CLI's order
//! allows, so memory does not grow with the range.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use aws_lc_rs::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::digest_file::string_to_sign;

/// The most a digest may decompress to; anything larger is not a digest.
const MAX_DIGEST_BYTES: u64 = 64 << 20;
/// The largest object a reader hands over: a bigger one is a verdict for that file (its
/// bytes are never read), so memory stays bounded by this times the parallelism.
pub const MAX_FETCHED_BYTES: u64 = 256 << 20;

/// An object as a reader fetched it.
pub struct Fetched {
    pub body: Vec<u8>,
    /// User metadata, names without `x-amz-meta-`, lower case.
    pub metadata: HashMap<String, String>,
}

#[derive(Debug)]
pub enum ReadError {
    NotFound,
    Other(String),
}

/// What a reader says of an object past [`MAX_FETCHED_BYTES`].
pub fn too_large() -> ReadError {
    ReadError::Other(format!("larger than {} MiB", MAX_FETCHED_BYTES >> 20))
}

/// A key a listing gave, with when its object was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedKey {
    pub key: String,
    pub last_modified_millis: i64,
}

/// Where the trail's bucket is read from: the embedded S3, an S3 endpoint, a local copy.
pub trait BucketReader: Sync {
    /// One page of keys under `prefix` after `marker`, in order, and whether more follow.
    fn list_page(
        &self,
        bucket: &str,
        prefix: &str,
        marker: &str,
    ) -> Result<(Vec<ListedKey>, bool), ReadError>;
    fn get(&self, bucket: &str, key: &str) -> Result<Fetched, ReadError>;
    /// Up to `length` bytes of an object from `offset` on, and the object's whole size: how
    /// a log file of any size is hashed in bounded memory.
    fn get_range(
        &self,
        bucket: &str,
        key: &str,
        offset: u64,
        length: u64,
    ) -> Result<(Vec<u8>, u64), ReadError>;
}

/// Bytes of a log file asked for at a time: a file of any size is hashed in this much
/// memory per thread.
pub const LOG_CHUNK_BYTES: u64 = 8 << 20;

/// An object read chunk by chunk, as the CLI streams a log file.
struct Chunked<'a> {
    reader: &'a dyn BucketReader,
    bucket: &'a str,
    key: &'a str,
    chunk: Vec<u8>,
    /// How much of `chunk` has been read.
    taken: usize,
    /// Where the next chunk starts.
    offset: u64,
    size: u64,
}

impl Read for Chunked<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        if self.taken == self.chunk.len() {
            if self.offset >= self.size {
                return Ok(0);
            }
            let (chunk, size) = self
                .reader
                .get_range(self.bucket, self.key, self.offset, LOG_CHUNK_BYTES)
                .map_err(|error| std::io::Error::other(format!("{error:?}")))?;
            // An object replaced while it is read is not one file's bytes.
            if size != self.size || chunk.is_empty() {
                return Err(std::io::Error::other(
                    "the object changed while it was read",
                ));
            }
            self.offset += chunk.len() as u64;
            self.chunk = chunk;
            self.taken = 0;
        }
        let count = buffer.len().min(self.chunk.len() - self.taken);
        buffer[..count].copy_from_slice(&self.chunk[self.taken..self.taken + count]);
        self.taken += count;
        Ok(count)
    }
}

/// A public key as ListPublicKeys gives it.
#[derive(Clone, Debug)]
pub struct PublicKey {
    pub fingerprint: String,
    /// The bytes the `Value` decodes to, or why it does not decode, in the CLI's words.
    pub der: Result<Vec<u8>, String>,
}

/// `base64.b64decode` as the aws CLI runs it on a published key's `Value`: Python's lenient
/// decoder, which skips characters outside the alphabet and stops at a complete pad, and
/// its error messages, which the CLI prints as the verdict of every digest the key signed.
pub fn python_b64decode(text: &str) -> Result<Vec<u8>, String> {
    if !text.is_ascii() {
        return Err("string argument should contain only ASCII characters".into());
    }
    let sextet = |byte: u8| match byte {
        b'A'..=b'Z' => Some(byte - b'A'),
        b'a'..=b'z' => Some(byte - b'a' + 26),
        b'0'..=b'9' => Some(byte - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut decoded = Vec::with_capacity(text.len() / 4 * 3);
    // Position in the current group of four, the bits carried over, the pads seen since
    // the last data character.
    let (mut quad, mut carried, mut pads) = (0u8, 0u8, 0u8);
    for byte in text.bytes() {
        if byte == b'=' {
            if quad >= 2 {
                pads += 1;
                if quad + pads >= 4 {
                    return Ok(decoded);
                }
            }
            continue;
        }
        let Some(value) = sextet(byte) else {
            continue;
        };
        pads = 0;
        (quad, carried) = match quad {
            0 => (1, value),
            1 => {
                decoded.push(carried << 2 | value >> 4);
                (2, value & 0x0f)
            }
            2 => {
                decoded.push(carried << 4 | value >> 2);
                (3, value & 0x03)
            }
            _ => {
                decoded.push(carried << 6 | value);
                (0, 0)
            }
        };
    }
    match quad {
        0 => Ok(decoded),
        1 => Err(format!(
            "Invalid base64-encoded string: number of data characters ({}) cannot be 1 more \
             than a multiple of 4",
            decoded.len() / 3 * 4 + 1
        )),
        _ => Err("Incorrect padding".into()),
    }
}

/// What to validate: the aws CLI's arguments, resolved.
#[derive(Clone, Debug)]
pub struct Validation {
    pub trail_arn: String,
    pub trail_name: String,
    pub home_region: String,
    /// The region whose digests are read (the CLI's `--region`, else the home region).
    pub source_region: String,
    pub account_id: String,
    pub bucket: String,
    pub prefix: Option<String>,
    pub organization_id: Option<String>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// How many objects are fetched at once.
    pub parallelism: usize,
}

/// One line of the report, as the CLI words it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    Valid(String),
    Invalid(String),
    /// A gap in the chain: reported, not counted invalid.
    Gap(String),
}

/// What a run counted; its lines went to the run's output as they were found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub valid_digests: usize,
    pub invalid_digests: usize,
    pub valid_logs: usize,
    pub invalid_logs: usize,
    pub found_start: Option<DateTime<Utc>>,
    pub found_end: Option<DateTime<Utc>>,
}

impl Report {
    pub fn is_valid(&self) -> bool {
        self.invalid_digests == 0 && self.invalid_logs == 0
    }
}

/// The CLI's output, written as the run finds its lines: the startup line and the summary
/// on stdout, each valid file on stdout when verbose, each problem on stderr set off by
/// blank lines.
pub struct ReportWriter<'w> {
    verbose: bool,
    stdout: &'w mut dyn std::io::Write,
    stderr: &'w mut dyn std::io::Write,
    started: bool,
    double_spaced: bool,
}

impl<'w> ReportWriter<'w> {
    pub fn new(
        verbose: bool,
        stdout: &'w mut dyn std::io::Write,
        stderr: &'w mut dyn std::io::Write,
    ) -> Self {
        Self {
            verbose,
            stdout,
            stderr,
            started: false,
            double_spaced: true,
        }
    }

    /// The startup line, before the first line of the report (a run that cannot start
    /// prints none).
    fn start(&mut self, validation: &Validation) -> std::io::Result<()> {
        if !self.started {
            self.started = true;
            writeln!(
                self.stdout,
                "Validating log files for trail {} between {} and {}\n",
                validation.trail_arn,
                display(validation.start),
                display(validation.end)
            )?;
        }
        Ok(())
    }

    /// Whether [`ReportWriter::line`] writes anything for `line` (a valid file's line is
    /// printed only when verbose).
    pub fn writes(&self, line: &Line) -> bool {
        !self.started || self.verbose || !matches!(line, Line::Valid(_))
    }

    pub fn line(&mut self, validation: &Validation, line: &Line) -> std::io::Result<()> {
        self.start(validation)?;
        match line {
            Line::Valid(text) => {
                if self.verbose {
                    self.double_spaced = false;
                    writeln!(self.stdout, "{text}")?;
                }
            }
            Line::Invalid(text) | Line::Gap(text) => {
                self.stdout.flush()?;
                if self.double_spaced {
                    write!(self.stderr, "{text}\n\n")?;
                } else {
                    write!(self.stderr, "\n{text}\n\n")?;
                }
                self.stderr.flush()?;
                self.double_spaced = true;
            }
        }
        Ok(())
    }

    pub fn finish(&mut self, validation: &Validation, report: &Report) -> std::io::Result<()> {
        self.start(validation)?;
        let stdout = &mut *self.stdout;
        if !self.double_spaced {
            writeln!(stdout)?;
        }
        writeln!(
            stdout,
            "Results requested for {} to {}",
            display(validation.start),
            display(validation.end)
        )?;
        if report.valid_digests + report.invalid_digests == 0 {
            writeln!(stdout, "No digests found")?;
            return stdout.flush();
        }
        match (report.found_start, report.found_end) {
            (Some(start), Some(end)) => writeln!(
                stdout,
                "Results found for {} to {}:",
                display(start),
                display(end)
            )?,
            _ => writeln!(stdout, "No valid digests found in range")?,
        }
        for (valid, invalid, name) in [
            (report.valid_digests, report.invalid_digests, "digest"),
            (report.valid_logs, report.invalid_logs, "log"),
        ] {
            let total = valid + invalid;
            if total > 0 {
                write!(stdout, "\n{valid}/{total} {name} files valid")?;
                if invalid > 0 {
                    write!(stdout, ", {invalid}/{total} {name} files INVALID")?;
                }
            }
        }
        writeln!(stdout)?;
        stdout.flush()
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
pub fn display(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn compact(at: DateTime<Utc>) -> String {
    at.format("%Y%m%dT%H%M%SZ").to_string()
}

/// A time as the CLI's `--start-time` takes it: RFC 3339, `YYYY-MM-DDTHH:MM:SSZ`,
/// `YYYY-MM-DD`, or epoch seconds; years 1970 to 9999 only, so that the hours the walk adds
/// cannot overflow.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    parse_any_time(text.trim()).filter(|at| (1970..=9999).contains(&at.year()))
}

fn parse_any_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    for format in [
        "%Y-%m-%dT%H:%M:%SZ",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
        "%Y%m%dT%H%M%SZ",
    ] {
        if let Ok(at) = chrono::NaiveDateTime::parse_from_str(text, format) {
            return Some(at.and_utc());
        }
    }
    if let Ok(day) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return day.and_hms_opt(0, 0, 0).map(|at| at.and_utc());
    }
    text.parse::<i64>()
        .ok()
        .and_then(|seconds| Utc.timestamp_opt(seconds, 0).single())
}

/// `arn:<partition>:cloudtrail:<region>:<12 digits>:trail/<name>` → (region, account, name).
pub fn parse_trail_arn(arn: &str) -> Option<(String, String, String)> {
    let mut fields = arn.splitn(6, ':');
    let (_, partition, service, region, account, resource) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    let name = resource.strip_prefix("trail/")?;
    let plain = !partition.is_empty()
        && service == "cloudtrail"
        && !region.is_empty()
        && account.len() == 12
        && account.bytes().all(|byte| byte.is_ascii_digit())
        && !name.is_empty();
    plain.then(|| {
        (
            region.to_owned(),
            account.to_owned(),
            name.rsplit('/').next().unwrap_or(name).to_owned(),
        )
    })
}

impl Validation {
    /// The times, as digest names write them, of the digests a run may read: those the
    /// listing covers, and two hours on either side for the chain's ends. Past year 9999
    /// chrono would write `+10000…`, which sorts before every time, so the end stops there.
    pub fn digest_stamps(&self) -> std::ops::RangeInclusive<String> {
        let end = compact(self.end + Duration::hours(2));
        let end = if end.starts_with('+') {
            "99991231T235959Z".to_owned()
        } else {
            end
        };
        compact(self.start - Duration::hours(2))..=end
    }

    fn logs_root(&self) -> String {
        let mut root = String::new();
        if let Some(prefix) = self.prefix.as_deref().filter(|prefix| !prefix.is_empty()) {
            root.push_str(prefix);
            root.push('/');
        }
        root.push_str("AWSLogs/");
        if let Some(organization) = &self.organization_id {
            root.push_str(organization);
            root.push('/');
        }
        root.push_str(&self.account_id);
        root
    }

    fn digest_prefix(&self) -> String {
        format!(
            "{}/CloudTrail-Digest/{}",
            self.logs_root(),
            self.source_region
        )
    }

    /// The key a digest ending at `at` would have: where the listing starts.
    fn digest_key_at(&self, at: DateTime<Utc>) -> String {
        format!(
            "{}/{}/{}_CloudTrail-Digest_{}_{}_{}_{}.json.gz",
            self.digest_prefix(),
            at.format("%Y/%m/%d"),
            self.account_id,
            self.source_region,
            self.trail_name,
            self.home_region,
            compact(at)
        )
    }

    /// Whether `key` is one of this trail's standard digests (the regex the CLI applies).
    fn is_trail_digest(&self, key: &str) -> bool {
        let Some(rest) = key.strip_prefix(&format!("{}/", self.digest_prefix())) else {
            return false;
        };
        let mut parts = rest.splitn(4, '/');
        let dated = (0..3).all(|_| {
            parts.next().is_some_and(|part| {
                !part.is_empty() && part.bytes().all(|byte| byte.is_ascii_digit())
            })
        });
        let Some(name) = parts.next() else {
            return false;
        };
        let head = format!(
            "{}_CloudTrail-Digest_{}_{}_{}_",
            self.account_id, self.source_region, self.trail_name, self.home_region
        );
        dated
            && name.len() > head.len() + ".json.gz".len()
            && name.starts_with(&head)
            && name.ends_with(".json.gz")
            && !name.ends_with("_backfill.json.gz")
    }
}

/// The key's own time, `key[-24:-8]`, as the CLI reads it.
pub fn key_stamp(key: &str) -> Option<&str> {
    let length = key.len();
    (length >= 24)
        .then(|| key.get(length - 24..length - 8))
        .flatten()
}

fn stamp_time(stamp: &str) -> Option<DateTime<Utc>> {
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%SZ")
        .ok()
        .map(|at| at.and_utc())
}

/// A bucket's digests in a range: those with a readable time in their name, oldest first,
/// and those without.
#[derive(Default)]
struct DigestListing {
    keys: Vec<String>,
    malformed: Vec<String>,
}

/// What fetching and checking one digest gave.
#[derive(Clone, Debug)]
enum DigestOutcome {
    Valid(Box<ValidDigest>),
    NotFound,
    Invalid(String),
}

/// What the walk reads of a valid digest, taken out of its JSON as soon as it is checked:
/// a listed log file costs its three strings, not a parsed object.
#[derive(Clone, Debug)]
struct ValidDigest {
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    previous_bucket: Option<String>,
    previous_key: Option<String>,
    /// Each listed log file's bucket, key and hash, in the digest's order.
    logs: Vec<(String, String, String)>,
}

impl ValidDigest {
    fn of(digest: &serde_json::Map<String, Value>) -> Self {
        let text = |name: &str| digest.get(name).and_then(Value::as_str);
        let logs = digest
            .get("logFiles")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|entry| {
                let field = |name: &str| {
                    entry
                        .get(name)
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned()
                };
                (field("s3Bucket"), field("s3Object"), field("hashValue"))
            })
            .collect();
        Self {
            start: text("digestStartTime").and_then(parse_time),
            end: text("digestEndTime").and_then(parse_time),
            previous_bucket: text("previousDigestS3Bucket").map(str::to_owned),
            previous_key: text("previousDigestS3Object").map(str::to_owned),
            logs,
        }
    }
}

/// A digest's bytes as the CLI's `zlib.decompress` reads them: the first gzip member whole,
/// anything after it ignored.
fn gunzip(body: &[u8], limit: u64) -> Option<Vec<u8>> {
    let mut decoder = flate2::read::GzDecoder::new(body).take(limit + 1);
    let mut out = Vec::new();
    decoder.read_to_end(&mut out).ok()?;
    (out.len() as u64 <= limit).then_some(out)
}

const REQUIRED: &[&str] = &[
    "digestPublicKeyFingerprint",
    "digestS3Bucket",
    "digestS3Object",
    "previousDigestSignature",
    "digestEndTime",
    "digestStartTime",
];

fn check_digest(
    reader: &dyn BucketReader,
    keys: &HashMap<String, PublicKey>,
    home_region: &str,
    bucket: &str,
    key: &str,
) -> DigestOutcome {
    let invalid = |why: &str| {
        DigestOutcome::Invalid(format!("Digest file\ts3://{bucket}/{key}\tINVALID: {why}"))
    };
    let fetched = match reader.get(bucket, key) {
        Ok(fetched) => fetched,
        Err(ReadError::NotFound) => return DigestOutcome::NotFound,
        Err(ReadError::Other(error)) => return invalid(&error),
    };
    let Some(inflated) = gunzip(&fetched.body, MAX_DIGEST_BYTES) else {
        return invalid("invalid format");
    };
    let Ok(Value::Object(digest)) = serde_json::from_slice::<Value>(&inflated) else {
        return invalid("invalid format");
    };
    let (Some(signature), Some(_)) = (
        fetched.metadata.get("signature"),
        fetched.metadata.get("signature-algorithm"),
    ) else {
        return invalid("signature verification failed");
    };
    if REQUIRED.iter().any(|name| !digest.contains_key(*name)) {
        return invalid("invalid format");
    }
    let text = |name: &str| digest.get(name).and_then(Value::as_str);
    if text("digestS3Bucket") != Some(bucket) || text("digestS3Object") != Some(key) {
        return invalid("has been moved from its original location");
    }
    let fingerprint = digest
        .get("digestPublicKeyFingerprint")
        .map(|value| {
            value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_owned)
        })
        .unwrap_or_default();
    let Some(public) = keys.get(&fingerprint) else {
        return invalid(&format!(
            "public key not found in region {home_region} for fingerprint {fingerprint}"
        ));
    };
    let der = match &public.der {
        Ok(der) if looks_like_pkcs1(der) => der,
        Ok(_) => {
            return invalid(&format!(
                "Unable to load PKCS #1 key with fingerprint {fingerprint}"
            ))
        }
        Err(why) => return invalid(why),
    };
    let (Some(end_time), Some(_)) = (text("digestEndTime"), text("digestStartTime")) else {
        return invalid("invalid format");
    };
    let previous = match digest.get("previousDigestSignature") {
        Some(Value::String(previous)) => Some(previous.as_str()),
        Some(Value::Null) | None => None,
        Some(_) => return invalid("invalid format"),
    };
    let hash = hex::encode(Sha256::digest(&inflated));
    let to_sign = string_to_sign(end_time, bucket, key, &hash, previous);
    let Ok(signature) = hex::decode(signature) else {
        return invalid("signature verification failed");
    };
    let verified = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, der)
        .verify(to_sign.as_bytes(), &signature)
        .is_ok();
    if !verified {
        return invalid("signature verification failed");
    }
    if parse_time(end_time).is_none() {
        return invalid("invalid format");
    }
    DigestOutcome::Valid(Box::new(ValidDigest::of(&digest)))
}

/// A DER `SEQUENCE` of two `INTEGER`s: what PKCS#1 `RSAPublicKey` is.
fn looks_like_pkcs1(der: &[u8]) -> bool {
    fn element(bytes: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = bytes.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (length, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 || rest.len() < count {
                return None;
            }
            let length = rest[..count]
                .iter()
                .fold(0usize, |length, byte| (length << 8) | usize::from(*byte));
            (length, &rest[count..])
        };
        (rest.len() >= length).then(|| (tag, &rest[..length], &rest[length..]))
    }
    let Some((0x30, body, trailing)) = element(der) else {
        return false;
    };
    let Some((0x02, _, rest)) = element(body) else {
        return false;
    };
    matches!(element(rest), Some((0x02, _, after)) if after.is_empty()) && trailing.is_empty()
}

/// A line of the report, or the place of a log file's line until it is checked.
enum Entry {
    Line(Line),
    Log(usize),
}

/// Digests fetched ahead of the walk, per thread: one may list an hour of log files.
const DIGESTS_AHEAD_PER_THREAD: usize = 2;
/// Lines the walk holds (a listed log file's among them, until it is checked) before they
/// are handed on.
const LOGS_PER_WINDOW: usize = 4096;

/// The walk's lines not handed on yet, the log files they wait on, and every log file
/// of the trail's bucket a valid digest listed so far.
#[derive(Default)]
struct Pending {
    entries: Vec<Entry>,
    logs: Vec<(String, String, String)>,
    listed: ListedKeys,
}

/// A set of keys kept as the first 16 bytes of their SHA-256: a million listed log files
/// cost tens of megabytes, not the hundreds their names would.
#[derive(Default)]
struct ListedKeys(HashSet<[u8; 16]>);

impl ListedKeys {
    fn of(key: &str) -> [u8; 16] {
        let hash = Sha256::digest(key.as_bytes());
        let mut short = [0u8; 16];
        short.copy_from_slice(&hash[..16]);
        short
    }

    fn insert(&mut self, key: &str) {
        self.0.insert(Self::of(key));
    }

    fn contains(&self, key: &str) -> bool {
        self.0.contains(&Self::of(key))
    }
}

/// What checking one log file gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LogOutcome {
    Valid,
    Mismatch,
    NotFound,
    InvalidFormat,
}

fn check_log(reader: &dyn BucketReader, bucket: &str, key: &str, expected: &str) -> LogOutcome {
    let (chunk, size) = match reader.get_range(bucket, key, 0, LOG_CHUNK_BYTES) {
        Ok(first) => first,
        Err(ReadError::NotFound) => return LogOutcome::NotFound,
        Err(ReadError::Other(_)) => return LogOutcome::InvalidFormat,
    };
    let file = Chunked {
        reader,
        bucket,
        key,
        offset: chunk.len() as u64,
        chunk,
        taken: 0,
        size,
    };
    // As the CLI's streaming `zlib.decompressobj`: the first member, and a file that ends
    // early is hashed as far as it goes (a mismatch, not a format error).
    let mut decoder = flate2::read::GzDecoder::new(file);
    let mut hash = Sha256::new();
    let mut buffer = vec![0u8; 64 << 10];
    loop {
        match decoder.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => hash.update(&buffer[..read]),
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(_) => return LogOutcome::InvalidFormat,
        }
    }
    if hex::encode(hash.finalize()) == expected {
        LogOutcome::Valid
    } else {
        LogOutcome::Mismatch
    }
}

/// Runs `work` over `items` on `threads` threads, results in the items' order.
fn in_parallel<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    progress: &(dyn Fn() + Sync),
    work: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads.clamp(1, items.len().max(1)) {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(index) else {
                    break;
                };
                let result = work(item);
                progress();
                if let Ok(mut results) = results.lock() {
                    results[index] = Some(result);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect()
}

/// Everything a run needs besides the bucket.
pub struct Validator<'a> {
    pub reader: &'a dyn BucketReader,
    pub keys: HashMap<String, PublicKey>,
    /// Called once per object fetched: for a progress bar.
    pub progress: &'a (dyn Fn() + Sync),
}

/// Why a run could not start (the CLI's fatal errors).
#[derive(Debug, thiserror::Error)]
pub enum ValidationError {
    #[error("No public keys found between {0} and {1}")]
    NoPublicKeys(String, String),
    #[error("{0}")]
    Read(String),
    #[error("cannot write the report: {0}")]
    Output(std::io::Error),
}

impl Validator<'_> {
    /// The standard digests of `bucket` from the range's start to `end` (plus the hour a
    /// digest may spill into), oldest first, as the CLI lists them.
    fn digest_keys(
        &self,
        validation: &Validation,
        bucket: &str,
        end: DateTime<Utc>,
    ) -> Result<DigestListing, ValidationError> {
        let mut marker = validation.digest_key_at(validation.start - Duration::minutes(1));
        let prefix = validation.digest_prefix();
        let first = compact(validation.start);
        let last = compact(end + Duration::hours(1));
        let mut listing = DigestListing::default();
        loop {
            let (page, more) = self
                .reader
                .list_page(bucket, &prefix, &marker)
                .map_err(|error| ValidationError::Read(format!("{error:?}")))?;
            for ListedKey { key, .. } in &page {
                // Keys come after the marker; a listing that repeats itself is not believed.
                if key.as_str() <= marker.as_str() || !validation.is_trail_digest(key) {
                    continue;
                }
                let Some(stamp) = key_stamp(key) else {
                    continue;
                };
                if stamp > last.as_str() {
                    return Ok(listing);
                }
                if stamp < first.as_str() {
                    continue;
                }
                // The CLI stops with a date error here; one such key must not end the walk.
                match stamp_time(stamp) {
                    Some(_) => listing.keys.push(key.clone()),
                    None => listing.malformed.push(key.clone()),
                }
            }
            match page.last() {
                // A page that does not move on (a broken listing) ends it, as the last.
                Some(last) if more && last.key > marker => marker = last.key.clone(),
                _ => return Ok(listing),
            }
        }
    }

    /// Walks the chain from the newest digest back, as the CLI does, handing each line to
    /// `out` in the CLI's order as soon as it is known. What is held at a time is a few
    /// digests ahead (at most [`DIGESTS_AHEAD_PER_THREAD`] per thread, fewer when each
    /// lists many files) and the lines of about [`LOGS_PER_WINDOW`] log files (more only
    /// when one digest lists more), whatever the range; and for the unlisted-file check,
    /// 16 bytes per listed log file.
    pub fn run(
        &self,
        validation: &Validation,
        out: &mut dyn FnMut(&Line) -> std::io::Result<()>,
    ) -> Result<Report, ValidationError> {
        let DigestListing {
            keys: mut listed,
            malformed,
        } = self.digest_keys(validation, &validation.bucket, validation.end)?;
        // A region that never signed has no key, and nothing to check (the server's
        // ListPublicKeys would make one for the CLI, which then finds no digests either).
        if self.keys.is_empty() && !(listed.is_empty() && malformed.is_empty()) {
            return Err(ValidationError::NoPublicKeys(
                display(validation.start),
                display(validation.end + Duration::hours(2)),
            ));
        }
        let home = validation.home_region.as_str();
        let most_ahead = validation.parallelism.max(1) * DIGESTS_AHEAD_PER_THREAD;
        // Log files the digests fetched last listed, on average: digests that list many
        // are fetched fewer at a time, so those held ahead list about one window.
        let mut logs_per_digest: Option<usize> = None;
        let mut cache: HashMap<(String, String), DigestOutcome> = HashMap::new();
        let mut report = Report::default();
        let mut pending = Pending::default();
        for key in malformed {
            report.invalid_digests += 1;
            pending.entries.push(Entry::Line(Line::Invalid(format!(
                "Digest file\ts3://{}/{key}\tINVALID: invalid format",
                validation.bucket
            ))));
        }
        // The time each unbroken stretch of the chain covers, from its oldest valid digest
        // to its newest, within the range: for the unlisted-file check. An invalid or
        // missing digest inside a stretch leaves its time covered; a digest with no
        // predecessor (logging or validation restarted) ends the stretch.
        let mut covered: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
        let mut stretch: Option<(DateTime<Utc>, DateTime<Utc>)> = None;
        let mut bucket = validation.bucket.clone();
        let mut key = listed.pop();
        let mut last_start = key.as_deref().and_then(key_stamp).and_then(stamp_time);
        let older_than = |listed: &mut Vec<String>, before: &str| -> Option<String> {
            let before = key_stamp(before).and_then(stamp_time)?;
            while let Some(next) = listed.pop() {
                if key_stamp(&next)
                    .and_then(stamp_time)
                    .is_some_and(|at| at < before)
                {
                    return Some(next);
                }
            }
            None
        };
        while let (Some(current), Some(start_bound)) = (key.clone(), last_start) {
            if validation.start > start_bound {
                break;
            }
            // Listed digests of this one's time or later are not the next ones the walk
            // reads (it may still come back to one: a chain can point forward in time).
            let current_time = key_stamp(&current).and_then(stamp_time);
            let passed = |key: &str| {
                current_time.is_some_and(|now| {
                    key_stamp(key)
                        .and_then(stamp_time)
                        .is_none_or(|at| at >= now)
                })
            };
            let place = (bucket.clone(), current.clone());
            if !cache.contains_key(&place) {
                // This digest and the next ones listed, fetched together; a digest
                // fetched ahead and passed is fetched again if the walk comes back to it.
                cache.retain(|(cached, key), _| *cached == bucket && !passed(key));
                let before = listed.partition_point(|key| !passed(key));
                // The newest digest alone first, to learn how many files a digest lists.
                let ahead = match logs_per_digest {
                    None => 1,
                    Some(listing) => (LOGS_PER_WINDOW / listing.max(1)).clamp(1, most_ahead),
                };
                let mut fetch = vec![current.clone()];
                fetch.extend(
                    listed[..before]
                        .iter()
                        .rev()
                        .filter(|key| !cache.contains_key(&(bucket.clone(), (*key).clone())))
                        .take(ahead - 1)
                        .cloned(),
                );
                let fetched = in_parallel(&fetch, validation.parallelism, self.progress, |key| {
                    check_digest(self.reader, &self.keys, home, &bucket, key)
                });
                let listings: Vec<usize> = fetched
                    .iter()
                    .filter_map(|outcome| match outcome {
                        DigestOutcome::Valid(digest) => Some(digest.logs.len()),
                        _ => None,
                    })
                    .collect();
                // Digests that did not check list nothing the walk holds.
                logs_per_digest = Some(listings.iter().sum::<usize>() / listings.len().max(1));
                for (key, outcome) in fetch.into_iter().zip(fetched) {
                    cache.insert((bucket.clone(), key), outcome);
                }
            }
            let outcome = cache
                .remove(&place)
                .unwrap_or_else(|| check_digest(self.reader, &self.keys, home, &bucket, &current));
            match outcome {
                DigestOutcome::Valid(digest) => {
                    let ValidDigest {
                        start,
                        end,
                        previous_bucket,
                        previous_key,
                        logs,
                    } = *digest;
                    let Some(start) = start else {
                        report.invalid_digests += 1;
                        pending.entries.push(Entry::Line(Line::Invalid(format!(
                            "Digest file\ts3://{bucket}/{current}\tINVALID: invalid format"
                        ))));
                        key = older_than(&mut listed, &current);
                        continue;
                    };
                    last_start = Some(start);
                    let earliest = start.max(validation.start);
                    if report.found_start.is_none_or(|found| earliest < found) {
                        report.found_start = Some(earliest);
                    }
                    if let Some(end) = end {
                        let latest = end.min(validation.end);
                        if report.found_end.is_none_or(|found| latest > found) {
                            report.found_end = Some(latest);
                        }
                        stretch = Some(match stretch {
                            Some((from, to)) => (from.min(earliest), to.max(latest)),
                            None => (earliest, latest),
                        });
                    }
                    report.valid_digests += 1;
                    pending.entries.push(Entry::Line(Line::Valid(format!(
                        "Digest file\ts3://{bucket}/{current}\tvalid"
                    ))));
                    for log in logs {
                        pending.entries.push(Entry::Log(pending.logs.len()));
                        pending.logs.push(log);
                    }
                    match (previous_bucket, previous_key) {
                        (Some(previous_bucket), Some(previous_key)) => {
                            if previous_bucket != bucket {
                                // As the CLI: the chain went on in another bucket, whose
                                // digests are listed afresh.
                                bucket = previous_bucket;
                                listed = self
                                    .digest_keys(
                                        validation,
                                        &bucket,
                                        end.unwrap_or(validation.end),
                                    )?
                                    .keys;
                            }
                            key = Some(previous_key);
                        }
                        _ => {
                            covered.extend(stretch.take());
                            let next = older_than(&mut listed, &current);
                            if let Some(next) = &next {
                                let next_end = key_stamp(next).and_then(stamp_time);
                                pending.entries.push(Entry::Line(Line::Gap(format!(
                                    "No log files were delivered by CloudTrail between {} and {}",
                                    next_end.map(display).unwrap_or_default(),
                                    display(start)
                                ))));
                            }
                            key = next;
                        }
                    }
                }
                DigestOutcome::NotFound => {
                    report.invalid_digests += 1;
                    pending.entries.push(Entry::Line(Line::Invalid(format!(
                        "Digest file\ts3://{bucket}/{current}\tINVALID: not found"
                    ))));
                    key = older_than(&mut listed, &current);
                }
                DigestOutcome::Invalid(message) => {
                    report.invalid_digests += 1;
                    pending.entries.push(Entry::Line(Line::Invalid(message)));
                    key = older_than(&mut listed, &current);
                }
            }
            if pending.entries.len() >= LOGS_PER_WINDOW {
                self.check_logs(validation, &mut pending, &mut report, out)?;
            }
        }
        covered.extend(stretch);
        self.check_logs(validation, &mut pending, &mut report, out)?;
        self.find_unlisted(validation, &pending.listed, &covered, &mut report, out)?;
        Ok(report)
    }

    /// Checks the pending log files (in parallel) and hands on every pending line, each
    /// log file's where the CLI would put it.
    fn check_logs(
        &self,
        validation: &Validation,
        pending: &mut Pending,
        report: &mut Report,
        out: &mut dyn FnMut(&Line) -> std::io::Result<()>,
    ) -> Result<(), ValidationError> {
        let outcomes = in_parallel(
            &pending.logs,
            validation.parallelism,
            self.progress,
            |(bucket, key, hash)| check_log(self.reader, bucket, key, hash),
        );
        for entry in std::mem::take(&mut pending.entries) {
            let position = match entry {
                Entry::Line(line) => {
                    out(&line).map_err(ValidationError::Output)?;
                    continue;
                }
                Entry::Log(position) => position,
            };
            let (bucket, key, _) = &pending.logs[position];
            let name = format!("Log file\ts3://{bucket}/{key}\t");
            let outcome = outcomes
                .get(position)
                .copied()
                .unwrap_or(LogOutcome::InvalidFormat);
            let line = match outcome {
                LogOutcome::Valid => Line::Valid(format!("{name}valid")),
                LogOutcome::Mismatch => {
                    Line::Invalid(format!("{name}INVALID: hash value doesn't match"))
                }
                LogOutcome::NotFound => Line::Invalid(format!("{name}INVALID: not found")),
                LogOutcome::InvalidFormat => {
                    Line::Invalid(format!("{name}INVALID: invalid format"))
                }
            };
            match outcome {
                LogOutcome::Valid => report.valid_logs += 1,
                _ => report.invalid_logs += 1,
            }
            out(&line).map_err(ValidationError::Output)?;
        }
        for (bucket, key, _) in pending.logs.drain(..) {
            if bucket == validation.bucket {
                pending.listed.insert(&key);
            }
        }
        Ok(())
    }

    /// Log files of the covered time that no valid digest lists: slipped in. A file's name
    /// carries its delivery minute; one named for a minute some valid digest covers is
    /// flagged, unless it was written outside every covered period within its named minute
    /// (2 s of slack: named just before a minute ends): delivered at a period's edge, and
    /// listed by a digest outside the range.
    fn find_unlisted(
        &self,
        validation: &Validation,
        listed: &ListedKeys,
        covered: &[(DateTime<Utc>, DateTime<Utc>)],
        report: &mut Report,
        out: &mut dyn FnMut(&Line) -> std::io::Result<()>,
    ) -> Result<(), ValidationError> {
        let (Some(first), Some(last)) = (
            covered.iter().map(|(start, _)| *start).min(),
            covered.iter().map(|(_, end)| *end).max(),
        ) else {
            return Ok(());
        };
        let within =
            |at: DateTime<Utc>| covered.iter().any(|(start, end)| *start <= at && at < *end);
        let root = format!(
            "{}/CloudTrail/{}/",
            validation.logs_root(),
            validation.source_region
        );
        let mut day = first.date_naive();
        while day <= last.date_naive() {
            let prefix = format!("{root}{}/", day.format("%Y/%m/%d"));
            let mut marker = String::new();
            // A listing that fails only ends this extra check; the digests' own verdicts stand.
            while let Ok((page, more)) = self.reader.list_page(&validation.bucket, &prefix, &marker)
            {
                for ListedKey {
                    key,
                    last_modified_millis,
                } in &page
                {
                    if key.as_str() <= marker.as_str() || listed.contains(key) {
                        continue;
                    }
                    let Some(named) = log_file_minute(key) else {
                        continue;
                    };
                    let named_end = named + Duration::minutes(1);
                    if !covered
                        .iter()
                        .any(|(start, end)| named < *end && named_end > *start)
                    {
                        continue;
                    }
                    let written = Utc
                        .timestamp_millis_opt(*last_modified_millis)
                        .single()
                        .unwrap_or_default();
                    let at_an_edge = written >= named
                        && written < named + Duration::seconds(62)
                        && !within(written);
                    if at_an_edge {
                        continue;
                    }
                    report.invalid_logs += 1;
                    out(&Line::Invalid(format!(
                        "Log file\ts3://{}/{key}\tINVALID: not listed in any digest",
                        validation.bucket
                    )))
                    .map_err(ValidationError::Output)?;
                }
                match page.last() {
                    Some(last) if more && last.key > marker => marker = last.key.clone(),
                    _ => break,
                }
            }
            let Some(next) = day.succ_opt() else {
                break;
            };
            day = next;
        }
        Ok(())
    }
}

/// The delivery minute in a log file's name, `..._<YYYYMMDDTHHmmZ>_<16 characters>.json.gz`.
fn log_file_minute(key: &str) -> Option<DateTime<Utc>> {
    let named = key
        .len()
        .checked_sub(39)
        .and_then(|start| key.get(start..start + 14))?;
    chrono::NaiveDateTime::parse_from_str(named, "%Y%m%dT%H%MZ")
        .ok()
        .map(|at| at.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each answer is what Python 3.11's `base64.b64decode` gave for the same text.
    #[test]
    fn published_keys_decode_as_python_decodes_them() {
        let data_characters = |count: usize| {
            Err(format!(
                "Invalid base64-encoded string: number of data characters ({count}) cannot be \
                 1 more than a multiple of 4"
            ))
        };
        let padding = || Err("Incorrect padding".to_owned());
        let cases: [(&str, Result<Vec<u8>, String>); 21] = [
            ("not base64!", data_characters(9)),
            ("QUJD", Ok(b"ABC".to_vec())),
            ("QUJ", padding()),
            ("QU", padding()),
            ("Q", data_characters(1)),
            ("QUJDR", data_characters(5)),
            ("QUJDRA", padding()),
            ("QUJDRA=", padding()),
            ("QUJDRA==", Ok(b"ABCD".to_vec())),
            ("QU=JD", Ok(b"ABC".to_vec())),
            ("QUJD=RA==", Ok(b"ABCD".to_vec())),
            ("Q=UJD", Ok(b"ABC".to_vec())),
            ("QUJD====", Ok(b"ABC".to_vec())),
            ("=QUJD", Ok(b"ABC".to_vec())),
            ("Q===", data_characters(1)),
            ("QU==X", Ok(b"A".to_vec())),
            ("QUI=X", Ok(b"AB".to_vec())),
            (
                "\u{e9}",
                Err("string argument should contain only ASCII characters".to_owned()),
            ),
            ("", Ok(Vec::new())),
            ("!!!!", Ok(Vec::new())),
            ("QUJDRA=x=", Ok(b"ABCD\x0c".to_vec())),
        ];
        for (text, expected) in cases {
            assert_eq!(python_b64decode(text), expected, "{text:?}");
        }
    }
    use std::collections::BTreeMap;

    #[test]
    fn arns_and_times_parse_as_the_cli_takes_them() {
        assert_eq!(
            parse_trail_arn("arn:aws:cloudtrail:us-east-1:123456789012:trail/main"),
            Some(("us-east-1".into(), "123456789012".into(), "main".into()))
        );
        assert_eq!(
            parse_trail_arn("arn:aws:cloudtrail:us-east-1:1234:trail/main"),
            None
        );
        assert_eq!(
            parse_trail_arn("arn:aws:s3:us-east-1:123456789012:trail/main"),
            None
        );
        let at = Utc.with_ymd_and_hms(2026, 12, 2, 4, 13, 0).unwrap();
        for text in [
            "2026-12-02T04:13:00Z",
            "2026-12-02T04:13:00+00:00",
            "2026-12-02T04:13:00",
            "1796184780",
        ] {
            assert_eq!(parse_time(text), Some(at), "{text}");
        }
        assert_eq!(
            parse_time("2026-12-02"),
            Some(at - Duration::minutes(4 * 60 + 13))
        );
        assert_eq!(parse_time("yesterday"), None);
        // Past year 9999 the walk's added hours would overflow.
        assert_eq!(parse_time("8210298412799"), None);
        assert_eq!(
            parse_time("9999-12-31T23:59:59Z").map(|at| at.year()),
            Some(9999)
        );
    }

    /// A bucket in memory; `stuck` makes every listing answer its first page forever.
    #[derive(Default)]
    struct MemoryBucket {
        objects: BTreeMap<String, Vec<u8>>,
        /// User metadata by key (names without `x-amz-meta-`).
        metadata: BTreeMap<String, HashMap<String, String>>,
        stuck: bool,
        /// The most bytes one ranged read handed out, and how many ranged reads there were.
        largest_range: AtomicUsize,
        ranges: AtomicUsize,
    }

    impl BucketReader for MemoryBucket {
        fn list_page(
            &self,
            _bucket: &str,
            prefix: &str,
            marker: &str,
        ) -> Result<(Vec<ListedKey>, bool), ReadError> {
            let after = if self.stuck { "" } else { marker };
            let page: Vec<ListedKey> = self
                .objects
                .keys()
                .filter(|key| key.starts_with(prefix) && key.as_str() > after)
                .take(2)
                .map(|key| ListedKey {
                    key: key.clone(),
                    last_modified_millis: 0,
                })
                .collect();
            let more = page.len() == 2;
            Ok((page, more))
        }

        fn get(&self, _bucket: &str, key: &str) -> Result<Fetched, ReadError> {
            self.objects
                .get(key)
                .map(|body| Fetched {
                    body: body.clone(),
                    metadata: self.metadata.get(key).cloned().unwrap_or_default(),
                })
                .ok_or(ReadError::NotFound)
        }

        fn get_range(
            &self,
            _bucket: &str,
            key: &str,
            offset: u64,
            length: u64,
        ) -> Result<(Vec<u8>, u64), ReadError> {
            let body = self.objects.get(key).ok_or(ReadError::NotFound)?;
            let from = (offset as usize).min(body.len());
            let to = from.saturating_add(length as usize).min(body.len());
            self.largest_range.fetch_max(to - from, Ordering::Relaxed);
            self.ranges.fetch_add(1, Ordering::Relaxed);
            Ok((body[from..to].to_vec(), body.len() as u64))
        }
    }

    /// A log file far larger than one read is hashed chunk by chunk, never held whole, and
    /// a byte changed in its last chunk is still a mismatch.
    #[test]
    fn a_large_log_file_is_read_in_chunks() {
        // Incompressible bytes, stored uncompressed: 2.5 chunks of gzip.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let text: Vec<u8> = (0..(LOG_CHUNK_BYTES as usize * 5 / 2))
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let expected = sha256_hex(&text);
        let stored = |text: &[u8]| {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
            std::io::Write::write_all(&mut gz, text).unwrap();
            gz.finish().unwrap()
        };
        let mut changed = text.clone();
        *changed.last_mut().unwrap() ^= 1;
        let mut bucket = MemoryBucket::default();
        bucket.objects.insert("large".into(), stored(&text));
        bucket.objects.insert("changed".into(), stored(&changed));
        assert!(bucket.objects["large"].len() as u64 > 2 * LOG_CHUNK_BYTES);
        assert_eq!(
            check_log(&bucket, "b", "large", &expected),
            LogOutcome::Valid
        );
        assert_eq!(bucket.ranges.load(Ordering::Relaxed), 3);
        assert_eq!(
            bucket.largest_range.load(Ordering::Relaxed),
            LOG_CHUNK_BYTES as usize
        );
        assert_eq!(
            check_log(&bucket, "b", "changed", &expected),
            LogOutcome::Mismatch
        );
    }

    fn sha256_hex(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    #[test]
    fn log_files_are_read_as_the_cli_reads_them() {
        let text = b"{\"Records\":[]}".repeat(1000);
        let expected = sha256_hex(&text);
        let good = crate::digest_file::gzip(&text);
        let mut bad_crc = good.clone();
        let crc_at = bad_crc.len() - 8;
        bad_crc[crc_at] ^= 1;
        let mut bucket = MemoryBucket::default();
        for (key, body) in [
            ("good", good.clone()),
            (
                "trailing",
                [good.clone(), b"junk after the member".to_vec()].concat(),
            ),
            ("truncated", good[..good.len() / 2].to_vec()),
            ("no-trailer", good[..good.len() - 8].to_vec()),
            ("empty", Vec::new()),
            ("not-gzip", b"{\"Records\":[]}".to_vec()),
            ("bad-crc", bad_crc),
        ] {
            bucket.objects.insert(key.into(), body);
        }
        let outcome = |key: &str| check_log(&bucket, "b", key, &expected);
        assert_eq!(outcome("good"), LogOutcome::Valid);
        // zlib.decompressobj ignores what follows the first member ...
        assert_eq!(outcome("trailing"), LogOutcome::Valid);
        // ... hashes a file that ends early as far as it goes ...
        assert_eq!(outcome("truncated"), LogOutcome::Mismatch);
        assert_eq!(outcome("no-trailer"), LogOutcome::Valid);
        assert_eq!(outcome("empty"), LogOutcome::Mismatch);
        // ... and fails on bytes that are not gzip, or a wrong check value.
        assert_eq!(outcome("not-gzip"), LogOutcome::InvalidFormat);
        assert_eq!(outcome("bad-crc"), LogOutcome::InvalidFormat);
        assert_eq!(outcome("missing"), LogOutcome::NotFound);
    }

    fn validation_of(bucket: &str) -> Validation {
        Validation {
            trail_arn: String::new(),
            trail_name: "main".into(),
            home_region: "us-east-1".into(),
            source_region: "us-east-1".into(),
            account_id: "123456789012".into(),
            bucket: bucket.into(),
            prefix: None,
            organization_id: None,
            start: Utc.with_ymd_and_hms(2026, 12, 2, 0, 0, 0).unwrap(),
            end: Utc.with_ymd_and_hms(2026, 12, 2, 12, 0, 0).unwrap(),
            parallelism: 1,
        }
    }

    /// A signed chain of hourly digests over `validation_of("b")`'s range, each listing
    /// `per_digest` log files named in its hour; returns the bucket, the key that signed,
    /// and the lines the CLI prints for it, newest digest first.
    fn signed_chain(digests: usize, per_digest: usize) -> (MemoryBucket, PublicKey, Vec<Line>) {
        use crate::digest_file::{gzip, seal, DigestFile, DigestFileName, LogFileEntry};
        let keys_dir = tempfile::tempdir().unwrap();
        let hour = 3_600_000;
        let t0 = Utc
            .with_ymd_and_hms(2026, 12, 2, 0, 0, 0)
            .unwrap()
            .timestamp_millis();
        let keys = crate::keys::DigestKeys::open(keys_dir.path(), i64::MAX / 4).unwrap();
        let signer = keys.signing_key("us-east-1", t0).unwrap();
        let mut bucket = MemoryBucket::default();
        let mut previous: Option<crate::digest_file::ChainLink> = None;
        let mut lines_oldest_first = Vec::new();
        for digest in 0..digests {
            let start = t0 + digest as i64 * hour;
            let mut log_files = Vec::new();
            let mut lines = Vec::new();
            for n in 0..per_digest {
                let minute =
                    Utc.timestamp_millis_opt(start).unwrap() + Duration::minutes((n % 60) as i64);
                let key = format!(
                    "AWSLogs/123456789012/CloudTrail/us-east-1/{}/123456789012_CloudTrail_us-east-1_{}_{:016}.json.gz",
                    minute.format("%Y/%m/%d"),
                    minute.format("%Y%m%dT%H%MZ"),
                    digest * per_digest + n
                );
                let text = format!("{{\"Records\":[{{\"n\":{n},\"d\":{digest}}}]}}");
                bucket.objects.insert(key.clone(), gzip(text.as_bytes()));
                lines.push(Line::Valid(format!("Log file\ts3://b/{key}\tvalid")));
                log_files.push(LogFileEntry {
                    s3_bucket: "b".into(),
                    s3_object: key,
                    hash_value: sha256_hex(text.as_bytes()),
                    hash_algorithm: "SHA-256".into(),
                    newest_event_time: crate::digest_file::digest_time(start),
                    oldest_event_time: crate::digest_file::digest_time(start),
                });
            }
            let key = DigestFileName {
                prefix: None,
                organization_id: None,
                account_id: "123456789012",
                region: "us-east-1",
                trail_name: "main",
                home_region: "us-east-1",
                end_millis: start + hour,
            }
            .key();
            let file = DigestFile {
                aws_account_id: "123456789012".into(),
                digest_start_time: crate::digest_file::digest_time(start),
                digest_end_time: crate::digest_file::digest_time(start + hour),
                digest_s3_bucket: "b".into(),
                digest_s3_object: key.clone(),
                digest_public_key_fingerprint: signer.fingerprint.clone(),
                digest_signature_algorithm: "SHA256withRSA".into(),
                newest_event_time: None,
                oldest_event_time: None,
                previous_digest_s3_bucket: previous.as_ref().map(|link| link.bucket.clone()),
                previous_digest_s3_object: previous.as_ref().map(|link| link.key.clone()),
                previous_digest_hash_value: previous.as_ref().map(|link| link.hash.clone()),
                previous_digest_hash_algorithm: previous.as_ref().map(|_| "SHA-256".into()),
                previous_digest_signature: previous.as_ref().map(|link| link.signature.clone()),
                log_files,
            };
            let sealed = seal(&file, &signer).unwrap();
            bucket.objects.insert(key.clone(), sealed.body.clone());
            bucket
                .metadata
                .insert(key.clone(), sealed.metadata().into_iter().collect());
            lines.insert(0, Line::Valid(format!("Digest file\ts3://b/{key}\tvalid")));
            lines_oldest_first.push(lines);
            previous = Some(sealed.link);
        }
        let public = PublicKey {
            fingerprint: signer.fingerprint.clone(),
            der: Ok(signer.public_key_der().to_vec()),
        };
        let lines = lines_oldest_first.into_iter().rev().flatten().collect();
        (bucket, public, lines)
    }

    /// A run over more log files than one window hands its first lines on long before it
    /// has fetched everything, and still prints exactly the CLI's lines in the CLI's order,
    /// with the one changed file and the one slipped-in file named.
    #[test]
    fn lines_are_handed_on_a_window_at_a_time_in_the_clis_order() {
        let (digests, per_digest) = (24, 500);
        let (mut bucket, public, mut expected) = signed_chain(digests, per_digest);
        let changed = match &expected[3001] {
            Line::Valid(text) => text
                .strip_prefix("Log file\ts3://b/")
                .and_then(|rest| rest.strip_suffix("\tvalid"))
                .unwrap()
                .to_owned(),
            other => panic!("{other:?}"),
        };
        bucket.objects.insert(
            changed.clone(),
            crate::digest_file::gzip(b"{\"Records\":[]}"),
        );
        expected[3001] = Line::Invalid(format!(
            "Log file\ts3://b/{changed}\tINVALID: hash value doesn't match"
        ));
        let slipped = "AWSLogs/123456789012/CloudTrail/us-east-1/2026/12/02/123456789012_CloudTrail_us-east-1_20261202T0530Z_slippedslipped00.json.gz";
        bucket
            .objects
            .insert(slipped.into(), crate::digest_file::gzip(b"{}"));
        expected.push(Line::Invalid(format!(
            "Log file\ts3://b/{slipped}\tINVALID: not listed in any digest"
        )));
        let fetched = AtomicUsize::new(0);
        let progress = || {
            fetched.fetch_add(1, Ordering::Relaxed);
        };
        let validator = Validator {
            reader: &bucket,
            keys: HashMap::from([(public.fingerprint.clone(), public)]),
            progress: &progress,
        };
        let mut validation = validation_of("b");
        validation.end = validation.start + Duration::hours(digests as i64);
        validation.parallelism = 2;
        let mut lines = Vec::new();
        let mut fetched_at_first_line = None;
        let report = validator
            .run(&validation, &mut |line| {
                fetched_at_first_line.get_or_insert(fetched.load(Ordering::Relaxed));
                lines.push(line.clone());
                Ok(())
            })
            .unwrap();
        assert_eq!(lines.len(), expected.len());
        for (n, (line, expected)) in lines.iter().zip(&expected).enumerate() {
            assert_eq!(line, expected, "line {n}");
        }
        assert_eq!((report.valid_digests, report.invalid_digests), (digests, 0));
        assert_eq!(
            (report.valid_logs, report.invalid_logs),
            (digests * per_digest - 1, 2)
        );
        let total = digests * (per_digest + 1);
        assert_eq!(fetched.load(Ordering::Relaxed), total);
        // About one window (4,096 log files, to the end of a digest) before the first.
        let first = fetched_at_first_line.unwrap();
        assert!(
            first < total / 2,
            "{first} of {total} objects fetched before the first line"
        );
    }

    #[test]
    fn the_digest_stamps_a_run_reads_sort_as_a_range_up_to_year_9999() {
        let mut validation = validation_of("b");
        let stamps = validation.digest_stamps();
        assert_eq!(
            (stamps.start().as_str(), stamps.end().as_str()),
            ("20261201T220000Z", "20261202T140000Z")
        );
        validation.end = Utc.with_ymd_and_hms(9999, 12, 31, 23, 0, 0).unwrap();
        let stamps = validation.digest_stamps();
        assert_eq!(stamps.end(), "99991231T235959Z");
        assert!(stamps.contains(&"99991231T230000Z".to_owned()));
    }

    fn digest_key(stamp: &str) -> String {
        format!(
            "AWSLogs/123456789012/CloudTrail-Digest/us-east-1/2026/12/02/123456789012_CloudTrail-Digest_us-east-1_main_us-east-1_{stamp}.json.gz"
        )
    }

    #[test]
    fn digest_listings_end_and_keep_keys_whose_time_does_not_read() {
        let mut bucket = MemoryBucket::default();
        for stamp in [
            "20261202T010000Z",
            "20261202T020000Z",
            "20261202T056000Z",
            "20261202T030000Z",
        ] {
            bucket.objects.insert(digest_key(stamp), b"x".to_vec());
        }
        let validator = Validator {
            reader: &bucket,
            keys: HashMap::new(),
            progress: &|| {},
        };
        let validation = validation_of("b");
        let listing = validator
            .digest_keys(&validation, "b", validation.end)
            .unwrap();
        assert_eq!(
            listing.keys,
            ["20261202T010000Z", "20261202T020000Z", "20261202T030000Z"].map(digest_key)
        );
        assert_eq!(listing.malformed, [digest_key("20261202T056000Z")]);
        // A listing that answers the same page for ever still ends.
        bucket.stuck = true;
        let validator = Validator {
            reader: &bucket,
            keys: HashMap::new(),
            progress: &|| {},
        };
        let listing = validator
            .digest_keys(&validation, "b", validation.end)
            .unwrap();
        assert_eq!(listing.keys.len(), 2);
    }

    #[test]
    fn only_this_trails_standard_digests_are_taken() {
        let validation = Validation {
            trail_arn: String::new(),
            trail_name: "main".into(),
            home_region: "us-east-1".into(),
            source_region: "us-east-1".into(),
            account_id: "123456789012".into(),
            bucket: "b".into(),
            prefix: Some("p".into()),
            organization_id: None,
            start: Utc::now(),
            end: Utc::now(),
            parallelism: 1,
        };
        let good = "p/AWSLogs/123456789012/CloudTrail-Digest/us-east-1/2026/12/02/123456789012_CloudTrail-Digest_us-east-1_main_us-east-1_20261202T041310Z.json.gz";
        assert!(validation.is_trail_digest(good));
        assert_eq!(key_stamp(good), Some("20261202T041310Z"));
        assert!(!validation.is_trail_digest(&good.replace("_main_", "_other_")));
        assert!(!validation.is_trail_digest(&good.replace("p/AWSLogs", "AWSLogs")));
        assert!(!validation.is_trail_digest(&good.replace(".json.gz", "_backfill.json.gz")));
        assert!(
            validation
                .digest_key_at(Utc.with_ymd_and_hms(2026, 12, 2, 4, 12, 0).unwrap())
                .as_str()
                < good
        );
    }

    #[test]
    fn pkcs1_public_keys_are_told_from_other_der() {
        let dir = tempfile::tempdir().unwrap();
        let keys = crate::DigestKeys::open(dir.path(), 60_000).unwrap();
        let key = keys.signing_key("us-east-1", 0).unwrap();
        assert!(looks_like_pkcs1(key.public_key_der()));
        assert!(!looks_like_pkcs1(b"not a key"));
        assert!(!looks_like_pkcs1(&key.public_key_der()[..40]));
    }

    #[test]
    fn oversized_or_broken_gzip_is_refused_without_reading_it_all() {
        let big = crate::digest_file::gzip(&vec![b'x'; 1 << 20]);
        assert!(gunzip(&big, 1 << 10).is_none());
        assert_eq!(gunzip(&big, 2 << 20).map(|out| out.len()), Some(1 << 20));
        assert!(gunzip(b"not gzip", 1 << 20).is_none());
        assert!(gunzip(&big[..big.len() / 2], 2 << 20).is_none());
        // As zlib.decompress: the first member, what follows it ignored.
        let followed = [big.clone(), b"junk".to_vec()].concat();
        assert_eq!(
            gunzip(&followed, 2 << 20).map(|out| out.len()),
            Some(1 << 20)
        );
    }
}
