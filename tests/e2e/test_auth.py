"""SigV4: refused requests get AWS's exact code and status, and are recorded too."""

import datetime
import json

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import pytest
import requests
from botocore.exceptions import ClientError

from conftest import Cairn

TARGET = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents"
HEADERS = {"X-Amz-Target": TARGET, "Content-Type": "application/x-amz-json-1.1"}


def sign(cairn, key, secret, when=None, auth=botocore.auth.SigV4Auth, body=b"{}"):
    request = botocore.awsrequest.AWSRequest(method="POST", url=cairn.endpoint + "/", data=body, headers=dict(HEADERS))
    original = botocore.auth.get_current_datetime
    if when is not None:
        botocore.auth.get_current_datetime = lambda *a, **k: when
    try:
        signer = auth(botocore.credentials.Credentials(key, secret), "cloudtrail", "us-east-1", *(() if auth is botocore.auth.SigV4Auth else (300,)))
        signer.add_auth(request)
    finally:
        botocore.auth.get_current_datetime = original
    prepared = request.prepare()
    return requests.post(prepared.url, data=body, headers=dict(prepared.headers.items()), timeout=30)


def now():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def expect(response, code, fragment=""):
    assert response.status_code == 400, response.text
    assert response.json()["__type"] == code, response.text
    assert fragment in response.json()["message"]


def test_unsigned_request_is_refused(cairn):
    response = requests.post(cairn.endpoint + "/", data=b"{}", headers=HEADERS, timeout=30)
    expect(response, "MissingAuthenticationTokenException")


def test_wrong_secret_and_unknown_key(cairn):
    key, secret = cairn.credentials()
    expect(sign(cairn, key, secret + "x"), "InvalidSignatureException", "signature we calculated does not match")
    expect(sign(cairn, "AKIANOTAREALKEY00000", secret), "UnrecognizedClientException")
    # boto3 itself, configured with the wrong secret.
    import boto3
    wrong = boto3.client("cloudtrail", endpoint_url=cairn.endpoint, region_name="us-east-1",
                         aws_access_key_id=key, aws_secret_access_key="wrong")
    with pytest.raises(ClientError) as caught:
        wrong.lookup_events()
    assert caught.value.response["Error"]["Code"] == "InvalidSignatureException"


def test_tampered_body_is_refused(cairn):
    key, secret = cairn.credentials()
    request = botocore.awsrequest.AWSRequest(method="POST", url=cairn.endpoint + "/", data=b'{"MaxResults": 1}', headers=dict(HEADERS))
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(key, secret), "cloudtrail", "us-east-1").add_auth(request)
    response = requests.post(cairn.endpoint + "/", data=b'{"MaxResults": 2}', headers=dict(request.headers.items()), timeout=30)
    expect(response, "InvalidSignatureException")


def test_clock_skew_over_fifteen_minutes(cairn):
    key, secret = cairn.credentials()
    assert sign(cairn, key, secret, when=now() - datetime.timedelta(minutes=14)).status_code == 200
    expect(sign(cairn, key, secret, when=now() - datetime.timedelta(minutes=16)), "InvalidSignatureException", "Signature expired")
    expect(sign(cairn, key, secret, when=now() + datetime.timedelta(minutes=16)), "InvalidSignatureException", "not yet current")


def test_presigned_query_form(cairn):
    key, secret = cairn.credentials()
    ok = sign(cairn, key, secret, auth=botocore.auth.SigV4QueryAuth, body=b"")
    assert ok.status_code == 200, ok.text
    assert "Events" in ok.json()
    expired = sign(cairn, key, secret, auth=botocore.auth.SigV4QueryAuth, body=b"", when=now() - datetime.timedelta(minutes=10))
    expect(expired, "InvalidSignatureException", "Signature expired")


def test_refused_calls_are_recorded_with_their_error(cairn):
    key, secret = cairn.credentials()
    requests.post(cairn.endpoint + "/", data=b"{}", headers=HEADERS, timeout=30)
    sign(cairn, "AKIANOTAREALKEY00000", secret)
    sign(cairn, key, "not-the-secret")
    events = cairn.client().lookup_events(
        LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "LookupEvents"}])["Events"]
    records = [json.loads(event["CloudTrailEvent"]) for event in events]
    codes = [r.get("errorCode") for r in records]
    for code in ["MissingAuthenticationTokenException", "UnrecognizedClientException", "InvalidSignatureException"]:
        assert code in codes
    unknown = next(r for r in records if r.get("errorCode") == "UnrecognizedClientException")
    assert unknown["userIdentity"]["type"] == "Unknown"
    assert unknown["userIdentity"]["accessKeyId"] == "AKIANOTAREALKEY00000"
    assert unknown["errorMessage"]
    # Refused calls can be found by the key that tried.
    by_key = cairn.client().lookup_events(
        LookupAttributes=[{"AttributeKey": "AccessKeyId", "AttributeValue": "AKIANOTAREALKEY00000"}])["Events"]
    assert len(by_key) == 1


def test_secret_never_reaches_the_log_or_the_event_store(cairn):
    _, secret = cairn.credentials()
    cairn.client().lookup_events()
    cairn.stop()
    log = (cairn.data_dir.parent / f"{cairn.data_dir.name}-server.log").read_bytes()
    assert secret.encode() not in log
    # Only the two files that must hold the secret (to verify signatures, and for the CLI) do.
    holders = {path.name for path in cairn.data_dir.rglob("*") if path.is_file() and secret.encode() in path.read_bytes()}
    assert holders == {"identities.json", "credentials"}


def test_forwarded_for_is_believed_only_from_trusted_proxies(tmp_path):
    # Not ./cairn.toml: the other server, started in the same directory, would read it too.
    config = tmp_path / "proxied.toml"
    config.write_text('trusted_proxies = ["127.0.0.1", "10.0.0.0/8"]\n')
    trusting = Cairn(tmp_path / "trusting", extra_args=["--config", str(config)]).start()
    plain = Cairn(tmp_path / "plain").start()
    try:
        for server, expected in ((trusting, "203.0.113.7"), (plain, "127.0.0.1")):
            client = server.client()

            def forward(request, **_):
                request.headers["X-Forwarded-For"] = "198.51.100.1, 203.0.113.7, 10.9.9.9"

            client.meta.events.register("before-sign.cloudtrail.LookupEvents", forward)
            client.lookup_events(MaxResults=1)
            events = server.client().lookup_events(LookupAttributes=[
                {"AttributeKey": "EventName", "AttributeValue": "LookupEvents"}])["Events"]
            addresses = {json.loads(event["CloudTrailEvent"])["sourceIPAddress"] for event in events}
            assert addresses == {expected}, addresses
    finally:
        trusting.stop()
        plain.stop()
