"""Bodies too large to hold stream through the gateway both ways, checked against their
signed SHA-256 on the way, with moto_server as the real upstream and the real clients."""

import hashlib
import hmac
import io
import os
import pathlib
import urllib.error
import urllib.request

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.credentials
import botocore.httpchecksum
import pytest

from conftest import Cairn, stored_records

MIB = 1 << 20


@pytest.fixture
def gateway(tmp_path, moto):
    server = Cairn(tmp_path / "data", extra_args=["--upstream", moto]).start()
    yield server
    server.stop()


def s3_client(cairn):
    key, secret = cairn.credentials()
    return boto3.client("s3", endpoint_url=cairn.endpoint, region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=secret)


def peak_rss_bytes(cairn):
    status = pathlib.Path(f"/proc/{cairn.process.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def s3_records(cairn):
    # S3 object calls are data events: stored, but not in LookupEvents' event history.
    return [r for r in stored_records(cairn.data_dir) if r["eventSource"] == "s3.amazonaws.com"]


def test_a_large_object_streams_up_and_down_without_being_held(gateway):
    s3 = s3_client(gateway)
    s3.create_bucket(Bucket="big-objects")
    before = peak_rss_bytes(gateway)
    content = os.urandom(MIB) * 96
    s3.put_object(Bucket="big-objects", Key="blob.bin", Body=content)
    fetched = s3.get_object(Bucket="big-objects", Key="blob.bin")
    assert fetched["ContentLength"] == len(content)
    assert hashlib.sha256(fetched["Body"].read()).digest() == hashlib.sha256(content).digest()
    assert s3.head_object(Bucket="big-objects", Key="blob.bin")["ContentLength"] == len(content)
    growth = peak_rss_bytes(gateway) - before
    # Held whole, the upload alone would add 96 MiB; streamed, a few chunks.
    assert growth < 32 * MIB, f"cairn's peak memory grew by {growth / MIB:.1f} MiB"
    names = [(r["eventName"], r.get("errorCode")) for r in s3_records(gateway)]
    assert ("PutObject", None) in names and ("GetObject", None) in names
    put = next(r for r in s3_records(gateway) if r["eventName"] == "PutObject")
    assert put["eventCategory"] == "Data" and put["managementEvent"] is False
    # The fields AWS's own S3 data events carry (see the OTRF sample's GetObject).
    host = gateway.endpoint.removeprefix("http://")
    assert put["requestParameters"] == {"bucketName": "big-objects", "key": "blob.bin", "Host": host}
    account = put["userIdentity"]["accountId"]
    assert put["resources"] == [
        {"type": "AWS::S3::Object", "ARN": "arn:aws:s3:::big-objects/blob.bin"},
        {"accountId": account, "type": "AWS::S3::Bucket", "ARN": "arn:aws:s3:::big-objects"},
    ]
    assert put["additionalEventData"]["bytesTransferredIn"] == len(content)
    assert put["additionalEventData"]["SignatureVersion"] == "SigV4"
    assert put["additionalEventData"]["AuthenticationMethod"] == "AuthHeader"
    got = next(r for r in s3_records(gateway) if r["eventName"] == "GetObject")
    assert got["additionalEventData"]["bytesTransferredOut"] == len(content)
    assert got["readOnly"] is True and got["responseElements"] is None
    created = next(r for r in s3_records(gateway) if r["eventName"] == "CreateBucket")
    assert created["eventCategory"] == "Management"
    assert created["resources"] == [{"accountId": account, "type": "AWS::S3::Bucket",
                                     "ARN": "arn:aws:s3:::big-objects"}]


def test_the_cli_multipart_upload_streams_each_part(gateway, tmp_path):
    source = tmp_path / "upload.bin"
    source.write_bytes(os.urandom(MIB) * 20)
    gateway.aws("s3api", "create-bucket", "--bucket", "cli-uploads")
    gateway.aws("s3", "cp", str(source), "s3://cli-uploads/upload.bin")
    target = tmp_path / "download.bin"
    gateway.aws("s3", "cp", "s3://cli-uploads/upload.bin", str(target))
    assert target.read_bytes() == source.read_bytes()
    names = [r["eventName"] for r in s3_records(gateway) if "errorCode" not in r]
    assert "CreateMultipartUpload" in names and "CompleteMultipartUpload" in names
    assert names.count("UploadPart") >= 2


def send_signed(cairn, request, body):
    """Signs `request` with the server's credentials and sends `body` under it, returning the
    status and answer: how a test sends a body its signature deliberately does not vouch for."""
    if "Authorization" not in request.headers:
        key, secret = cairn.credentials()
        botocore.auth.SigV4Auth(botocore.credentials.Credentials(key, secret), "s3", "us-east-1").add_auth(request)
    prepared = request.prepare()
    sent = urllib.request.Request(prepared.url, data=body, method="PUT", headers=dict(prepared.headers))
    try:
        with urllib.request.urlopen(sent, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def signed_put(cairn, path, body, declared_sha256):
    """A PutObject whose valid signature covers a declared payload hash that may lie."""
    request = botocore.awsrequest.AWSRequest(
        method="PUT", url=f"{cairn.endpoint}{path}", data=body,
        headers={"X-Amz-Content-SHA256": declared_sha256, "Content-Length": str(len(body)),
                 # urllib would otherwise call the body a form, and moto would parse it as one.
                 "Content-Type": "application/octet-stream"},
    )
    return send_signed(cairn, request, body)


@pytest.mark.parametrize("size", [64 * 1024, 3 * MIB], ids=["read-whole", "streamed"])
def test_a_body_that_does_not_match_its_signed_hash_is_refused_and_never_stored(gateway, size):
    s3 = s3_client(gateway)
    # Each Cairn has its own account at moto, and bucket names are global: one per case.
    bucket = f"checked-{size}"
    s3.create_bucket(Bucket=bucket)
    body = os.urandom(size)
    lie = hashlib.sha256(body[:-1] + b"\0").hexdigest()
    status, answer = signed_put(gateway, f"/{bucket}/tampered.bin", body, lie)
    assert status == 400, answer
    assert b"<Code>XAmzContentSHA256Mismatch</Code>" in answer
    with pytest.raises(s3.exceptions.ClientError) as missing:
        s3.head_object(Bucket=bucket, Key="tampered.bin")
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    refused = next(r for r in s3_records(gateway) if r.get("errorCode") == "XAmzContentSHA256Mismatch")
    assert refused["eventName"] == "PutObject"
    assert refused["userIdentity"]["type"] == "IAMUser"
    # The same body under its true hash goes through.
    status, _ = signed_put(gateway, f"/{bucket}/honest.bin", body, hashlib.sha256(body).hexdigest())
    assert status == 200
    assert s3.head_object(Bucket=bucket, Key="honest.bin")["ContentLength"] == size


def test_an_oversized_body_without_a_declared_hash_is_refused(gateway):
    key, secret = gateway.credentials()
    kms = boto3.client("kms", endpoint_url=gateway.endpoint, region_name="us-east-1",
                       aws_access_key_id=key, aws_secret_access_key=secret)
    with pytest.raises(kms.exceptions.ClientError) as refused:
        # Over the 2 MiB a call to a service with no larger limit of its own may carry.
        kms.tag_resource(KeyId="k", Tags=[{"TagKey": "t", "TagValue": "v" * 256}] * 9000)
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413


def test_virtual_hosted_requests_are_recorded_as_their_path_style_equivalents(gateway, monkeypatch):
    # What an /etc/hosts entry for *.localhost would do: boto3 itself is unchanged.
    import socket
    resolve = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if isinstance(host, str) and host.endswith(".localhost"):
            host = "127.0.0.1"
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    key, secret = gateway.credentials()
    port = gateway.endpoint.rsplit(":", 1)[1]
    s3 = boto3.client("s3", endpoint_url=f"http://localhost:{port}", region_name="us-east-1",
                      aws_access_key_id=key, aws_secret_access_key=secret,
                      config=botocore.config.Config(s3={"addressing_style": "virtual"}))
    bucket = "vhost-e2e"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="dir/a.txt", Body=b"virtually hosted")
    assert s3.get_object(Bucket=bucket, Key="dir/a.txt")["Body"].read() == b"virtually hosted"
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="dir/")
    assert [item["Key"] for item in listed["Contents"]] == ["dir/a.txt"]

    records = {r["eventName"]: r for r in s3_records(gateway)
               if r["requestParameters"].get("Host", "").startswith(f"{bucket}.localhost")}
    # ListObjectsV2 is recorded as ListObjects with `list-type: 2`, as AWS records it.
    assert set(records) >= {"CreateBucket", "PutObject", "GetObject", "ListObjects"}, sorted(records)
    assert "ListObjectsV2" not in records
    host = f"{bucket}.localhost:{port}"
    put = records["PutObject"]
    assert put["requestParameters"] == {"bucketName": bucket, "key": "dir/a.txt", "Host": host}
    assert put["resources"][0] == {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/dir/a.txt"}
    assert records["GetObject"]["additionalEventData"]["bytesTransferredOut"] == len(b"virtually hosted")
    assert records["CreateBucket"]["resources"][0]["ARN"] == f"arn:aws:s3:::{bucket}"
    listing = records["ListObjects"]
    assert listing["requestParameters"]["list-type"] == "2" and listing["eventCategory"] == "Data"
    assert {"type": "AWS::S3::Object", "ARNPrefix": f"arn:aws:s3:::{bucket}/dir/"} in listing["resources"]


def chunk_signed_put(cairn, path, data, chunk_size=64 * 1024, tamper=False):
    """A PutObject sent as signed aws-chunked (STREAMING-AWS4-HMAC-SHA256-PAYLOAD), as the Java
    and Go SDKs send uploads: the header signature seeds a chain of one signature per chunk.
    The chain is AWS's published algorithm, which Cairn's unit tests hold to AWS's example."""
    key, secret = cairn.credentials()
    chunks = [data[i:i + chunk_size] for i in range(0, len(data), chunk_size)] + [b""]
    framed_length = sum(len(f"{len(c):x};chunk-signature=") + 64 + 2 + len(c) + 2 for c in chunks)
    request = botocore.awsrequest.AWSRequest(
        method="PUT", url=f"{cairn.endpoint}{path}",
        headers={"X-Amz-Content-SHA256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
                 "Content-Encoding": "aws-chunked", "X-Amz-Decoded-Content-Length": str(len(data)),
                 "Content-Length": str(framed_length), "Content-Type": "application/octet-stream"},
    )
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(key, secret), "s3", "us-east-1").add_auth(request)
    amz_date = request.headers["X-Amz-Date"]
    scope = f"{amz_date[:8]}/us-east-1/s3/aws4_request"
    signing_key = f"AWS4{secret}".encode()
    for part in (amz_date[:8], "us-east-1", "s3", "aws4_request"):
        signing_key = hmac.new(signing_key, part.encode(), hashlib.sha256).digest()
    previous = request.headers["Authorization"].rsplit("Signature=", 1)[1]
    body = b""
    for chunk in chunks:
        to_sign = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, previous,
                             hashlib.sha256(b"").hexdigest(), hashlib.sha256(chunk).hexdigest()])
        previous = hmac.new(signing_key, to_sign.encode(), hashlib.sha256).hexdigest()
        body += f"{len(chunk):x};chunk-signature={previous}\r\n".encode() + chunk + b"\r\n"
    if tamper:
        # One byte of the last data chunk, after its signature was made.
        at = body.rindex(b"\r\n0;chunk-signature=") - 1
        body = body[:at] + bytes([body[at] ^ 1]) + body[at + 1:]
    assert len(body) == framed_length
    return send_signed(cairn, request, body)


@pytest.mark.parametrize("size", [100 * 1024, 3 * MIB], ids=["read-whole", "streamed"])
def test_signed_chunks_are_verified_one_by_one(gateway, size):
    s3 = s3_client(gateway)
    bucket = f"chunked-{size}"
    s3.create_bucket(Bucket=bucket)
    data = os.urandom(size)
    status, answer = chunk_signed_put(gateway, f"/{bucket}/honest.bin", data)
    assert status == 200, answer
    stored = s3.get_object(Bucket=bucket, Key="honest.bin")["Body"].read()
    assert stored == data, "the upstream decoded the chunks Cairn passed on unchanged"

    status, answer = chunk_signed_put(gateway, f"/{bucket}/tampered.bin", data, tamper=True)
    assert status == 403, answer
    assert b"<Code>SignatureDoesNotMatch</Code>" in answer
    with pytest.raises(s3.exceptions.ClientError) as missing:
        s3.head_object(Bucket=bucket, Key="tampered.bin")
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    refused = next(r for r in s3_records(gateway) if r.get("errorCode") == "SignatureDoesNotMatch")
    assert refused["eventName"] == "PutObject" and refused["requestParameters"]["key"] == "tampered.bin"


def test_unsigned_chunks_with_a_trailing_checksum_pass_as_botocore_frames_them(gateway):
    """botocore over TLS sends uploads as STREAMING-UNSIGNED-PAYLOAD-TRAILER, framed by its own
    AwsChunkedWrapper with a CRC32 trailer; the framing is checked and passed on as sent."""
    s3 = s3_client(gateway)
    s3.create_bucket(Bucket="trailer")
    data = os.urandom(200 * 1024)

    def put(path, body, decoded_length):
        request = botocore.awsrequest.AWSRequest(
            method="PUT", url=f"{gateway.endpoint}{path}",
            headers={"X-Amz-Content-SHA256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                     "Content-Encoding": "aws-chunked", "X-Amz-Trailer": "x-amz-checksum-crc32",
                     "X-Amz-Decoded-Content-Length": str(decoded_length),
                     "Content-Length": str(len(body)), "Content-Type": "application/octet-stream"})
        return send_signed(gateway, request, body)

    framed = botocore.httpchecksum.AwsChunkedWrapper(
        io.BytesIO(data), checksum_cls=botocore.httpchecksum.Crc32Checksum,
        checksum_name="x-amz-checksum-crc32").read()
    status, answer = put("/trailer/framed.bin", framed, len(data))
    assert status == 200, answer
    assert s3.get_object(Bucket="trailer", Key="framed.bin")["Body"].read() == data
    status, answer = put("/trailer/lying.bin", framed, len(data) + 1)
    assert status == 400 and b"<Code>IncompleteBody</Code>" in answer, answer
    status, answer = put("/trailer/cut.bin", framed[:-30], len(data))
    assert status == 400, answer
    for refused in ("lying.bin", "cut.bin"):
        with pytest.raises(s3.exceptions.ClientError):
            s3.head_object(Bucket="trailer", Key=refused)
