"""STS served by Cairn, driven by the real aws CLI and boto3: temporary credentials that
Cairn issues, verifies on later calls, and records with the full AssumedRole identity."""

import json

import boto3
import botocore.config
import botocore.exceptions
import pytest

from conftest import Cairn, aws_as, with_session

ACCOUNT = "111122223333"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/deployer"
DISTRUSTING_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/elsewhere"

CONFIG = f"""
[[users]]
account_id = "{ACCOUNT}"
user_name = "ci"
access_key_id = "AKIAE2ESTSUSER000001"
secret_access_key = "e2eStsSecretKeyForTheCiUser0000000000000"

[[roles]]
role_name = "deployer"
max_session_duration_secs = 7200
trust_policy = '''{{"Version": "2012-10-17", "Statement": [{{"Effect": "Allow",
  "Principal": {{"AWS": "arn:aws:iam::{ACCOUNT}:root"}}, "Action": "sts:AssumeRole"}}]}}'''

[[roles]]
role_name = "elsewhere"
[roles.trust_policy]
Version = "2012-10-17"
Statement = [{{ Effect = "Allow", Principal = {{ AWS = "arn:aws:iam::999988887777:root" }}, Action = "sts:AssumeRole" }}]
"""


@pytest.fixture
def sts_cairn(tmp_path):
    config = tmp_path / "cairn.toml"
    config.write_text(CONFIG)
    server = Cairn(tmp_path / "data", extra_args=["--config", str(config)]).start()
    yield server
    server.stop()




def lookup(cairn, key, value):
    events = cairn.aws_json("cloudtrail", "lookup-events", "--lookup-attributes",
                            f"AttributeKey={key},AttributeValue={value}")["Events"]
    return [json.loads(event["CloudTrailEvent"]) for event in events]


def test_assumed_role_credentials_work_and_are_recorded_with_the_role_session(sts_cairn):
    me = sts_cairn.aws_json("sts", "get-caller-identity")
    assert me == {"UserId": me["UserId"], "Account": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:user/ci"}
    assert me["UserId"].startswith("AIDA")

    assumed = sts_cairn.aws_json("sts", "assume-role", "--role-arn", ROLE_ARN, "--role-session-name", "e2e-run",
                                 "--duration-seconds", "3600")
    credentials = assumed["Credentials"]
    assert credentials["AccessKeyId"].startswith("ASIA")
    assert assumed["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/deployer/e2e-run"
    role_id = assumed["AssumedRoleUser"]["AssumedRoleId"].split(":")[0]
    assert role_id.startswith("AROA")

    env = with_session(sts_cairn, credentials)
    who = json.loads(aws_as(env, "sts", "get-caller-identity").stdout)
    assert who["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/deployer/e2e-run"
    assert who["UserId"] == f"{role_id}:e2e-run"
    aws_as(env, "cloudtrail", "lookup-events", "--max-results", "1")

    # The calls made with the session carry the whole AssumedRole identity.
    by_session = lookup(sts_cairn, "AccessKeyId", credentials["AccessKeyId"])
    assert {event["eventName"] for event in by_session} == {"GetCallerIdentity", "LookupEvents"}
    identity = next(e for e in by_session if e["eventName"] == "LookupEvents")["userIdentity"]
    assert identity["type"] == "AssumedRole"
    assert identity["principalId"] == f"{role_id}:e2e-run"
    assert identity["arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/deployer/e2e-run"
    assert identity["accountId"] == ACCOUNT
    assert identity["accessKeyId"] == credentials["AccessKeyId"]
    assert "userName" not in identity
    context = identity["sessionContext"]
    assert context["sessionIssuer"] == {"type": "Role", "principalId": role_id, "arn": ROLE_ARN,
                                        "accountId": ACCOUNT, "userName": "deployer"}
    assert context["webIdFederationData"] == {}
    assert context["attributes"]["mfaAuthenticated"] == "false"
    assert context["attributes"]["creationDate"].endswith("Z")

    # The AssumeRole call itself: STS's record, the role as its resource, no secret.
    [event] = lookup(sts_cairn, "EventName", "AssumeRole")
    assert event["eventSource"] == "sts.amazonaws.com"
    assert event["readOnly"] is True
    assert event["userIdentity"]["arn"] == f"arn:aws:iam::{ACCOUNT}:user/ci"
    assert event["requestParameters"] == {"roleArn": ROLE_ARN, "roleSessionName": "e2e-run",
                                          "durationSeconds": 3600}
    recorded = event["responseElements"]
    assert recorded["credentials"]["accessKeyId"] == credentials["AccessKeyId"]
    assert recorded["credentials"]["sessionToken"] == "HIDDEN_DUE_TO_SECURITY_REASONS"
    assert recorded["assumedRoleUser"]["arn"] == who["Arn"]
    assert event["resources"] == [{"ARN": ROLE_ARN, "accountId": ACCOUNT, "type": "AWS::IAM::Role"}]
    assert [e["eventID"] for e in lookup(sts_cairn, "ResourceName", ROLE_ARN)] == [event["eventID"]]
    assert credentials["SecretAccessKey"] not in json.dumps(event)

    # Neither the secret nor the session token of the session is kept anywhere.
    for path in sts_cairn.data_dir.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert credentials["SecretAccessKey"].encode() not in content, path
            assert credentials["SessionToken"].encode() not in content, path
    log = (sts_cairn.data_dir.parent / "data-server.log").read_bytes()
    assert credentials["SecretAccessKey"].encode() not in log


def test_untrusted_callers_and_bad_input_are_refused_and_recorded(sts_cairn):
    denied = sts_cairn.aws("sts", "assume-role", "--role-arn", DISTRUSTING_ROLE_ARN, "--role-session-name", "x1",
                           check=False)
    assert denied.returncode != 0
    assert "AccessDenied" in denied.stderr
    assert f"arn:aws:iam::{ACCOUNT}:user/ci is not authorized to perform: sts:AssumeRole" in denied.stderr
    missing = sts_cairn.aws("sts", "assume-role", "--role-arn", f"arn:aws:iam::{ACCOUNT}:role/none",
                            "--role-session-name", "x2", check=False)
    assert "AccessDenied" in missing.stderr, "a missing role looks like an untrusting one"
    too_long = sts_cairn.aws("sts", "assume-role", "--role-arn", ROLE_ARN, "--role-session-name", "x3",
                             "--duration-seconds", "10800", check=False)
    assert "ValidationError" in too_long.stderr and "MaxSessionDuration" in too_long.stderr

    sts = boto3.client("sts", endpoint_url=sts_cairn.endpoint, region_name="us-east-1",
                       aws_access_key_id="AKIAE2ESTSUSER000001",
                       aws_secret_access_key="e2eStsSecretKeyForTheCiUser0000000000000",
                       config=botocore.config.Config(parameter_validation=False, retries={"max_attempts": 1}))
    with pytest.raises(botocore.exceptions.ClientError) as bad_name:
        sts.assume_role(RoleArn=ROLE_ARN, RoleSessionName="has space")
    assert bad_name.value.response["Error"]["Code"] == "ValidationError"
    assert bad_name.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400

    failed = lookup(sts_cairn, "EventName", "AssumeRole")
    codes = sorted(event.get("errorCode") for event in failed)
    assert codes == ["AccessDenied", "AccessDenied", "ValidationError", "ValidationError"]
    assert all(event["responseElements"] is None for event in failed)


def test_session_tokens_are_verified_on_every_call(sts_cairn):
    sts = boto3.client("sts", endpoint_url=sts_cairn.endpoint, region_name="us-east-1",
                       aws_access_key_id="AKIAE2ESTSUSER000001",
                       aws_secret_access_key="e2eStsSecretKeyForTheCiUser0000000000000")
    credentials = sts.get_session_token(DurationSeconds=900)["Credentials"]

    def cloudtrail(token, secret=credentials["SecretAccessKey"]):
        return boto3.client("cloudtrail", endpoint_url=sts_cairn.endpoint, region_name="us-east-1",
                            aws_access_key_id=credentials["AccessKeyId"], aws_secret_access_key=secret,
                            aws_session_token=token,
                            config=botocore.config.Config(retries={"max_attempts": 1}))

    cloudtrail(credentials["SessionToken"]).lookup_events(MaxResults=1)
    [event] = [e for e in lookup(sts_cairn, "AccessKeyId", credentials["AccessKeyId"])
               if e["eventName"] == "LookupEvents"]
    identity = event["userIdentity"]
    assert identity["type"] == "IAMUser" and identity["userName"] == "ci"
    assert identity["sessionContext"]["attributes"]["mfaAuthenticated"] == "false"

    token = credentials["SessionToken"]
    tampered = token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")
    for bad_token, code in [(tampered, "UnrecognizedClientException"), (None, "UnrecognizedClientException")]:
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            cloudtrail(bad_token).lookup_events(MaxResults=1)
        assert refused.value.response["Error"]["Code"] == code
    with pytest.raises(botocore.exceptions.ClientError) as wrong_secret:
        cloudtrail(token, secret="x" * 40).lookup_events(MaxResults=1)
    assert wrong_secret.value.response["Error"]["Code"] == "InvalidSignatureException"

    # The query protocol spells the same refusal its own way.
    session_sts = boto3.client("sts", endpoint_url=sts_cairn.endpoint, region_name="us-east-1",
                               aws_access_key_id=credentials["AccessKeyId"],
                               aws_secret_access_key=credentials["SecretAccessKey"], aws_session_token=tampered)
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        session_sts.get_caller_identity()
    assert refused.value.response["Error"]["Code"] == "InvalidClientTokenId"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    # Session credentials cannot mint more session credentials.
    session_sts = boto3.client("sts", endpoint_url=sts_cairn.endpoint, region_name="us-east-1",
                               aws_access_key_id=credentials["AccessKeyId"],
                               aws_secret_access_key=credentials["SecretAccessKey"],
                               aws_session_token=credentials["SessionToken"])
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        session_sts.get_session_token()
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
