//! Where CloudTrail's names for a call differ from the API's. Most calls are recorded under
//! their operation's name and `<endpointPrefix>.amazonaws.com`; a few services record others,
//! and rules and searches written against real trails use those (an EventBridge rule on
//! `UpdateFunctionConfiguration20150331v2` never sees `UpdateFunctionConfiguration`).
//!
//! Only names AWS documents, or that real records show, are here:
//!
//! - **Lambda** records most control-plane calls with the API version that introduced them
//!   (Lambda developer guide, "Logging Lambda API calls using CloudTrail", which lists each;
//!   it says so of GetFunction without listing it). GetFunctionConfiguration, GetPolicy,
//!   ListFunctions and ListVersionsByFunction are not in that list; their names are the ones
//!   real records carry.
//! - **S3** records the lifecycle and notification calls under their older names and
//!   tells a bucket's public access block from the account's (S3 user guide, "Amazon S3
//!   CloudTrail events"), and ListObjectsV2 as ListObjects (real records). S3 Control's calls
//!   are S3's events.

use crate::ServiceModel;

/// CloudTrail's `errorCode` for an error `service` answered with `code` and HTTP `status`.
/// EC2's records prefix the code with who was at fault (`Client.UnauthorizedOperation`,
/// `Server.InternalError`); IAM's use the exception's name (`NoSuchEntityException`,
/// `EntityTemporarilyUnmodifiableException`), from the model (real records of both). A
/// refused authorization is `AccessDenied` whatever the service's protocol calls it (real
/// Organizations records, and Lambda's guide, record `AccessDeniedException` so).
pub fn error_code(service: &ServiceModel, code: &str, status: u16) -> String {
    if service.id == "ec2" {
        let fault = if status >= 500 { "Server" } else { "Client" };
        return format!("{fault}.{code}");
    }
    if code == "AccessDeniedException" {
        return "AccessDenied".to_owned();
    }
    service
        .error_names
        .get(code)
        .cloned()
        .unwrap_or_else(|| code.to_owned())
}

/// (service id, operation, eventName), one row per renamed operation.
const RENAMED_OPERATIONS: &[(&str, &str, &str)] = &[
    ("lambda", "AddPermission", "AddPermission20150331v2"),
    ("lambda", "CreateAlias", "CreateAlias20150331"),
    (
        "lambda",
        "CreateEventSourceMapping",
        "CreateEventSourceMapping20150331",
    ),
    ("lambda", "CreateFunction", "CreateFunction20150331"),
    ("lambda", "DeleteAlias", "DeleteAlias20150331"),
    (
        "lambda",
        "DeleteEventSourceMapping",
        "DeleteEventSourceMapping20150331",
    ),
    ("lambda", "DeleteFunction", "DeleteFunction20150331"),
    (
        "lambda",
        "DeleteFunctionConcurrency",
        "DeleteFunctionConcurrency20171031",
    ),
    ("lambda", "GetAlias", "GetAlias20150331"),
    ("lambda", "GetFunction", "GetFunction20150331v2"),
    (
        "lambda",
        "GetFunctionConfiguration",
        "GetFunctionConfiguration20150331v2",
    ),
    ("lambda", "GetPolicy", "GetPolicy20150331v2"),
    ("lambda", "ListFunctions", "ListFunctions20150331"),
    (
        "lambda",
        "ListVersionsByFunction",
        "ListVersionsByFunction20150331",
    ),
    (
        "lambda",
        "PublishLayerVersion",
        "PublishLayerVersion20181031",
    ),
    ("lambda", "PublishVersion", "PublishVersion20150331"),
    (
        "lambda",
        "PutFunctionConcurrency",
        "PutFunctionConcurrency20171031",
    ),
    ("lambda", "RemovePermission", "RemovePermission20150331v2"),
    ("lambda", "TagResource", "TagResource20170331v2"),
    ("lambda", "UntagResource", "UntagResource20170331v2"),
    ("lambda", "UpdateAlias", "UpdateAlias20150331"),
    (
        "lambda",
        "UpdateEventSourceMapping",
        "UpdateEventSourceMapping20150331",
    ),
    (
        "lambda",
        "UpdateFunctionCode",
        "UpdateFunctionCode20150331v2",
    ),
    (
        "lambda",
        "UpdateFunctionConfiguration",
        "UpdateFunctionConfiguration20150331v2",
    ),
    // Version 2 of the listing is recorded as the listing, `list-type: 2` among its parameters
    // (a real record in the OTRF dataset).
    ("s3", "ListObjectsV2", "ListObjects"),
    (
        "s3",
        "GetBucketLifecycleConfiguration",
        "GetBucketLifecycle",
    ),
    (
        "s3",
        "PutBucketLifecycleConfiguration",
        "PutBucketLifecycle",
    ),
    (
        "s3",
        "GetBucketNotificationConfiguration",
        "GetBucketNotification",
    ),
    (
        "s3",
        "PutBucketNotificationConfiguration",
        "PutBucketNotification",
    ),
    ("s3", "GetPublicAccessBlock", "GetBucketPublicAccessBlock"),
    ("s3", "PutPublicAccessBlock", "PutBucketPublicAccessBlock"),
    (
        "s3",
        "DeletePublicAccessBlock",
        "DeleteBucketPublicAccessBlock",
    ),
    (
        "s3control",
        "GetPublicAccessBlock",
        "GetAccountPublicAccessBlock",
    ),
    (
        "s3control",
        "PutPublicAccessBlock",
        "PutAccountPublicAccessBlock",
    ),
    (
        "s3control",
        "DeletePublicAccessBlock",
        "DeleteAccountPublicAccessBlock",
    ),
];

/// (service id, eventSource) for services whose events are another service's.
const EVENT_SOURCES: &[(&str, &str)] = &[("s3control", "s3.amazonaws.com")];

/// The `eventName` CloudTrail records for `operation` of the service `service_id`.
pub fn event_name<'a>(service_id: &str, operation: &'a str) -> &'a str {
    RENAMED_OPERATIONS
        .iter()
        .find(|(service, renamed, _)| *service == service_id && *renamed == operation)
        .map_or(operation, |(_, _, event_name)| event_name)
}

/// The `eventSource` CloudTrail records for calls to `service_id`, whose endpoint prefix is
/// `endpoint_prefix`.
pub fn event_source(service_id: &str, endpoint_prefix: &str) -> String {
    EVENT_SOURCES
        .iter()
        .find(|(service, _)| *service == service_id)
        .map_or_else(
            || format!("{endpoint_prefix}.amazonaws.com"),
            |(_, source)| (*source).to_owned(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RoutingTable;

    #[test]
    fn error_codes_are_recorded_as_ec2_and_iam_record_them() {
        let table = RoutingTable::builtin();
        let service = |id: &str| table.service(id).unwrap();
        assert_eq!(
            service("ec2").error_code("UnauthorizedOperation", 403),
            "Client.UnauthorizedOperation"
        );
        assert_eq!(
            service("ec2").error_code("InternalError", 500),
            "Server.InternalError"
        );
        assert_eq!(
            service("iam").error_code("EntityTemporarilyUnmodifiable", 409),
            "EntityTemporarilyUnmodifiableException"
        );
        assert_eq!(
            service("iam").error_code("NoSuchEntity", 404),
            "NoSuchEntityException"
        );
        assert_eq!(
            service("iam").error_code("AccessDenied", 403),
            "AccessDenied",
            "a code the model has no exception for stays as it is"
        );
        assert_eq!(
            service("organizations").error_code("AccessDeniedException", 400),
            "AccessDenied"
        );
        assert_eq!(
            service("sns").error_code("NotFound", 404),
            "NotFound",
            "other services' records keep the wire code"
        );
    }

    #[test]
    fn renamed_operations_keep_other_services_and_operations_as_they_are() {
        assert_eq!(
            event_name("lambda", "UpdateFunctionConfiguration"),
            "UpdateFunctionConfiguration20150331v2"
        );
        assert_eq!(event_name("lambda", "Invoke"), "Invoke");
        assert_eq!(event_name("s3", "ListObjectsV2"), "ListObjects");
        assert_eq!(
            event_name("s3", "PutBucketLifecycleConfiguration"),
            "PutBucketLifecycle"
        );
        assert_eq!(
            event_name("s3control", "PutPublicAccessBlock"),
            "PutAccountPublicAccessBlock"
        );
        assert_eq!(event_name("kms", "TagResource"), "TagResource");
        assert_eq!(event_source("s3control", "s3-control"), "s3.amazonaws.com");
        assert_eq!(event_source("kms", "kms"), "kms.amazonaws.com");
    }

    #[test]
    fn every_renamed_operation_is_one_the_routing_table_knows() {
        let table = RoutingTable::builtin();
        for (service_id, operation, _) in RENAMED_OPERATIONS {
            let service = table
                .service(service_id)
                .unwrap_or_else(|| panic!("{service_id} is not in the routing table"));
            assert!(
                service.operations.iter().any(|known| known == operation),
                "{service_id} has no operation {operation}"
            );
        }
    }
}
