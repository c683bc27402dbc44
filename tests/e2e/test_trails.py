"""Trails with the real aws CLI and boto3 against the real binary: the trail API with AWS's
exceptions, trails that survive a kill, and log files delivered to the embedded S3 in AWS's
layout, exactly once across a crash in the middle of a delivery, holding what the selectors
choose."""

import json
import re
import signal
import time
import zlib

import boto3
import botocore.config
import pytest

from conftest import Cairn, lookup_all

KEY_PATTERN = re.compile(
    r"^(?:(?P<prefix>.+)/)?AWSLogs/(?P<account>\d{12})/CloudTrail/(?P<region>[a-z0-9-]+)/"
    r"(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/(?P=account)_CloudTrail_(?P=region)_"
    r"(?P=y)(?P=m)(?P=d)T\d{4}Z_[0-9A-Za-z]{16}\.json\.gz$"
)


def client(server, service, region="us-east-1"):
    key, secret = server.credentials()
    return boto3.client(
        service, endpoint_url=server.endpoint, region_name=region,
        aws_access_key_id=key, aws_secret_access_key=secret,
        config=botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


def error_of(result):
    match = re.search(r"\(([A-Za-z0-9]+)\)", result.stderr)
    return match.group(1) if match else result.stderr


def delivered(server, bucket, prefix=""):
    """Every delivered log file: key -> its records."""
    s3 = client(server, "s3")
    files = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            # One gzip member, nothing after it.
            decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
            text = decompressor.decompress(body) + decompressor.flush()
            assert decompressor.eof and decompressor.unused_data == b"", item["Key"]
            files[item["Key"]] = json.loads(text)["Records"]
    return files


def request_ids(files):
    return [record["requestID"] for records in files.values() for record in records]


def delivered_with(server, bucket, wanted, prefix="", timeout=30, what="delivery"):
    """The bucket's files, once they hold every request ID of `wanted` (one ID or several)."""
    wanted = {wanted} if isinstance(wanted, str) else set(wanted)
    return wait_for(lambda: (lambda f: f if wanted <= set(request_ids(f)) else None)(
        delivered(server, bucket, prefix)), timeout=timeout, what=what)


def wait_for(condition, timeout=30, what="delivery"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def test_the_trail_api_with_the_cli(tmp_path):
    server = Cairn(tmp_path / "data").start()
    try:
        server.aws("s3", "mb", "s3://e2e-trails")
        missing = server.aws("cloudtrail", "create-trail", "--name", "main", "--s3-bucket-name", "e2e-absent", check=False)
        assert error_of(missing) == "S3BucketDoesNotExistException", missing.stderr
        bad_name = server.aws("cloudtrail", "create-trail", "--name=-main", "--s3-bucket-name", "e2e-trails", check=False)
        assert error_of(bad_name) == "InvalidTrailNameException", bad_name.stderr
        no_global = server.aws(
            "cloudtrail", "create-trail", "--name", "main", "--s3-bucket-name", "e2e-trails",
            "--is-multi-region-trail", "--no-include-global-service-events", check=False,
        )
        assert error_of(no_global) == "InvalidParameterCombinationException", no_global.stderr

        created = json.loads(server.aws(
            "cloudtrail", "create-trail", "--name", "main", "--s3-bucket-name", "e2e-trails",
            "--s3-key-prefix", "team", "--is-multi-region-trail", "--enable-log-file-validation",
            "--tags-list", "Key=owner,Value=audit",
        ).stdout)
        arn = created["TrailARN"]
        assert re.fullmatch(r"arn:aws:cloudtrail:us-east-1:\d{12}:trail/main", arn)
        assert created["S3KeyPrefix"] == "team" and created["IsMultiRegionTrail"] is True
        assert created["LogFileValidationEnabled"] is True and created["IncludeGlobalServiceEvents"] is True
        again = server.aws("cloudtrail", "create-trail", "--name", "main", "--s3-bucket-name", "e2e-trails", check=False)
        assert error_of(again) == "TrailAlreadyExistsException"

        trail = json.loads(server.aws("cloudtrail", "get-trail", "--name", arn).stdout)["Trail"]
        assert trail["HomeRegion"] == "us-east-1" and trail["HasCustomEventSelectors"] is False
        # A multi-region trail shows in every region as a shadow, unless shadows are left out.
        shadow = json.loads(server.aws("cloudtrail", "describe-trails", "--region", "eu-west-1").stdout)["trailList"]
        assert [t["TrailARN"] for t in shadow] == [arn] and shadow[0]["HomeRegion"] == "us-east-1"
        own = json.loads(server.aws(
            "cloudtrail", "describe-trails", "--region", "eu-west-1", "--no-include-shadow-trails").stdout)
        assert own["trailList"] == []
        elsewhere = server.aws("cloudtrail", "update-trail", "--region", "eu-west-1", "--name", arn,
                               "--s3-key-prefix", "x", check=False)
        assert error_of(elsewhere) == "InvalidHomeRegionException", elsewhere.stderr
        updated = json.loads(server.aws("cloudtrail", "update-trail", "--name", "main", "--s3-key-prefix", "other").stdout)
        assert updated["S3KeyPrefix"] == "other"

        tags = json.loads(server.aws("cloudtrail", "list-tags", "--resource-id-list", arn).stdout)
        assert tags["ResourceTagList"] == [{"ResourceId": arn, "TagsList": [{"Key": "owner", "Value": "audit"}]}]
        server.aws("cloudtrail", "remove-tags", "--resource-id", arn, "--tags-list", "Key=owner")
        tags = json.loads(server.aws("cloudtrail", "list-tags", "--resource-id-list", arn).stdout)
        assert tags["ResourceTagList"][0]["TagsList"] == []
        long_key = server.aws("cloudtrail", "add-tags", "--resource-id", arn, "--tags-list", f"Key={'k' * 129},Value=v", check=False)
        assert error_of(long_key) == "InvalidTagParameterException", long_key.stderr
        with pytest.raises(client(server, "cloudtrail").exceptions.TagsLimitExceededException):
            client(server, "cloudtrail").create_trail(Name="many-tags", S3BucketName="e2e-trails",
                                                      TagsList=[{"Key": f"k{n}", "Value": "v"} for n in range(201)])

        basic = [{"ReadWriteType": "WriteOnly", "IncludeManagementEvents": True,
                  "ExcludeManagementEventSources": ["kms.amazonaws.com"],
                  "DataResources": [{"Type": "AWS::S3::Object", "Values": ["arn:aws:s3:::e2e-trails/"]}]}]
        server.aws("cloudtrail", "put-event-selectors", "--trail-name", "main", "--event-selectors", json.dumps(basic))
        selectors = json.loads(server.aws("cloudtrail", "get-event-selectors", "--trail-name", "main").stdout)
        assert selectors["EventSelectors"] == basic and "AdvancedEventSelectors" not in selectors
        bad = server.aws("cloudtrail", "put-event-selectors", "--trail-name", "main", "--event-selectors",
                         json.dumps([{"ExcludeManagementEventSources": ["s3.amazonaws.com"]}]), check=False)
        assert error_of(bad) == "InvalidEventSelectorsException", bad.stderr
        sometimes = server.aws("cloudtrail", "put-event-selectors", "--trail-name", "main", "--event-selectors",
                               json.dumps([{"ReadWriteType": "Sometimes"}]), check=False)
        assert error_of(sometimes) == "InvalidEventSelectorsException", sometimes.stderr

        insights = server.aws("cloudtrail", "get-insight-selectors", "--trail-name", "main", check=False)
        assert error_of(insights) == "InsightNotEnabledException", insights.stderr
        server.aws("cloudtrail", "put-insight-selectors", "--trail-name", "main",
                   "--insight-selectors", "InsightType=ApiCallRateInsight")
        insights = json.loads(server.aws("cloudtrail", "get-insight-selectors", "--trail-name", "main").stdout)
        assert insights["InsightSelectors"][0]["InsightType"] == "ApiCallRateInsight"

        status = json.loads(server.aws("cloudtrail", "get-trail-status", "--name", "main").stdout)
        assert status["IsLogging"] is False
        server.aws("cloudtrail", "start-logging", "--name", arn)
        status = json.loads(server.aws("cloudtrail", "get-trail-status", "--name", "main").stdout)
        assert status["IsLogging"] is True and isinstance(status["StartLoggingTime"], (int, float))

        # Five trails a region; a multi-region trail counts in every region.
        cloudtrail = client(server, "cloudtrail")
        for name in ["second", "third", "fourth", "fifth"]:
            cloudtrail.create_trail(Name=name, S3BucketName="e2e-trails")
        with pytest.raises(cloudtrail.exceptions.MaximumNumberOfTrailsExceededException):
            cloudtrail.create_trail(Name="sixth", S3BucketName="e2e-trails")
        listed = json.loads(server.aws("cloudtrail", "list-trails").stdout)["Trails"]
        assert sorted(t["Name"] for t in listed) == ["fifth", "fourth", "main", "second", "third"]
        server.aws("cloudtrail", "delete-trail", "--name", "second")
        gone = server.aws("cloudtrail", "get-trail", "--name", "second", check=False)
        assert error_of(gone) == "TrailNotFoundException", gone.stderr
        unsupported = server.aws("cloudtrail", "list-event-data-stores", check=False)
        assert error_of(unsupported) == "UnsupportedOperationException", unsupported.stderr

        # Every trail call is itself an event, with what it was asked.
        events, _ = lookup_all(cloudtrail, LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "PutEventSelectors"}])
        put = [json.loads(e["CloudTrailEvent"]) for e in events]
        assert [p.get("errorCode") for p in put] == ["InvalidEventSelectorsException"] * 2 + [None]
        put = put[2]
        assert put["eventSource"] == "cloudtrail.amazonaws.com" and put["readOnly"] is False
        assert put["requestParameters"]["EventSelectors"][0]["ExcludeManagementEventSources"] == ["kms.amazonaws.com"]
        created_events, _ = lookup_all(cloudtrail, LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "CreateTrail"}])
        assert {json.loads(e["CloudTrailEvent"]).get("errorCode") for e in created_events} >= {
            None, "S3BucketDoesNotExistException", "TrailAlreadyExistsException"}
    finally:
        server.stop(signal.SIGKILL)

    # Trails, selectors, tags and logging state survive a kill.
    server = Cairn(tmp_path / "data").start()
    try:
        trail = json.loads(server.aws("cloudtrail", "get-trail", "--name", "main").stdout)["Trail"]
        assert trail["S3KeyPrefix"] == "other" and trail["HasCustomEventSelectors"] is True
        assert trail["HasInsightSelectors"] is True
        status = json.loads(server.aws("cloudtrail", "get-trail-status", "--name", "main").stdout)
        assert status["IsLogging"] is True
        selectors = json.loads(server.aws("cloudtrail", "get-event-selectors", "--trail-name", "main").stdout)
        assert selectors["EventSelectors"][0]["ExcludeManagementEventSources"] == ["kms.amazonaws.com"]
        advanced = [{"Name": "writes", "FieldSelectors": [
            {"Field": "eventCategory", "Equals": ["Management"]}, {"Field": "readOnly", "Equals": ["false"]}]}]
        server.aws("cloudtrail", "put-event-selectors", "--trail-name", "main",
                   "--advanced-event-selectors", json.dumps(advanced))
        selectors = json.loads(server.aws("cloudtrail", "get-event-selectors", "--trail-name", "main").stdout)
        assert selectors["AdvancedEventSelectors"] == advanced and "EventSelectors" not in selectors
    finally:
        server.stop()


def test_log_files_are_delivered_in_aws_layout_while_logging(tmp_path):
    server = Cairn(tmp_path / "data", extra_args=["--delivery-interval-secs", "1"]).start()
    try:
        s3, cloudtrail = client(server, "s3"), client(server, "cloudtrail")
        s3.create_bucket(Bucket="e2e-delivery")
        before = cloudtrail.describe_trails()["ResponseMetadata"]["RequestId"]
        arn = cloudtrail.create_trail(Name="all", S3BucketName="e2e-delivery", IsMultiRegionTrail=True)["TrailARN"]
        started = cloudtrail.start_logging(Name="all")["ResponseMetadata"]["RequestId"]
        logged = [cloudtrail.describe_trails()["ResponseMetadata"]["RequestId"] for _ in range(10)]
        abroad = client(server, "cloudtrail", region="eu-west-1")
        logged += [abroad.list_trails()["ResponseMetadata"]["RequestId"] for _ in range(3)]
        stopped = cloudtrail.stop_logging(Name=arn)["ResponseMetadata"]["RequestId"]
        after = [cloudtrail.describe_trails()["ResponseMetadata"]["RequestId"] for _ in range(3)]

        files = delivered_with(server, "e2e-delivery", stopped)
        time.sleep(2.5)  # rounds after the stop must add nothing of the stopped time
        files = delivered(server, "e2e-delivery")
        ids = request_ids(files)
        assert len(ids) == len(set(ids)), "an event was delivered twice"
        for expected in [started, *logged, stopped]:
            assert ids.count(expected) == 1, expected
        for unexpected in [before, *after]:
            assert unexpected not in ids
        account = arn.split(":")[4]
        regions = set()
        for key, records in files.items():
            match = KEY_PATTERN.match(key)
            assert match and match["account"] == account and match["prefix"] is None, key
            regions.add(match["region"])
            assert {record["awsRegion"] for record in records} == {match["region"]}
            assert all(record["recipientAccountId"] == account for record in records)
        assert regions == {"us-east-1", "eu-west-1"}
        head = s3.head_object(Bucket="e2e-delivery", Key=next(iter(files)))
        assert head["ContentType"] == "application/json" and head["ContentEncoding"] == "gzip"
        # The records are the event history's own, byte for byte in meaning.
        stored = {e["EventId"]: json.loads(e["CloudTrailEvent"]) for e in lookup_all(cloudtrail)[0]}
        for records in files.values():
            for record in records:
                assert stored[record["eventID"]] == record
        status = cloudtrail.get_trail_status(Name="all")
        assert status["IsLogging"] is False and "LatestDeliveryError" not in status
        assert status["LatestDeliveryTime"].timestamp() > time.time() - 60
    finally:
        server.stop()


def test_delivery_is_exactly_once_across_a_crash_mid_delivery(tmp_path):
    # First: events to deliver, and no delivery yet.
    server = Cairn(tmp_path / "data", extra_args=["--delivery-interval-secs", "3600"]).start()
    s3, cloudtrail = client(server, "s3"), client(server, "cloudtrail")
    s3.create_bucket(Bucket="e2e-crash")
    cloudtrail.create_trail(Name="crash", S3BucketName="e2e-crash", IsMultiRegionTrail=True)
    cloudtrail.start_logging(Name="crash")
    logged = []
    for region in ["us-east-1", "eu-west-1", "ap-south-1"]:
        regional = client(server, "cloudtrail", region=region)
        logged += [regional.describe_trails()["ResponseMetadata"]["RequestId"] for _ in range(5)]
    server.stop(signal.SIGKILL)

    # Then: the process dies after the first of the three files is written.
    crashing = Cairn(tmp_path / "data", extra_args=["--delivery-interval-secs", "1"],
                     extra_env={"CAIRN_TEST_ABORT_AFTER_FIRST_UPLOAD": "1"}).start()
    crashing.process.wait(timeout=30)
    assert crashing.process.returncode != 0
    crashing.stop()

    server = Cairn(tmp_path / "data", extra_args=["--delivery-interval-secs", "1"]).start()
    try:
        files = delivered_with(server, "e2e-crash", logged)
        time.sleep(2)
        files = delivered(server, "e2e-crash")
        ids = request_ids(files)
        assert len(ids) == len(set(ids)), "an event was delivered twice"
        assert set(logged) <= set(ids)
        assert len(files) == 3, sorted(files)
        assert {KEY_PATTERN.match(key)["region"] for key in files} == {"us-east-1", "eu-west-1", "ap-south-1"}
    finally:
        server.stop()


def test_delivery_is_exactly_once_when_sigkill_lands_anywhere_under_load(tmp_path):
    import random
    import threading

    server = Cairn(tmp_path / "data", extra_args=["--delivery-interval-secs", "1"]).start()
    client(server, "s3").create_bucket(Bucket="e2e-sigkill")
    cloudtrail = client(server, "cloudtrail")
    cloudtrail.create_trail(Name="sigkill", S3BucketName="e2e-sigkill")
    cloudtrail.start_logging(Name="sigkill")
    answered = []
    chance = random.Random(15)
    for _ in range(4):
        stop = threading.Event()

        def calls(endpoint_server=server):
            caller = client(endpoint_server, "cloudtrail")
            while not stop.is_set():
                try:
                    answered.append(caller.list_trails()["ResponseMetadata"]["RequestId"])
                except Exception:  # the kill: an unanswered call may or may not be stored
                    return
        threads = [threading.Thread(target=calls) for _ in range(3)]
        for thread in threads:
            thread.start()
        # Somewhere in a delivery round or between two.
        time.sleep(1.0 + chance.random() * 2.0)
        server.stop(signal.SIGKILL)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        server = Cairn(tmp_path / "data", extra_args=["--delivery-interval-secs", "1"]).start()
    try:
        assert len(answered) > 50
        delivered_with(server, "e2e-sigkill", answered, timeout=60)
        time.sleep(2)
        ids = request_ids(delivered(server, "e2e-sigkill"))
        twice = [rid for rid in set(ids) if ids.count(rid) > 1]
        assert not twice, f"{len(twice)} events delivered twice"
        assert set(answered) <= set(ids)
    finally:
        server.stop()


def test_events_recorded_before_a_selector_change_are_delivered_as_the_old_selectors_chose(tmp_path):
    # No delivery while the selectors change: every event is judged later, at once.
    server = Cairn(tmp_path / "data", extra_args=["--delivery-interval-secs", "3600"]).start()
    try:
        client(server, "s3").create_bucket(Bucket="e2e-change")
        cloudtrail = client(server, "cloudtrail")
        cloudtrail.create_trail(Name="change", S3BucketName="e2e-change")
        cloudtrail.start_logging(Name="change")
        before = [cloudtrail.list_trails()["ResponseMetadata"]["RequestId"] for _ in range(3)]
        cloudtrail.put_event_selectors(TrailName="change", EventSelectors=[
            {"ReadWriteType": "WriteOnly", "IncludeManagementEvents": True}])
        after = [cloudtrail.list_trails()["ResponseMetadata"]["RequestId"] for _ in range(3)]
        marker = cloudtrail.add_tags(ResourceId=cloudtrail.get_trail(Name="change")["Trail"]["TrailARN"],
                                     TagsList=[{"Key": "k", "Value": "v"}])["ResponseMetadata"]["RequestId"]
    finally:
        server.stop()
    server = Cairn(tmp_path / "data", extra_args=["--delivery-interval-secs", "1"]).start()
    try:
        files = delivered_with(server, "e2e-change", marker)
        ids = set(request_ids(files))
        assert set(before) <= ids, "reads recorded while the trail took them"
        assert not set(after) & ids, "reads recorded after it became write-only"
    finally:
        server.stop()


def test_sts_calls_signed_for_us_east_1_are_global_service_events(tmp_path):
    server = Cairn(tmp_path / "data", extra_args=["--delivery-interval-secs", "1"]).start()
    try:
        client(server, "s3").create_bucket(Bucket="e2e-sts-global")
        ireland = client(server, "cloudtrail", region="eu-west-1")
        ireland.create_trail(Name="ireland", S3BucketName="e2e-sts-global")
        ireland.start_logging(Name="ireland")
        ireland.create_trail(Name="ireland-only", S3BucketName="e2e-sts-global", S3KeyPrefix="only",
                             IncludeGlobalServiceEvents=False)
        ireland.start_logging(Name="ireland-only")
        global_call = client(server, "sts", region="us-east-1").get_caller_identity()["ResponseMetadata"]["RequestId"]
        mumbai = client(server, "sts", region="ap-south-1").get_caller_identity()["ResponseMetadata"]["RequestId"]
        own = client(server, "sts", region="eu-west-1").get_caller_identity()["ResponseMetadata"]["RequestId"]
        files = delivered_with(server, "e2e-sts-global", {global_call, own}, prefix="AWSLogs/")
        ids = request_ids(files)
        assert mumbai not in ids, "another region's STS calls are that region's"
        assert any("/CloudTrail/us-east-1/" in key for key in files), "a global event keeps its region folder"
        only = delivered_with(server, "e2e-sts-global", own, prefix="only/")
        assert global_call not in request_ids(only), "a trail without global service events"
    finally:
        server.stop()


def test_selectors_choose_what_each_trail_delivers(tmp_path):
    server = Cairn(tmp_path / "data", extra_args=["--delivery-interval-secs", "1"]).start()
    try:
        s3, cloudtrail = client(server, "s3"), client(server, "cloudtrail")
        for bucket in ["e2e-logs", "e2e-chosen", "e2e-other"]:
            s3.create_bucket(Bucket=bucket)
        cloudtrail.create_trail(Name="writes", S3BucketName="e2e-logs", S3KeyPrefix="writes")
        cloudtrail.put_event_selectors(TrailName="writes", EventSelectors=[{
            "ReadWriteType": "WriteOnly", "IncludeManagementEvents": True,
            "ExcludeManagementEventSources": ["kms.amazonaws.com"],
            "DataResources": [{"Type": "AWS::S3::Object", "Values": ["arn:aws:s3:::e2e-chosen/"]}],
        }])
        cloudtrail.create_trail(Name="everything", S3BucketName="e2e-logs", S3KeyPrefix="everything")
        cloudtrail.start_logging(Name="writes")
        cloudtrail.start_logging(Name="everything")
        read = cloudtrail.describe_trails()["ResponseMetadata"]["RequestId"]
        chosen = s3.put_object(Bucket="e2e-chosen", Key="a.txt", Body=b"a")["ResponseMetadata"]["RequestId"]
        other = s3.put_object(Bucket="e2e-other", Key="b.txt", Body=b"b")["ResponseMetadata"]["RequestId"]
        # No KMS upstream: the call fails, and is recorded as a KMS write all the same.
        kms = client(server, "kms")
        with pytest.raises(Exception):
            kms.create_key()
        marker = cloudtrail.add_tags(ResourceId=cloudtrail.get_trail(Name="writes")["Trail"]["TrailARN"],
                                     TagsList=[{"Key": "k", "Value": "v"}])["ResponseMetadata"]["RequestId"]

        def both():
            writes, everything = delivered(server, "e2e-logs", "writes/"), delivered(server, "e2e-logs", "everything/")
            if marker in request_ids(writes) and marker in request_ids(everything):
                return writes, everything
            return None

        writes, everything = wait_for(both)
        written = [r for records in writes.values() for r in records]
        assert chosen in request_ids(writes) and other not in request_ids(writes)
        assert read not in request_ids(writes)
        assert not [r for r in written if r["eventSource"] == "kms.amazonaws.com"]
        assert all(not r["readOnly"] for r in written)
        all_records = [r for records in everything.values() for r in records]
        assert read in request_ids(everything)
        assert [r["eventName"] for r in all_records if r["eventSource"] == "kms.amazonaws.com"] == ["CreateKey"]
        assert chosen not in request_ids(everything), "the default selector takes no data events"
    finally:
        server.stop()


def test_a_read_only_trail_and_advanced_selectors_deliver_only_their_events(tmp_path):
    server = Cairn(tmp_path / "data", extra_args=["--delivery-interval-secs", "1"]).start()
    try:
        s3, cloudtrail = client(server, "s3"), client(server, "cloudtrail")
        for bucket in ["e2e-logs", "e2e-chosen", "e2e-other"]:
            s3.create_bucket(Bucket=bucket)
        cloudtrail.create_trail(Name="reads", S3BucketName="e2e-logs", S3KeyPrefix="reads")
        cloudtrail.put_event_selectors(TrailName="reads", EventSelectors=[{
            "ReadWriteType": "ReadOnly", "IncludeManagementEvents": True}])
        cloudtrail.create_trail(Name="advanced", S3BucketName="e2e-logs", S3KeyPrefix="advanced")
        cloudtrail.put_event_selectors(TrailName="advanced", AdvancedEventSelectors=[
            {"Name": "puts into the chosen bucket", "FieldSelectors": [
                {"Field": "eventCategory", "Equals": ["Data"]},
                {"Field": "resources.type", "Equals": ["AWS::S3::Object"]},
                {"Field": "eventName", "Equals": ["PutObject"]},
                {"Field": "resources.ARN", "StartsWith": ["arn:aws:s3:::e2e-chosen/"]}]},
            {"Name": "writes, tags aside", "FieldSelectors": [
                {"Field": "eventCategory", "Equals": ["Management"]},
                {"Field": "readOnly", "Equals": ["false"]},
                {"Field": "eventName", "NotEquals": ["AddTags"]}]},
        ])
        cloudtrail.start_logging(Name="reads")
        cloudtrail.start_logging(Name="advanced")
        read = cloudtrail.describe_trails()["ResponseMetadata"]["RequestId"]
        chosen_put = s3.put_object(Bucket="e2e-chosen", Key="a.txt", Body=b"a")["ResponseMetadata"]["RequestId"]
        chosen_get = s3.get_object(Bucket="e2e-chosen", Key="a.txt")["ResponseMetadata"]["RequestId"]
        other_put = s3.put_object(Bucket="e2e-other", Key="b.txt", Body=b"b")["ResponseMetadata"]["RequestId"]
        tagged = cloudtrail.add_tags(ResourceId=cloudtrail.get_trail(Name="reads")["Trail"]["TrailARN"],
                                     TagsList=[{"Key": "k", "Value": "v"}])["ResponseMetadata"]["RequestId"]
        created = s3.create_bucket(Bucket="e2e-late")["ResponseMetadata"]["RequestId"]
        last_read = cloudtrail.list_trails()["ResponseMetadata"]["RequestId"]

        def both():
            reads, advanced = delivered(server, "e2e-logs", "reads/"), delivered(server, "e2e-logs", "advanced/")
            if last_read in request_ids(reads) and created in request_ids(advanced):
                return reads, advanced
            return None

        reads, advanced = wait_for(both)
        read_records = [r for records in reads.values() for r in records]
        assert read in request_ids(reads)
        assert read_records and all(r["readOnly"] for r in read_records), "a ReadOnly trail gets no write"
        assert not {chosen_put, chosen_get, other_put, tagged, created} & set(request_ids(reads))
        assert all(r.get("managementEvent") for r in read_records), "no data events by default"
        assert chosen_put in request_ids(advanced) and created in request_ids(advanced)
        assert not {read, chosen_get, other_put, tagged, last_read} & set(request_ids(advanced))
    finally:
        server.stop()


def delivering_then_bucket_lost(server, name, bucket):
    """A logging trail that delivered its first call, then lost its bucket: (s3, cloudtrail,
    the first call's request ID)."""
    s3, cloudtrail = client(server, "s3"), client(server, "cloudtrail")
    s3.create_bucket(Bucket=bucket)
    cloudtrail.create_trail(Name=name, S3BucketName=bucket)
    cloudtrail.start_logging(Name=name)
    first = cloudtrail.describe_trails()["ResponseMetadata"]["RequestId"]
    wait_for(lambda: first in request_ids(delivered(server, bucket)))
    for item in s3.list_objects_v2(Bucket=bucket)["Contents"]:
        s3.delete_object(Bucket=bucket, Key=item["Key"])
    s3.delete_bucket(Bucket=bucket)
    return s3, cloudtrail, first


def test_a_missing_bucket_loses_nothing_and_delivery_catches_up(tmp_path):
    server = Cairn(tmp_path / "data", extra_args=["--delivery-interval-secs", "1"]).start()
    try:
        s3, cloudtrail, first = delivering_then_bucket_lost(server, "flaky", "e2e-flaky")

        # Capture and the event history go on; the failure shows in the trail's status.
        started = time.monotonic()
        while_gone = cloudtrail.describe_trails()["ResponseMetadata"]["RequestId"]
        assert time.monotonic() - started < 2
        status = wait_for(lambda: (lambda s: s if "LatestDeliveryError" in s else None)(
            cloudtrail.get_trail_status(Name="flaky")), what="a delivery error")
        assert "NoSuchBucket" in status["LatestDeliveryError"] or "bucket" in status["LatestDeliveryError"].lower()
        events, _ = lookup_all(cloudtrail, LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "DescribeTrails"}])
        assert while_gone in {json.loads(e["CloudTrailEvent"])["requestID"] for e in events}

        s3.create_bucket(Bucket="e2e-flaky")
        files = delivered_with(server, "e2e-flaky", while_gone, timeout=90, what="catching up")
        ids = request_ids(files)
        assert ids.count(while_gone) == 1 and first not in ids
        status = wait_for(lambda: (lambda s: s if "LatestDeliveryError" not in s else None)(
            cloudtrail.get_trail_status(Name="flaky")), what="the error to clear")
        assert status["LatestDeliveryTime"]
    finally:
        server.stop()


def test_a_lost_bucket_is_replaced_by_pointing_the_trail_at_a_new_one(tmp_path):
    server = Cairn(tmp_path / "data", extra_args=["--delivery-interval-secs", "1"]).start()
    try:
        s3, cloudtrail, first = delivering_then_bucket_lost(server, "moving", "e2e-lost")
        while_gone = cloudtrail.describe_trails()["ResponseMetadata"]["RequestId"]
        wait_for(lambda: "LatestDeliveryError" in cloudtrail.get_trail_status(Name="moving"), what="a delivery error")

        # The old bucket never comes back: the trail is pointed at a new one, and what could
        # not be written is written there, once.
        s3.create_bucket(Bucket="e2e-found")
        cloudtrail.update_trail(Name="moving", S3BucketName="e2e-found")
        after = cloudtrail.describe_trails()["ResponseMetadata"]["RequestId"]
        files = delivered_with(server, "e2e-found", {while_gone, after}, timeout=60, what="delivery to the new bucket")
        ids = request_ids(files)
        assert ids.count(while_gone) == 1 and ids.count(after) == 1 and first not in ids
        wait_for(lambda: "LatestDeliveryError" not in cloudtrail.get_trail_status(Name="moving"),
                 what="the error to clear")
    finally:
        server.stop()


def test_cairn_tail_prints_events_as_they_are_recorded(tmp_path):
    import subprocess
    from conftest import BINARY, clean_env

    server = Cairn(tmp_path / "data").start()
    try:
        cloudtrail = client(server, "cloudtrail")
        earlier = [cloudtrail.describe_trails()["ResponseMetadata"]["RequestId"] for _ in range(2)]
        cloudtrail.list_trails()
        tail = [str(BINARY), "tail", "--data-dir", str(server.data_dir), "--json"]
        past = subprocess.run([*tail, "--from-start", "--event-name", "DescribeTrails", "--count", "2"],
                              capture_output=True, text=True, timeout=60, env=clean_env(server.data_dir))
        assert past.returncode == 0, past.stderr
        assert [json.loads(line)["requestID"] for line in past.stdout.splitlines()] == earlier

        # Every LookupEvents attribute filters, matched as lookup-events matches it.
        client(server, "s3").create_bucket(Bucket="e2e-tail-bucket")
        def tail_json(*filters):
            done = subprocess.run([*tail, "--from-start", "--count", "1", *filters],
                                  capture_output=True, text=True, timeout=60, env=clean_env(server.data_dir))
            assert done.returncode == 0, done.stderr
            return [json.loads(line) for line in done.stdout.splitlines()]
        bucket_event, = tail_json("--resource-type", "AWS::S3::Bucket")
        assert bucket_event["eventName"] == "CreateBucket"
        looked_up = cloudtrail.lookup_events(LookupAttributes=[
            {"AttributeKey": "ResourceType", "AttributeValue": "AWS::S3::Bucket"}])["Events"]
        assert [e["EventId"] for e in looked_up] == [bucket_event["eventID"]]
        by_id, = tail_json("--event-id", bucket_event["eventID"])
        assert by_id == bucket_event
        arn, = [r["ARN"] for r in bucket_event["resources"]]
        assert tail_json("--resource-name", arn, "--event-name", "CreateBucket") == [bucket_event]

        following = subprocess.Popen([*tail[:-1], "--event-name", "GetTrailStatus", "--count", "1"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env(server.data_dir))
        time.sleep(1.5)
        with pytest.raises(cloudtrail.exceptions.TrailNotFoundException):
            cloudtrail.get_trail_status(Name="absent")
        out, err = following.communicate(timeout=30)
        assert following.returncode == 0, err
        line, = out.splitlines()
        assert "cloudtrail.amazonaws.com  GetTrailStatus" in line and line.endswith("TrailNotFoundException")
    finally:
        server.stop()


# The columns of AWS's documented Athena table for CloudTrail logs (CREATE EXTERNAL TABLE
# cloudtrail_logs ...), as DuckDB types, under the names the records use.
ATHENA_CLOUDTRAIL_COLUMNS = """STRUCT(
    eventVersion VARCHAR,
    userIdentity STRUCT(type VARCHAR, principalId VARCHAR, arn VARCHAR, accountId VARCHAR,
        invokedBy VARCHAR, accessKeyId VARCHAR, userName VARCHAR,
        sessionContext STRUCT(attributes STRUCT(mfaAuthenticated VARCHAR, creationDate VARCHAR),
            sessionIssuer STRUCT(type VARCHAR, principalId VARCHAR, arn VARCHAR, accountId VARCHAR, userName VARCHAR))),
    eventTime VARCHAR, eventSource VARCHAR, eventName VARCHAR, awsRegion VARCHAR,
    sourceIPAddress VARCHAR, userAgent VARCHAR, errorCode VARCHAR, errorMessage VARCHAR,
    requestParameters JSON, responseElements JSON, additionalEventData JSON,
    requestID VARCHAR, eventID VARCHAR, readOnly VARCHAR,
    resources STRUCT(ARN VARCHAR, accountId VARCHAR, type VARCHAR)[],
    eventType VARCHAR, apiVersion VARCHAR, recipientAccountId VARCHAR,
    serviceEventDetails JSON, sharedEventID VARCHAR, vpcEndpointId VARCHAR,
    tlsDetails STRUCT(tlsVersion VARCHAR, cipherSuite VARCHAR, clientProvidedHostHeader VARCHAR)
)[]"""


def test_delivered_files_load_in_duckdb_with_athenas_schema(tmp_path):
    import duckdb
    server = Cairn(tmp_path / "data", extra_args=["--delivery-interval-secs", "1"]).start()
    try:
        s3, cloudtrail = client(server, "s3"), client(server, "cloudtrail")
        s3.create_bucket(Bucket="e2e-athena")
        cloudtrail.create_trail(Name="athena", S3BucketName="e2e-athena", IsMultiRegionTrail=True)
        time.sleep(1.1)  # LookupEvents' bounds are whole seconds: nothing else in the start's second
        cloudtrail.start_logging(Name="athena")
        for _ in range(4):
            cloudtrail.describe_trails()
        for _ in range(3):
            client(server, "cloudtrail", region="eu-west-1").list_trails()
        with pytest.raises(cloudtrail.exceptions.TrailNotFoundException):
            cloudtrail.get_trail(Name="absent")
        cloudtrail.stop_logging(Name="athena")
        time.sleep(1.1)  # and nothing else in the stop's second
        stop = wait_for(lambda: lookup_all(cloudtrail, LookupAttributes=[
            {"AttributeKey": "EventName", "AttributeValue": "StopLogging"}])[0])[0]
        start = lookup_all(cloudtrail, LookupAttributes=[
            {"AttributeKey": "EventName", "AttributeValue": "StartLogging"}])[0][0]
        files = wait_for(lambda: (lambda f: f if stop["EventId"] in {r["eventID"] for rs in f.values() for r in rs}
                                  else None)(delivered(server, "e2e-athena")))
        folder = tmp_path / "bucket"
        for key in files:
            path = folder / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(s3.get_object(Bucket="e2e-athena", Key=key)["Body"].read())

        connection = duckdb.connect()
        glob = f"{folder}/AWSLogs/**/*.json.gz"
        counted = dict(connection.execute(f"""
            SELECT record.eventName, count(*) FROM (
              SELECT unnest(Records) AS record
              FROM read_json('{glob}', columns={{'Records': '{ATHENA_CLOUDTRAIL_COLUMNS}'}}, format='auto'))
            GROUP BY 1""").fetchall())
        failed = connection.execute(f"""
            SELECT record.errorCode, record.userIdentity.accountId, record.readOnly FROM (
              SELECT unnest(Records) AS record FROM read_json('{glob}',
                columns={{'Records': '{ATHENA_CLOUDTRAIL_COLUMNS}'}}))
            WHERE record.eventName = 'GetTrail'""").fetchall()
        assert failed == [("TrailNotFoundException", cloudtrail.get_trail(Name="athena")["Trail"]["TrailARN"].split(":")[4], "true")]

        # The same events, counted by name, as LookupEvents has them for the logging period.
        history = lookup_all(cloudtrail, StartTime=start["EventTime"], EndTime=stop["EventTime"])[0]
        expected = {}
        for event in history:
            expected[event["EventName"]] = expected.get(event["EventName"], 0) + 1
        assert counted == expected
        assert counted["DescribeTrails"] == 4 and counted["ListTrails"] == 3 and counted["StopLogging"] == 1
    finally:
        server.stop()


def test_terraforms_read_pattern_and_boto3_paginators(tmp_path):
    server = Cairn(tmp_path / "data").start()
    try:
        s3, cloudtrail = client(server, "s3"), client(server, "cloudtrail")
        s3.create_bucket(Bucket="e2e-terraform")
        # Create: the ID is the returned ARN; then StartLogging, selectors, by that ARN.
        arn = cloudtrail.create_trail(Name="terraform", S3BucketName="e2e-terraform",
                                      TagsList=[{"Key": "Name", "Value": "tf"}])["TrailARN"]
        cloudtrail.start_logging(Name=arn)
        cloudtrail.put_event_selectors(TrailName=arn, AdvancedEventSelectors=[{
            "Name": "management", "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}]}])
        # Read: exactly one trail for the ARN, its status, its selectors, its tags.
        described = cloudtrail.describe_trails(trailNameList=[arn])["trailList"]
        assert len(described) == 1 and described[0]["TrailARN"] == arn
        assert described[0]["HasCustomEventSelectors"] is True and described[0]["HasInsightSelectors"] is False
        status = cloudtrail.get_trail_status(Name=arn)
        assert status["IsLogging"] is True and status["TimeLoggingStopped"] == ""
        assert cloudtrail.get_event_selectors(TrailName=arn)["AdvancedEventSelectors"][0]["Name"] == "management"
        tags = cloudtrail.list_tags(ResourceIdList=[arn])["ResourceTagList"]
        assert tags == [{"ResourceId": arn, "TagsList": [{"Key": "Name", "Value": "tf"}]}]
        # Gone: zero matches, and DeleteTrail of a deleted trail is TrailNotFoundException.
        cloudtrail.delete_trail(Name=arn)
        assert cloudtrail.describe_trails(trailNameList=[arn])["trailList"] == []
        with pytest.raises(cloudtrail.exceptions.TrailNotFoundException):
            cloudtrail.delete_trail(Name=arn)
        with pytest.raises(cloudtrail.exceptions.CloudTrailARNInvalidException):
            cloudtrail.get_trail(Name="arn:aws:cloudtrail:us-east-1:bad")
        for name in ["one", "two", "three"]:
            cloudtrail.create_trail(Name=name, S3BucketName="e2e-terraform")
        pages = list(cloudtrail.get_paginator("list_trails").paginate())
        assert sorted(t["Name"] for page in pages for t in page["Trails"]) == ["one", "three", "two"]
        with pytest.raises(cloudtrail.exceptions.InvalidNextTokenException):
            cloudtrail.list_trails(NextToken="forged")
    finally:
        server.stop()
