//! `cairn validate-logs`: the aws CLI's `cloudtrail validate-logs`, with its arguments,
//! output lines and exit codes, run against the data directory of a Cairn (its trails, its
//! embedded S3 and its signing keys, read beside a running server) or, with
//! `--endpoint-url`, against any CloudTrail and S3 endpoint (`validate_remote`), or a synced
//! copy of the bucket (`validate_local`), many times faster. The checking itself is `cairn_integrity::validation`; this file finds the trail,
//! the bucket and the keys.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::Context;
use cairn_integrity::validation::{
    parse_time, parse_trail_arn, too_large, BucketReader, Fetched, ListedKey, PublicKey, ReadError,
    ReportWriter, Validation, Validator, MAX_FETCHED_BYTES,
};
use cairn_model::trail::Trail;
use cairn_s3::{BucketError, BucketStore, ListQuery};

use crate::validate_local::LocalCopy;
use crate::validate_remote::{Credentials, Remote};
use chrono::Utc;

#[derive(clap::Args, Debug)]
pub struct ValidateArgs {
    /// The trail whose files are validated
    #[arg(long)]
    pub trail_arn: String,
    /// Validate files delivered from this time on (RFC 3339, YYYY-MM-DDTHH:MM:SSZ, a date
    /// or epoch seconds)
    #[arg(long)]
    pub start_time: String,
    /// ... up to this time [default: now]
    #[arg(long)]
    pub end_time: Option<String>,
    /// The bucket the files are in, when it is not the trail's own
    #[arg(long)]
    pub s3_bucket: Option<String>,
    /// Their key prefix, when it is not the trail's own
    #[arg(long)]
    pub s3_prefix: Option<String>,
    /// The account whose files are validated [default: the trail's]
    #[arg(long)]
    pub account_id: Option<String>,
    /// The region whose files are validated [default: the trail's home region]
    #[arg(long)]
    pub region: Option<String>,
    /// Print every valid file too
    #[arg(long)]
    pub verbose: bool,
    /// The data directory of the Cairn that delivered them
    #[arg(long, env = "CAIRN_DATA_DIR", default_value = crate::config::DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// The event store holding the data directory's trails: sqlite, or the postgres:// URL
    /// its server was started with
    #[arg(
        long,
        env = "CAIRN_STORE",
        default_value = "sqlite",
        hide_env_values = true
    )]
    pub store: String,
    /// Read the trail, its public keys and its files from this endpoint instead (CloudTrail
    /// and S3, SigV4-signed with the credentials of the environment or the shared
    /// credentials file, as the aws CLI finds them)
    #[arg(long)]
    pub endpoint_url: Option<String>,
    /// The S3 endpoint, when it is not --endpoint-url
    #[arg(long, requires = "endpoint_url")]
    pub s3_endpoint_url: Option<String>,
    /// Read the files from this copy of the bucket (`aws s3 sync s3://BUCKET DIR`) instead;
    /// the trail and its public keys still come from the data directory or --endpoint-url
    #[arg(long)]
    pub local_copy: Option<PathBuf>,
    /// How many files are read at once [default: twice the cores]
    #[arg(long)]
    pub parallelism: Option<usize>,
}

/// The embedded S3 of a data directory: one connection per reading thread.
struct EmbeddedReader {
    data_dir: PathBuf,
    idle: Mutex<Vec<BucketStore>>,
}

impl EmbeddedReader {
    fn with_store<T>(
        &self,
        work: impl FnOnce(&BucketStore) -> Result<T, BucketError>,
    ) -> Result<T, ReadError> {
        let taken = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let store = match taken {
            Some(store) => store,
            None => BucketStore::open(&self.data_dir)
                .map_err(|error| ReadError::Other(error.to_string()))?,
        };
        let result = work(&store);
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(store);
        }
        result.map_err(|error| match error {
            BucketError::NoSuchKey | BucketError::NoSuchBucket => ReadError::NotFound,
            other => ReadError::Other(other.to_string()),
        })
    }
}

impl BucketReader for EmbeddedReader {
    fn list_page(
        &self,
        bucket: &str,
        prefix: &str,
        marker: &str,
    ) -> Result<(Vec<ListedKey>, bool), ReadError> {
        self.with_store(|store| {
            let listing = store.list_objects(
                bucket,
                &ListQuery {
                    prefix,
                    delimiter: None,
                    after: (!marker.is_empty()).then_some(marker),
                    max_keys: cairn_s3::MAX_LIST_KEYS,
                },
            )?;
            let more = listing.next_after.is_some();
            Ok((
                listing
                    .contents
                    .into_iter()
                    .map(|head| ListedKey {
                        key: head.key,
                        last_modified_millis: head.last_modified_millis,
                    })
                    .collect(),
                more,
            ))
        })
    }

    fn get(&self, bucket: &str, key: &str) -> Result<Fetched, ReadError> {
        let read = self.with_store(|store| {
            let head = store.head_object(bucket, key)?;
            if head.size > MAX_FETCHED_BYTES {
                return Ok(None);
            }
            store.get_object(bucket, key, None).map(Some)
        })?;
        let read = read.ok_or_else(too_large)?;
        Ok(Fetched {
            body: read.bytes,
            metadata: read.head.metadata.into_iter().collect(),
        })
    }

    fn get_range(
        &self,
        bucket: &str,
        key: &str,
        offset: u64,
        length: u64,
    ) -> Result<(Vec<u8>, u64), ReadError> {
        self.with_store(|store| store.read_range(bucket, key, offset, length))
    }
}

fn find_trail(args: &ValidateArgs) -> anyhow::Result<Option<Trail>> {
    let choice = crate::config::StoreChoice::parse(&args.store)?;
    let store = crate::event_store::open(
        &choice,
        &args.data_dir,
        crate::event_store::Purpose::Serving,
    )?;
    let arn = &args.trail_arn;
    let trails = store.state(cairn_delivery::TRAILS)?;
    Ok(trails
        .into_iter()
        .find(|(key, _)| key == arn)
        .and_then(|(_, text)| serde_json::from_str(&text).ok()))
}

/// An organization trail's files are per member account: the CLI asks which.
fn require_member_account(args: &ValidateArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.account_id.is_some(),
        "Missing required parameter for organization trail: '--account-id'"
    );
    Ok(())
}

/// Runs the validation; the exit code is the aws CLI's: 0 valid, 1 not, 255 when it could
/// not run (the reason on stderr).
pub fn run(args: &ValidateArgs) -> i32 {
    match validate(args) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("\n{error:#}\n");
            255
        }
    }
}

fn validate(args: &ValidateArgs) -> anyhow::Result<i32> {
    let Some((home_region, arn_account, trail_name)) = parse_trail_arn(&args.trail_arn) else {
        anyhow::bail!("Invalid trail ARN provided: {}", args.trail_arn);
    };
    let start = parse_time(&args.start_time)
        .with_context(|| format!("Unable to parse date value: {}", args.start_time))?;
    let end = match &args.end_time {
        Some(text) => {
            parse_time(text).with_context(|| format!("Unable to parse date value: {text}"))?
        }
        None => Utc::now(),
    };
    anyhow::ensure!(
        start <= end,
        "Invalid time range specified: start-time must occur before end-time"
    );
    let remote = match &args.endpoint_url {
        Some(endpoint) => Some(Remote::new(
            endpoint,
            args.s3_endpoint_url.as_deref().unwrap_or(endpoint),
            &home_region,
            Credentials::from_environment()?,
        )?),
        None => {
            anyhow::ensure!(
                args.data_dir.exists(),
                "no Cairn data directory at {}",
                args.data_dir.display()
            );
            None
        }
    };
    // As the CLI: --s3-prefix counts only beside --s3-bucket, and with --s3-bucket the
    // trail is not read, so its keys are read as a plain trail's.
    let (bucket, prefix, organization_id) = match (&args.s3_bucket, &remote) {
        (Some(bucket), _) => (bucket.clone(), args.s3_prefix.clone(), None),
        (None, Some(remote)) => {
            let (bucket, prefix, organization) = remote.trail(&args.trail_arn)?;
            let organization_id = match organization {
                true => {
                    require_member_account(args)?;
                    Some(remote.organization_id()?)
                }
                false => None,
            };
            (bucket, prefix, organization_id)
        }
        (None, None) => {
            let trail = find_trail(args)?
                .with_context(|| format!("A trail could not be found for {}", args.trail_arn))?;
            if trail.is_organization_trail {
                require_member_account(args)?;
            }
            let organization_id = trail
                .organization_id
                .filter(|_| trail.is_organization_trail);
            (trail.s3_bucket_name, trail.s3_key_prefix, organization_id)
        }
    };
    let source_region = args.region.clone().unwrap_or_else(|| home_region.clone());
    let window_end = end + chrono::Duration::hours(2);
    let public_keys: HashMap<String, PublicKey> = match &remote {
        Some(remote) => remote.public_keys(start, window_end)?,
        None => cairn_integrity::DigestKeys::read_only(&args.data_dir)
            .public_keys(
                &source_region,
                start.timestamp_millis(),
                window_end.timestamp_millis(),
            )
            .unwrap_or_default()
            .into_iter()
            .map(|key| {
                (
                    key.fingerprint.clone(),
                    PublicKey {
                        fingerprint: key.fingerprint.clone(),
                        der: Ok(key.public_key_der().to_vec()),
                    },
                )
            })
            .collect(),
    };
    let validation = Validation {
        trail_arn: args.trail_arn.clone(),
        trail_name,
        home_region,
        source_region,
        account_id: args.account_id.clone().unwrap_or(arn_account),
        bucket,
        prefix,
        organization_id,
        start,
        end,
        parallelism: args.parallelism.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(2, |cores| cores.get() * 2)
        }),
    };
    let embedded;
    let local = args
        .local_copy
        .as_deref()
        .map(|root| LocalCopy::new(root, validation.digest_stamps()))
        .transpose()?;
    let reader: &dyn BucketReader = match (&local, &remote) {
        (Some(local), _) => local,
        (None, Some(remote)) => remote,
        (None, None) => {
            embedded = EmbeddedReader {
                data_dir: args.data_dir.clone(),
                idle: Mutex::default(),
            };
            &embedded
        }
    };
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new_spinner()
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {pos} files checked ({per_sec})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    let tick = || bar.inc(1);
    let validator = Validator {
        reader,
        keys: public_keys,
        progress: &tick,
    };
    // Not locked for the run: the progress line is drawn to stderr from the threads that
    // fetch.
    let (mut stdout, mut stderr) = (std::io::stdout(), std::io::stderr());
    let mut writer = ReportWriter::new(args.verbose, &mut stdout, &mut stderr);
    // Lines go out as they are found, under the progress line, not through it.
    let report = validator.run(&validation, &mut |line| {
        if writer.writes(line) {
            bar.suspend(|| writer.line(&validation, line))
        } else {
            writer.line(&validation, line)
        }
    });
    bar.finish_and_clear();
    let report = report?;
    writer.finish(&validation, &report)?;
    Ok(if report.is_valid() { 0 } else { 1 })
}
