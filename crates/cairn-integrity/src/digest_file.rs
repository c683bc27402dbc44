//! A digest file as CloudTrail writes it (spec §5): its JSON fields in AWS's order, its key,
//! the string it signs, and the gzip that is stored. The signature goes beside the object,
//! in its user metadata (`x-amz-meta-signature`, `x-amz-meta-signature-algorithm`).

use std::io::Write;

use chrono::{TimeZone, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::keys::SigningKey;
use crate::IntegrityError;

pub const SIGNATURE_ALGORITHM: &str = "SHA256withRSA";
pub const HASH_ALGORITHM: &str = "SHA-256";

/// One log file a digest lists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogFileEntry {
    pub s3_bucket: String,
    pub s3_object: String,
    /// Hex SHA-256 of the decompressed file.
    pub hash_value: String,
    pub hash_algorithm: String,
    pub newest_event_time: String,
    pub oldest_event_time: String,
}

/// Where the previous digest of a chain is, and what it was.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainLink {
    pub bucket: String,
    pub key: String,
    /// Hex SHA-256 of the decompressed digest.
    pub hash: String,
    /// Hex signature.
    pub signature: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DigestFile {
    pub aws_account_id: String,
    pub digest_start_time: String,
    pub digest_end_time: String,
    pub digest_s3_bucket: String,
    pub digest_s3_object: String,
    pub digest_public_key_fingerprint: String,
    pub digest_signature_algorithm: String,
    pub newest_event_time: Option<String>,
    pub oldest_event_time: Option<String>,
    pub previous_digest_s3_bucket: Option<String>,
    pub previous_digest_s3_object: Option<String>,
    pub previous_digest_hash_value: Option<String>,
    pub previous_digest_hash_algorithm: Option<String>,
    pub previous_digest_signature: Option<String>,
    pub log_files: Vec<LogFileEntry>,
}

/// `YYYY-MM-DDTHH:MM:SSZ`, the digest's time format.
pub fn digest_time(millis: i64) -> String {
    at(millis).format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn at(millis: i64) -> chrono::DateTime<Utc> {
    Utc.timestamp_millis_opt(millis)
        .single()
        .unwrap_or_default()
}

/// What names a digest file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigestFileName<'a> {
    pub prefix: Option<&'a str>,
    /// An organization trail's organization: its digests go under `AWSLogs/<o-id>/`.
    pub organization_id: Option<&'a str>,
    pub account_id: &'a str,
    /// The region whose log files it lists (and whose key signs it).
    pub region: &'a str,
    pub trail_name: &'a str,
    pub home_region: &'a str,
    pub end_millis: i64,
}

impl DigestFileName<'_> {
    /// `[P/]AWSLogs/[<o-id>/]<acct>/CloudTrail-Digest/<region>/YYYY/MM/DD/<acct>_CloudTrail-Digest_<region>_<name>_<home>_<YYYYMMDDTHHMMSSZ>.json.gz`
    pub fn key(&self) -> String {
        let end = at(self.end_millis);
        let prefix = match self.prefix {
            Some(prefix) if !prefix.is_empty() => format!("{}/", prefix.trim_end_matches('/')),
            _ => String::new(),
        };
        let (account, region) = (self.account_id, self.region);
        let organization = self
            .organization_id
            .filter(|id| !id.is_empty())
            .map(|id| format!("{id}/"))
            .unwrap_or_default();
        format!(
            "{prefix}AWSLogs/{organization}{account}/CloudTrail-Digest/{region}/{}/{account}_CloudTrail-Digest_{region}_{}_{}_{}.json.gz",
            end.format("%Y/%m/%d"),
            self.trail_name,
            self.home_region,
            end.format("%Y%m%dT%H%M%SZ"),
        )
    }
}

/// `digestEndTime \n bucket/key \n hex(sha256(digest)) \n previousDigestSignature|null`.
pub fn string_to_sign(
    end_time: &str,
    bucket: &str,
    key: &str,
    digest_hash: &str,
    previous_signature: Option<&str>,
) -> String {
    format!(
        "{end_time}\n{bucket}/{key}\n{digest_hash}\n{}",
        previous_signature.unwrap_or("null")
    )
}

/// A digest ready to store: the gzip body, and what goes into its metadata and the next
/// digest's `previous*` fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedDigest {
    pub bucket: String,
    pub key: String,
    /// The gzip of the JSON.
    #[serde(with = "base64_bytes")]
    pub body: Vec<u8>,
    pub link: ChainLink,
}

impl SealedDigest {
    /// The user metadata the digest object carries (names without `x-amz-meta-`).
    pub fn metadata(&self) -> Vec<(String, String)> {
        vec![
            ("signature".to_owned(), self.link.signature.clone()),
            (
                "signature-algorithm".to_owned(),
                SIGNATURE_ALGORITHM.to_owned(),
            ),
        ]
    }
}

/// Serializes, hashes, signs and compresses `digest` with `key`.
pub fn seal(digest: &DigestFile, key: &SigningKey) -> Result<SealedDigest, IntegrityError> {
    let json =
        serde_json::to_vec(digest).map_err(|error| IntegrityError::Key(error.to_string()))?;
    let hash = hex::encode(Sha256::digest(&json));
    let to_sign = string_to_sign(
        &digest.digest_end_time,
        &digest.digest_s3_bucket,
        &digest.digest_s3_object,
        &hash,
        digest.previous_digest_signature.as_deref(),
    );
    let signature = hex::encode(key.sign(to_sign.as_bytes())?);
    Ok(SealedDigest {
        bucket: digest.digest_s3_bucket.clone(),
        key: digest.digest_s3_object.clone(),
        body: gzip(&json),
        link: ChainLink {
            bucket: digest.digest_s3_bucket.clone(),
            key: digest.digest_s3_object.clone(),
            hash,
            signature,
        },
    })
}

/// One gzip member without a time or name in its header: the same bytes every time.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::new(6));
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(data);
    encoder.finish().unwrap_or_default()
}

mod base64_bytes {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_aws_layout() {
        let name = DigestFileName {
            prefix: Some("audit/"),
            organization_id: None,
            account_id: "123456789012",
            region: "eu-west-1",
            trail_name: "main",
            home_region: "us-east-1",
            end_millis: 1_764_633_905_000,
        };
        assert_eq!(
            name.key(),
            "audit/AWSLogs/123456789012/CloudTrail-Digest/eu-west-1/2025/12/02/\
             123456789012_CloudTrail-Digest_eu-west-1_main_us-east-1_20251202T000505Z.json.gz"
        );
        // The aws CLI reads the key's time at [-24:-8].
        let key = name.key();
        assert_eq!(&key[key.len() - 24..key.len() - 8], "20251202T000505Z");
        let organization = DigestFileName {
            organization_id: Some("o-aa111bb222"),
            ..name
        };
        assert_eq!(
            organization.key(),
            "audit/AWSLogs/o-aa111bb222/123456789012/CloudTrail-Digest/eu-west-1/2025/12/02/\
             123456789012_CloudTrail-Digest_eu-west-1_main_us-east-1_20251202T000505Z.json.gz",
            "an organization trail's digests sit in its organization's folder"
        );
    }

    #[test]
    fn fields_are_in_aws_order_and_nulls_are_kept() {
        let digest = DigestFile {
            aws_account_id: "123456789012".into(),
            digest_start_time: digest_time(0),
            digest_end_time: digest_time(3_600_000),
            digest_s3_bucket: "b".into(),
            digest_s3_object: "k".into(),
            digest_public_key_fingerprint: "f".into(),
            digest_signature_algorithm: SIGNATURE_ALGORITHM.into(),
            newest_event_time: None,
            oldest_event_time: None,
            previous_digest_s3_bucket: None,
            previous_digest_s3_object: None,
            previous_digest_hash_value: None,
            previous_digest_hash_algorithm: None,
            previous_digest_signature: None,
            log_files: Vec::new(),
        };
        let text = serde_json::to_string(&digest).unwrap();
        assert!(text.starts_with(
            "{\"awsAccountId\":\"123456789012\",\"digestStartTime\":\"1970-01-01T00:00:00Z\",\
             \"digestEndTime\":\"1970-01-01T01:00:00Z\",\"digestS3Bucket\":\"b\",\"digestS3Object\":\"k\",\
             \"digestPublicKeyFingerprint\":\"f\",\"digestSignatureAlgorithm\":\"SHA256withRSA\",\
             \"newestEventTime\":null"
        ));
        assert!(text.ends_with("\"previousDigestSignature\":null,\"logFiles\":[]}"));
    }
}
