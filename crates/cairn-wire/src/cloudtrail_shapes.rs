//! CloudTrail's served operations as Rust types, generated from botocore 1.43.11's
//! model by `crates/cairn-capture/tools/generate_routing_table.py`: do not edit; regenerate.
//! Members keep the model's names on the wire (`rename`) and its required/optional split.

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AddTagsRequest {
    #[serde(rename = "ResourceId")]
    pub resource_id: String,
    #[serde(rename = "TagsList")]
    pub tags_list: Vec<Tag>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AddTagsResponse {}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CreateTrailRequest {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "S3BucketName")]
    pub s3_bucket_name: String,
    #[serde(
        rename = "S3KeyPrefix",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub s3_key_prefix: Option<String>,
    #[serde(
        rename = "SnsTopicName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub sns_topic_name: Option<String>,
    #[serde(
        rename = "IncludeGlobalServiceEvents",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub include_global_service_events: Option<bool>,
    #[serde(
        rename = "IsMultiRegionTrail",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub is_multi_region_trail: Option<bool>,
    #[serde(
        rename = "EnableLogFileValidation",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub enable_log_file_validation: Option<bool>,
    #[serde(
        rename = "CloudWatchLogsLogGroupArn",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cloud_watch_logs_log_group_arn: Option<String>,
    #[serde(
        rename = "CloudWatchLogsRoleArn",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cloud_watch_logs_role_arn: Option<String>,
    #[serde(rename = "KmsKeyId", default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    #[serde(
        rename = "IsOrganizationTrail",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub is_organization_trail: Option<bool>,
    #[serde(rename = "TagsList", default, skip_serializing_if = "Option::is_none")]
    pub tags_list: Option<Vec<Tag>>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CreateTrailResponse {
    #[serde(rename = "Name", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(
        rename = "S3BucketName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub s3_bucket_name: Option<String>,
    #[serde(
        rename = "S3KeyPrefix",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub s3_key_prefix: Option<String>,
    #[serde(
        rename = "SnsTopicName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub sns_topic_name: Option<String>,
    #[serde(
        rename = "SnsTopicARN",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub sns_topic_arn: Option<String>,
    #[serde(
        rename = "IncludeGlobalServiceEvents",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub include_global_service_events: Option<bool>,
    #[serde(
        rename = "IsMultiRegionTrail",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub is_multi_region_trail: Option<bool>,
    #[serde(rename = "TrailARN", default, skip_serializing_if = "Option::is_none")]
    pub trail_arn: Option<String>,
    #[serde(
        rename = "LogFileValidationEnabled",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub log_file_validation_enabled: Option<bool>,
    #[serde(
        rename = "CloudWatchLogsLogGroupArn",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cloud_watch_logs_log_group_arn: Option<String>,
    #[serde(
        rename = "CloudWatchLogsRoleArn",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cloud_watch_logs_role_arn: Option<String>,
    #[serde(rename = "KmsKeyId", default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    #[serde(
        rename = "IsOrganizationTrail",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub is_organization_trail: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DeleteTrailRequest {
    #[serde(rename = "Name")]
    pub name: String,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DeleteTrailResponse {}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DescribeTrailsRequest {
    #[serde(
        rename = "trailNameList",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub trail_name_list: Option<Vec<String>>,
    #[serde(
        rename = "includeShadowTrails",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub include_shadow_trails: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DescribeTrailsResponse {
    #[serde(rename = "trailList", default, skip_serializing_if = "Option::is_none")]
    pub trail_list: Option<Vec<Trail>>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GetEventSelectorsRequest {
    #[serde(rename = "TrailName")]
    pub trail_name: String,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GetEventSelectorsResponse {
    #[serde(rename = "TrailARN", default, skip_serializing_if = "Option::is_none")]
    pub trail_arn: Option<String>,
    #[serde(
        rename = "EventSelectors",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub event_selectors: Option<Vec<EventSelector>>,
    #[serde(
        rename = "AdvancedEventSelectors",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub advanced_event_selectors: Option<Vec<AdvancedEventSelector>>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GetInsightSelectorsRequest {
    #[serde(rename = "TrailName", default, skip_serializing_if = "Option::is_none")]
    pub trail_name: Option<String>,
    #[serde(
        rename = "EventDataStore",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub event_data_store: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GetInsightSelectorsResponse {
    #[serde(rename = "TrailARN", default, skip_serializing_if = "Option::is_none")]
    pub trail_arn: Option<String>,
    #[serde(
        rename = "InsightSelectors",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub insight_selectors: Option<Vec<InsightSelector>>,
    #[serde(
        rename = "EventDataStoreArn",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub event_data_store_arn: Option<String>,
    #[serde(
        rename = "InsightsDestination",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub insights_destination: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GetTrailRequest {
    #[serde(rename = "Name")]
    pub name: String,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GetTrailResponse {
    #[serde(rename = "Trail", default, skip_serializing_if = "Option::is_none")]
    pub trail: Option<Trail>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GetTrailStatusRequest {
    #[serde(rename = "Name")]
    pub name: String,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GetTrailStatusResponse {
    #[serde(rename = "IsLogging", default, skip_serializing_if = "Option::is_none")]
    pub is_logging: Option<bool>,
    #[serde(
        rename = "LatestDeliveryError",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub latest_delivery_error: Option<String>,
    #[serde(
        rename = "LatestNotificationError",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub latest_notification_error: Option<String>,
    #[serde(
        rename = "LatestDeliveryTime",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub latest_delivery_time: Option<f64>,
    #[serde(
        rename = "LatestNotificationTime",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub latest_notification_time: Option<f64>,
    #[serde(
        rename = "StartLoggingTime",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub start_logging_time: Option<f64>,
    #[serde(
        rename = "StopLoggingTime",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub stop_logging_time: Option<f64>,
    #[serde(
        rename = "LatestCloudWatchLogsDeliveryError",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub latest_cloud_watch_logs_delivery_error: Option<String>,
    #[serde(
        rename = "LatestCloudWatchLogsDeliveryTime",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub latest_cloud_watch_logs_delivery_time: Option<f64>,
    #[serde(
        rename = "LatestDigestDeliveryTime",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub latest_digest_delivery_time: Option<f64>,
    #[serde(
        rename = "LatestDigestDeliveryError",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub latest_digest_delivery_error: Option<String>,
    #[serde(
        rename = "LatestDeliveryAttemptTime",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub latest_delivery_attempt_time: Option<String>,
    #[serde(
        rename = "LatestNotificationAttemptTime",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub latest_notification_attempt_time: Option<String>,
    #[serde(
        rename = "LatestNotificationAttemptSucceeded",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub latest_notification_attempt_succeeded: Option<String>,
    #[serde(
        rename = "LatestDeliveryAttemptSucceeded",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub latest_delivery_attempt_succeeded: Option<String>,
    #[serde(
        rename = "TimeLoggingStarted",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub time_logging_started: Option<String>,
    #[serde(
        rename = "TimeLoggingStopped",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub time_logging_stopped: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ListPublicKeysRequest {
    #[serde(rename = "StartTime", default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<f64>,
    #[serde(rename = "EndTime", default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<f64>,
    #[serde(rename = "NextToken", default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ListPublicKeysResponse {
    #[serde(
        rename = "PublicKeyList",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub public_key_list: Option<Vec<PublicKey>>,
    #[serde(rename = "NextToken", default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ListTagsRequest {
    #[serde(rename = "ResourceIdList")]
    pub resource_id_list: Vec<String>,
    #[serde(rename = "NextToken", default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ListTagsResponse {
    #[serde(
        rename = "ResourceTagList",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub resource_tag_list: Option<Vec<ResourceTag>>,
    #[serde(rename = "NextToken", default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ListTrailsRequest {
    #[serde(rename = "NextToken", default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ListTrailsResponse {
    #[serde(rename = "Trails", default, skip_serializing_if = "Option::is_none")]
    pub trails: Option<Vec<TrailInfo>>,
    #[serde(rename = "NextToken", default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PutEventSelectorsRequest {
    #[serde(rename = "TrailName")]
    pub trail_name: String,
    #[serde(
        rename = "EventSelectors",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub event_selectors: Option<Vec<EventSelector>>,
    #[serde(
        rename = "AdvancedEventSelectors",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub advanced_event_selectors: Option<Vec<AdvancedEventSelector>>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PutEventSelectorsResponse {
    #[serde(rename = "TrailARN", default, skip_serializing_if = "Option::is_none")]
    pub trail_arn: Option<String>,
    #[serde(
        rename = "EventSelectors",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub event_selectors: Option<Vec<EventSelector>>,
    #[serde(
        rename = "AdvancedEventSelectors",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub advanced_event_selectors: Option<Vec<AdvancedEventSelector>>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PutInsightSelectorsRequest {
    #[serde(rename = "TrailName", default, skip_serializing_if = "Option::is_none")]
    pub trail_name: Option<String>,
    #[serde(rename = "InsightSelectors")]
    pub insight_selectors: Vec<InsightSelector>,
    #[serde(
        rename = "EventDataStore",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub event_data_store: Option<String>,
    #[serde(
        rename = "InsightsDestination",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub insights_destination: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PutInsightSelectorsResponse {
    #[serde(rename = "TrailARN", default, skip_serializing_if = "Option::is_none")]
    pub trail_arn: Option<String>,
    #[serde(
        rename = "InsightSelectors",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub insight_selectors: Option<Vec<InsightSelector>>,
    #[serde(
        rename = "EventDataStoreArn",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub event_data_store_arn: Option<String>,
    #[serde(
        rename = "InsightsDestination",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub insights_destination: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RemoveTagsRequest {
    #[serde(rename = "ResourceId")]
    pub resource_id: String,
    #[serde(rename = "TagsList")]
    pub tags_list: Vec<Tag>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RemoveTagsResponse {}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StartLoggingRequest {
    #[serde(rename = "Name")]
    pub name: String,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StartLoggingResponse {}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StopLoggingRequest {
    #[serde(rename = "Name")]
    pub name: String,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StopLoggingResponse {}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UpdateTrailRequest {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(
        rename = "S3BucketName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub s3_bucket_name: Option<String>,
    #[serde(
        rename = "S3KeyPrefix",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub s3_key_prefix: Option<String>,
    #[serde(
        rename = "SnsTopicName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub sns_topic_name: Option<String>,
    #[serde(
        rename = "IncludeGlobalServiceEvents",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub include_global_service_events: Option<bool>,
    #[serde(
        rename = "IsMultiRegionTrail",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub is_multi_region_trail: Option<bool>,
    #[serde(
        rename = "EnableLogFileValidation",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub enable_log_file_validation: Option<bool>,
    #[serde(
        rename = "CloudWatchLogsLogGroupArn",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cloud_watch_logs_log_group_arn: Option<String>,
    #[serde(
        rename = "CloudWatchLogsRoleArn",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cloud_watch_logs_role_arn: Option<String>,
    #[serde(rename = "KmsKeyId", default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    #[serde(
        rename = "IsOrganizationTrail",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub is_organization_trail: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UpdateTrailResponse {
    #[serde(rename = "Name", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(
        rename = "S3BucketName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub s3_bucket_name: Option<String>,
    #[serde(
        rename = "S3KeyPrefix",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub s3_key_prefix: Option<String>,
    #[serde(
        rename = "SnsTopicName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub sns_topic_name: Option<String>,
    #[serde(
        rename = "SnsTopicARN",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub sns_topic_arn: Option<String>,
    #[serde(
        rename = "IncludeGlobalServiceEvents",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub include_global_service_events: Option<bool>,
    #[serde(
        rename = "IsMultiRegionTrail",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub is_multi_region_trail: Option<bool>,
    #[serde(rename = "TrailARN", default, skip_serializing_if = "Option::is_none")]
    pub trail_arn: Option<String>,
    #[serde(
        rename = "LogFileValidationEnabled",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub log_file_validation_enabled: Option<bool>,
    #[serde(
        rename = "CloudWatchLogsLogGroupArn",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cloud_watch_logs_log_group_arn: Option<String>,
    #[serde(
        rename = "CloudWatchLogsRoleArn",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cloud_watch_logs_role_arn: Option<String>,
    #[serde(rename = "KmsKeyId", default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    #[serde(
        rename = "IsOrganizationTrail",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub is_organization_trail: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Tag {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "Value", default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Trail {
    #[serde(rename = "Name", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(
        rename = "S3BucketName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub s3_bucket_name: Option<String>,
    #[serde(
        rename = "S3KeyPrefix",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub s3_key_prefix: Option<String>,
    #[serde(
        rename = "SnsTopicName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub sns_topic_name: Option<String>,
    #[serde(
        rename = "SnsTopicARN",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub sns_topic_arn: Option<String>,
    #[serde(
        rename = "IncludeGlobalServiceEvents",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub include_global_service_events: Option<bool>,
    #[serde(
        rename = "IsMultiRegionTrail",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub is_multi_region_trail: Option<bool>,
    #[serde(
        rename = "HomeRegion",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub home_region: Option<String>,
    #[serde(rename = "TrailARN", default, skip_serializing_if = "Option::is_none")]
    pub trail_arn: Option<String>,
    #[serde(
        rename = "LogFileValidationEnabled",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub log_file_validation_enabled: Option<bool>,
    #[serde(
        rename = "CloudWatchLogsLogGroupArn",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cloud_watch_logs_log_group_arn: Option<String>,
    #[serde(
        rename = "CloudWatchLogsRoleArn",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cloud_watch_logs_role_arn: Option<String>,
    #[serde(rename = "KmsKeyId", default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    #[serde(
        rename = "HasCustomEventSelectors",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub has_custom_event_selectors: Option<bool>,
    #[serde(
        rename = "HasInsightSelectors",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub has_insight_selectors: Option<bool>,
    #[serde(
        rename = "IsOrganizationTrail",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub is_organization_trail: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EventSelector {
    #[serde(
        rename = "ReadWriteType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub read_write_type: Option<String>,
    #[serde(
        rename = "IncludeManagementEvents",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub include_management_events: Option<bool>,
    #[serde(
        rename = "DataResources",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub data_resources: Option<Vec<DataResource>>,
    #[serde(
        rename = "ExcludeManagementEventSources",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub exclude_management_event_sources: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdvancedEventSelector {
    #[serde(rename = "Name", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "FieldSelectors")]
    pub field_selectors: Vec<AdvancedFieldSelector>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InsightSelector {
    #[serde(
        rename = "InsightType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub insight_type: Option<String>,
    #[serde(
        rename = "EventCategories",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub event_categories: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PublicKey {
    #[serde(rename = "Value", default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(
        rename = "ValidityStartTime",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub validity_start_time: Option<f64>,
    #[serde(
        rename = "ValidityEndTime",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub validity_end_time: Option<f64>,
    #[serde(
        rename = "Fingerprint",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub fingerprint: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ResourceTag {
    #[serde(
        rename = "ResourceId",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub resource_id: Option<String>,
    #[serde(rename = "TagsList", default, skip_serializing_if = "Option::is_none")]
    pub tags_list: Option<Vec<Tag>>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrailInfo {
    #[serde(rename = "TrailARN", default, skip_serializing_if = "Option::is_none")]
    pub trail_arn: Option<String>,
    #[serde(rename = "Name", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(
        rename = "HomeRegion",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub home_region: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DataResource {
    #[serde(rename = "Type", default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
    #[serde(rename = "Values", default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdvancedFieldSelector {
    #[serde(rename = "Field")]
    pub field: String,
    #[serde(rename = "Equals", default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<Vec<String>>,
    #[serde(
        rename = "StartsWith",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub starts_with: Option<Vec<String>>,
    #[serde(rename = "EndsWith", default, skip_serializing_if = "Option::is_none")]
    pub ends_with: Option<Vec<String>>,
    #[serde(rename = "NotEquals", default, skip_serializing_if = "Option::is_none")]
    pub not_equals: Option<Vec<String>>,
    #[serde(
        rename = "NotStartsWith",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub not_starts_with: Option<Vec<String>>,
    #[serde(
        rename = "NotEndsWith",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub not_ends_with: Option<Vec<String>>,
}

/// A request to one of the CloudTrail operations Cairn serves, its members typed.
// The variants are as large as their operations' inputs; a request is parsed once per call.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum TrailRequest {
    AddTags(AddTagsRequest),
    CreateTrail(CreateTrailRequest),
    DeleteTrail(DeleteTrailRequest),
    DescribeTrails(DescribeTrailsRequest),
    GetEventSelectors(GetEventSelectorsRequest),
    GetInsightSelectors(GetInsightSelectorsRequest),
    GetTrail(GetTrailRequest),
    GetTrailStatus(GetTrailStatusRequest),
    ListPublicKeys(ListPublicKeysRequest),
    ListTags(ListTagsRequest),
    ListTrails(ListTrailsRequest),
    PutEventSelectors(PutEventSelectorsRequest),
    PutInsightSelectors(PutInsightSelectorsRequest),
    RemoveTags(RemoveTagsRequest),
    StartLogging(StartLoggingRequest),
    StopLogging(StopLoggingRequest),
    UpdateTrail(UpdateTrailRequest),
}

impl TrailRequest {
    /// The operations with a variant, by their model names.
    pub const SERVED: &'static [&'static str] = &[
        "AddTags",
        "CreateTrail",
        "DeleteTrail",
        "DescribeTrails",
        "GetEventSelectors",
        "GetInsightSelectors",
        "GetTrail",
        "GetTrailStatus",
        "ListPublicKeys",
        "ListTags",
        "ListTrails",
        "PutEventSelectors",
        "PutInsightSelectors",
        "RemoveTags",
        "StartLogging",
        "StopLogging",
        "UpdateTrail",
    ];

    /// `members` (a request body that passed the model's check) as `operation`'s request;
    /// `None` for an operation Cairn does not serve.
    pub fn parse(
        operation: &str,
        members: serde_json::Value,
    ) -> Option<Result<Self, serde_json::Error>> {
        let parsed = (|| {
            Ok(Some(match operation {
                "AddTags" => Self::AddTags(serde_json::from_value(members)?),
                "CreateTrail" => Self::CreateTrail(serde_json::from_value(members)?),
                "DeleteTrail" => Self::DeleteTrail(serde_json::from_value(members)?),
                "DescribeTrails" => Self::DescribeTrails(serde_json::from_value(members)?),
                "GetEventSelectors" => Self::GetEventSelectors(serde_json::from_value(members)?),
                "GetInsightSelectors" => {
                    Self::GetInsightSelectors(serde_json::from_value(members)?)
                }
                "GetTrail" => Self::GetTrail(serde_json::from_value(members)?),
                "GetTrailStatus" => Self::GetTrailStatus(serde_json::from_value(members)?),
                "ListPublicKeys" => Self::ListPublicKeys(serde_json::from_value(members)?),
                "ListTags" => Self::ListTags(serde_json::from_value(members)?),
                "ListTrails" => Self::ListTrails(serde_json::from_value(members)?),
                "PutEventSelectors" => Self::PutEventSelectors(serde_json::from_value(members)?),
                "PutInsightSelectors" => {
                    Self::PutInsightSelectors(serde_json::from_value(members)?)
                }
                "RemoveTags" => Self::RemoveTags(serde_json::from_value(members)?),
                "StartLogging" => Self::StartLogging(serde_json::from_value(members)?),
                "StopLogging" => Self::StopLogging(serde_json::from_value(members)?),
                "UpdateTrail" => Self::UpdateTrail(serde_json::from_value(members)?),
                _ => return Ok(None),
            }))
        })();
        parsed.transpose()
    }
}
