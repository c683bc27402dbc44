use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("eventTime {0:?} is not an ISO 8601 UTC timestamp")]
pub struct EventTimeError(pub String);

/// Parses a record's `eventTime` (`2024-07-31T14:23:46Z`, fractions and offsets tolerated)
/// into epoch milliseconds.
pub fn parse_event_time(text: &str) -> Result<i64, EventTimeError> {
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.timestamp_millis())
        .map_err(|_| EventTimeError(text.to_owned()))
}

/// Formats epoch milliseconds the way CloudTrail writes `eventTime`: whole seconds, `Z`.
pub fn format_event_time(epoch_millis: i64) -> String {
    Utc.timestamp_millis_opt(epoch_millis)
        .single()
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Formats epoch milliseconds the way CloudTrail writes the timestamps of JSON-protocol
/// services and STS inside `requestParameters` and `responseElements`: "Aug 2, 2024, 8:23:24
/// AM", UTC, whole seconds.
pub fn format_recorded_date(epoch_millis: i64) -> String {
    Utc.timestamp_millis_opt(epoch_millis)
        .single()
        .unwrap_or_default()
        .format("%b %-d, %Y, %-I:%M:%S %p")
        .to_string()
}

/// [`format_recorded_date`] as IAM's records spell it, with no comma after the year: "Aug 1,
/// 2024 1:33:28 PM".
pub fn format_legacy_recorded_date(epoch_millis: i64) -> String {
    Utc.timestamp_millis_opt(epoch_millis)
        .single()
        .unwrap_or_default()
        .format("%b %-d, %Y %-I:%M:%S %p")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cloudtrail_forms() {
        assert_eq!(parse_event_time("1970-01-01T00:00:01Z"), Ok(1000));
        assert_eq!(parse_event_time("1970-01-01T00:00:01.250Z"), Ok(1250));
        assert_eq!(parse_event_time("1970-01-01T01:00:01+01:00"), Ok(1000));
        assert!(parse_event_time("2020-09-14 00:44:23").is_err());
        assert!(parse_event_time("").is_err());
    }

    #[test]
    fn recorded_dates_are_spelled_as_cloudtrail_spells_them() {
        assert_eq!(
            format_recorded_date(1_722_587_004_000),
            "Aug 2, 2024, 8:23:24 AM"
        );
        assert_eq!(
            format_recorded_date(1_722_628_800_999),
            "Aug 2, 2024, 8:00:00 PM"
        );
        assert_eq!(format_recorded_date(0), "Jan 1, 1970, 12:00:00 AM");
        assert_eq!(
            format_legacy_recorded_date(1_722_519_208_000),
            "Aug 1, 2024 1:33:28 PM"
        );
    }

    #[test]
    fn formats_whole_seconds() {
        assert_eq!(format_event_time(1_700_000_000_999), "2023-11-14T22:13:20Z");
    }
}
