//! Which trail takes which event: the trail's account (every account for an organization
//! trail), its regions (the home region, or every region for a multi-region trail; events
//! of global services go to every trail that includes them), its logging periods, and its
//! event selectors. Pure: a stored record's JSON in, a decision out.

use std::borrow::Cow;

use cairn_model::trail::{EventFacts, Trail};
use serde::Deserialize;
use serde_json::Value;

/// Services whose events CloudTrail records as global (in us-east-1) and delivers to every
/// trail that includes global service events, whatever its region.
const GLOBAL_SOURCES: &[&str] = &[
    "iam.amazonaws.com",
    "cloudfront.amazonaws.com",
    "route53.amazonaws.com",
    "waf.amazonaws.com",
    "organizations.amazonaws.com",
    "globalaccelerator.amazonaws.com",
    "signin.amazonaws.com",
];

/// Where STS's global endpoint records its calls.
const GLOBAL_STS_REGION: &str = "us-east-1";

/// What delivery reads from one stored record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordFacts {
    pub event_id: String,
    pub account_id: String,
    pub region: String,
    pub selectable: EventFacts,
}

#[derive(Deserialize)]
struct FactsView<'a> {
    #[serde(rename = "eventID", borrow, default)]
    event_id: Option<Cow<'a, str>>,
    #[serde(rename = "recipientAccountId", borrow, default)]
    recipient_account_id: Option<Cow<'a, str>>,
    #[serde(rename = "awsRegion", borrow, default)]
    aws_region: Option<Cow<'a, str>>,
    #[serde(rename = "eventCategory", borrow, default)]
    event_category: Option<Cow<'a, str>>,
    #[serde(rename = "managementEvent", default)]
    management_event: Option<bool>,
    #[serde(rename = "readOnly", default)]
    read_only: Option<bool>,
    #[serde(rename = "eventSource", borrow, default)]
    event_source: Option<Cow<'a, str>>,
    #[serde(rename = "eventName", borrow, default)]
    event_name: Option<Cow<'a, str>>,
    #[serde(rename = "eventType", borrow, default)]
    event_type: Option<Cow<'a, str>>,
    #[serde(rename = "userIdentity", borrow, default)]
    user_identity: Option<IdentityView<'a>>,
    #[serde(borrow, default)]
    resources: Option<Vec<ResourceView<'a>>>,
    #[serde(rename = "sessionCredentialFromConsole", default)]
    session_credential_from_console: Option<Value>,
    #[serde(rename = "errorCode", borrow, default)]
    error_code: Option<Cow<'a, str>>,
    #[serde(rename = "vpcEndpointId", borrow, default)]
    vpc_endpoint_id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct IdentityView<'a> {
    #[serde(rename = "accountId", borrow, default)]
    account_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    arn: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ResourceView<'a> {
    #[serde(rename = "ARN", borrow, default)]
    arn: Option<Cow<'a, str>>,
    #[serde(rename = "ARNPrefix", borrow, default)]
    arn_prefix: Option<Cow<'a, str>>,
    #[serde(rename = "type", borrow, default)]
    resource_type: Option<Cow<'a, str>>,
}

fn owned(text: Option<Cow<'_, str>>) -> String {
    text.map(Cow::into_owned).unwrap_or_default()
}

impl RecordFacts {
    pub fn of(record: &Value) -> Self {
        Self::from_json(&record.to_string()).unwrap_or_default()
    }

    /// The facts of a record's JSON text, read without building the whole record: delivery
    /// reads every event of the feed this way.
    pub fn from_json(text: &str) -> Option<Self> {
        let view: FactsView<'_> = serde_json::from_str(text).ok()?;
        let (identity_account, identity_arn) = match view.user_identity {
            Some(identity) => (identity.account_id, identity.arn),
            None => (None, None),
        };
        let event_category = match view.event_category {
            Some(category) => category.into_owned(),
            None if view.management_event == Some(false) => "Data".to_owned(),
            None => "Management".to_owned(),
        };
        let resources = view
            .resources
            .unwrap_or_default()
            .into_iter()
            .map(|resource| {
                let arn = match resource.arn {
                    Some(arn) if !arn.is_empty() => arn.into_owned(),
                    _ => owned(resource.arn_prefix),
                };
                (owned(resource.resource_type), arn)
            })
            .collect();
        Some(Self {
            event_id: owned(view.event_id),
            account_id: owned(view.recipient_account_id.or(identity_account)),
            region: owned(view.aws_region),
            selectable: EventFacts {
                event_category,
                read_only: view.read_only.unwrap_or(false),
                event_source: owned(view.event_source),
                event_name: owned(view.event_name),
                event_type: owned(view.event_type),
                resources,
                user_identity_arn: identity_arn.map(Cow::into_owned),
                session_credential_from_console: match view.session_credential_from_console {
                    Some(Value::String(text)) => text == "true",
                    Some(Value::Bool(flag)) => flag,
                    _ => false,
                },
                error_code: view.error_code.map(Cow::into_owned),
                vpc_endpoint_id: view.vpc_endpoint_id.map(Cow::into_owned),
            },
        })
    }

    /// Whether CloudTrail counts this as a global service's event.
    pub fn is_global(&self) -> bool {
        let source = self.selectable.event_source.as_str();
        // STS's global endpoint is us-east-1's: a call signed for us-east-1 is recorded
        // there and delivered as a global service event; one signed for any other region
        // was made to that region's endpoint and is that region's.
        GLOBAL_SOURCES.contains(&source)
            || (source == "sts.amazonaws.com" && self.region == GLOBAL_STS_REGION)
    }
}

/// Whether `trail` delivers the event (logging periods aside: see [`in_logging_period`]).
pub fn trail_takes(trail: &Trail, facts: &RecordFacts) -> bool {
    if !trail.is_organization_trail && facts.account_id != trail.account_id {
        return false;
    }
    let in_region = if facts.is_global() {
        trail.include_global_service_events
    } else {
        trail.is_multi_region_trail || facts.region == trail.home_region
    };
    in_region && trail.selectors.matches(&facts.selectable)
}

/// The trail as it chose events along the feed: each earlier selection up to its change's
/// feed position, then the trail as it is. A change is committed with its own event, so a
/// change whose event cannot be found (`None` from `stop_seq`) has left the history: it
/// ended before every event still stored.
pub struct Judges {
    earlier: Vec<(i64, Trail)>,
}

impl Judges {
    pub fn of(trail: &Trail, stop_seq: impl Fn(&str) -> Option<i64>) -> Self {
        Self {
            earlier: trail
                .earlier_selections
                .iter()
                .map(|earlier| {
                    let until = stop_seq(&earlier.until_event_id).unwrap_or(i64::MIN);
                    (until, trail.as_under(earlier))
                })
                .collect(),
        }
    }

    /// The trail that judges the event at feed position `seq`.
    pub fn at<'t>(&'t self, trail: &'t Trail, seq: i64) -> &'t Trail {
        self.earlier
            .iter()
            .find(|(until, _)| seq <= *until)
            .map_or(trail, |(_, judge)| judge)
    }
}

/// Whether feed position `seq` falls in one of the trail's logging periods, given where each
/// ended period's StopLogging event sits in the feed (`stop_seq`). The stop is committed
/// with its event, so a stop whose event cannot be found (`None`) has left the history: the
/// period ended before every event still stored, as an earlier selection does in [`Judges`].
pub fn in_logging_period(trail: &Trail, seq: i64, stop_seq: impl Fn(&str) -> Option<i64>) -> bool {
    trail.logging.periods.iter().any(|period| {
        seq > period.after_seq
            && match &period.until_event_id {
                None => true,
                Some(stop) => stop_seq(stop).is_some_and(|stop| seq <= stop),
            }
    })
}

#[cfg(test)]
mod tests {
    use cairn_model::trail::{EventSelector, LoggingPeriod, Selectors};
    use serde_json::json;

    use super::*;

    fn trail() -> Trail {
        Trail {
            name: "t".into(),
            account_id: "111111111111".into(),
            home_region: "eu-west-1".into(),
            include_global_service_events: true,
            ..Trail::default()
        }
    }

    fn record(source: &str, region: &str, account: &str) -> RecordFacts {
        RecordFacts::of(&json!({
            "eventID": "e", "eventSource": source, "eventName": "X", "awsRegion": region,
            "recipientAccountId": account, "eventCategory": "Management", "readOnly": true,
        }))
    }

    #[test]
    fn an_event_is_judged_by_the_selection_in_force_when_it_was_recorded() {
        let before = trail();
        let mut after = Trail {
            selectors: Selectors::Basic(vec![EventSelector {
                exclude_management_event_sources: vec!["kms.amazonaws.com".into()],
                ..EventSelector::default()
            }]),
            ..trail()
        };
        after.note_change(&before, "put-selectors");
        let kms = record("kms.amazonaws.com", "eu-west-1", "111111111111");
        let judges = Judges::of(&after, |id| (id == "put-selectors").then_some(10));
        assert!(trail_takes(judges.at(&after, 9), &kms), "before the change");
        assert!(
            trail_takes(judges.at(&after, 10), &kms),
            "the change's own call"
        );
        assert!(!trail_takes(judges.at(&after, 11), &kms), "after it");
        let swept = Judges::of(&after, |_| None);
        assert!(
            !trail_takes(swept.at(&after, 11), &kms),
            "a change whose event left the history ended before what is left"
        );
        let mut unchanged = after.clone();
        unchanged.note_change(&after, "again");
        assert_eq!(
            unchanged.earlier_selections.len(),
            1,
            "only changes are kept"
        );
    }

    #[test]
    fn sts_calls_of_the_global_endpoint_are_global_and_regional_ones_regional() {
        let single = trail();
        let global = record("sts.amazonaws.com", "us-east-1", "111111111111");
        let regional = record("sts.amazonaws.com", "ap-south-1", "111111111111");
        assert!(global.is_global() && !regional.is_global());
        assert!(
            trail_takes(&single, &global),
            "eu-west-1's trail takes global events"
        );
        assert!(!trail_takes(&single, &regional));
        let no_global = Trail {
            include_global_service_events: false,
            home_region: "us-east-1".into(),
            ..trail()
        };
        assert!(!trail_takes(&no_global, &global));
    }

    #[test]
    fn regions_accounts_and_global_services() {
        let single = trail();
        assert!(trail_takes(
            &single,
            &record("kms.amazonaws.com", "eu-west-1", "111111111111")
        ));
        assert!(!trail_takes(
            &single,
            &record("kms.amazonaws.com", "us-east-1", "111111111111")
        ));
        assert!(!trail_takes(
            &single,
            &record("kms.amazonaws.com", "eu-west-1", "222222222222")
        ));
        assert!(trail_takes(
            &single,
            &record("iam.amazonaws.com", "us-east-1", "111111111111")
        ));
        let no_global = Trail {
            include_global_service_events: false,
            ..trail()
        };
        assert!(!trail_takes(
            &no_global,
            &record("iam.amazonaws.com", "us-east-1", "111111111111")
        ));
        let multi = Trail {
            is_multi_region_trail: true,
            ..trail()
        };
        assert!(trail_takes(
            &multi,
            &record("kms.amazonaws.com", "ap-south-1", "111111111111")
        ));
        let organization = Trail {
            is_organization_trail: true,
            ..trail()
        };
        assert!(trail_takes(
            &organization,
            &record("kms.amazonaws.com", "eu-west-1", "222222222222")
        ));
    }

    #[test]
    fn selectors_decide_on_the_record() {
        let write_only = Trail {
            selectors: Selectors::Basic(vec![EventSelector {
                read_write_type: cairn_model::trail::ReadWriteType::WriteOnly,
                ..EventSelector::default()
            }]),
            ..trail()
        };
        assert!(!trail_takes(
            &write_only,
            &record("kms.amazonaws.com", "eu-west-1", "111111111111")
        ));
        let data = RecordFacts::of(&json!({
            "eventSource": "s3.amazonaws.com", "awsRegion": "eu-west-1", "managementEvent": false,
            "recipientAccountId": "111111111111", "resources": [{"type": "AWS::S3::Object", "ARNPrefix": "arn:aws:s3:::b/k"}],
        }));
        assert_eq!(data.selectable.event_category, "Data");
        assert_eq!(data.selectable.resources[0].1, "arn:aws:s3:::b/k");
        assert!(
            !trail_takes(&trail(), &data),
            "the default selector takes no data events"
        );
    }

    #[test]
    fn logging_periods_bound_the_feed() {
        let mut logged = trail();
        logged.logging.periods = vec![
            LoggingPeriod {
                after_seq: 10,
                until_event_id: Some("stop".into()),
            },
            LoggingPeriod {
                after_seq: 30,
                until_event_id: None,
            },
        ];
        let stops = |id: &str| (id == "stop").then_some(20);
        assert!(!in_logging_period(&logged, 10, stops));
        assert!(in_logging_period(&logged, 11, stops));
        assert!(
            in_logging_period(&logged, 20, stops),
            "the StopLogging call itself is logged"
        );
        assert!(!in_logging_period(&logged, 21, stops));
        assert!(!in_logging_period(&logged, 30, stops));
        assert!(in_logging_period(&logged, 31, stops));
        assert!(
            !in_logging_period(&logged, 25, |_| None),
            "a stop whose event left the history ended before every stored event"
        );
        assert!(
            in_logging_period(&logged, 31, |_| None),
            "the open period is not ended by a lost stop"
        );
    }
}
