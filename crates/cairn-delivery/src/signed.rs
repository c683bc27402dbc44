//! Calls Cairn makes itself to an AWS-compatible endpoint (an S3, SNS or CloudWatch Logs
//! upstream), signed with SigV4 under the credentials delivery is configured with, as an
//! SDK would sign them, through the gateway's own client (its trust and timeout).

use std::sync::Arc;

use bytes::Bytes;
use cairn_upstream::{OutgoingBody, ReplyBody, UpstreamReply, Upstreams};
use cairn_wire::sigv4;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use sha2::{Digest, Sha256};

use crate::DeliveryError;

/// Credentials delivery signs with at an upstream.
#[derive(Clone)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// The region signed for where the call names none (S3).
    pub region: String,
}

impl std::fmt::Debug for S3Credentials {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// A signed call's answer.
pub struct SignedReply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl SignedReply {
    /// The AWS error code an error answer carries (XML `<Code>` or JSON `__type`).
    pub fn error_code(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        if let Some(code) = text
            .split("<Code>")
            .nth(1)
            .and_then(|rest| rest.split("</Code>").next())
        {
            return code.to_owned();
        }
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|value| value.get("__type")?.as_str().map(str::to_owned))
            .map(|code| code.rsplit('#').next().unwrap_or_default().to_owned())
            .unwrap_or_default()
    }
}

#[derive(Clone)]
pub struct SignedClient {
    pub upstreams: Arc<Upstreams>,
    pub credentials: S3Credentials,
    pub clock: Arc<dyn cairn_model::Clock>,
}

/// One call to sign and send.
pub struct SignedCall<'a> {
    pub endpoint: &'a Uri,
    pub method: Method,
    /// Path and query, already percent-encoded as sent.
    pub path: &'a str,
    pub query: &'a str,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub service: &'a str,
    pub region: &'a str,
}

/// The headers of an AWS JSON 1.1 call of `target` (`<prefix>.<Operation>`).
pub fn json_headers(target: &str) -> Result<HeaderMap, DeliveryError> {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    headers.insert("x-amz-target", header_value(target)?);
    Ok(headers)
}

fn header_value(text: &str) -> Result<HeaderValue, DeliveryError> {
    HeaderValue::from_str(text).map_err(|error| DeliveryError::Objects(error.to_string()))
}

impl SignedClient {
    /// Sends `call`; the answer's body is kept up to the first 4 MiB, which every answer
    /// Cairn reads in delivery fits in.
    pub async fn send(&self, call: SignedCall<'_>) -> Result<SignedReply, DeliveryError> {
        let reply = self.exchange(call).await?;
        Ok(SignedReply {
            status: reply.status,
            headers: reply.headers,
            body: Bytes::copy_from_slice(reply.body.recorded()),
        })
    }

    /// Sends `call` and reads its answer whole, refusing one longer than `limit` bytes: for
    /// objects read back (validate-logs).
    pub async fn send_reading_all(
        &self,
        call: SignedCall<'_>,
        limit: usize,
    ) -> Result<SignedReply, DeliveryError> {
        use http_body_util::BodyExt;
        let reply = self.exchange(call).await?;
        let body = match reply.body {
            ReplyBody::Whole(bytes) => bytes,
            ReplyBody::Streamed { prefix, rest } => {
                let remaining = limit.saturating_sub(prefix.len());
                let rest = http_body_util::Limited::new(rest, remaining)
                    .collect()
                    .await
                    .map_err(|error| DeliveryError::Objects(format!("an answer's body: {error}")))?
                    .to_bytes();
                [prefix, rest].concat().into()
            }
        };
        if body.len() > limit {
            return Err(DeliveryError::Objects(format!(
                "an answer longer than {limit} bytes"
            )));
        }
        Ok(SignedReply {
            status: reply.status,
            headers: reply.headers,
            body,
        })
    }

    async fn exchange(&self, call: SignedCall<'_>) -> Result<UpstreamReply, DeliveryError> {
        let SignedCall {
            endpoint,
            method,
            path,
            query,
            mut headers,
            body,
            service,
            region,
        } = call;
        let amz_date = chrono::DateTime::from_timestamp_millis(self.clock.now_millis())
            .unwrap_or_default()
            .format("%Y%m%dT%H%M%SZ")
            .to_string();
        let host = endpoint
            .authority()
            .map(|authority| authority.as_str().to_owned())
            .unwrap_or_default();
        headers.insert(http::header::HOST, header_value(&host)?);
        headers.insert("x-amz-date", header_value(&amz_date)?);
        headers.insert(
            "x-amz-content-sha256",
            header_value(&hex::encode(Sha256::digest(&body)))?,
        );
        let authorization = sigv4::sign_request(
            &sigv4::SignedRequest {
                method: &method,
                raw_path: path,
                raw_query: query,
                headers: &headers,
                body: &body,
            },
            (
                &self.credentials.access_key_id,
                &self.credentials.secret_access_key,
            ),
            region,
            service,
        )
        .map_err(|error| DeliveryError::Objects(error.to_string()))?;
        headers.insert(http::header::AUTHORIZATION, authorization);
        headers.insert(
            http::header::CONTENT_LENGTH,
            header_value(&body.len().to_string())?,
        );
        let path_and_query = if query.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{query}")
        };
        self.upstreams
            .client()
            .forward(
                endpoint,
                &method,
                &path_and_query,
                &headers,
                OutgoingBody::whole(body),
            )
            .await
            .map_err(|error| DeliveryError::Objects(format!("{service} at {endpoint}: {error}")))
    }
}
