//! `cairn verify-event EVENT_ID`: proves one event is in the transparency log, and exactly
//! as recorded, without fetching an hour of log files: the event's record and audit path
//! from `/_cairn/transparency/proof`, checked against a checkpoint signed by the key given
//! (or, with `--trust-server-key`, the server's own, which proves less and is said so). With
//! `--since-checkpoint FILE`, also that the log only grew since a checkpoint kept earlier.
//! Its calls are signed with the credentials an SDK would find: the server gives an event's
//! record only to a key it knows.

use std::path::PathBuf;

use anyhow::{bail, Context};
use cairn_integrity::merkle::{self, Hash};
use cairn_integrity::note::{verify_checkpoint, Checkpoint};
use serde_json::Value;

use crate::validate_remote::{Credentials, Remote};

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// The eventID of the record to prove
    pub event_id: String,
    /// The Cairn that keeps the log
    #[arg(long, default_value = "http://127.0.0.1:4590")]
    pub endpoint_url: String,
    /// The checkpoints' verifier key (`name+id+key`, as /_cairn/transparency/key gives it),
    /// kept apart from the server
    #[arg(long, required_unless_present = "trust_server_key")]
    pub verifier_key: Option<String>,
    /// Take the verifier key from the server itself: proves only that the server agrees
    /// with itself, not that it kept the log honestly
    #[arg(long, conflicts_with = "verifier_key")]
    pub trust_server_key: bool,
    /// A checkpoint kept earlier: also prove the log only grew since
    #[arg(long)]
    pub since_checkpoint: Option<PathBuf>,
}

/// Cairn's transparency paths, fetched signed: the record comes only to a known key.
struct Client {
    remote: Remote,
}

impl Client {
    fn get(&self, path: &str, query: &str) -> anyhow::Result<(u16, String)> {
        self.remote.get(path, query)
    }

    fn get_ok(&self, path: &str, query: &str) -> anyhow::Result<String> {
        let (status, body) = self.get(path, query)?;
        if status != 200 {
            let message = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|value| value["message"].as_str().map(str::to_owned))
                .unwrap_or(body);
            bail!("{path}: {status} {message}");
        }
        Ok(body)
    }
}

fn hashes(value: &Value) -> Option<Vec<Hash>> {
    value
        .as_array()?
        .iter()
        .map(|hash| hex::decode(hash.as_str()?).ok()?.try_into().ok())
        .collect()
}

fn encoded(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// 0 when the event is proven, 1 when a proof fails, 255 when it could not be asked.
pub fn run(args: &VerifyArgs) -> i32 {
    match verify(args) {
        Ok(Ok(lines)) => {
            for line in lines {
                println!("{line}");
            }
            0
        }
        Ok(Err(why)) => {
            println!("Event {}\tINVALID: {why}", args.event_id);
            1
        }
        Err(error) => {
            eprintln!("\n{error:#}\n");
            255
        }
    }
}

fn verify(args: &VerifyArgs) -> anyhow::Result<Result<Vec<String>, String>> {
    let region = ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|value| !value.is_empty()))
        .unwrap_or_else(|| "us-east-1".to_owned());
    let client = Client {
        remote: Remote::new(
            &args.endpoint_url,
            &args.endpoint_url,
            &region,
            Credentials::from_environment()?,
        )?,
    };
    let mut lines = Vec::new();
    let key = match &args.verifier_key {
        Some(key) => key.clone(),
        None => {
            lines.push(
                "(verifier key taken from the server itself, as --trust-server-key asked: this proves only that the server agrees with itself)"
                    .to_owned(),
            );
            client
                .get_ok("/_cairn/transparency/key", "")?
                .trim()
                .to_owned()
        }
    };
    let (status, body) = client.get(
        "/_cairn/transparency/proof",
        &format!("event-id={}", encoded(&args.event_id)),
    )?;
    if status == 404 {
        return Ok(Err("not in the transparency log".into()));
    }
    anyhow::ensure!(status == 200, "the proof could not be had: {status} {body}");
    let proof: Value = serde_json::from_str(&body).context("the proof is not JSON")?;
    let Some(checkpoint) = proof["checkpoint"]
        .as_str()
        .and_then(|note| verify_checkpoint(note, &key))
    else {
        return Ok(Err(
            "the checkpoint is not signed by the verifier key".into()
        ));
    };
    let (Some(index), Some(size), Some(path)) = (
        proof["leafIndex"].as_u64(),
        proof["treeSize"].as_u64(),
        hashes(&proof["inclusionPath"]),
    ) else {
        return Ok(Err("the proof is malformed".into()));
    };
    let Some(record) = proof["record"].as_str() else {
        bail!("the server gave the proof without the record: its records are shown only to a key it knows (AWS_ACCESS_KEY_ID or AWS_SHARED_CREDENTIALS_FILE)");
    };
    let recorded_id = serde_json::from_str::<Value>(record)
        .ok()
        .and_then(|record| record["eventID"].as_str().map(str::to_owned));
    if recorded_id.as_deref() != Some(args.event_id.as_str()) {
        return Ok(Err("the record given is another event's".into()));
    }
    if size != checkpoint.size
        || !merkle::verify_inclusion(
            index,
            size,
            &merkle::leaf_hash(record.as_bytes()),
            &path,
            &checkpoint.root,
        )
    {
        return Ok(Err(format!(
            "its record is not leaf {index} of the signed tree of {}",
            checkpoint.size
        )));
    }
    if let Some(file) = &args.since_checkpoint {
        let kept = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let Some(old) = verify_checkpoint(&kept, &key) else {
            return Ok(Err(format!(
                "{} is not a checkpoint signed by the verifier key",
                file.display()
            )));
        };
        if let Err(why) = grew(&client, &old, &checkpoint)? {
            return Ok(Err(why));
        }
        lines.push(format!(
            "Log\tconsistent: the tree of {} is the start of the tree of {}",
            old.size, checkpoint.size
        ));
    }
    lines.push(format!(
        "Event {}\tvalid: leaf {index} of the tree of {size} signed by {}",
        args.event_id, checkpoint.origin
    ));
    Ok(Ok(lines))
}

/// Whether `new` extends `old`, by the log's consistency proof.
fn grew(client: &Client, old: &Checkpoint, new: &Checkpoint) -> anyhow::Result<Result<(), String>> {
    if old.size > new.size {
        return Ok(Err(format!(
            "the log shrank from {} to {} leaves",
            old.size, new.size
        )));
    }
    if old.size == new.size || old.size == 0 {
        return Ok(if old.size == 0 || old.root == new.root {
            Ok(())
        } else {
            Err("two different trees of the same size".into())
        });
    }
    let body = client.get_ok(
        "/_cairn/transparency/consistency",
        &format!("from={}&to={}", old.size, new.size),
    )?;
    let answer: Value = serde_json::from_str(&body).context("the proof is not JSON")?;
    let Some(path) = hashes(&answer["consistencyPath"]) else {
        return Ok(Err("the consistency proof is malformed".into()));
    };
    Ok(
        if merkle::verify_consistency(old.size, new.size, &old.root, &new.root, &path) {
            Ok(())
        } else {
            Err(format!(
                "the tree of {} is not the start of the tree of {}",
                old.size, new.size
            ))
        },
    )
}
