use std::fmt;
use std::str::FromStr;

/// The eight attributes LookupEvents can filter on, spelled as the API spells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LookupAttributeKey {
    EventId,
    EventName,
    ReadOnly,
    Username,
    ResourceType,
    ResourceName,
    EventSource,
    AccessKeyId,
}

impl LookupAttributeKey {
    pub const ALL: [LookupAttributeKey; 8] = [
        Self::EventId,
        Self::EventName,
        Self::ReadOnly,
        Self::Username,
        Self::ResourceType,
        Self::ResourceName,
        Self::EventSource,
        Self::AccessKeyId,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::EventId => "EventId",
            Self::EventName => "EventName",
            Self::ReadOnly => "ReadOnly",
            Self::Username => "Username",
            Self::ResourceType => "ResourceType",
            Self::ResourceName => "ResourceName",
            Self::EventSource => "EventSource",
            Self::AccessKeyId => "AccessKeyId",
        }
    }
}

impl fmt::Display for LookupAttributeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown lookup attribute key {0:?}")]
pub struct UnknownAttributeKey(pub String);

impl FromStr for LookupAttributeKey {
    type Err = UnknownAttributeKey;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|key| key.as_str() == text)
            .ok_or_else(|| UnknownAttributeKey(text.to_owned()))
    }
}

/// One `{AttributeKey, AttributeValue}` pair, already validated by the wire layer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LookupAttribute {
    pub key: LookupAttributeKey,
    pub value: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_round_trips_and_case_matters() {
        for key in LookupAttributeKey::ALL {
            assert_eq!(key.as_str().parse::<LookupAttributeKey>(), Ok(key));
        }
        assert!("eventname".parse::<LookupAttributeKey>().is_err());
    }
}
