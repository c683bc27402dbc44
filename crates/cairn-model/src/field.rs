use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A record field that may be absent, explicitly `null`, or present.
///
/// CloudTrail writes `"responseElements": null` for read-only calls and leaves optional
/// fields out entirely otherwise; a lossless model must keep the two apart, which
/// `Option<T>` cannot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Field<T> {
    #[default]
    Absent,
    Null,
    Present(T),
}

impl<T> Field<T> {
    pub fn is_absent(&self) -> bool {
        matches!(self, Field::Absent)
    }

    pub fn get(&self) -> Option<&T> {
        match self {
            Field::Present(value) => Some(value),
            _ => None,
        }
    }

    pub fn get_mut(&mut self) -> Option<&mut T> {
        match self {
            Field::Present(value) => Some(value),
            _ => None,
        }
    }
}

impl<T> From<Option<T>> for Field<T> {
    fn from(value: Option<T>) -> Self {
        match value {
            Some(value) => Field::Present(value),
            None => Field::Absent,
        }
    }
}

impl<T: Serialize> Serialize for Field<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Present(value) => value.serialize(serializer),
            Field::Absent | Field::Null => serializer.serialize_none(),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Reached only when the key is present (absent keys take `#[serde(default)]`).
        Ok(match Option::<T>::deserialize(deserializer)? {
            Some(value) => Field::Present(value),
            None => Field::Null,
        })
    }
}
