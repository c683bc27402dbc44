"""The capture gateway in front of a real moto_server, driven by the real aws CLI: calls for
services Cairn does not serve are forwarded, answered with the upstream's answer, and
recorded as CloudTrail would record them."""

import json
import socket
import threading
import time

import boto3
import botocore.config
import botocore.exceptions
import pytest

from conftest import Cairn, free_port, stored_records


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
        # Not an error worth retrying: the CLI gives up at once, and one call is one event.
        started = time.monotonic()
        # (KMS, not SQS: aws CLI 1.45 sends SQS calls to queue.amazonaws.com whatever the
        # configured endpoint_url says.)
        result = alone.aws("kms", "list-keys", check=False)
        assert time.monotonic() - started < 5, "the CLI did not retry"
        assert result.returncode != 0 and "NotImplemented" in result.stderr, result.stderr
        assert "no upstream" in result.stderr
        listed = [r for r in stored_records(alone.data_dir) if r["eventName"] == "ListKeys"]
        assert len(listed) == 1 and listed[0]["errorCode"] == "NotImplemented", listed
        assert listed[0]["eventSource"] == "kms.amazonaws.com"
        result = alone.aws("iam", "list-users", check=False)
        assert result.returncode != 0 and "NotImplemented" in result.stderr
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


class RawUpstream:
    """A TCP server that reads each request and answers it with `answer`, raw bytes, or
    (None) holds the connection open and never answers."""

    def __init__(self, answer):
        self.answer = answer
        self.held = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self.serve, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}"

    def serve(self):
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            connection.settimeout(5)
            try:
                connection.recv(1 << 16)
            except OSError:
                pass
            if self.answer is None:
                self.held.append(connection)
            else:
                connection.sendall(self.answer)
                connection.close()

    def close(self):
        self.listener.close()
        for connection in self.held:
            connection.close()


def test_an_upstream_that_hangs_or_answers_garbage_is_a_clear_error_and_recorded(tmp_path):
    hanging = RawUpstream(None)
    garbage = RawUpstream(b"\x00\x01this is not HTTP at all\r\n\r\n")
    config = tmp_path / "cairn.toml"
    config.write_text(f"""
upstream_timeout_secs = 2
[upstreams]
kms = "{hanging.url}"
dynamodb = "{hanging.url}"
sqs = "{garbage.url}"
""")
    cairn = Cairn(tmp_path / "data", extra_args=["--config", str(config)]).start()
    key, secret = cairn.credentials()
    once = botocore.config.Config(retries={"total_max_attempts": 1, "mode": "standard"}, read_timeout=30)

    def client(service):
        return boto3.client(service, endpoint_url=cairn.endpoint, region_name="us-east-1",
                            aws_access_key_id=key, aws_secret_access_key=secret, config=once)

    def refused(call):
        started = time.monotonic()
        with pytest.raises(botocore.exceptions.ClientError) as raised:
            call()
        return raised.value.response, time.monotonic() - started

    try:
        # While one call waits on the hanging upstream, Cairn goes on serving others.
        waiting = {}

        def wait_on_kms():
            waiting["response"], waiting["seconds"] = refused(lambda: client("kms").list_keys())

        thread = threading.Thread(target=wait_on_kms)
        thread.start()
        time.sleep(0.5)
        started = time.monotonic()
        cairn.client().lookup_events(MaxResults=1)
        assert time.monotonic() - started < 1.5, "a hanging upstream blocks nothing else"
        thread.join(timeout=30)
        assert waiting["response"]["ResponseMetadata"]["HTTPStatusCode"] == 504
        assert waiting["response"]["Error"]["Code"] == "ServiceUnavailable"
        assert 2 <= waiting["seconds"] < 4

        # A DynamoDB write first asks the upstream for its tables' key schemas: the questions
        # together, and then the call, each wait one timeout at most (not one per table).
        writes = {table: [{"PutRequest": {"Item": {"Id": {"S": "1"}, "Note": {"S": "x"}}}}]
                  for table in ("Hung", "Hung2", "Hung3")}
        response, seconds = refused(lambda: client("dynamodb").batch_write_item(RequestItems=writes))
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 504
        assert 2 <= seconds < 6

        response, seconds = refused(lambda: client("sqs").list_queues())
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 502
        assert response["Error"]["Code"] == "ServiceUnavailable"
        assert seconds < 2

        recorded = {r["eventName"]: r for r in stored_records(cairn.data_dir)}
        for name in ("ListKeys", "BatchWriteItem", "ListQueues"):
            assert recorded[name]["errorCode"] == "ServiceUnavailable", recorded[name]
        assert "did not answer" in recorded["ListKeys"]["errorMessage"]
        assert recorded["BatchWriteItem"]["requestParameters"]["requestItems"]["Hung3"] == [
            {"putRequest": {"item": ["Id", "Note"]}}]
    finally:
        cairn.stop()
        hanging.close()
        garbage.close()
