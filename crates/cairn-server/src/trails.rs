//! The trail API (CloudTrail's CreateTrail … ListTags): requests checked against the model,
//! then against CloudTrail's own rules and exceptions; trails kept as state (`trails`,
//! keyed by ARN), every change committed in the same commit as the call's own event, so a
//! trail and the record of the call that made it are durable together. Names resolve in the
//! caller's account and region; an ARN resolves anywhere; a multi-region trail shows as a
//! shadow trail in every other region and is changed only from its home region.

use cairn_model::trail::{
    check_trail_name, is_valid_bucket_name, parse_trail_arn, trail_arn, AdvancedEventSelector,
    DataResource, EventSelector, FieldSelector, InsightSelector, ReadWriteType, Selectors, Trail,
};
use cairn_model::StateChange;
use cairn_wire::AwsError;
use serde_json::{json, Map, Value};

use crate::AppState;

use base64::Engine;
use cairn_delivery::{TRAILS, TRAIL_DELIVERY, TRAIL_STATUS};

const MAX_TRAILS_PER_REGION: usize = 5;
const MAX_TAGS: usize = 50;
const MAX_PREFIX_CHARS: usize = 200;
const LIST_PAGE: usize = 50;

/// What a trail call answers, and the state changes to commit with its event.
pub(crate) struct TrailAnswer {
    pub body: Value,
    pub changes: Vec<StateChange>,
}

impl TrailAnswer {
    fn read(body: Value) -> Self {
        Self {
            body,
            changes: Vec::new(),
        }
    }
}

/// Who asks, and where: trails are per account and region.
pub(crate) struct Asking<'a> {
    pub account_id: &'a str,
    pub region: &'a str,
    pub now_millis: i64,
    /// The eventID the call will be recorded with: StopLogging names its period's end by it.
    pub event_id: &'a str,
}

fn error(code: &str, message: impl Into<String>) -> AwsError {
    AwsError::new(code, message)
}

fn text<'m>(members: &'m Map<String, Value>, name: &str) -> Option<&'m str> {
    members.get(name).and_then(Value::as_str)
}

fn flag(members: &Map<String, Value>, name: &str) -> Option<bool> {
    members.get(name).and_then(Value::as_bool)
}

/// Every trail Cairn keeps.
pub(crate) async fn all_trails(state: &AppState) -> Result<Vec<Trail>, AwsError> {
    let store = state.store.clone();
    let entries = tokio::task::spawn_blocking(move || store.state(TRAILS))
        .await
        .map_err(|_| AwsError::internal_failure())?
        .map_err(|error| {
            tracing::error!(%error, "cannot read trails");
            AwsError::internal_failure()
        })?;
    Ok(entries
        .into_iter()
        .filter_map(|(arn, value)| match serde_json::from_str::<Trail>(&value) {
            Ok(trail) => Some(trail),
            Err(error) => {
                tracing::error!(%error, %arn, "a stored trail cannot be read; it is left out");
                None
            }
        })
        .collect())
}

fn put(trail: &Trail) -> StateChange {
    StateChange::put(
        TRAILS,
        trail.arn(),
        serde_json::to_string(trail).unwrap_or_default(),
    )
}

/// The trail `name_or_arn` names for `asking`: a name in the caller's account and region
/// (a multi-region trail's shadow included), or an ARN anywhere.
fn resolve<'t>(
    trails: &'t [Trail],
    name_or_arn: &str,
    asking: &Asking<'_>,
) -> Result<&'t Trail, AwsError> {
    let not_found = || {
        error(
            "TrailNotFoundException",
            format!(
                "Unknown trail: {name_or_arn} for the user: {}",
                asking.account_id
            ),
        )
    };
    if name_or_arn.starts_with("arn:") {
        if parse_trail_arn(name_or_arn).is_none() {
            return Err(error(
                "CloudTrailARNInvalidException",
                format!("{name_or_arn} is not a valid trail ARN."),
            ));
        }
        return trails
            .iter()
            .find(|trail| trail.arn() == name_or_arn)
            .ok_or_else(not_found);
    }
    check_trail_name(name_or_arn).map_err(|message| error("InvalidTrailNameException", message))?;
    trails
        .iter()
        .find(|trail| {
            trail.name == name_or_arn
                && trail.account_id == asking.account_id
                && trail.visible_in(asking.region)
        })
        .ok_or_else(not_found)
}

/// A trail changed from outside its home region is refused, as AWS refuses it.
fn in_home_region(trail: &Trail, asking: &Asking<'_>, verb: &str) -> Result<(), AwsError> {
    if trail.home_region == asking.region {
        return Ok(());
    }
    Err(error(
        "InvalidHomeRegionException",
        format!(
            "This operation must be called from the trail's home region, {}, to {verb} the trail {}.",
            trail.home_region,
            trail.arn()
        ),
    ))
}

/// The trail as `Trail`, `trailList` entries and Create/UpdateTrail answers show it.
fn describe(trail: &Trail, for_describe: bool) -> Value {
    let mut shown = json!({
        "Name": trail.name,
        "S3BucketName": trail.s3_bucket_name,
        "IncludeGlobalServiceEvents": trail.include_global_service_events,
        "IsMultiRegionTrail": trail.is_multi_region_trail,
        "TrailARN": trail.arn(),
        "LogFileValidationEnabled": trail.log_file_validation_enabled,
        "IsOrganizationTrail": trail.is_organization_trail,
    });
    let optional = [
        ("S3KeyPrefix", &trail.s3_key_prefix),
        ("SnsTopicName", &trail.sns_topic_name),
        ("SnsTopicARN", &trail.sns_topic_arn),
        (
            "CloudWatchLogsLogGroupArn",
            &trail.cloud_watch_logs_log_group_arn,
        ),
        ("CloudWatchLogsRoleArn", &trail.cloud_watch_logs_role_arn),
        ("KmsKeyId", &trail.kms_key_id),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            shown[name] = json!(value);
        }
    }
    if for_describe {
        shown["HomeRegion"] = json!(trail.home_region);
        shown["HasCustomEventSelectors"] = json!(trail.has_custom_event_selectors());
        shown["HasInsightSelectors"] = json!(!trail.insight_selectors.is_empty());
    }
    shown
}

/// The SNS topic's ARN, from a name or an ARN given by the caller.
fn topic_arn(topic: &str, asking: &Asking<'_>) -> Result<String, AwsError> {
    if topic.starts_with("arn:") {
        let parts: Vec<&str> = topic.split(':').collect();
        if parts.len() == 6 && parts[2] == "sns" && !parts[5].is_empty() {
            return Ok(topic.to_owned());
        }
    } else if !topic.is_empty()
        && topic.len() <= 256
        && topic
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
    {
        return Ok(format!(
            "arn:aws:sns:{}:{}:{topic}",
            asking.region, asking.account_id
        ));
    }
    Err(error(
        "InvalidSnsTopicNameException",
        format!("Topic name {topic} is not valid."),
    ))
}

/// The KMS key as CloudTrail reports it: the full key ARN (an alias stays an alias ARN).
fn kms_key_arn(key: &str, asking: &Asking<'_>) -> Result<String, AwsError> {
    let invalid = || {
        error(
            "InvalidKmsKeyIdException",
            format!("Invalid KmsKeyId {key}."),
        )
    };
    if key.starts_with("arn:") {
        return key
            .split(':')
            .nth(2)
            .filter(|service| *service == "kms")
            .map(|_| key.to_owned())
            .ok_or_else(invalid);
    }
    if key.is_empty() || key.len() > 2048 {
        return Err(invalid());
    }
    let resource = if key.starts_with("alias/") {
        key.to_owned()
    } else {
        format!("key/{key}")
    };
    Ok(format!(
        "arn:aws:kms:{}:{}:{resource}",
        asking.region, asking.account_id
    ))
}

fn check_prefix(prefix: &str) -> Result<(), AwsError> {
    if prefix.chars().count() > MAX_PREFIX_CHARS {
        return Err(error(
            "InvalidS3PrefixException",
            format!("Prefix can be at most {MAX_PREFIX_CHARS} characters."),
        ));
    }
    Ok(())
}

fn tags_of(list: Option<&Value>) -> Result<Vec<(String, String)>, AwsError> {
    let mut tags = Vec::new();
    for tag in list.and_then(Value::as_array).into_iter().flatten() {
        let key = tag.get("Key").and_then(Value::as_str).unwrap_or_default();
        let value = tag.get("Value").and_then(Value::as_str).unwrap_or_default();
        if key.is_empty() || key.chars().count() > 128 || value.chars().count() > 256 {
            return Err(error(
                "InvalidTagParameterException",
                "Tag keys must be 1 to 128 characters, and tag values at most 256.",
            ));
        }
        if key.starts_with("aws:") {
            return Err(error(
                "InvalidTagParameterException",
                "Tag keys may not begin with aws:.",
            ));
        }
        tags.push((key.to_owned(), value.to_owned()));
    }
    Ok(tags)
}

fn merge_tags(
    current: &mut Vec<(String, String)>,
    added: Vec<(String, String)>,
) -> Result<(), AwsError> {
    for (key, value) in added {
        match current.iter_mut().find(|(known, _)| *known == key) {
            Some(existing) => existing.1 = value,
            None => current.push((key, value)),
        }
    }
    if current.len() > MAX_TAGS {
        return Err(error(
            "TagsLimitExceededException",
            format!("A resource can have at most {MAX_TAGS} tags."),
        ));
    }
    Ok(())
}

/// Settings Create and Update share, applied onto `trail` and checked.
async fn apply_settings(
    state: &AppState,
    trail: &mut Trail,
    members: &Map<String, Value>,
    asking: &Asking<'_>,
) -> Result<(), AwsError> {
    if let Some(bucket) = text(members, "S3BucketName") {
        if !is_valid_bucket_name(bucket) {
            return Err(error(
                "InvalidS3BucketNameException",
                format!("Bucket name {bucket} is not valid."),
            ));
        }
        let exists = state
            .trails
            .objects
            .bucket_exists(bucket)
            .await
            .map_err(|failure| {
                tracing::error!(%failure, bucket, "cannot tell whether a trail's bucket exists");
                AwsError::internal_failure()
            })?;
        if !exists {
            return Err(error(
                "S3BucketDoesNotExistException",
                format!("S3 bucket {bucket} does not exist."),
            ));
        }
        trail.s3_bucket_name = bucket.to_owned();
    }
    if let Some(prefix) = members.get("S3KeyPrefix").and_then(Value::as_str) {
        check_prefix(prefix)?;
        trail.s3_key_prefix = (!prefix.is_empty()).then(|| prefix.to_owned());
    }
    if let Some(topic) = text(members, "SnsTopicName") {
        if topic.is_empty() {
            trail.sns_topic_name = None;
            trail.sns_topic_arn = None;
        } else {
            let arn = topic_arn(topic, asking)?;
            let exists = match &state.trails.notifier {
                Some(notifier) => notifier.topic_exists(&arn).await.unwrap_or_else(|failure| {
                    tracing::warn!(%failure, topic = %arn, "cannot tell whether the topic exists");
                    false
                }),
                None => false,
            };
            if !exists {
                return Err(error(
                    "InsufficientSnsTopicPolicyException",
                    "SNS Topic does not exist or the topic policy is incorrect!",
                ));
            }
            trail.sns_topic_arn = Some(arn);
            trail.sns_topic_name = Some(topic.rsplit(':').next().unwrap_or(topic).to_owned());
        }
    }
    if let Some(include) = flag(members, "IncludeGlobalServiceEvents") {
        trail.include_global_service_events = include;
    }
    if let Some(multi) = flag(members, "IsMultiRegionTrail") {
        trail.is_multi_region_trail = multi;
    }
    if let Some(validation) = flag(members, "EnableLogFileValidation") {
        trail.log_file_validation_enabled = validation;
    }
    if let Some(organization) = flag(members, "IsOrganizationTrail") {
        trail.is_organization_trail = organization;
    }
    if let Some(key) = text(members, "KmsKeyId") {
        trail.kms_key_id = if key.is_empty() {
            None
        } else {
            Some(kms_key_arn(key, asking)?)
        };
    }
    let group = text(members, "CloudWatchLogsLogGroupArn");
    let role = text(members, "CloudWatchLogsRoleArn");
    if group.is_some() || role.is_some() {
        let group = group.filter(|group| !group.is_empty());
        let role = role.filter(|role| !role.is_empty());
        match (group, role) {
            (Some(group), Some(role)) => {
                if !group.starts_with("arn:") || group.split(':').nth(2) != Some("logs") {
                    return Err(error(
                        "InvalidCloudWatchLogsLogGroupArnException",
                        format!("Invalid CloudWatchLogsLogGroupArn {group}."),
                    ));
                }
                if !role.starts_with("arn:") || role.split(':').nth(2) != Some("iam") {
                    return Err(error(
                        "InvalidCloudWatchLogsRoleArnException",
                        format!("Invalid CloudWatchLogsRoleArn {role}."),
                    ));
                }
                trail.cloud_watch_logs_log_group_arn = Some(group.to_owned());
                trail.cloud_watch_logs_role_arn = Some(role.to_owned());
            }
            (None, None) => {
                trail.cloud_watch_logs_log_group_arn = None;
                trail.cloud_watch_logs_role_arn = None;
            }
            (Some(_), None) => {
                return Err(error(
                    "InvalidCloudWatchLogsRoleArnException",
                    "You must specify a role ARN with a CloudWatch Logs log group ARN.",
                ))
            }
            (None, Some(_)) => {
                return Err(error(
                    "InvalidCloudWatchLogsLogGroupArnException",
                    "You must specify a log group ARN with a CloudWatch Logs role ARN.",
                ))
            }
        }
    }
    if trail.is_multi_region_trail && !trail.include_global_service_events {
        return Err(error(
            "InvalidParameterCombinationException",
            "Multi-Region trail must include global service events.",
        ));
    }
    Ok(())
}

/// Serves one trail operation.
pub(crate) async fn serve(
    state: &AppState,
    operation: &str,
    members: &Map<String, Value>,
    asking: &Asking<'_>,
) -> Result<TrailAnswer, AwsError> {
    let trails = all_trails(state).await?;
    let name = |member: &str| {
        text(members, member).ok_or_else(|| {
            error(
                "InvalidTrailNameException",
                format!("Trail name or ARN must be given ({member})."),
            )
        })
    };
    match operation {
        "CreateTrail" => create(state, &trails, members, asking).await,
        "UpdateTrail" => {
            let mut trail = resolve(&trails, name("Name")?, asking)?.clone();
            in_home_region(&trail, asking, "update")?;
            apply_settings(state, &mut trail, members, asking).await?;
            Ok(TrailAnswer {
                body: describe(&trail, false),
                changes: vec![put(&trail)],
            })
        }
        "GetTrail" => {
            let trail = resolve(&trails, name("Name")?, asking)?;
            Ok(TrailAnswer::read(json!({ "Trail": describe(trail, true) })))
        }
        "DescribeTrails" => describe_trails(&trails, members, asking),
        "ListTrails" => list_trails(state, &trails, members, asking),
        "DeleteTrail" => {
            let trail = resolve(&trails, name("Name")?, asking)?;
            in_home_region(trail, asking, "delete")?;
            Ok(TrailAnswer {
                body: json!({}),
                changes: vec![
                    StateChange::remove(TRAILS, trail.arn()),
                    StateChange::remove(TRAIL_STATUS, trail.arn()),
                    StateChange::remove(TRAIL_DELIVERY, trail.arn()),
                ],
            })
        }
        "StartLogging" | "StopLogging" => {
            let mut trail = resolve(&trails, name("Name")?, asking)?.clone();
            in_home_region(&trail, asking, "change logging of")?;
            if operation == "StartLogging" {
                let store = state.store.clone();
                let last_seq = tokio::task::spawn_blocking(move || store.last_seq())
                    .await
                    .map_err(|_| AwsError::internal_failure())?
                    .map_err(|failure| {
                        tracing::error!(%failure, "cannot read the feed's position");
                        AwsError::internal_failure()
                    })?;
                trail.logging.start(last_seq, asking.now_millis);
            } else {
                trail.logging.stop(asking.event_id, asking.now_millis);
            }
            Ok(TrailAnswer {
                body: json!({}),
                changes: vec![put(&trail)],
            })
        }
        "GetTrailStatus" => {
            let trail = resolve(&trails, name("Name")?, asking)?;
            Ok(TrailAnswer::read(trail_status(state, trail).await?))
        }
        "ListPublicKeys" => list_public_keys(state, members, asking).await,
        "PutEventSelectors" => put_event_selectors(&trails, members, asking),
        "GetEventSelectors" => {
            let trail = resolve(&trails, name("TrailName")?, asking)?;
            Ok(TrailAnswer::read(event_selectors_answer(trail)))
        }
        "PutInsightSelectors" => {
            let mut trail = resolve(&trails, name("TrailName")?, asking)?.clone();
            in_home_region(&trail, asking, "change Insights of")?;
            let mut selectors = Vec::new();
            for selector in members
                .get("InsightSelectors")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let insight_type = selector
                    .get("InsightType")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let event_categories: Vec<String> = selector
                    .get("EventCategories")
                    .and_then(Value::as_array)
                    .map(|categories| {
                        categories
                            .iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_else(|| vec!["Management".to_owned()]);
                if selectors
                    .iter()
                    .any(|known: &InsightSelector| known.insight_type == insight_type)
                {
                    return Err(error(
                        "InvalidInsightSelectorsException",
                        format!("InsightType {insight_type} is given twice."),
                    ));
                }
                selectors.push(InsightSelector {
                    insight_type,
                    event_categories,
                });
            }
            if !selectors.is_empty() && !logs_management_events(&trail.selectors) {
                return Err(error(
                    "InvalidInsightSelectorsException",
                    "Insights need a trail that logs management events.",
                ));
            }
            trail.insight_selectors = selectors;
            Ok(TrailAnswer {
                body: insight_selectors_answer(&trail),
                changes: vec![put(&trail)],
            })
        }
        "GetInsightSelectors" => {
            let trail = resolve(&trails, name("TrailName")?, asking)?;
            if trail.insight_selectors.is_empty() {
                return Err(error(
                    "InsightNotEnabledException",
                    format!("Trail {} does not have Insights enabled.", trail.arn()),
                ));
            }
            Ok(TrailAnswer::read(insight_selectors_answer(trail)))
        }
        "AddTags" | "RemoveTags" => {
            let resource = text(members, "ResourceId").unwrap_or_default();
            let mut trail = tagged(&trails, resource)?.clone();
            let given = tags_of(members.get("TagsList"))?;
            if operation == "AddTags" {
                merge_tags(&mut trail.tags, given)?;
            } else {
                trail.tags.retain(|(key, value)| {
                    !given.iter().any(|(removed, removed_value)| {
                        removed == key && (removed_value.is_empty() || removed_value == value)
                    })
                });
            }
            Ok(TrailAnswer {
                body: json!({}),
                changes: vec![put(&trail)],
            })
        }
        "ListTags" => {
            let ids: Vec<&str> = members
                .get("ResourceIdList")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if ids.len() > 20 {
                return Err(error(
                    "InvalidParameterException",
                    "ResourceIdList may name at most 20 resources.",
                ));
            }
            let mut listed = Vec::new();
            for id in ids {
                let trail = tagged(&trails, id)?;
                let tags: Vec<Value> = trail
                    .tags
                    .iter()
                    .map(|(key, value)| json!({"Key": key, "Value": value}))
                    .collect();
                listed.push(json!({"ResourceId": id, "TagsList": tags}));
            }
            Ok(TrailAnswer::read(json!({ "ResourceTagList": listed })))
        }
        other => Err(error(
            "UnsupportedOperationException",
            format!("Cairn does not serve {other} yet."),
        )),
    }
}

/// The digest signing keys of the caller's region valid in the asked range (default: now).
async fn list_public_keys(
    state: &AppState,
    members: &Map<String, Value>,
    asking: &Asking<'_>,
) -> Result<TrailAnswer, AwsError> {
    let millis = |name: &str| {
        members
            .get(name)
            .and_then(Value::as_f64)
            .map(|seconds| (seconds * 1000.0) as i64)
    };
    let now = asking.now_millis;
    let end = millis("EndTime").unwrap_or(now);
    let start = millis("StartTime").unwrap_or(end.min(now));
    if start > end {
        return Err(error(
            "InvalidTimeRangeException",
            "Start time must be before end time.",
        ));
    }
    let Some(keys) = state.trails.digest_keys.clone() else {
        return Ok(TrailAnswer::read(json!({ "PublicKeyList": [] })));
    };
    let region = asking.region.to_owned();
    let listed = tokio::task::spawn_blocking(move || {
        // The current key exists from the first time anyone asks for it.
        if end >= now {
            keys.signing_key(&region, now)?;
        }
        keys.public_keys(&region, start, end)
    })
    .await
    .map_err(|_| AwsError::internal_failure())?;
    let listed = match listed {
        Ok(listed) => listed,
        Err(failure) => {
            tracing::warn!(%failure, "cannot list digest signing keys");
            Vec::new()
        }
    };
    let seconds = |millis: i64| json!(millis / 1000);
    let keys: Vec<Value> = listed
        .iter()
        .map(|key| {
            json!({
                "Value": base64::engine::general_purpose::STANDARD.encode(key.public_key_der()),
                "ValidityStartTime": seconds(key.validity_start_millis),
                "ValidityEndTime": seconds(key.validity_end_millis),
                "Fingerprint": key.fingerprint,
            })
        })
        .collect();
    Ok(TrailAnswer::read(json!({ "PublicKeyList": keys })))
}

fn tagged<'t>(trails: &'t [Trail], resource: &str) -> Result<&'t Trail, AwsError> {
    if parse_trail_arn(resource).is_none() {
        return Err(error(
            "CloudTrailARNInvalidException",
            format!("{resource} is not a valid trail ARN."),
        ));
    }
    trails
        .iter()
        .find(|trail| trail.arn() == resource)
        .ok_or_else(|| {
            error(
                "ResourceNotFoundException",
                format!("Resource {resource} does not exist."),
            )
        })
}

async fn create(
    state: &AppState,
    trails: &[Trail],
    members: &Map<String, Value>,
    asking: &Asking<'_>,
) -> Result<TrailAnswer, AwsError> {
    let name = text(members, "Name").unwrap_or_default();
    check_trail_name(name).map_err(|message| error("InvalidTrailNameException", message))?;
    let arn = trail_arn(asking.region, asking.account_id, name);
    if trails.iter().any(|trail| trail.arn() == arn) {
        return Err(error(
            "TrailAlreadyExistsException",
            format!(
                "Trail {name} already exists for customer: {}",
                asking.account_id
            ),
        ));
    }
    let in_region = trails
        .iter()
        .filter(|trail| trail.account_id == asking.account_id && trail.visible_in(asking.region))
        .count();
    if in_region >= MAX_TRAILS_PER_REGION {
        return Err(error(
            "MaximumNumberOfTrailsExceededException",
            format!(
                "User: {} already has {MAX_TRAILS_PER_REGION} trails in {}.",
                asking.account_id, asking.region
            ),
        ));
    }
    let mut trail = Trail {
        name: name.to_owned(),
        account_id: asking.account_id.to_owned(),
        home_region: asking.region.to_owned(),
        include_global_service_events: true,
        ..Trail::default()
    };
    apply_settings(state, &mut trail, members, asking).await?;
    merge_tags(&mut trail.tags, tags_of(members.get("TagsList"))?)?;
    Ok(TrailAnswer {
        body: describe(&trail, false),
        changes: vec![put(&trail)],
    })
}

fn describe_trails(
    trails: &[Trail],
    members: &Map<String, Value>,
    asking: &Asking<'_>,
) -> Result<TrailAnswer, AwsError> {
    let include_shadows = flag(members, "includeShadowTrails").unwrap_or(true);
    let names: Vec<&str> = members
        .get("trailNameList")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let shown: Vec<Value> = if names.is_empty() {
        trails
            .iter()
            .filter(|trail| trail.account_id == asking.account_id)
            .filter(|trail| {
                trail.home_region == asking.region
                    || (include_shadows && trail.visible_in(asking.region))
            })
            .map(|trail| describe(trail, true))
            .collect()
    } else {
        let mut shown = Vec::new();
        for name in names {
            // A name that is not a trail here is left out, as AWS leaves it out; an ARN that
            // is not well formed is an error.
            if name.starts_with("arn:") && parse_trail_arn(name).is_none() {
                return Err(error(
                    "CloudTrailARNInvalidException",
                    format!("{name} is not a valid trail ARN."),
                ));
            }
            if let Ok(trail) = resolve(trails, name, asking) {
                if include_shadows || trail.home_region == asking.region {
                    shown.push(describe(trail, true));
                }
            }
        }
        shown
    };
    Ok(TrailAnswer::read(json!({ "trailList": shown })))
}

fn list_trails(
    state: &AppState,
    trails: &[Trail],
    members: &Map<String, Value>,
    asking: &Asking<'_>,
) -> Result<TrailAnswer, AwsError> {
    let mut visible: Vec<&Trail> = trails
        .iter()
        .filter(|trail| trail.account_id == asking.account_id && trail.visible_in(asking.region))
        .collect();
    visible.sort_by_key(|trail| trail.arn());
    let start = match text(members, "NextToken") {
        None => 0,
        Some(token) => state
            .next_tokens
            .open_offset("ListTrails", token)
            .filter(|offset| *offset <= visible.len())
            .ok_or_else(|| error("InvalidNextTokenException", "The NextToken is not valid."))?,
    };
    let page: Vec<Value> = visible
        .iter()
        .skip(start)
        .take(LIST_PAGE)
        .map(|trail| json!({"TrailARN": trail.arn(), "Name": trail.name, "HomeRegion": trail.home_region}))
        .collect();
    let mut answer = json!({ "Trails": page });
    if start + LIST_PAGE < visible.len() {
        answer["NextToken"] = json!(state
            .next_tokens
            .seal_offset("ListTrails", start + LIST_PAGE));
    }
    Ok(TrailAnswer::read(answer))
}

fn logs_management_events(selectors: &Selectors) -> bool {
    match selectors {
        Selectors::Default => true,
        Selectors::Basic(selectors) => selectors
            .iter()
            .any(|selector| selector.include_management_events),
        Selectors::Advanced(selectors) => selectors.iter().any(|selector| {
            selector.field_selectors.iter().any(|field| {
                field.field == "eventCategory"
                    && field.equals.iter().any(|value| value == "Management")
            })
        }),
    }
}

async fn trail_status(state: &AppState, trail: &Trail) -> Result<Value, AwsError> {
    let store = state.store.clone();
    let statuses = tokio::task::spawn_blocking(move || store.state(TRAIL_STATUS))
        .await
        .map_err(|_| AwsError::internal_failure())?
        .map_err(|_| AwsError::internal_failure())?;
    let delivery: Map<String, Value> = statuses
        .into_iter()
        .find(|(arn, _)| *arn == trail.arn())
        .and_then(|(_, value)| serde_json::from_str(&value).ok())
        .unwrap_or_default();
    let seconds = |millis: i64| json!(millis as f64 / 1000.0);
    // AWS answers its string-typed members as "" until they have a value.
    let mut status = json!({
        "IsLogging": trail.logging.is_logging,
        "LatestDeliveryAttemptTime": "",
        "LatestNotificationAttemptTime": "",
        "LatestNotificationAttemptSucceeded": "",
        "LatestDeliveryAttemptSucceeded": "",
        "TimeLoggingStarted": "",
        "TimeLoggingStopped": "",
    });
    if let Some(started) = trail.logging.started_millis {
        status["StartLoggingTime"] = seconds(started);
        status["TimeLoggingStarted"] = json!(cairn_model::format_event_time(started));
    }
    if let Some(stopped) = trail.logging.stopped_millis {
        status["StopLoggingTime"] = seconds(stopped);
        status["TimeLoggingStopped"] = json!(cairn_model::format_event_time(stopped));
    }
    for (key, value) in delivery {
        // Delivery keeps its times as epoch milliseconds, named as the answer names them.
        match value {
            Value::Number(millis) if key.ends_with("Time") => {
                status[key] = seconds(millis.as_i64().unwrap_or_default());
            }
            other => status[key] = other,
        }
    }
    Ok(status)
}

fn event_selectors_answer(trail: &Trail) -> Value {
    let mut answer = json!({ "TrailARN": trail.arn() });
    match &trail.selectors {
        Selectors::Default => {
            answer["EventSelectors"] = json!([basic_out(&EventSelector::default())]);
        }
        Selectors::Basic(selectors) => {
            answer["EventSelectors"] = Value::Array(selectors.iter().map(basic_out).collect());
        }
        Selectors::Advanced(selectors) => {
            answer["AdvancedEventSelectors"] =
                Value::Array(selectors.iter().map(advanced_out).collect());
        }
    }
    answer
}

fn basic_out(selector: &EventSelector) -> Value {
    json!({
        "ReadWriteType": selector.read_write_type.as_str(),
        "IncludeManagementEvents": selector.include_management_events,
        "DataResources": selector.data_resources.iter()
            .map(|resource| json!({"Type": resource.resource_type, "Values": resource.values}))
            .collect::<Vec<_>>(),
        "ExcludeManagementEventSources": selector.exclude_management_event_sources,
    })
}

fn advanced_out(selector: &AdvancedEventSelector) -> Value {
    let fields: Vec<Value> = selector
        .field_selectors
        .iter()
        .map(|field| {
            let mut out = json!({ "Field": field.field });
            for (name, values) in [
                ("Equals", &field.equals),
                ("StartsWith", &field.starts_with),
                ("EndsWith", &field.ends_with),
                ("NotEquals", &field.not_equals),
                ("NotStartsWith", &field.not_starts_with),
                ("NotEndsWith", &field.not_ends_with),
            ] {
                if !values.is_empty() {
                    out[name] = json!(values);
                }
            }
            out
        })
        .collect();
    let mut out = json!({ "FieldSelectors": fields });
    if let Some(name) = &selector.name {
        out["Name"] = json!(name);
    }
    out
}

fn insight_selectors_answer(trail: &Trail) -> Value {
    let selectors: Vec<Value> = trail
        .insight_selectors
        .iter()
        .map(|selector| json!({"InsightType": selector.insight_type, "EventCategories": selector.event_categories}))
        .collect();
    json!({ "TrailARN": trail.arn(), "InsightSelectors": selectors })
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

fn put_event_selectors(
    trails: &[Trail],
    members: &Map<String, Value>,
    asking: &Asking<'_>,
) -> Result<TrailAnswer, AwsError> {
    let name = text(members, "TrailName").unwrap_or_default();
    let mut trail = resolve(trails, name, asking)?.clone();
    in_home_region(&trail, asking, "change event selectors of")?;
    let basic = members
        .get("EventSelectors")
        .filter(|value| !value.is_null());
    let advanced = members
        .get("AdvancedEventSelectors")
        .filter(|value| !value.is_null());
    let invalid = |message: String| error("InvalidEventSelectorsException", message);
    let selectors = match (basic, advanced) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "Specify either event selectors or advanced event selectors, not both.".to_owned(),
            ))
        }
        (None, None) => {
            return Err(invalid(
                "Specify event selectors or advanced event selectors.".to_owned(),
            ))
        }
        (Some(basic), None) => Selectors::Basic(
            basic
                .as_array()
                .into_iter()
                .flatten()
                .map(|selector| EventSelector {
                    read_write_type: selector
                        .get("ReadWriteType")
                        .and_then(Value::as_str)
                        .and_then(ReadWriteType::parse)
                        .unwrap_or_default(),
                    include_management_events: selector
                        .get("IncludeManagementEvents")
                        .and_then(Value::as_bool)
                        .unwrap_or(true),
                    data_resources: selector
                        .get("DataResources")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .map(|resource| DataResource {
                            resource_type: resource
                                .get("Type")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_owned(),
                            values: strings(resource.get("Values")),
                        })
                        .collect(),
                    exclude_management_event_sources: strings(
                        selector.get("ExcludeManagementEventSources"),
                    ),
                })
                .collect(),
        ),
        (None, Some(advanced)) => Selectors::Advanced(
            advanced
                .as_array()
                .into_iter()
                .flatten()
                .map(|selector| AdvancedEventSelector {
                    name: selector
                        .get("Name")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    field_selectors: selector
                        .get("FieldSelectors")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .map(|field| FieldSelector {
                            field: field
                                .get("Field")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_owned(),
                            equals: strings(field.get("Equals")),
                            starts_with: strings(field.get("StartsWith")),
                            ends_with: strings(field.get("EndsWith")),
                            not_equals: strings(field.get("NotEquals")),
                            not_starts_with: strings(field.get("NotStartsWith")),
                            not_ends_with: strings(field.get("NotEndsWith")),
                        })
                        .collect(),
                })
                .collect(),
        ),
    };
    selectors.check().map_err(invalid)?;
    trail.selectors = selectors;
    Ok(TrailAnswer {
        body: event_selectors_answer(&trail),
        changes: vec![put(&trail)],
    })
}
