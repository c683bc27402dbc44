"""Session Manager through the gateway. moto has no sessions, so a stand-in upstream answers
StartSession as AWS does, with the token that opens the session's data channel; the record
must replace that token as AWS's records do, and keep it out of every stored byte."""

import http.server
import json
import threading

import boto3
import pytest

from conftest import Cairn, stored_records
from test_service_rules import CONFIG, named

SESSION_TOKEN = "AAEAAe2e-session-token-value-31c7"


class SessionUpstream:
    """Answers every SSM call with a started session."""

    def __init__(self):
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                payload = json.dumps({
                    "SessionId": "e2e-operator-0a1b2c3d4e5f",
                    "StreamUrl": "wss://ssmmessages.us-east-1.amazonaws.com/v1/data-channel/e2e-operator-0a1b2c3d4e5f",
                    "TokenValue": SESSION_TOKEN,
                }).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("x-amzn-RequestId", "e2e-session-request")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def session_gateway(tmp_path):
    upstream = SessionUpstream()
    config = tmp_path / "cairn.toml"
    config.write_text(f'[upstreams]\nssm = "{upstream.url}"\n' + CONFIG)
    server = Cairn(tmp_path / "data", extra_args=["--config", str(config)]).start()
    yield server
    server.stop()
    upstream.close()


def test_a_started_sessions_token_is_replaced_in_its_record(session_gateway):
    key, secret = session_gateway.credentials()
    ssm = boto3.client("ssm", endpoint_url=session_gateway.endpoint, region_name="us-east-1",
                       aws_access_key_id=key, aws_secret_access_key=secret)
    started = ssm.start_session(Target="i-0123456789abcdef0")
    assert started["TokenValue"] == SESSION_TOKEN, "the caller gets its token"

    records = [r for r in stored_records(session_gateway.data_dir) if r["eventSource"] == "ssm.amazonaws.com"]
    start = named(records, "StartSession")
    assert start["requestParameters"] == {"target": "i-0123456789abcdef0"}
    assert start["responseElements"]["tokenValue"] == "Value hidden due to security reasons."
    assert start["responseElements"]["sessionId"] == "e2e-operator-0a1b2c3d4e5f"
    assert start["requestID"] == "e2e-session-request"
    assert start["userIdentity"]["type"] == "IAMUser" and start["readOnly"] is False
    session_gateway.stop()
    for path in session_gateway.data_dir.rglob("*"):
        if path.is_file():
            assert SESSION_TOKEN.encode() not in path.read_bytes(), path
    log = (session_gateway.data_dir.parent / "data-server.log").read_bytes()
    assert SESSION_TOKEN.encode() not in log
