//! State Cairn keeps beside the events, as named entries in namespaces: settings of the data
//! directory (its retention), schedules (when a secret's recovery window ends), and later
//! trails and delivery positions. A change is committed with the events it belongs to, so
//! a service event and the schedule it starts or ends are stored together or not at all.

/// One change to one entry: `Some` value puts it, `None` removes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateChange {
    pub namespace: String,
    pub key: String,
    pub value: Option<String>,
}

impl StateChange {
    pub fn put(namespace: &str, key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            namespace: namespace.to_owned(),
            key: key.into(),
            value: Some(value.into()),
        }
    }

    pub fn remove(namespace: &str, key: impl Into<String>) -> Self {
        Self {
            namespace: namespace.to_owned(),
            key: key.into(),
            value: None,
        }
    }
}
