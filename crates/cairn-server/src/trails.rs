//! The trail API (CloudTrail's CreateTrail … ListTags): requests checked against the model,
//! parsed into its generated types (`cloudtrail_shapes`) and answered in them, checked
//! against CloudTrail's own rules and exceptions; trails kept as state (`trails`,
//! keyed by ARN), every change committed in the same commit as the call's own event, so a
//! trail and the record of the call that made it are durable together. Names resolve in the
//! caller's account and region; an ARN resolves anywhere; a multi-region trail shows as a
//! shadow trail in every other region and is changed only from its home region.

use cairn_model::trail::{
    check_trail_name, is_valid_bucket_name, parse_trail_arn, trail_arn, AdvancedEventSelector,
    DataResource, EventSelector, FieldSelector, InsightSelector, ReadWriteType, Selectors, Trail,
};
use cairn_model::StateChange;
use cairn_wire::cloudtrail_shapes::{self as shapes, TrailRequest};
use cairn_wire::AwsError;
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::AppState;

use base64::Engine;
use cairn_delivery::notify::Membership;
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
    /// An answer that changes nothing.
    fn read(body: impl Serialize) -> Self {
        Self {
            body: answer(body),
            changes: Vec::new(),
        }
    }

    /// An answer that keeps `trail` as it now is.
    fn keeping(body: impl Serialize, trail: &Trail) -> Self {
        Self {
            body: answer(body),
            changes: vec![put(trail)],
        }
    }
}

/// A generated answer shape as the JSON body it is written as. The shapes are plain data:
/// serializing them cannot fail.
fn answer(body: impl Serialize) -> Value {
    serde_json::to_value(body).unwrap_or_default()
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
fn describe(trail: &Trail, for_describe: bool) -> shapes::Trail {
    let shown = shapes::Trail {
        name: Some(trail.name.clone()),
        s3_bucket_name: Some(trail.s3_bucket_name.clone()),
        s3_key_prefix: trail.s3_key_prefix.clone(),
        sns_topic_name: trail.sns_topic_name.clone(),
        sns_topic_arn: trail.sns_topic_arn.clone(),
        include_global_service_events: Some(trail.include_global_service_events),
        is_multi_region_trail: Some(trail.is_multi_region_trail),
        trail_arn: Some(trail.arn()),
        log_file_validation_enabled: Some(trail.log_file_validation_enabled),
        cloud_watch_logs_log_group_arn: trail.cloud_watch_logs_log_group_arn.clone(),
        cloud_watch_logs_role_arn: trail.cloud_watch_logs_role_arn.clone(),
        kms_key_id: trail.kms_key_id.clone(),
        is_organization_trail: Some(trail.is_organization_trail),
        ..shapes::Trail::default()
    };
    if !for_describe {
        return shown;
    }
    shapes::Trail {
        home_region: Some(trail.home_region.clone()),
        has_custom_event_selectors: Some(trail.has_custom_event_selectors()),
        has_insight_selectors: Some(!trail.insight_selectors.is_empty()),
        ..shown
    }
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

fn tags_of(list: &[shapes::Tag]) -> Result<Vec<(String, String)>, AwsError> {
    let mut tags = Vec::new();
    for tag in list {
        let value = tag.value.clone().unwrap_or_default();
        if tag.key.is_empty() || tag.key.chars().count() > 128 || value.chars().count() > 256 {
            return Err(error(
                "InvalidTagParameterException",
                "Tag keys must be 1 to 128 characters, and tag values at most 256.",
            ));
        }
        if tag.key.starts_with("aws:") {
            return Err(error(
                "InvalidTagParameterException",
                "Tag keys may not begin with aws:.",
            ));
        }
        tags.push((tag.key.clone(), value));
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

/// Settings Create and Update share (as UpdateTrail has them), applied onto `trail` and
/// checked.
async fn apply_settings(
    state: &AppState,
    trail: &mut Trail,
    settings: &shapes::UpdateTrailRequest,
    asking: &Asking<'_>,
) -> Result<(), AwsError> {
    if let Some(bucket) = settings.s3_bucket_name.as_deref() {
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
    if let Some(prefix) = settings.s3_key_prefix.as_deref() {
        check_prefix(prefix)?;
        trail.s3_key_prefix = (!prefix.is_empty()).then(|| prefix.to_owned());
    }
    if let Some(topic) = settings.sns_topic_name.as_deref() {
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
    if let Some(include) = settings.include_global_service_events {
        trail.include_global_service_events = include;
    }
    if let Some(multi) = settings.is_multi_region_trail {
        trail.is_multi_region_trail = multi;
    }
    if let Some(validation) = settings.enable_log_file_validation {
        trail.log_file_validation_enabled = validation;
    }
    if let Some(organization) = settings.is_organization_trail {
        // An organization trail keeps the organization it was made for: saying so again
        // asks nothing.
        trail.organization_id = match (organization, trail.organization_id.take()) {
            (true, Some(known)) if trail.is_organization_trail => Some(known),
            (true, _) => Some(organization_logged_for(state, asking).await?),
            (false, _) => None,
        };
        trail.is_organization_trail = organization;
    }
    if let Some(key) = settings.kms_key_id.as_deref() {
        trail.kms_key_id = if key.is_empty() {
            None
        } else {
            Some(kms_key_arn(key, asking)?)
        };
    }
    let group = settings.cloud_watch_logs_log_group_arn.as_deref();
    let role = settings.cloud_watch_logs_role_arn.as_deref();
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

/// The organization an organization trail of the caller's logs for: the one the upstream
/// serving Organizations names, whose management account the caller must be, with all
/// features on (as AWS requires). The validators ask the same upstream, so they find the
/// files where they are.
async fn organization_logged_for(
    state: &AppState,
    asking: &Asking<'_>,
) -> Result<String, AwsError> {
    let not_in_use = || {
        error(
            "OrganizationsNotInUseException",
            "This account is not a member of an organization.",
        )
    };
    let notifier = state.trails.notifier.as_ref().ok_or_else(not_in_use)?;
    let organization = match notifier.describe_organization().await {
        Ok(Membership::Member(organization)) => organization,
        Ok(Membership::NotInUse) => return Err(not_in_use()),
        Ok(Membership::Refused) => {
            return Err(error(
                "InsufficientDependencyServiceAccessPermissionException",
                "The caller is not permitted to call Organizations' DescribeOrganization.",
            ))
        }
        Err(failure) => {
            tracing::warn!(%failure, "cannot tell which organization the account is in");
            return Err(AwsError::internal_failure());
        }
    };
    if organization.management_account_id != asking.account_id {
        return Err(error(
            "NotOrganizationMasterAccountException",
            "The request was made from an account that is not the management account of the organization.",
        ));
    }
    if !organization.feature_set.is_empty() && organization.feature_set != "ALL" {
        return Err(error(
            "OrganizationNotInAllFeaturesModeException",
            "All features must be enabled in Organizations to create an organization trail.",
        ));
    }
    Ok(organization.id)
}

/// The trail name or ARN a request must give, as InsightSelectors calls leave it optional
/// (for Lake's event data stores, which Cairn does not keep).
fn named(name: Option<&String>) -> Result<&str, AwsError> {
    name.map(String::as_str).ok_or_else(|| {
        error(
            "InvalidTrailNameException",
            "Trail name or ARN must be given (TrailName).",
        )
    })
}

/// Serves one trail operation.
pub(crate) async fn serve(
    state: &AppState,
    request: TrailRequest,
    asking: &Asking<'_>,
) -> Result<TrailAnswer, AwsError> {
    let trails = all_trails(state).await?;
    match request {
        TrailRequest::CreateTrail(input) => create(state, &trails, input, asking).await,
        TrailRequest::UpdateTrail(input) => {
            let before = resolve(&trails, &input.name, asking)?;
            in_home_region(before, asking, "update")?;
            let mut trail = before.clone();
            apply_settings(state, &mut trail, &input, asking).await?;
            trail.note_change(before, asking.event_id);
            Ok(TrailAnswer::keeping(describe(&trail, false), &trail))
        }
        TrailRequest::GetTrail(input) => {
            let trail = resolve(&trails, &input.name, asking)?;
            Ok(TrailAnswer::read(shapes::GetTrailResponse {
                trail: Some(describe(trail, true)),
            }))
        }
        TrailRequest::DescribeTrails(input) => describe_trails(&trails, input, asking),
        TrailRequest::ListTrails(input) => list_trails(state, &trails, input, asking),
        TrailRequest::DeleteTrail(input) => {
            let trail = resolve(&trails, &input.name, asking)?;
            in_home_region(trail, asking, "delete")?;
            Ok(TrailAnswer {
                body: answer(shapes::DeleteTrailResponse {}),
                changes: vec![
                    StateChange::remove(TRAILS, trail.arn()),
                    StateChange::remove(TRAIL_STATUS, trail.arn()),
                    StateChange::remove(TRAIL_DELIVERY, trail.arn()),
                ],
            })
        }
        TrailRequest::StartLogging(input) => {
            let mut trail = resolve(&trails, &input.name, asking)?.clone();
            in_home_region(&trail, asking, "change logging of")?;
            let store = state.store.clone();
            let last_seq = tokio::task::spawn_blocking(move || store.last_seq())
                .await
                .map_err(|_| AwsError::internal_failure())?
                .map_err(|failure| {
                    tracing::error!(%failure, "cannot read the feed's position");
                    AwsError::internal_failure()
                })?;
            trail.logging.start(last_seq, asking.now_millis);
            Ok(TrailAnswer::keeping(
                shapes::StartLoggingResponse {},
                &trail,
            ))
        }
        TrailRequest::StopLogging(input) => {
            let mut trail = resolve(&trails, &input.name, asking)?.clone();
            in_home_region(&trail, asking, "change logging of")?;
            trail.logging.stop(asking.event_id, asking.now_millis);
            Ok(TrailAnswer::keeping(shapes::StopLoggingResponse {}, &trail))
        }
        TrailRequest::GetTrailStatus(input) => {
            let trail = resolve(&trails, &input.name, asking)?;
            Ok(TrailAnswer::read(trail_status(state, trail).await?))
        }
        TrailRequest::ListPublicKeys(input) => list_public_keys(state, input, asking).await,
        TrailRequest::PutEventSelectors(input) => put_event_selectors(&trails, input, asking),
        TrailRequest::GetEventSelectors(input) => {
            let trail = resolve(&trails, &input.trail_name, asking)?;
            Ok(TrailAnswer::read(event_selectors_answer(trail)))
        }
        TrailRequest::PutInsightSelectors(input) => put_insight_selectors(&trails, input, asking),
        TrailRequest::GetInsightSelectors(input) => {
            let trail = resolve(&trails, named(input.trail_name.as_ref())?, asking)?;
            if trail.insight_selectors.is_empty() {
                return Err(error(
                    "InsightNotEnabledException",
                    format!("Trail {} does not have Insights enabled.", trail.arn()),
                ));
            }
            Ok(TrailAnswer::read(insight_selectors_answer(trail)))
        }
        TrailRequest::AddTags(input) => {
            let mut trail = tagged(&trails, &input.resource_id)?.clone();
            merge_tags(&mut trail.tags, tags_of(&input.tags_list)?)?;
            Ok(TrailAnswer::keeping(shapes::AddTagsResponse {}, &trail))
        }
        TrailRequest::RemoveTags(input) => {
            let mut trail = tagged(&trails, &input.resource_id)?.clone();
            let given = tags_of(&input.tags_list)?;
            trail.tags.retain(|(key, value)| {
                !given.iter().any(|(removed, removed_value)| {
                    removed == key && (removed_value.is_empty() || removed_value == value)
                })
            });
            Ok(TrailAnswer::keeping(shapes::RemoveTagsResponse {}, &trail))
        }
        TrailRequest::ListTags(input) => {
            if input.resource_id_list.len() > 20 {
                return Err(error(
                    "InvalidParameterException",
                    "ResourceIdList may name at most 20 resources.",
                ));
            }
            let mut listed = Vec::new();
            for id in &input.resource_id_list {
                let trail = tagged(&trails, id)?;
                listed.push(shapes::ResourceTag {
                    resource_id: Some(id.clone()),
                    tags_list: Some(
                        trail
                            .tags
                            .iter()
                            .map(|(key, value)| shapes::Tag {
                                key: key.clone(),
                                value: Some(value.clone()),
                            })
                            .collect(),
                    ),
                });
            }
            Ok(TrailAnswer::read(shapes::ListTagsResponse {
                resource_tag_list: Some(listed),
                next_token: None,
            }))
        }
    }
}

fn put_insight_selectors(
    trails: &[Trail],
    input: shapes::PutInsightSelectorsRequest,
    asking: &Asking<'_>,
) -> Result<TrailAnswer, AwsError> {
    let mut trail = resolve(trails, named(input.trail_name.as_ref())?, asking)?.clone();
    in_home_region(&trail, asking, "change Insights of")?;
    let mut selectors: Vec<InsightSelector> = Vec::new();
    for selector in input.insight_selectors {
        let insight_type = selector.insight_type.unwrap_or_default();
        if selectors
            .iter()
            .any(|known| known.insight_type == insight_type)
        {
            return Err(error(
                "InvalidInsightSelectorsException",
                format!("InsightType {insight_type} is given twice."),
            ));
        }
        selectors.push(InsightSelector {
            insight_type,
            event_categories: selector
                .event_categories
                .unwrap_or_else(|| vec!["Management".to_owned()]),
        });
    }
    if !selectors.is_empty() && !logs_management_events(&trail.selectors) {
        return Err(error(
            "InvalidInsightSelectorsException",
            "Insights need a trail that logs management events.",
        ));
    }
    trail.insight_selectors = selectors;
    Ok(TrailAnswer::keeping(
        insight_selectors_answer(&trail),
        &trail,
    ))
}

/// The digest signing keys of the caller's region valid in the asked range (default: now).
async fn list_public_keys(
    state: &AppState,
    input: shapes::ListPublicKeysRequest,
    asking: &Asking<'_>,
) -> Result<TrailAnswer, AwsError> {
    let millis = |seconds: Option<f64>| seconds.map(|seconds| (seconds * 1000.0) as i64);
    let now = asking.now_millis;
    let end = millis(input.end_time).unwrap_or(now);
    let start = millis(input.start_time).unwrap_or(end.min(now));
    if start > end {
        return Err(error(
            "InvalidTimeRangeException",
            "Start time must be before end time.",
        ));
    }
    let Some(keys) = state.trails.digest_keys.clone() else {
        return Ok(TrailAnswer::read(shapes::ListPublicKeysResponse {
            public_key_list: Some(Vec::new()),
            next_token: None,
        }));
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
    // Whole seconds, as AWS gives them.
    let seconds = |millis: i64| Some((millis / 1000) as f64);
    let keys = listed
        .iter()
        .map(|key| shapes::PublicKey {
            value: Some(base64::engine::general_purpose::STANDARD.encode(key.public_key_der())),
            validity_start_time: seconds(key.validity_start_millis),
            validity_end_time: seconds(key.validity_end_millis),
            fingerprint: Some(key.fingerprint.clone()),
        })
        .collect();
    Ok(TrailAnswer::read(shapes::ListPublicKeysResponse {
        public_key_list: Some(keys),
        next_token: None,
    }))
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
    input: shapes::CreateTrailRequest,
    asking: &Asking<'_>,
) -> Result<TrailAnswer, AwsError> {
    let name = input.name.as_str();
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
    // CreateTrail's settings are UpdateTrail's, with the bucket required.
    let settings = shapes::UpdateTrailRequest {
        name: input.name.clone(),
        s3_bucket_name: Some(input.s3_bucket_name),
        s3_key_prefix: input.s3_key_prefix,
        sns_topic_name: input.sns_topic_name,
        include_global_service_events: input.include_global_service_events,
        is_multi_region_trail: input.is_multi_region_trail,
        enable_log_file_validation: input.enable_log_file_validation,
        cloud_watch_logs_log_group_arn: input.cloud_watch_logs_log_group_arn,
        cloud_watch_logs_role_arn: input.cloud_watch_logs_role_arn,
        kms_key_id: input.kms_key_id,
        is_organization_trail: input.is_organization_trail,
    };
    apply_settings(state, &mut trail, &settings, asking).await?;
    merge_tags(
        &mut trail.tags,
        tags_of(input.tags_list.as_deref().unwrap_or_default())?,
    )?;
    Ok(TrailAnswer::keeping(describe(&trail, false), &trail))
}

fn describe_trails(
    trails: &[Trail],
    input: shapes::DescribeTrailsRequest,
    asking: &Asking<'_>,
) -> Result<TrailAnswer, AwsError> {
    let include_shadows = input.include_shadow_trails.unwrap_or(true);
    let names = input.trail_name_list.unwrap_or_default();
    let shown: Vec<shapes::Trail> = if names.is_empty() {
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
        for name in &names {
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
    Ok(TrailAnswer::read(shapes::DescribeTrailsResponse {
        trail_list: Some(shown),
    }))
}

fn list_trails(
    state: &AppState,
    trails: &[Trail],
    input: shapes::ListTrailsRequest,
    asking: &Asking<'_>,
) -> Result<TrailAnswer, AwsError> {
    let mut visible: Vec<&Trail> = trails
        .iter()
        .filter(|trail| trail.account_id == asking.account_id && trail.visible_in(asking.region))
        .collect();
    visible.sort_by_key(|trail| trail.arn());
    let start = match input.next_token.as_deref() {
        None => 0,
        Some(token) => state
            .next_tokens
            .open_offset("ListTrails", token)
            .filter(|offset| *offset <= visible.len())
            .ok_or_else(|| error("InvalidNextTokenException", "The NextToken is not valid."))?,
    };
    let page = visible
        .iter()
        .skip(start)
        .take(LIST_PAGE)
        .map(|trail| shapes::TrailInfo {
            trail_arn: Some(trail.arn()),
            name: Some(trail.name.clone()),
            home_region: Some(trail.home_region.clone()),
        })
        .collect();
    Ok(TrailAnswer::read(shapes::ListTrailsResponse {
        trails: Some(page),
        next_token: (start + LIST_PAGE < visible.len()).then(|| {
            state
                .next_tokens
                .seal_offset("ListTrails", start + LIST_PAGE)
        }),
    }))
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

async fn trail_status(
    state: &AppState,
    trail: &Trail,
) -> Result<shapes::GetTrailStatusResponse, AwsError> {
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
    let seconds = |millis: i64| millis as f64 / 1000.0;
    // AWS answers its string-typed members as "" until they have a value.
    let blank = || Some(String::new());
    let mut status = answer(shapes::GetTrailStatusResponse {
        is_logging: Some(trail.logging.is_logging),
        latest_delivery_attempt_time: blank(),
        latest_notification_attempt_time: blank(),
        latest_notification_attempt_succeeded: blank(),
        latest_delivery_attempt_succeeded: blank(),
        time_logging_started: trail
            .logging
            .started_millis
            .map(cairn_model::format_event_time)
            .or_else(blank),
        time_logging_stopped: trail
            .logging
            .stopped_millis
            .map(cairn_model::format_event_time)
            .or_else(blank),
        start_logging_time: trail.logging.started_millis.map(seconds),
        stop_logging_time: trail.logging.stopped_millis.map(seconds),
        ..shapes::GetTrailStatusResponse::default()
    });
    // Delivery keeps its part of the status under the answer's member names, times as
    // epoch milliseconds; read through the answer's shape, so only its members go out.
    for (key, value) in delivery {
        status[&key] = match value {
            Value::Number(millis) if key.ends_with("Time") => {
                json!(seconds(millis.as_i64().unwrap_or_default()))
            }
            other => other,
        };
    }
    serde_json::from_value(status).map_err(|failure| {
        tracing::error!(%failure, trail = %trail.arn(), "a trail's delivery status cannot be read");
        AwsError::internal_failure()
    })
}

fn event_selectors_answer(trail: &Trail) -> shapes::GetEventSelectorsResponse {
    let mut answer = shapes::GetEventSelectorsResponse {
        trail_arn: Some(trail.arn()),
        ..Default::default()
    };
    match &trail.selectors {
        Selectors::Default => {
            answer.event_selectors = Some(vec![basic_out(&EventSelector::default())]);
        }
        Selectors::Basic(selectors) => {
            answer.event_selectors = Some(selectors.iter().map(basic_out).collect());
        }
        Selectors::Advanced(selectors) => {
            answer.advanced_event_selectors = Some(selectors.iter().map(advanced_out).collect());
        }
    }
    answer
}

fn basic_out(selector: &EventSelector) -> shapes::EventSelector {
    shapes::EventSelector {
        read_write_type: Some(selector.read_write_type.as_str().to_owned()),
        include_management_events: Some(selector.include_management_events),
        data_resources: Some(
            selector
                .data_resources
                .iter()
                .map(|resource| shapes::DataResource {
                    r#type: Some(resource.resource_type.clone()),
                    values: Some(resource.values.clone()),
                })
                .collect(),
        ),
        exclude_management_event_sources: Some(selector.exclude_management_event_sources.clone()),
    }
}

fn advanced_out(selector: &AdvancedEventSelector) -> shapes::AdvancedEventSelector {
    // An operator with no values is left out, as AWS answers.
    let given = |values: &Vec<String>| (!values.is_empty()).then(|| values.clone());
    shapes::AdvancedEventSelector {
        name: selector.name.clone(),
        field_selectors: selector
            .field_selectors
            .iter()
            .map(|field| shapes::AdvancedFieldSelector {
                field: field.field.clone(),
                equals: given(&field.equals),
                starts_with: given(&field.starts_with),
                ends_with: given(&field.ends_with),
                not_equals: given(&field.not_equals),
                not_starts_with: given(&field.not_starts_with),
                not_ends_with: given(&field.not_ends_with),
            })
            .collect(),
    }
}

fn insight_selectors_answer(trail: &Trail) -> shapes::GetInsightSelectorsResponse {
    shapes::GetInsightSelectorsResponse {
        trail_arn: Some(trail.arn()),
        insight_selectors: Some(
            trail
                .insight_selectors
                .iter()
                .map(|selector| shapes::InsightSelector {
                    insight_type: Some(selector.insight_type.clone()),
                    event_categories: Some(selector.event_categories.clone()),
                })
                .collect(),
        ),
        ..Default::default()
    }
}

fn put_event_selectors(
    trails: &[Trail],
    input: shapes::PutEventSelectorsRequest,
    asking: &Asking<'_>,
) -> Result<TrailAnswer, AwsError> {
    let mut trail = resolve(trails, &input.trail_name, asking)?.clone();
    in_home_region(&trail, asking, "change event selectors of")?;
    let invalid = |message: String| error("InvalidEventSelectorsException", message);
    let selectors = match (input.event_selectors, input.advanced_event_selectors) {
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
                .into_iter()
                .map(|selector| EventSelector {
                    read_write_type: selector
                        .read_write_type
                        .as_deref()
                        .and_then(ReadWriteType::parse)
                        .unwrap_or_default(),
                    include_management_events: selector.include_management_events.unwrap_or(true),
                    data_resources: selector
                        .data_resources
                        .unwrap_or_default()
                        .into_iter()
                        .map(|resource| DataResource {
                            resource_type: resource.r#type.unwrap_or_default(),
                            values: resource.values.unwrap_or_default(),
                        })
                        .collect(),
                    exclude_management_event_sources: selector
                        .exclude_management_event_sources
                        .unwrap_or_default(),
                })
                .collect(),
        ),
        (None, Some(advanced)) => Selectors::Advanced(
            advanced
                .into_iter()
                .map(|selector| AdvancedEventSelector {
                    name: selector.name,
                    field_selectors: selector
                        .field_selectors
                        .into_iter()
                        .map(|field| FieldSelector {
                            field: field.field,
                            equals: field.equals.unwrap_or_default(),
                            starts_with: field.starts_with.unwrap_or_default(),
                            ends_with: field.ends_with.unwrap_or_default(),
                            not_equals: field.not_equals.unwrap_or_default(),
                            not_starts_with: field.not_starts_with.unwrap_or_default(),
                            not_ends_with: field.not_ends_with.unwrap_or_default(),
                        })
                        .collect(),
                })
                .collect(),
        ),
    };
    selectors.check().map_err(invalid)?;
    let before = trail.clone();
    trail.selectors = selectors;
    trail.note_change(&before, asking.event_id);
    // PutEventSelectors answers what GetEventSelectors would.
    Ok(TrailAnswer::keeping(event_selectors_answer(&trail), &trail))
}
