//! State Cairn keeps beside the events, as named entries in namespaces: settings of the data
//! directory (its retention), schedules (when a secret's recovery window ends), trails and
//! delivery positions, leases and the secrets nodes share. A change is committed with the
//! events it belongs to, so a service event and the schedule it starts or ends are stored
//! together or not at all.

/// One change to one entry: `Some` value puts it, `None` removes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateChange {
    pub namespace: String,
    pub key: String,
    pub value: Option<String>,
    pub precondition: Precondition,
}

/// When a change is made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Precondition {
    Always,
    /// Only if the entry still holds this value; otherwise skipped: a scheduler that read an
    /// entry must not undo a newer one.
    IfHolds(String),
    /// Only if there is no such entry yet; otherwise skipped: the first of several nodes to
    /// offer a value sets it.
    IfAbsent,
    /// The change writes nothing; the whole submission it is part of (its events and every
    /// other change) is refused unless the entry holds this value. A lease holder fences
    /// its writes with its lease this way.
    Requires(String),
}

impl StateChange {
    pub fn put(namespace: &str, key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            namespace: namespace.to_owned(),
            key: key.into(),
            value: Some(value.into()),
            precondition: Precondition::Always,
        }
    }

    pub fn remove(namespace: &str, key: impl Into<String>) -> Self {
        Self {
            namespace: namespace.to_owned(),
            key: key.into(),
            value: None,
            precondition: Precondition::Always,
        }
    }

    /// Removes the entry only if it still holds `read`, the value it was read with.
    pub fn remove_if_unchanged(
        namespace: &str,
        key: impl Into<String>,
        read: impl Into<String>,
    ) -> Self {
        Self {
            precondition: Precondition::IfHolds(read.into()),
            ..Self::remove(namespace, key)
        }
    }

    /// Puts the entry only if it still holds `read`.
    pub fn put_if_unchanged(
        namespace: &str,
        key: impl Into<String>,
        value: impl Into<String>,
        read: impl Into<String>,
    ) -> Self {
        Self {
            precondition: Precondition::IfHolds(read.into()),
            ..Self::put(namespace, key, value)
        }
    }

    /// Puts the entry only if there is none.
    pub fn put_if_absent(
        namespace: &str,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        Self {
            precondition: Precondition::IfAbsent,
            ..Self::put(namespace, key, value)
        }
    }

    /// Refuses the submission unless the entry holds `value`.
    pub fn require(namespace: &str, key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            namespace: namespace.to_owned(),
            key: key.into(),
            value: None,
            precondition: Precondition::Requires(value.into()),
        }
    }
}
