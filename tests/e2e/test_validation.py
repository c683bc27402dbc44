"""Every LookupEvents validation error and protocol error, with AWS's exact code."""

import json

import botocore.awsrequest
import botocore.auth
import botocore.credentials
import pytest
import requests
from botocore.exceptions import ClientError

TARGET = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101."


def error_code(call):
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"], caught.value.response["ResponseMetadata"]["HTTPStatusCode"]


def attribute(key, value):
    return {"AttributeKey": key, "AttributeValue": value}


def test_validation_errors_have_exact_codes(cairn):
    client = cairn.client(validate=False)
    cases = [
        ({"LookupAttributes": [attribute("EventName", "a"), attribute("EventId", "b")]}, "InvalidLookupAttributesException"),
        ({"LookupAttributes": [attribute("Colour", "blue")]}, "InvalidLookupAttributesException"),
        ({"LookupAttributes": [attribute("EventName", "")]}, "InvalidLookupAttributesException"),
        ({"LookupAttributes": [attribute("ReadOnly", "maybe")]}, "InvalidLookupAttributesException"),
        ({"LookupAttributes": [attribute("EventName", "x" * 2001)]}, "InvalidLookupAttributesException"),
        ({"StartTime": 2_000_000_000, "EndTime": 1_000_000_000}, "InvalidTimeRangeException"),
        ({"MaxResults": 0}, "InvalidMaxResultsException"),
        ({"MaxResults": 51}, "InvalidMaxResultsException"),
        ({"EventCategory": "management"}, "InvalidEventCategoryException"),
        ({"NextToken": "forged-token"}, "InvalidNextTokenException"),
        ({"EventCategory": "insight", "LookupAttributes": [attribute("Username", "x")]}, "InvalidLookupAttributesException"),
    ]
    for parameters, expected in cases:
        assert error_code(lambda: client.lookup_events(**parameters)) == (expected, 400), parameters


def test_the_cli_reports_server_side_validation(cairn):
    result = cairn.aws("cloudtrail", "lookup-events", "--max-results", "51", check=False)
    assert result.returncode != 0
    assert "InvalidMaxResultsException" in result.stderr
    result = cairn.aws("cloudtrail", "lookup-events", "--start-time", "2030-01-02", "--end-time", "2030-01-01", check=False)
    assert "InvalidTimeRangeException" in result.stderr


def test_next_token_cannot_be_reused_with_other_parameters(cairn, tmp_path):
    from conftest import record
    from test_lookup import write_records, iso, BASE
    cairn.import_files(write_records(tmp_path / "a.json.gz", [record(f"n{i}", iso(BASE + i)) for i in range(5)]))
    client = cairn.client()
    first = client.lookup_events(MaxResults=2, LookupAttributes=[attribute("EventName", "DescribeThing")])
    token = first["NextToken"]
    assert error_code(lambda: client.lookup_events(NextToken=token, LookupAttributes=[attribute("EventName", "Other")])) \
        == ("InvalidNextTokenException", 400)
    assert error_code(lambda: client.lookup_events(NextToken=token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
                                                   LookupAttributes=[attribute("EventName", "DescribeThing")])) \
        == ("InvalidNextTokenException", 400)
    second = client.lookup_events(NextToken=token, MaxResults=2, LookupAttributes=[attribute("EventName", "DescribeThing")])
    assert [e["EventId"] for e in second["Events"]] == ["n2", "n1"]


def signed_post(cairn, body, target="LookupEvents", headers=None):
    key, secret = cairn.credentials()
    request = botocore.awsrequest.AWSRequest(
        method="POST", url=cairn.endpoint + "/", data=body,
        headers={"X-Amz-Target": TARGET + target, "Content-Type": "application/x-amz-json-1.1", **(headers or {})},
    )
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(key, secret), "cloudtrail", "us-east-1").add_auth(request)
    return requests.post(cairn.endpoint + "/", data=body, headers=dict(request.headers.items()), timeout=30)


def assert_aws_error(response, code, status=400):
    assert response.status_code == status, response.text
    assert response.json()["__type"] == code, response.text
    assert response.headers["x-amzn-RequestId"]


def test_protocol_errors(cairn):
    assert_aws_error(signed_post(cairn, b"{not json"), "SerializationException")
    assert_aws_error(signed_post(cairn, b"[1, 2]"), "SerializationException")
    assert_aws_error(signed_post(cairn, json.dumps({"StartTime": "yesterday"}).encode()), "SerializationException")
    assert_aws_error(signed_post(cairn, b"{}", target="DropAllEvents"), "UnknownOperationException")
    # Checked against the model before anything else: Name is required.
    assert_aws_error(signed_post(cairn, b"{}", target="CreateTrail"), "InvalidParameterException")
    # A value of the wrong JSON type, in the trail API as in LookupEvents.
    assert_aws_error(signed_post(cairn, json.dumps({"StartTime": "yesterday"}).encode(), target="ListPublicKeys"),
                     "SerializationException")
    assert_aws_error(signed_post(cairn, json.dumps({"Name": 7}).encode(), target="GetTrail"), "SerializationException")
    assert_aws_error(signed_post(cairn, b"{}", target="ListEventDataStores"), "UnsupportedOperationException")
    assert_aws_error(signed_post(cairn, b"{" + b" " * (1 << 20) + b"}"), "RequestEntityTooLargeException", 413)
    ok = signed_post(cairn, b"")
    assert ok.status_code == 200 and "Events" in ok.json()


def test_no_api_deletes_or_edits_events(cairn):
    """The only CloudTrail operations that mutate are trail/store configuration; none of them
    touches an event, and the event history keeps every refused attempt too."""
    client = cairn.client(validate=False)
    before = client.lookup_events(LookupAttributes=[attribute("EventName", "LookupEvents")])["Events"]
    assert_aws_error(signed_post(cairn, b'{"EventDataStore": "x"}', target="DeleteEventDataStore"),
                     "UnsupportedOperationException")
    for target in ["DeleteTrail", "StopLogging"]:
        assert_aws_error(signed_post(cairn, b'{"Name": "absent"}', target=target), "TrailNotFoundException")
    after = client.lookup_events(LookupAttributes=[attribute("EventName", "LookupEvents")])["Events"]
    assert {e["EventId"] for e in before} <= {e["EventId"] for e in after}
    refused = client.lookup_events(LookupAttributes=[attribute("EventName", "DeleteTrail")])["Events"]
    assert json.loads(refused[0]["CloudTrailEvent"])["errorCode"] == "TrailNotFoundException"
