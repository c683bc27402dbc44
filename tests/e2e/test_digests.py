"""Log file integrity with the real aws CLI against the real binary: digest files that
`aws cloudtrail validate-logs` accepts across two logging periods (a gap between them) and a
key rotation, ListPublicKeys as the CLI loads it, and every tampering class caught, for
exactly the files touched, by the aws CLI and by `cairn validate-logs` alike."""

import base64
import datetime
import hashlib
import json
import os
import re
import shlex
import signal
import subprocess
import time
import zlib

import boto3
import pytest
import rsa

from conftest import BINARY, Cairn, clean_env
from test_trails import client, wait_for

BUCKET = "e2e-digests"


def gunzip(body):
    return zlib.decompress(body, 16 + zlib.MAX_WBITS)


def aws_validate(server, arn, start, end, extra=()):
    result = server.aws("cloudtrail", "validate-logs", "--trail-arn", arn, "--start-time", start,
                        "--end-time", end, "--verbose", *extra, check=False)
    return result.returncode, result.stdout, result.stderr


def cairn_validate(server, arn, start, end, extra=()):
    result = subprocess.run(
        [str(BINARY), "validate-logs", "--data-dir", str(server.data_dir), "--trail-arn", arn,
         "--start-time", start, "--end-time", end, "--verbose", *extra],
        capture_output=True, text=True, env=clean_env(server.data_dir), timeout=120,
    )
    return result.returncode, result.stdout, result.stderr


def verdicts(output):
    """(file lines, summary) of a validate-logs run: every file's verdict, and the totals."""
    _, stdout, stderr = output
    lines = [line for line in (stdout + stderr).splitlines()
             if line.startswith(("Digest file\t", "Log file\t", "No log files were delivered"))]
    summary = re.findall(r"^\d+/\d+ (?:digest|log) files valid.*$", stdout, re.M)
    return sorted(lines), summary


def invalid_lines(output):
    return sorted(line for line in verdicts(output)[0] if "\tINVALID: " in line)


def cairn_validate_remote(server, arn, start, end, extra=()):
    """`cairn validate-logs` reading over HTTP, as the aws CLI does, not the data directory."""
    result = subprocess.run(
        [str(BINARY), "validate-logs", "--endpoint-url", server.endpoint, "--data-dir", "/nonexistent",
         "--trail-arn", arn, "--start-time", start, "--end-time", end, "--verbose", *extra],
        capture_output=True, text=True, env=server.env(), timeout=120,
    )
    return result.returncode, result.stdout, result.stderr


def both(server, arn, start, end, extra=()):
    """The aws CLI's and Cairn's verdicts; Cairn's are the same read from the data directory
    or over HTTP."""
    ours = cairn_validate(server, arn, start, end, extra)
    remote = cairn_validate_remote(server, arn, start, end, extra)
    assert (remote[0], verdicts(remote)) == (ours[0], verdicts(ours)), remote
    return aws_validate(server, arn, start, end, extra), ours


def iso(at):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def log_then_stop(ct, name, calls):
    """StartLogging, a DescribeTrails call every 2 s `calls` times, StopLogging, and time for
    the final delivery and digest."""
    ct.start_logging(Name=name)
    for _ in range(calls):
        ct.describe_trails()
        time.sleep(2)
    ct.stop_logging(Name=name)
    time.sleep(4)


@pytest.fixture(scope="module")
def trail(tmp_path_factory):
    """A trail with validation that logged twice, with a stop between and a key rotation."""
    tmp = tmp_path_factory.mktemp("digests")
    server = Cairn(tmp / "data", extra_args=[
        "--delivery-interval-secs", "1", "--digest-interval-secs", "10", "--digest-key-rotation-secs", "25",
    ]).start()
    started = time.time() - 60
    server.aws("s3", "mb", f"s3://{BUCKET}")
    arn = json.loads(server.aws("cloudtrail", "create-trail", "--name", "audit", "--s3-bucket-name", BUCKET,
                                "--enable-log-file-validation").stdout)["TrailARN"]
    ct = server.client()
    for _ in range(2):
        log_then_stop(ct, "audit", 12)
    s3 = client(server, "s3")
    yield server, arn, iso(started), iso(time.time() + 5), s3
    server.stop()


def keys_of(s3, kind):
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        keys += [item["Key"] for item in page.get("Contents", []) if f"/{kind}/" in item["Key"]]
    return sorted(keys)


def test_digests_chain_and_validate_with_the_aws_cli_and_cairn(trail):
    server, arn, start, end, s3 = trail
    digests = keys_of(s3, "CloudTrail-Digest")
    logs = keys_of(s3, "CloudTrail")
    assert len(digests) >= 4 and len(logs) >= 10, (digests, logs)
    for key in digests:
        assert re.fullmatch(
            r"AWSLogs/\d{12}/CloudTrail-Digest/us-east-1/\d{4}/\d{2}/\d{2}/\d{12}_CloudTrail-Digest_"
            r"us-east-1_audit_us-east-1_\d{8}T\d{6}Z\.json\.gz", key), key

    # The digests list every log file once, and chain: two starting digests (one per
    # logging period), every other one pointing at its predecessor by hash and signature.
    bodies = {}
    listed = []
    for key in digests:
        got = s3.get_object(Bucket=BUCKET, Key=key)
        assert got["Metadata"]["signature-algorithm"] == "SHA256withRSA"
        raw = gunzip(got["Body"].read())
        bodies[key] = (json.loads(raw), raw, got["Metadata"]["signature"])
        listed += [entry["s3Object"] for entry in bodies[key][0]["logFiles"]]
    assert sorted(listed) == logs
    starting = [key for key in digests if bodies[key][0]["previousDigestSignature"] is None]
    assert len(starting) == 2 and starting[0] == digests[0]
    for key in digests:
        digest = bodies[key][0]
        assert digest["digestS3Bucket"] == BUCKET and digest["digestS3Object"] == key
        if digest["previousDigestS3Object"]:
            previous = bodies[digest["previousDigestS3Object"]]
            assert digest["previousDigestHashValue"] == hashlib.sha256(previous[1]).hexdigest()
            assert digest["previousDigestSignature"] == previous[2]
            assert digest["digestStartTime"] == previous[0]["digestEndTime"]
        for entry in digest["logFiles"]:
            body = gunzip(s3.get_object(Bucket=BUCKET, Key=entry["s3Object"])["Body"].read())
            assert entry["hashValue"] == hashlib.sha256(body).hexdigest()
            assert entry["oldestEventTime"] <= entry["newestEventTime"]

    # The keys rotated during the run; ListPublicKeys gives each as the CLI loads it.
    fingerprints = {bodies[key][0]["digestPublicKeyFingerprint"] for key in digests}
    assert len(fingerprints) >= 2, fingerprints
    published = server.aws_json("cloudtrail", "list-public-keys", "--start-time", start, "--end-time", end)
    by_print = {key["Fingerprint"]: key for key in published["PublicKeyList"]}
    assert fingerprints <= set(by_print)
    for fingerprint, key in by_print.items():
        der = base64.b64decode(key["Value"])
        assert hashlib.md5(der).hexdigest() == fingerprint
        rsa.PublicKey.load_pkcs1(der, format="DER")
        assert key["ValidityStartTime"] < key["ValidityEndTime"]
    now_only = server.aws_json("cloudtrail", "list-public-keys")["PublicKeyList"]
    assert len(now_only) >= 1
    bad_range = server.aws("cloudtrail", "list-public-keys", "--start-time", end, "--end-time", start, check=False)
    assert "InvalidTimeRangeException" in bad_range.stderr

    status = server.client().get_trail_status(Name="audit")
    assert "LatestDigestDeliveryTime" in status and "LatestDigestDeliveryError" not in status

    aws, ours = both(server, arn, start, end)
    assert aws[0] == 0, aws
    assert ours[0] == 0, ours
    summary = [f"{len(digests)}/{len(digests)} digest files valid", f"{len(logs)}/{len(logs)} log files valid"]
    assert verdicts(aws)[1] == summary
    assert verdicts(ours) == verdicts(aws)
    gap = [line for line in verdicts(aws)[0] if line.startswith("No log files were delivered")]
    assert len(gap) == 1, aws
    # On a terminal cairn shows its progress (on stderr, cleared at the end); piped, not.
    command = " ".join(shlex.quote(part) for part in [
        str(BINARY), "validate-logs", "--data-dir", str(server.data_dir), "--trail-arn", arn,
        "--start-time", start, "--end-time", end])
    on_terminal = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True, text=True,
                                 env=clean_env(server.data_dir), timeout=120)
    assert on_terminal.returncode == 0 and "files checked" in on_terminal.stdout, on_terminal
    assert "files checked" not in ours[1] + ours[2]
    # No key material is in a record or the server's log.
    key_dir = server.data_dir / "digest-keys" / "us-east-1"
    secrets = [json.loads(path.read_text())["pkcs8"] for path in key_dir.glob("*.json")]
    log_text = (server.data_dir.parent / "data-server.log").read_text()
    assert secrets and not any(secret[:40] in log_text for secret in secrets)


def test_validate_a_local_copy_made_by_aws_s3_sync(trail, tmp_path):
    """A synced copy has no object metadata: every digest's signature but the newest of each
    chain is taken from its successor; those newest ones are reported as not checkable."""
    server, arn, start, end, s3 = trail
    copy = tmp_path / "copy"
    server.aws("s3", "sync", f"s3://{BUCKET}", str(copy))
    digests = keys_of(s3, "CloudTrail-Digest")
    bodies = {key: json.loads(gunzip(saved(s3, key)[0])) for key in digests}
    pointed_at = {body["previousDigestS3Object"] for body in bodies.values()}
    newest = sorted(key for key in digests if key not in pointed_at)
    assert len(newest) == 2, newest  # one per logging period
    unchecked = sum(len(bodies[key]["logFiles"]) for key in newest)
    logs = keys_of(s3, "CloudTrail")

    def local():
        result = subprocess.run(
            [str(BINARY), "validate-logs", "--data-dir", str(server.data_dir), "--local-copy", str(copy),
             "--trail-arn", arn, "--start-time", start, "--end-time", end, "--verbose"],
            capture_output=True, text=True, env=clean_env(server.data_dir), timeout=120,
        )
        return result.returncode, result.stdout, result.stderr

    got = local()
    assert got[0] == 1, got
    assert invalid_lines(got) == [
        f"Digest file\ts3://{BUCKET}/{key}\tINVALID: signature not in a local copy (S3 keeps it as object "
        "metadata, which a sync does not download)" for key in newest]
    total = len(digests)
    assert verdicts(got)[1] == [
        f"{total - 2}/{total} digest files valid, 2/{total} digest files INVALID",
        f"{len(logs) - unchecked}/{len(logs) - unchecked} log files valid",
    ], got

    # A log file changed in the copy is caught there too.
    victim = next(entry["s3Object"] for key in digests if key not in newest for entry in bodies[key]["logFiles"])
    path = copy / victim
    path.write_bytes(gzip_bytes(b'{"Records":[]}'))
    assert f"Log file\ts3://{BUCKET}/{victim}\tINVALID: hash value doesn't match" in invalid_lines(local())


def put_back(s3, key, body, metadata):
    s3.put_object(Bucket=BUCKET, Key=key, Body=body, Metadata=metadata,
                  ContentType="application/json", ContentEncoding="gzip")


def saved(s3, key, bucket=BUCKET):
    got = s3.get_object(Bucket=bucket, Key=key)
    return got["Body"].read(), got["Metadata"]


def expect_both(server, arn, start, end, expected, extra_for_cairn=()):
    """Both tools exit 1 and name exactly the files in `expected`; Cairn may add its own."""
    aws, ours = both(server, arn, start, end)
    assert aws[0] == 1, aws
    assert ours[0] == 1, ours
    assert invalid_lines(aws) == sorted(expected), aws
    assert invalid_lines(ours) == sorted([*expected, *extra_for_cairn]), ours


def test_every_tampering_is_caught_for_exactly_the_files_touched(trail):
    server, arn, start, end, s3 = trail
    digests = keys_of(s3, "CloudTrail-Digest")
    logs = keys_of(s3, "CloudTrail")
    url = lambda key: f"s3://{BUCKET}/{key}"  # noqa: E731
    # A file of the first logging period: written over a minute before any tampering, so a
    # copy written now carries another minute than its name.
    victim = logs[1]
    body, metadata = saved(s3, victim)

    # A log file modified (one record changed, still valid gzip JSON).
    records = json.loads(gunzip(body))
    records["Records"][0]["eventName"] = "Tampered"
    changed = gzip_bytes(json.dumps(records).encode())
    put_back(s3, victim, changed, metadata)
    expect_both(server, arn, start, end, [f"Log file\t{url(victim)}\tINVALID: hash value doesn't match"])
    # Not gzip at all.
    put_back(s3, victim, b"plain text", metadata)
    expect_both(server, arn, start, end, [f"Log file\t{url(victim)}\tINVALID: invalid format"])
    # Huge: past the 256 MiB a digest may be, in bytes that do not compress. Both tools read
    # it through (Cairn 8 MiB at a time, from the data directory and over HTTP) and find its
    # hash wrong. It is written 8 MiB at a time so that this process never holds it: a child
    # process starts with its parent's peak memory as its own, and test_import measures one.
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key=victim)["UploadId"]
    stored = zlib.compressobj(0, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = []
    for n in range(33):
        part = stored.compress(os.urandom(8 << 20)) + (stored.flush() if n == 32 else b"")
        parts.append({"PartNumber": n + 1, "ETag": s3.upload_part(
            Bucket=BUCKET, Key=victim, UploadId=upload, PartNumber=n + 1, Body=part)["ETag"]})
        del part
    s3.complete_multipart_upload(Bucket=BUCKET, Key=victim, UploadId=upload, MultipartUpload={"Parts": parts})
    expect_both(server, arn, start, end, [f"Log file\t{url(victim)}\tINVALID: hash value doesn't match"])

    # Deleted.
    s3.delete_object(Bucket=BUCKET, Key=victim)
    expect_both(server, arn, start, end, [f"Log file\t{url(victim)}\tINVALID: not found"])

    # Moved: the old place is missing; Cairn also names the file no digest lists. The copy
    # must be written after its named minute (and 2 s of slack) is over, as a later move is.
    named = datetime.datetime.strptime(victim[-39:-26], "%Y%m%dT%H%M").replace(tzinfo=datetime.timezone.utc)
    time.sleep(max(0.0, named.timestamp() + 63 - time.time()))
    moved = victim[:-24] + "AAAAAAAAAAAAAAAA.json.gz"
    put_back(s3, moved, body, metadata)
    expect_both(server, arn, start, end, [f"Log file\t{url(victim)}\tINVALID: not found"],
                [f"Log file\t{url(moved)}\tINVALID: not listed in any digest"])
    s3.delete_object(Bucket=BUCKET, Key=moved)
    put_back(s3, victim, body, metadata)

    # Slipped in: a file no digest lists. The aws CLI never lists log files, so it passes it.
    slipped = victim[:-24] + "ZZZZZZZZZZZZZZZZ.json.gz"
    put_back(s3, slipped, body, metadata)
    aws, ours = both(server, arn, start, end)
    assert aws[0] == 0 and invalid_lines(aws) == [], aws
    assert ours[0] == 1 and invalid_lines(ours) == [f"Log file\t{url(slipped)}\tINVALID: not listed in any digest"]
    s3.delete_object(Bucket=BUCKET, Key=slipped)

    middle = digests[len(digests) // 2]
    newer = next(key for key in digests if
                 json.loads(gunzip(saved(s3, key)[0]))["previousDigestS3Object"] == middle)
    digest_body, digest_metadata = saved(s3, middle)
    digest = json.loads(gunzip(digest_body))
    # Once the digest is not valid, Cairn names the files it listed: no valid digest does.
    unlisted = [f"Log file\t{url(entry['s3Object'])}\tINVALID: not listed in any digest"
                for entry in digest["logFiles"]]

    # A digest modified: its signature no longer holds, so its logs are not checked.
    digest["logFiles"] = digest["logFiles"][:-1] if digest["logFiles"] else [{"s3Bucket": BUCKET}]
    put_back(s3, middle, gzip_bytes(json.dumps(digest).encode()), digest_metadata)
    expect_both(server, arn, start, end, [f"Digest file\t{url(middle)}\tINVALID: signature verification failed"],
                unlisted)
    # Its signature gone from the metadata.
    put_back(s3, middle, digest_body, {})
    expect_both(server, arn, start, end, [f"Digest file\t{url(middle)}\tINVALID: signature verification failed"],
                unlisted)
    put_back(s3, middle, digest_body, digest_metadata)

    # A digest that is not gzip, gzip of what is not JSON, or cut short: its format.
    raw = gunzip(digest_body)
    for broken in [b"not gzip at all", gzip_bytes(b"{not json"), digest_body[: len(digest_body) // 2]]:
        put_back(s3, middle, broken, digest_metadata)
        expect_both(server, arn, start, end, [f"Digest file\t{url(middle)}\tINVALID: invalid format"],
                    unlisted)
    assert json.loads(raw)["digestS3Object"] == middle
    put_back(s3, middle, digest_body, digest_metadata)

    # A digest deleted: the chain from the next one finds nothing there.
    s3.delete_object(Bucket=BUCKET, Key=middle)
    expect_both(server, arn, start, end, [f"Digest file\t{url(middle)}\tINVALID: not found"],
                unlisted)

    # A digest moved (a second earlier, where the walk past the missing one finds it): found
    # at the new key, it says it belongs elsewhere.
    stamp = datetime.datetime.strptime(middle[-24:-8], "%Y%m%dT%H%M%SZ") - datetime.timedelta(seconds=1)
    elsewhere = middle[:-24] + stamp.strftime("%Y%m%dT%H%M%SZ") + ".json.gz"
    put_back(s3, elsewhere, digest_body, digest_metadata)
    aws, ours = both(server, arn, start, end)
    assert aws[0] == 1 and ours[0] == 1
    assert f"Digest file\t{url(middle)}\tINVALID: not found" in invalid_lines(aws)
    assert f"Digest file\t{url(elsewhere)}\tINVALID: has been moved from its original location" in invalid_lines(aws)
    assert [line for line in invalid_lines(ours) if line.startswith("Digest")] == \
        [line for line in invalid_lines(aws) if line.startswith("Digest")]
    s3.delete_object(Bucket=BUCKET, Key=elsewhere)

    # A chain broken by a replayed digest: an older, validly signed digest in its place.
    older = digests[digests.index(middle) - 1]
    older_body, older_metadata = saved(s3, older)
    put_back(s3, middle, older_body, older_metadata)
    expect_both(server, arn, start, end, [f"Digest file\t{url(middle)}\tINVALID: has been moved from its original location"],
                unlisted)
    put_back(s3, middle, digest_body, digest_metadata)

    # Signed with another key: under the real key's fingerprint it fails the signature; under
    # its own it names a key CloudTrail never published.
    (public, private) = rsa.newkeys(1024)
    to_sign = "\n".join([digest["digestEndTime"], f"{BUCKET}/{middle}",
                         hashlib.sha256(gunzip(digest_body)).hexdigest(),
                         digest["previousDigestSignature"] or "null"]).encode()
    forged = rsa.sign(to_sign, private, "SHA-256").hex()
    put_back(s3, middle, digest_body, {**digest_metadata, "signature": forged})
    expect_both(server, arn, start, end, [f"Digest file\t{url(middle)}\tINVALID: signature verification failed"],
                unlisted)
    stranger = json.loads(gunzip(digest_body))
    stranger["digestPublicKeyFingerprint"] = hashlib.md5(public.save_pkcs1("DER")).hexdigest()
    put_back(s3, middle, gzip_bytes(json.dumps(stranger).encode()), digest_metadata)
    expect_both(server, arn, start, end, [
        f"Digest file\t{url(middle)}\tINVALID: public key not found in region us-east-1 for fingerprint "
        f"{stranger['digestPublicKeyFingerprint']}"],
        unlisted)
    put_back(s3, middle, digest_body, digest_metadata)

    # Everything put back: valid again, for both.
    aws, ours = both(server, arn, start, end)
    assert aws[0] == 0 and ours[0] == 0 and verdicts(aws) == verdicts(ours)
    assert newer in digests


@pytest.mark.parametrize("value, why", [
    (base64.b64encode(b"\x30\x03not a key").decode(), "Unable to load PKCS #1 key with fingerprint {fingerprint}"),
    # Not base64 at all: the CLI's Python decoder skips what is not in the alphabet, then
    # gives its own message as the verdict.
    ("not base64!", "Invalid base64-encoded string: number of data characters (9) cannot be 1 more than a "
                    "multiple of 4"),
    ("QUJ", "Incorrect padding"),
    # Not even text: botocore drops a null member, and Python's decoder refuses a number.
    (None, "'Value'"),
    (7, "argument should be a bytes-like object or ASCII string, not 'int'"),
], ids=["not-pkcs1", "not-base64", "cut-short", "null", "number"])
def test_a_public_key_that_does_not_parse_is_reported_for_each_digest_it_signed(trail, value, why):
    """A CloudTrail endpoint whose ListPublicKeys gives, under the digests' fingerprints, a
    value that is not a PKCS #1 key, not base64, or not text: both validators give the same verdict
    for every digest, and neither crashes. The stand-in answers every call with one body
    holding DescribeTrails', GetTrail's and ListPublicKeys' members; the files are read from
    Cairn's S3."""
    from conftest import CannedUpstream

    server, arn, start, end, s3 = trail
    signed_by = {key: json.loads(gunzip(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()))[
        "digestPublicKeyFingerprint"] for key in keys_of(s3, "CloudTrail-Digest")}
    described = {"Name": "audit", "S3BucketName": BUCKET, "TrailARN": arn, "HomeRegion": "us-east-1",
                 "IsOrganizationTrail": False}
    now = time.time()
    published = [{"Value": value, "ValidityStartTime": now - 86400,
                  "ValidityEndTime": now + 86400, "Fingerprint": fingerprint}
                 for fingerprint in set(signed_by.values())]
    stand_in = CannedUpstream(200, {"trailList": [described], "Trail": described, "PublicKeyList": published})
    try:
        aws = server.aws("cloudtrail", "validate-logs", "--endpoint-url", stand_in.url, "--trail-arn", arn,
                         "--start-time", start, "--end-time", end, check=False)
        ours = subprocess.run(
            [str(BINARY), "validate-logs", "--endpoint-url", stand_in.url, "--s3-endpoint-url", server.endpoint,
             "--data-dir", "/nonexistent", "--trail-arn", arn, "--start-time", start, "--end-time", end],
            capture_output=True, text=True, env=server.env(), timeout=120)
        aws, ours = (aws.returncode, aws.stdout, aws.stderr), (ours.returncode, ours.stdout, ours.stderr)
        expected = sorted(f"Digest file\ts3://{BUCKET}/{key}\tINVALID: {why.format(fingerprint=fingerprint)}"
                          for key, fingerprint in signed_by.items())
        digest_lines = lambda output: [line for line in invalid_lines(output) if line.startswith("Digest")]  # noqa: E731
        assert aws[0] == 1 and ours[0] == 1, (aws, ours)
        assert digest_lines(aws) == expected, aws
        assert digest_lines(ours) == expected, ours
    finally:
        stand_in.close()


def gzip_bytes(data):
    compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()



def test_digests_stay_exactly_once_and_chained_across_kill_9(tmp_path):
    """Killed twice while logging (once mid-period, once about when a digest is due): every
    log file is listed by exactly one digest, the chain has no break, and both validators
    pass it."""
    bucket = "e2e-digest-crash"
    server = Cairn(tmp_path / "data", extra_args=[
        "--delivery-interval-secs", "1", "--digest-interval-secs", "10",
    ]).start()
    try:
        started = time.time() - 60
        server.aws("s3", "mb", f"s3://{bucket}")
        arn = json.loads(server.aws("cloudtrail", "create-trail", "--name", "crashy", "--s3-bucket-name", bucket,
                                    "--enable-log-file-validation").stdout)["TrailARN"]
        ct = server.client()
        ct.start_logging(Name="crashy")
        begun = time.time()
        for kill_at in (5, 10.5):
            while time.time() - begun < kill_at:
                ct.describe_trails()
                time.sleep(0.3)
            server.stop(signal.SIGKILL)
            server.start()
            ct = server.client()
        while time.time() - begun < 24:
            ct.describe_trails()
            time.sleep(0.3)
        ct.stop_logging(Name="crashy")
        s3 = client(server, "s3")

        def keys(kind):
            found = []
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                found += [item["Key"] for item in page.get("Contents", []) if f"/{kind}/" in item["Key"]]
            return sorted(found)
        logs = wait_for(lambda: keys("CloudTrail") or None, what="log files")
        # The final digest follows StopLogging within a delivery round.
        time.sleep(3)
        digests = keys("CloudTrail-Digest")
        bodies = {key: json.loads(gunzip(s3.get_object(Bucket=bucket, Key=key)["Body"].read())) for key in digests}
        listed = [entry["s3Object"] for body in bodies.values() for entry in body["logFiles"]]
        assert sorted(listed) == keys("CloudTrail"), "every log file in exactly one digest"
        starting = [key for key, body in bodies.items() if body["previousDigestSignature"] is None]
        assert starting == digests[:1], "one chain, unbroken by the kills"
        for body in bodies.values():
            if body["previousDigestS3Object"]:
                assert body["digestStartTime"] == bodies[body["previousDigestS3Object"]]["digestEndTime"]

        end = iso(time.time() + 5)
        aws, ours = both(server, arn, iso(started), end)
        assert aws[0] == 0 and ours[0] == 0, (aws, ours)
        assert verdicts(aws)[1] == [f"{len(digests)}/{len(digests)} digest files valid",
                                    f"{len(listed)}/{len(listed)} log files valid"], aws
        assert verdicts(ours) == verdicts(aws)
        assert not [line for line in verdicts(aws)[0] if line.startswith("No log files were delivered")]
    finally:
        server.stop()



def test_digest_chains_open_with_validation_cover_quiet_periods_and_close_with_the_trail(tmp_path):
    """Validation turned on while logging opens a chain (null previous*); a period with no
    log files still gets a digest; DeleteTrail writes a final one; a deleted trail is
    validated from --s3-bucket and --s3-prefix, by both tools alike."""
    server = Cairn(tmp_path / "data", extra_args=["--delivery-interval-secs", "1", "--digest-interval-secs", "10"]).start()
    try:
        ct, s3 = server.client(), client(server, "s3")
        s3.create_bucket(Bucket="e2e-digest-edges")
        started = time.time() - 60
        arn = ct.create_trail(Name="edges", S3BucketName="e2e-digest-edges", S3KeyPrefix="team")["TrailARN"]
        ct.start_logging(Name="edges")
        for _ in range(3):
            ct.describe_trails()
            time.sleep(1)
        ct.update_trail(Name="edges", EnableLogFileValidation=True)
        validated = time.time()
        for _ in range(6):
            ct.describe_trails()
            time.sleep(2)
        time.sleep(25)  # no calls: at least two quiet periods
        ct.delete_trail(Name="edges")
        deleted = time.time()
        time.sleep(4)
        end = iso(time.time() + 5)

        keys = [item["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket="e2e-digest-edges")
                for item in page.get("Contents", [])]
        assert all(key.startswith("team/AWSLogs/") for key in keys), keys
        digests = {}
        for key in keys:
            if "/CloudTrail-Digest/" in key:
                digests[key] = json.loads(gunzip(s3.get_object(Bucket="e2e-digest-edges", Key=key)["Body"].read()))
        chain = sorted(digests.values(), key=lambda digest: digest["digestEndTime"])
        assert len(chain) >= 4, chain
        assert chain[0]["previousDigestSignature"] is None and chain[0]["previousDigestS3Object"] is None
        assert all(digest["previousDigestSignature"] for digest in chain[1:]), "one chain, from validation on"
        stamp = lambda text: datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
        assert stamp(chain[0]["digestStartTime"]) >= validated - 2, "the chain starts with validation"
        quiet = [digest for digest in chain if not digest["logFiles"]]
        assert quiet, "a period with no log files still gets its digest"
        assert stamp(chain[-1]["digestEndTime"]) >= deleted - 2, "DeleteTrail writes a final digest"
        listed = sorted(entry["s3Object"] for digest in chain for entry in digest["logFiles"])
        logs = sorted(key for key in keys if "/CloudTrail/" in key)
        assert listed and set(listed) < set(logs), "files from before validation are in no digest"

        # The trail is gone: both tools read the bucket and prefix they are given.
        given = ["--s3-bucket", "e2e-digest-edges", "--s3-prefix", "team"]
        start = iso(started)
        aws = aws_validate(server, arn, start, end, given)
        ours = cairn_validate(server, arn, start, end, given)
        assert aws[0] == 0 and ours[0] == 0, (aws, ours)
        assert verdicts(aws)[1] == [f"{len(chain)}/{len(chain)} digest files valid",
                                    f"{len(listed)}/{len(listed)} log files valid"], aws
        assert verdicts(ours) == verdicts(aws)
        # Without --s3-bucket the deleted trail cannot be found, by either.
        gone = aws_validate(server, arn, start, end)
        assert gone[0] != 0 and "could not be found" in gone[2], gone
        gone = cairn_validate(server, arn, start, end)
        assert gone[0] == 255 and "could not be found" in gone[2], gone
    finally:
        server.stop()


def test_digests_in_an_upstream_s3_validate_read_straight_from_it(tmp_path, moto):
    """Log files and digests delivered to moto's S3; both validators read that S3 itself
    (the aws CLI by AWS_ENDPOINT_URL_S3, cairn by --s3-endpoint-url), not through Cairn."""
    server = Cairn(tmp_path / "data", extra_args=[
        "--upstream", moto, "--delivery-interval-secs", "1", "--digest-interval-secs", "10"]).start()
    try:
        ct, s3 = server.client(), client(server, "s3")
        s3.create_bucket(Bucket="e2e-upstream-digests")
        started = time.time() - 60
        arn = ct.create_trail(Name="upstream", S3BucketName="e2e-upstream-digests",
                              EnableLogFileValidation=True)["TrailARN"]
        log_then_stop(ct, "upstream", 11)
        start, end = iso(started), iso(time.time() + 5)

        direct = boto3.client("s3", endpoint_url=moto, region_name="us-east-1",
                              aws_access_key_id="test", aws_secret_access_key="test")
        keys = [item["Key"] for page in direct.get_paginator("list_objects_v2").paginate(Bucket="e2e-upstream-digests")
                for item in page.get("Contents", [])]
        digests = [key for key in keys if "/CloudTrail-Digest/" in key]
        assert len(digests) >= 2, keys
        assert direct.head_object(Bucket="e2e-upstream-digests", Key=digests[0])["Metadata"]["signature"]

        def both_from_moto(*extra):
            """(aws CLI, cairn) outputs, each reading moto's S3 itself."""
            arguments = ["validate-logs", "--trail-arn", arn, "--start-time", start, "--end-time", end, *extra]
            outputs = [
                subprocess.run(["aws", "cloudtrail", *arguments], env={**server.env(), "AWS_ENDPOINT_URL_S3": moto},
                               capture_output=True, text=True, timeout=120),
                subprocess.run([str(BINARY), *arguments, "--endpoint-url", server.endpoint, "--s3-endpoint-url", moto,
                                "--data-dir", "/nonexistent"], env=server.env(), capture_output=True, text=True,
                               timeout=120),
            ]
            return [(output.returncode, output.stdout, output.stderr) for output in outputs]
        aws, ours = both_from_moto("--verbose")
        assert aws[0] == 0 and ours[0] == 0, (aws, ours)
        assert verdicts(aws)[1][0] == f"{len(digests)}/{len(digests)} digest files valid", aws
        assert verdicts(ours) == verdicts(aws)

        # A log file changed in that S3: both read the change there.
        victim = next(key for key in keys if "/CloudTrail/" in key)
        direct.put_object(Bucket="e2e-upstream-digests", Key=victim, Body=gzip_bytes(b'{"Records":[]}'))
        aws, ours = both_from_moto()
        assert aws[0] == 1 and ours[0] == 1, (aws, ours)
        line = f"Log file\ts3://e2e-upstream-digests/{victim}\tINVALID: hash value doesn't match"
        assert invalid_lines(aws) == invalid_lines(ours) == [line], (aws, ours)
    finally:
        server.stop()

ORGANIZATION_ACCOUNT = "123456789012"


def test_an_organization_trail_delivers_and_validates_under_its_organization(tmp_path, moto):
    """Organizations at a moto upstream: the trail's files and digests go under
    AWSLogs/<o-id>/<account>/, and both validators find them there (the aws CLI asks
    DescribeOrganization, through Cairn, for the ID) once told the member account."""
    server = Cairn(tmp_path / "data", extra_args=[
        "--upstream", moto, "--embedded-s3", "--account-id", ORGANIZATION_ACCOUNT,
        "--delivery-interval-secs", "1", "--digest-interval-secs", "10"]).start()
    try:
        organizations, s3, ct = client(server, "organizations"), client(server, "s3"), server.client()
        try:
            organization = organizations.create_organization(FeatureSet="ALL")["Organization"]["Id"]
        except organizations.exceptions.AlreadyInOrganizationException:
            organization = organizations.describe_organization()["Organization"]["Id"]
        s3.create_bucket(Bucket="e2e-org-trail")
        started = time.time() - 60
        arn = ct.create_trail(Name="org", S3BucketName="e2e-org-trail", IsOrganizationTrail=True,
                              IsMultiRegionTrail=True, EnableLogFileValidation=True)["TrailARN"]
        assert ct.get_trail(Name="org")["Trail"]["IsOrganizationTrail"] is True
        log_then_stop(ct, "org", 11)
        start, end = iso(started), iso(time.time() + 5)

        keys = [item["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket="e2e-org-trail")
                for item in page.get("Contents", [])]
        logs = sorted(key for key in keys if "/CloudTrail/" in key)
        digests = sorted(key for key in keys if "/CloudTrail-Digest/" in key)
        assert len(logs) >= 5 and len(digests) >= 2, keys
        for key in logs:
            assert key.startswith(f"AWSLogs/{organization}/{ORGANIZATION_ACCOUNT}/CloudTrail/us-east-1/"), key
        for key in digests:
            assert re.fullmatch(
                rf"AWSLogs/{organization}/{ORGANIZATION_ACCOUNT}/CloudTrail-Digest/us-east-1/\d{{4}}/\d{{2}}/\d{{2}}/"
                rf"{ORGANIZATION_ACCOUNT}_CloudTrail-Digest_us-east-1_org_us-east-1_\d{{8}}T\d{{6}}Z\.json\.gz", key), key

        # As the CLI: an organization trail's files are per member account, which must be named.
        unnamed = aws_validate(server, arn, start, end)
        assert unnamed[0] != 0 and "--account-id" in unnamed[2], unnamed
        ours = cairn_validate(server, arn, start, end)
        assert ours[0] == 255 and "--account-id" in ours[2], ours

        member = ["--account-id", ORGANIZATION_ACCOUNT]
        aws, ours = both(server, arn, start, end, member)
        assert aws[0] == 0 and ours[0] == 0, (aws, ours)
        summary = [f"{len(digests)}/{len(digests)} digest files valid", f"{len(logs)}/{len(logs)} log files valid"]
        assert verdicts(aws)[1] == summary
        assert verdicts(ours) == verdicts(aws)

        body, metadata = saved(s3, logs[1], bucket="e2e-org-trail")
        records = json.loads(gunzip(body))
        records["Records"][0]["eventName"] = "Tampered"
        s3.put_object(Bucket="e2e-org-trail", Key=logs[1], Body=gzip_bytes(json.dumps(records).encode()),
                      Metadata=metadata, ContentType="application/json", ContentEncoding="gzip")
        aws, ours = both(server, arn, start, end, member)
        assert aws[0] == 1 and ours[0] == 1, (aws, ours)
        assert invalid_lines(aws) == invalid_lines(ours) == [
            f"Log file\ts3://e2e-org-trail/{logs[1]}\tINVALID: hash value doesn't match"], aws

        # Only the organization's management account makes organization trails.
        other = Cairn(tmp_path / "other", extra_args=["--upstream", moto, "--embedded-s3", "--account-id", "111111111111"]).start()
        try:
            other_ct = other.client()
            client(other, "s3").create_bucket(Bucket="e2e-org-other")
            with pytest.raises(other_ct.exceptions.NotOrganizationMasterAccountException):
                other_ct.create_trail(Name="org", S3BucketName="e2e-org-other", IsOrganizationTrail=True)
            other_ct.create_trail(Name="plain", S3BucketName="e2e-org-other")
            with pytest.raises(other_ct.exceptions.NotOrganizationMasterAccountException):
                other_ct.update_trail(Name="plain", IsOrganizationTrail=True)
        finally:
            other.stop()
    finally:
        server.stop()
