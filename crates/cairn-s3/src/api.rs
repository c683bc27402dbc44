//! The S3 REST API over the bucket store, for the operations a trail's reader needs: bucket
//! create/delete/list/head/location, object put/get (ranges)/head/delete, DeleteObjects,
//! ListObjects v1 and v2, and multipart uploads (what `aws s3 cp` sends for large files).
//! The gateway has already verified the caller and named the operation, bucket and key from
//! the botocore model; this answers as S3 answers, in S3's XML, headers and status codes.

use bytes::Bytes;
use cairn_wire::xml::Element;
use cairn_wire::{AwsError, Protocol};
use chrono::{TimeZone, Utc};
use http::{HeaderMap, HeaderValue, StatusCode};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::store::{
    Bucket, BucketError, BucketStore, ByteRange, ListQuery, Listing, NewObject, ObjectHead,
    ObjectRead, MAX_LIST_KEYS,
};

const NAMESPACE: &str = "http://s3.amazonaws.com/doc/2006-03-01/";
const MAX_DELETE_KEYS: usize = 1000;

/// One S3 call, as the gateway recognised it.
pub struct S3Request<'a> {
    pub operation: &'a str,
    pub bucket: Option<&'a str>,
    pub key: Option<&'a str>,
    pub query: &'a [(String, String)],
    pub headers: &'a HeaderMap,
    /// The payload, already decoded from aws-chunked framing.
    pub body: &'a [u8],
    pub account_id: &'a str,
    pub region: &'a str,
    pub now_millis: i64,
    pub request_id: &'a str,
}

/// S3's answer.
#[derive(Debug)]
pub struct S3Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// `encoding-type=url` escapes keys as S3 does: everything but unreserved characters and `/`.
const KEY_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

fn iso_millis(millis: i64) -> String {
    Utc.timestamp_millis_opt(millis)
        .single()
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

fn http_date(millis: i64) -> String {
    Utc.timestamp_millis_opt(millis)
        .single()
        .unwrap_or_default()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

fn query_value<'q>(query: &'q [(String, String)], name: &str) -> Option<&'q str> {
    query
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

fn error_of(error: &BucketError, resource: &str) -> AwsError {
    let (code, status) = match error {
        BucketError::NoSuchBucket => ("NoSuchBucket", StatusCode::NOT_FOUND),
        BucketError::NoSuchKey => ("NoSuchKey", StatusCode::NOT_FOUND),
        BucketError::NoSuchUpload => ("NoSuchUpload", StatusCode::NOT_FOUND),
        BucketError::BucketAlreadyOwnedByYou => ("BucketAlreadyOwnedByYou", StatusCode::CONFLICT),
        BucketError::BucketAlreadyExists => ("BucketAlreadyExists", StatusCode::CONFLICT),
        BucketError::BucketNotEmpty => ("BucketNotEmpty", StatusCode::CONFLICT),
        BucketError::InvalidBucketName => ("InvalidBucketName", StatusCode::BAD_REQUEST),
        BucketError::TooManyBuckets => ("TooManyBuckets", StatusCode::BAD_REQUEST),
        BucketError::EntityTooLarge => ("EntityTooLarge", StatusCode::BAD_REQUEST),
        BucketError::InvalidPart => ("InvalidPart", StatusCode::BAD_REQUEST),
        BucketError::InvalidPartOrder => ("InvalidPartOrder", StatusCode::BAD_REQUEST),
        BucketError::InvalidRange => ("InvalidRange", StatusCode::RANGE_NOT_SATISFIABLE),
        BucketError::Store(detail) => {
            tracing::error!(%detail, "the embedded S3 store failed");
            ("InternalError", StatusCode::INTERNAL_SERVER_ERROR)
        }
    };
    let message = match error {
        BucketError::Store(_) => "We encountered an internal error. Please try again.".to_owned(),
        other => other.to_string(),
    };
    tracing::debug!(%resource, code, "embedded S3 refused a call");
    AwsError::new(code, message).with_status(status)
}

fn answer(status: StatusCode, headers: HeaderMap, body: impl Into<Bytes>) -> S3Answer {
    S3Answer {
        status,
        headers,
        body: body.into(),
    }
}

fn xml(document: Element) -> S3Answer {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    answer(
        StatusCode::OK,
        headers,
        document.to_document(Some(NAMESPACE)).into_bytes(),
    )
}

fn empty(status: StatusCode) -> S3Answer {
    answer(status, HeaderMap::new(), Bytes::new())
}

fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

fn error_answer(error: &AwsError, request: &S3Request<'_>, head: bool) -> S3Answer {
    let document = error.render(Some(Protocol::RestXml), request.request_id);
    let mut headers = HeaderMap::new();
    set(&mut headers, "content-type", document.content_type);
    for (name, value) in &document.headers {
        set(&mut headers, name, value);
    }
    // A HEAD answer has no body, as S3 sends it.
    let body = if head { Vec::new() } else { document.body };
    answer(document.status, headers, body)
}

/// The object metadata a PutObject or CreateMultipartUpload carries in its headers.
fn new_object(headers: &HeaderMap) -> NewObject {
    let encoding = header(headers, "content-encoding").and_then(|value| {
        // aws-chunked is the transfer framing, not the object's encoding.
        let kept: Vec<&str> = value
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty() && *part != "aws-chunked")
            .collect();
        (!kept.is_empty()).then(|| kept.join(","))
    });
    NewObject {
        content_type: header(headers, "content-type").map(str::to_owned),
        content_encoding: encoding,
        metadata: headers
            .iter()
            .filter_map(|(name, value)| {
                let name = name.as_str().strip_prefix("x-amz-meta-")?;
                Some((name.to_owned(), value.to_str().ok()?.to_owned()))
            })
            .collect(),
    }
}

fn object_headers(head: &ObjectHead) -> HeaderMap {
    let mut headers = HeaderMap::new();
    set(&mut headers, "etag", &head.etag);
    set(
        &mut headers,
        "last-modified",
        &http_date(head.last_modified_millis),
    );
    set(&mut headers, "accept-ranges", "bytes");
    set(
        &mut headers,
        "content-type",
        head.content_type
            .as_deref()
            .unwrap_or("binary/octet-stream"),
    );
    if let Some(encoding) = &head.content_encoding {
        set(&mut headers, "content-encoding", encoding);
    }
    for (name, value) in &head.metadata {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(format!("x-amz-meta-{name}").as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(name, value);
        }
    }
    headers
}

/// Serves one S3 call against `store`.
pub fn serve(store: &BucketStore, request: &S3Request<'_>) -> S3Answer {
    let head = matches!(request.operation, "HeadObject" | "HeadBucket");
    match dispatch(store, request) {
        Ok(answer) => answer,
        Err(error) => error_answer(&error, request, head),
    }
}

fn required<'v>(value: Option<&'v str>, what: &str) -> Result<&'v str, AwsError> {
    value.filter(|value| !value.is_empty()).ok_or_else(|| {
        AwsError::new("InvalidRequest", format!("The request names no {what}."))
            .with_status(StatusCode::BAD_REQUEST)
    })
}

fn dispatch(store: &BucketStore, request: &S3Request<'_>) -> Result<S3Answer, AwsError> {
    let bucket = || required(request.bucket, "bucket");
    let key = || required(request.key, "key");
    let resource = format!(
        "/{}{}",
        request.bucket.unwrap_or_default(),
        request.key.map(|key| format!("/{key}")).unwrap_or_default()
    );
    let refused = |error: BucketError| error_of(&error, &resource);
    match request.operation {
        "ListBuckets" => list_buckets(store, request).map_err(refused),
        "CreateBucket" => {
            let name = bucket()?;
            let region = location_constraint(request.body)?.unwrap_or_else(|| request.region.to_owned());
            store
                .create_bucket(&Bucket {
                    name: name.to_owned(),
                    region,
                    account_id: request.account_id.to_owned(),
                    created_millis: request.now_millis,
                })
                .map_err(refused)?;
            let mut headers = HeaderMap::new();
            set(&mut headers, "location", &format!("/{name}"));
            Ok(answer(StatusCode::OK, headers, Bytes::new()))
        }
        "DeleteBucket" => {
            store.delete_bucket(bucket()?).map_err(refused)?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        "HeadBucket" => {
            let found = store.bucket(bucket()?).map_err(refused)?.ok_or_else(|| {
                AwsError::new("NotFound", "Not Found").with_status(StatusCode::NOT_FOUND)
            })?;
            let mut headers = HeaderMap::new();
            set(&mut headers, "x-amz-bucket-region", &found.region);
            Ok(answer(StatusCode::OK, headers, Bytes::new()))
        }
        "GetBucketLocation" => {
            let found = store
                .bucket(bucket()?)
                .map_err(refused)?
                .ok_or(BucketError::NoSuchBucket)
                .map_err(refused)?;
            // us-east-1 is the empty constraint, as S3 answers it.
            let constraint = if found.region == "us-east-1" { String::new() } else { found.region };
            Ok(xml(Element::text("LocationConstraint", constraint)))
        }
        "ListObjects" => list_objects(store, request, bucket()?, false),
        "ListObjectsV2" => list_objects(store, request, bucket()?, true),
        "PutObject" => {
            let etag = store
                .put_object(bucket()?, key()?, request.body, &new_object(request.headers), request.now_millis)
                .map_err(refused)?;
            let mut headers = HeaderMap::new();
            set(&mut headers, "etag", &etag);
            Ok(answer(StatusCode::OK, headers, Bytes::new()))
        }
        "GetObject" => {
            let range = header(request.headers, "range").and_then(ByteRange::parse);
            let ObjectRead { head, bytes, span } =
                store.get_object(bucket()?, key()?, range).map_err(refused)?;
            let mut headers = object_headers(&head);
            let status = match span {
                Some((offset, length)) => {
                    let last = offset + length.saturating_sub(1);
                    set(&mut headers, "content-range", &format!("bytes {offset}-{last}/{}", head.size));
                    StatusCode::PARTIAL_CONTENT
                }
                None => StatusCode::OK,
            };
            Ok(answer(status, headers, bytes))
        }
        "HeadObject" => {
            let head = store.head_object(bucket()?, key()?).map_err(refused)?;
            let mut headers = object_headers(&head);
            set(&mut headers, "content-length", &head.size.to_string());
            Ok(answer(StatusCode::OK, headers, Bytes::new()))
        }
        "DeleteObject" => {
            store.delete_object(bucket()?, key()?).map_err(refused)?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        "DeleteObjects" => delete_objects(store, request, bucket()?),
        "CreateMultipartUpload" => {
            let (bucket, key) = (bucket()?, key()?);
            let upload_id = store
                .create_upload(bucket, key, &new_object(request.headers), request.now_millis)
                .map_err(refused)?;
            Ok(xml(Element::new("InitiateMultipartUploadResult")
                .with_child(Element::text("Bucket", bucket))
                .with_child(Element::text("Key", key))
                .with_child(Element::text("UploadId", upload_id))))
        }
        "UploadPart" => {
            let upload_id = required(query_value(request.query, "uploadId"), "uploadId")?;
            let part_number = query_value(request.query, "partNumber")
                .and_then(|number| number.parse::<u32>().ok())
                .ok_or_else(|| {
                    AwsError::new("InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive")
                        .with_status(StatusCode::BAD_REQUEST)
                })?;
            let etag = store
                .upload_part(bucket()?, key()?, upload_id, part_number, request.body)
                .map_err(refused)?;
            let mut headers = HeaderMap::new();
            set(&mut headers, "etag", &etag);
            Ok(answer(StatusCode::OK, headers, Bytes::new()))
        }
        "CompleteMultipartUpload" => {
            let (bucket, key) = (bucket()?, key()?);
            let upload_id = required(query_value(request.query, "uploadId"), "uploadId")?;
            let parts = completed_parts(request.body)?;
            let etag = store
                .complete_upload(bucket, key, upload_id, &parts, request.now_millis)
                .map_err(refused)?;
            Ok(xml(Element::new("CompleteMultipartUploadResult")
                .with_child(Element::text("Location", format!("/{bucket}/{key}")))
                .with_child(Element::text("Bucket", bucket))
                .with_child(Element::text("Key", key))
                .with_child(Element::text("ETag", etag))))
        }
        "AbortMultipartUpload" => {
            let upload_id = required(query_value(request.query, "uploadId"), "uploadId")?;
            store.abort_upload(bucket()?, key()?, upload_id).map_err(refused)?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        other => Err(AwsError::new(
            "NotImplemented",
            format!("Cairn's embedded S3 does not implement {other}; point [upstreams] s3 at an S3 service for it."),
        )
        .with_status(StatusCode::NOT_IMPLEMENTED)),
    }
}

fn malformed(detail: &str) -> AwsError {
    AwsError::new(
        "MalformedXML",
        format!("The XML you provided was not well-formed or did not validate against our published schema: {detail}"),
    )
    .with_status(StatusCode::BAD_REQUEST)
}

fn parse_xml(body: &[u8]) -> Result<Element, AwsError> {
    let text = std::str::from_utf8(body).map_err(|_| malformed("not UTF-8"))?;
    Element::parse(text).map_err(|error| malformed(&error.to_string()))
}

/// CreateBucket's `<LocationConstraint>`, if its body names one.
fn location_constraint(body: &[u8]) -> Result<Option<String>, AwsError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let document = parse_xml(body)?;
    Ok(document
        .find("LocationConstraint")
        .map(|element| element.text.clone())
        .filter(|region| !region.is_empty()))
}

fn completed_parts(body: &[u8]) -> Result<Vec<(u32, String)>, AwsError> {
    let document = parse_xml(body)?;
    document
        .children
        .iter()
        .filter(|child| child.name == "Part")
        .map(|part| {
            let number = part
                .child("PartNumber")
                .and_then(|number| number.text.parse().ok())
                .ok_or_else(|| malformed("a Part has no PartNumber"))?;
            let etag = part
                .child("ETag")
                .map(|etag| etag.text.clone())
                .ok_or_else(|| malformed("a Part has no ETag"))?;
            Ok((number, etag))
        })
        .collect()
}

fn list_buckets(store: &BucketStore, request: &S3Request<'_>) -> Result<S3Answer, BucketError> {
    let mut buckets = Element::new("Buckets");
    for bucket in store.list_buckets(request.account_id)? {
        buckets.push(
            Element::new("Bucket")
                .with_child(Element::text("Name", bucket.name))
                .with_child(Element::text(
                    "CreationDate",
                    iso_millis(bucket.created_millis),
                ))
                .with_child(Element::text("BucketRegion", bucket.region)),
        );
    }
    Ok(xml(Element::new("ListAllMyBucketsResult")
        .with_child(
            Element::new("Owner")
                .with_child(Element::text("ID", request.account_id))
                .with_child(Element::text("DisplayName", request.account_id)),
        )
        .with_child(buckets)))
}

fn list_objects(
    store: &BucketStore,
    request: &S3Request<'_>,
    bucket: &str,
    v2: bool,
) -> Result<S3Answer, AwsError> {
    let refused = |error: BucketError| error_of(&error, bucket);
    let query = request.query;
    let prefix = query_value(query, "prefix").unwrap_or("");
    let delimiter = query_value(query, "delimiter");
    let max_keys = query_value(query, "max-keys")
        .and_then(|value| value.parse::<usize>().ok())
        .unwrap_or(MAX_LIST_KEYS)
        .min(MAX_LIST_KEYS);
    let url_encoded = query_value(query, "encoding-type") == Some("url");
    let shown = |text: &str| {
        if url_encoded {
            utf8_percent_encode(text, KEY_ESCAPES).to_string()
        } else {
            text.to_owned()
        }
    };
    let continuation = query_value(query, "continuation-token");
    let after = if v2 {
        match continuation {
            Some(token) => Some(decode_token(token).ok_or_else(|| {
                AwsError::new(
                    "InvalidArgument",
                    "The continuation token provided is incorrect",
                )
                .with_status(StatusCode::BAD_REQUEST)
            })?),
            None => query_value(query, "start-after").map(str::to_owned),
        }
    } else {
        query_value(query, "marker").map(str::to_owned)
    };
    let listing: Listing = store
        .list_objects(
            bucket,
            &ListQuery {
                prefix,
                delimiter,
                after: after.as_deref(),
                max_keys,
            },
        )
        .map_err(refused)?;
    let mut result = Element::new("ListBucketResult")
        .with_child(Element::text("Name", bucket))
        .with_child(Element::text("Prefix", shown(prefix)));
    if v2 {
        if let Some(token) = continuation {
            result.push(Element::text("ContinuationToken", token));
        }
        if let Some(start_after) = query_value(query, "start-after") {
            result.push(Element::text("StartAfter", shown(start_after)));
        }
        result.push(Element::text(
            "KeyCount",
            (listing.contents.len() + listing.common_prefixes.len()).to_string(),
        ));
    } else {
        result.push(Element::text(
            "Marker",
            shown(after.as_deref().unwrap_or("")),
        ));
    }
    result.push(Element::text("MaxKeys", max_keys.to_string()));
    if let Some(delimiter) = delimiter {
        result.push(Element::text("Delimiter", shown(delimiter)));
    }
    if url_encoded {
        result.push(Element::text("EncodingType", "url"));
    }
    result.push(Element::text(
        "IsTruncated",
        listing.next_after.is_some().to_string(),
    ));
    if let Some(next) = &listing.next_after {
        if v2 {
            result.push(Element::text("NextContinuationToken", encode_token(next)));
        } else if delimiter.is_some() {
            // S3 names NextMarker only when a delimiter is given; clients use the last
            // key otherwise.
            result.push(Element::text("NextMarker", shown(next)));
        }
    }
    let fetch_owner = !v2 || query_value(query, "fetch-owner") == Some("true");
    for head in &listing.contents {
        let mut entry = Element::new("Contents")
            .with_child(Element::text("Key", shown(&head.key)))
            .with_child(Element::text(
                "LastModified",
                iso_millis(head.last_modified_millis),
            ))
            .with_child(Element::text("ETag", &head.etag))
            .with_child(Element::text("Size", head.size.to_string()))
            .with_child(Element::text("StorageClass", "STANDARD"));
        if fetch_owner {
            entry.push(
                Element::new("Owner")
                    .with_child(Element::text("ID", request.account_id))
                    .with_child(Element::text("DisplayName", request.account_id)),
            );
        }
        result.push(entry);
    }
    for prefix in &listing.common_prefixes {
        result.push(
            Element::new("CommonPrefixes").with_child(Element::text("Prefix", shown(prefix))),
        );
    }
    Ok(xml(result))
}

/// A continuation token is the key to resume after, hex-encoded: opaque to clients, and
/// harmless if forged (it only says where a listing of a bucket the caller may list starts).
fn encode_token(after: &str) -> String {
    hex::encode(after.as_bytes())
}

fn decode_token(token: &str) -> Option<String> {
    String::from_utf8(hex::decode(token).ok()?).ok()
}

fn delete_objects(
    store: &BucketStore,
    request: &S3Request<'_>,
    bucket: &str,
) -> Result<S3Answer, AwsError> {
    let document = parse_xml(request.body)?;
    let quiet = document
        .child("Quiet")
        .is_some_and(|quiet| quiet.text == "true");
    let keys: Vec<&str> = document
        .children
        .iter()
        .filter(|child| child.name == "Object")
        .filter_map(|object| object.child("Key").map(|key| key.text.as_str()))
        .collect();
    if keys.len() > MAX_DELETE_KEYS {
        return Err(malformed("at most 1000 keys may be deleted at once"));
    }
    let mut result = Element::new("DeleteResult");
    for key in keys {
        match store.delete_object(bucket, key) {
            Ok(()) if quiet => {}
            Ok(()) => {
                result.push(Element::new("Deleted").with_child(Element::text("Key", key)));
            }
            Err(error) => {
                let refused = error_of(&error, key);
                result.push(
                    Element::new("Error")
                        .with_child(Element::text("Key", key))
                        .with_child(Element::text("Code", refused.code))
                        .with_child(Element::text("Message", refused.message)),
                );
            }
        }
    }
    Ok(xml(result))
}
