//! Digest files, written by the delivery loop for trails with log file validation. Each
//! place a trail delivers to (account and region) has a chain: every digest interval, one
//! digest per place lists the log files delivered there since the last, and points to the
//! previous digest of its chain. Exactly once, as log files are:
//!
//! 1. each delivered file's entry (key, SHA-256, event times) is committed with the
//!    delivery position that passes it, so an entry exists if and only if its file does;
//! 2. when a digest is due, the sealed digests (signed, compressed) and the entries they
//!    consume are committed as the chain's *pending* digests;
//! 3. they are written, after every file they list; then, in one commit, the chain moves to
//!    them and the consumed entries go.
//!
//! A crash between 2 and 3 writes the same sealed bytes again. A chain opens (a *starting*
//! digest, with null `previous*` fields) when logging with validation starts, and closes
//! with a final digest when logging stops, validation is turned off or the trail is deleted.

use std::collections::BTreeMap;

use bytes::Bytes;
use cairn_integrity::{
    digest_time, ChainLink, DigestFile, DigestFileName, LogFileEntry, SealedDigest,
};
use cairn_model::trail::Trail;
use cairn_model::StateChange;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::deliverer::{Deliverer, PendingDelivery, PlannedFile};
use crate::objects::ObjectPut;
use crate::{DeliveryError, DIGEST_FILES, TRAIL_DIGESTS};

/// The organization folder of an organization trail's files.
fn organizing(trail: &Trail) -> Option<String> {
    trail
        .organization_id
        .clone()
        .filter(|_| trail.is_organization_trail)
}

/// A trail's digest chains, kept in `trail-digest` under its ARN.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DigestChain {
    pub trail_name: String,
    pub account_id: String,
    pub home_region: String,
    /// Where the next digests go: the trail's bucket and prefix as last seen.
    pub bucket: String,
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_id: Option<String>,
    /// When logging started for this chain: a restart begins a new chain.
    #[serde(default)]
    pub logging_started_millis: Option<i64>,
    /// The start of the period the next digests cover.
    pub period_start_millis: i64,
    /// Each place (`account/region`), with its chain's newest digest (none before the
    /// starting digest).
    pub places: BTreeMap<String, Option<ChainLink>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingDigests>,
}

/// Digests sealed and about to be written, with what they consume.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PendingDigests {
    pub end_millis: i64,
    /// (place, digest)
    pub digests: Vec<(String, SealedDigest)>,
    /// The `trail-digest-files` entries these digests list.
    pub consumed: Vec<String>,
    /// The chain ends with these digests.
    pub closing: bool,
}

/// One delivered file waiting for its digest, kept in `trail-digest-files`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct ListedFile {
    place: String,
    entry: LogFileEntry,
}

fn place(account_id: &str, region: &str) -> String {
    format!("{account_id}/{region}")
}

/// The `trail-digest-files` entries for files a delivery wrote, ordered as delivered.
pub(crate) fn listed_files(
    arn: &str,
    pending: &PendingDelivery,
    written: &[PlannedFile],
) -> Vec<StateChange> {
    written
        .iter()
        .enumerate()
        .map(|(index, file)| {
            let oldest = file.event_times.iter().min().copied().unwrap_or_default();
            let newest = file.event_times.iter().max().copied().unwrap_or_default();
            let listed = ListedFile {
                place: place(&file.account_id, &file.region),
                entry: LogFileEntry {
                    s3_bucket: pending.trail.s3_bucket_name.clone(),
                    s3_object: file.key.clone(),
                    hash_value: file.hash.clone(),
                    hash_algorithm: cairn_integrity::digest_file::HASH_ALGORITHM.to_owned(),
                    newest_event_time: digest_time(newest),
                    oldest_event_time: digest_time(oldest),
                },
            };
            StateChange::put(
                DIGEST_FILES,
                format!("{arn}\n{:020}\n{index:06}", pending.through_seq),
                serde_json::to_string(&listed).unwrap_or_default(),
            )
        })
        .collect()
}

fn wants_digests(trail: Option<&Trail>) -> bool {
    trail.is_some_and(|trail| trail.log_file_validation_enabled && trail.logging.is_logging)
}

impl Deliverer {
    pub(crate) async fn digest_chains(
        &self,
    ) -> Result<BTreeMap<String, DigestChain>, DeliveryError> {
        if self.digest_keys.is_none() {
            return Ok(BTreeMap::new());
        }
        let entries = self.blocking(|store| store.state(TRAIL_DIGESTS)).await?;
        Ok(entries
            .into_iter()
            .filter_map(|(arn, text)| Some((arn, serde_json::from_str(&text).ok()?)))
            .collect())
    }

    /// Opens a chain for a trail that now wants digests; a chain whose logging restarted
    /// is closed first (its final digest), so the next one starts fresh.
    pub(crate) async fn open_or_close_chain(
        &self,
        arn: &str,
        trail: Option<&Trail>,
        chain: Option<DigestChain>,
    ) -> Result<Option<DigestChain>, DeliveryError> {
        if self.digest_keys.is_none() {
            return Ok(None);
        }
        match (chain, trail) {
            // A restart of logging, or a new organization folder (where the validators look
            // for the chain), closes the chain; the next opens with null `previous*`.
            (Some(chain), Some(trail))
                if chain.pending.is_none()
                    && wants_digests(Some(trail))
                    && (chain.logging_started_millis != trail.logging.started_millis
                        || chain.organization_id != organizing(trail)) =>
            {
                self.seal_and_write(arn, chain, true, true).await?;
                Ok(None)
            }
            (Some(chain), _) => Ok(Some(chain)),
            (None, Some(trail)) if wants_digests(Some(trail)) => {
                let now = self.clock().now_millis();
                let chain = DigestChain {
                    trail_name: trail.name.clone(),
                    account_id: trail.account_id.clone(),
                    home_region: trail.home_region.clone(),
                    bucket: trail.s3_bucket_name.clone(),
                    prefix: trail.s3_key_prefix.clone(),
                    organization_id: organizing(trail),
                    logging_started_millis: trail.logging.started_millis,
                    period_start_millis: now - now % 1000,
                    places: BTreeMap::from([(place(&trail.account_id, &trail.home_region), None)]),
                    pending: None,
                };
                self.commit(vec![chain_change(arn, Some(&chain))]).await?;
                Ok(Some(chain))
            }
            (None, _) => Ok(None),
        }
    }

    /// Writes the chain's digests if its period is over, or it is ending.
    pub(crate) async fn digest_if_due(
        &self,
        arn: &str,
        trail: Option<&Trail>,
        mut chain: DigestChain,
    ) -> Result<(), DeliveryError> {
        if self.digest_keys.is_none() {
            return Ok(());
        }
        if chain.pending.is_some() {
            return self.write_pending(arn, chain, trail.is_some()).await;
        }
        if let Some(trail) = trail {
            chain.bucket = trail.s3_bucket_name.clone();
            chain.prefix = trail.s3_key_prefix.clone();
        }
        let closing = !wants_digests(trail);
        let interval =
            i64::try_from(self.settings().digest_interval.as_millis()).unwrap_or(i64::MAX);
        let now = self.clock().now_millis();
        if !closing && now < chain.period_start_millis.saturating_add(interval) {
            return Ok(());
        }
        self.seal_and_write(arn, chain, closing, trail.is_some())
            .await
    }

    async fn seal_and_write(
        &self,
        arn: &str,
        mut chain: DigestChain,
        closing: bool,
        trail_exists: bool,
    ) -> Result<(), DeliveryError> {
        let Some(keys) = self.digest_keys.clone() else {
            return Ok(());
        };
        let now = self.clock().now_millis();
        let end = now - now % 1000;
        if end <= chain.period_start_millis {
            // Two digests of one chain never share a second (their keys would).
            return Ok(());
        }
        let prefix = format!("{arn}\n");
        let mut listed: Vec<(String, ListedFile)> = self
            .blocking(|store| store.state(DIGEST_FILES))
            .await?
            .into_iter()
            .filter(|(key, _)| key.starts_with(&prefix))
            .filter_map(|(key, text)| Some((key, serde_json::from_str(&text).ok()?)))
            .collect();
        listed.sort_by(|left, right| left.0.cmp(&right.0));
        for (_, file) in &listed {
            chain.places.entry(file.place.clone()).or_insert(None);
        }
        let chain_for_seal = chain.clone();
        let listed_for_seal = listed.clone();
        let digests = tokio::task::spawn_blocking(move || {
            seal_all(&chain_for_seal, &listed_for_seal, end, &keys)
        })
        .await
        .map_err(|error| DeliveryError::Objects(error.to_string()))??;
        chain.pending = Some(PendingDigests {
            end_millis: end,
            digests,
            consumed: listed.into_iter().map(|(key, _)| key).collect(),
            closing,
        });
        self.commit(vec![chain_change(arn, Some(&chain))]).await?;
        self.write_pending(arn, chain, trail_exists).await
    }

    /// `report_status` is false for a deleted trail, which has no status to report in.
    async fn write_pending(
        &self,
        arn: &str,
        mut chain: DigestChain,
        report_status: bool,
    ) -> Result<(), DeliveryError> {
        let Some(pending) = chain.pending.take() else {
            return Ok(());
        };
        for (_, digest) in &pending.digests {
            self.objects()
                .put_object(ObjectPut {
                    bucket: digest.bucket.clone(),
                    key: digest.key.clone(),
                    body: Bytes::from(digest.body.clone()),
                    content_type: "application/json",
                    content_encoding: Some("gzip"),
                    metadata: digest.metadata(),
                })
                .await?;
        }
        for (place, digest) in &pending.digests {
            chain
                .places
                .insert(place.clone(), Some(digest.link.clone()));
        }
        chain.period_start_millis = pending.end_millis;
        let mut changes: Vec<StateChange> = pending
            .consumed
            .iter()
            .map(|key| StateChange::remove(DIGEST_FILES, key.clone()))
            .collect();
        changes.push(chain_change(arn, (!pending.closing).then_some(&chain)));
        self.commit(changes).await?;
        tracing::info!(trail = %arn, digests = pending.digests.len(), closing = pending.closing, "delivered digest files");
        if !report_status {
            return Ok(());
        }
        self.update_status(arn, |status, now| {
            status.insert("LatestDigestDeliveryTime".into(), json!(now));
            status.remove("LatestDigestDeliveryError");
        })
        .await
    }

    pub(crate) async fn digest_failed(&self, arn: &str, error: &DeliveryError) {
        tracing::warn!(%error, trail = %arn, "digest delivery failed; retried next round");
        let message = error.to_string();
        let _ = self
            .update_status(arn, |status, _| {
                status.insert("LatestDigestDeliveryError".into(), json!(message));
            })
            .await;
    }
}

fn chain_change(arn: &str, chain: Option<&DigestChain>) -> StateChange {
    match chain {
        Some(chain) => StateChange::put(
            TRAIL_DIGESTS,
            arn,
            serde_json::to_string(chain).unwrap_or_default(),
        ),
        None => StateChange::remove(TRAIL_DIGESTS, arn),
    }
}

/// One sealed digest per place of the chain, each listing the place's files.
fn seal_all(
    chain: &DigestChain,
    listed: &[(String, ListedFile)],
    end_millis: i64,
    keys: &cairn_integrity::DigestKeys,
) -> Result<Vec<(String, SealedDigest)>, DeliveryError> {
    let mut sealed = Vec::new();
    for (place, previous) in &chain.places {
        let Some((account_id, region)) = place.split_once('/') else {
            continue;
        };
        let files: Vec<LogFileEntry> = listed
            .iter()
            .filter(|(_, file)| file.place == *place)
            .map(|(_, file)| file.entry.clone())
            .collect();
        let key = keys
            .signing_key(region, end_millis)
            .map_err(|error| DeliveryError::Objects(error.to_string()))?;
        let object = DigestFileName {
            prefix: chain.prefix.as_deref(),
            organization_id: chain.organization_id.as_deref(),
            account_id,
            region,
            trail_name: &chain.trail_name,
            home_region: &chain.home_region,
            end_millis,
        }
        .key();
        let digest = DigestFile {
            aws_account_id: account_id.to_owned(),
            digest_start_time: digest_time(chain.period_start_millis),
            digest_end_time: digest_time(end_millis),
            digest_s3_bucket: chain.bucket.clone(),
            digest_s3_object: object,
            digest_public_key_fingerprint: key.fingerprint.clone(),
            digest_signature_algorithm: cairn_integrity::digest_file::SIGNATURE_ALGORITHM
                .to_owned(),
            // The event times are the same format, so text order is time order.
            newest_event_time: files
                .iter()
                .map(|file| file.newest_event_time.clone())
                .max(),
            oldest_event_time: files
                .iter()
                .map(|file| file.oldest_event_time.clone())
                .min(),
            previous_digest_s3_bucket: previous.as_ref().map(|link| link.bucket.clone()),
            previous_digest_s3_object: previous.as_ref().map(|link| link.key.clone()),
            previous_digest_hash_value: previous.as_ref().map(|link| link.hash.clone()),
            previous_digest_hash_algorithm: previous
                .as_ref()
                .map(|_| cairn_integrity::digest_file::HASH_ALGORITHM.to_owned()),
            previous_digest_signature: previous.as_ref().map(|link| link.signature.clone()),
            log_files: files,
        };
        let digest = cairn_integrity::seal(&digest, &key)
            .map_err(|error| DeliveryError::Objects(error.to_string()))?;
        sealed.push((place.clone(), digest));
    }
    Ok(sealed)
}
