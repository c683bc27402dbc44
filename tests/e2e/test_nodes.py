"""Two Cairn nodes on one PostgreSQL, delivering to moto's S3: either node answers any call
and sees what both recorded; a NextToken and an STS session from one work on the other; the
node that delivers is killed with SIGKILL under load, the other takes the delivery lease
over, every acknowledged event is delivered exactly once, and the real aws CLI validates the
digests across the takeover."""

import collections
import datetime
import os
import re
import signal
import threading
import time
import uuid

import boto3
import botocore.config
import botocore.exceptions

from conftest import Cairn
from test_trails import delivered, wait_for
from test_transparency import get, leaf, open_checkpoint, signed_get, verify_consistency, verify_inclusion

ACCOUNT = "123456789012"
BUCKET = "e2e-two-nodes"


def connect(server, service, credentials=None):
    key, secret = server.credentials()
    extra = {}
    if credentials:
        key, secret = credentials["AccessKeyId"], credentials["SecretAccessKey"]
        if credentials.get("SessionToken"):
            extra["aws_session_token"] = credentials["SessionToken"]
    return boto3.client(
        service, endpoint_url=server.endpoint, region_name="us-east-1",
        aws_access_key_id=key, aws_secret_access_key=secret,
        config=botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=2,
                                      read_timeout=10),
        **extra,
    )


def holder(servers):
    """The node whose log says it took the delivery lease last."""
    taken = []
    for server in servers:
        log = (server.data_dir.parent / f"{server.data_dir.name}-server.log").read_text(errors="replace")
        log = re.sub(r"\x1b\[[0-9;]*m", "", log)
        for line in log.splitlines():
            match = re.search(r"took the lease.*epoch=(\d+)", line)
            if match and "lease=delivery" in line:
                taken.append((int(match.group(1)), server))
    return max(taken, key=lambda pair: pair[0])[1] if taken else None


def lookup_ids(client, **kwargs):
    ids, token = [], None
    while True:
        page = client.lookup_events(**kwargs, **({"NextToken": token} if token else {}))
        ids += [event["EventId"] for event in page["Events"]]
        token = page.get("NextToken")
        if not token:
            return ids


def test_two_nodes_share_one_store_and_hand_delivery_over_when_one_is_killed(tmp_path, moto):
    base = os.environ.get("CAIRN_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test")
    store = f"{base}?schema=cairn_test_nodes_{uuid.uuid4().hex[:12]}"
    key_file = tmp_path / "store.key"
    args = ["--store", store, "--store-key-file", str(key_file), "--upstream", moto,
            "--delivery-interval-secs", "1", "--digest-interval-secs", "10", "--account-id", ACCOUNT]
    # The second node's configuration declares a user the first one's does not.
    declared = tmp_path / "node-b.toml"
    declared.write_text(f"""
[[users]]
account_id = "{ACCOUNT}"
user_name = "ci"
access_key_id = "AKIAE2ENODEBDECLARED"
secret_access_key = "e2e-node-b-declared-secret-key-0000000000"
""")
    first = Cairn(tmp_path / "node-a", extra_args=args).start()
    second = Cairn(tmp_path / "node-b", extra_args=[*args, "--config", str(declared)]).start()
    nodes = [first, second]
    try:
        assert oct(key_file.stat().st_mode & 0o777) == "0o600"
        # The second node took the first one's administrator (and every key) from the store.
        assert first.credentials() == second.credentials()
        # ...and brought its declared user in: a node started later knows it, and the node
        # already running takes it up within seconds.
        ci = {"AccessKeyId": "AKIAE2ENODEBDECLARED",
              "SecretAccessKey": "e2e-node-b-declared-secret-key-0000000000"}

        def known_to(node):
            try:
                return connect(node, "sts", credentials=ci).get_caller_identity()["Arn"]
            except botocore.exceptions.ClientError:
                return None
        third = Cairn(tmp_path / "node-c", extra_args=args).start()
        try:
            for node in (second, third):
                assert known_to(node) == f"arn:aws:iam::{ACCOUNT}:user/ci"
            assert wait_for(lambda: known_to(first), timeout=15, what="the running node to learn of ci") == \
                f"arn:aws:iam::{ACCOUNT}:user/ci"
        finally:
            third.stop()

        # Calls spread over both nodes; a lookup on either sees all of them, newest first.
        made = [connect(nodes[n % 2], "cloudtrail").describe_trails()["ResponseMetadata"]["RequestId"]
                for n in range(12)]
        for node in nodes:
            events = connect(node, "cloudtrail").lookup_events(
                LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "DescribeTrails"}],
                MaxResults=50)["Events"]
            import json
            assert [json.loads(e["CloudTrailEvent"])["requestID"] for e in events] == made[::-1]

        # A NextToken from one node continues the same lookup on the other.
        query = {"LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "DescribeTrails"}],
                 "MaxResults": 5}
        page = connect(first, "cloudtrail").lookup_events(**query)
        continued = connect(second, "cloudtrail").lookup_events(**query, NextToken=page["NextToken"])
        assert [e["EventId"] for e in page["Events"] + continued["Events"]] == \
            lookup_ids(connect(first, "cloudtrail"), **query)[:10]

        # An STS session from one node signs calls to the other.
        session = connect(first, "sts").get_session_token()["Credentials"]
        who = connect(second, "sts", credentials=session).get_caller_identity()
        assert who["Account"] == ACCOUNT

        # A trail with log file validation, delivering to moto's S3 through whichever node
        # holds the delivery lease.
        connect(first, "s3").create_bucket(Bucket=BUCKET)
        cloudtrail = connect(second, "cloudtrail")
        arn = cloudtrail.create_trail(Name="shared", S3BucketName=BUCKET, EnableLogFileValidation=True)["TrailARN"]
        start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=5)
        connect(first, "cloudtrail").start_logging(Name="shared")
        delivering = wait_for(lambda: holder(nodes), what="a delivery lease")
        survivor = second if delivering is first else first

        # One transparency log for both: the delivering node appends, and either proves any
        # event, with the one key both serve.
        key = get(first, "/_cairn/transparency/key").text.strip()
        assert get(second, "/_cairn/transparency/key").text.strip() == key

        def proven(node, event_id):
            answer = signed_get(node, "/_cairn/transparency/proof", **{"event-id": event_id})
            if answer.status_code != 200:
                return None
            proof = answer.json()
            _, size, root = open_checkpoint(proof["checkpoint"], key)
            path = [bytes.fromhex(hash) for hash in proof["inclusionPath"]]
            assert verify_inclusion(proof["leafIndex"], size, leaf(proof["record"].encode()), path, root)
            return proof
        recorded_on_survivor = connect(survivor, "cloudtrail").lookup_events(
            LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "DescribeTrails"}],
            MaxResults=1)["Events"][0]["EventId"]
        for node in nodes:
            wait_for(lambda: proven(node, recorded_on_survivor), what="a proof from either node")
        old_note = get(survivor, "/_cairn/transparency/checkpoint").text
        _, old_size, old_root = open_checkpoint(old_note, key)

        # Load on both nodes; the delivering node is killed in the middle of it.
        acknowledged, stop = [], threading.Event()

        def load(node):
            client = connect(node, "sts")
            while not stop.is_set():
                try:
                    acknowledged.append(client.get_caller_identity()["ResponseMetadata"]["RequestId"])
                except Exception:
                    time.sleep(0.05)

        threads = [threading.Thread(target=load, args=(node,)) for node in nodes]
        for thread in threads:
            thread.start()
        def digests_since(moment):
            listed = connect(survivor, "s3").list_objects_v2(
                Bucket=BUCKET, Prefix=f"AWSLogs/{ACCOUNT}/CloudTrail-Digest/").get("Contents", [])
            return [item for item in listed if item["LastModified"].timestamp() > moment]

        # The chain is begun by the node that is then killed, and continued by the other.
        wait_for(lambda: digests_since(0), timeout=40, what="a digest before the kill")
        time.sleep(1)
        delivering.stop(signal.SIGKILL)
        killed_at = time.time()
        wait_for(lambda: holder([survivor]) is survivor, timeout=30, what="the lease takeover")
        took_over_in = time.time() - killed_at
        time.sleep(2)
        stop.set()
        for thread in threads:
            thread.join()
        assert len(acknowledged) > 50, len(acknowledged)

        # Every acknowledged event delivered, exactly once.
        def all_delivered():
            files = delivered(survivor, BUCKET, prefix=f"AWSLogs/{ACCOUNT}/CloudTrail/")
            seen = collections.Counter(r["requestID"] for records in files.values() for r in records)
            return seen if all(seen[request] for request in acknowledged) else None

        seen = wait_for(all_delivered, timeout=60, what="delivery of every acknowledged event")
        twice = [request for request, count in seen.items() if count > 1]
        assert not twice, f"{len(twice)} events delivered more than once: {twice[:3]}"
        print(f"lease taken over {took_over_in:.1f} s after the kill (seen from the test)")

        # The survivor goes on with the same log: it grew, and is consistent with before.
        def grown():
            opened = open_checkpoint(get(survivor, "/_cairn/transparency/checkpoint").text, key)
            return opened if opened[1] >= old_size + len(acknowledged) else None
        _, new_size, new_root = wait_for(grown, timeout=30, what="the log's growth after the takeover")
        answer = get(survivor, "/_cairn/transparency/consistency", **{"from": old_size, "to": new_size}).json()
        assert verify_consistency(old_size, new_size, old_root, new_root,
                                  [bytes.fromhex(hash) for hash in answer["consistencyPath"]])

        # A digest after the takeover, then the real aws CLI validates the whole chain.
        wait_for(lambda: digests_since(killed_at + 1), timeout=45,
                 what="a digest written by the node that took over")
        result = survivor.aws("cloudtrail", "validate-logs", "--trail-arn", arn, "--start-time",
                              start.strftime("%Y-%m-%dT%H:%M:%SZ"), check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "INVALID" not in result.stdout
        digests = re.search(r"(\d+)/(\d+) digest files valid", result.stdout)
        logs = re.search(r"(\d+)/(\d+) log files valid", result.stdout)
        assert digests and digests.group(1) == digests.group(2) and int(digests.group(1)) >= 2, result.stdout
        assert logs and logs.group(1) == logs.group(2) and int(logs.group(1)) >= 1, result.stdout
    finally:
        for node in nodes:
            node.stop(signal.SIGKILL)
