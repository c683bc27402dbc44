//! How DynamoDB's item calls appear in their records. DynamoDB never logs the value of an
//! attribute that is not part of the table's key:
//!
//! - a classic-API call logs its `key` with the values unwrapped from their type descriptors
//!   (`{"Artist": "No One You Know"}`), and the *names* of the attributes it writes
//!   (`item: ["Artist", "SongTitle", "AlbumTitle"]`);
//! - expressions are logged with their name placeholders (`expressionAttributeNames`) but
//!   never their values (`expressionAttributeValues`, the legacy `expected`,
//!   `attributeUpdates` and filter value lists);
//! - a transaction logs its items as `requestItems`, each with its `operation`;
//! - a PartiQL statement is logged with every literal replaced by `***(Redacted)`, except a
//!   key attribute's value compared in its `WHERE` clause; its `parameters` are not logged.
//!
//! Which attributes are a table's key is the upstream's knowledge, not the call's: the
//! gateway passes what it knows as [`KeySchemas`]. Where a table's key is not known, nothing
//! of the item is logged but its attribute names: an audit trail that cannot tell a key from
//! a value must not log either.

use std::collections::HashMap;

use serde_json::{Map, Value};

/// What stands in for a value in a logged PartiQL statement.
pub const REDACTED: &str = "***(Redacted)";

/// The key attribute names of the tables a call touches, as far as they are known.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeySchemas {
    tables: HashMap<String, Vec<String>>,
}

impl KeySchemas {
    /// Records `table`'s key attributes (`table` may be a name or an ARN).
    pub fn insert(&mut self, table: &str, key_attributes: Vec<String>) {
        self.tables
            .insert(table_name(table).to_owned(), key_attributes);
    }

    /// `table`'s key attributes, if known.
    pub fn key_of(&self, table: &str) -> Option<&[String]> {
        self.tables.get(table_name(table)).map(Vec::as_slice)
    }
}

/// The table's name, whether the caller gave its name or its ARN (an index or stream ARN
/// names its table too).
pub fn table_name(table: &str) -> &str {
    match table.split_once(":table/") {
        Some((_, rest)) => rest.split('/').next().unwrap_or(rest),
        None => table,
    }
}

/// The key attribute names of a `KeySchema` list (as in a table description).
pub fn key_attributes(key_schema: &Value) -> Option<Vec<String>> {
    key_schema
        .as_array()?
        .iter()
        .map(|element| {
            element
                .get("AttributeName")
                .or_else(|| element.get("attributeName"))?
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

/// The tables whose key schema decides what `operation`'s record may show: those where the
/// call names an item's values without saying which are its key (a written item, a listing's
/// start key, a PartiQL statement). `input` is the call's lowerCamelCased input.
pub fn tables_needing_key_schema(operation: &str, input: &Value) -> Vec<String> {
    let mut tables = Vec::new();
    let table = input.get("tableName").and_then(Value::as_str);
    match operation {
        "PutItem" => tables.extend(table),
        "Query" | "Scan" if input.get("exclusiveStartKey").is_some() => tables.extend(table),
        "BatchWriteItem" => {
            if let Some(Value::Object(batch)) = input.get("requestItems") {
                for (table, writes) in batch {
                    let puts = writes.as_array().is_some_and(|writes| {
                        writes.iter().any(|write| write.get("putRequest").is_some())
                    });
                    if puts {
                        tables.push(table.as_str());
                    }
                }
            }
        }
        "TransactWriteItems" => {
            for item in array(input, "transactItems") {
                if let Some(table) = item.get("put").and_then(|put| put.get("tableName")) {
                    tables.extend(table.as_str());
                }
            }
        }
        _ => tables.extend(
            statements(input)
                .iter()
                .filter_map(|statement| statement_table(statement)),
        ),
    }
    let mut names: Vec<String> = tables
        .into_iter()
        .map(|table| table_name(table).to_owned())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The PartiQL statements a call carries (ExecuteStatement, BatchExecuteStatement,
/// ExecuteTransaction).
pub fn statements(input: &Value) -> Vec<&str> {
    let single = input.get("statement").and_then(Value::as_str);
    let listed = ["statements", "transactStatements"]
        .into_iter()
        .flat_map(|member| array(input, member))
        .filter_map(|item| item.get("statement")?.as_str());
    single.into_iter().chain(listed).collect()
}

/// Rewrites a DynamoDB call's lowerCamelCased input into what CloudTrail logs of it.
pub fn log_form(input: &mut Value, key_schemas: &KeySchemas) {
    let Value::Object(members) = input else {
        return;
    };
    let table = members
        .get("tableName")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let key = table.as_deref().and_then(|table| key_schemas.key_of(table));
    scrub_request(members, key, "item", key_schemas);
    if let Some(Value::Object(batch)) = members.get_mut("requestItems") {
        for (table, requests) in batch.iter_mut() {
            let key = key_schemas.key_of(table);
            match requests {
                // BatchWriteItem: a list of put and delete requests.
                Value::Array(writes) => {
                    for write in writes.iter_mut().filter_map(Value::as_object_mut) {
                        for request in write.values_mut().filter_map(Value::as_object_mut) {
                            scrub_request(request, key, "item", key_schemas);
                        }
                    }
                }
                // BatchGetItem: the keys to read.
                Value::Object(read) => scrub_request(read, key, "item", key_schemas),
                _ => {}
            }
        }
    }
    if let Some(Value::Array(items)) = members.shift_remove("transactItems") {
        let logged = items
            .into_iter()
            .filter_map(|item| transaction_item(item, key_schemas))
            .collect();
        members.insert("requestItems".to_owned(), Value::Array(logged));
    }
    if let Some(Value::Array(statements)) = members.shift_remove("statements") {
        // BatchExecuteStatement logs its statements as `requestItems`.
        let logged = statements
            .into_iter()
            .filter_map(|statement| match statement {
                Value::Object(mut statement) => {
                    scrub_request(&mut statement, None, "item", key_schemas);
                    Some(Value::Object(statement))
                }
                _ => None,
            })
            .collect();
        members.insert("requestItems".to_owned(), Value::Array(logged));
    }
    if let Some(Value::Array(statements)) = members.get_mut("transactStatements") {
        for statement in statements.iter_mut().filter_map(Value::as_object_mut) {
            scrub_request(statement, None, "item", key_schemas);
        }
    }
}

/// One transaction item (`{"put": {...}}`) as CloudTrail logs it: `{"operation": "Put",
/// "tableName": ..., "key": ..., "items": [names], ...}`.
fn transaction_item(item: Value, key_schemas: &KeySchemas) -> Option<Value> {
    let Value::Object(item) = item else {
        return None;
    };
    let (action, request) = item.into_iter().next()?;
    let Value::Object(mut request) = request else {
        return None;
    };
    let key = request
        .get("tableName")
        .and_then(Value::as_str)
        .and_then(|table| key_schemas.key_of(table));
    scrub_request(&mut request, key, "items", key_schemas);
    let mut logged = Map::new();
    logged.insert("operation".to_owned(), Value::String(upper_first(&action)));
    for first in ["tableName", "key", "items"] {
        if let Some(value) = request.shift_remove(first) {
            logged.insert(first.to_owned(), value);
        }
    }
    logged.extend(request);
    Some(Value::Object(logged))
}

/// Takes every attribute value out of one request (a call's input, one batch request, one
/// transaction item): keys are unwrapped, a written item becomes its attribute names (with
/// its key beside it, named `items_as` in transactions), and expression values go.
fn scrub_request(
    request: &mut Map<String, Value>,
    key_attributes: Option<&[String]>,
    items_as: &str,
    key_schemas: &KeySchemas,
) {
    let entries = std::mem::take(request);
    for (name, value) in entries {
        match name.as_str() {
            "item" => {
                if let Some(key) = key_attributes.map(|key| only_key(&value, key)) {
                    request.insert("key".to_owned(), key);
                }
                request.insert(items_as.to_owned(), attribute_names(&value));
            }
            "key" => {
                request.insert(name, unwrapped_key(&value));
            }
            "keys" => {
                let keys = value.as_array().map_or_else(Vec::new, |keys| {
                    keys.iter().map(unwrapped_key).collect::<Vec<_>>()
                });
                request.insert(name, Value::Array(keys));
            }
            "exclusiveStartKey" => {
                // A listing's start key may hold an index's attributes, which are not the
                // table's key: only the table's own key attributes are logged.
                if let Some(key) = key_attributes {
                    request.insert(name, only_key(&value, key));
                }
            }
            "expressionAttributeValues" | "parameters" => {}
            "expected" | "attributeUpdates" | "keyConditions" | "queryFilter" | "scanFilter" => {
                request.insert(name, without_condition_values(value));
            }
            "statement" => {
                let redacted = value
                    .as_str()
                    .map(|statement| redact_statement(statement, key_schemas));
                if let Some(redacted) = redacted {
                    request.insert(name, Value::String(redacted));
                }
            }
            _ => {
                request.insert(name, value);
            }
        }
    }
}

/// `{"Artist": {"s": "x"}}` → `{"Artist": "x"}`. Keys are strings, numbers or binary; any
/// other type is not a key and is left out.
fn unwrapped_key(key: &Value) -> Value {
    let Value::Object(attributes) = key else {
        return Value::Object(Map::new());
    };
    Value::Object(
        attributes
            .iter()
            .filter_map(|(name, value)| Some((name.clone(), scalar(value)?)))
            .collect(),
    )
}

/// The key attributes of an item, unwrapped.
fn only_key(item: &Value, key_attributes: &[String]) -> Value {
    let Value::Object(attributes) = item else {
        return Value::Object(Map::new());
    };
    Value::Object(
        key_attributes
            .iter()
            .filter_map(|name| Some((name.clone(), scalar(attributes.get(name)?)?)))
            .collect(),
    )
}

fn scalar(attribute_value: &Value) -> Option<Value> {
    ["s", "n", "b", "S", "N", "B"]
        .into_iter()
        .find_map(|tag| attribute_value.get(tag))
        .filter(|value| value.is_string())
        .cloned()
}

fn attribute_names(item: &Value) -> Value {
    let names = item.as_object().map_or_else(Vec::new, |item| {
        item.keys().cloned().map(Value::String).collect()
    });
    Value::Array(names)
}

/// Legacy conditions (`{"Price": {"comparisonOperator": "GT", "attributeValueList": [...]}}`)
/// keep their attributes and operators, not their values.
fn without_condition_values(conditions: Value) -> Value {
    let Value::Object(conditions) = conditions else {
        return Value::Object(Map::new());
    };
    Value::Object(
        conditions
            .into_iter()
            .map(|(attribute, condition)| {
                let condition = match condition {
                    Value::Object(mut condition) => {
                        condition.shift_remove("value");
                        condition.shift_remove("attributeValueList");
                        Value::Object(condition)
                    }
                    _ => Value::Object(Map::new()),
                };
                (attribute, condition)
            })
            .collect(),
    )
}

fn array<'a>(input: &'a Value, member: &str) -> impl Iterator<Item = &'a Value> {
    input
        .get(member)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn upper_first(name: &str) -> String {
    let mut chars = name.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// One lexical piece of a PartiQL statement, as a byte range of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    /// `'…'`, a number, a backquoted Ion value, `TRUE`/`FALSE`: data.
    Literal,
    /// A bare word (keyword or name).
    Word,
    /// `"…"`: a quoted name.
    QuotedName,
    /// Anything else: operators, brackets, `?`.
    Symbol,
}

fn tokens(statement: &str) -> Vec<(Token, usize, usize)> {
    let bytes = statement.as_bytes();
    let mut found = Vec::new();
    let mut at = 0;
    // Skips to just past the closing `quote`, a doubled quote being an escaped one.
    let quoted = |start: usize, quote: u8| {
        let mut end = start + 1;
        while end < bytes.len() {
            if bytes[end] == quote {
                if bytes.get(end + 1) == Some(&quote) {
                    end += 2;
                    continue;
                }
                return end + 1;
            }
            end += 1;
        }
        bytes.len()
    };
    while at < bytes.len() {
        let byte = bytes[at];
        let starts_number = byte.is_ascii_digit()
            || (byte == b'.' && bytes.get(at + 1).is_some_and(u8::is_ascii_digit));
        let (kind, end) = if byte.is_ascii_whitespace() {
            at += 1;
            continue;
        } else if byte == b'\'' {
            (Token::Literal, quoted(at, b'\''))
        } else if byte == b'`' {
            (Token::Literal, quoted(at, b'`'))
        } else if byte == b'"' {
            (Token::QuotedName, quoted(at, b'"'))
        } else if starts_number {
            let mut end = at + 1;
            while end < bytes.len() {
                let exponent_sign =
                    matches!(bytes[end], b'+' | b'-') && matches!(bytes[end - 1], b'e' | b'E');
                if bytes[end].is_ascii_alphanumeric() || bytes[end] == b'.' || exponent_sign {
                    end += 1;
                } else {
                    break;
                }
            }
            (Token::Literal, end)
        } else if byte.is_ascii_alphabetic() || byte == b'_' {
            let mut end = at + 1;
            while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
                end += 1;
            }
            let word = &statement[at..end];
            let boolean = word.eq_ignore_ascii_case("true") || word.eq_ignore_ascii_case("false");
            (if boolean { Token::Literal } else { Token::Word }, end)
        } else {
            let two = bytes.get(at..at + 2);
            let pair = matches!(
                two,
                Some(b"<=" | b">=" | b"<>" | b"!=" | b"<<" | b">>" | b"||")
            );
            // Non-ASCII text outside quotes is kept whole, one character at a time.
            let width = statement[at..].chars().next().map_or(1, char::len_utf8);
            (Token::Symbol, at + if pair { 2 } else { width })
        };
        found.push((kind, at, end));
        at = end;
    }
    found
}

fn name_of(statement: &str, kind: Token, start: usize, end: usize) -> Option<String> {
    match kind {
        Token::Word => Some(statement[start..end].to_owned()),
        Token::QuotedName if end - start >= 2 => {
            Some(statement[start + 1..end - 1].replace("\"\"", "\""))
        }
        _ => None,
    }
}

/// The table a PartiQL statement acts on: the name after `FROM`, `INTO` or `UPDATE`.
pub fn statement_table(statement: &str) -> Option<&str> {
    let found = tokens(statement);
    let position = found.iter().position(|&(kind, start, end)| {
        kind == Token::Word
            && ["from", "into", "update"]
                .iter()
                .any(|keyword| statement[start..end].eq_ignore_ascii_case(keyword))
    })?;
    let &(kind, start, end) = found.get(position + 1)?;
    match kind {
        Token::Word => Some(&statement[start..end]),
        Token::QuotedName if end - start >= 2 => Some(&statement[start + 1..end - 1]),
        _ => None,
    }
}

/// The statement with every literal replaced by [`REDACTED`], except a tuple's attribute
/// names and a key attribute's value compared with `=` in the `WHERE` clause.
pub fn redact_statement(statement: &str, key_schemas: &KeySchemas) -> String {
    let found = tokens(statement);
    let key: &[String] = statement_table(statement)
        .and_then(|table| key_schemas.key_of(table))
        .unwrap_or(&[]);
    let mut logged = String::with_capacity(statement.len());
    let mut copied = 0;
    let mut in_where = false;
    // The brackets open at each token: a tuple's attribute names are the strings directly
    // inside `{`, after `{` or `,` and before `:`.
    let mut open: Vec<u8> = Vec::new();
    for (index, &(kind, start, end)) in found.iter().enumerate() {
        let text = &statement[start..end];
        match (kind, text) {
            (Token::Word, _) if text.eq_ignore_ascii_case("where") => in_where = true,
            (Token::Symbol, "{" | "[" | "(") => open.push(text.as_bytes()[0]),
            (Token::Symbol, "}" | "]" | ")") => {
                open.pop();
            }
            _ => {}
        }
        if kind != Token::Literal {
            continue;
        }
        let symbol_at = |at: Option<usize>, expected: &[&str]| {
            at.and_then(|at| found.get(at))
                .is_some_and(|&(kind, start, end)| {
                    kind == Token::Symbol && expected.contains(&&statement[start..end])
                })
        };
        let attribute_name = text.starts_with('\'')
            && open.last() == Some(&b'{')
            && symbol_at(index.checked_sub(1), &["{", ","])
            && symbol_at(Some(index + 1), &[":"]);
        let compared_key = in_where && index >= 2 && symbol_at(Some(index - 1), &["="]) && {
            let (name_kind, name_start, name_end) = found[index - 2];
            // A path (`info.Artist`) names a nested attribute, not the key.
            let in_path = index >= 3 && {
                let (_, before, before_end) = found[index - 3];
                matches!(&statement[before..before_end], "." | "]")
            };
            !in_path
                && name_of(statement, name_kind, name_start, name_end)
                    .is_some_and(|name| key.contains(&name))
        };
        if attribute_name || compared_key {
            continue;
        }
        logged.push_str(&statement[copied..start]);
        logged.push_str(REDACTED);
        copied = end;
    }
    logged.push_str(&statement[copied..]);
    logged
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn music() -> KeySchemas {
        let mut schemas = KeySchemas::default();
        schemas.insert("Music", vec!["Artist".into(), "SongTitle".into()]);
        schemas
    }

    fn logged(mut input: Value, schemas: &KeySchemas) -> Value {
        log_form(&mut input, schemas);
        input
    }

    #[test]
    fn put_item_logs_its_key_and_attribute_names_as_aws_documents() {
        let input = json!({
            "tableName": "Music",
            "item": {
                "Artist": {"s": "No One You Know"},
                "SongTitle": {"s": "Scared of My Shadow"},
                "AlbumTitle": {"s": "Blue Sky Blues"}
            },
            "returnConsumedCapacity": "TOTAL"
        });
        assert_eq!(
            logged(input.clone(), &music()),
            json!({
                "tableName": "Music",
                "key": {"Artist": "No One You Know", "SongTitle": "Scared of My Shadow"},
                "item": ["Artist", "SongTitle", "AlbumTitle"],
                "returnConsumedCapacity": "TOTAL"
            })
        );
        assert_eq!(
            logged(input, &KeySchemas::default()),
            json!({
                "tableName": "Music",
                "item": ["Artist", "SongTitle", "AlbumTitle"],
                "returnConsumedCapacity": "TOTAL"
            }),
            "without the table's key schema no value is logged"
        );
    }

    #[test]
    fn update_item_keeps_names_and_drops_expression_values() {
        let input = json!({
            "tableName": "Music",
            "key": {"Artist": {"s": "No One You Know"}, "SongTitle": {"s": "Call Me Today"}},
            "updateExpression": "SET #Y = :y, #AT = :t",
            "expressionAttributeNames": {"#Y": "Year", "#AT": "AlbumTitle"},
            "expressionAttributeValues": {":y": {"n": "2015"}, ":t": {"s": "Louder Than Ever"}},
            "conditionExpression": "attribute_not_exists(#Y)",
            "returnConsumedCapacity": "TOTAL"
        });
        assert_eq!(
            logged(input, &KeySchemas::default()),
            json!({
                "tableName": "Music",
                "key": {"Artist": "No One You Know", "SongTitle": "Call Me Today"},
                "updateExpression": "SET #Y = :y, #AT = :t",
                "expressionAttributeNames": {"#Y": "Year", "#AT": "AlbumTitle"},
                "conditionExpression": "attribute_not_exists(#Y)",
                "returnConsumedCapacity": "TOTAL"
            })
        );
    }

    #[test]
    fn transactions_log_request_items_with_their_operation() {
        let input = json!({
            "transactItems": [
                {"put": {
                    "item": {"Artist": {"s": "No One You Know"}, "SongTitle": {"s": "Call Me Today"}, "AlbumTitle": {"s": "Secret"}},
                    "tableName": "Music",
                    "conditionExpression": "#AT = :A",
                    "expressionAttributeNames": {"#AT": "AlbumTitle"},
                    "expressionAttributeValues": {":A": {"s": "Secret"}},
                    "returnValuesOnConditionCheckFailure": "ALL_OLD"
                }},
                {"conditionCheck": {
                    "tableName": "Music",
                    "key": {"Artist": {"s": "No One You Know"}, "SongTitle": {"s": "Call Me Now"}},
                    "conditionExpression": "#P between :lo and :hi",
                    "expressionAttributeNames": {"#P": "Price"},
                    "expressionAttributeValues": {":lo": {"n": "1"}, ":hi": {"n": "9"}}
                }}
            ],
            "returnConsumedCapacity": "TOTAL"
        });
        assert_eq!(
            logged(input, &music()),
            json!({
                "returnConsumedCapacity": "TOTAL",
                "requestItems": [
                    {
                        "operation": "Put",
                        "tableName": "Music",
                        "key": {"Artist": "No One You Know", "SongTitle": "Call Me Today"},
                        "items": ["Artist", "SongTitle", "AlbumTitle"],
                        "conditionExpression": "#AT = :A",
                        "expressionAttributeNames": {"#AT": "AlbumTitle"},
                        "returnValuesOnConditionCheckFailure": "ALL_OLD"
                    },
                    {
                        "operation": "ConditionCheck",
                        "tableName": "Music",
                        "key": {"Artist": "No One You Know", "SongTitle": "Call Me Now"},
                        "conditionExpression": "#P between :lo and :hi",
                        "expressionAttributeNames": {"#P": "Price"}
                    }
                ]
            })
        );
    }

    #[test]
    fn batches_log_keys_and_names_only() {
        let write = json!({"requestItems": {"Music": [
            {"putRequest": {"item": {"Artist": {"s": "A"}, "SongTitle": {"s": "T"}, "Lyrics": {"s": "secret"}}}},
            {"deleteRequest": {"key": {"Artist": {"s": "A"}, "SongTitle": {"s": "U"}}}}
        ]}});
        assert_eq!(
            logged(write, &music()),
            json!({"requestItems": {"Music": [
                {"putRequest": {"key": {"Artist": "A", "SongTitle": "T"}, "item": ["Artist", "SongTitle", "Lyrics"]}},
                {"deleteRequest": {"key": {"Artist": "A", "SongTitle": "U"}}}
            ]}})
        );
        let read = json!({"requestItems": {"Music": {
            "keys": [{"Artist": {"s": "A"}, "SongTitle": {"n": "7"}}],
            "projectionExpression": "Lyrics"
        }}});
        assert_eq!(
            logged(read, &KeySchemas::default()),
            json!({"requestItems": {"Music": {
                "keys": [{"Artist": "A", "SongTitle": "7"}],
                "projectionExpression": "Lyrics"
            }}})
        );
    }

    #[test]
    fn listings_and_legacy_conditions_lose_their_values() {
        let input = json!({
            "tableName": "Music",
            "indexName": "ByAlbum",
            "exclusiveStartKey": {"Artist": {"s": "A"}, "SongTitle": {"s": "T"}, "AlbumTitle": {"s": "secret"}},
            "keyConditions": {"Artist": {"comparisonOperator": "EQ", "attributeValueList": [{"s": "A"}]}},
            "queryFilter": {"Price": {"comparisonOperator": "GT", "attributeValueList": [{"n": "3"}]}},
            "expected": {"Price": {"value": {"n": "3"}, "exists": true}}
        });
        assert_eq!(
            logged(input.clone(), &music()),
            json!({
                "tableName": "Music",
                "indexName": "ByAlbum",
                "exclusiveStartKey": {"Artist": "A", "SongTitle": "T"},
                "keyConditions": {"Artist": {"comparisonOperator": "EQ"}},
                "queryFilter": {"Price": {"comparisonOperator": "GT"}},
                "expected": {"Price": {"exists": true}}
            })
        );
        let unknown = logged(input, &KeySchemas::default());
        assert!(unknown.get("exclusiveStartKey").is_none());
    }

    #[test]
    fn statements_redact_all_but_key_values_in_where() {
        let schemas = music();
        assert_eq!(
            redact_statement(
                "SELECT * FROM Music WHERE Artist = 'No One You Know' AND SongTitle = 'Call Me Today' AND nonKeyAttr = 'x'",
                &schemas
            ),
            "SELECT * FROM Music WHERE Artist = 'No One You Know' AND SongTitle = 'Call Me Today' AND nonKeyAttr = ***(Redacted)"
        );
        assert_eq!(
            redact_statement(
                "UPDATE Music SET Album = 'Louder' WHERE Artist = 'No One You Know' AND SongTitle = 'Call Me Today'",
                &schemas
            ),
            "UPDATE Music SET Album = ***(Redacted) WHERE Artist = 'No One You Know' AND SongTitle = 'Call Me Today'"
        );
        assert_eq!(
            redact_statement(
                "INSERT INTO Music VALUE {'Artist' : 'A', 'SongTitle' : 'T', 'Album' : 'B'}",
                &schemas
            ),
            "INSERT INTO Music VALUE {'Artist' : ***(Redacted), 'SongTitle' : ***(Redacted), 'Album' : ***(Redacted)}"
        );
        assert_eq!(
            redact_statement(
                r#"SELECT * FROM "Music" WHERE "Artist" = 'it''s' AND Price >= 1.5e3 AND Sold = true AND Tags = <<'a'>> AND info.Artist = 'n' AND SongTitle = ?"#,
                &schemas
            ),
            r#"SELECT * FROM "Music" WHERE "Artist" = 'it''s' AND Price >= ***(Redacted) AND Sold = ***(Redacted) AND Tags = <<***(Redacted)>> AND info.Artist = ***(Redacted) AND SongTitle = ?"#
        );
        assert_eq!(
            redact_statement(
                "SELECT * FROM Music WHERE Artist = 'A'",
                &KeySchemas::default()
            ),
            "SELECT * FROM Music WHERE Artist = ***(Redacted)",
            "without the key schema every literal is redacted"
        );
        assert_eq!(
            redact_statement("DELETE FROM Music WHERE Artist = 'unterminated", &schemas),
            "DELETE FROM Music WHERE Artist = 'unterminated",
            "an unterminated key literal runs to the end and is still a key value"
        );
        assert_eq!(
            redact_statement("SELECT * FROM Music WHERE Lyrics = 'unterminated", &schemas),
            "SELECT * FROM Music WHERE Lyrics = ***(Redacted)"
        );
    }

    #[test]
    fn statements_name_their_table_and_drop_parameters() {
        assert_eq!(
            statement_table(r#"select * from "Music"."ByAlbum" where x = 1"#),
            Some("Music")
        );
        assert_eq!(statement_table("INSERT INTO Music VALUE {}"), Some("Music"));
        assert_eq!(statement_table("UPDATE Music SET a = 1"), Some("Music"));
        assert_eq!(statement_table("EXISTS(1)"), None);
        let input = json!({
            "statements": [
                {"statement": "UPDATE Music SET Album = ? WHERE Artist = 'A'", "parameters": [{"s": "secret"}]},
                {"statement": "INSERT INTO Music VALUE {'Artist' : 'A'}"}
            ]
        });
        assert_eq!(
            logged(input, &music()),
            json!({"requestItems": [
                {"statement": "UPDATE Music SET Album = ? WHERE Artist = 'A'"},
                {"statement": "INSERT INTO Music VALUE {'Artist' : ***(Redacted)}"}
            ]})
        );
        assert_eq!(
            tables_needing_key_schema(
                "ExecuteTransaction",
                &json!({"transactStatements": [{"statement": "DELETE FROM \"Albums\" WHERE a = 1"}, {"statement": "SELECT * FROM Music"}]})
            ),
            ["Albums", "Music"]
        );
    }

    #[test]
    fn tables_needing_a_key_schema_are_those_with_unlabelled_values() {
        let put = json!({"tableName": "arn:aws:dynamodb:us-east-1:1:table/Music", "item": {}});
        assert_eq!(tables_needing_key_schema("PutItem", &put), ["Music"]);
        assert!(tables_needing_key_schema("GetItem", &json!({"tableName": "Music"})).is_empty());
        assert!(tables_needing_key_schema("Query", &json!({"tableName": "Music"})).is_empty());
        let batch = json!({"requestItems": {
            "Music": [{"putRequest": {"item": {}}}],
            "Albums": [{"deleteRequest": {"key": {}}}]
        }});
        assert_eq!(
            tables_needing_key_schema("BatchWriteItem", &batch),
            ["Music"]
        );
    }

    proptest::proptest! {
        /// Whatever the statement, a value that is not a key compared in WHERE never
        /// survives: a marker placed as a literal anywhere is redacted.
        #[test]
        fn a_non_key_literal_never_survives(prefix in "[ -~]{0,40}", suffix in "[ -~]{0,40}") {
            let statement = format!("{prefix} Lyrics = 'MARKER-VALUE' {suffix}");
            let redacted = redact_statement(&statement, &music());
            let marker_is_quoted = !prefix.contains('\'') && !prefix.contains('"') && !prefix.contains('`');
            if marker_is_quoted {
                proptest::prop_assert!(!redacted.contains("MARKER-VALUE"), "{}", redacted);
            }
        }
    }
}
