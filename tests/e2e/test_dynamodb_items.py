"""DynamoDB item calls through the gateway in front of a real moto_server, driven by the real
aws CLI and boto3: their records carry what AWS documents for DynamoDB data events (the key
with its values unwrapped, the names of the attributes written, expressions without their
values, transactions as `requestItems`, PartiQL with its values redacted) and no value of a
non-key attribute reaches the history, the data directory or the log."""

import json

import boto3

from conftest import stored_records
from test_service_rules import ACCOUNT, gateway  # noqa: F401  (the fixture)

ALBUM = "e2e-album-title-5c0e"
LYRICS = "e2e-lyrics-value-93b1"
NEW_ALBUM = "e2e-new-album-d7a4"
STATEMENT_VALUE = "e2e-statement-value-2f68"
PARAMETER_VALUE = "e2e-partiql-parameter-a7c3"
FILTER_VALUE = "e2e-filter-value-0b9e"
TABLE = "E2E_Music"


def item_records(gateway):
    return {r["eventName"]: r for r in stored_records(gateway.data_dir) if r["eventSource"] == "dynamodb.amazonaws.com"}


def create_music_table(gateway, table=TABLE):
    gateway.aws("dynamodb", "create-table", "--table-name", table,
                "--attribute-definitions", "AttributeName=Artist,AttributeType=S",
                "AttributeName=SongTitle,AttributeType=S",
                "--key-schema", "AttributeName=Artist,KeyType=HASH", "AttributeName=SongTitle,KeyType=RANGE",
                "--billing-mode", "PAY_PER_REQUEST")


def test_item_calls_log_keys_and_attribute_names_never_values(gateway):
    create_music_table(gateway)
    key = {"Artist": {"S": "No One You Know"}, "SongTitle": {"S": "Call Me Today"}}
    gateway.aws("dynamodb", "put-item", "--table-name", TABLE, "--return-consumed-capacity", "TOTAL",
                "--item", json.dumps({**key, "AlbumTitle": {"S": ALBUM}}))
    gateway.aws("dynamodb", "update-item", "--table-name", TABLE, "--key", json.dumps(key),
                "--update-expression", "SET #AT = :t", "--expression-attribute-names", '{"#AT": "AlbumTitle"}',
                "--expression-attribute-values", json.dumps({":t": {"S": NEW_ALBUM}}),
                "--return-values", "ALL_NEW")
    gateway.aws("dynamodb", "query", "--table-name", TABLE, "--key-condition-expression", "Artist = :a",
                "--filter-expression", "AlbumTitle = :f",
                "--expression-attribute-values",
                json.dumps({":a": {"S": "No One You Know"}, ":f": {"S": FILTER_VALUE}}))
    gateway.aws("dynamodb", "transact-write-items", "--transact-items", json.dumps([
        {"Put": {"TableName": TABLE, "Item": {"Artist": {"S": "No One You Know"},
                                              "SongTitle": {"S": "Scared of My Shadow"},
                                              "Lyrics": {"S": LYRICS}}}},
        {"ConditionCheck": {"TableName": TABLE, "Key": key, "ConditionExpression": "attribute_exists(Artist)"}},
    ]))
    gateway.aws("dynamodb", "execute-statement", "--statement",
                f"UPDATE {TABLE} SET AlbumTitle = '{STATEMENT_VALUE}' "
                "WHERE Artist = 'No One You Know' AND SongTitle = 'Call Me Today'")
    batch = gateway.aws_json("dynamodb", "batch-execute-statement", "--statements", json.dumps([
        {"Statement": f"INSERT INTO {TABLE} VALUE {{'Artist' : 'Arturus', 'SongTitle' : 'Ardent', "
                      f"'Lyrics' : '{STATEMENT_VALUE}'}}"},
        {"Statement": f"UPDATE {TABLE} SET Lyrics = ? WHERE Artist = 'Arturus' AND SongTitle = 'Ardent'",
         "Parameters": [{"S": PARAMETER_VALUE}]},
    ]))
    assert all("Error" not in response for response in batch["Responses"]), batch

    records = item_records(gateway)
    table_resource = [{"ARN": f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/{TABLE}", "accountId": ACCOUNT,
                       "type": "AWS::DynamoDB::Table"}]
    put = records["PutItem"]
    # The key schema came from the CreateTable answer that passed through the gateway.
    assert put["requestParameters"] == {
        "tableName": TABLE,
        "key": {"Artist": "No One You Know", "SongTitle": "Call Me Today"},
        "item": ["Artist", "SongTitle", "AlbumTitle"],
        "returnConsumedCapacity": "TOTAL",
    }
    assert put["responseElements"] is None
    assert put["eventCategory"] == "Data" and put["managementEvent"] is False and put["readOnly"] is False
    assert put["resources"] == table_resource

    update = records["UpdateItem"]
    assert update["requestParameters"] == {
        "tableName": TABLE,
        "key": {"Artist": "No One You Know", "SongTitle": "Call Me Today"},
        "updateExpression": "SET #AT = :t",
        "expressionAttributeNames": {"#AT": "AlbumTitle"},
        "returnValues": "ALL_NEW",
    }
    assert update["responseElements"] is None, "the item it returned is not logged"

    query = records["Query"]
    assert query["requestParameters"] == {"tableName": TABLE, "keyConditionExpression": "Artist = :a",
                                          "filterExpression": "AlbumTitle = :f"}
    assert query["readOnly"] is True

    transaction = records["TransactWriteItems"]
    # The CLI fills in an idempotency token; it is the caller's input like any other.
    assert transaction["requestParameters"].pop("clientRequestToken")
    assert transaction["requestParameters"] == {"requestItems": [
        {"operation": "Put", "tableName": TABLE,
         "key": {"Artist": "No One You Know", "SongTitle": "Scared of My Shadow"},
         "items": ["Artist", "SongTitle", "Lyrics"]},
        {"operation": "ConditionCheck", "tableName": TABLE,
         "key": {"Artist": "No One You Know", "SongTitle": "Call Me Today"},
         "conditionExpression": "attribute_exists(Artist)"},
    ]}
    assert transaction["resources"] == table_resource

    statement = records["ExecuteStatement"]
    assert statement["requestParameters"] == {"statement": (
        f"UPDATE {TABLE} SET AlbumTitle = ***(Redacted) "
        "WHERE Artist = 'No One You Know' AND SongTitle = 'Call Me Today'")}
    assert statement["resources"] == table_resource
    assert records["BatchExecuteStatement"]["requestParameters"] == {"requestItems": [
        {"statement": f"INSERT INTO {TABLE} VALUE "
                      "{'Artist' : ***(Redacted), 'SongTitle' : ***(Redacted), 'Lyrics' : ***(Redacted)}"},
        {"statement": f"UPDATE {TABLE} SET Lyrics = ? WHERE Artist = 'Arturus' AND SongTitle = 'Ardent'"},
    ]}

    gateway.stop()
    log = (gateway.data_dir.parent / "data-server.log").read_bytes()
    every_record = json.dumps(stored_records(gateway.data_dir))
    for value in (ALBUM, NEW_ALBUM, LYRICS, STATEMENT_VALUE, PARAMETER_VALUE, FILTER_VALUE):
        assert value not in every_record, value
        assert value.encode() not in log
        for path in gateway.data_dir.rglob("*"):
            if path.is_file():
                assert value.encode() not in path.read_bytes(), path


def test_a_table_made_behind_the_gateway_has_its_key_asked_of_the_upstream(gateway, moto):
    """The gateway never saw this table's CreateTable: it asks the upstream DescribeTable,
    as the caller, and logs the key. A table the upstream does not know logs no value."""
    table = "E2E_Behind"
    direct = boto3.client("dynamodb", endpoint_url=moto, region_name="us-east-1",
                          aws_access_key_id="AKIAE2ESERVICERULES1", aws_secret_access_key="unused")
    direct.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                        AttributeDefinitions=[{"AttributeName": "Id", "AttributeType": "N"}],
                        KeySchema=[{"AttributeName": "Id", "KeyType": "HASH"}])
    gateway.aws("dynamodb", "put-item", "--table-name", table,
                "--item", json.dumps({"Id": {"N": "42"}, "Lyrics": {"S": LYRICS}}))
    missing = gateway.aws("dynamodb", "put-item", "--table-name", "E2E_Nowhere",
                          "--item", json.dumps({"Id": {"N": "7"}, "Lyrics": {"S": LYRICS}}), check=False)
    assert missing.returncode != 0 and "ResourceNotFoundException" in missing.stderr

    puts = [r for r in stored_records(gateway.data_dir) if r["eventName"] == "PutItem"]
    assert [p["requestParameters"] for p in puts] == [
        {"tableName": table, "key": {"Id": "42"}, "item": ["Id", "Lyrics"]},
        {"tableName": "E2E_Nowhere", "item": ["Id", "Lyrics"]},
    ]
    assert puts[1]["errorCode"] == "ResourceNotFoundException"
    # The question is the gateway's, not the caller's: it is not recorded as a call.
    assert not [r for r in stored_records(gateway.data_dir) if r["eventName"] == "DescribeTable"]
    assert LYRICS not in json.dumps(puts)
