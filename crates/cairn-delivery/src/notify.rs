//! What a trail tells besides its files: an SNS notification per delivered file (AWS's
//! `{"s3Bucket": ..., "s3ObjectKey": [...]}`), and each event to CloudWatch Logs (stream
//! `<account>_CloudTrail_<region>`, created on first need). Both go to the upstream that
//! serves SNS or CloudWatch Logs, signed with delivery's credentials. The calls only: what is owed
//! and when it is sent again is the outbox's (`notices`). Also the one Organizations call
//! an organization trail needs: which organization it logs for.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Uri};
use serde_json::{json, Value};

use crate::signed::{json_headers, SignedCall, SignedClient, SignedReply};
use crate::DeliveryError;

/// CloudWatch Logs' PutLogEvents limits: 10,000 events and 1,048,576 bytes a batch, each
/// event counted with 26 bytes of overhead.
const MAX_LOG_EVENTS_PER_BATCH: usize = 10_000;
const MAX_LOG_BATCH_BYTES: usize = 1_048_576;
const LOG_EVENT_OVERHEAD_BYTES: usize = 26;

/// An organization, as Organizations' DescribeOrganization tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Organization {
    pub id: String,
    pub management_account_id: String,
    /// `ALL`, which organization trails need, or `CONSOLIDATED_BILLING`.
    pub feature_set: String,
}

/// What Organizations says of the account delivery's credentials belong to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Membership {
    Member(Organization),
    /// In no organization, or no upstream serves Organizations.
    NotInUse,
    /// Organizations refused to say (AccessDenied).
    Refused,
}

#[derive(Clone)]
pub struct Notifier {
    pub client: SignedClient,
}

/// How long one SNS or CloudWatch Logs call may take: an upstream that hangs costs a round
/// this much, once (the rest of the round's notices are skipped), never the gateway's full
/// timeout per file.
#[cfg(not(test))]
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
#[cfg(test)]
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(300);

fn region_of(arn: &str) -> &str {
    arn.split(':').nth(3).unwrap_or_default()
}

fn failure(what: &str, status: u16, code: String) -> DeliveryError {
    DeliveryError::Objects(format!("{what} answered {status} {code}"))
}

impl Notifier {
    fn endpoint(&self, service: &str) -> Result<Uri, DeliveryError> {
        self.client
            .upstreams
            .for_service(Some(service), service)
            .cloned()
            .ok_or_else(|| DeliveryError::Objects(format!("no upstream serves {service}")))
    }

    /// POSTs `body` to `/` of the upstream serving `service`, signed for `region`.
    async fn post(
        &self,
        service: &str,
        headers: HeaderMap,
        body: Bytes,
        region: &str,
    ) -> Result<SignedReply, DeliveryError> {
        let endpoint = self.endpoint(service)?;
        let call = self.client.send(SignedCall {
            endpoint: &endpoint,
            method: Method::POST,
            path: "/",
            query: "",
            headers,
            body,
            service,
            region,
        });
        tokio::time::timeout(CALL_TIMEOUT, call)
            .await
            .unwrap_or_else(|_| {
                Err(DeliveryError::Objects(format!(
                    "{service} at {endpoint} did not answer within {} ms",
                    CALL_TIMEOUT.as_millis()
                )))
            })
    }

    async fn sns(&self, form: &[(&str, &str)], topic_arn: &str) -> Result<Bytes, DeliveryError> {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
        );
        let reply = self
            .post("sns", headers, Bytes::from(body), region_of(topic_arn))
            .await?;
        if !reply.status.is_success() {
            return Err(failure("SNS", reply.status.as_u16(), reply.error_code()));
        }
        Ok(reply.body)
    }

    /// Whether the topic exists where SNS is served.
    pub async fn topic_exists(&self, topic_arn: &str) -> Result<bool, DeliveryError> {
        let form = [
            ("Action", "GetTopicAttributes"),
            ("Version", "2010-03-31"),
            ("TopicArn", topic_arn),
        ];
        match self.sns(&form, topic_arn).await {
            Ok(_) => Ok(true),
            Err(DeliveryError::Objects(message)) if message.contains("NotFound") => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// The organization delivery's credentials belong to, at the upstream that serves
    /// Organizations.
    pub async fn describe_organization(&self) -> Result<Membership, DeliveryError> {
        if self.endpoint("organizations").is_err() {
            return Ok(Membership::NotInUse);
        }
        let headers = json_headers("AWSOrganizationsV20161128.DescribeOrganization")?;
        let reply = self
            .post(
                "organizations",
                headers,
                Bytes::from_static(b"{}"),
                "us-east-1",
            )
            .await?;
        let code = reply.error_code();
        if code == "AWSOrganizationsNotInUseException" {
            return Ok(Membership::NotInUse);
        }
        if code.starts_with("AccessDenied") {
            return Ok(Membership::Refused);
        }
        if !reply.status.is_success() {
            return Err(failure("Organizations", reply.status.as_u16(), code));
        }
        let answer: Value = serde_json::from_slice(&reply.body)
            .map_err(|error| DeliveryError::Objects(format!("Organizations answered: {error}")))?;
        let field = |name: &str| {
            answer["Organization"][name]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        };
        let id = field("Id");
        if id.is_empty() {
            return Err(DeliveryError::Objects(
                "Organizations answered no organization ID".into(),
            ));
        }
        Ok(Membership::Member(Organization {
            id,
            management_account_id: field("MasterAccountId"),
            feature_set: field("FeatureSet"),
        }))
    }

    /// AWS's notification of one delivered file.
    pub async fn publish_file(
        &self,
        topic_arn: &str,
        bucket: &str,
        key: &str,
    ) -> Result<(), DeliveryError> {
        let message = json!({ "s3Bucket": bucket, "s3ObjectKey": [key] }).to_string();
        let form = [
            ("Action", "Publish"),
            ("Version", "2010-03-31"),
            ("TopicArn", topic_arn),
            ("Message", &message),
        ];
        self.sns(&form, topic_arn).await.map(|_| ())
    }

    async fn logs(&self, target: &str, body: Value, region: &str) -> Result<(), DeliveryError> {
        let headers = json_headers(&format!("Logs_20140328.{target}"))?;
        let reply = self
            .post("logs", headers, Bytes::from(body.to_string()), region)
            .await?;
        let code = reply.error_code();
        if reply.status.is_success()
            || (target == "CreateLogStream" && code == "ResourceAlreadyExistsException")
        {
            return Ok(());
        }
        Err(failure("CloudWatch Logs", reply.status.as_u16(), code))
    }

    /// Sends `records` (one account and region's, as JSON text with their event times) to
    /// the log group of `group_arn`, in AWS's stream for them.
    pub async fn put_log_events(
        &self,
        group_arn: &str,
        account_id: &str,
        region: &str,
        records: &[(i64, &str)],
    ) -> Result<(), DeliveryError> {
        // arn:aws:logs:REGION:ACCOUNT:log-group:NAME[:*]
        let group = group_arn
            .split(':')
            .nth(6)
            .filter(|name| !name.is_empty())
            .ok_or_else(|| DeliveryError::Objects(format!("{group_arn} names no log group")))?;
        let group_region = region_of(group_arn);
        let stream = format!("{account_id}_CloudTrail_{region}");
        self.logs(
            "CreateLogStream",
            json!({ "logGroupName": group, "logStreamName": stream }),
            group_region,
        )
        .await?;
        let mut sorted = records.to_vec();
        sorted.sort_by_key(|(millis, _)| *millis);
        let mut batch: Vec<Value> = Vec::new();
        let mut bytes = 0;
        for (millis, text) in sorted {
            let size = text.len() + LOG_EVENT_OVERHEAD_BYTES;
            if !batch.is_empty()
                && (batch.len() >= MAX_LOG_EVENTS_PER_BATCH || bytes + size > MAX_LOG_BATCH_BYTES)
            {
                let events = std::mem::take(&mut batch);
                self.logs(
                    "PutLogEvents",
                    json!({ "logGroupName": group, "logStreamName": stream, "logEvents": events }),
                    group_region,
                )
                .await?;
                bytes = 0;
            }
            bytes += size;
            batch.push(json!({ "timestamp": millis, "message": text }));
        }
        if !batch.is_empty() {
            self.logs(
                "PutLogEvents",
                json!({ "logGroupName": group, "logStreamName": stream, "logEvents": batch }),
                group_region,
            )
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use cairn_upstream::{UpstreamRoutes, Upstreams};

    use super::*;
    use crate::signed::S3Credentials;

    #[tokio::test]
    async fn an_upstream_that_never_answers_costs_a_bounded_wait() {
        // Accepts connections and reads nothing, answers nothing.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                open.push(stream);
            }
        });
        let notifier = Notifier {
            client: SignedClient {
                upstreams: Arc::new(Upstreams::new(
                    UpstreamRoutes {
                        default: Some(format!("http://{address}").parse().unwrap()),
                        ..UpstreamRoutes::default()
                    },
                    std::time::Duration::from_secs(30),
                )),
                credentials: S3Credentials {
                    access_key_id: "test".into(),
                    secret_access_key: "test".into(),
                    region: "us-east-1".into(),
                },
                clock: Arc::new(cairn_model::SystemClock),
            },
        };
        let started = std::time::Instant::now();
        let outcome = notifier
            .publish_file("arn:aws:sns:us-east-1:111122223333:t", "b", "k")
            .await;
        let error = outcome.expect_err("no answer is a failure").to_string();
        assert!(error.contains("did not answer"), "{error}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        held.abort();
    }
}
