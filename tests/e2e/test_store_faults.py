"""PostgreSQL faults, seen from real clients: a database that cannot be reached or refuses the
login at start is a clear error and exit; a database that goes away under load (every
connection cut, then nothing listening) fails calls closed with an AWS-shaped InternalFailure,
never a hang or a lost answer, and Cairn reconnects by itself when it is back. Every call
acknowledged before, during and after is stored exactly once."""

import collections
import json
import os
import subprocess
import threading
import time
import uuid

import boto3
import botocore.config
import botocore.exceptions
import zstandard

from conftest import BINARY, Cairn, Outage, clean_env, free_port

BASE = os.environ.get("CAIRN_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test")


def sts(server):
    key, secret = server.credentials()
    return boto3.client(
        "sts", endpoint_url=server.endpoint, region_name="us-east-1",
        aws_access_key_id=key, aws_secret_access_key=secret,
        config=botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"},
                                      connect_timeout=2, read_timeout=20),
    )


def stored_request_ids(schema):
    listed = subprocess.run(
        ["psql", "-At", BASE, "-c", f"SELECT encode(record, 'hex') FROM {schema}.events ORDER BY seq"],
        capture_output=True, text=True, check=True, timeout=60,
    )
    records = [json.loads(zstandard.ZstdDecompressor().decompress(bytes.fromhex(line), max_output_size=1 << 24))
               for line in listed.stdout.split()]
    return collections.Counter(record.get("requestID") for record in records)


def test_a_database_that_cannot_be_reached_or_refuses_the_login_is_a_clear_error(tmp_path):
    closed = free_port()
    cases = [
        (f"postgres://postgres@127.0.0.1:{closed}/test", f"127.0.0.1:{closed}"),
        (f"{BASE.rsplit('/', 1)[0]}/no_such_database_here", 'database "no_such_database_here" does not exist'),
        ("postgres://no_such_role_here@127.0.0.1:5432/test", 'role "no_such_role_here" does not exist'),
    ]
    for n, (url, expected) in enumerate(cases):
        started = time.time()
        result = subprocess.run(
            [str(BINARY), "serve", "--data-dir", str(tmp_path / f"d{n}"), "--listen", "127.0.0.1:0",
             "--store", url],
            capture_output=True, text=True, env=clean_env(), timeout=60,
        )
        assert result.returncode != 0
        assert time.time() - started < 15, "gave up promptly"
        assert expected in result.stderr, result.stderr
        assert "panicked" not in result.stderr
        assert "listening on" not in result.stdout


def test_calls_fail_closed_while_the_database_is_gone_and_nothing_acknowledged_is_lost(tmp_path):
    outage = Outage(("127.0.0.1", 5432))
    schema = f"cairn_test_faults_{uuid.uuid4().hex[:12]}"
    server = Cairn(tmp_path / "data", extra_args=[
        "--store", f"postgres://postgres@127.0.0.1:{outage.port}/test?schema={schema}",
    ]).start()
    acknowledged, refused, other, stop = [], [], [], threading.Event()
    slowest = [0.0]

    def load():
        client = sts(server)
        while not stop.is_set():
            started = time.time()
            try:
                acknowledged.append(client.get_caller_identity()["ResponseMetadata"]["RequestId"])
            except botocore.exceptions.ClientError as error:
                refused.append((error.response["Error"]["Code"],
                                error.response["ResponseMetadata"]["HTTPStatusCode"]))
                time.sleep(0.02)
            except Exception as error:  # a hang, a reset connection, a malformed answer
                other.append(repr(error))
            slowest[0] = max(slowest[0], time.time() - started)

    threads = [threading.Thread(target=load) for _ in range(4)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(1.5)
        before = len(acknowledged)
        outage.down()
        time.sleep(3)
        during = len(acknowledged)
        outage.up()
        time.sleep(0.5)
        # Cut once more, briefly: connections made again are cut as well.
        outage.down()
        outage.up()
        deadline = time.time() + 15
        while time.time() < deadline and len(acknowledged) < during + 20:
            time.sleep(0.2)
        after = len(acknowledged)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    try:
        assert before > 10, "calls were answered before the outage"
        assert refused, f"calls made while the database was gone failed: {other[:3]}"
        assert set(refused) == {("InternalFailure", 500)}, collections.Counter(refused)
        assert not other, other[:3]
        assert slowest[0] < 15, f"a call took {slowest[0]:.1f} s"
        assert after >= during + 20, "calls are answered again once the database is back"
        assert server.process.poll() is None, "Cairn kept running"
        stored = stored_request_ids(schema)
        missing = [request for request in acknowledged if not stored[request]]
        assert not missing, f"{len(missing)} acknowledged calls are not stored: {missing[:3]}"
        twice = [request for request, count in stored.items() if request and count > 1]
        assert not twice, twice[:3]
        print(f"{before} calls answered before, {during - before} during, {after - during} after; "
              f"{len(refused)} refused with InternalFailure; slowest call {slowest[0]:.2f} s")
    finally:
        server.stop()
        outage.down()
