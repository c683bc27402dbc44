"""A data directory whose disk fills up while clients call and a trail delivers into the
embedded S3 there. With the history on that disk too (SQLite), every call is answered, an
AWS-shaped InternalFailure while nothing can be made durable, never a hang or a crash; with
the history in PostgreSQL, calls go on and GetTrailStatus reports the failing delivery.
Either way Cairn carries on by itself once space is freed, and every acknowledged call is
in the history and in the trail's files exactly once.

The disk is a small tmpfs mounted for the test (root only: the suite runs as root on the
machines it is made for)."""

import json
import os
import subprocess
import time

import botocore.exceptions
import pytest

from conftest import POSTGRES, Cairn, lookup_all
from test_trails import client, delivered_with, request_ids, wait_for


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(path):
    """Writes until the disk refuses, unbuffered: the disk is then full to the byte."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 4096, 1):
            while True:
                try:
                    os.write(descriptor, b"\0" * size)
                except OSError:
                    break
    finally:
        os.close(descriptor)


def test_a_full_disk_refuses_calls_cleanly_and_loses_nothing_once_space_is_back(small_disk):
    server = Cairn(small_disk / "data", extra_args=["--delivery-interval-secs", "1"])
    server.data_dir.mkdir()
    server.start()
    try:
        s3, cloudtrail = client(server, "s3"), client(server, "cloudtrail")
        s3.create_bucket(Bucket="e2e-full-disk")
        cloudtrail.create_trail(Name="full", S3BucketName="e2e-full-disk")
        cloudtrail.start_logging(Name="full")
        answered = [cloudtrail.list_trails()["ResponseMetadata"]["RequestId"] for _ in range(5)]

        fill(small_disk / "filler")
        outcomes, slowest = [], 0.0
        for _ in range(40):
            started = time.time()
            try:
                answered.append(cloudtrail.list_trails()["ResponseMetadata"]["RequestId"])
                outcomes.append("ok")
            except botocore.exceptions.ClientError as error:
                outcomes.append((error.response["Error"]["Code"],
                                 error.response["ResponseMetadata"]["HTTPStatusCode"]))
            slowest = max(slowest, time.time() - started)
        assert server.process.poll() is None, "Cairn exited on a full disk"
        assert slowest < 10, f"a call took {slowest:.1f} s on a full disk"
        refused = [outcome for outcome in outcomes if outcome != "ok"]
        if POSTGRES:
            assert not refused, "the history is elsewhere: a full data disk blocks no call"
            status = wait_for(lambda: (lambda s: s if "LatestDeliveryError" in s else None)(
                cloudtrail.get_trail_status(Name="full")), what="the full disk in GetTrailStatus")
            print("GetTrailStatus on a full disk:", status["LatestDeliveryError"])
        else:
            assert refused, "a full disk refused nothing: the test did not fill it"
            assert set(refused) == {("InternalFailure", 500)}, set(refused)

        (small_disk / "filler").unlink()

        def resumed():
            try:
                return cloudtrail.list_trails()["ResponseMetadata"]["RequestId"]
            except botocore.exceptions.ClientError:
                return None
        answered.append(wait_for(resumed, what="calls answered again once space was freed"))
        answered += [cloudtrail.list_trails()["ResponseMetadata"]["RequestId"] for _ in range(5)]

        events, _ = lookup_all(server.client(), LookupAttributes=[
            {"AttributeKey": "EventName", "AttributeValue": "ListTrails"}])
        stored = [json.loads(e["CloudTrailEvent"])["requestID"] for e in events]
        for request_id in answered:
            assert stored.count(request_id) == 1, request_id

        files = delivered_with(server, "e2e-full-disk", answered, timeout=90, what="delivery catching up")
        ids = request_ids(files)
        assert all(ids.count(request_id) == 1 for request_id in answered)
        status = wait_for(lambda: (lambda s: s if "LatestDeliveryError" not in s else None)(
            cloudtrail.get_trail_status(Name="full")), timeout=90, what="the delivery error cleared")
        assert status["IsLogging"] is True
    finally:
        server.stop()
