//! Forwarding a call to the AWS-compatible service behind Cairn (moto, LocalStack, your own).

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, StatusCode, Uri};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::streaming::{BoxError, OutgoingBody, Prefixed, StreamFailure};

/// An upstream answer up to this size is read whole, so the record can describe it; a larger
/// one streams to the client and is recorded by its status alone.
pub const MAX_RECORDED_RESPONSE_BYTES: usize = 4 << 20;

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
    #[error("Cairn has no upstream for service {0}: start it with --upstream URL (or an [upstreams] entry) to forward this service's calls")]
    NoUpstream(String),
    #[error("the upstream could not be reached: {0}")]
    Unreachable(String),
    #[error("the upstream did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the upstream's answer is not a valid response: {0}")]
    BadResponse(String),
    #[error("the request body was not forwarded: {0}")]
    RequestBody(StreamFailure),
}

/// Where calls go: one default upstream and per-service overrides (by botocore service id
/// or by signing name).
#[derive(Clone, Debug, Default)]
pub struct UpstreamRoutes {
    pub default: Option<Uri>,
    pub by_service: HashMap<String, Uri>,
}

/// The upstreams behind Cairn and the client that reaches them.
pub struct Upstreams {
    routes: UpstreamRoutes,
    client: GatewayClient,
}

impl Upstreams {
    pub fn new(routes: UpstreamRoutes, timeout: Duration) -> Self {
        Self {
            routes,
            client: GatewayClient::new(timeout),
        }
    }

    /// As [`Upstreams::new`], trusting the authorities of `trust` for `https` upstreams.
    pub fn trusting(
        routes: UpstreamRoutes,
        timeout: Duration,
        trust: &UpstreamTrust,
    ) -> Result<Self, GatewayError> {
        Ok(Self {
            routes,
            client: GatewayClient::trusting(timeout, trust)?,
        })
    }

    /// Where calls for a service go: its own upstream, else the default.
    pub fn for_service(&self, service_id: Option<&str>, signing_name: &str) -> Option<&Uri> {
        self.routes
            .by_service
            .get(service_id.unwrap_or(signing_name))
            .or_else(|| self.routes.by_service.get(signing_name))
            .or(self.routes.default.as_ref())
    }

    /// Whether a service has an upstream of its own, not only the default one.
    pub fn has_own(&self, service_id: &str, signing_name: &str) -> bool {
        self.routes.by_service.contains_key(service_id)
            || self.routes.by_service.contains_key(signing_name)
    }

    pub fn client(&self) -> &GatewayClient {
        &self.client
    }
}

#[derive(Debug)]
pub struct UpstreamReply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: ReplyBody,
}

impl UpstreamReply {
    /// The answer as it goes back to the client: the upstream's status, headers and body
    /// (hop-by-hop headers were already dropped when it was read).
    pub fn into_response(self) -> http::Response<UnsyncBoxBody<Bytes, BoxError>> {
        let mut response = http::Response::new(self.body.into_body());
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers;
        response
    }
}

/// An upstream answer's body: whole when small enough to record, else streaming.
#[derive(Debug)]
pub enum ReplyBody {
    Whole(Bytes),
    Streamed { prefix: Bytes, rest: Incoming },
}

impl ReplyBody {
    /// What the record may look at: all of a whole body, the start of a streamed one.
    pub fn recorded(&self) -> &[u8] {
        match self {
            Self::Whole(bytes) => bytes,
            Self::Streamed { prefix, .. } => prefix,
        }
    }

    pub fn is_whole(&self) -> bool {
        matches!(self, Self::Whole(_))
    }

    pub fn into_body(self) -> UnsyncBoxBody<Bytes, BoxError> {
        match self {
            Self::Whole(bytes) => http_body_util::Full::new(bytes)
                .map_err(|never| match never {})
                .boxed_unsync(),
            Self::Streamed { prefix, rest } => Prefixed::new(prefix, rest).boxed_unsync(),
        }
    }
}

pub struct GatewayClient {
    client: Client<HttpsConnector<HttpConnector>, UnsyncBoxBody<Bytes, BoxError>>,
    timeout: Duration,
}

/// The certificate authorities an `https` upstream's certificate may chain to: the system's,
/// and those of a PEM file (a LocalStack or company CA).
#[derive(Clone, Debug, Default)]
pub struct UpstreamTrust {
    pub extra_ca_file: Option<std::path::PathBuf>,
}

impl GatewayClient {
    /// A client for `http` upstreams and `https` ones the system's authorities vouch for.
    pub fn new(timeout: Duration) -> Self {
        Self::trusting(timeout, &UpstreamTrust::default())
            .expect("the system's certificate authorities alone always make a client")
    }

    /// A client that also trusts the authorities in `trust.extra_ca_file`.
    pub fn trusting(timeout: Duration, trust: &UpstreamTrust) -> Result<Self, GatewayError> {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for certificate in native.certs {
            // A system certificate rustls cannot use is skipped, as every client skips it.
            let _ = roots.add(certificate);
        }
        if let Some(path) = &trust.extra_ca_file {
            let bad = |error: String| {
                GatewayError::Unreachable(format!("upstream CA file {}: {error}", path.display()))
            };
            let certificates = CertificateDer::pem_file_iter(path)
                .map_err(|error| bad(error.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| bad(error.to_string()))?;
            if certificates.is_empty() {
                return Err(bad("it holds no certificate".into()));
            }
            for certificate in certificates {
                roots
                    .add(certificate)
                    .map_err(|error| bad(error.to_string()))?;
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|error| GatewayError::Unreachable(error.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        connector.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            timeout,
        })
    }

    /// The longest Cairn waits for an upstream's answer, or for the next chunk of a body.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends the call to `upstream` with the client's own method, path, query, headers and
    /// body (the signature stays valid for an upstream that checks it), and reads the answer.
    /// The timeout runs from the moment the whole body has gone upstream, so a long upload
    /// is not cut short; a stalled one is stopped by the body's own idle limit.
    pub async fn forward(
        &self,
        upstream: &Uri,
        method: &Method,
        path_and_query: &str,
        headers: &HeaderMap,
        body: OutgoingBody,
    ) -> Result<UpstreamReply, GatewayError> {
        let base = upstream.to_string();
        let uri: Uri = format!("{}{}", base.trim_end_matches('/'), path_and_query)
            .parse()
            .map_err(|error| GatewayError::Unreachable(format!("bad upstream URI: {error}")))?;
        let mut request = http::Request::builder().method(method.clone()).uri(uri);
        for (name, value) in headers {
            if !HOP_BY_HOP.contains(&name.as_str()) && name != http::header::EXPECT {
                request = request.header(name, value);
            }
        }
        let OutgoingBody { body, report } = body;
        let request = request
            .body(body)
            .map_err(|error| GatewayError::Unreachable(error.to_string()))?;
        let exchange = async {
            let response =
                self.client
                    .request(request)
                    .await
                    .map_err(|error| match report.failure() {
                        Some(failure) => GatewayError::RequestBody(failure),
                        None => GatewayError::Unreachable(describe(&error)),
                    })?;
            let (parts, body) = response.into_parts();
            let body = read_recordable(body).await?;
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
        tokio::pin!(exchange);
        tokio::select! {
            result = &mut exchange => result,
            () = async {
                report.sent().await;
                tokio::time::sleep(self.timeout).await;
            } => Err(GatewayError::Timeout(self.timeout)),
        }
    }
}

/// Reads the answer whole if it ends within [`MAX_RECORDED_RESPONSE_BYTES`], else keeps what
/// was read as the prefix of a stream.
async fn read_recordable(mut body: Incoming) -> Result<ReplyBody, GatewayError> {
    let mut read = BytesMut::new();
    while read.len() <= MAX_RECORDED_RESPONSE_BYTES {
        match body.frame().await {
            None => return Ok(ReplyBody::Whole(read.freeze())),
            Some(Err(error)) => return Err(GatewayError::BadResponse(error.to_string())),
            Some(Ok(frame)) => {
                if let Ok(chunk) = frame.into_data() {
                    read.extend_from_slice(&chunk);
                }
            }
        }
    }
    Ok(ReplyBody::Streamed {
        prefix: read.freeze(),
        rest: body,
    })
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
