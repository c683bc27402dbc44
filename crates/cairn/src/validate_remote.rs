//! `cairn validate-logs --endpoint-url`: the trail, its public keys and its bucket read over
//! the network from any AWS-compatible endpoint (another Cairn, or CloudTrail and S3
//! elsewhere), with SigV4-signed calls under the credentials an SDK would find, as the aws
//! CLI reads them; path-style S3 addressing.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use bytes::Bytes;
use cairn_delivery::signed::{json_headers, SignedCall, SignedReply};
use cairn_delivery::{S3Credentials, SignedClient};
use cairn_integrity::validation::{
    python_b64decode, BucketReader, Fetched, ListedKey, PublicKey, ReadError, MAX_FETCHED_BYTES,
};
use cairn_model::SystemClock;
use cairn_upstream::{UpstreamRoutes, UpstreamTrust, Upstreams};
use cairn_wire::sigv4::{URI_ENCODE as UNRESERVED, URI_ENCODE_PATH as KEY};
use cairn_wire::xml::Element;
use chrono::{DateTime, Utc};
use http::{HeaderMap, HeaderValue, Method, Uri};
use percent_encoding::utf8_percent_encode;
use serde_json::{json, Value};

/// ListPublicKeys pages followed at most: a server that never stops paging is not believed.
const MAX_KEY_PAGES: usize = 1000;

/// An access key as an SDK finds it: the environment, else the shared credentials file.
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl Credentials {
    pub fn from_environment() -> anyhow::Result<Self> {
        let variable = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        if let (Some(access_key_id), Some(secret_access_key)) = (
            variable("AWS_ACCESS_KEY_ID"),
            variable("AWS_SECRET_ACCESS_KEY"),
        ) {
            return Ok(Self {
                access_key_id,
                secret_access_key,
                session_token: variable("AWS_SESSION_TOKEN"),
            });
        }
        let path = variable("AWS_SHARED_CREDENTIALS_FILE")
            .map(PathBuf::from)
            .or_else(|| variable("HOME").map(|home| PathBuf::from(home).join(".aws/credentials")))
            .context("no credentials: set AWS_ACCESS_KEY_ID or AWS_SHARED_CREDENTIALS_FILE")?;
        let profile = variable("AWS_PROFILE").unwrap_or_else(|| "default".to_owned());
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read the credentials file {}", path.display()))?;
        let values = profile_values(&text, &profile);
        let value = |name: &str| values.get(name).cloned();
        match (value("aws_access_key_id"), value("aws_secret_access_key")) {
            (Some(access_key_id), Some(secret_access_key)) => Ok(Self {
                access_key_id,
                secret_access_key,
                session_token: value("aws_session_token"),
            }),
            _ => bail!(
                "profile {profile} in {} holds no access key",
                path.display()
            ),
        }
    }
}

/// The `key = value` lines of section `[profile]` of an INI credentials file.
fn profile_values(text: &str, profile: &str) -> HashMap<String, String> {
    let mut values = HashMap::new();
    let mut inside = false;
    for line in text.lines().map(str::trim) {
        if let Some(section) = line
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
        {
            inside = section.trim() == profile;
        } else if inside {
            if let Some((name, value)) = line.split_once('=') {
                values.insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
    }
    values
}

/// CloudTrail and S3 at their endpoints, called as the holder of `credentials`.
pub struct Remote {
    runtime: tokio::runtime::Runtime,
    client: SignedClient,
    cloudtrail: Uri,
    s3: Uri,
    /// Organizations, for an organization trail's ID: `AWS_ENDPOINT_URL_ORGANIZATIONS` as
    /// the aws CLI reads it, else the CloudTrail endpoint (a Cairn forwards it upstream).
    organizations: Uri,
    region: String,
    session_token: Option<String>,
}

impl Remote {
    pub fn new(
        cloudtrail: &str,
        s3: &str,
        region: &str,
        credentials: Credentials,
    ) -> anyhow::Result<Self> {
        let parse = |url: &str| -> anyhow::Result<Uri> {
            let uri: Uri = url
                .parse()
                .with_context(|| format!("invalid endpoint URL {url}"))?;
            anyhow::ensure!(
                matches!(uri.scheme_str(), Some("http" | "https")) && uri.authority().is_some(),
                "invalid endpoint URL {url}: http:// or https:// and a host"
            );
            Ok(uri)
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let upstreams = {
            let _entered = runtime.enter();
            Upstreams::trusting(
                UpstreamRoutes::default(),
                std::time::Duration::from_secs(60),
                &UpstreamTrust::default(),
            )?
        };
        let organizations = std::env::var("AWS_ENDPOINT_URL_ORGANIZATIONS")
            .ok()
            .filter(|url| !url.is_empty());
        Ok(Self {
            cloudtrail: parse(cloudtrail)?,
            s3: parse(s3)?,
            organizations: parse(organizations.as_deref().unwrap_or(cloudtrail))?,
            client: SignedClient {
                upstreams: Arc::new(upstreams),
                credentials: S3Credentials {
                    access_key_id: credentials.access_key_id,
                    secret_access_key: credentials.secret_access_key,
                    region: region.to_owned(),
                },
                clock: Arc::new(SystemClock),
            },
            runtime,
            region: region.to_owned(),
            session_token: credentials.session_token,
        })
    }

    fn send(
        &self,
        call: SignedCall<'_>,
        whole: bool,
    ) -> Result<SignedReply, cairn_delivery::DeliveryError> {
        let mut call = call;
        if let Some(token) = self
            .session_token
            .as_deref()
            .and_then(|token| HeaderValue::from_str(token).ok())
        {
            call.headers.insert("x-amz-security-token", token);
        }
        self.runtime.block_on(async {
            if whole {
                self.client
                    .send_reading_all(call, MAX_FETCHED_BYTES as usize)
                    .await
            } else {
                self.client.send(call).await
            }
        })
    }

    /// One CloudTrail operation (AWS JSON 1.1); an error answer becomes its code and message.
    fn cloudtrail(&self, operation: &str, input: &Value) -> anyhow::Result<Value> {
        let target = format!("com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.{operation}");
        self.json_call(&self.cloudtrail, "cloudtrail", &target, operation, input)
    }

    /// One AWS JSON 1.1 call; an error answer reads as the aws CLI prints it.
    fn json_call(
        &self,
        endpoint: &Uri,
        service: &str,
        target: &str,
        operation: &str,
        input: &Value,
    ) -> anyhow::Result<Value> {
        let headers = json_headers(target)?;
        let reply = self
            .send(
                SignedCall {
                    endpoint,
                    method: Method::POST,
                    path: "/",
                    query: "",
                    headers,
                    body: Bytes::from(input.to_string()),
                    service,
                    region: &self.region,
                },
                true,
            )
            .map_err(|error| anyhow::anyhow!("{operation}: {error}"))?;
        let answer: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        if !reply.status.is_success() {
            let message = answer
                .get("message")
                .or_else(|| answer.get("Message"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            bail!(
                "An error occurred ({}) when calling the {operation} operation: {message}",
                reply.error_code()
            );
        }
        Ok(answer)
    }

    /// A GET of one of Cairn's own paths at the CloudTrail endpoint, signed as a call is:
    /// the status and the body (at most what any fetch may hold).
    pub fn get(&self, path: &str, query: &str) -> anyhow::Result<(u16, String)> {
        let reply = self
            .send(
                SignedCall {
                    endpoint: &self.cloudtrail,
                    method: Method::GET,
                    path,
                    query,
                    headers: HeaderMap::new(),
                    body: Bytes::new(),
                    service: "cloudtrail",
                    region: &self.region,
                },
                true,
            )
            .map_err(|error| anyhow::anyhow!("{path}: {error}"))?;
        Ok((
            reply.status.as_u16(),
            String::from_utf8_lossy(&reply.body).into_owned(),
        ))
    }

    /// The organization the caller's account belongs to (DescribeOrganization), which an
    /// organization trail's keys name.
    pub fn organization_id(&self) -> anyhow::Result<String> {
        let answer = self.json_call(
            &self.organizations,
            "organizations",
            "AWSOrganizationsV20161128.DescribeOrganization",
            "DescribeOrganization",
            &json!({}),
        )?;
        answer["Organization"]["Id"]
            .as_str()
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .context("DescribeOrganization named no organization")
    }

    /// The bucket and key prefix the trail delivers to, and whether it is an organization
    /// trail.
    pub fn trail(&self, arn: &str) -> anyhow::Result<(String, Option<String>, bool)> {
        let answer = self
            .cloudtrail("GetTrail", &json!({ "Name": arn }))
            .map_err(|error| {
                if error.to_string().contains("TrailNotFoundException") {
                    anyhow::anyhow!("A trail could not be found for {arn}")
                } else {
                    error
                }
            })?;
        let trail = &answer["Trail"];
        let bucket = trail["S3BucketName"]
            .as_str()
            .with_context(|| format!("the trail {arn} names no bucket"))?;
        let prefix = trail["S3KeyPrefix"]
            .as_str()
            .filter(|prefix| !prefix.is_empty());
        let organization = trail["IsOrganizationTrail"].as_bool().unwrap_or(false);
        Ok((bucket.to_owned(), prefix.map(str::to_owned), organization))
    }

    /// Every key ListPublicKeys gives for the range, by fingerprint.
    pub fn public_keys(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> anyhow::Result<HashMap<String, PublicKey>> {
        let mut keys = HashMap::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_KEY_PAGES {
            let mut input = json!({ "StartTime": start.timestamp(), "EndTime": end.timestamp() });
            if let Some(token) = &token {
                input["NextToken"] = json!(token);
            }
            let answer = self.cloudtrail("ListPublicKeys", &input)?;
            for key in answer["PublicKeyList"].as_array().into_iter().flatten() {
                let Some(fingerprint) = key["Fingerprint"].as_str() else {
                    continue;
                };
                // A key that does not decode is kept, as the CLI keeps it: each digest it
                // signed then says why, in the words of the Python the CLI runs.
                let der = match &key["Value"] {
                    Value::String(value) => python_b64decode(value),
                    Value::Null => Err("'Value'".to_owned()),
                    other => Err(format!(
                        "argument should be a bytes-like object or ASCII string, not '{}'",
                        python_type(other)
                    )),
                };
                keys.insert(
                    fingerprint.to_owned(),
                    PublicKey {
                        fingerprint: fingerprint.to_owned(),
                        der,
                    },
                );
            }
            match answer["NextToken"].as_str() {
                Some(next) if !next.is_empty() => token = Some(next.to_owned()),
                _ => return Ok(keys),
            }
        }
        bail!("ListPublicKeys kept paging past {MAX_KEY_PAGES} pages")
    }

    fn s3_get(&self, path: &str, query: &str) -> Result<SignedReply, ReadError> {
        self.s3_get_with(path, query, HeaderMap::new())
    }

    fn s3_get_with(
        &self,
        path: &str,
        query: &str,
        headers: HeaderMap,
    ) -> Result<SignedReply, ReadError> {
        self.send(
            SignedCall {
                endpoint: &self.s3,
                method: Method::GET,
                path,
                query,
                headers,
                body: Bytes::new(),
                service: "s3",
                region: &self.region,
            },
            true,
        )
        .map_err(|error| ReadError::Other(error.to_string()))
    }
}

fn bucket_path(bucket: &str) -> String {
    format!("/{}", utf8_percent_encode(bucket, UNRESERVED))
}

impl BucketReader for Remote {
    fn list_page(
        &self,
        bucket: &str,
        prefix: &str,
        marker: &str,
    ) -> Result<(Vec<ListedKey>, bool), ReadError> {
        // Sorted by name, as SigV4's canonical query is.
        let query = format!(
            "marker={}&prefix={}",
            utf8_percent_encode(marker, UNRESERVED),
            utf8_percent_encode(prefix, UNRESERVED)
        );
        let reply = self.s3_get(&bucket_path(bucket), &query)?;
        if !reply.status.is_success() {
            return Err(ReadError::Other(reply.error_code()));
        }
        let text = String::from_utf8_lossy(&reply.body);
        let listing =
            Element::parse(&text).map_err(|error| ReadError::Other(format!("{error:?}")))?;
        let keys = listing
            .children
            .iter()
            .filter(|child| child.name == "Contents")
            .filter_map(|contents| {
                let key = contents.child("Key")?.text.clone();
                let last_modified_millis = contents
                    .child("LastModified")
                    .and_then(|at| DateTime::parse_from_rfc3339(&at.text).ok())
                    .map_or(0, |at| at.timestamp_millis());
                Some(ListedKey {
                    key,
                    last_modified_millis,
                })
            })
            .collect();
        let more = listing
            .child("IsTruncated")
            .is_some_and(|truncated| truncated.text == "true");
        Ok((keys, more))
    }

    fn get_range(
        &self,
        bucket: &str,
        key: &str,
        offset: u64,
        length: u64,
    ) -> Result<(Vec<u8>, u64), ReadError> {
        let path = format!("{}/{}", bucket_path(bucket), utf8_percent_encode(key, KEY));
        let mut headers = HeaderMap::new();
        let last = offset.saturating_add(length.max(1) - 1);
        if let Ok(range) = HeaderValue::from_str(&format!("bytes={offset}-{last}")) {
            headers.insert(http::header::RANGE, range);
        }
        let reply = self.s3_get_with(&path, "", headers)?;
        match reply.status.as_u16() {
            206 => {
                // `Content-Range: bytes FIRST-LAST/SIZE`
                let size = reply
                    .headers
                    .get(http::header::CONTENT_RANGE)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| value.rsplit_once('/'))
                    .and_then(|(_, size)| size.parse().ok())
                    .ok_or_else(|| ReadError::Other("206 without a Content-Range size".into()))?;
                Ok((reply.body.to_vec(), size))
            }
            // An endpoint that ignores Range sends it all (within the reply bound).
            200 => {
                let size = reply.body.len() as u64;
                let from = offset.min(size) as usize;
                let to = offset.saturating_add(length).min(size) as usize;
                Ok((reply.body[from..to].to_vec(), size))
            }
            // An empty object has no byte 0: S3 answers InvalidRange.
            416 if offset == 0 => Ok((Vec::new(), 0)),
            _ => Err(match reply.error_code().as_str() {
                "NoSuchKey" => ReadError::NotFound,
                code => ReadError::Other(format!("{} {code}", reply.status.as_u16())),
            }),
        }
    }

    fn get(&self, bucket: &str, key: &str) -> Result<Fetched, ReadError> {
        let path = format!("{}/{}", bucket_path(bucket), utf8_percent_encode(key, KEY));
        let reply = self.s3_get(&path, "")?;
        if !reply.status.is_success() {
            return Err(match reply.error_code().as_str() {
                "NoSuchKey" => ReadError::NotFound,
                code => ReadError::Other(format!("{} {code}", reply.status.as_u16())),
            });
        }
        let metadata = reply
            .headers
            .iter()
            .filter_map(|(name, value)| {
                let name = name.as_str().strip_prefix("x-amz-meta-")?;
                Some((name.to_owned(), value.to_str().ok()?.to_owned()))
            })
            .collect();
        Ok(Fetched {
            body: reply.body.to_vec(),
            metadata,
        })
    }
}

/// The name Python gives the type of a JSON value the CLI parsed (botocore drops a null).
fn python_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(number) if number.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_is_read_from_its_own_section_only() {
        let text = "[other]\naws_access_key_id = A\n\n[default]\naws_access_key_id = B\naws_secret_access_key=C\n";
        let values = profile_values(text, "default");
        assert_eq!(
            values.get("aws_access_key_id").map(String::as_str),
            Some("B")
        );
        assert_eq!(
            values.get("aws_secret_access_key").map(String::as_str),
            Some("C")
        );
        assert!(profile_values(text, "missing").is_empty());
    }
}
