"""Cairn's embedded S3, driven by the real aws CLI and boto3: buckets in the data directory,
served on Cairn's own port, recorded like every other S3 call."""

import json

import boto3
import botocore.config
import botocore.exceptions
import pytest
import requests

from conftest import Cairn, stored_records


def s3_client(cairn, addressing="path", **config):
    key, secret = cairn.credentials()
    return boto3.client("s3", endpoint_url=cairn.endpoint, region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=secret,
                        config=botocore.config.Config(s3={"addressing_style": addressing},
                                                      retries={"max_attempts": 1}, **config))


def test_the_cli_makes_copies_lists_and_removes_against_the_default_serve(cairn, tmp_path):
    cairn.aws("s3", "mb", "s3://e2e-logs")
    small = tmp_path / "small.json"
    small.write_text('{"Records": []}')
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * (20 * 4096))  # 20 MiB: the CLI uploads it in parts
    cairn.aws("s3", "cp", "--no-progress", str(small), "s3://e2e-logs/AWSLogs/111/CloudTrail/a.json")
    cairn.aws("s3", "cp", "--no-progress", str(big), "s3://e2e-logs/big.bin")
    listed = cairn.aws("s3", "ls", "s3://e2e-logs/AWSLogs/", "--recursive").stdout
    assert "AWSLogs/111/CloudTrail/a.json" in listed and "big.bin" not in listed, listed
    top = cairn.aws("s3", "ls", "s3://e2e-logs/").stdout
    assert "PRE AWSLogs/" in top and "big.bin" in top, top
    back = tmp_path / "back.bin"
    cairn.aws("s3", "cp", "--no-progress", "s3://e2e-logs/big.bin", str(back))
    assert back.read_bytes() == big.read_bytes()
    assert "e2e-logs" in cairn.aws("s3", "ls").stdout
    # A bucket holding objects is never removed by rb; emptied first, it is.
    refused = cairn.aws("s3", "rb", "s3://e2e-logs", check=False)
    assert refused.returncode != 0 and "BucketNotEmpty" in refused.stderr, refused.stderr
    cairn.aws("s3", "rm", "s3://e2e-logs", "--recursive")
    cairn.aws("s3", "rb", "s3://e2e-logs")
    assert "e2e-logs" not in cairn.aws("s3", "ls").stdout

    records = [r for r in stored_records(cairn.data_dir) if r["eventSource"] == "s3.amazonaws.com"]
    names = {r["eventName"] for r in records}
    assert {"CreateBucket", "PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload",
            "GetObject", "ListObjects", "DeleteObject", "DeleteBucket"} <= names, names
    by_name = {r["eventName"]: r for r in records if not r.get("errorCode")}
    assert by_name["CreateBucket"]["eventCategory"] == "Management"
    assert by_name["PutObject"]["eventCategory"] == "Data"
    assert by_name["PutObject"]["requestParameters"]["bucketName"] == "e2e-logs"
    assert {"type": "AWS::S3::Object", "ARN": "arn:aws:s3:::e2e-logs/AWSLogs/111/CloudTrail/a.json"} in \
        [{"type": r["type"], "ARN": r["ARN"]} for r in by_name["PutObject"]["resources"]]
    failed = [r for r in records if r.get("errorCode") == "BucketNotEmpty"]
    assert failed and failed[0]["eventName"] == "DeleteBucket"


def test_boto3_sees_s3s_answers_ranges_metadata_listings_and_errors(cairn):
    for addressing in ["path", "virtual"]:
        s3 = s3_client(cairn, addressing)
        bucket = f"e2e-{addressing}"
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="dir/a b+c.txt", Body=b"0123456789", ContentType="text/plain",
                      Metadata={"signature": "abc123"})
        head = s3.head_object(Bucket=bucket, Key="dir/a b+c.txt")
        assert head["ContentLength"] == 10 and head["Metadata"] == {"signature": "abc123"}
        assert head["ContentType"] == "text/plain"
        assert head["ETag"] == '"781e5e245d69b566979b86e28d23f2c7"'
        ranged = s3.get_object(Bucket=bucket, Key="dir/a b+c.txt", Range="bytes=2-4")
        assert ranged["Body"].read() == b"234" and ranged["ContentRange"] == "bytes 2-4/10"
        assert s3.get_object(Bucket=bucket, Key="dir/a b+c.txt", Range="bytes=-3")["Body"].read() == b"789"
        for key in ["dir/b", "dir/sub/c", "top"]:
            s3.put_object(Bucket=bucket, Key=key, Body=b"x")
        v2 = s3.list_objects_v2(Bucket=bucket, Prefix="dir/", Delimiter="/")
        assert [o["Key"] for o in v2["Contents"]] == ["dir/a b+c.txt", "dir/b"]
        assert [p["Prefix"] for p in v2["CommonPrefixes"]] == ["dir/sub/"] and v2["KeyCount"] == 3
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, PaginationConfig={"PageSize": 2})
        assert [o["Key"] for page in pages for o in page.get("Contents", [])] == \
            ["dir/a b+c.txt", "dir/b", "dir/sub/c", "top"]
        v1 = list(s3.get_paginator("list_objects").paginate(Bucket=bucket, Delimiter="/",
                                                            PaginationConfig={"PageSize": 1}))
        seen = [(o["Key"]) for page in v1 for o in page.get("Contents", [])] + \
            [p["Prefix"] for page in v1 for p in page.get("CommonPrefixes", [])]
        assert sorted(seen) == ["dir/", "top"], seen
        assert s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] is None
        with pytest.raises(botocore.exceptions.ClientError) as missing:
            s3.get_object(Bucket=bucket, Key="nope")
        assert missing.value.response["Error"]["Code"] == "NoSuchKey"
        with pytest.raises(botocore.exceptions.ClientError) as unsatisfiable:
            s3.get_object(Bucket=bucket, Key="top", Range="bytes=5-")
        assert unsatisfiable.value.response["Error"]["Code"] == "InvalidRange"
        with pytest.raises(botocore.exceptions.ClientError) as no_bucket:
            s3.put_object(Bucket="e2e-never-made", Key="k", Body=b"x")
        assert no_bucket.value.response["Error"]["Code"] == "NoSuchBucket"
        with pytest.raises(botocore.exceptions.ClientError) as head_missing:
            s3.head_bucket(Bucket="e2e-never-made")
        assert head_missing.value.response["Error"]["Code"] == "404"
        with pytest.raises(botocore.exceptions.ClientError) as taken:
            s3_client(cairn).create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        assert taken.value.response["Error"]["Code"] == "BucketAlreadyOwnedByYou"
        # Presigned URLs, both signature versions botocore makes.
        for signer in [s3_client(cairn, addressing), s3_client(cairn, addressing, signature_version="s3v4")]:
            put = signer.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "presigned"})
            assert requests.put(put, data=b"by url", timeout=30).status_code == 200
            get = signer.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "presigned"})
            assert requests.get(get, timeout=30).content == b"by url"
        deleted = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "top"}, {"Key": "dir/b"}]})
        assert sorted(d["Key"] for d in deleted["Deleted"]) == ["dir/b", "top"]
        assert "top" not in [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    buckets = [b["Name"] for b in s3_client(cairn).list_buckets()["Buckets"]]
    assert buckets == ["e2e-path", "e2e-virtual"]


def test_an_upstream_serves_s3_unless_the_embedded_s3_is_asked_for(tmp_path, moto):
    proxied = Cairn(tmp_path / "proxied", extra_args=["--upstream", moto]).start()
    embedded = Cairn(tmp_path / "embedded", extra_args=["--upstream", moto, "--embedded-s3"]).start()
    try:
        s3_client(proxied).create_bucket(Bucket="e2e-at-moto")
        s3_client(embedded).create_bucket(Bucket="e2e-at-cairn")
        at_moto = [b["Name"] for b in s3_client(proxied).list_buckets()["Buckets"]]
        at_cairn = [b["Name"] for b in s3_client(embedded).list_buckets()["Buckets"]]
        assert "e2e-at-moto" in at_moto and "e2e-at-cairn" not in at_moto
        assert at_cairn == ["e2e-at-cairn"]
        # The other services still go to the upstream.
        key, secret = embedded.credentials()
        sqs = boto3.client("sqs", endpoint_url=embedded.endpoint, region_name="us-east-1",
                           aws_access_key_id=key, aws_secret_access_key=secret)
        assert "QueueUrl" in sqs.create_queue(QueueName="e2e-embedded")
        assert (embedded.data_dir / "buckets.sqlite").exists()
        assert not (proxied.data_dir / "buckets.sqlite").exists()
    finally:
        proxied.stop()
        embedded.stop()


def test_objects_are_durable_across_a_kill(tmp_path):
    server = Cairn(tmp_path / "data").start()
    s3 = s3_client(server)
    s3.create_bucket(Bucket="e2e-durable")
    s3.put_object(Bucket="e2e-durable", Key="acknowledged", Body=b"kept")
    import signal
    server.stop(signal.SIGKILL)
    server = Cairn(tmp_path / "data").start()
    try:
        assert s3_client(server).get_object(Bucket="e2e-durable", Key="acknowledged")["Body"].read() == b"kept"
        assert json.loads(json.dumps(s3_client(server).list_buckets()["Buckets"][0]["Name"])) == "e2e-durable"
    finally:
        server.stop()
