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
    /// When set, the change is made only if the entry still holds this value, and is
    /// otherwise skipped: a scheduler that read an entry must not undo a newer one.
    pub only_if: Option<String>,
}

impl StateChange {
    pub fn put(namespace: &str, key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            namespace: namespace.to_owned(),
            key: key.into(),
            value: Some(value.into()),
            only_if: None,
        }
    }

    pub fn remove(namespace: &str, key: impl Into<String>) -> Self {
        Self {
            namespace: namespace.to_owned(),
            key: key.into(),
            value: None,
            only_if: None,
        }
    }

    /// Removes the entry only if it still holds `read`, the value it was read with.
    pub fn remove_if_unchanged(
        namespace: &str,
        key: impl Into<String>,
        read: impl Into<String>,
    ) -> Self {
        Self {
            only_if: Some(read.into()),
            ..Self::remove(namespace, key)
        }
    }
}
