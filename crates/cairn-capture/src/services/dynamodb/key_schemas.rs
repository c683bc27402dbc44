//! Which attributes are the key of the DynamoDB tables callers write to: what decides which
//! attribute values a DynamoDB record may show (`items`).
//!
//! A key schema is the upstream's. The gateway learns it from the table descriptions that
//! pass through it (CreateTable, DescribeTable), forgets it on DeleteTable, and otherwise
//! asks the upstream `DescribeTable` with the caller's own credentials. What it learned is
//! trusted for a few minutes only, because a table can be deleted and made again with
//! another key behind the gateway's back. A table whose key cannot be learned logs no value
//! at all.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cairn_model::Clock;
use serde_json::{json, Value};

use super::items::{self, key_attributes, table_name, KeySchemas};
use crate::naming::json_input;
use crate::services::hooks::{BoxFuture, CallHook, ServiceHooks, Upstream};
use crate::services::CapturedCall;

/// How long a learned key schema is trusted.
const FRESH_FOR_MILLIS: i64 = 5 * 60 * 1000;
/// How many tables are remembered; past this the memory starts again.
const MAX_REMEMBERED: usize = 10_000;
/// How many tables one call may make the gateway ask about; past this the rest stay
/// unknown (a DynamoDB call touches at most 100 items).
const MAX_ASKED_PER_CALL: usize = 100;

/// Key schemas by account, region, upstream and table.
#[derive(Debug, Default)]
struct KeySchemaCache {
    tables: Mutex<HashMap<String, Learned>>,
}

#[derive(Clone, Debug)]
struct Learned {
    key_attributes: Vec<String>,
    at_millis: i64,
}

/// Where a table name means one table: the caller's account and region, at one upstream.
fn scope(account_id: &str, region: &str, upstream: &dyn Upstream) -> String {
    format!("{account_id}|{region}|{}", upstream.upstream_id())
}

/// DynamoDB's hooks: a call that writes or names items without saying which attributes are
/// the key is logged once the tables' key schemas are known; answers that describe a table
/// teach its key schema.
pub struct DynamoDbHooks {
    cache: Arc<KeySchemaCache>,
    clock: Arc<dyn Clock>,
}

impl DynamoDbHooks {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            cache: Arc::default(),
            clock,
        }
    }
}

impl ServiceHooks for DynamoDbHooks {
    fn begin(&self, call: &CapturedCall, body: &[u8]) -> Option<Box<dyn CallHook>> {
        let input = json_input("dynamodb", &call.operation, body);
        let tables = input
            .as_ref()
            .map(|input| items::tables_needing_key_schema(&call.operation, input))
            .unwrap_or_default();
        Some(Box::new(KeySchemaHook {
            cache: Arc::clone(&self.cache),
            clock: Arc::clone(&self.clock),
            tables,
        }))
    }
}

struct KeySchemaHook {
    cache: Arc<KeySchemaCache>,
    clock: Arc<dyn Clock>,
    tables: Vec<String>,
}

impl CallHook for KeySchemaHook {
    fn before<'a>(
        &'a mut self,
        call: &'a mut CapturedCall,
        upstream: &'a dyn Upstream,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if self.tables.is_empty() {
                return;
            }
            let scope = scope(&call.account_id, &call.region, upstream);
            let known = self
                .cache
                .resolve(upstream, &*self.clock, &scope, &self.tables)
                .await;
            // The gateway logs the input again with what is now known of its keys.
            call.observed = Some(Arc::new(known));
        })
    }

    fn after<'a>(
        &'a mut self,
        call: &'a mut CapturedCall,
        answer: &'a [u8],
        upstream: &'a dyn Upstream,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if call.succeeded {
                let scope = scope(&call.account_id, &call.region, upstream);
                let now = self.clock.now_millis();
                self.cache
                    .learn_from_answer(&scope, &call.operation, answer, now);
            }
        })
    }
}

impl KeySchemaCache {
    fn entry(scope: &str, table: &str) -> String {
        format!("{scope}|{}", table_name(table))
    }

    fn fresh(&self, scope: &str, table: &str, now_millis: i64) -> Option<Vec<String>> {
        let tables = self
            .tables
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        tables
            .get(&Self::entry(scope, table))
            .filter(|learned| (now_millis - learned.at_millis).abs() < FRESH_FOR_MILLIS)
            .map(|learned| learned.key_attributes.clone())
    }

    fn learn(&self, scope: &str, table: &str, key_attributes: Vec<String>, now_millis: i64) {
        let mut tables = self
            .tables
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if tables.len() >= MAX_REMEMBERED {
            tables.clear();
        }
        tables.insert(
            Self::entry(scope, table),
            Learned {
                key_attributes,
                at_millis: now_millis,
            },
        );
    }

    fn forget(&self, scope: &str, table: &str) {
        let mut tables = self
            .tables
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        tables.remove(&Self::entry(scope, table));
    }

    /// Learns from a successful DynamoDB answer that describes a table, or forgets a table
    /// the answer deleted.
    fn learn_from_answer(&self, scope: &str, operation: &str, answer: &[u8], now_millis: i64) {
        let member = match operation {
            "CreateTable" | "DeleteTable" => "TableDescription",
            "DescribeTable" => "Table",
            _ => return,
        };
        let Ok(answer) = serde_json::from_slice::<Value>(answer) else {
            return;
        };
        let Some(described) = answer.get(member) else {
            return;
        };
        let Some(table) = described.get("TableName").and_then(Value::as_str) else {
            return;
        };
        if operation == "DeleteTable" {
            self.forget(scope, table);
        } else if let Some(key) = described.get("KeySchema").and_then(key_attributes) {
            self.learn(scope, table, key, now_millis);
        }
    }

    /// The key schemas of `tables`, from memory or else from the upstream. All the questions
    /// together take at most one upstream timeout: an upstream that hangs delays the call
    /// once, not once per table.
    async fn resolve(
        &self,
        upstream: &dyn Upstream,
        clock: &dyn Clock,
        scope: &str,
        tables: &[String],
    ) -> KeySchemas {
        let mut known = KeySchemas::default();
        let deadline = tokio::time::Instant::now() + upstream.timeout();
        for table in tables.iter().take(MAX_ASKED_PER_CALL) {
            let now = clock.now_millis();
            if let Some(key) = self.fresh(scope, table, now) {
                known.insert(table, key);
                continue;
            }
            let input = json!({ "TableName": table });
            let question = upstream.ask_json(
                "dynamodb",
                "DynamoDB_20120810.DescribeTable",
                "application/x-amz-json-1.0",
                &input,
            );
            let Ok(answer) = tokio::time::timeout_at(deadline, question).await else {
                tracing::debug!(table, "no time left to ask for key schemas");
                break;
            };
            let key = answer
                .as_ref()
                .and_then(|answer| answer.get("Table")?.get("KeySchema"))
                .and_then(key_attributes);
            if let Some(key) = key {
                self.learn(scope, table, key.clone(), now);
                known.insert(table, key);
            }
        }
        known
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_teach_and_deletions_forget() {
        let cache = KeySchemaCache::default();
        let created = br#"{"TableDescription": {"TableName": "Music", "KeySchema": [
            {"AttributeName": "Artist", "KeyType": "HASH"},
            {"AttributeName": "SongTitle", "KeyType": "RANGE"}]}}"#;
        cache.learn_from_answer("s", "CreateTable", created, 1_000);
        assert_eq!(
            cache.fresh("s", "arn:aws:dynamodb:us-east-1:1:table/Music", 2_000),
            Some(vec!["Artist".to_owned(), "SongTitle".to_owned()])
        );
        assert_eq!(cache.fresh("other scope", "Music", 2_000), None);
        assert_eq!(
            cache.fresh("s", "Music", 1_000 + FRESH_FOR_MILLIS),
            None,
            "a key schema learned long ago is asked again"
        );
        cache.learn_from_answer(
            "s",
            "DeleteTable",
            br#"{"TableDescription": {"TableName": "Music", "TableStatus": "DELETING"}}"#,
            3_000,
        );
        assert_eq!(cache.fresh("s", "Music", 3_000), None);
        let described = br#"{"Table": {"TableName": "Albums", "KeySchema": [
            {"AttributeName": "Title", "KeyType": "HASH"}]}}"#;
        cache.learn_from_answer("s", "DescribeTable", described, 4_000);
        assert_eq!(
            cache.fresh("s", "Albums", 4_000),
            Some(vec!["Title".to_owned()])
        );
        cache.learn_from_answer("s", "DescribeTable", b"not json", 4_000);
        cache.learn_from_answer("s", "ListTables", described, 4_000);
    }
}
