//! A trail's log file as AWS writes it: the gzip of `{"Records":[...]}` (one gzip member,
//! the records' own JSON text unchanged), and its key (spec §4):
//! `[P/]AWSLogs/[<o-id>/]<acct>/CloudTrail/<region>/YYYY/MM/DD/<acct>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<suffix>.json.gz`
//! (the organization's ID for an organization trail).
//! The suffix is 16 letters and digits derived from what the file stands for (trail, feed
//! stretch, account, region, part), not random: a delivery redone after a crash writes the
//! same keys again, so a file is never there twice.

use std::io::Write;

use chrono::{TimeZone, Utc};
use sha2::{Digest, Sha256};

const SUFFIX_ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const SUFFIX_CHARS: usize = 16;

/// The gzipped file holding `records` (each one record's JSON text), in order. The gzip
/// header carries no time or name, so the same records always give the same bytes.
pub fn assemble<'r>(records: impl IntoIterator<Item = &'r str>) -> Vec<u8> {
    assemble_hashed(records).0
}

/// The gzipped file, and the hex SHA-256 of what it decompresses to (what a digest lists).
pub fn assemble_hashed<'r>(records: impl IntoIterator<Item = &'r str>) -> (Vec<u8>, String) {
    let json = records_json(records);
    let hash = hex::encode(Sha256::digest(json.as_bytes()));
    let mut encoder = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::new(3));
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(json.as_bytes());
    (encoder.finish().unwrap_or_default(), hash)
}

/// `{"Records":[r1,r2,...]}` with each record's text as stored.
pub fn records_json<'r>(records: impl IntoIterator<Item = &'r str>) -> String {
    let mut json = String::from("{\"Records\":[");
    for (index, record) in records.into_iter().enumerate() {
        if index > 0 {
            json.push(',');
        }
        json.push_str(record);
    }
    json.push_str("]}");
    json
}

/// What one log file stands for; its key follows from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogFileName<'a> {
    pub prefix: Option<&'a str>,
    pub organization_id: Option<&'a str>,
    pub account_id: &'a str,
    pub region: &'a str,
    /// When the delivery was made (epoch ms): the folders and the name's minute.
    pub delivered_millis: i64,
    /// Makes the suffix: the trail, the feed stretch, and the part within it.
    pub identity: &'a str,
}

impl LogFileName<'_> {
    pub fn key(&self) -> String {
        let at = Utc
            .timestamp_millis_opt(self.delivered_millis)
            .single()
            .unwrap_or_default();
        let folders = at.format("%Y/%m/%d");
        let stamp = at.format("%Y%m%dT%H%MZ");
        let prefix = match self.prefix {
            Some(prefix) if !prefix.is_empty() => format!("{}/", prefix.trim_end_matches('/')),
            _ => String::new(),
        };
        let (account, region) = (self.account_id, self.region);
        let organization = organization_folder(self.organization_id);
        format!(
            "{prefix}AWSLogs/{organization}{account}/CloudTrail/{region}/{folders}/{account}_CloudTrail_{region}_{stamp}_{}.json.gz",
            suffix(self.identity)
        )
    }
}

/// `<o-id>/` for an organization trail's keys, else nothing.
pub fn organization_folder(organization_id: Option<&str>) -> String {
    organization_id
        .filter(|id| !id.is_empty())
        .map(|id| format!("{id}/"))
        .unwrap_or_default()
}

/// 16 characters from [0-9A-Za-z], derived from `identity`.
pub fn suffix(identity: &str) -> String {
    let hash = Sha256::digest(identity.as_bytes());
    hash.iter()
        .take(SUFFIX_CHARS)
        .map(|byte| SUFFIX_ALPHABET[usize::from(*byte) % SUFFIX_ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn keys_follow_aws_layout() {
        let name = LogFileName {
            prefix: Some("team/"),
            organization_id: None,
            account_id: "123456789012",
            region: "eu-west-1",
            delivered_millis: 1_764_633_900_123, // 2025-12-02T00:05:00.123Z
            identity: "trail|0|10|part0",
        };
        let key = name.key();
        let expected_start = "team/AWSLogs/123456789012/CloudTrail/eu-west-1/2025/12/02/123456789012_CloudTrail_eu-west-1_20251202T0005Z_";
        assert!(key.starts_with(expected_start), "{key}");
        let suffix = key
            .strip_prefix(expected_start)
            .and_then(|rest| rest.strip_suffix(".json.gz"))
            .unwrap();
        assert_eq!(suffix.len(), 16);
        assert!(suffix.bytes().all(|byte| byte.is_ascii_alphanumeric()));
        let unprefixed = LogFileName {
            prefix: None,
            ..name.clone()
        }
        .key();
        assert!(unprefixed.starts_with("AWSLogs/123456789012/"));
        let organization = LogFileName {
            organization_id: Some("o-aa111bb222"),
            ..name.clone()
        }
        .key();
        assert!(
            organization
                .starts_with("team/AWSLogs/o-aa111bb222/123456789012/CloudTrail/eu-west-1/"),
            "{organization}"
        );
        let other = LogFileName {
            identity: "trail|0|10|part1",
            ..name
        }
        .key();
        assert_ne!(other, key, "each part has its own name");
    }

    #[test]
    fn a_file_is_one_gzip_member_of_the_records_as_stored() {
        let records = [
            r#"{"eventVersion":"1.11","eventName":"A"}"#,
            r#"{"eventName":"B"}"#,
        ];
        let file = assemble(records);
        assert_eq!(
            file,
            assemble(records),
            "the same records give the same bytes"
        );
        let mut text = String::new();
        flate2::read::GzDecoder::new(file.as_slice())
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(
            text,
            r#"{"Records":[{"eventVersion":"1.11","eventName":"A"},{"eventName":"B"}]}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["Records"].as_array().unwrap().len(), 2);
        assert_eq!(records_json([]), r#"{"Records":[]}"#);
    }
}
