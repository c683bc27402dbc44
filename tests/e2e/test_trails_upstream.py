"""Trails behind an upstream (moto_server): log files delivered to the upstream's S3 with
delivery's own credentials, an SNS notification per file, every event sent to CloudWatch
Logs, and calls forwarded through the gateway delivered like Cairn's own."""

import json
import time

import boto3
import pytest

from conftest import Cairn, Outage
from test_trails import client, delivered, delivered_with, request_ids, wait_for

ACCOUNT = "123456789012"


def subscribed_topic_and_log_group(server, name):
    """A topic with a queue subscribed to it, and a log group, both named `name`, at the
    upstream: (topic ARN, sqs client, queue URL, logs client, log group ARN)."""
    sns, sqs, logs = (client(server, service) for service in ["sns", "sqs", "logs"])
    topic = sns.create_topic(Name=name)["TopicArn"]
    queue = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    logs.create_log_group(logGroupName=name)
    return topic, sqs, queue, logs, f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:{name}:*"


def notified_keys(sqs, queue, bucket, keys, timeout=30):
    """The keys the queue's SNS notifications name, read until they hold `keys` or time is up;
    every notification names `bucket`."""
    notified = set()
    deadline = time.time() + timeout
    while not set(keys) <= notified and time.time() < deadline:
        for message in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
            body = json.loads(json.loads(message["Body"])["Message"])
            assert body["s3Bucket"] == bucket
            notified.update(body["s3ObjectKey"])
    return notified


def behind_an_outage(tmp_path, moto, services, settings=""):
    """A started Cairn whose `services` reach moto through a proxy that can go down (the
    rest straight to moto), with `settings` in its config: (the proxy, the server)."""
    host, port = moto.removeprefix("http://").split(":")
    outage = Outage((host, int(port)))
    routes = "".join(f'{service} = "http://127.0.0.1:{outage.port}"\n' for service in services)
    config = tmp_path / "cairn.toml"
    config.write_text(f"{settings}[upstreams]\n{routes}")
    server = Cairn(tmp_path / "data", extra_args=[
        "--config", str(config), "--upstream", moto, "--delivery-interval-secs", "1",
        "--account-id", ACCOUNT]).start()
    return outage, server


def test_delivery_to_an_upstream_with_sns_and_cloudwatch_logs(tmp_path, moto):
    server = Cairn(tmp_path / "data", extra_args=[
        "--upstream", moto, "--delivery-interval-secs", "1", "--account-id", ACCOUNT]).start()
    try:
        s3, cloudtrail, kms = client(server, "s3"), client(server, "cloudtrail"), client(server, "kms")
        s3.create_bucket(Bucket="e2e-upstream-trail")
        topic, sqs, queue, logs, group_arn = subscribed_topic_and_log_group(server, "e2e-trail-files")

        with pytest.raises(cloudtrail.exceptions.S3BucketDoesNotExistException):
            cloudtrail.create_trail(Name="upstream", S3BucketName="e2e-not-in-moto")
        with pytest.raises(cloudtrail.exceptions.InsufficientSnsTopicPolicyException):
            cloudtrail.create_trail(Name="upstream", S3BucketName="e2e-upstream-trail", SnsTopicName="e2e-absent")
        cloudtrail.create_trail(
            Name="upstream", S3BucketName="e2e-upstream-trail", SnsTopicName="e2e-trail-files",
            CloudWatchLogsLogGroupArn=group_arn, CloudWatchLogsRoleArn=f"arn:aws:iam::{ACCOUNT}:role/trail-logs")
        assert cloudtrail.get_trail(Name="upstream")["Trail"]["SnsTopicARN"] == topic
        cloudtrail.start_logging(Name="upstream")
        created = kms.create_key()
        key_arn = created["KeyMetadata"]["Arn"]
        marker = created["ResponseMetadata"]["RequestId"]

        files = delivered_with(server, "e2e-upstream-trail", marker)
        record = next(r for records in files.values() for r in records if r["requestID"] == marker)
        assert record["eventSource"] == "kms.amazonaws.com" and record["eventName"] == "CreateKey"
        assert record["recipientAccountId"] == ACCOUNT
        assert any(resource["ARN"] == key_arn for resource in record.get("resources", []))

        # One notification per file, in AWS's shape.
        assert set(files) <= notified_keys(sqs, queue, "e2e-upstream-trail", files)

        # Every event in CloudWatch Logs, in AWS's stream.
        stream = f"{ACCOUNT}_CloudTrail_us-east-1"
        def logged():
            events = logs.filter_log_events(logGroupName="e2e-trail-files").get("events", [])
            return events if marker in {json.loads(e["message"])["requestID"] for e in events} else None
        events = wait_for(logged, what="CloudWatch Logs delivery")
        assert {e["logStreamName"] for e in events} == {stream}

        # A call with a service event (Secrets Manager, through the gateway): the service
        # event is delivered as a management event beside its call, and the secret's value
        # is in neither.
        sm = client(server, "secretsmanager")
        value = "e2e-trail-secret-value-5f1c"
        sm.create_secret(Name="e2e-trail-secret", SecretString=value)
        deleted = sm.delete_secret(SecretId="e2e-trail-secret", RecoveryWindowInDays=7)
        call = deleted["ResponseMetadata"]["RequestId"]

        def with_service_event():
            files = delivered(server, "e2e-upstream-trail")
            records = [r for records in files.values() for r in records]
            started = [r for r in records if r["eventName"] == "StartSecretVersionDelete"]
            return (records, started[0]) if started and call in request_ids(files) else None
        records, started = wait_for(with_service_event)
        assert started["eventType"] == "AwsServiceEvent" and started["managementEvent"] is True
        assert started["eventSource"] == "secretsmanager.amazonaws.com"
        assert started["serviceEventDetails"]["deletionDate"]
        assert value not in json.dumps(records)

        status = cloudtrail.get_trail_status(Name="upstream")
        assert "LatestNotificationTime" in status and "LatestCloudWatchLogsDeliveryTime" in status
        for error in ["LatestDeliveryError", "LatestNotificationError", "LatestCloudWatchLogsDeliveryError"]:
            assert error not in status, status
    finally:
        server.stop()


def test_a_dynamodb_data_event_selector_delivers_that_tables_item_calls_only(tmp_path, moto):
    server = Cairn(tmp_path / "data", extra_args=[
        "--upstream", moto, "--delivery-interval-secs", "1", "--account-id", ACCOUNT]).start()
    try:
        s3, dynamodb, cloudtrail = client(server, "s3"), client(server, "dynamodb"), client(server, "cloudtrail")
        s3.create_bucket(Bucket="e2e-table-trail")
        arns = {}
        for table in ["e2e-watched", "e2e-unwatched"]:
            arns[table] = dynamodb.create_table(
                TableName=table, BillingMode="PAY_PER_REQUEST",
                KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            )["TableDescription"]["TableArn"]
        cloudtrail.create_trail(Name="tables", S3BucketName="e2e-table-trail")
        cloudtrail.put_event_selectors(TrailName="tables", EventSelectors=[{
            "ReadWriteType": "All", "IncludeManagementEvents": False,
            "DataResources": [{"Type": "AWS::DynamoDB::Table", "Values": [arns["e2e-watched"]]}]}])
        cloudtrail.start_logging(Name="tables")
        watched = dynamodb.put_item(TableName="e2e-watched", Item={"id": {"S": "a"}})["ResponseMetadata"]["RequestId"]
        unwatched = dynamodb.put_item(TableName="e2e-unwatched", Item={"id": {"S": "b"}})["ResponseMetadata"]["RequestId"]
        management = dynamodb.describe_table(TableName="e2e-watched")["ResponseMetadata"]["RequestId"]
        read = dynamodb.get_item(TableName="e2e-watched", Key={"id": {"S": "a"}})["ResponseMetadata"]["RequestId"]

        files = delivered_with(server, "e2e-table-trail", read)
        ids = set(request_ids(files))
        assert watched in ids and read in ids
        assert unwatched not in ids, "another table's item calls"
        assert management not in ids, "no management events on this trail"
        records = [r for records in files.values() for r in records]
        put = next(r for r in records if r["requestID"] == watched)
        assert put["eventCategory"] == "Data" and put["managementEvent"] is False
        assert any(resource["ARN"] == arns["e2e-watched"] for resource in put["resources"])
    finally:
        server.stop()


def test_notices_owed_while_sns_and_cloudwatch_logs_are_down_are_sent_when_they_are_back(tmp_path, moto):
    # SNS and CloudWatch Logs reach moto through a proxy that can go down; the rest goes
    # straight to moto.
    outage, server = behind_an_outage(tmp_path, moto, ["sns", "logs"])
    try:
        s3, cloudtrail, kms = client(server, "s3"), client(server, "cloudtrail"), client(server, "kms")
        s3.create_bucket(Bucket="e2e-owed-notices")
        _, sqs, queue, logs, group_arn = subscribed_topic_and_log_group(server, "e2e-owed-notices")
        cloudtrail.create_trail(
            Name="owed", S3BucketName="e2e-owed-notices", SnsTopicName="e2e-owed-notices",
            CloudWatchLogsLogGroupArn=group_arn,
            CloudWatchLogsRoleArn=f"arn:aws:iam::{ACCOUNT}:role/trail-logs")
        cloudtrail.start_logging(Name="owed")

        outage.down()
        markers = [kms.create_key()["ResponseMetadata"]["RequestId"] for _ in range(3)]
        files = delivered_with(server, "e2e-owed-notices", markers, what="files delivered while SNS is down")

        def failing():
            status = cloudtrail.get_trail_status(Name="owed")
            wanted = ["LatestNotificationError", "LatestCloudWatchLogsDeliveryError"]
            return status if all(name in status for name in wanted) else None
        status = wait_for(failing, what="the outage in GetTrailStatus")
        assert "LatestDeliveryError" not in status, "files are not held back"
        # Calls are answered while the notices wait.
        markers.append(kms.list_keys()["ResponseMetadata"]["RequestId"])

        outage.up()
        files = delivered_with(server, "e2e-owed-notices", markers)
        notified = notified_keys(sqs, queue, "e2e-owed-notices", files, timeout=90)
        assert set(files) <= notified, "every file delivered during the outage is notified after it"

        def logged():
            events = logs.filter_log_events(logGroupName="e2e-owed-notices").get("events", [])
            ids = [json.loads(e["message"])["requestID"] for e in events]
            return ids if set(markers) <= set(ids) else None
        ids = wait_for(logged, timeout=90, what="CloudWatch Logs catching up")
        for marker in markers:
            assert ids.count(marker) == 1, (marker, ids.count(marker))

        def recovered():
            status = cloudtrail.get_trail_status(Name="owed")
            errors = ["LatestNotificationError", "LatestCloudWatchLogsDeliveryError"]
            return status if not any(name in status for name in errors) else None
        wait_for(recovered, timeout=90, what="the errors cleared")
    finally:
        server.stop()
        outage.down()


def test_owed_notices_past_the_bound_are_given_up_oldest_first_and_reported(tmp_path, moto):
    outage, server = behind_an_outage(tmp_path, moto, ["sns"], settings="owed_notices_per_trail = 2\n")
    try:
        s3, cloudtrail, kms = client(server, "s3"), client(server, "cloudtrail"), client(server, "kms")
        s3.create_bucket(Bucket="e2e-bounded-notices")
        topic, _, _, _, _ = subscribed_topic_and_log_group(server, "e2e-bounded-notices")
        # The queue is read at moto itself: a read through Cairn would be recorded and
        # delivered, owing one more notice.
        sqs = boto3.client("sqs", endpoint_url=moto, region_name="us-east-1",
                           aws_access_key_id="test", aws_secret_access_key="test")
        queue = sqs.get_queue_url(QueueName="e2e-bounded-notices")["QueueUrl"]
        cloudtrail.create_trail(Name="bounded", S3BucketName="e2e-bounded-notices", SnsTopicName="e2e-bounded-notices")
        cloudtrail.start_logging(Name="bounded")
        marker = kms.list_keys()["ResponseMetadata"]["RequestId"]
        before = delivered_with(server, "e2e-bounded-notices", marker)
        assert set(before) <= notified_keys(sqs, queue, "e2e-bounded-notices", before)

        outage.down()
        # Five deliveries, one after another, while SNS is down: each owes its file's notice.
        stretches = []
        for _ in range(5):
            seen = set(delivered(server, "e2e-bounded-notices"))
            marker = kms.list_keys()["ResponseMetadata"]["RequestId"]
            files = delivered_with(server, "e2e-bounded-notices", marker, what="a delivery while SNS is down")
            stretches.append({key for key, records in files.items()
                              if key not in seen and marker in {r["requestID"] for r in records}})
        outage.up()

        # Whatever else was delivered meanwhile, the newest delivery is within the bound
        # and the three oldest of five are past it.
        notified = notified_keys(sqs, queue, "e2e-bounded-notices", stretches[-1], timeout=90)
        assert stretches[-1] <= notified, "the newest delivery, within the bound, is notified"
        for older in stretches[:3]:
            assert not older & notified, "the oldest, past the bound, are given up"
        log = (tmp_path / "data-server.log").read_text()
        assert "owed notices given up" in log
    finally:
        server.stop()
        outage.down()


def test_a_lambda_data_event_selector_delivers_that_functions_invocations_only(tmp_path, moto):
    import io
    import zipfile

    server = Cairn(tmp_path / "data", extra_args=[
        "--upstream", moto, "--delivery-interval-secs", "1", "--account-id", ACCOUNT]).start()
    try:
        s3, iam, lambda_, cloudtrail = (client(server, name) for name in ["s3", "iam", "lambda", "cloudtrail"])
        s3.create_bucket(Bucket="e2e-function-trail")
        role = iam.create_role(RoleName="e2e-function", AssumeRolePolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": []}))["Role"]["Arn"]
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("index.py", "def handler(event, context):\n    return 1\n")
        arns = {name: lambda_.create_function(
            FunctionName=name, Runtime="python3.11", Role=role, Handler="index.handler",
            Code={"ZipFile": code.getvalue()})["FunctionArn"] for name in ["e2e-watched", "e2e-unwatched"]}
        cloudtrail.create_trail(Name="functions", S3BucketName="e2e-function-trail")
        cloudtrail.put_event_selectors(TrailName="functions", EventSelectors=[{
            "ReadWriteType": "All", "IncludeManagementEvents": False,
            "DataResources": [{"Type": "AWS::Lambda::Function", "Values": [arns["e2e-watched"]]}]}])
        cloudtrail.start_logging(Name="functions")
        # moto runs functions in Docker, which this machine's tests do not use: the call is
        # answered (with the function's error) and recorded all the same.
        invoke = lambda name: lambda_.invoke(FunctionName=name, Payload=b"{}")["ResponseMetadata"]["RequestId"]
        watched = invoke("e2e-watched")
        unwatched = invoke("e2e-unwatched")
        management = lambda_.get_function(FunctionName="e2e-watched")["ResponseMetadata"]["RequestId"]
        by_arn = invoke(arns["e2e-watched"])

        files = delivered_with(server, "e2e-function-trail", by_arn)
        ids = set(request_ids(files))
        assert watched in ids and by_arn in ids
        assert unwatched not in ids, "another function's invocations"
        assert management not in ids, "no management events on this trail"
        records = [r for records in files.values() for r in records]
        call = next(r for r in records if r["requestID"] == watched)
        assert call["eventName"] == "Invoke" and call["eventCategory"] == "Data"
        assert call["managementEvent"] is False and call["readOnly"] is False
        assert any(resource["ARN"] == arns["e2e-watched"] for resource in call["resources"])
    finally:
        server.stop()
