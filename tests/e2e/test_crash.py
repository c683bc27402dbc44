"""kill -9 while clients write: every event whose request was answered survives."""

import json
import signal
import threading
import time

import botocore.exceptions

from conftest import Cairn, lookup_all


def test_answered_events_survive_kill_9(tmp_path):
    server = Cairn(tmp_path / "data").start()
    answered = []
    lock = threading.Lock()
    stop = threading.Event()

    def client_loop():
        client = server.client()
        while not stop.is_set():
            try:
                response = client.lookup_events(MaxResults=1)
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
                return
            with lock:
                answered.append(response["ResponseMetadata"]["RequestId"])

    threads = [threading.Thread(target=client_loop) for _ in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(3)
    server.process.send_signal(signal.SIGKILL)
    server.process.wait()
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    assert len(answered) > 50, "the clients barely ran"

    restarted = Cairn(tmp_path / "data").start()
    try:
        events, _ = lookup_all(restarted.client(),
                               LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "LookupEvents"}])
        recorded = {json.loads(event["CloudTrailEvent"])["requestID"] for event in events}
        missing = set(answered) - recorded
        assert not missing, f"{len(missing)} of {len(answered)} answered calls were lost"
    finally:
        restarted.stop()
