//! Forwarding a call to the AWS-compatible service behind Cairn (moto, LocalStack, your own).

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Largest upstream response Cairn reads (it reads it whole to record it).
pub const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// Headers that belong to one connection, not to the call.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum GatewayError {
    #[error("no upstream is configured for service {0}")]
    NoUpstream(String),
    #[error("the upstream could not be reached: {0}")]
    Unreachable(String),
    #[error("the upstream did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the upstream's answer is not a valid response: {0}")]
    BadResponse(String),
}

/// Where calls go: one default upstream and per-service overrides (by botocore service id
/// or by signing name).
#[derive(Clone, Debug, Default)]
pub struct Upstreams {
    pub default: Option<Uri>,
    pub by_service: HashMap<String, Uri>,
}

impl Upstreams {
    pub fn for_service(&self, service_id: Option<&str>, signing_name: &str) -> Option<&Uri> {
        service_id
            .and_then(|id| self.by_service.get(id))
            .or_else(|| self.by_service.get(signing_name))
            .or(self.default.as_ref())
    }
}

#[derive(Debug)]
pub struct UpstreamReply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

pub struct GatewayClient {
    client: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl GatewayClient {
    pub fn new(timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            timeout,
        }
    }

    /// Sends the call to `upstream` with the client's own method, path, query, headers and
    /// body (the signature stays valid for an upstream that checks it), and reads the answer.
    pub async fn forward(
        &self,
        upstream: &Uri,
        method: &Method,
        path_and_query: &str,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<UpstreamReply, GatewayError> {
        let base = upstream.to_string();
        let uri: Uri = format!("{}{}", base.trim_end_matches('/'), path_and_query)
            .parse()
            .map_err(|error| GatewayError::Unreachable(format!("bad upstream URI: {error}")))?;
        let mut request = http::Request::builder().method(method.clone()).uri(uri);
        for (name, value) in headers {
            if !HOP_BY_HOP.contains(&name.as_str()) && name != http::header::CONTENT_LENGTH {
                request = request.header(name, value);
            }
        }
        let request = request
            .body(Full::new(body))
            .map_err(|error| GatewayError::Unreachable(error.to_string()))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|error| GatewayError::Unreachable(describe(&error)))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|error| GatewayError::BadResponse(error.to_string()))?
                .to_bytes();
            let mut headers = parts.headers;
            for name in HOP_BY_HOP {
                headers.remove(name);
            }
            Ok(UpstreamReply {
                status: parts.status,
                headers,
                body,
            })
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(GatewayError::Timeout(self.timeout)),
        }
    }
}

fn describe(error: &hyper_util::client::legacy::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    if error.is_connect() {
        return format!("connection failed ({text})");
    }
    text
}
