"""Fixtures that run the real `cairn` binary and point the real aws CLI and boto3 at it."""

import hashlib
import http.server
import json
import os
import pathlib
import re
import select
import signal
import socket
import subprocess
import threading
import time

import boto3
import botocore.config
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SAMPLES = ROOT.parent / "shared" / "data" / "cloudtrail-samples"
BINARY = pathlib.Path(os.environ.get("CAIRN_BIN", ROOT / "target" / "debug" / "cairn"))


class Cairn:
    """One running `cairn serve` over its own data directory."""

    def __init__(self, data_dir, extra_args=(), retention_days=0, wrapper=(), extra_env=None):
        self.data_dir = pathlib.Path(data_dir)
        self.extra_args = list(extra_args)
        self.extra_env = dict(extra_env or {})
        # A command the server runs under (strace, say).
        self.wrapper = list(wrapper)
        # None leaves the flag out: the data directory's own retention applies.
        self.retention_args = [] if retention_days is None else ["--retention-days", str(retention_days)]
        self.process = None
        self.endpoint = None
        self.stdout_lines = []

    def start(self, listen="127.0.0.1:0"):
        self.log = open(self.data_dir.parent / f"{self.data_dir.name}-server.log", "ab")
        self.process = subprocess.Popen(
            [*self.wrapper, str(BINARY), "serve", "--data-dir", str(self.data_dir), "--listen", listen,
             *self.retention_args, *self.extra_args],
            stdout=subprocess.PIPE, stderr=self.log, env={**clean_env(self.data_dir), **self.extra_env}, cwd=self.data_dir.parent,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            line = self.process.stdout.readline().decode()
            if not line:
                raise RuntimeError(f"cairn exited early with {self.process.wait()}")
            self.stdout_lines.append(line)
            match = re.search(r"listening on (https?://\S+)", line)
            if match:
                self.endpoint = match.group(1)
                # Keep draining stdout so the server never blocks on a full pipe.
                for _ in range(3):
                    self.stdout_lines.append(self.process.stdout.readline().decode())
                return self
        raise RuntimeError("cairn did not report its address in time")

    def stop(self, sig=signal.SIGTERM):
        if self.process and self.process.poll() is None:
            if self.wrapper:
                # The signal is for Cairn, not the command it runs under (which then exits too).
                pid = self.process.pid
                for child in pathlib.Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
                    os.kill(int(child), sig)
            else:
                self.process.send_signal(sig)
            self.process.wait(timeout=30)
        self.process = None

    def env(self):
        env = clean_env()
        env["AWS_SHARED_CREDENTIALS_FILE"] = str(self.data_dir / "credentials")
        env["AWS_CONFIG_FILE"] = str(self.data_dir / "config")
        return env

    def credentials(self):
        text = (self.data_dir / "credentials").read_text()
        key = re.search(r"aws_access_key_id = (\S+)", text).group(1)
        secret = re.search(r"aws_secret_access_key = (\S+)", text).group(1)
        return key, secret

    def client(self, validate=True, region="us-east-1", **kwargs):
        key, secret = self.credentials()
        config = botocore.config.Config(
            parameter_validation=validate, retries={"max_attempts": 1, "mode": "standard"}
        )
        return boto3.client(
            "cloudtrail", endpoint_url=self.endpoint, region_name=region,
            aws_access_key_id=key, aws_secret_access_key=secret, config=config, **kwargs,
        )

    def aws(self, *args, check=True):
        """Runs the real aws CLI with the credentials and config files Cairn wrote."""
        result = subprocess.run(
            ["aws", *args, "--output", "json"], env=self.env(), capture_output=True, text=True, timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"aws {' '.join(args)} failed: {result.stderr}")
        return result

    def aws_json(self, *args):
        return json.loads(self.aws(*args).stdout)

    def import_files(self, *paths, check=True):
        result = subprocess.run(
            [str(BINARY), "import", "--data-dir", str(self.data_dir), "--retention-days", "0", "--json",
             *map(str, paths)],
            capture_output=True, text=True, env=clean_env(self.data_dir), timeout=600,
        )
        if check and result.returncode not in (0, 1):
            raise AssertionError(result.stderr)
        return result.returncode, json.loads(result.stdout)


class CannedUpstream:
    """A stand-in upstream for what moto cannot play: every request gets the same answer."""

    def __init__(self, status, payload, content_type="application/x-amz-json-1.1",
                 request_id="e2e-canned-request", delay=0.0, tls=None):
        answer = (status, json.dumps(payload).encode(), content_type, request_id)
        self.requests = []
        requests = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                requests.append((self.command, self.path, dict(self.headers)))
                time.sleep(delay)
                status, body, content_type, request_id = answer
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("x-amzn-RequestId", request_id)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls is not None:
            import ssl
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def with_session(cairn, credentials):
    """The environment that makes the aws CLI sign with temporary `credentials`."""
    env = cairn.env()
    env["AWS_ACCESS_KEY_ID"] = credentials["AccessKeyId"]
    env["AWS_SECRET_ACCESS_KEY"] = credentials["SecretAccessKey"]
    env["AWS_SESSION_TOKEN"] = credentials["SessionToken"]
    return env


def aws_as(env, *args, check=True):
    """Runs the real aws CLI with `env` (see `with_session`)."""
    result = subprocess.run(["aws", *args, "--output", "json"], env=env, capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"aws {' '.join(args)} failed: {result.stderr}")
    return result


def rewrite_stored_record(data_dir, event_id, record):
    """Replaces one event's stored record behind Cairn's back (stopped), as plain zstd, in
    whichever store holds it: how tampering with the store itself looks. The rows changed."""
    import sqlite3
    import zstandard

    frame = zstandard.ZstdCompressor().compress(record.encode())
    if POSTGRES:
        changed = subprocess.run(
            ["psql", "-At", POSTGRES, "-c",
             f"UPDATE {postgres_schema(data_dir)}.events SET record = decode('{frame.hex()}', 'hex') "
             f"WHERE event_id = '{event_id}'"],
            capture_output=True, text=True, check=True, timeout=60,
        )
        return int(changed.stdout.split()[-1])
    with sqlite3.connect(data_dir / "events.db") as database:
        return database.execute("UPDATE events SET record = ? WHERE event_id = ?", (frame, event_id)).rowcount


def stored_records(data_dir):
    """Every record in the store, data events included (LookupEvents shows management events
    only, as AWS's event history does), read straight from the embedded SQLite file."""
    import sqlite3
    import zstandard

    if POSTGRES:
        listed = subprocess.run(
            ["psql", "-At", POSTGRES, "-c",
             f"SELECT encode(record, 'hex') FROM {postgres_schema(data_dir)}.events ORDER BY seq"],
            capture_output=True, text=True, check=True, timeout=60,
        )
        frames = [bytes.fromhex(line) for line in listed.stdout.split()]
        return [json.loads(zstandard.ZstdDecompressor().decompress(frame, max_output_size=1 << 24))
                for frame in frames]

    connection = sqlite3.connect(f"file:{data_dir / 'events.db'}?mode=ro", uri=True)
    try:
        rows = connection.execute("SELECT record FROM events ORDER BY seq").fetchall()
        dictionaries = dict(connection.execute("SELECT dict_id, dictionary FROM record_dictionaries"))
    finally:
        connection.close()

    def decompress(frame):
        # A record compressed with a learned dictionary names it in its frame header.
        dict_id = zstandard.get_frame_parameters(frame).dict_id
        if dict_id:
            dictionary = zstandard.ZstdCompressionDict(dictionaries[dict_id])
            return zstandard.ZstdDecompressor(dict_data=dictionary).decompress(frame, max_output_size=1 << 24)
        return zstandard.ZstdDecompressor().decompress(frame, max_output_size=1 << 24)

    return [json.loads(decompress(row[0])) for row in rows]


# Set by the test command for its second pass: every server and import of a data directory
# keeps its event history in a PostgreSQL schema of its own instead of the directory.
POSTGRES = os.environ.get("CAIRN_E2E_POSTGRES")


def postgres_schema(data_dir):
    """The schema the store of `data_dir` lives in when the suite runs on PostgreSQL."""
    digest = hashlib.sha256(str(pathlib.Path(data_dir).resolve()).encode()).hexdigest()[:16]
    return f"cairn_test_e2e_{digest}"


def clean_env(data_dir=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "CAIRN_STORE"}
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    if POSTGRES and data_dir is not None:
        env["CAIRN_STORE"] = f"{POSTGRES}?schema={postgres_schema(data_dir)}"
    return env


@pytest.fixture
def cairn(tmp_path):
    server = Cairn(tmp_path / "data").start()
    yield server
    server.stop()


def lookup_all(client, **kwargs):
    """Every event of a lookup, following NextToken by hand."""
    events, token, pages = [], None, 0
    while True:
        request = dict(kwargs)
        if token:
            request["NextToken"] = token
        page = client.lookup_events(**request)
        pages += 1
        events.extend(page["Events"])
        token = page.get("NextToken")
        if not token:
            return events, pages


def record(event_id, event_time, name="DescribeThing", source="example.amazonaws.com", user="alice",
           key="AKIAEXAMPLE0000ALICE", read_only=True, resources=None, **extra):
    body = {
        "eventVersion": "1.11",
        "userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLE", "arn": f"arn:aws:iam::111122223333:user/{user}",
                         "accountId": "111122223333", "accessKeyId": key, "userName": user},
        "eventTime": event_time,
        "eventSource": source,
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "192.0.2.1",
        "userAgent": "e2e",
        "requestParameters": {"probe": event_id},
        "responseElements": None,
        "requestID": f"req-{event_id}",
        "eventID": event_id,
        "readOnly": read_only,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": "111122223333",
        "eventCategory": "Management",
    }
    if resources is not None:
        body["resources"] = resources
    body.update(extra)
    return body


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def moto():
    port = free_port()
    process = subprocess.Popen(["moto_server", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=30)


class Outage:
    """A TCP proxy in front of a server (PostgreSQL, moto) that can go down (every
    connection through it cut, and nothing listening) and come back on the same port."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.port = free_port()
        self.lock = threading.Lock()
        self.sockets = []
        self.listener = None
        self.up()

    def up(self):
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self):
        with self.lock:
            # shutdown first: a close alone leaves a listener that a blocked accept holds.
            try:
                self.listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.listener.close()
            for sock in self.sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            self.sockets.clear()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            with self.lock:
                self.sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    @staticmethod
    def _pump(a, b):
        try:
            while True:
                ready, _, _ = select.select([a, b], [], [], 1)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (b if sock is a else a).sendall(data)
        except (OSError, ValueError):  # cut by `down`
            return
