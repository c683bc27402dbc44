//! Where trails put their files: the embedded S3 of this node, or any S3-compatible
//! endpoint (moto, LocalStack, MinIO, AWS) reached with the credentials delivery is
//! configured with, signed with SigV4 as an SDK would sign them. A put returns once the
//! object is stored (the embedded store commits with `synchronous=FULL`; an endpoint has
//! answered 200), which is what lets delivery move its position only after the files exist.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use cairn_s3::{BucketStore, NewObject};
use cairn_upstream::{OutgoingBody, Upstreams};
use cairn_wire::sigv4::{self, SignedRequest};
use http::{HeaderMap, HeaderValue, Method, Uri};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};

use crate::DeliveryError;

pub type ObjectFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, DeliveryError>> + Send + 'a>>;

/// One object to store.
#[derive(Clone, Debug)]
pub struct ObjectPut {
    pub bucket: String,
    pub key: String,
    pub body: Bytes,
    pub content_type: &'static str,
    pub content_encoding: Option<&'static str>,
    /// `x-amz-meta-*`, names without the prefix.
    pub metadata: Vec<(String, String)>,
}

pub trait ObjectStore: Send + Sync + 'static {
    fn bucket_exists<'a>(&'a self, bucket: &'a str) -> ObjectFuture<'a, bool>;
    fn put_object(&self, object: ObjectPut) -> ObjectFuture<'_, ()>;
    /// For messages: `the embedded S3`, `S3 at http://...`.
    fn describe(&self) -> String;
}

/// The node's embedded S3.
pub struct EmbeddedObjects {
    pub buckets: Arc<BucketStore>,
    pub clock: Arc<dyn cairn_model::Clock>,
}

impl ObjectStore for EmbeddedObjects {
    fn bucket_exists<'a>(&'a self, bucket: &'a str) -> ObjectFuture<'a, bool> {
        let buckets = self.buckets.clone();
        let bucket = bucket.to_owned();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || buckets.bucket(&bucket))
                .await
                .map_err(|error| DeliveryError::Objects(error.to_string()))?
                .map(|found| found.is_some())
                .map_err(|error| DeliveryError::Objects(error.to_string()))
        })
    }

    fn put_object(&self, object: ObjectPut) -> ObjectFuture<'_, ()> {
        let buckets = self.buckets.clone();
        let now = self.clock.now_millis();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                buckets.put_object(
                    &object.bucket,
                    &object.key,
                    &object.body,
                    &NewObject {
                        content_type: Some(object.content_type.to_owned()),
                        content_encoding: object.content_encoding.map(str::to_owned),
                        metadata: object.metadata,
                    },
                    now,
                )
            })
            .await
            .map_err(|error| DeliveryError::Objects(error.to_string()))?
            .map(|_| ())
            .map_err(|error| DeliveryError::Objects(error.to_string()))
        })
    }

    fn describe(&self) -> String {
        "the embedded S3".to_owned()
    }
}

/// Credentials delivery signs with at an S3 endpoint.
#[derive(Clone)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
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

/// An S3-compatible endpoint, addressed path-style.
pub struct S3Endpoint {
    pub endpoint: Uri,
    pub credentials: S3Credentials,
    /// The client that reaches it (the gateway's, with its trust and timeout).
    pub upstreams: Arc<Upstreams>,
    pub clock: Arc<dyn cairn_model::Clock>,
}

/// What S3 leaves unencoded in a key's path: unreserved characters and `/`.
const KEY_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

impl S3Endpoint {
    async fn send(
        &self,
        method: Method,
        path: String,
        mut headers: HeaderMap,
        body: Bytes,
    ) -> Result<http::StatusCode, DeliveryError> {
        let now = self.clock.now_millis();
        let amz_date = chrono::DateTime::from_timestamp_millis(now)
            .unwrap_or_default()
            .format("%Y%m%dT%H%M%SZ")
            .to_string();
        let host = self
            .endpoint
            .authority()
            .map(|authority| authority.as_str().to_owned())
            .unwrap_or_default();
        let header = |value: &str| {
            HeaderValue::from_str(value).map_err(|error| DeliveryError::Objects(error.to_string()))
        };
        headers.insert(http::header::HOST, header(&host)?);
        headers.insert("x-amz-date", header(&amz_date)?);
        headers.insert(
            "x-amz-content-sha256",
            header(&hex::encode(Sha256::digest(&body)))?,
        );
        let mut names: Vec<String> = headers
            .keys()
            .map(|name| name.as_str().to_owned())
            .collect();
        names.sort();
        names.dedup();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let authorization = sigv4::authorization_header(
            &SignedRequest {
                method: &method,
                raw_path: &path,
                raw_query: "",
                headers: &headers,
                body: &body,
            },
            &self.credentials.access_key_id,
            &self.credentials.secret_access_key,
            &self.credentials.region,
            "s3",
            &names,
        )
        .map_err(|error| DeliveryError::Objects(error.to_string()))?;
        headers.insert(http::header::AUTHORIZATION, header(&authorization)?);
        headers.insert(
            http::header::CONTENT_LENGTH,
            header(&body.len().to_string())?,
        );
        let reply = self
            .upstreams
            .client()
            .forward(
                &self.endpoint,
                &method,
                &path,
                &headers,
                OutgoingBody::whole(body),
            )
            .await
            .map_err(|error| DeliveryError::Objects(format!("{}: {error}", self.describe())))?;
        if reply.status.is_server_error() || reply.status.is_client_error() {
            let text = String::from_utf8_lossy(reply.body.recorded());
            let code = text
                .split("<Code>")
                .nth(1)
                .and_then(|rest| rest.split("</Code>").next())
                .unwrap_or("")
                .to_owned();
            if method == Method::HEAD || code.is_empty() {
                return Ok(reply.status);
            }
            return Err(DeliveryError::Objects(format!(
                "{} answered {} {code}",
                self.describe(),
                reply.status.as_u16()
            )));
        }
        Ok(reply.status)
    }
}

impl ObjectStore for S3Endpoint {
    fn bucket_exists<'a>(&'a self, bucket: &'a str) -> ObjectFuture<'a, bool> {
        Box::pin(async move {
            let path = format!("/{}", utf8_percent_encode(bucket, KEY_SET));
            let status = self
                .send(Method::HEAD, path, HeaderMap::new(), Bytes::new())
                .await?;
            match status.as_u16() {
                200..=299 => Ok(true),
                404 => Ok(false),
                other => Err(DeliveryError::Objects(format!(
                    "{} answered HeadBucket {other}",
                    self.describe()
                ))),
            }
        })
    }

    fn put_object(&self, object: ObjectPut) -> ObjectFuture<'_, ()> {
        Box::pin(async move {
            let path = format!(
                "/{}/{}",
                utf8_percent_encode(&object.bucket, KEY_SET),
                utf8_percent_encode(&object.key, KEY_SET)
            );
            let mut headers = HeaderMap::new();
            let value = |text: &str| {
                HeaderValue::from_str(text)
                    .map_err(|error| DeliveryError::Objects(error.to_string()))
            };
            headers.insert(http::header::CONTENT_TYPE, value(object.content_type)?);
            if let Some(encoding) = object.content_encoding {
                headers.insert(http::header::CONTENT_ENCODING, value(encoding)?);
            }
            for (name, text) in &object.metadata {
                let name =
                    http::header::HeaderName::from_bytes(format!("x-amz-meta-{name}").as_bytes())
                        .map_err(|error| DeliveryError::Objects(error.to_string()))?;
                headers.insert(name, value(text)?);
            }
            let status = self.send(Method::PUT, path, headers, object.body).await?;
            if !status.is_success() {
                return Err(DeliveryError::Objects(format!(
                    "{} answered PutObject {}",
                    self.describe(),
                    status.as_u16()
                )));
            }
            Ok(())
        })
    }

    fn describe(&self) -> String {
        format!("S3 at {}", self.endpoint)
    }
}
