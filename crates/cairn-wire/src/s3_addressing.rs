//! How an S3 request names its bucket: in `Host` (virtual-hosted style) or as the first
//! path segment (path style). Routing, recording and SigV2's canonical resource all read it
//! from here, so the bucket a signature covers is the bucket that is served.

/// The bucket a virtual-hosted-style S3 request names in its `Host` (`bucket.s3.amazonaws.com`,
/// `bucket.s3.us-east-1.amazonaws.com`, `bucket.s3-us-west-2.amazonaws.com`,
/// `bucket.s3.localhost.localstack.cloud`, `bucket.localhost`), or `None` for a path-style
/// request. Bucket names may contain dots, so the bucket is everything before the S3
/// endpoint's own labels, not the first label. An IP address is never virtual-hosted.
pub fn s3_virtual_host_bucket(host: &str) -> Option<&str> {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|byte| byte.is_ascii_digit()) => name,
        _ => host,
    };
    if name.starts_with('[') || name.parse::<std::net::Ipv4Addr>().is_ok() {
        return None;
    }
    let bucket = if let Some(bucket) = name.strip_suffix(".localhost") {
        bucket
    } else {
        // The S3 endpoint starts at the first label that is `s3` or `s3-<region>`.
        let mut offset = 0;
        let mut found = None;
        for label in name.split('.') {
            if label == "s3" || label.starts_with("s3-") {
                found = Some(offset);
                break;
            }
            offset += label.len() + 1;
        }
        let start = found?;
        name.get(..start.checked_sub(1)?)?
    };
    (!bucket.is_empty() && bucket != "s3").then_some(bucket)
}

/// The path a path-style request for the same call would have: routing and path labels
/// read the bucket from it.
pub fn s3_path_style_path(bucket: &str, raw_path: &str) -> String {
    if raw_path == "/" || raw_path.is_empty() {
        format!("/{bucket}")
    } else {
        format!("/{bucket}{raw_path}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_hosted_s3_hosts_name_their_bucket() {
        let cases = [
            ("photos.s3.amazonaws.com", Some("photos")),
            ("photos.s3.us-east-1.amazonaws.com", Some("photos")),
            (
                "my.dotted.bucket.s3-us-west-2.amazonaws.com",
                Some("my.dotted.bucket"),
            ),
            (
                "photos.s3.dualstack.eu-west-1.amazonaws.com",
                Some("photos"),
            ),
            ("photos.s3.localhost.localstack.cloud:4566", Some("photos")),
            ("photos.localhost:9000", Some("photos")),
            ("s3.amazonaws.com", None),
            ("s3.us-east-1.amazonaws.com", None),
            ("localhost:4566", None),
            ("127.0.0.1:4566", None),
            ("[::1]:4566", None),
            ("cairn.internal:8080", None),
        ];
        for (host, bucket) in cases {
            assert_eq!(s3_virtual_host_bucket(host), bucket, "{host}");
        }
        assert_eq!(s3_path_style_path("photos", "/"), "/photos");
        assert_eq!(s3_path_style_path("photos", "/a/b.txt"), "/photos/a/b.txt");
    }
}
