"""KMS, Secrets Manager and Systems Manager through the gateway in front of a real moto_server,
driven by the real aws CLI: each call's record carries what CloudTrail's own records for these
services carry (resource ARNs, key ARNs, service events, AssumedRole identities), and no
secret value reaches the history, the data directory or the log."""

import base64
import io
import json
import re
import zipfile

import pytest

from conftest import Cairn, aws_as, stored_records, with_session

# moto's default account, so that the ARNs moto answers with and the ones Cairn builds agree.
ACCOUNT = "123456789012"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/operator"
SECRET_VALUE = "e2e-secret-value-7f3a9c"
PARAMETER_VALUE = "e2e-parameter-value-41d2"
PLAINTEXT = "e2e-plaintext-value-c81b"
COMMAND_SECRET = "e2e-command-secret-2f6d"

# How CloudTrail writes a JSON-protocol service's timestamps inside a record.
RECORDED_DATE = re.compile(r"^[A-Z][a-z]{2} \d{1,2}, \d{4}, \d{1,2}:\d{2}:\d{2} [AP]M$")

CONFIG = f"""
[[users]]
account_id = "{ACCOUNT}"
user_name = "ops"
access_key_id = "AKIAE2ESERVICERULES1"
secret_access_key = "e2eServiceRulesSecretKey0000000000000000"

[[roles]]
role_name = "operator"
trust_policy = '''{{"Statement": [{{"Effect": "Allow", "Principal": {{"AWS": "arn:aws:iam::{ACCOUNT}:root"}},
  "Action": "sts:AssumeRole"}}]}}'''
"""


@pytest.fixture
def gateway(tmp_path, moto):
    config = tmp_path / "cairn.toml"
    config.write_text(CONFIG)
    server = Cairn(tmp_path / "data", extra_args=["--config", str(config), "--upstream", moto]).start()
    yield server
    server.stop()


def lookup(cairn, key, value):
    events = cairn.aws_json("cloudtrail", "lookup-events", "--lookup-attributes",
                            f"AttributeKey={key},AttributeValue={value}")["Events"]
    return [json.loads(event["CloudTrailEvent"]) for event in events]


def named(records, name):
    found = [record for record in records if record["eventName"] == name]
    assert len(found) == 1, (name, [r["eventName"] for r in records])
    return found[0]


def test_secrets_manager_records_and_service_events(gateway):
    created = gateway.aws_json("secretsmanager", "create-secret", "--name", "e2e-db", "--secret-string", SECRET_VALUE)
    arn = created["ARN"]
    gateway.aws("secretsmanager", "delete-secret", "--secret-id", "e2e-db", "--recovery-window-in-days", "7")
    gateway.aws("secretsmanager", "restore-secret", "--secret-id", "e2e-db")
    gone = gateway.aws_json("secretsmanager", "create-secret", "--name", "e2e-gone", "--secret-string", SECRET_VALUE)
    gateway.aws("secretsmanager", "delete-secret", "--secret-id", gone["ARN"], "--force-delete-without-recovery")
    gateway.aws("secretsmanager", "get-secret-value", "--secret-id", "e2e-db")

    records = lookup(gateway, "EventSource", "secretsmanager.amazonaws.com")
    names = sorted(record["eventName"] for record in records)
    assert names == sorted(["CreateSecret", "CreateSecret", "DeleteSecret", "DeleteSecret", "RestoreSecret",
                            "GetSecretValue", "StartSecretVersionDelete", "CancelSecretVersionDelete",
                            "EndSecretVersionDelete"])
    create = next(r for r in records if r["eventName"] == "CreateSecret" and r["requestParameters"]["name"] == "e2e-db")
    # The CLI adds an idempotency token, which CloudTrail records too; the value never.
    assert set(create["requestParameters"]) == {"name", "clientRequestToken"}
    assert create["responseElements"]["arn"] == arn
    assert create["resources"] == [{"ARN": arn, "accountId": ACCOUNT, "type": "AWS::SecretsManager::Secret"}]
    delete = next(r for r in records if r["eventName"] == "DeleteSecret" and r["requestParameters"]["secretId"] == "e2e-db")
    assert delete["requestParameters"] == {"secretId": "e2e-db", "recoveryWindowInDays": 7}
    assert RECORDED_DATE.match(delete["responseElements"]["deletionDate"]), delete["responseElements"]
    assert delete["eventType"] == "AwsApiCall" and delete["readOnly"] is False
    assert delete["userIdentity"]["type"] == "IAMUser" and delete["userIdentity"]["userName"] == "ops"
    assert named(records, "GetSecretValue")["responseElements"] is None

    start = named(records, "StartSecretVersionDelete")
    assert start["eventType"] == "AwsServiceEvent"
    assert start["userIdentity"] == {"accountId": ACCOUNT, "invokedBy": "secretsmanager.amazonaws.com"}
    assert start["sourceIPAddress"] == "secretsmanager.amazonaws.com"
    assert start["userAgent"] == "secretsmanager.amazonaws.com"
    assert start["requestParameters"] is None and start["responseElements"] is None
    assert start["additionalEventData"] == {"SecretId": arn}
    assert start["readOnly"] is False and start["managementEvent"] is True
    assert start["eventCategory"] == "Management" and start["recipientAccountId"] == ACCOUNT
    assert start["serviceEventDetails"]["deletionDate"].endswith("Z")
    assert named(records, "CancelSecretVersionDelete")["additionalEventData"] == {"SecretId": arn}
    assert named(records, "EndSecretVersionDelete")["additionalEventData"] == {"SecretId": gone["ARN"]}
    assert SECRET_VALUE not in json.dumps(records)


def test_kms_key_arns_and_quiet_cryptography(gateway):
    key = gateway.aws_json("kms", "create-key", "--description", "e2e")["KeyMetadata"]
    key_arn = key["Arn"]
    gateway.aws("kms", "disable-key", "--key-id", key["KeyId"])
    gateway.aws("kms", "enable-key", "--key-id", key["KeyId"])
    ciphertext = gateway.aws_json("kms", "encrypt", "--key-id", key["KeyId"], "--plaintext",
                                  base64.b64encode(PLAINTEXT.encode()).decode())["CiphertextBlob"]
    blob = gateway.data_dir.parent / "ciphertext.bin"
    blob.write_bytes(base64.b64decode(ciphertext))
    gateway.aws("kms", "decrypt", "--ciphertext-blob", f"fileb://{blob}")

    records = lookup(gateway, "EventSource", "kms.amazonaws.com")
    resource = [{"ARN": key_arn, "accountId": ACCOUNT, "type": "AWS::KMS::Key"}]
    disable = named(records, "DisableKey")
    assert disable["requestParameters"] == {"keyId": key["KeyId"]}
    assert disable["responseElements"] == {"keyId": key_arn}
    assert disable["resources"] == resource
    assert named(records, "EnableKey")["responseElements"] == {"keyId": key_arn}
    encrypt = named(records, "Encrypt")
    assert encrypt["requestParameters"] == {"keyId": key["KeyId"]}
    assert encrypt["responseElements"] is None and encrypt["readOnly"] is True
    assert encrypt["resources"] == resource
    decrypt = named(records, "Decrypt")
    assert decrypt["requestParameters"] == {"encryptionAlgorithm": "SYMMETRIC_DEFAULT"}
    assert decrypt["responseElements"] is None and decrypt["resources"] == resource
    assert named(records, "CreateKey")["resources"] == resource
    created = named(records, "CreateKey")["responseElements"]["keyMetadata"]
    assert RECORDED_DATE.match(created["creationDate"]), created

    by_type = {r["eventName"] for r in lookup(gateway, "ResourceType", "AWS::KMS::Key")}
    assert {"CreateKey", "DisableKey", "EnableKey", "Encrypt", "Decrypt"} <= by_type
    by_name = {r["eventName"] for r in lookup(gateway, "ResourceName", key_arn)}
    assert {"CreateKey", "DisableKey", "EnableKey", "Encrypt", "Decrypt"} <= by_name
    dumped = json.dumps(records)
    assert PLAINTEXT not in dumped and base64.b64encode(PLAINTEXT.encode()).decode() not in dumped
    assert ciphertext not in dumped


def test_ssm_documents_by_an_assumed_role_and_hidden_parameters(gateway):
    content = json.dumps({"schemaVersion": "2.2", "description": "e2e", "mainSteps": [
        {"action": "aws:runShellScript", "name": "run", "inputs": {"runCommand": ["true"]}}]})
    gateway.aws("ssm", "create-document", "--name", "e2e-runbook", "--document-type", "Command",
                "--content", content)
    gateway.aws("ssm", "put-parameter", "--name", "/e2e/db", "--value", PARAMETER_VALUE, "--type", "SecureString")
    gateway.aws("ssm", "get-parameter", "--name", "/e2e/db", "--with-decryption")
    gateway.aws("ssm", "send-command", "--document-name", "AWS-RunShellScript", "--instance-ids",
                "i-0123456789abcdef0", "--parameters", f"commands=echo {COMMAND_SECRET}")

    credentials = gateway.aws_json("sts", "assume-role", "--role-arn", ROLE_ARN,
                                   "--role-session-name", "e2e-operator")["Credentials"]
    aws_as(with_session(gateway, credentials), "ssm", "delete-document", "--name", "e2e-runbook")

    records = lookup(gateway, "EventSource", "ssm.amazonaws.com")
    document_arn = f"arn:aws:ssm:us-east-1:{ACCOUNT}:document/e2e-runbook"
    delete = named(records, "DeleteDocument")
    assert delete["resources"] == [{"ARN": document_arn, "accountId": ACCOUNT, "type": "AWS::SSM::Document"}]
    identity = delete["userIdentity"]
    assert identity["type"] == "AssumedRole"
    assert identity["arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/operator/e2e-operator"
    assert identity["accessKeyId"] == credentials["AccessKeyId"]
    assert identity["sessionContext"]["sessionIssuer"]["arn"] == ROLE_ARN
    assert identity["sessionContext"]["sessionIssuer"]["userName"] == "operator"
    assert named(records, "CreateDocument")["resources"][0]["ARN"] == document_arn
    assert [r["eventName"] for r in lookup(gateway, "ResourceName", document_arn)].count("DeleteDocument") == 1

    put = named(records, "PutParameter")
    assert put["requestParameters"]["value"] == "HIDDEN_DUE_TO_SECURITY_REASONS"
    assert put["resources"][0]["ARN"] == f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/e2e/db"
    assert named(records, "GetParameter")["responseElements"] is None
    # A command's parameters are hidden in the request and in the command answered; its
    # times are written as CloudTrail writes them.
    sent = named(records, "SendCommand")
    assert sent["requestParameters"]["parameters"] == "HIDDEN_DUE_TO_SECURITY_REASONS"
    command = sent["responseElements"]["command"]
    assert command["parameters"] == "HIDDEN_DUE_TO_SECURITY_REASONS"
    assert RECORDED_DATE.match(command["requestedDateTime"]) and RECORDED_DATE.match(command["expiresAfter"])

    gateway.stop()
    log = (gateway.data_dir.parent / "data-server.log").read_bytes()
    # Records are stored compressed, so the raw files alone prove little: every stored record
    # is decompressed and searched too.
    every_record = json.dumps(stored_records(gateway.data_dir))
    for value in (PARAMETER_VALUE, COMMAND_SECRET, credentials["SecretAccessKey"]):
        assert value.encode() not in log
        assert value not in every_record
        for path in gateway.data_dir.rglob("*"):
            if path.is_file():
                assert value.encode() not in path.read_bytes(), path


def test_dynamodb_tables_and_lambda_functions_are_named_as_resources(gateway):
    table = "e2e-music"
    gateway.aws("dynamodb", "create-table", "--table-name", table,
                "--attribute-definitions", "AttributeName=Artist,AttributeType=S",
                "--key-schema", "AttributeName=Artist,KeyType=HASH", "--billing-mode", "PAY_PER_REQUEST")
    gateway.aws("dynamodb", "put-item", "--table-name", table, "--item", '{"Artist": {"S": "Arturus"}}')
    gateway.aws("dynamodb", "describe-table", "--table-name", table)
    missing = gateway.aws("lambda", "get-function", "--function-name", "e2e-missing", check=False)
    assert missing.returncode != 0

    table_arn = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/{table}"
    resource = [{"ARN": table_arn, "accountId": ACCOUNT, "type": "AWS::DynamoDB::Table"}]
    by_table = lookup(gateway, "ResourceName", table_arn)
    assert sorted(r["eventName"] for r in by_table) == ["CreateTable", "DescribeTable"]
    assert all(r["resources"] == resource for r in by_table)
    assert {r["eventName"] for r in lookup(gateway, "ResourceType", "AWS::DynamoDB::Table")} >= {
        "CreateTable", "DescribeTable"}
    # PutItem is a data event: stored with its table, but not listed by LookupEvents.
    put = [r for r in stored_records(gateway.data_dir) if r["eventName"] == "PutItem"]
    assert len(put) == 1
    assert put[0]["resources"] == resource and put[0]["managementEvent"] is False

    function_arn = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:e2e-missing"
    (get_function,) = lookup(gateway, "ResourceName", function_arn)
    assert get_function["eventName"] == "GetFunction20150331v2"
    assert get_function["errorCode"] == "ResourceNotFoundException"
    assert get_function["resources"] == [{"ARN": function_arn, "accountId": ACCOUNT, "type": "AWS::Lambda::Function"}]


def test_a_version_put_by_hand_while_a_rotation_is_pending_abandons_it(gateway):
    secret = "e2e-rotating"
    arn = gateway.aws_json("secretsmanager", "create-secret", "--name", secret, "--secret-string", SECRET_VALUE)["ARN"]
    # Nothing pending: a version put by hand abandons nothing.
    gateway.aws("secretsmanager", "put-secret-value", "--secret-id", secret, "--secret-string", SECRET_VALUE + "-2")
    # A rotation's createSecret step writes its version labelled AWSPENDING (not by hand)...
    gateway.aws("secretsmanager", "put-secret-value", "--secret-id", secret, "--secret-string", SECRET_VALUE + "-3",
                "--version-stages", "AWSPENDING", "--client-request-token", "e2e-rotation-token-000000000000000001")
    stages = gateway.aws_json("secretsmanager", "describe-secret", "--secret-id", secret)["VersionIdsToStages"]
    assert ["AWSPENDING"] in stages.values()
    # ...and a version put by hand while it is pending abandons the rotation.
    gateway.aws("secretsmanager", "put-secret-value", "--secret-id", secret, "--secret-string", SECRET_VALUE + "-4")

    records = lookup(gateway, "EventSource", "secretsmanager.amazonaws.com")
    assert [r["eventName"] for r in records].count("PutSecretValue") == 3
    abandoned = named(records, "RotationAbandoned")
    assert abandoned["eventType"] == "AwsServiceEvent"
    assert abandoned["userIdentity"] == {"accountId": ACCOUNT, "invokedBy": "secretsmanager.amazonaws.com"}
    assert abandoned["additionalEventData"] == {"SecretId": arn}
    # The envelope of Secrets Manager's own service events (spec section 8): no resources.
    assert abandoned["requestParameters"] is None and abandoned["responseElements"] is None
    assert "resources" not in abandoned
    assert SECRET_VALUE not in json.dumps(records)


def test_rotations_that_finish_and_that_fail_are_service_events(gateway):
    done = gateway.aws_json("secretsmanager", "create-secret", "--name", "e2e-rotates",
                            "--secret-string", SECRET_VALUE)["ARN"]
    failing = gateway.aws_json("secretsmanager", "create-secret", "--name", "e2e-rotation-fails",
                               "--secret-string", SECRET_VALUE)["ARN"]
    # moto runs a rotation without a function at once, and answers when it has finished.
    gateway.aws("secretsmanager", "rotate-secret", "--secret-id", "e2e-rotates")
    # A rotation function that does not exist: the new version is already labelled
    # AWSPENDING when the rotation fails.
    missing = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:e2e-no-such-rotator"
    refused = gateway.aws("secretsmanager", "rotate-secret", "--secret-id", "e2e-rotation-fails",
                          "--rotation-lambda-arn", missing, check=False)
    assert refused.returncode != 0 and "ResourceNotFoundException" in refused.stderr
    stages = gateway.aws_json("secretsmanager", "describe-secret", "--secret-id", "e2e-rotation-fails")
    assert ["AWSPENDING"] in stages["VersionIdsToStages"].values()
    # A rotation of a secret that does not exist never begins.
    gone = gateway.aws("secretsmanager", "rotate-secret", "--secret-id", "e2e-never-made", check=False)
    assert gone.returncode != 0

    records = lookup(gateway, "EventSource", "secretsmanager.amazonaws.com")
    by_secret = {}
    for record in records:
        if record["eventType"] == "AwsServiceEvent":
            by_secret.setdefault(record["additionalEventData"]["SecretId"], []).append(record["eventName"])
    assert sorted(by_secret[done]) == ["RotationStarted", "RotationSucceeded"]
    assert sorted(by_secret[failing]) == ["RotationFailed", "RotationStarted"]
    assert set(by_secret) == {done, failing}
    failed_call = next(r for r in records if r["eventName"] == "RotateSecret"
                       and r["requestParameters"]["secretId"] == "e2e-rotation-fails")
    assert failed_call["errorCode"] == "ResourceNotFoundException"
    assert failed_call["resources"] == [{"ARN": failing, "accountId": ACCOUNT, "type": "AWS::SecretsManager::Secret"}]
    failed = next(r for r in records if r["eventName"] == "RotationFailed")
    assert failed["userIdentity"] == {"accountId": ACCOUNT, "invokedBy": "secretsmanager.amazonaws.com"}
    assert failed["requestParameters"] is None and failed["responseElements"] is None
    assert failed["requestID"].startswith(f"Rotation-{failing}-")
    assert SECRET_VALUE not in json.dumps(records)


def test_map_keys_are_logged_as_the_caller_wrote_them(gateway):
    """CloudTrail lower-camel-cases member names, never the keys of maps: table names,
    attribute names and SNS attribute names are the caller's data."""
    table = "E2E_Orders"
    gateway.aws("dynamodb", "create-table", "--table-name", table,
                "--attribute-definitions", "AttributeName=OrderId,AttributeType=S",
                "--key-schema", "AttributeName=OrderId,KeyType=HASH", "--billing-mode", "PAY_PER_REQUEST")
    items = {table: [{"PutRequest": {"Item": {"OrderId": {"S": "o-1"}, "LineItems": {"M": {"SKU": {"N": "2"}}}}}}]}
    gateway.aws("dynamodb", "batch-write-item", "--request-items", json.dumps(items))
    gateway.aws("sns", "create-topic", "--name", "e2e-alerts", "--attributes", "DisplayName=Alerts")

    (batch,) = [r for r in stored_records(gateway.data_dir) if r["eventName"] == "BatchWriteItem"]
    # Attribute names as written; of their values, only the key's (DynamoDB logs no other).
    assert batch["requestParameters"]["requestItems"] == {
        table: [{"putRequest": {"key": {"OrderId": "o-1"}, "item": ["OrderId", "LineItems"]}}]}
    assert batch["resources"] == [{"ARN": f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/{table}",
                                   "accountId": ACCOUNT, "type": "AWS::DynamoDB::Table"}]
    (topic,) = lookup(gateway, "EventName", "CreateTopic")
    assert topic["requestParameters"] == {"name": "e2e-alerts", "attributes": {"DisplayName": "Alerts"}}


def test_query_and_ec2_values_are_logged_as_their_types(gateway):
    """A query or ec2 request is all text; CloudTrail logs the numbers and booleans the
    model says they are, and leaves strings of digits that are names alone."""
    policy = json.dumps({"Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                                        "Action": "sts:AssumeRole"}]})
    gateway.aws("iam", "create-role", "--role-name", "e2e-typed-2024", "--assume-role-policy-document", policy,
                "--max-session-duration", "7200")
    gateway.aws("ec2", "describe-instances", "--max-results", "5", "--filters", "Name=tag:Build,Values=42")

    (role,) = lookup(gateway, "EventName", "CreateRole")
    assert role["requestParameters"]["maxSessionDuration"] == 7200
    assert role["requestParameters"]["roleName"] == "e2e-typed-2024"
    (described,) = lookup(gateway, "EventName", "DescribeInstances")
    assert described["requestParameters"] == {
        "maxResults": 5, "filter": [{"name": "tag:Build", "value": ["42"]}]}


LAMBDA_ENV_VALUE = "e2e-lambda-env-value-5b1e"


def test_lambda_and_s3_calls_are_recorded_under_cloudtrails_names(gateway, tmp_path):
    """Lambda records its calls with the API version (UpdateFunctionConfiguration20150331v2),
    S3 its lifecycle and public-access-block calls under their older names; rules written
    against real trails match on those. Lambda's code and environment variables are never
    logged."""
    policy = json.dumps({"Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                                        "Action": "sts:AssumeRole"}]})
    role = gateway.aws_json("iam", "create-role", "--role-name", "e2e-function-role",
                            "--assume-role-policy-document", policy)["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return 'e2e-code-body'\n")
    package = tmp_path / "function.zip"
    package.write_bytes(code.getvalue())
    gateway.aws("lambda", "create-function", "--function-name", "e2e-named", "--runtime", "python3.12",
                "--role", role, "--handler", "handler.handler", "--zip-file", f"fileb://{package}",
                "--environment", f"Variables={{DB_PASSWORD={LAMBDA_ENV_VALUE}}}")
    gateway.aws("lambda", "update-function-configuration", "--function-name", "e2e-named",
                "--environment", f"Variables={{DB_PASSWORD={LAMBDA_ENV_VALUE}-2}}")
    gateway.aws("lambda", "get-function", "--function-name", "e2e-named")

    bucket = "e2e-named-bucket"
    gateway.aws("s3api", "create-bucket", "--bucket", bucket)
    gateway.aws("s3api", "put-bucket-lifecycle-configuration", "--bucket", bucket, "--lifecycle-configuration",
                json.dumps({"Rules": [{"ID": "expire", "Status": "Enabled", "Filter": {"Prefix": "tmp/"},
                                       "Expiration": {"Days": 1}}]}))
    gateway.aws("s3api", "get-bucket-lifecycle-configuration", "--bucket", bucket)
    gateway.aws("s3api", "put-public-access-block", "--bucket", bucket, "--public-access-block-configuration",
                "BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true")

    lambda_names = {r["eventName"] for r in lookup(gateway, "EventSource", "lambda.amazonaws.com")}
    assert lambda_names == {"CreateFunction20150331", "UpdateFunctionConfiguration20150331v2",
                            "GetFunction20150331v2"}
    (updated,) = lookup(gateway, "EventName", "UpdateFunctionConfiguration20150331v2")
    assert updated["requestParameters"]["environment"] == {}
    assert updated["readOnly"] is False
    (created,) = lookup(gateway, "EventName", "CreateFunction20150331")
    assert "zipFile" not in json.dumps(created["requestParameters"])
    (read,) = lookup(gateway, "EventName", "GetFunction20150331v2")
    assert read["readOnly"] is True and read["responseElements"] is None

    s3_names = {r["eventName"] for r in lookup(gateway, "EventSource", "s3.amazonaws.com")}
    assert {"CreateBucket", "PutBucketLifecycle", "GetBucketLifecycle", "PutBucketPublicAccessBlock"} <= s3_names
    assert not s3_names & {"PutBucketLifecycleConfiguration", "GetBucketLifecycleConfiguration",
                           "PutPublicAccessBlock"}

    everything = json.dumps(stored_records(gateway.data_dir))
    assert LAMBDA_ENV_VALUE not in everything
    assert "e2e-code-body" not in everything and base64.b64encode(code.getvalue()).decode()[:40] not in everything


USER_DATA_SECRET = "e2e-user-data-password-90ac"


def test_ec2_user_data_is_recorded_as_removed(gateway):
    image = gateway.aws_json("ec2", "describe-images", "--owners", "amazon")["Images"][0]["ImageId"]
    instance = gateway.aws_json("ec2", "run-instances", "--image-id", image, "--count", "1",
                                "--instance-type", "t3.micro",
                                "--user-data", f"#!/bin/sh\necho {USER_DATA_SECRET}\n")["Instances"][0]
    gateway.aws("ec2", "stop-instances", "--instance-ids", instance["InstanceId"])
    modified_data = base64.b64encode(f"{USER_DATA_SECRET}-2".encode()).decode()
    gateway.aws("ec2", "modify-instance-attribute", "--instance-id", instance["InstanceId"],
                "--user-data", f"Value={modified_data}")

    key_pair = gateway.aws_json("ec2", "create-key-pair", "--key-name", "e2e-keys")

    (run,) = lookup(gateway, "EventName", "RunInstances")
    assert run["requestParameters"]["userData"] == "<sensitiveDataRemoved>"
    # The answer as EC2's records carry it: its own element names, lists as items, launch
    # time in epoch milliseconds; and the instance as the call's resource.
    answer = run["responseElements"]
    assert answer["requestId"]  # moto answers a fixed "request-id" here; AWS its request ID
    (launched,) = answer["instancesSet"]["items"]
    assert launched["instanceId"] == instance["InstanceId"]
    assert isinstance(launched["instanceState"]["code"], int) and isinstance(launched["launchTime"], int)
    assert run["resources"] == [{"ARN": f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/{instance['InstanceId']}",
                                 "accountId": ACCOUNT, "type": "AWS::EC2::Instance"}]
    (stopped,) = lookup(gateway, "EventName", "StopInstances")
    (item,) = stopped["responseElements"]["instancesSet"]["items"]
    assert item["instanceId"] == instance["InstanceId"] and "currentState" in item
    (modified,) = lookup(gateway, "EventName", "ModifyInstanceAttribute")
    assert modified["requestParameters"]["userData"] == "<sensitiveDataRemoved>"
    # moto's answer here has no <return>; the unit tests cover AWS's `_return: true`.
    assert modified["responseElements"]["requestId"]
    (created_keys,) = lookup(gateway, "EventName", "CreateKeyPair")
    assert created_keys["responseElements"]["keyMaterial"] == "<sensitiveDataRemoved>"
    assert created_keys["responseElements"]["keyName"] == "e2e-keys"
    everything = json.dumps(stored_records(gateway.data_dir))
    assert USER_DATA_SECRET not in everything and modified_data not in everything
    private_key_body = key_pair["KeyMaterial"].splitlines()[1]
    assert private_key_body not in everything
    assert base64.b64encode(f"#!/bin/sh\necho {USER_DATA_SECRET}\n".encode()).decode() not in everything


# IAM's records spell dates without a comma after the year.
IAM_DATE = re.compile(r"^[A-Z][a-z]{2} \d{1,2}, \d{4} \d{1,2}:\d{2}:\d{2} [AP]M$")
LOGIN_PASSWORD = "e2e-Login-Password-77!"


def test_query_answers_are_recorded_as_response_elements(gateway):
    """IAM answers in XML; its records carry the answer as JSON, as real CreateUser,
    CreateAccessKey and CreateLoginProfile records do: the new key's secret and the password
    left out entirely."""
    gateway.aws("iam", "create-user", "--user-name", "e2e-answered", "--tags", "Key=team,Value=blue")
    key = gateway.aws_json("iam", "create-access-key", "--user-name", "e2e-answered")["AccessKey"]
    gateway.aws("iam", "create-login-profile", "--user-name", "e2e-answered", "--password", LOGIN_PASSWORD,
                "--no-password-reset-required")
    gateway.aws("iam", "delete-login-profile", "--user-name", "e2e-answered")

    (user,) = lookup(gateway, "EventName", "CreateUser")
    created = user["responseElements"]["user"]
    assert created["userName"] == "e2e-answered" and created["path"] == "/"
    assert created["arn"] == f"arn:aws:iam::{ACCOUNT}:user/e2e-answered"
    assert created["tags"] == [{"key": "team", "value": "blue"}]
    assert IAM_DATE.match(created["createDate"]), created
    (access_key,) = lookup(gateway, "EventName", "CreateAccessKey")
    assert set(access_key["responseElements"]["accessKey"]) == {"accessKeyId", "createDate", "status", "userName"}
    assert access_key["responseElements"]["accessKey"]["accessKeyId"] == key["AccessKeyId"]
    (login,) = lookup(gateway, "EventName", "CreateLoginProfile")
    assert login["requestParameters"] == {"userName": "e2e-answered", "passwordResetRequired": False}
    assert login["responseElements"]["loginProfile"]["passwordResetRequired"] is False
    (deleted,) = lookup(gateway, "EventName", "DeleteLoginProfile")
    assert deleted["responseElements"] is None

    everything = json.dumps(stored_records(gateway.data_dir))
    assert key["SecretAccessKey"] not in everything and LOGIN_PASSWORD not in everything


def test_ec2_and_iam_errors_are_recorded_under_their_cloudtrail_codes(gateway):
    """EC2's records prefix an error code with who was at fault; IAM's name the exception."""
    missing_instance = gateway.aws("ec2", "start-instances", "--instance-ids", "i-0e2e0e2e0e2e0e2e0", check=False)
    assert missing_instance.returncode != 0 and "InvalidInstanceID.NotFound" in missing_instance.stderr
    missing_user = gateway.aws("iam", "get-user", "--user-name", "e2e-nobody", check=False)
    assert missing_user.returncode != 0 and "NoSuchEntity" in missing_user.stderr

    (started,) = lookup(gateway, "EventName", "StartInstances")
    assert started["errorCode"] == "Client.InvalidInstanceID.NotFound"
    assert started["responseElements"] is None
    (user,) = lookup(gateway, "EventName", "GetUser")
    assert user["errorCode"] == "NoSuchEntityException"
