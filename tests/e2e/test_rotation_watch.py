"""A Secrets Manager rotation that outlives its RotateSecret call, as on AWS: the call is
answered once the rotation function has been started, and the function labels the new
version AWSCURRENT later (or never, when it fails). moto runs rotations to the end before it
answers, so a small shim in front of it plays AWS's asynchronous half: it answers
RotateSecret with a rotation function after only the function's first step (the new version
written and labelled AWSPENDING), and the test plays the function's last step directly on
moto, behind Cairn's back. Cairn must record RotationStarted with the call, RotationSucceeded
when the version becomes current, and RotationFailed when it never does."""

import http.client
import http.server
import json
import signal
import stat
import threading
import time
import urllib.parse
import uuid

import boto3
import pytest

import subprocess

from conftest import POSTGRES, Cairn, aws_as, postgres_schema, stored_records, with_session
from test_service_rules import ACCOUNT, CONFIG, ROLE_ARN, SECRET_VALUE

ASYNC_ROTATOR = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:e2e-async-rotator"
ROTATED_VALUE = "e2e-rotated-value-6e0d"
GIVE_UP_SECS = 3


class WatchBook:
    """Where Cairn writes its rotation watches down: a file beside the identities on one node;
    on a shared store (the suite's PostgreSQL pass), the store's state, each watch sealed."""

    NAMESPACE = "secretsmanager/rotation-watches"

    def __init__(self, data_dir):
        self.file = data_dir / "rotation-watches.json"
        self.schema = postgres_schema(data_dir) if POSTGRES else None

    def _psql(self, sql):
        return subprocess.run(["psql", "-At", "-F", "\t", POSTGRES, "-c", sql], capture_output=True,
                              text=True, check=True, timeout=60).stdout

    def raw(self):
        """What is written, exactly as written."""
        if self.schema:
            return self._psql(f"SELECT key, value FROM {self.schema}.state "
                              f"WHERE namespace = '{self.NAMESPACE}' ORDER BY key")
        return self.file.read_text()

    def watched(self):
        """(secret ARN, version) of every watch written down."""
        if self.schema:
            return [tuple(line.split("\t")[0].split(" ")) for line in self.raw().splitlines() if line]
        return [(w["secret_arn"], w["version_id"]) for w in json.loads(self.raw())["rotations"]]

    def restore(self, raw):
        if self.schema:
            for line in raw.splitlines():
                key, value = line.split("\t")
                self._psql(f"INSERT INTO {self.schema}.state (namespace, key, value) "
                           f"VALUES ('{self.NAMESPACE}', '{key}', '{value}')")
        else:
            self.file.write_text(raw)


def moto_client(moto):
    return boto3.client("secretsmanager", endpoint_url=moto, region_name="us-east-1",
                        aws_access_key_id="moto", aws_secret_access_key="moto")


class AsyncRotationShim:
    """Forwards every call to moto, except a RotateSecret naming ASYNC_ROTATOR, which it
    answers as AWS does while the rotation function is still running."""

    def __init__(self, moto):
        self.moto = urllib.parse.urlsplit(moto)
        self.secrets = moto_client(moto)
        shim = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("X-Amz-Target") == "secretsmanager.RotateSecret":
                    request = json.loads(body)
                    if request.get("RotationLambdaARN") == ASYNC_ROTATOR:
                        return self.answer(200, {}, json.dumps(shim.start_rotation(request)).encode())
                connection = http.client.HTTPConnection(shim.moto.hostname, shim.moto.port, timeout=30)
                connection.request("POST", self.path, body, dict(self.headers))
                reply = connection.getresponse()
                self.answer(reply.status, dict(reply.getheaders()), reply.read())
                connection.close()

            def answer(self, status, headers, payload):
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def start_rotation(self, request):
        # The rotation function's createSecret step; AWS answers RotateSecret after it.
        version = request.get("ClientRequestToken") or str(uuid.uuid4())
        written = self.secrets.put_secret_value(SecretId=request["SecretId"], ClientRequestToken=version,
                                                SecretString=ROTATED_VALUE, VersionStages=["AWSPENDING"])
        return {"ARN": written["ARN"], "Name": written["Name"], "VersionId": version}

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def rotating_gateway(tmp_path, moto):
    shim = AsyncRotationShim(moto)
    config = tmp_path / "cairn.toml"
    # Top-level keys first: CONFIG ends inside its [[roles]] table.
    config.write_text(f"""
upstream = "{moto}"
rotation_poll_millis = 200
rotation_give_up_secs = {GIVE_UP_SECS}

[upstreams]
secretsmanager = "{shim.url}"
""" + CONFIG)
    server = Cairn(tmp_path / "data", extra_args=["--config", str(config)]).start()
    yield server, moto
    server.stop()
    shim.close()


def service_events(gateway, arn):
    return [r for r in stored_records(gateway.data_dir)
            if r["eventType"] == "AwsServiceEvent" and r["additionalEventData"]["SecretId"] == arn]


def names_for(gateway, arn):
    return [r["eventName"] for r in service_events(gateway, arn)]


def wait_for(gateway, arn, name, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = [r for r in service_events(gateway, arn) if r["eventName"] == name]
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"no {name} for {arn} within {seconds}s: {service_events(gateway, arn)}")


def test_a_rotation_finished_after_its_call_is_recorded_when_it_ends(rotating_gateway):
    gateway, moto = rotating_gateway
    finishes = gateway.aws_json("secretsmanager", "create-secret", "--name", "e2e-async-finishes",
                                "--secret-string", SECRET_VALUE)
    never = gateway.aws_json("secretsmanager", "create-secret", "--name", "e2e-async-never-finishes",
                             "--secret-string", SECRET_VALUE)["ARN"]
    rotated = gateway.aws_json("secretsmanager", "rotate-secret", "--secret-id", "e2e-async-finishes",
                               "--rotation-lambda-arn", ASYNC_ROTATOR)
    started_at = time.monotonic()
    gateway.aws("secretsmanager", "rotate-secret", "--secret-id", "e2e-async-never-finishes",
                "--rotation-lambda-arn", ASYNC_ROTATOR)

    # Answered while the function runs: the rotation has started, and not yet ended.
    arn = finishes["ARN"]
    assert [r["eventName"] for r in service_events(gateway, arn)] == ["RotationStarted"]
    time.sleep(0.6)
    assert [r["eventName"] for r in service_events(gateway, arn)] == ["RotationStarted"], \
        "a rotation still pending has not succeeded"

    # The function's finishSecret step, straight on moto: the new version becomes current.
    moto_client(moto).update_secret_version_stage(
        SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=rotated["VersionId"],
        RemoveFromVersionId=finishes["VersionId"])
    succeeded = wait_for(gateway, arn, "RotationSucceeded", 5)
    assert succeeded["userIdentity"] == {"accountId": ACCOUNT, "invokedBy": "secretsmanager.amazonaws.com"}
    assert succeeded["requestID"].startswith(f"Rotation-{arn}-")
    assert succeeded["requestParameters"] is None and succeeded["responseElements"] is None
    assert succeeded["recipientAccountId"] == ACCOUNT and succeeded["awsRegion"] == "us-east-1"

    # The other rotation's function never finishes: failed once the watch gives up.
    failed = wait_for(gateway, never, "RotationFailed", GIVE_UP_SECS + 5)
    assert time.monotonic() - started_at >= GIVE_UP_SECS - 0.5
    assert [r["eventName"] for r in service_events(gateway, never)] == ["RotationStarted", "RotationFailed"]
    assert failed["requestID"].startswith(f"Rotation-{never}-")
    assert [r["eventName"] for r in service_events(gateway, arn)] == ["RotationStarted", "RotationSucceeded"]

    # The watch's own questions are not calls of the caller's, and no value was logged.
    names = [r["eventName"] for r in stored_records(gateway.data_dir)]
    assert names.count("DescribeSecret") == 0
    everything = json.dumps(stored_records(gateway.data_dir))
    assert SECRET_VALUE not in everything and ROTATED_VALUE not in everything


def test_a_watched_rotation_outlives_a_crash_of_cairn(rotating_gateway):
    gateway, moto = rotating_gateway
    created = gateway.aws_json("secretsmanager", "create-secret", "--name", "e2e-async-restart",
                               "--secret-string", SECRET_VALUE)
    arn = created["ARN"]
    # Rotated with temporary credentials: the watch must ask with the session token after a
    # restart too.
    credentials = gateway.aws_json("sts", "assume-role", "--role-arn", ROLE_ARN,
                                   "--role-session-name", "e2e-rotator")["Credentials"]
    rotated = json.loads(aws_as(with_session(gateway, credentials), "secretsmanager", "rotate-secret",
                                "--secret-id", "e2e-async-restart",
                                "--rotation-lambda-arn", ASYNC_ROTATOR).stdout)

    # Written down before the call was answered, readable by Cairn's owner only (sealed, on a
    # shared store), and holding neither the secret's values nor the caller's secret key.
    book = WatchBook(gateway.data_dir)
    text = book.raw()
    assert book.watched() == [(arn, rotated["VersionId"])]
    if book.schema:
        assert credentials["SessionToken"] not in text and credentials["AccessKeyId"] not in text
    else:
        assert json.loads(text)["rotations"][0]["caller"]["access_key_id"] == credentials["AccessKeyId"]
        assert stat.S_IMODE(book.file.stat().st_mode) == 0o600
    for secret in (SECRET_VALUE, ROTATED_VALUE, credentials["SecretAccessKey"]):
        assert secret not in text

    # Cairn dies; the rotation function finishes while it is down.
    gateway.stop(signal.SIGKILL)
    moto_client(moto).update_secret_version_stage(
        SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=rotated["VersionId"],
        RemoveFromVersionId=created["VersionId"])
    gateway.start()
    succeeded = wait_for(gateway, arn, "RotationSucceeded", 5)
    assert succeeded["requestID"].startswith(f"Rotation-{arn}-")
    assert names_for(gateway, arn) == ["RotationStarted", "RotationSucceeded"]
    deadline = time.monotonic() + 5
    while book.watched() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert book.watched() == [], "an ended watch is struck out"

    # A run that recorded the end and died before striking the watch out: the next start
    # finds the end in the history and does not record it twice.
    gateway.stop()
    book.restore(text)
    gateway.start()
    deadline = time.monotonic() + 5
    while book.watched() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert book.watched() == []
    time.sleep(0.6)
    assert names_for(gateway, arn) == ["RotationStarted", "RotationSucceeded"]
    names = [r["eventName"] for r in stored_records(gateway.data_dir)]
    assert names.count("DescribeSecret") == 0
