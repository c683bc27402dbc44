"""The transparency log against the real binary, checked by code written here from RFC 6962
/ RFC 9162 and C2SP signed-note (not Cairn's): every event's inclusion proof verifies
against a signed checkpoint, a record changed by one byte does not, checkpoints stay
consistent across a kill -9, and `cairn verify-event` agrees."""

import base64
import hashlib
import json
import signal
import subprocess
import time

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from conftest import BINARY, Cairn, clean_env
from test_trails import client, wait_for


def node(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def leaf(record):
    return hashlib.sha256(b"\x00" + record).digest()


def mth(leaves):
    """RFC 6962 §2.1's Merkle Tree Hash, from the leaf hashes."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node(mth(leaves[:k]), mth(leaves[k:]))


def verify_inclusion(index, size, leaf_hash, path, root):
    """RFC 9162 §2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf_hash
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(old, size, old_root, root, path):
    """RFC 9162 §2.1.4.2."""
    if old == size:
        return not path and old_root == root
    if old == 0 or old > size:
        return False
    if old & (old - 1) == 0:
        path = [old_root] + path
    fn, sn = old - 1, size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    if not path:
        return False
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node(c, fr), node(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == root


def open_checkpoint(note, verifier_key):
    """C2SP signed-note and tlog-checkpoint: (origin, size, root) if the key signed it."""
    name, key_id, key = verifier_key.split("+", 2)
    typed = base64.b64decode(key)
    assert typed[0] == 1, "Ed25519"
    assert hashlib.sha256(name.encode() + b"\n" + typed).digest()[:4].hex() == key_id
    text, signatures = note.split("\n\n", 1)
    text += "\n"
    for line in signatures.splitlines():
        assert line.startswith("\u2014 "), line
        signer, signature = line.removeprefix("\u2014 ").split(" ")
        signed = base64.b64decode(signature)
        if signer == name and signed[:4].hex() == key_id:
            Ed25519PublicKey.from_public_bytes(typed[1:]).verify(signed[4:], text.encode())
            origin, size, root = text.splitlines()[:3]
            return origin, int(size), base64.b64decode(root)
    raise AssertionError("no signature by the key")


def get(server, path, **params):
    return requests.get(server.endpoint + path, params=params, timeout=10)


def signed_get(server, path, secret=None, **params):
    """A GET signed with SigV4 as botocore signs (by the server's key, or another secret)."""
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials
    key, known_secret = server.credentials()
    prepared = requests.Request("GET", server.endpoint + path, params=params).prepare()
    request = botocore.awsrequest.AWSRequest(method="GET", url=prepared.url)
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(key, secret or known_secret),
                            "cloudtrail", "us-east-1").add_auth(request)
    return requests.get(prepared.url, headers=dict(request.headers.items()), timeout=10)


def test_every_event_is_proven_and_the_log_only_grows_across_a_kill(tmp_path):
    server = Cairn(tmp_path / "data", extra_args=["--checkpoint-interval-millis", "200"]).start()
    try:
        ct = server.client()
        for _ in range(7):
            ct.describe_trails()
        key = get(server, "/_cairn/transparency/key").text.strip()
        events = ct.lookup_events(MaxResults=50)["Events"]
        ids = {event["EventId"]: event["CloudTrailEvent"] for event in events}
        assert len(ids) >= 7

        def proofs():
            answers = {event_id: get(server, "/_cairn/transparency/proof", **{"event-id": event_id})
                       for event_id in ids}
            return answers if all(answer.status_code == 200 for answer in answers.values()) else None
        answers = wait_for(proofs, what="the events' leaves")
        for event_id, answer in answers.items():
            # Hashes are for anyone; the record only for a key Cairn knows.
            assert "record" not in answer.json()
            assert "record" not in signed_get(server, "/_cairn/transparency/proof", secret="x" * 40,
                                              **{"event-id": event_id}).json()
            proof = signed_get(server, "/_cairn/transparency/proof", **{"event-id": event_id}).json()
            assert proof["leafHash"] == answer.json()["leafHash"]
            origin, size, root = open_checkpoint(proof["checkpoint"], key)
            assert size == proof["treeSize"] and origin == key.split("+", 2)[0]
            # The leaf is the record exactly as LookupEvents gives it.
            assert proof["record"] == ids[event_id]
            record = proof["record"].encode()
            assert leaf(record).hex() == proof["leafHash"]
            path = [bytes.fromhex(hash) for hash in proof["inclusionPath"]]
            assert verify_inclusion(proof["leafIndex"], size, leaf(record), path, root), event_id
            for at in (0, len(record) // 2, len(record) - 1):
                changed = record[:at] + bytes([record[at] ^ 1]) + record[at + 1:]
                assert not verify_inclusion(proof["leafIndex"], size, leaf(changed), path, root)
        missing = get(server, "/_cairn/transparency/proof", **{"event-id": "not-an-event"})
        assert missing.status_code == 404
        assert get(server, "/_cairn/transparency/proof").status_code == 400
        assert get(server, "/_cairn/transparency/proof", **{"event-id": "x" * 300}).status_code == 400

        # A logging trail with log file validation gets each new checkpoint in its bucket.
        s3 = client(server, "s3")
        s3.create_bucket(Bucket="e2e-checkpoints")
        ct.create_trail(Name="watched", S3BucketName="e2e-checkpoints", S3KeyPrefix="audit",
                        EnableLogFileValidation=True)
        ct.start_logging(Name="watched")
        account = json.loads(ids[next(iter(ids))])["recipientAccountId"]
        published_key = f"audit/AWSLogs/{account}/CloudTrail-Transparency/checkpoint"

        def published():
            try:
                return s3.get_object(Bucket="e2e-checkpoints", Key=published_key)["Body"].read().decode()
            except s3.exceptions.NoSuchKey:
                return None
        first = wait_for(published, what="a published checkpoint")
        assert open_checkpoint(first, key)[1] >= len(ids)
        ct.describe_trails()
        wait_for(lambda: (published() or first) != first, what="the next checkpoint published")

        old_note = get(server, "/_cairn/transparency/checkpoint").text
        _, old_size, old_root = open_checkpoint(old_note, key)
        (tmp_path / "old-checkpoint").write_text(old_note)

        # Killed mid-flight, restarted: the log goes on from where it was.
        for _ in range(5):
            ct.describe_trails()
        server.stop(signal.SIGKILL)
        server.start()
        ct = server.client()
        ct.describe_trails()
        assert get(server, "/_cairn/transparency/key").text.strip() == key

        def grown():
            note = get(server, "/_cairn/transparency/checkpoint").text
            opened = open_checkpoint(note, key)
            return opened if opened[1] >= old_size + 6 else None
        _, new_size, new_root = wait_for(grown, what="the log's growth")
        answer = get(server, "/_cairn/transparency/consistency", **{"from": old_size, "to": new_size}).json()
        path = [bytes.fromhex(hash) for hash in answer["consistencyPath"]]
        assert verify_consistency(old_size, new_size, old_root, new_root, path)
        assert not verify_consistency(old_size, new_size, hashlib.sha256(b"fork").digest(), new_root, path)
        bad = get(server, "/_cairn/transparency/consistency", **{"from": new_size + 5, "to": new_size})
        assert bad.status_code == 400

        # The level-0 tile is the leaf hashes themselves: the tree's root follows from them.
        _, size, root = open_checkpoint(get(server, "/_cairn/transparency/checkpoint").text, key)
        assert 0 < size < 256
        tile = get(server, f"/_cairn/transparency/tile/0/000.p/{size}")
        assert tile.status_code == 200 and len(tile.content) == 32 * size
        leaves = [tile.content[at:at + 32] for at in range(0, len(tile.content), 32)]
        assert mth(leaves) == root
        for answer in answers.values():
            proof = answer.json()
            assert leaves[proof["leafIndex"]] == bytes.fromhex(proof["leafHash"])
        assert get(server, "/_cairn/transparency/tile/0/000").status_code == 404  # not full yet
        assert get(server, "/_cairn/transparency/tile/0/x000").status_code == 404
        assert get(server, "/_cairn/transparency/tile/0/000.p/999").status_code == 404

        # cairn verify-event agrees, with the key kept apart and the checkpoint kept earlier.
        event_id = next(iter(ids))
        verified = subprocess.run(
            [str(BINARY), "verify-event", event_id, "--endpoint-url", server.endpoint, "--verifier-key", key,
             "--since-checkpoint", str(tmp_path / "old-checkpoint")],
            capture_output=True, text=True, env=server.env(), timeout=60,
        )
        assert verified.returncode == 0, verified
        assert f"Event {event_id}\tvalid: leaf " in verified.stdout
        assert f"Log\tconsistent: the tree of {old_size} is the start of the tree of " in verified.stdout
        # Without a key kept apart, the server's own must be asked for by name.
        keyless = subprocess.run(
            [str(BINARY), "verify-event", event_id, "--endpoint-url", server.endpoint],
            capture_output=True, text=True, env=server.env(), timeout=60,
        )
        assert keyless.returncode != 0 and "--verifier-key" in keyless.stderr
        trusting = subprocess.run(
            [str(BINARY), "verify-event", event_id, "--endpoint-url", server.endpoint, "--trust-server-key"],
            capture_output=True, text=True, env=server.env(), timeout=60,
        )
        assert trusting.returncode == 0 and "taken from the server itself" in trusting.stdout
        # Without credentials there is no record to prove.
        anonymous = subprocess.run(
            [str(BINARY), "verify-event", event_id, "--endpoint-url", server.endpoint, "--verifier-key", key],
            capture_output=True, text=True, env={**clean_env(), "HOME": str(tmp_path)}, timeout=60,
        )
        assert anonymous.returncode == 255 and "credentials" in anonymous.stderr, anonymous
        unknown = subprocess.run(
            [str(BINARY), "verify-event", "not-an-event", "--endpoint-url", server.endpoint, "--verifier-key", key],
            capture_output=True, text=True, env=server.env(), timeout=60,
        )
        assert unknown.returncode == 1 and "INVALID: not in the transparency log" in unknown.stdout
        # Another key: the checkpoint is not believed.
        other = key.split("+", 2)
        other[2] = base64.b64encode(b"\x01" + bytes(32)).decode()
        other[1] = hashlib.sha256(other[0].encode() + b"\n" + b"\x01" + bytes(32)).digest()[:4].hex()
        stranger = subprocess.run(
            [str(BINARY), "verify-event", event_id, "--endpoint-url", server.endpoint, "--verifier-key",
             "+".join(other)],
            capture_output=True, text=True, env=server.env(), timeout=60,
        )
        assert stranger.returncode == 1 and "not signed by the verifier key" in stranger.stdout
        # The signing key is the owner's only and never in the log.
        signer = server.data_dir / "transparency-key" / "signer.json"
        assert signer.stat().st_mode & 0o777 == 0o600
        secret = json.loads(signer.read_text())["pkcs8"]
        log_text = (server.data_dir.parent / "data-server.log").read_text()
        assert secret[:40] not in log_text
    finally:
        server.stop()


def test_a_record_changed_in_the_store_fails_its_proof(tmp_path):
    """One stored record changed by one character behind Cairn's back (the row rewritten in the
    store, re-compressed as plain zstd): the record Cairn now gives is no longer the
    leaf the signed tree holds, by the RFC 6962 check here and by `cairn verify-event`."""
    from conftest import rewrite_stored_record

    server = Cairn(tmp_path / "data", extra_args=["--checkpoint-interval-millis", "200"]).start()
    try:
        ct = server.client()
        for _ in range(3):
            ct.describe_trails()
        key = get(server, "/_cairn/transparency/key").text.strip()
        event = ct.lookup_events(MaxResults=1)["Events"][0]
        event_id, record = event["EventId"], event["CloudTrailEvent"]

        def proven():
            answer = signed_get(server, "/_cairn/transparency/proof", **{"event-id": event_id})
            return answer.json() if answer.status_code == 200 else None
        proof = wait_for(proven, what="the event's leaf")
        assert leaf(record.encode()).hex() == proof["leafHash"]
        server.stop()

        changed = record.replace('"eventName":"', '"eventName":"X', 1)
        assert changed != record and json.loads(changed)["eventID"] == event_id
        assert rewrite_stored_record(server.data_dir, event_id, changed) == 1

        server.start()
        ct = server.client()
        assert json.loads(ct.lookup_events(LookupAttributes=[
            {"AttributeKey": "EventId", "AttributeValue": event_id}])["Events"][0]["CloudTrailEvent"])["eventName"] \
            .startswith("X"), "the store now holds the changed record"
        proof = signed_get(server, "/_cairn/transparency/proof", **{"event-id": event_id}).json()
        assert proof["record"] == changed
        origin, size, root = open_checkpoint(proof["checkpoint"], key)
        path = [bytes.fromhex(hash) for hash in proof["inclusionPath"]]
        assert not verify_inclusion(proof["leafIndex"], size, leaf(changed.encode()), path, root)
        assert verify_inclusion(proof["leafIndex"], size, leaf(record.encode()), path, root)
        verified = subprocess.run(
            [str(BINARY), "verify-event", event_id, "--endpoint-url", server.endpoint, "--verifier-key", key],
            capture_output=True, text=True, env=server.env(), timeout=60,
        )
        assert verified.returncode == 1, verified
        assert f"Event {event_id}\tINVALID: its record is not leaf" in verified.stdout, verified.stdout
    finally:
        server.stop()


def test_the_log_can_be_turned_off(tmp_path):
    server = Cairn(tmp_path / "data", extra_args=["--checkpoint-interval-millis", "0"]).start()
    try:
        assert get(server, "/_cairn/transparency/checkpoint").status_code == 404
        assert not (server.data_dir / "transparency-key").exists()
    finally:
        server.stop()


def test_imported_events_are_leaves_too_and_are_proven(tmp_path):
    from datetime import datetime, timedelta, timezone

    from conftest import record
    from test_lookup import write_records

    server = Cairn(tmp_path / "data", extra_args=["--checkpoint-interval-millis", "200"]).start()
    try:
        when = (datetime.now(timezone.utc) - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
        imported = [record(f"e2e-imported-{n}", when) for n in range(3)]
        code, _ = server.import_files(write_records(tmp_path / "old.json.gz", imported))
        assert code == 0
        server.client().describe_trails()  # and a live event after them
        key = get(server, "/_cairn/transparency/key").text.strip()

        def proven():
            answers = [signed_get(server, "/_cairn/transparency/proof", **{"event-id": r["eventID"]})
                       for r in imported]
            return answers if all(answer.status_code == 200 for answer in answers) else None
        for answer in wait_for(proven, what="the imported events' leaves"):
            proof = answer.json()
            _, size, root = open_checkpoint(proof["checkpoint"], key)
            assert json.loads(proof["record"])["eventID"].startswith("e2e-imported-")
            path = [bytes.fromhex(hash) for hash in proof["inclusionPath"]]
            assert verify_inclusion(proof["leafIndex"], size, leaf(proof["record"].encode()), path, root)
    finally:
        server.stop()
