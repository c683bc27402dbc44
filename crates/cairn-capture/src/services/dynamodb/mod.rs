//! DynamoDB: the tables a call names are its resources, however the caller wrote them
//! (a name, a table, index or stream ARN, batch and transaction items, PartiQL statements);
//! item calls are data events whose answers are never recorded, and whose inputs log no
//! attribute value but a key's (`items`). Which attributes are a table's key is the
//! upstream's knowledge: the hooks (`key_schemas`) learn it from table descriptions passing
//! through, or ask.

mod items;
mod key_schemas;

use serde_json::Value;

use super::{member, push_resource, CapturedCall, Observed, ServiceRules};

pub use items::KeySchemas;
pub use key_schemas::DynamoDbHooks;

pub struct DynamoDb;

/// The item calls: what CloudTrail logs as DynamoDB data events.
const ITEM_OPERATIONS: &[&str] = &[
    "GetItem",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "BatchGetItem",
    "BatchWriteItem",
    "Query",
    "Scan",
    "TransactGetItems",
    "TransactWriteItems",
    "ExecuteStatement",
    "BatchExecuteStatement",
    "ExecuteTransaction",
];

impl ServiceRules for DynamoDb {
    fn id(&self) -> &'static str {
        "dynamodb"
    }

    fn is_data_event(&self, operation: &str) -> bool {
        ITEM_OPERATIONS.contains(&operation)
    }

    /// Item calls answer with items: their records never hold a response.
    fn hides_response(&self, operation: &str) -> bool {
        self.is_data_event(operation)
    }

    /// A key's value only once the hooks know which attributes are the key; without the
    /// tables' key schemas, no attribute value at all.
    fn log_request(&self, parameters: &mut Value, observed: Option<&Observed>) {
        let known = observed.and_then(|observed| observed.downcast_ref::<KeySchemas>());
        items::log_form(parameters, known.unwrap_or(&KeySchemas::default()));
    }

    fn record(&self, call: &mut CapturedCall) {
        record_tables(call);
    }
}

/// DynamoDB names the table a call acts on, whether the caller gave its name or its ARN.
/// DynamoDB names its table in `tableName` or `resourceArn`; batch calls name theirs as the
/// keys of `requestItems` (kept as written: see `map_shapes`), transactions in each of the
/// `requestItems` they are logged as, PartiQL statements after `FROM`, `INTO` or `UPDATE`.
fn record_tables(call: &mut CapturedCall) {
    let parameters = call.request_parameters.as_ref();
    let mut tables: Vec<String> = [
        member(parameters, "tableName"),
        member(parameters, "resourceArn"),
    ]
    .into_iter()
    .flatten()
    .take(1)
    .map(str::to_owned)
    .collect();
    if let Some(Value::Object(batch)) = parameters.and_then(|p| p.get("requestItems")) {
        tables.extend(batch.keys().cloned());
    }
    if let Some(Value::Array(items)) = parameters.and_then(|p| p.get("requestItems")) {
        tables.extend(
            items
                .iter()
                .filter_map(|item| item.get("tableName")?.as_str())
                .map(str::to_owned),
        );
    }
    if let Some(parameters) = parameters {
        let mut statements = items::statements(parameters);
        if let Some(Value::Array(items)) = parameters.get("requestItems") {
            statements.extend(
                items
                    .iter()
                    .filter_map(|item| item.get("statement")?.as_str()),
            );
        }
        tables.extend(
            statements
                .into_iter()
                .filter_map(items::statement_table)
                .map(str::to_owned),
        );
    }
    for table in tables {
        if let Some(arn) = dynamodb_table_arn(call, &table) {
            push_resource(call, arn, "AWS::DynamoDB::Table");
        }
    }
}

fn dynamodb_table_arn(call: &CapturedCall, table: &str) -> Option<String> {
    if !table.starts_with("arn:") {
        return Some(format!(
            "arn:aws:dynamodb:{}:{}:table/{table}",
            call.region, call.account_id
        ));
    }
    // A resource ARN may name an index or a stream under the table: the table is the
    // resource the event history is searched by.
    let (prefix, rest) = table.split_once(":table/")?;
    let name = rest.split('/').next().unwrap_or(rest);
    Some(format!("{prefix}:table/{name}"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::services::{apply, test_call, RecordResource};

    #[test]
    fn dynamodb_calls_name_their_table() {
        let mut put = test_call("dynamodb", "PutItem", json!({"tableName": "Music"}), None);
        apply(&mut put);
        assert_eq!(
            put.resources,
            vec![RecordResource {
                arn: "arn:aws:dynamodb:us-east-1:111122223333:table/Music".into(),
                account_id: Some("111122223333".into()),
                resource_type: "AWS::DynamoDB::Table".into(),
                arn_is_prefix: false,
            }]
        );
        let mut by_index_arn = test_call(
            "dynamodb",
            "TagResource",
            json!({"resourceArn": "arn:aws:dynamodb:eu-west-1:444455556666:table/Music/index/ByArtist"}),
            None,
        );
        apply(&mut by_index_arn);
        assert_eq!(
            by_index_arn.resources[0].arn,
            "arn:aws:dynamodb:eu-west-1:444455556666:table/Music"
        );
        assert_eq!(
            by_index_arn.resources[0].account_id.as_deref(),
            Some("444455556666")
        );
        let mut list = test_call("dynamodb", "ListTables", json!({}), None);
        apply(&mut list);
        assert!(list.resources.is_empty());
        let mut batch = test_call(
            "dynamodb",
            "BatchWriteItem",
            json!({"requestItems": {"Music": [], "arn:aws:dynamodb:us-east-1:111122223333:table/Albums": []}}),
            None,
        );
        apply(&mut batch);
        let mut arns: Vec<&str> = batch.resources.iter().map(|r| r.arn.as_str()).collect();
        arns.sort_unstable();
        assert_eq!(
            arns,
            [
                "arn:aws:dynamodb:us-east-1:111122223333:table/Albums",
                "arn:aws:dynamodb:us-east-1:111122223333:table/Music"
            ]
        );
        let mut transaction = test_call(
            "dynamodb",
            "TransactWriteItems",
            // As logged: see `dynamodb_items`.
            json!({"requestItems": [
                {"operation": "Put", "tableName": "Music", "items": []},
                {"operation": "ConditionCheck", "tableName": "Albums", "key": {}},
                {"operation": "Delete", "tableName": "Music", "key": {}}
            ]}),
            None,
        );
        apply(&mut transaction);
        assert_eq!(
            transaction.resources.len(),
            2,
            "each table once: {:?}",
            transaction.resources
        );
        let mut statements = test_call(
            "dynamodb",
            "BatchExecuteStatement",
            json!({"requestItems": [
                {"statement": "UPDATE \"Music\" SET a = ***(Redacted) WHERE Artist = 'A'"},
                {"statement": "INSERT INTO Albums VALUE {'Title' : ***(Redacted)}"}
            ]}),
            None,
        );
        apply(&mut statements);
        let tables: Vec<&str> = statements
            .resources
            .iter()
            .map(|r| r.arn.as_str())
            .collect();
        assert_eq!(
            tables,
            [
                "arn:aws:dynamodb:us-east-1:111122223333:table/Music",
                "arn:aws:dynamodb:us-east-1:111122223333:table/Albums"
            ]
        );
        let mut select = test_call(
            "dynamodb",
            "ExecuteStatement",
            json!({"statement": "SELECT * FROM Music WHERE Artist = 'A'"}),
            None,
        );
        apply(&mut select);
        assert_eq!(select.resources.len(), 1);
    }
}
