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
use http::{HeaderMap, HeaderValue, Method, Uri};
// What S3 leaves unencoded in a key's path: unreserved characters and `/`.
use cairn_wire::sigv4::URI_ENCODE_PATH as KEY_SET;
use percent_encoding::utf8_percent_encode;

use crate::signed::{SignedCall, SignedClient};
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

/// An S3-compatible endpoint, addressed path-style.
pub struct S3Endpoint {
    pub endpoint: Uri,
    pub client: SignedClient,
}

impl S3Endpoint {
    async fn send(
        &self,
        method: Method,
        path: String,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<http::StatusCode, DeliveryError> {
        let reply = self
            .client
            .send(SignedCall {
                endpoint: &self.endpoint,
                method: method.clone(),
                path: &path,
                query: "",
                headers,
                body,
                service: "s3",
                region: &self.client.credentials.region,
            })
            .await?;
        if reply.status.is_success() || method == Method::HEAD {
            return Ok(reply.status);
        }
        Err(DeliveryError::Objects(format!(
            "{} answered {} {}",
            self.describe(),
            reply.status.as_u16(),
            reply.error_code()
        )))
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
