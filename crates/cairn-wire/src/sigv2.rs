//! S3's query-string authentication of Signature Version 2 (`AWSAccessKeyId`, `Expires`,
//! `Signature`): what botocore's and the aws CLI's presigners still make for S3 unless told
//! to use SigV4, so presigned URLs from real clients must verify. HMAC-SHA1 over the S3
//! string to sign ("Signing and authenticating REST requests": verb, Content-MD5,
//! Content-Type, Expires, the `x-amz-*` headers, the canonical resource), compared in
//! constant time. Only the query form is accepted, and only for S3.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use percent_encoding::percent_decode_str;
use sha1::Sha1;

use crate::s3_addressing::s3_virtual_host_bucket;
use crate::signing::constant_time_eq;
use crate::sigv4::{SignatureClaim, SignatureError, SignedRequest};

/// The query parameters that are S3 sub-resources: the canonical resource names them. The
/// list is the one botocore's `HmacV1Auth` signs, so that its presigned URLs verify.
const SUB_RESOURCES: &[&str] = &[
    "accelerate",
    "acl",
    "analytics",
    "cors",
    "defaultObjectAcl",
    "delete",
    "inventory",
    "lifecycle",
    "location",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "partNumber",
    "policy",
    "replication",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "select",
    "select-type",
    "storageClass",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
];

/// Query parameters a SigV2 signature does not cover that may still travel with it: its own
/// authentication, and listing filters that change which entries are shown but not what the
/// request does. Any other parameter (`?retention`, `?encryption`, `?id=`) could turn a
/// presigned URL into another operation or resource, so a request carrying one is refused.
const UNSIGNED_BUT_HARMLESS: &[&str] = &[
    "AWSAccessKeyId",
    "Expires",
    "Signature",
    "x-amz-security-token",
    "x-id",
    "bucket-region",
    "continuation-token",
    "delimiter",
    "encoding-type",
    "fetch-owner",
    "key-marker",
    "list-type",
    "marker",
    "max-buckets",
    "max-directory-buckets",
    "max-keys",
    "max-parts",
    "max-uploads",
    "part-number-marker",
    "prefix",
    "start-after",
    "upload-id-marker",
    "version-id-marker",
];

/// The claim of a SigV2 presigned URL, if the query is one.
pub(crate) fn parse_query(
    query: &[(String, String)],
) -> Option<Result<SignatureClaim, SignatureError>> {
    let get = |name: &str| {
        query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let access_key_id = get("AWSAccessKeyId")?;
    let claim = (|| {
        let incomplete = |name: &str| {
            SignatureError::Incomplete(format!(
                "Query-string authentication requires the {name} parameter"
            ))
        };
        let signature = get("Signature").ok_or_else(|| incomplete("Signature"))?;
        let expires: i64 = get("Expires")
            .ok_or_else(|| incomplete("Expires"))?
            .parse()
            .map_err(|_| SignatureError::Incomplete("Expires must be epoch seconds".into()))?;
        if access_key_id.is_empty() || signature.is_empty() {
            return Err(incomplete("AWSAccessKeyId and Signature"));
        }
        let mut unsigned: Vec<String> = query
            .iter()
            .map(|(key, _)| key.as_str())
            .filter(|key| !SUB_RESOURCES.contains(key) && !UNSIGNED_BUT_HARMLESS.contains(key))
            .map(str::to_owned)
            .collect();
        if !unsigned.is_empty() {
            unsigned.sort();
            unsigned.dedup();
            return Err(SignatureError::QueryNotSigned {
                access_key_id: access_key_id.to_owned(),
                names: unsigned,
            });
        }
        Ok(SignatureClaim {
            access_key_id: access_key_id.to_owned(),
            date: String::new(),
            // SigV2 names no region; the request is S3's wherever it is served.
            region: "us-east-1".to_owned(),
            service: "s3".to_owned(),
            signed_headers: Vec::new(),
            signature: signature.to_owned(),
            amz_date: String::new(),
            presigned_expires: None,
            session_token: get("x-amz-security-token").map(str::to_owned),
            presigned_payload: None,
            legacy_expires_at: Some(expires),
        })
    })();
    Some(claim)
}

/// Whether `claim`'s signature is `request`'s under `secret`. A virtual-hosted request's
/// resource starts with the bucket its `Host` names — read exactly as routing reads it, so
/// the signature covers the bucket that is served.
pub(crate) fn signature_matches(
    request: &SignedRequest<'_>,
    claim: &SignatureClaim,
    secret: &str,
) -> bool {
    let Ok(claimed) = STANDARD.decode(&claim.signature) else {
        return false;
    };
    let expires = claim.legacy_expires_at.unwrap_or_default();
    let path = if request.raw_path.is_empty() {
        "/"
    } else {
        request.raw_path
    };
    // botocore's auth path: `/bucket/` for the bucket itself, `/bucket/key` for an object.
    // A path-style request of the bucket itself is sent as `/bucket` but signed as
    // `/bucket/`; both readings name the same bucket.
    let mut resources = Vec::with_capacity(2);
    match header(request.headers, "host").and_then(s3_virtual_host_bucket) {
        Some(bucket) => resources.push(format!("/{bucket}{path}")),
        None => {
            resources.push(path.to_owned());
            let bucket_only = path.len() > 1 && !path[1..].contains('/');
            if bucket_only {
                resources.push(format!("{path}/"));
            }
        }
    }
    resources.iter().any(|resource| {
        let expected = sign(&string_to_sign(request, expires, resource, claim), secret);
        constant_time_eq(&expected, &claimed)
    })
}

fn string_to_sign(
    request: &SignedRequest<'_>,
    expires: i64,
    resource: &str,
    claim: &SignatureClaim,
) -> String {
    let mut amz: Vec<(String, String)> = request
        .headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("x-amz-"))
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).trim().to_owned(),
            )
        })
        .collect();
    // A session token travels in the query, and is signed as the header it stands for.
    if let Some(token) = &claim.session_token {
        if !amz.iter().any(|(name, _)| name == "x-amz-security-token") {
            amz.push(("x-amz-security-token".to_owned(), token.clone()));
        }
    }
    amz.sort();
    let mut canonical_amz = String::new();
    for (name, value) in &amz {
        canonical_amz.push_str(&format!("{name}:{value}\n"));
    }
    let mut sub_resources: Vec<(String, Option<String>)> = request
        .raw_query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| {
            let (key, value) = match pair.split_once('=') {
                Some((key, value)) => (key, Some(value)),
                None => (pair, None),
            };
            let key = percent_decode_str(key).decode_utf8_lossy().into_owned();
            SUB_RESOURCES.contains(&key.as_str()).then(|| {
                let value =
                    value.map(|value| percent_decode_str(value).decode_utf8_lossy().into_owned());
                (key, value)
            })
        })
        .collect();
    sub_resources.sort();
    let mut canonical_resource = resource.to_owned();
    for (index, (key, value)) in sub_resources.iter().enumerate() {
        canonical_resource.push(if index == 0 { '?' } else { '&' });
        canonical_resource.push_str(key);
        if let Some(value) = value {
            canonical_resource.push('=');
            canonical_resource.push_str(value);
        }
    }
    format!(
        "{}\n{}\n{}\n{expires}\n{canonical_amz}{canonical_resource}",
        request.method.as_str(),
        header(request.headers, "content-md5").unwrap_or_default(),
        header(request.headers, "content-type").unwrap_or_default(),
    )
}

fn sign(string_to_sign: &str, secret: &str) -> Vec<u8> {
    let mut mac =
        Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(string_to_sign.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderValue, Method};

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    fn request<'a>(
        method: &'a Method,
        host: &'static str,
        path: &'a str,
        query: &'a str,
        headers: &'a mut HeaderMap,
    ) -> SignedRequest<'a> {
        headers.insert("host", HeaderValue::from_static(host));
        SignedRequest {
            method,
            raw_path: path,
            raw_query: query,
            headers,
            body: b"",
        }
    }

    #[test]
    fn urls_from_botocores_presigner_verify_path_style_and_virtual_hosted() {
        // Made by botocore 1.43's presigner (HmacV1QueryAuth) for key AKIAIOSFODNN7EXAMPLE.
        let get = "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=UL5vXs9VhbdOpO5dwje5Pn4o6VQ%3D&Expires=1796003600";
        let put = "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=6YTZyxBEXF44OXb8Ttsat%2FavFi0%3D&Expires=1796003600";
        let cases = [
            (
                Method::GET,
                "127.0.0.1:4590",
                "/e2e-bucket/dir/a%20b.txt",
                get,
            ),
            (
                Method::GET,
                "e2e-bucket.s3.example.test",
                "/dir/a%20b.txt",
                get,
            ),
            (Method::PUT, "127.0.0.1:4590", "/e2e-bucket/up.txt", put),
            (Method::PUT, "e2e-bucket.s3.example.test", "/up.txt", put),
        ];
        for (method, host, path, query) in cases {
            let mut headers = HeaderMap::new();
            let request = request(&method, host, path, query, &mut headers);
            let claim = parse_query(&crate::form::decode_pairs(query))
                .unwrap()
                .unwrap();
            assert_eq!(claim.legacy_expires_at, Some(1_796_003_600));
            assert!(
                signature_matches(&request, &claim, SECRET),
                "{method} {host}{path}"
            );
            assert!(!signature_matches(&request, &claim, "another secret"));
        }
        let mut headers = HeaderMap::new();
        let moved = request(
            &Method::GET,
            "127.0.0.1:4590",
            "/e2e-bucket/dir/other.txt",
            get,
            &mut headers,
        );
        let claim = parse_query(&crate::form::decode_pairs(get))
            .unwrap()
            .unwrap();
        assert!(!signature_matches(&moved, &claim, SECRET), "another key");
        let mut headers = HeaderMap::new();
        let as_put = request(
            &Method::PUT,
            "127.0.0.1:4590",
            "/e2e-bucket/dir/a%20b.txt",
            get,
            &mut headers,
        );
        assert!(
            !signature_matches(&as_put, &claim, SECRET),
            "another method"
        );
    }

    #[test]
    fn incomplete_queries_are_refused_and_others_are_not_sigv2() {
        let pairs = crate::form::decode_pairs("AWSAccessKeyId=AKIA&Expires=soon&Signature=x");
        assert!(matches!(
            parse_query(&pairs),
            Some(Err(SignatureError::Incomplete(_)))
        ));
        let pairs = crate::form::decode_pairs("AWSAccessKeyId=AKIA&Expires=1");
        assert!(matches!(
            parse_query(&pairs),
            Some(Err(SignatureError::Incomplete(_)))
        ));
        assert!(parse_query(&crate::form::decode_pairs("prefix=x")).is_none());
    }

    #[test]
    fn parameters_the_signature_does_not_cover_are_refused_unless_harmless() {
        let auth = "AWSAccessKeyId=AKIA&Expires=1&Signature=x";
        for extra in [
            "retention",
            "legal-hold",
            "encryption",
            "id=other",
            "Retention",
        ] {
            let pairs = crate::form::decode_pairs(&format!("{auth}&{extra}"));
            match parse_query(&pairs) {
                Some(Err(SignatureError::QueryNotSigned { names, .. })) => {
                    assert_eq!(names.len(), 1, "{extra}")
                }
                other => panic!("{extra}: {other:?}"),
            }
        }
        for extra in ["prefix=a", "versionId=3", "tagging", "x-id=GetObject"] {
            let pairs = crate::form::decode_pairs(&format!("{auth}&{extra}"));
            assert!(matches!(parse_query(&pairs), Some(Ok(_))), "{extra}");
        }
    }

    #[test]
    fn a_signature_covers_the_bucket_routing_serves() {
        // Signed as path-style `GET /K` (list bucket K), then sent with a virtual-hosted Host:
        // served, that would be GetObject `victim/K`, so it must not verify.
        let query = "AWSAccessKeyId=AKIA&Expires=1796003600&Signature=placeholder";
        let pairs = crate::form::decode_pairs(query);
        let mut claim = parse_query(&pairs).unwrap().unwrap();
        let mut headers = HeaderMap::new();
        let path_style = request(&Method::GET, "127.0.0.1:4590", "/K", query, &mut headers);
        claim.signature = STANDARD.encode(sign(
            &string_to_sign(&path_style, 1_796_003_600, "/K", &claim),
            SECRET,
        ));
        assert!(signature_matches(&path_style, &claim, SECRET));
        let mut headers = HeaderMap::new();
        let rehosted = request(
            &Method::GET,
            "victim.s3.localhost",
            "/K",
            query,
            &mut headers,
        );
        assert!(!signature_matches(&rehosted, &claim, SECRET));
        let mut headers = HeaderMap::new();
        let one_label = request(
            &Method::GET,
            "victim.example.test",
            "/K",
            query,
            &mut headers,
        );
        assert!(
            signature_matches(&one_label, &claim, SECRET),
            "not an S3 host: path-style"
        );
    }
}
