"""Defects users hit, each proven fixed against the real binary with the real clients."""

import calendar
import json
import subprocess
import time

import boto3
import botocore.config
import botocore.exceptions
import pytest
import requests

from conftest import BINARY, SAMPLES, CannedUpstream, Cairn, clean_env, stored_records
from test_service_rules import named
from test_stand_in_upstreams import in_front_of


def event_seconds(record):
    return calendar.timegm(time.strptime(record["eventTime"], "%Y-%m-%dT%H:%M:%SZ"))


def test_event_time_is_when_the_request_arrived_not_when_a_slow_upstream_answered(tmp_path):
    upstream = CannedUpstream(200, {"Organization": {"Id": "o-e2e"}}, delay=2.5)
    server = in_front_of(tmp_path, "organizations", upstream)
    try:
        key, secret = server.credentials()
        organizations = boto3.client("organizations", endpoint_url=server.endpoint, region_name="us-east-1",
                                     aws_access_key_id=key, aws_secret_access_key=secret)
        sent = time.time()
        organizations.describe_organization()
        answered = time.time()
        assert answered - sent >= 2.5, "the upstream was slow"
        record = named([r for r in stored_records(server.data_dir)
                        if r["eventSource"] == "organizations.amazonaws.com"], "DescribeOrganization")
        assert event_seconds(record) <= int(sent) + 1, (record["eventTime"], sent)
    finally:
        server.stop()
        upstream.close()


@pytest.fixture
def gateway(tmp_path, moto):
    server = Cairn(tmp_path / "data", extra_args=["--upstream", moto]).start()
    yield server
    server.stop()


def s3_client(cairn, **config):
    key, secret = cairn.credentials()
    return boto3.client("s3", endpoint_url=cairn.endpoint, region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=secret,
                        config=botocore.config.Config(s3={"addressing_style": "path"}, **config))


def test_presigned_urls_from_botocore_and_the_cli_work_through_the_gateway(gateway):
    # botocore presigns S3 with SigV2 unless told s3v4: both are what real clients send.
    for version, s3 in [("SigV2", s3_client(gateway)), ("SigV4", s3_client(gateway, signature_version="s3v4"))]:
        s3.create_bucket(Bucket="e2e-presigned")
        key = f"{version}.txt"
        put_url = s3.generate_presigned_url("put_object", Params={"Bucket": "e2e-presigned", "Key": key},
                                            ExpiresIn=300)
        assert ("X-Amz-Signature" in put_url) == (version == "SigV4"), put_url
        put = requests.put(put_url, data=b"presigned body", timeout=30)
        assert put.status_code == 200, (version, put.text)
        get_url = s3.generate_presigned_url("get_object", Params={"Bucket": "e2e-presigned", "Key": key},
                                            ExpiresIn=300)
        got = requests.get(get_url, timeout=30)
        assert got.status_code == 200 and got.content == b"presigned body", (version, got.text)
        # A presigned URL is a signature like any other: moved to another object, it is refused.
        moved = requests.get(get_url.replace(key, "other.txt"), timeout=30)
        assert moved.status_code == 403 and "SignatureDoesNotMatch" in moved.text, (version, moved.text)
    cli_url = gateway.aws("s3", "presign", "s3://e2e-presigned/SigV2.txt", "--expires-in", "300").stdout.strip()
    got = requests.get(cli_url, timeout=30)
    assert got.status_code == 200 and got.content == b"presigned body", got.text

    records = [r for r in stored_records(gateway.data_dir) if r["eventSource"] == "s3.amazonaws.com"]
    objects = [r for r in records if r["eventName"] in ("PutObject", "GetObject") and not r.get("errorCode")]
    assert [r["eventName"] for r in objects] == ["PutObject", "GetObject", "PutObject", "GetObject", "GetObject"]
    assert all(r["additionalEventData"]["AuthenticationMethod"] == "QueryString" for r in objects)
    assert [r["additionalEventData"]["SignatureVersion"] for r in objects] == \
        ["SigV2", "SigV2", "SigV4", "SigV4", "SigV2"]
    assert all(r["eventCategory"] == "Data" for r in objects)


def test_a_sigv2_url_cannot_be_turned_into_another_operation_or_bucket_and_its_signature_is_not_recorded(gateway):
    s3 = s3_client(gateway)
    s3.create_bucket(Bucket="e2e-sigv2-victim")
    s3.put_object(Bucket="e2e-sigv2-victim", Key="e2e-sigv2-list", Body=b"victim object")
    s3.create_bucket(Bucket="e2e-sigv2-list")
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": "e2e-sigv2-victim", "Key": "up.txt"},
                                        ExpiresIn=300)
    assert "Signature=" in put_url and "X-Amz-Signature" not in put_url
    # A sub-resource the signature does not cover would make it PutObjectRetention.
    for extra in ["retention", "legal-hold", "encryption"]:
        turned = requests.put(put_url + "&" + extra, data=b"<x/>", timeout=30)
        assert turned.status_code == 403 and "AccessDenied" in turned.text, (extra, turned.text)
    # A URL that lists bucket L, sent with a Host naming another bucket, would be GetObject
    # of that bucket's object L: refused.
    list_url = s3.generate_presigned_url("list_objects", Params={"Bucket": "e2e-sigv2-list"}, ExpiresIn=300)
    port = gateway.endpoint.rsplit(":", 1)[1]
    rehosted = requests.get(list_url, timeout=30, headers={"Host": f"e2e-sigv2-victim.s3.localhost:{port}"})
    assert rehosted.status_code == 403, rehosted.text
    assert b"victim object" not in rehosted.content
    assert requests.get(list_url, timeout=30).status_code == 200
    # What made the URL valid is never written into a record.
    assert requests.put(put_url, data=b"presigned", timeout=30).status_code == 200
    raw = json.dumps([r for r in stored_records(gateway.data_dir) if r["eventSource"] == "s3.amazonaws.com"])
    signature = requests.utils.unquote(put_url.split("Signature=")[1].split("&")[0])
    assert signature not in raw and '"AWSAccessKeyId"' not in raw and '"signature"' not in raw.lower()


def test_an_unsigned_request_is_forwarded_only_in_the_shape_aws_serves_unsigned(gateway):
    s3 = s3_client(gateway)
    s3.create_bucket(Bucket="e2e-unsigned-victim")
    s3.put_object(Bucket="e2e-unsigned-victim", Key="secret.txt", Body=b"top secret")
    # Dressed as STS's unsigned federation call, a GET of an S3 object is refused.
    disguised = requests.get(f"{gateway.endpoint}/e2e-unsigned-victim/secret.txt",
                             params={"Action": "AssumeRoleWithWebIdentity", "WebIdentityToken": "x",
                                     "Version": "2011-06-15"}, timeout=30)
    assert disguised.status_code in (400, 403) and b"top secret" not in disguised.content, disguised.text
    assert "MissingAuthenticationToken" in disguised.text, disguised.text
    deleted = requests.delete(f"{gateway.endpoint}/e2e-unsigned-victim/secret.txt",
                              params={"Action": "AssumeRoleWithWebIdentity", "WebIdentityToken": "x"}, timeout=30)
    assert deleted.status_code in (400, 403), deleted.text
    assert s3.get_object(Bucket="e2e-unsigned-victim", Key="secret.txt")["Body"].read() == b"top secret"
    # Nor is either recorded as the federation call it pretended to be. (The shape botocore
    # sends, POST / with the action in a form body, is forwarded: test_secrets_everywhere.)
    claimed = [r for r in stored_records(gateway.data_dir) if r["eventName"] == "AssumeRoleWithWebIdentity"]
    assert claimed == [], claimed


def test_access_keys_that_emulator_users_already_have_are_accepted(tmp_path):
    config = tmp_path / "cairn.toml"
    config.write_text("""
[[users]]
account_id = "123456789012"
user_name = "moto-user"
access_key_id = "FOOBARKEY"
secret_access_key = "FOOBARSECRET"

[[users]]
account_id = "000000000000"
user_name = "localstack-user"
access_key_id = "test"
secret_access_key = "test"
""")
    server = Cairn(tmp_path / "data", extra_args=["--config", str(config)]).start()
    try:
        for key, secret, user in [("FOOBARKEY", "FOOBARSECRET", "moto-user"), ("test", "test", "localstack-user")]:
            client = boto3.client("cloudtrail", endpoint_url=server.endpoint, region_name="us-east-1",
                                  aws_access_key_id=key, aws_secret_access_key=secret)
            client.lookup_events(MaxResults=1)
            recorded = [r for r in stored_records(server.data_dir) if r["userIdentity"].get("accessKeyId") == key]
            assert recorded and recorded[-1]["userIdentity"]["userName"] == user
            assert recorded[-1]["userIdentity"]["type"] == "IAMUser"
            # Verified, not merely let in: a wrong secret is still refused.
            wrong = boto3.client("cloudtrail", endpoint_url=server.endpoint, region_name="us-east-1",
                                 aws_access_key_id=key, aws_secret_access_key="not-the-secret",
                                 config=botocore.config.Config(retries={"max_attempts": 1}))
            with pytest.raises(botocore.exceptions.ClientError) as refused:
                wrong.lookup_events(MaxResults=1)
            assert refused.value.response["Error"]["Code"] == "InvalidSignatureException"
    finally:
        server.stop()


def test_accept_any_credentials_lets_unknown_keys_in_and_records_them_as_unverified(tmp_path):
    server = Cairn(tmp_path / "data", extra_args=["--accept-any-credentials", "--account-id", "111111111111"]).start()
    try:
        assert any("WARNING" in line and "WITHOUT A SIGNATURE CHECK" in line for line in server.stdout_lines), \
            server.stdout_lines
        for key, account in [("000000000042", "000000000042"), ("test", "111111111111")]:
            client = boto3.client("cloudtrail", endpoint_url=server.endpoint, region_name="us-east-1",
                                  aws_access_key_id=key, aws_secret_access_key="anything")
            client.lookup_events(MaxResults=1)
            record = [r for r in stored_records(server.data_dir)
                      if r["userIdentity"].get("accessKeyId") == key and not r.get("errorCode")][-1]
            assert record["userIdentity"] == {"type": "Unknown", "principalId": key, "accountId": account,
                                              "accessKeyId": key}, record["userIdentity"]
            assert record["recipientAccountId"] == account
            assert record["additionalEventData"]["signatureVerified"] is False
            # Temporary credentials are never issued to a caller nobody verified.
            sts = boto3.client("sts", endpoint_url=server.endpoint, region_name="us-east-1",
                               aws_access_key_id=key, aws_secret_access_key="anything")
            with pytest.raises(botocore.exceptions.ClientError) as refused:
                sts.get_session_token()
            assert refused.value.response["Error"]["Code"] == "AccessDenied"
        # The administrator's own key is still checked: a wrong secret is refused.
        admin, _ = server.credentials()
        wrong = boto3.client("cloudtrail", endpoint_url=server.endpoint, region_name="us-east-1",
                             aws_access_key_id=admin, aws_secret_access_key="wrong",
                             config=botocore.config.Config(retries={"max_attempts": 1}))
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            wrong.lookup_events(MaxResults=1)
        assert refused.value.response["Error"]["Code"] == "InvalidSignatureException"
        # ...and so is the administrator's key with a made-up session token: only keys Cairn
        # has never heard of, sent without a token, are let in unchecked.
        forged = boto3.client("cloudtrail", endpoint_url=server.endpoint, region_name="us-east-1",
                              aws_access_key_id=admin, aws_secret_access_key="wrong",
                              aws_session_token="made-up",
                              config=botocore.config.Config(retries={"max_attempts": 1}))
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            forged.lookup_events(MaxResults=1)
        assert refused.value.response["Error"]["Code"] in ("UnrecognizedClientException",
                                                           "InvalidSignatureException"), refused.value.response
        tokened = boto3.client("cloudtrail", endpoint_url=server.endpoint, region_name="us-east-1",
                               aws_access_key_id="ASIAUNKNOWNKEY000001", aws_secret_access_key="x",
                               aws_session_token="made-up",
                               config=botocore.config.Config(retries={"max_attempts": 1}))
        with pytest.raises(botocore.exceptions.ClientError):
            tokened.lookup_events(MaxResults=1)
        assert not [r for r in stored_records(server.data_dir)
                    if r["userIdentity"].get("accessKeyId") in (admin, "ASIAUNKNOWNKEY000001")
                    and not r.get("errorCode")]
    finally:
        server.stop()
    # Off by default: an unknown key is refused.
    strict = Cairn(tmp_path / "strict").start()
    try:
        client = boto3.client("cloudtrail", endpoint_url=strict.endpoint, region_name="us-east-1",
                              aws_access_key_id="test", aws_secret_access_key="test",
                              config=botocore.config.Config(retries={"max_attempts": 1}))
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            client.lookup_events(MaxResults=1)
        assert refused.value.response["Error"]["Code"] == "UnrecognizedClientException"
    finally:
        strict.stop()


def test_records_name_the_account_the_upstreams_answers_name(gateway):
    created = gateway.aws_json("kms", "create-key", "--description", "e2e-accounts")["KeyMetadata"]
    arn = created["Arn"]
    account = arn.split(":")[4]
    found = gateway.aws_json("cloudtrail", "lookup-events", "--lookup-attributes",
                             f"AttributeKey=ResourceName,AttributeValue={arn}")["Events"]
    assert [e["EventName"] for e in found] == ["CreateKey"], found
    record = json.loads(found[0]["CloudTrailEvent"])
    assert record["recipientAccountId"] == account == record["userIdentity"]["accountId"]
    assert record["resources"] == [{"ARN": arn, "accountId": account, "type": "AWS::KMS::Key"}]
    # A caller cannot choose another account at the upstream by sending moto's header.
    key, secret = gateway.credentials()
    import botocore.session
    session = botocore.session.get_session()
    kms = session.create_client("kms", endpoint_url=gateway.endpoint, region_name="us-east-1",
                                aws_access_key_id=key, aws_secret_access_key=secret)
    kms.meta.events.register("before-sign.kms.*", lambda request, **_: request.headers.__setitem__(
        "x-moto-account-id", "999999999999"))
    other = kms.create_key(Description="e2e-other")["KeyMetadata"]["Arn"]
    assert other.split(":")[4] == account


def cairn_command(*args):
    data_dir = args[args.index("--data-dir") + 1] if "--data-dir" in args else None
    return subprocess.run([str(BINARY), *args], capture_output=True, text=True, env=clean_env(data_dir),
                          timeout=120)


def test_imported_logs_are_kept_by_a_server_started_with_no_flags(tmp_path):
    data = tmp_path / "data"
    logs = SAMPLES / "stratus-red-team-detonation-logs" / "detonation-logs"
    imported = cairn_command("import", "--data-dir", str(data), "--retention-days", "0", "--json", str(logs))
    assert imported.returncode == 0, imported.stderr
    total = sum(report["imported"] for report in json.loads(imported.stdout)["files"])
    assert total > 100
    imported_ids = {record["eventID"] for path in logs.glob("*.json")
                    for record in json.loads(path.read_text()) if "eventID" in record}
    newest = max(record["eventTime"] for path in logs.glob("*.json")
                 for record in json.loads(path.read_text()) if "eventTime" in record)
    assert newest < "2025-01-01", "the samples are older than any default retention"

    def stored_count():
        return len([r for r in stored_records(data) if r["eventID"] in imported_ids])

    for _ in range(2):  # started with no flags, then restarted
        server = Cairn(data, retention_days=None).start()
        try:
            found = server.aws_json("cloudtrail", "lookup-events", "--max-items", "5",
                                    "--start-time", "2015-01-01T00:00:00Z")["Events"]
            assert len(found) == 5, "imported events are visible"
        finally:
            server.stop()
        assert stored_count() == total, "and none was swept"

    # A shorter retention is refused, saying what it would remove, and removes nothing.
    refused = cairn_command("serve", "--data-dir", str(data), "--listen", "127.0.0.1:0", "--retention-days", "7")
    assert refused.returncode != 0
    assert f"would remove {total} events" in refused.stderr and "cairn retention" in refused.stderr, refused.stderr
    preview = cairn_command("retention", "--data-dir", str(data), "--days", "7")
    assert preview.returncode == 0 and f"would remove {total} of" in preview.stdout, preview.stdout
    assert stored_count() == total
    applied = cairn_command("retention", "--data-dir", str(data), "--days", "7", "--apply")
    assert applied.returncode == 0 and f"removed {total} of" in applied.stdout, applied.stdout
    assert stored_count() == 0


def test_imported_service_events_schedule_nothing(tmp_path):
    data = tmp_path / "data"
    started = {
        "eventVersion": "1.11", "eventTime": "2026-01-05T10:00:00Z", "eventSource": "secretsmanager.amazonaws.com",
        "eventName": "StartSecretVersionDelete", "awsRegion": "us-east-1", "eventID": "imported-start-1",
        "eventType": "AwsServiceEvent", "recipientAccountId": "111122223333",
        "userIdentity": {"accountId": "111122223333", "invokedBy": "secretsmanager.amazonaws.com"},
        "additionalEventData": {"SecretId": "arn:aws:secretsmanager:us-east-1:111122223333:secret:aws-only-AbCdEf"},
        "serviceEventDetails": {"deletionDate": "2026-01-12T10:00:00Z"},
        "requestParameters": None, "responseElements": None, "readOnly": False, "managementEvent": True,
        "eventCategory": "Management",
    }
    (tmp_path / "aws.json").write_text(json.dumps({"Records": [started]}))
    imported = cairn_command("import", "--data-dir", str(data), "--retention-days", "0", str(tmp_path / "aws.json"))
    assert imported.returncode == 0, imported.stderr
    server = Cairn(data).start()
    try:
        time.sleep(2)  # the recovery-window scheduler runs at start
        names = [r["eventName"] for r in stored_records(data) if r["eventSource"] == "secretsmanager.amazonaws.com"]
        assert names == ["StartSecretVersionDelete"], names
    finally:
        server.stop()


def test_an_unsigned_amz_header_is_refused_and_never_forwarded(gateway):
    s3 = s3_client(gateway, signature_version="s3v4")
    s3.create_bucket(Bucket="e2e-unsigned")
    s3.put_object(Bucket="e2e-unsigned", Key="original", Body=b"original")
    # A captured PutObject replayed with an extra header nobody signed would be a CopyObject.
    replay = s3_client(gateway, signature_version="s3v4", retries={"max_attempts": 1})
    replay.meta.events.register("before-send.s3.PutObject", lambda request, **_: request.headers.__setitem__(
        "x-amz-copy-source", "e2e-unsigned/original"))
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        replay.put_object(Bucket="e2e-unsigned", Key="copy", Body=b"")
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "x-amz-copy-source" in refused.value.response["Error"]["Message"]
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket="e2e-unsigned").get("Contents", [])]
    assert listed == ["original"], "the upstream never saw the replay"
    # Recorded as what the request claimed to be, refused, with no verified identity.
    record = [r for r in stored_records(gateway.data_dir) if r.get("errorCode") == "AccessDenied"]
    assert [r["eventName"] for r in record] == ["CopyObject"], record
    assert record[0]["userIdentity"]["type"] == "Unknown"


def test_bodies_are_capped_per_service_and_refused_in_the_callers_protocol(gateway):
    key, secret = gateway.credentials()
    dynamodb = boto3.client("dynamodb", endpoint_url=gateway.endpoint, region_name="us-east-1",
                            aws_access_key_id=key, aws_secret_access_key=secret)
    dynamodb.create_table(TableName="e2e-big", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                          BillingMode="PAY_PER_REQUEST")
    # 25 items of 100 KB: 2.5 MB, over the 1 MiB that used to be refused, under DynamoDB's 16 MB.
    items = [{"PutRequest": {"Item": {"id": {"S": f"item-{n}"}, "blob": {"S": "x" * 100_000}}}} for n in range(25)]
    dynamodb.batch_write_item(RequestItems={"e2e-big": items})
    pages = dynamodb.get_paginator("scan").paginate(TableName="e2e-big", Select="COUNT")
    assert sum(page["Count"] for page in pages) == 25
    batch = [r for r in stored_records(gateway.data_dir) if r["eventName"] == "BatchWriteItem"][0]
    assert "errorCode" not in batch and "x" * 1000 not in json.dumps(batch)

    iam = boto3.client("iam", endpoint_url=gateway.endpoint, region_name="us-east-1",
                       aws_access_key_id=key, aws_secret_access_key=secret,
                       config=botocore.config.Config(retries={"max_attempts": 1}, parameter_validation=False))
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        iam.create_policy(PolicyName="e2e-huge", PolicyDocument="{" + " " * (3 << 20) + "}")
    response = refused.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert response["Error"]["Code"] == "RequestEntityTooLargeException"
    assert response["ResponseMetadata"]["HTTPHeaders"]["content-type"] == "text/xml", "the query protocol's shape"


def certificate(tmp_path):
    """A self-signed certificate for 127.0.0.1 and localhost: (certificate, key) PEM paths."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    return cert, key


def test_cairn_serves_https_and_records_the_connections_tls(tmp_path):
    cert, key = certificate(tmp_path)
    server = Cairn(tmp_path / "data", extra_args=["--tls-cert", str(cert), "--tls-key", str(key)]).start()
    try:
        assert server.endpoint.startswith("https://127.0.0.1:"), server.endpoint
        # The generated config trusts the certificate: the CLI needs nothing more.
        server.aws("cloudtrail", "lookup-events", "--max-items", "1")
        record = [r for r in stored_records(server.data_dir) if r["eventName"] == "LookupEvents"][0]
        port = server.endpoint.rsplit(":", 1)[1]
        assert record["tlsDetails"]["tlsVersion"] == "TLSv1.3"
        assert record["tlsDetails"]["cipherSuite"].startswith("TLS_")
        assert record["tlsDetails"]["clientProvidedHostHeader"] == f"127.0.0.1:{port}"
        # Plain HTTP on the TLS port gets no answer and no record; the server goes on.
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/", timeout=10)
        server.aws("cloudtrail", "lookup-events", "--max-items", "1")
        assert len([r for r in stored_records(server.data_dir) if r["eventName"] == "LookupEvents"]) == 2
    finally:
        server.stop()


def signed_certificate(tmp_path):
    """A certificate for 127.0.0.1 signed by a made-up authority: (certificate, key, authority)."""
    ca_key, ca, key, request, cert = (tmp_path / name for name in ("ca.key", "ca.pem", "leaf.key", "leaf.csr", "leaf.pem"))
    run = lambda *args: subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=e2e-ca")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", request, "-subj", "/CN=127.0.0.1")
    extensions = tmp_path / "leaf.ext"
    extensions.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n")
    run("x509", "-req", "-in", request, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert, "-days", "2",
        "-extfile", extensions)
    return cert, key, ca


def test_an_https_upstream_is_reached_when_its_authority_is_trusted(tmp_path):
    cert, key, authority = signed_certificate(tmp_path)
    upstream = CannedUpstream(200, {"Organization": {"Id": "o-https"}}, tls=(str(cert), str(key)))
    config = tmp_path / "cairn.toml"
    config.write_text(f'upstream_ca_file = "{authority}"\n[upstreams]\norganizations = "{upstream.url}"\n')
    server = Cairn(tmp_path / "data", extra_args=["--config", str(config)]).start()
    try:
        answered = server.aws_json("organizations", "describe-organization")
        assert answered["Organization"]["Id"] == "o-https"
        assert upstream.requests, "the call went to the https upstream"
    finally:
        server.stop()
    # Without the authority, the upstream's certificate is refused: a clear 502, recorded.
    config.write_text(f'[upstreams]\norganizations = "{upstream.url}"\n')
    untrusting = Cairn(tmp_path / "untrusting", extra_args=["--config", str(config)]).start()
    try:
        refused = untrusting.aws("organizations", "describe-organization", check=False)
        assert refused.returncode != 0
        record = [r for r in stored_records(untrusting.data_dir) if r["eventName"] == "DescribeOrganization"][0]
        assert record["errorCode"] == "ServiceUnavailable" and "could not be reached" in record["errorMessage"]
    finally:
        untrusting.stop()
        upstream.close()


def test_health_and_metrics_are_served_in_front_of_the_edge_and_never_recorded(cairn):
    cairn.aws("cloudtrail", "lookup-events", "--max-items", "1")
    health = requests.get(f"{cairn.endpoint}/_cairn/health", timeout=10)
    assert health.status_code == 200 and health.text == "ok\n"
    metrics = requests.get(f"{cairn.endpoint}/_cairn/metrics", timeout=10)
    assert metrics.status_code == 200
    assert 'cairn_calls_total{kind="cloudtrail",outcome="ok"}' in metrics.text, metrics.text
    assert "cairn_commit_seconds" in metrics.text and "cairn_commit_group_events" in metrics.text
    records = stored_records(cairn.data_dir)
    assert [r["eventName"] for r in records] == ["LookupEvents"], "only the AWS call is recorded"
