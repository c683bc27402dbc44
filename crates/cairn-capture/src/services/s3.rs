//! S3 (S3 user guide, "Amazon S3 CloudTrail events"): the bucket is logged as `bucketName`
//! beside the `Host`; the object and its bucket are resources (the object without an
//! account, the bucket with its owner's; a listing names the prefix it covers); how the call
//! was signed and how many bytes moved go to `additionalEventData`; object calls are data
//! events; the lifecycle and notification calls are recorded under their older names, a
//! bucket's public access block is told from the account's, and ListObjectsV2 is recorded as
//! ListObjects with `list-type: 2` among its parameters (a real record in the OTRF dataset).

use serde_json::{json, Value};

use super::{member, CapturedCall, RecordResource, ServiceRules};

pub struct S3;

impl ServiceRules for S3 {
    fn id(&self) -> &'static str {
        "s3"
    }

    fn renamed_operations(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("ListObjectsV2", "ListObjects"),
            ("GetBucketLifecycleConfiguration", "GetBucketLifecycle"),
            ("PutBucketLifecycleConfiguration", "PutBucketLifecycle"),
            (
                "GetBucketNotificationConfiguration",
                "GetBucketNotification",
            ),
            (
                "PutBucketNotificationConfiguration",
                "PutBucketNotification",
            ),
            ("GetPublicAccessBlock", "GetBucketPublicAccessBlock"),
            ("PutPublicAccessBlock", "PutBucketPublicAccessBlock"),
            ("DeletePublicAccessBlock", "DeleteBucketPublicAccessBlock"),
        ]
    }

    fn is_data_event(&self, operation: &str) -> bool {
        DATA_EVENTS.contains(&operation)
    }

    fn record(&self, call: &mut CapturedCall) {
        record_bucket_and_object(call);
    }
}

/// Bucket listings whose resource is the prefix of the objects they cover.
/// The object-level operations CloudTrail logs as S3 data events (S3 user guide, "Amazon S3
/// CloudTrail events", object-level actions), and the object listings. Every other S3
/// operation is a bucket-level management event, `PutObjectLockConfiguration` and
/// `GetObjectLockConfiguration` included: they configure the bucket.
const DATA_EVENTS: &[&str] = &[
    "AbortMultipartUpload",
    "CompleteMultipartUpload",
    "CopyObject",
    "CreateMultipartUpload",
    "DeleteObject",
    "DeleteObjectTagging",
    "DeleteObjects",
    "GetObject",
    "GetObjectAcl",
    "GetObjectAttributes",
    "GetObjectLegalHold",
    "GetObjectRetention",
    "GetObjectTagging",
    "GetObjectTorrent",
    "HeadObject",
    "ListMultipartUploads",
    "ListObjectVersions",
    "ListObjects",
    "ListObjectsV2",
    "ListParts",
    "PutObject",
    "PutObjectAcl",
    "PutObjectLegalHold",
    "PutObjectRetention",
    "PutObjectTagging",
    "RestoreObject",
    "SelectObjectContent",
    "UploadPart",
    "UploadPartCopy",
    "WriteGetObjectResponse",
];

const S3_LISTINGS: &[&str] = &["ListObjects", "ListObjectsV2", "ListObjectVersions"];

/// S3 logs the bucket as `bucketName` beside the `Host`, the object and its bucket as
/// resources (the object without an account, the bucket with its owner's), and how the call
/// was signed and how many bytes moved in `additionalEventData`.
fn record_bucket_and_object(call: &mut CapturedCall) {
    // Every S3 call logs its Host, so even ListBuckets has parameters.
    let parameters = call.request_parameters.get_or_insert_with(|| json!({}));
    let Value::Object(parameters) = parameters else {
        return;
    };
    if let Some(bucket) = parameters.remove("bucket") {
        parameters.insert("bucketName".to_owned(), bucket);
    }
    if let Some(host) = &call.host {
        parameters.insert("Host".to_owned(), Value::String(host.clone()));
    }
    let bucket = member(call.request_parameters.as_ref(), "bucketName").map(str::to_owned);
    let key = member(call.request_parameters.as_ref(), "key").map(str::to_owned);
    if let Some(bucket) = bucket {
        let bucket_arn = format!("arn:aws:s3:::{bucket}");
        if let Some(key) = key {
            call.resources.push(RecordResource {
                arn: format!("{bucket_arn}/{key}"),
                account_id: None,
                resource_type: "AWS::S3::Object".to_owned(),
                arn_is_prefix: false,
            });
        } else if S3_LISTINGS.contains(&call.operation.as_str()) {
            let prefix = member(call.request_parameters.as_ref(), "prefix").unwrap_or("");
            call.resources.push(RecordResource {
                arn: format!("{bucket_arn}/{prefix}"),
                account_id: None,
                resource_type: "AWS::S3::Object".to_owned(),
                arn_is_prefix: true,
            });
        }
        call.resources.push(RecordResource {
            arn: bucket_arn,
            account_id: Some(call.account_id.clone()),
            resource_type: "AWS::S3::Bucket".to_owned(),
            arn_is_prefix: false,
        });
    }
    if let Some(transfer) = &call.transfer {
        let mut data = json!({
            "SignatureVersion": if transfer.legacy_signature { "SigV2" } else { "SigV4" },
            "AuthenticationMethod": if transfer.presigned { "QueryString" } else { "AuthHeader" },
        });
        if call
            .resources
            .iter()
            .any(|resource| resource.resource_type == "AWS::S3::Object")
        {
            data["bytesTransferredIn"] = json!(transfer.bytes_in as f64);
            data["bytesTransferredOut"] = json!(transfer.bytes_out as f64);
        }
        call.additional_event_data = Some(data);
    }
}

#[cfg(test)]
mod tests {
    use crate::services::{event_category, rules_for};
    use crate::RoutingTable;

    #[test]
    fn object_calls_are_data_events_and_bucket_configuration_is_management() {
        for operation in [
            "PutObject",
            "GetObject",
            "DeleteObjects",
            "UploadPart",
            "ListObjectsV2",
        ] {
            assert_eq!(event_category("s3", operation), "Data", "{operation}");
        }
        for operation in [
            "PutObjectLockConfiguration",
            "GetObjectLockConfiguration",
            "CreateBucket",
            "PutBucketPolicy",
            "ListBuckets",
        ] {
            assert_eq!(event_category("s3", operation), "Management", "{operation}");
        }
        let s3 = RoutingTable::builtin().service("s3").unwrap();
        let rules = rules_for("s3").unwrap();
        for operation in super::DATA_EVENTS {
            assert!(
                s3.operations.iter().any(|known| known == operation),
                "{operation} is not an S3 operation"
            );
            assert!(rules.is_data_event(operation));
        }
    }

    use serde_json::json;

    use crate::services::{apply, CapturedCall, Transfer};

    #[test]
    fn s3_object_calls_name_the_object_and_its_bucket() {
        let mut call = CapturedCall {
            service_id: "s3".into(),
            operation: "GetObject".into(),
            region: "us-east-1".into(),
            account_id: "111122223333".into(),
            request_parameters: Some(json!({"bucket": "b", "key": "dir/ring.txt"})),
            host: Some("127.0.0.1:4566".into()),
            transfer: Some(Transfer {
                presigned: false,
                legacy_signature: false,
                bytes_in: 0,
                bytes_out: 89,
            }),
            succeeded: true,
            read_only: true,
            ..CapturedCall::default()
        };
        apply(&mut call);
        assert_eq!(
            call.request_parameters,
            Some(json!({"key": "dir/ring.txt", "bucketName": "b", "Host": "127.0.0.1:4566"}))
        );
        assert_eq!(call.resources.len(), 2);
        assert_eq!(call.resources[0].arn, "arn:aws:s3:::b/dir/ring.txt");
        assert_eq!(call.resources[0].account_id, None);
        assert_eq!(call.resources[1].arn, "arn:aws:s3:::b");
        assert_eq!(
            call.resources[1].account_id.as_deref(),
            Some("111122223333")
        );
        assert_eq!(
            call.additional_event_data,
            Some(
                json!({"SignatureVersion": "SigV4", "AuthenticationMethod": "AuthHeader",
                        "bytesTransferredIn": 0.0, "bytesTransferredOut": 89.0})
            )
        );
    }

    #[test]
    fn s3_listings_name_an_arn_prefix_and_bucket_calls_the_bucket() {
        let mut listing = CapturedCall {
            service_id: "s3".into(),
            operation: "ListObjectsV2".into(),
            account_id: "111122223333".into(),
            request_parameters: Some(json!({"bucket": "b", "list-type": "2", "prefix": "logs/"})),
            ..CapturedCall::default()
        };
        apply(&mut listing);
        assert_eq!(listing.resources[0].arn, "arn:aws:s3:::b/logs/");
        assert!(listing.resources[0].arn_is_prefix);
        let mut create = CapturedCall {
            service_id: "s3".into(),
            operation: "CreateBucket".into(),
            account_id: "111122223333".into(),
            request_parameters: Some(json!({"bucket": "b"})),
            ..CapturedCall::default()
        };
        apply(&mut create);
        assert_eq!(create.resources.len(), 1);
        assert_eq!(create.resources[0].resource_type, "AWS::S3::Bucket");
        let mut buckets = CapturedCall {
            service_id: "s3".into(),
            operation: "ListBuckets".into(),
            host: Some("localhost".into()),
            ..CapturedCall::default()
        };
        apply(&mut buckets);
        assert_eq!(
            buckets.request_parameters,
            Some(json!({"Host": "localhost"}))
        );
        assert!(buckets.resources.is_empty());
    }
}
