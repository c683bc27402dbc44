"""LookupEvents through the real aws CLI and boto3: attributes, time ranges, pagination,
categories, and the exact shape of each Event."""

import datetime
import gzip
import json

from conftest import lookup_all, record


def iso(seconds):
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


BASE = 1_700_000_000


def write_records(path, records, compress=True):
    data = json.dumps({"Records": records}).encode()
    if compress:
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def attribute_fixture():
    kms_key = {"ARN": "arn:aws:kms:us-east-1:111122223333:key/k1", "accountId": "111122223333", "type": "AWS::KMS::Key"}
    return [
        record("e1", iso(BASE + 1), name="DisableKey", source="kms.amazonaws.com", user="alice", read_only=False, resources=[kms_key]),
        record("e2", iso(BASE + 2), name="DescribeKey", source="kms.amazonaws.com", user="bob", key="AKIAEXAMPLE00000BOB", resources=[kms_key]),
        record("e3", iso(BASE + 3), name="DescribeInstances", source="ec2.amazonaws.com", user="bob", key="AKIAEXAMPLE00000BOB"),
        record("e4", iso(BASE + 4), name="GetObject", source="s3.amazonaws.com", user="alice", eventCategory="Data", managementEvent=False),
        record("e5", iso(BASE + 5), name="RunInstances", source="ec2.amazonaws.com", user="carol", key="AKIAEXAMPLE000CAROL", read_only=False),
    ]


def ids(events):
    return [event["EventId"] for event in events]


def test_each_lookup_attribute_with_the_cli(cairn, tmp_path):
    cairn.import_files(write_records(tmp_path / "a.json.gz", attribute_fixture()))
    cases = [
        ("EventId", "e3", ["e3"]),
        ("EventName", "DescribeKey", ["e2"]),
        ("ReadOnly", "false", ["e5", "e1"]),
        ("Username", "bob", ["e3", "e2"]),
        ("ResourceType", "AWS::KMS::Key", ["e2", "e1"]),
        ("ResourceName", "arn:aws:kms:us-east-1:111122223333:key/k1", ["e2", "e1"]),
        ("EventSource", "ec2.amazonaws.com", ["e5", "e3"]),
        ("AccessKeyId", "AKIAEXAMPLE000CAROL", ["e5"]),
        # A data event is stored but Event history never lists it.
        ("EventName", "GetObject", []),
    ]
    for key, value, expected in cases:
        events = cairn.aws_json(
            "cloudtrail", "lookup-events", "--lookup-attributes", f"AttributeKey={key},AttributeValue={value}",
        )["Events"]
        assert ids(events) == expected, (key, value)


def test_event_shape_matches_the_wire_contract(cairn, tmp_path):
    cairn.import_files(write_records(tmp_path / "a.json.gz", attribute_fixture()))
    client = cairn.client()
    raw = cairn.aws("cloudtrail", "lookup-events", "--lookup-attributes", "AttributeKey=EventId,AttributeValue=e1").stdout
    event = json.loads(raw)["Events"][0]
    assert event["ReadOnly"] == "false"
    assert isinstance(event["EventTime"], float) and event["EventTime"] == BASE + 1
    assert event["Username"] == "alice"
    assert event["AccessKeyId"] == "AKIAEXAMPLE0000ALICE"
    assert event["EventSource"] == "kms.amazonaws.com"
    assert event["Resources"] == [{"ResourceType": "AWS::KMS::Key", "ResourceName": "arn:aws:kms:us-east-1:111122223333:key/k1"}]
    assert json.loads(event["CloudTrailEvent"]) == attribute_fixture()[0]
    # boto3 parses EventTime into an aware datetime.
    parsed = client.lookup_events(LookupAttributes=[{"AttributeKey": "EventId", "AttributeValue": "e1"}])["Events"][0]
    assert parsed["EventTime"] == datetime.datetime.fromtimestamp(BASE + 1, datetime.timezone.utc)


def test_time_range_is_inclusive(cairn, tmp_path):
    cairn.import_files(write_records(tmp_path / "a.json.gz", [record(f"t{n}", iso(BASE + n)) for n in range(10)]))
    events = cairn.aws_json(
        "cloudtrail", "lookup-events", "--start-time", str(BASE + 3), "--end-time", str(BASE + 6),
        "--lookup-attributes", "AttributeKey=EventName,AttributeValue=DescribeThing",
    )["Events"]
    assert ids(events) == ["t6", "t5", "t4", "t3"]
    client = cairn.client()
    start = datetime.datetime.fromtimestamp(BASE + 8, datetime.timezone.utc)
    events, _ = lookup_all(client, StartTime=start, LookupAttributes=[{"AttributeKey": "Username", "AttributeValue": "alice"}])
    assert ids(events) == ["t9", "t8"]
    events, _ = lookup_all(client, StartTime=start, EndTime=start)
    assert ids(events) == ["t8"]


def test_pagination_over_600_events_has_no_gaps_or_duplicates(cairn, tmp_path):
    # Three events per second, so pages often split a run of equal eventTimes.
    records = [record(f"p{n:04d}", iso(BASE + n // 3), name="PaginationProbe") for n in range(600)]
    cairn.import_files(write_records(tmp_path / "p.json.gz", records))
    expected = [f"p{n:04d}" for n in reversed(range(600))]
    attribute = "AttributeKey=EventName,AttributeValue=PaginationProbe"

    # The CLI's automatic pagination (12 pages of 50).
    events = cairn.aws_json("cloudtrail", "lookup-events", "--lookup-attributes", attribute)["Events"]
    assert ids(events) == expected

    # The CLI with a small page size and its own resumable tokens.
    seen, token = [], None
    while True:
        args = ["cloudtrail", "lookup-events", "--lookup-attributes", attribute, "--page-size", "17", "--max-items", "101"]
        if token:
            args += ["--starting-token", token]
        page = cairn.aws_json(*args)
        seen += ids(page["Events"])
        token = page.get("NextToken")
        if not token:
            break
    assert seen == expected

    # boto3 by hand with NextToken, and boto3's paginator.
    client = cairn.client()
    events, pages = lookup_all(client, MaxResults=13, LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "PaginationProbe"}])
    assert ids(events) == expected and pages == 47
    paginator = client.get_paginator("lookup_events")
    paged = [event["EventId"] for page in paginator.paginate(
        LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "PaginationProbe"}],
        PaginationConfig={"PageSize": 50}) for event in page["Events"]]
    assert paged == expected


def test_insight_events_only_with_event_category_insight(cairn, tmp_path):
    insight = {
        "eventVersion": "1.08", "eventTime": iso(BASE + 50), "awsRegion": "us-east-1", "eventID": "ins-1",
        "eventType": "AwsCloudTrailInsight", "recipientAccountId": "111122223333", "sharedEventID": "s1",
        "insightDetails": {"state": "Start", "eventSource": "ec2.amazonaws.com", "eventName": "RunInstances",
                           "insightType": "ApiCallRateInsight", "insightContext": {"statistics": {"baseline": {"average": 0.1}}}},
        "eventCategory": "Insight",
    }
    cairn.import_files(write_records(tmp_path / "i.json.gz", [insight, record("m1", iso(BASE + 51), name="RunInstances")]))
    plain = cairn.aws_json("cloudtrail", "lookup-events", "--lookup-attributes", "AttributeKey=EventName,AttributeValue=RunInstances")
    assert ids(plain["Events"]) == ["m1"]
    insights = cairn.aws_json("cloudtrail", "lookup-events", "--event-category", "insight",
                              "--lookup-attributes", "AttributeKey=EventName,AttributeValue=RunInstances")
    assert ids(insights["Events"]) == ["ins-1"]
    assert json.loads(insights["Events"][0]["CloudTrailEvent"]) == insight


def test_every_call_is_recorded_as_a_cloudtrail_event(cairn):
    client = cairn.client()
    client.lookup_events(LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "Nothing"}], MaxResults=5)
    events = client.lookup_events(LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "LookupEvents"}])["Events"]
    assert len(events) >= 1
    newest = json.loads(events[0]["CloudTrailEvent"])
    key, _ = cairn.credentials()
    assert newest["eventSource"] == "cloudtrail.amazonaws.com"
    assert newest["eventName"] == "LookupEvents"
    assert newest["readOnly"] is True
    assert newest["eventType"] == "AwsApiCall"
    assert newest["userIdentity"]["type"] == "IAMUser"
    assert newest["userIdentity"]["accessKeyId"] == key
    assert newest["userIdentity"]["userName"] == "admin"
    assert newest["awsRegion"] == "us-east-1"
    assert newest["requestParameters"] == {
        "lookupAttributes": [{"attributeKey": "EventName", "attributeValue": "Nothing"}], "maxResults": 5}
    assert newest["responseElements"] is None
    assert newest["recipientAccountId"] == newest["userIdentity"]["accountId"]
    assert events[0]["Username"] == "admin" and events[0]["ReadOnly"] == "true"
