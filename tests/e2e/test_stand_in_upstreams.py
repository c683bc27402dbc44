"""Answers moto cannot give, from stand-in upstreams that answer as AWS does: Session
Manager's StartSession, with the token that opens the session's data channel (the record
must replace it as AWS's records do, and keep it out of every stored byte), and a refused
authorization (recorded as AccessDenied, whatever the protocol calls it)."""

import boto3
import pytest

from conftest import CannedUpstream, Cairn, stored_records
from test_service_rules import CONFIG, named

SESSION_TOKEN = "AAEAAe2e-session-token-value-31c7"


def in_front_of(tmp_path, service, upstream):
    """Cairn with `upstream` as the upstream of `service`; stop it, then close the upstream."""
    config = tmp_path / "cairn.toml"
    config.write_text(f'[upstreams]\n{service} = "{upstream.url}"\n' + CONFIG)
    return Cairn(tmp_path / "data", extra_args=["--config", str(config)]).start()


@pytest.fixture
def session_gateway(tmp_path):
    upstream = CannedUpstream(200, {
        "SessionId": "e2e-operator-0a1b2c3d4e5f",
        "StreamUrl": "wss://ssmmessages.us-east-1.amazonaws.com/v1/data-channel/e2e-operator-0a1b2c3d4e5f",
        "TokenValue": SESSION_TOKEN,
    }, request_id="e2e-session-request")
    server = in_front_of(tmp_path, "ssm", upstream)
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


@pytest.fixture
def refusing_gateway(tmp_path):
    upstream = CannedUpstream(400, {
        "__type": "AccessDeniedException",
        "Message": "User: arn:aws:iam::123456789012:user/ops is not authorized to perform: "
                   "organizations:LeaveOrganization",
    })
    server = in_front_of(tmp_path, "organizations", upstream)
    yield server
    server.stop()
    upstream.close()


def test_a_refused_authorization_is_recorded_as_access_denied(refusing_gateway):
    """The upstream's JSON protocol calls it AccessDeniedException; CloudTrail's records call a
    refused authorization AccessDenied (real Organizations records)."""
    refused = refusing_gateway.aws("organizations", "leave-organization", check=False)
    assert refused.returncode != 0 and "AccessDeniedException" in refused.stderr, "the client sees the upstream's answer"
    records = [r for r in stored_records(refusing_gateway.data_dir)
               if r["eventSource"] == "organizations.amazonaws.com"]
    left = named(records, "LeaveOrganization")
    assert left["errorCode"] == "AccessDenied"
    assert left["errorMessage"].startswith("User: arn:aws:iam::123456789012:user/ops is not authorized")
