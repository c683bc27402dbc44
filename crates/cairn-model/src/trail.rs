//! Trails: what one is (its bucket, prefix, regions, validation, notifications, tags and
//! logging state), the rules for its name, and its event selectors: which events it delivers.
//! Basic selectors (management read/write, excluded sources, data resources) and advanced
//! ones (field selectors with every operator of the API) both decide on [`EventFacts`], the
//! few fields of a record that selectors look at. Pure: no IO, no wire format.

use serde::{Deserialize, Serialize};

/// One trail, as Cairn keeps it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trail {
    pub name: String,
    pub account_id: String,
    pub home_region: String,
    pub s3_bucket_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_key_prefix: Option<String>,
    /// As the caller gave it (a name or an ARN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sns_topic_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sns_topic_arn: Option<String>,
    pub include_global_service_events: bool,
    pub is_multi_region_trail: bool,
    pub log_file_validation_enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_watch_logs_log_group_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_watch_logs_role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    pub is_organization_trail: bool,
    /// An organization trail's organization (`o-...`): its files go under
    /// `AWSLogs/<organization>/<account>/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_id: Option<String>,
    #[serde(default)]
    pub selectors: Selectors,
    #[serde(default)]
    pub insight_selectors: Vec<InsightSelector>,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    #[serde(default)]
    pub logging: Logging,
    /// What chose the trail's events before each change of it, oldest first: an event is
    /// judged by what was in force when it was recorded, not when it is delivered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier_selections: Vec<EarlierSelection>,
}

/// How a trail chose its events until a change: in force up to and including the event of
/// the call that changed it (`until_event_id`, numbered only when it commits).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EarlierSelection {
    pub until_event_id: String,
    pub selectors: Selectors,
    pub include_global_service_events: bool,
    pub is_multi_region_trail: bool,
    pub is_organization_trail: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_id: Option<String>,
}

/// How many earlier selections a trail keeps: a delivery that lags behind more changes
/// than this judges the oldest of its events by the oldest kept.
pub const MAX_EARLIER_SELECTIONS: usize = 50;

/// Whether a trail is logging, since or until when (epoch milliseconds), and which stretches
/// of the store's feed it logged: a stopped trail delivers nothing for its stopped time.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Logging {
    pub is_logging: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_millis: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_millis: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub periods: Vec<LoggingPeriod>,
}

/// One stretch of logging: every event after feed position `after_seq`, up to and including
/// the StopLogging call that ended it (`until_event_id`), if it has ended. The stop is
/// named by its event, whose number is given only when it commits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggingPeriod {
    pub after_seq: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_event_id: Option<String>,
}

impl Logging {
    /// StartLogging at feed position `last_seq`; a trail already logging is left as it is.
    pub fn start(&mut self, last_seq: i64, now_millis: i64) {
        if self.is_logging {
            return;
        }
        self.is_logging = true;
        self.started_millis = Some(now_millis);
        self.periods.push(LoggingPeriod {
            after_seq: last_seq,
            until_event_id: None,
        });
    }

    /// StopLogging by the call whose event is `event_id`.
    pub fn stop(&mut self, event_id: &str, now_millis: i64) {
        if !self.is_logging {
            return;
        }
        self.is_logging = false;
        self.stopped_millis = Some(now_millis);
        if let Some(open) = self
            .periods
            .iter_mut()
            .rev()
            .find(|period| period.until_event_id.is_none())
        {
            open.until_event_id = Some(event_id.to_owned());
        }
    }
}

impl Trail {
    pub fn arn(&self) -> String {
        trail_arn(&self.home_region, &self.account_id, &self.name)
    }

    /// Whether the trail shows in `region`: its home, or every region if multi-region (as a
    /// shadow trail outside its home).
    pub fn visible_in(&self, region: &str) -> bool {
        self.home_region == region || self.is_multi_region_trail
    }

    /// How the trail chooses its events now, as an earlier selection ending at `event_id`.
    fn selection_until(&self, event_id: &str) -> EarlierSelection {
        EarlierSelection {
            until_event_id: event_id.to_owned(),
            selectors: self.selectors.clone(),
            include_global_service_events: self.include_global_service_events,
            is_multi_region_trail: self.is_multi_region_trail,
            is_organization_trail: self.is_organization_trail,
            organization_id: self.organization_id.clone(),
        }
    }

    /// Records that the call whose event is `event_id` changed the trail from `before`: if
    /// what chooses its events changed, what chose them before stays in force for the
    /// events up to that call's.
    pub fn note_change(&mut self, before: &Trail, event_id: &str) {
        let earlier = before.selection_until(event_id);
        let now = self.selection_until(event_id);
        if earlier == now {
            return;
        }
        self.earlier_selections.push(earlier);
        let excess = self
            .earlier_selections
            .len()
            .saturating_sub(MAX_EARLIER_SELECTIONS);
        self.earlier_selections.drain(..excess);
    }

    /// The trail as it chose its events under `earlier`.
    pub fn as_under(&self, earlier: &EarlierSelection) -> Trail {
        Trail {
            selectors: earlier.selectors.clone(),
            include_global_service_events: earlier.include_global_service_events,
            is_multi_region_trail: earlier.is_multi_region_trail,
            is_organization_trail: earlier.is_organization_trail,
            organization_id: earlier.organization_id.clone(),
            earlier_selections: Vec::new(),
            ..self.clone()
        }
    }

    /// Whether the selectors are other than the default (all management events, no data).
    pub fn has_custom_event_selectors(&self) -> bool {
        match &self.selectors {
            Selectors::Default => false,
            Selectors::Basic(selectors) => selectors.as_slice() != [EventSelector::default()],
            Selectors::Advanced(_) => true,
        }
    }
}

pub fn trail_arn(region: &str, account_id: &str, name: &str) -> String {
    format!("arn:aws:cloudtrail:{region}:{account_id}:trail/{name}")
}

/// A trail ARN's parts: (region, account, name).
pub fn parse_trail_arn(arn: &str) -> Option<(&str, &str, &str)> {
    let rest = arn.strip_prefix("arn:")?;
    let mut parts = rest.splitn(5, ':');
    let _partition = parts.next().filter(|partition| !partition.is_empty())?;
    let service = parts.next()?;
    let region = parts.next()?;
    let account = parts.next()?;
    let resource = parts.next()?;
    let name = resource.strip_prefix("trail/")?;
    let valid = service == "cloudtrail"
        && !region.is_empty()
        && account.len() == 12
        && account.bytes().all(|byte| byte.is_ascii_digit())
        && !name.is_empty();
    valid.then_some((region, account, name))
}

/// Why a trail name is refused, in the words of CloudTrail's `InvalidTrailNameException`.
pub fn check_trail_name(name: &str) -> Result<(), String> {
    let length = name.chars().count();
    if length < 3 {
        return Err(format!(
            "Trail name too short. Minimum allowed length: 3 characters. Specified name length: {length} characters."
        ));
    }
    if length > 128 {
        return Err(format!(
            "Trail name too long. Maximum allowed length: 128 characters. Specified name length: {length} characters."
        ));
    }
    let special = |byte: u8| matches!(byte, b'.' | b'_' | b'-');
    if !name
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || special(byte))
    {
        return Err("Trail name or ARN can only contain uppercase letters, lowercase letters, numbers, periods (.), hyphens (-), and underscores (_).".to_owned());
    }
    let bytes = name.as_bytes();
    if !bytes[0].is_ascii_alphanumeric() {
        return Err("Trail name must starts with a letter or number.".to_owned());
    }
    if !bytes[bytes.len() - 1].is_ascii_alphanumeric() {
        return Err("Trail name must ends with a letter or number.".to_owned());
    }
    if bytes
        .windows(2)
        .any(|pair| special(pair[0]) && special(pair[1]))
    {
        return Err("Trail name cannot contain consecutive special characters.".to_owned());
    }
    let looks_like_ip = name.split('.').count() == 4
        && name
            .split('.')
            .all(|part| (1..=3).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit()));
    if looks_like_ip {
        return Err("Trail name cannot match an IP address.".to_owned());
    }
    Ok(())
}

/// Whether `name` is a valid S3 bucket name (S3's rules for new buckets).
pub fn is_valid_bucket_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (3..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'.' || *b == b'-')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && !name.contains("..")
        && !name.contains(".-")
        && !name.contains("-.")
        && !(name.split('.').count() == 4 && name.split('.').all(|part| part.parse::<u8>().is_ok()))
}

/// A trail's event selectors: none (the default: every management event), basic, or
/// advanced. Putting one kind replaces the other.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Selectors {
    #[default]
    Default,
    Basic(Vec<EventSelector>),
    Advanced(Vec<AdvancedEventSelector>),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadWriteType {
    ReadOnly,
    WriteOnly,
    #[default]
    All,
}

impl ReadWriteType {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "ReadOnly" => Some(Self::ReadOnly),
            "WriteOnly" => Some(Self::WriteOnly),
            "All" => Some(Self::All),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReadOnly => "ReadOnly",
            Self::WriteOnly => "WriteOnly",
            Self::All => "All",
        }
    }

    fn admits(self, read_only: bool) -> bool {
        match self {
            Self::ReadOnly => read_only,
            Self::WriteOnly => !read_only,
            Self::All => true,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSelector {
    pub read_write_type: ReadWriteType,
    pub include_management_events: bool,
    pub data_resources: Vec<DataResource>,
    pub exclude_management_event_sources: Vec<String>,
}

impl Default for EventSelector {
    fn default() -> Self {
        Self {
            read_write_type: ReadWriteType::All,
            include_management_events: true,
            data_resources: Vec::new(),
            exclude_management_event_sources: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataResource {
    pub resource_type: String,
    pub values: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdvancedEventSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub field_selectors: Vec<FieldSelector>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldSelector {
    pub field: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub equals: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub starts_with: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ends_with: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_equals: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_starts_with: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ends_with: Vec<String>,
}

impl FieldSelector {
    fn value_count(&self) -> usize {
        self.equals.len()
            + self.starts_with.len()
            + self.ends_with.len()
            + self.not_equals.len()
            + self.not_starts_with.len()
            + self.not_ends_with.len()
    }

    fn only_equals(&self) -> bool {
        self.value_count() == self.equals.len()
    }

    /// Whether one value satisfies every condition.
    fn holds_for(&self, value: &str) -> bool {
        let any = |list: &[String], test: &dyn Fn(&str) -> bool| {
            list.is_empty() || list.iter().any(|item| test(item))
        };
        let none =
            |list: &[String], test: &dyn Fn(&str) -> bool| !list.iter().any(|item| test(item));
        any(&self.equals, &|item| value == item)
            && any(&self.starts_with, &|item| value.starts_with(item))
            && any(&self.ends_with, &|item| value.ends_with(item))
            && none(&self.not_equals, &|item| value == item)
            && none(&self.not_starts_with, &|item| value.starts_with(item))
            && none(&self.not_ends_with, &|item| value.ends_with(item))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InsightSelector {
    pub insight_type: String,
    #[serde(default)]
    pub event_categories: Vec<String>,
}

/// What selectors look at in a record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFacts {
    /// `Management`, `Data`, `NetworkActivity` (service events count as management).
    pub event_category: String,
    pub read_only: bool,
    pub event_source: String,
    pub event_name: String,
    pub event_type: String,
    /// (type, ARN) of each resource.
    pub resources: Vec<(String, String)>,
    pub user_identity_arn: Option<String>,
    pub session_credential_from_console: bool,
    pub error_code: Option<String>,
    pub vpc_endpoint_id: Option<String>,
}

/// The basic selectors' only data resource types.
pub const BASIC_DATA_RESOURCE_TYPES: &[&str] = &[
    "AWS::S3::Object",
    "AWS::Lambda::Function",
    "AWS::DynamoDB::Table",
];
/// The only sources a management selector may exclude.
pub const EXCLUDABLE_SOURCES: &[&str] = &["kms.amazonaws.com", "rdsdata.amazonaws.com"];
/// Fields an advanced selector may name for a trail.
pub const ADVANCED_FIELDS: &[&str] = &[
    "eventCategory",
    "eventSource",
    "eventName",
    "eventType",
    "readOnly",
    "resources.type",
    "resources.ARN",
    "sessionCredentialFromConsole",
    "userIdentity.arn",
    "errorCode",
    "vpcEndpointId",
];

impl Selectors {
    /// Whether the trail delivers the event.
    pub fn matches(&self, event: &EventFacts) -> bool {
        match self {
            Self::Default => event.event_category == "Management",
            Self::Basic(selectors) => selectors
                .iter()
                .any(|selector| basic_matches(selector, event)),
            Self::Advanced(selectors) => selectors.iter().any(|selector| {
                selector
                    .field_selectors
                    .iter()
                    .all(|field| field_matches(field, event))
            }),
        }
    }

    /// CloudTrail's limits and rules (`InvalidEventSelectorsException`'s message on failure).
    pub fn check(&self) -> Result<(), String> {
        match self {
            Self::Default => Ok(()),
            Self::Basic(selectors) => check_basic(selectors),
            Self::Advanced(selectors) => check_advanced(selectors),
        }
    }
}

fn basic_matches(selector: &EventSelector, event: &EventFacts) -> bool {
    if !selector.read_write_type.admits(event.read_only) {
        return false;
    }
    match event.event_category.as_str() {
        "Management" => {
            selector.include_management_events
                && !selector
                    .exclude_management_event_sources
                    .contains(&event.event_source)
        }
        "Data" => selector.data_resources.iter().any(|resource| {
            event.resources.iter().any(|(kind, arn)| {
                *kind == resource.resource_type
                    && resource
                        .values
                        .iter()
                        .any(|value| data_resource_covers(&resource.resource_type, value, arn))
            })
        }),
        _ => false,
    }
}

/// Whether a basic data resource value names `arn`: `arn:aws:s3` (every bucket), an S3 ARN
/// prefix (`arn:aws:s3:::bucket/`, `arn:aws:s3:::bucket/prefix`), `arn:aws:lambda` or
/// `arn:aws:dynamodb` (every function or table), or the very function or table.
fn data_resource_covers(resource_type: &str, value: &str, arn: &str) -> bool {
    match resource_type {
        "AWS::S3::Object" => value == "arn:aws:s3" || arn.starts_with(value),
        "AWS::Lambda::Function" => {
            value == "arn:aws:lambda"
                || arn == value
                || arn
                    .strip_prefix(value)
                    .is_some_and(|rest| rest.starts_with(':'))
        }
        "AWS::DynamoDB::Table" => value == "arn:aws:dynamodb" || arn == value,
        _ => false,
    }
}

fn field_matches(field: &FieldSelector, event: &EventFacts) -> bool {
    let one = |value: &str| field.holds_for(value);
    match field.field.as_str() {
        "eventCategory" => one(&event.event_category),
        "eventSource" => one(&event.event_source),
        "eventName" => one(&event.event_name),
        "eventType" => one(&event.event_type),
        "readOnly" => one(if event.read_only { "true" } else { "false" }),
        "sessionCredentialFromConsole" => one(if event.session_credential_from_console {
            "true"
        } else {
            "false"
        }),
        "userIdentity.arn" => one(event.user_identity_arn.as_deref().unwrap_or("")),
        "errorCode" => one(event.error_code.as_deref().unwrap_or("")),
        "vpcEndpointId" => one(event.vpc_endpoint_id.as_deref().unwrap_or("")),
        "resources.type" => event.resources.iter().any(|(kind, _)| one(kind)),
        "resources.ARN" => event.resources.iter().any(|(_, arn)| one(arn)),
        _ => false,
    }
}

fn check_basic(selectors: &[EventSelector]) -> Result<(), String> {
    if selectors.len() > 5 {
        return Err("You can specify up to 5 event selectors for a trail.".to_owned());
    }
    let mut values = 0;
    for selector in selectors {
        for resource in &selector.data_resources {
            if !BASIC_DATA_RESOURCE_TYPES.contains(&resource.resource_type.as_str()) {
                return Err(format!(
                    "Value {} for parameter DataResources.Type is invalid.",
                    resource.resource_type
                ));
            }
            for value in &resource.values {
                let prefix = match resource.resource_type.as_str() {
                    "AWS::S3::Object" => "arn:aws:s3",
                    "AWS::Lambda::Function" => "arn:aws:lambda",
                    _ => "arn:aws:dynamodb",
                };
                let well_formed = value == prefix
                    || (resource.resource_type == "AWS::S3::Object"
                        && value.starts_with("arn:aws:s3:::")
                        && value.len() > "arn:aws:s3:::".len())
                    || (resource.resource_type != "AWS::S3::Object"
                        && value.starts_with(&format!("{prefix}:")));
                if !well_formed {
                    return Err(format!(
                        "Value {value} for parameter DataResources.Values is invalid."
                    ));
                }
            }
            values += resource.values.len();
        }
        for source in &selector.exclude_management_event_sources {
            if !EXCLUDABLE_SOURCES.contains(&source.as_str()) {
                return Err(format!(
                    "Value {source} for parameter ExcludeManagementEventSources is invalid. Valid values are kms.amazonaws.com and rdsdata.amazonaws.com."
                ));
            }
        }
    }
    if values > 250 {
        return Err(format!(
            "You can specify up to 250 data resources for a trail; {values} were given."
        ));
    }
    Ok(())
}

fn check_advanced(selectors: &[AdvancedEventSelector]) -> Result<(), String> {
    let mut values = 0;
    for selector in selectors {
        if selector.field_selectors.is_empty() {
            return Err(
                "An advanced event selector must have at least one field selector.".to_owned(),
            );
        }
        let mut category = None;
        for field in &selector.field_selectors {
            if !ADVANCED_FIELDS.contains(&field.field.as_str()) {
                return Err(format!("Invalid field: {}.", field.field));
            }
            if field.value_count() == 0 {
                return Err(format!("The field {} has no condition.", field.field));
            }
            let equals_only = ["eventCategory", "readOnly", "resources.type"];
            if equals_only.contains(&field.field.as_str()) && !field.only_equals() {
                return Err(format!(
                    "The field {} supports only the Equals operator.",
                    field.field
                ));
            }
            let all = [
                &field.equals,
                &field.starts_with,
                &field.ends_with,
                &field.not_equals,
                &field.not_starts_with,
                &field.not_ends_with,
            ];
            if all
                .iter()
                .flat_map(|list| list.iter())
                .any(|value| value.is_empty() || value.chars().count() > 2048)
            {
                return Err(format!(
                    "A value of the field {} is empty or longer than 2048 characters.",
                    field.field
                ));
            }
            if field.field == "eventCategory" {
                category = field.equals.first().cloned();
            }
            values += field.value_count();
        }
        match category.as_deref() {
            None => {
                return Err(
                    "Each advanced event selector must have an eventCategory field selector."
                        .to_owned(),
                )
            }
            Some("Data")
                if !selector
                    .field_selectors
                    .iter()
                    .any(|field| field.field == "resources.type") =>
            {
                return Err(
                    "A data event selector must have a resources.type field selector.".to_owned(),
                );
            }
            Some("Management" | "Data" | "NetworkActivity") => {}
            Some(other) => return Err(format!("Invalid eventCategory: {other}.")),
        }
    }
    if values > 500 {
        return Err(format!(
            "You can specify up to 500 values for all conditions in all advanced event selectors; {values} were given."
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn management(source: &str, read_only: bool) -> EventFacts {
        EventFacts {
            event_category: "Management".into(),
            read_only,
            event_source: source.into(),
            event_name: "Call".into(),
            event_type: "AwsApiCall".into(),
            ..EventFacts::default()
        }
    }

    fn s3_object(bucket: &str, key: &str, read_only: bool) -> EventFacts {
        EventFacts {
            event_category: "Data".into(),
            read_only,
            event_source: "s3.amazonaws.com".into(),
            event_name: if read_only { "GetObject" } else { "PutObject" }.into(),
            event_type: "AwsApiCall".into(),
            resources: vec![
                (
                    "AWS::S3::Object".into(),
                    format!("arn:aws:s3:::{bucket}/{key}"),
                ),
                ("AWS::S3::Bucket".into(), format!("arn:aws:s3:::{bucket}")),
            ],
            ..EventFacts::default()
        }
    }

    #[test]
    fn trail_names_follow_cloudtrails_rules() {
        for good in ["abc", "my-trail_1.a", "A1", "x".repeat(128).as_str()] {
            if good.len() >= 3 {
                assert_eq!(check_trail_name(good), Ok(()), "{good}");
            }
        }
        for bad in [
            "ab",
            "-abc",
            "abc-",
            "my-_namespace",
            "my--namespace",
            "a b",
            "192.168.5.4",
        ] {
            assert!(check_trail_name(bad).is_err(), "{bad}");
        }
        assert!(check_trail_name(&"x".repeat(129))
            .unwrap_err()
            .contains("too long"));
        assert_eq!(
            parse_trail_arn("arn:aws:cloudtrail:us-east-1:111122223333:trail/t"),
            Some(("us-east-1", "111122223333", "t"))
        );
        assert_eq!(
            parse_trail_arn("arn:aws:cloudtrail:us-east-1:1:trail/t"),
            None
        );
        assert_eq!(parse_trail_arn("arn:aws:s3:::bucket"), None);
    }

    #[test]
    fn the_default_delivers_management_events_only() {
        assert!(Selectors::Default.matches(&management("kms.amazonaws.com", false)));
        assert!(!Selectors::Default.matches(&s3_object("b", "k", true)));
    }

    #[test]
    fn basic_selectors_filter_read_write_sources_and_data_resources() {
        let read_only = Selectors::Basic(vec![EventSelector {
            read_write_type: ReadWriteType::ReadOnly,
            ..EventSelector::default()
        }]);
        assert!(read_only.matches(&management("ec2.amazonaws.com", true)));
        assert!(!read_only.matches(&management("ec2.amazonaws.com", false)));
        let no_kms = Selectors::Basic(vec![EventSelector {
            exclude_management_event_sources: vec!["kms.amazonaws.com".into()],
            ..EventSelector::default()
        }]);
        assert!(!no_kms.matches(&management("kms.amazonaws.com", false)));
        assert!(no_kms.matches(&management("iam.amazonaws.com", false)));
        let one_bucket = Selectors::Basic(vec![EventSelector {
            include_management_events: false,
            data_resources: vec![DataResource {
                resource_type: "AWS::S3::Object".into(),
                values: vec!["arn:aws:s3:::logs/".into()],
            }],
            ..EventSelector::default()
        }]);
        assert!(one_bucket.matches(&s3_object("logs", "a.txt", false)));
        assert!(!one_bucket.matches(&s3_object("logs-other", "a.txt", false)));
        assert!(!one_bucket.matches(&management("s3.amazonaws.com", false)));
        let every_bucket = Selectors::Basic(vec![EventSelector {
            data_resources: vec![DataResource {
                resource_type: "AWS::S3::Object".into(),
                values: vec!["arn:aws:s3".into()],
            }],
            ..EventSelector::default()
        }]);
        assert!(every_bucket.matches(&s3_object("any", "k", true)));
    }

    #[test]
    fn lambda_and_dynamodb_data_resources() {
        let data = |kind: &str, arn: &str| EventFacts {
            event_category: "Data".into(),
            resources: vec![(kind.into(), arn.into())],
            ..EventFacts::default()
        };
        let selector = |kind: &str, value: &str| {
            Selectors::Basic(vec![EventSelector {
                include_management_events: false,
                data_resources: vec![DataResource {
                    resource_type: kind.into(),
                    values: vec![value.into()],
                }],
                ..EventSelector::default()
            }])
        };
        let function = "arn:aws:lambda:us-east-1:111111111111:function:resize";
        let one_function = selector("AWS::Lambda::Function", function);
        assert!(one_function.matches(&data("AWS::Lambda::Function", function)));
        assert!(one_function.matches(&data("AWS::Lambda::Function", &format!("{function}:live"))));
        assert!(!one_function.matches(&data("AWS::Lambda::Function", &format!("{function}-other"))));
        assert!(selector("AWS::Lambda::Function", "arn:aws:lambda")
            .matches(&data("AWS::Lambda::Function", function)));
        let table = "arn:aws:dynamodb:us-east-1:111111111111:table/orders";
        let one_table = selector("AWS::DynamoDB::Table", table);
        assert!(one_table.matches(&data("AWS::DynamoDB::Table", table)));
        assert!(!one_table.matches(&data("AWS::DynamoDB::Table", &format!("{table}-archive"))));
        assert!(
            !one_table.matches(&data("AWS::Lambda::Function", table)),
            "the type must agree"
        );
        assert!(selector("AWS::DynamoDB::Table", "arn:aws:dynamodb")
            .matches(&data("AWS::DynamoDB::Table", table)));
    }

    #[test]
    fn advanced_selectors_apply_every_operator() {
        let selectors = Selectors::Advanced(vec![
            AdvancedEventSelector {
                name: Some("management without KMS".into()),
                field_selectors: vec![
                    FieldSelector {
                        field: "eventCategory".into(),
                        equals: vec!["Management".into()],
                        ..FieldSelector::default()
                    },
                    FieldSelector {
                        field: "eventSource".into(),
                        not_equals: vec!["kms.amazonaws.com".into()],
                        ..FieldSelector::default()
                    },
                ],
            },
            AdvancedEventSelector {
                name: None,
                field_selectors: vec![
                    FieldSelector {
                        field: "eventCategory".into(),
                        equals: vec!["Data".into()],
                        ..FieldSelector::default()
                    },
                    FieldSelector {
                        field: "resources.type".into(),
                        equals: vec!["AWS::S3::Object".into()],
                        ..FieldSelector::default()
                    },
                    FieldSelector {
                        field: "resources.ARN".into(),
                        starts_with: vec!["arn:aws:s3:::audit/".into()],
                        not_ends_with: vec![".tmp".into()],
                        ..FieldSelector::default()
                    },
                ],
            },
        ]);
        assert_eq!(selectors.check(), Ok(()));
        assert!(selectors.matches(&management("iam.amazonaws.com", false)));
        assert!(!selectors.matches(&management("kms.amazonaws.com", false)));
        assert!(selectors.matches(&s3_object("audit", "2026/a.json", false)));
        assert!(!selectors.matches(&s3_object("audit", "2026/a.tmp", false)));
        assert!(!selectors.matches(&s3_object("other", "a.json", false)));
    }

    #[test]
    fn selector_limits_are_enforced() {
        let too_many = Selectors::Basic(vec![EventSelector::default(); 6]);
        assert!(too_many.check().is_err());
        let bad_source = Selectors::Basic(vec![EventSelector {
            exclude_management_event_sources: vec!["s3.amazonaws.com".into()],
            ..EventSelector::default()
        }]);
        assert!(bad_source
            .check()
            .unwrap_err()
            .contains("ExcludeManagementEventSources"));
        let bad_type = Selectors::Basic(vec![EventSelector {
            data_resources: vec![DataResource {
                resource_type: "AWS::SNS::Topic".into(),
                values: vec!["arn:aws:sns".into()],
            }],
            ..EventSelector::default()
        }]);
        assert!(bad_type.check().is_err());
        let no_category = Selectors::Advanced(vec![AdvancedEventSelector {
            name: None,
            field_selectors: vec![FieldSelector {
                field: "eventSource".into(),
                equals: vec!["s3.amazonaws.com".into()],
                ..FieldSelector::default()
            }],
        }]);
        assert!(no_category.check().is_err());
        let starts_on_category = Selectors::Advanced(vec![AdvancedEventSelector {
            name: None,
            field_selectors: vec![FieldSelector {
                field: "eventCategory".into(),
                starts_with: vec!["Man".into()],
                ..FieldSelector::default()
            }],
        }]);
        assert!(starts_on_category.check().is_err());
        let many_values = Selectors::Basic(vec![EventSelector {
            data_resources: vec![DataResource {
                resource_type: "AWS::S3::Object".into(),
                values: (0..251).map(|n| format!("arn:aws:s3:::b{n}/")).collect(),
            }],
            ..EventSelector::default()
        }]);
        assert!(many_values.check().is_err());
    }

    #[test]
    fn bucket_names_follow_s3s_rules() {
        assert!(is_valid_bucket_name("cloudtrail-logs.2026"));
        for bad in [
            "ab",
            "Upper",
            "-start",
            "end-",
            "a..b",
            "192.168.1.1",
            "under_score",
        ] {
            assert!(!is_valid_bucket_name(bad), "{bad}");
        }
    }
}
