"""The capture gateway in front of a real moto_server, driven by the real aws CLI: calls for
services Cairn does not serve are forwarded, answered with the upstream's answer, and
recorded as CloudTrail would record them."""

import json

import pytest

from conftest import Cairn, free_port


@pytest.fixture
def gateway(tmp_path, moto):
    server = Cairn(tmp_path / "data", extra_args=["--upstream", moto]).start()
    yield server
    server.stop()


def records(cairn, source):
    events = cairn.aws_json("cloudtrail", "lookup-events", "--lookup-attributes",
                            f"AttributeKey=EventSource,AttributeValue={source}")["Events"]
    return [json.loads(event["CloudTrailEvent"]) for event in events]


def by_name(cairn, source, name):
    return next(r for r in records(cairn, source) if r["eventName"] == name)


def test_json_protocol_calls_are_forwarded_and_recorded(gateway):
    key_id = gateway.aws_json("kms", "create-key", "--description", "e2e")["KeyMetadata"]["KeyId"]
    gateway.aws("kms", "disable-key", "--key-id", key_id)
    disabled = by_name(gateway, "kms.amazonaws.com", "DisableKey")
    account = disabled["userIdentity"]["accountId"]
    assert disabled["eventSource"] == "kms.amazonaws.com"
    assert disabled["requestParameters"] == {"keyId": key_id}
    assert disabled["readOnly"] is False
    assert disabled["eventType"] == "AwsApiCall"
    assert disabled["managementEvent"] is True and disabled["eventCategory"] == "Management"
    assert disabled["userIdentity"]["type"] == "IAMUser" and disabled["userIdentity"]["userName"] == "admin"
    assert disabled["recipientAccountId"] == account
    assert disabled["requestID"] and disabled["requestID"] != disabled["eventID"]
    created = by_name(gateway, "kms.amazonaws.com", "CreateKey")
    assert created["requestParameters"] == {"description": "e2e"}
    assert created["responseElements"]["keyMetadata"]["keyId"] == key_id


def test_upstream_errors_reach_the_client_and_the_record(gateway):
    result = gateway.aws("kms", "describe-key", "--key-id", "no-such-key", check=False)
    assert result.returncode != 0 and "NotFoundException" in result.stderr
    failed = by_name(gateway, "kms.amazonaws.com", "DescribeKey")
    assert failed["errorCode"] == "NotFoundException"
    assert "no-such-key" in failed["errorMessage"]
    assert failed["readOnly"] is True and failed["responseElements"] is None


def test_query_and_rest_xml_protocols(gateway):
    gateway.aws("iam", "create-user", "--user-name", "bob")
    created = by_name(gateway, "iam.amazonaws.com", "CreateUser")
    assert created["requestParameters"] == {"userName": "bob"}
    # Flattened query input (Tags.member.N.Key) is logged as the structure it encodes.
    gateway.aws("iam", "tag-user", "--user-name", "bob", "--tags", "Key=team,Value=audit", "Key=env,Value=prod")
    tagged = by_name(gateway, "iam.amazonaws.com", "TagUser")
    assert tagged["requestParameters"] == {
        "userName": "bob", "tags": [{"key": "team", "value": "audit"}, {"key": "env", "value": "prod"}]}
    gateway.aws("s3api", "create-bucket", "--bucket", "cairn-e2e-bucket")
    bucket = by_name(gateway, "s3.amazonaws.com", "CreateBucket")
    assert bucket["eventCategory"] == "Management"
    listed = gateway.aws_json("s3api", "list-buckets")
    # moto is shared by the session: other tests own buckets too.
    assert "cairn-e2e-bucket" in [b["Name"] for b in listed["Buckets"]]


def test_secret_values_never_reach_disk_or_log(gateway):
    secret = "TOPSECRET-value-8d1f3"
    parameter = "PARAMSECRET-value-77ab"
    gateway.aws("secretsmanager", "create-secret", "--name", "db-password", "--secret-string", secret)
    gateway.aws("secretsmanager", "get-secret-value", "--secret-id", "db-password")
    gateway.aws("ssm", "put-parameter", "--name", "/app/db", "--value", parameter, "--type", "SecureString")
    created = by_name(gateway, "secretsmanager.amazonaws.com", "CreateSecret")
    assert created["requestParameters"]["name"] == "db-password"
    assert "secretString" not in created["requestParameters"]
    fetched = by_name(gateway, "secretsmanager.amazonaws.com", "GetSecretValue")
    assert fetched["responseElements"] is None
    put = by_name(gateway, "ssm.amazonaws.com", "PutParameter")
    assert put["requestParameters"]["value"] == "HIDDEN_DUE_TO_SECURITY_REASONS"
    gateway.stop()
    log = (gateway.data_dir.parent / f"{gateway.data_dir.name}-server.log").read_bytes()
    for value in (secret, parameter):
        assert value.encode() not in log
        for path in gateway.data_dir.rglob("*"):
            if path.is_file():
                assert value.encode() not in path.read_bytes(), path


def test_no_upstream_and_dead_upstream_are_clear_errors_and_recorded(tmp_path):
    alone = Cairn(tmp_path / "alone").start()
    try:
        result = alone.aws("kms", "list-keys", check=False)
        assert result.returncode != 0 and "ServiceUnavailable" in result.stderr
        assert by_name(alone, "kms.amazonaws.com", "ListKeys")["errorCode"] == "ServiceUnavailable"
        result = alone.aws("iam", "list-users", check=False)
        assert result.returncode != 0 and "ServiceUnavailable" in result.stderr
    finally:
        alone.stop()
    dead = Cairn(tmp_path / "dead", extra_args=["--upstream", f"http://127.0.0.1:{free_port()}"]).start()
    try:
        result = dead.aws("kms", "list-keys", check=False)
        assert result.returncode != 0
        record = by_name(dead, "kms.amazonaws.com", "ListKeys")
        assert record["errorCode"] == "ServiceUnavailable"
        assert "could not be reached" in record["errorMessage"]
    finally:
        dead.stop()
