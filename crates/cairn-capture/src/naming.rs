//! How CloudTrail spells what a call carries: member names in lowerCamelCase (acronyms
//! included), map keys as the caller wrote them, query text typed as the model types it,
//! and JSON services' epoch-second timestamps as CloudTrail's dates. Shared by the request
//! side (`parameters`) and the answer side (`xml_answers`).

use cairn_model::format_recorded_date;
use serde_json::Value;

use crate::map_shapes::{End, MapShapes, Shape, ShapeRef};

/// A JSON call's whole input, lowerCamelCased, map keys and timestamps as CloudTrail
/// writes them, before anything is taken out of it.
pub fn json_input(service_id: &str, operation: &str, body: &[u8]) -> Option<Value> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(members)) => {
            let shape = MapShapes::builtin().of(service_id, operation, End::Input);
            Some(recorded_form(Value::Object(members), shape))
        }
        _ => None,
    }
}

/// A query value as the shape types it; a value that does not parse as its type stays text.
pub fn typed_text(text: String, shape: Option<&Shape>) -> Value {
    match shape {
        Some(Shape::Number) => match text.parse::<serde_json::Number>() {
            Ok(number) => Value::Number(number),
            Err(_) => Value::String(text),
        },
        Some(Shape::Boolean) if text.eq_ignore_ascii_case("true") => Value::Bool(true),
        Some(Shape::Boolean) if text.eq_ignore_ascii_case("false") => Value::Bool(false),
        _ => Value::String(text),
    }
}

/// `KeyId` → `keyId`, `ARN` → `arn`, `KMSKeyId` → `kmsKeyId`, recursively, as CloudTrail
/// spells members: a leading run of capitals is an acronym, lowercased whole except for a
/// capital that starts the next word.
pub fn lower_camel(value: Value) -> Value {
    match value {
        Value::Object(members) => Value::Object(
            members
                .into_iter()
                .map(|(key, value)| (lower_camel_name(&key), lower_camel(value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(lower_camel).collect()),
        other => other,
    }
}

/// [`lower_camel`], except that the keys of the maps `shape` places in `value` are kept as
/// they are: they are the caller's data (tag keys, table and attribute names). Timestamps stay
/// as the service sent them, for rules that read them.
pub fn lower_camel_shaped(value: Value, shape: Option<ShapeRef<'_>>) -> Value {
    shaped(value, shape, Timestamps::AsSent)
}

/// [`lower_camel_shaped`], with the timestamps a JSON 1.0/1.1 service sent as epoch seconds
/// written as CloudTrail records them ("Aug 2, 2024, 8:23:24 AM").
pub fn recorded_form(value: Value, shape: Option<ShapeRef<'_>>) -> Value {
    shaped(value, shape, Timestamps::AsRecorded)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Timestamps {
    AsSent,
    AsRecorded,
}

fn shaped(value: Value, shape: Option<ShapeRef<'_>>, timestamps: Timestamps) -> Value {
    let Some(shape) = shape else {
        return lower_camel(value);
    };
    match (shape.shape(), value) {
        (Some(Shape::Map(values)), Value::Object(entries)) => Value::Object(
            entries
                .into_iter()
                .map(|(key, value)| {
                    let values = values.map(|index| shape.at(index));
                    (key, shaped(value, values, timestamps))
                })
                .collect(),
        ),
        (Some(Shape::List(item)), Value::Array(items)) => Value::Array(
            items
                .into_iter()
                .map(|value| shaped(value, Some(shape.at(*item)), timestamps))
                .collect(),
        ),
        (Some(Shape::Structure(members)), Value::Object(entries)) => Value::Object(
            entries
                .into_iter()
                .map(|(key, value)| {
                    let member = members.get(&key).map(|index| shape.at(*index));
                    (lower_camel_name(&key), shaped(value, member, timestamps))
                })
                .collect(),
        ),
        (Some(Shape::Timestamp), Value::Number(seconds))
            if timestamps == Timestamps::AsRecorded =>
        {
            match seconds.as_f64() {
                Some(seconds) if seconds.is_finite() => {
                    Value::String(format_recorded_date((seconds * 1000.0).floor() as i64))
                }
                _ => Value::Number(seconds),
            }
        }
        (_, value) => lower_camel(value),
    }
}

pub fn lower_camel_name(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let leading_capitals = chars.iter().take_while(|c| c.is_uppercase()).count();
    let lowered = match leading_capitals {
        0 => 0,
        n if n == chars.len() => n,
        1 => 1,
        // A plural acronym (`VPCs`) is one word.
        n if chars[n..] == ['s'] => n,
        // The last capital of the run starts the next word when a lowercase letter follows.
        n if chars[n].is_lowercase() => n - 1,
        n => n,
    };
    chars
        .iter()
        .enumerate()
        .flat_map(|(index, c)| {
            let lower: Vec<char> = if index < lowered {
                c.to_lowercase().collect()
            } else {
                vec![*c]
            };
            lower
        })
        .collect()
}
