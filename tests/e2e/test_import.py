"""`cairn import` of real CloudTrail logs, then lookups through the real clients."""

import collections
import glob
import gzip
import json
import zipfile

import pytest

from conftest import SAMPLES, lookup_all, record

STRATUS = SAMPLES / "stratus-red-team-detonation-logs" / "detonation-logs"
OTRF_ZIP = SAMPLES / "otrf-aws-cloud-breach-s3" / "ec2_proxy_s3_exfiltration.zip"


def sample_records():
    """Every record of the shared samples, plainly read: (valid, invalid) lists."""
    valid = [r for path in sorted(glob.glob(str(STRATUS / "*.json"))) for r in json.load(open(path))]
    with zipfile.ZipFile(OTRF_ZIP) as archive:
        lines = [line for name in archive.namelist() for line in archive.read(name).decode().splitlines() if line.strip()]
    invalid = [json.loads(line) for line in lines]
    assert all("eventTime" not in r for r in invalid), "the OTRF set is known to have lost eventTime"
    return valid, invalid


@pytest.fixture
def imported(cairn, tmp_path):
    with zipfile.ZipFile(OTRF_ZIP) as archive:
        archive.extractall(tmp_path / "otrf")
    code, report = cairn.import_files(STRATUS, tmp_path / "otrf")
    return cairn, code, report


def test_import_reports_every_file_and_every_skip(imported):
    cairn, code, report = imported
    valid, invalid = sample_records()
    assert code == 0
    files = report["files"]
    assert len(files) == 35 + 1
    assert sum(f["imported"] for f in files) == len(valid) == 310
    otrf = next(f for f in files if "otrf" in f["path"])
    assert otrf["records"] == len(invalid) == 103
    assert otrf["imported"] == 0
    assert otrf["skipped"] == {"missing eventTime": 103}


def test_lookups_return_exactly_what_a_plain_count_predicts(imported):
    cairn, _, _ = imported
    valid, _ = sample_records()
    management = [r for r in valid if r.get("eventCategory", "Management") == "Management"]
    client = cairn.client()
    for attribute, field in [("EventName", lambda r: r["eventName"]), ("EventSource", lambda r: r["eventSource"]),
                             ("AccessKeyId", lambda r: r["userIdentity"].get("accessKeyId"))]:
        expected_ids = collections.defaultdict(list)
        for r in management:
            if field(r):
                expected_ids[field(r)].append(r["eventID"])
        for value, expected in expected_ids.items():
            events, _ = lookup_all(client, LookupAttributes=[{"AttributeKey": attribute, "AttributeValue": value}])
            imported_ids = [e["EventId"] for e in events if json.loads(e["CloudTrailEvent"])["userIdentity"].get("userName") != "admin"]
            assert sorted(imported_ids) == sorted(expected), (attribute, value)
            # Anything else returned is Cairn's own record of these very lookups.
            others = [e for e in events if e["EventId"] not in expected]
            assert all(e["EventName"] == "LookupEvents" and e["Username"] == "admin" for e in others)


def test_each_event_id_returns_its_record_unchanged(imported):
    cairn, _, _ = imported
    valid, _ = sample_records()
    client = cairn.client()
    for original in valid:
        events = client.lookup_events(LookupAttributes=[{"AttributeKey": "EventId", "AttributeValue": original["eventID"]}])["Events"]
        assert len(events) == 1
        assert json.loads(events[0]["CloudTrailEvent"]) == original
    # And once through the aws CLI, which prints the string exactly as received.
    first = valid[0]
    out = cairn.aws_json("cloudtrail", "lookup-events", "--lookup-attributes", f"AttributeKey=EventId,AttributeValue={first['eventID']}")
    assert json.loads(out["Events"][0]["CloudTrailEvent"]) == first


def test_importing_twice_adds_nothing_even_while_serving(imported):
    cairn, _, _ = imported
    code, report = cairn.import_files(STRATUS)
    assert code == 0
    assert sum(f["imported"] for f in report["files"]) == 0
    assert sum(sum(f["skipped"].values()) for f in report["files"]) == 310


def test_broken_files_are_rejected_whole(cairn, tmp_path):
    good = json.dumps({"Records": [record(f"b{i}", "2024-01-01T00:00:00Z") for i in range(20)]}).encode()
    (tmp_path / "truncated.json.gz").write_bytes(gzip.compress(good)[:-30])
    (tmp_path / "broken.json").write_bytes(good[:-40])
    (tmp_path / "fine.json").write_bytes(good)
    code, report = cairn.import_files(tmp_path / "truncated.json.gz", tmp_path / "broken.json", tmp_path / "fine.json")
    assert code == 1
    by_name = {f["path"].rsplit("/", 1)[1]: f for f in report["files"]}
    assert "truncated" in by_name["truncated.json.gz"]["error"]
    assert "truncated" in by_name["broken.json"]["error"]
    assert by_name["fine.json"]["imported"] == 20
    events, _ = lookup_all(cairn.client(), LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "DescribeThing"}])
    assert len(events) == 20


def test_text_report_names_reasons(cairn, tmp_path):
    import subprocess
    from conftest import BINARY, clean_env
    bad = record("x1", "not a time")
    (tmp_path / "one.json").write_text(json.dumps([bad, record("x2", "2024-01-01T00:00:00Z")]))
    result = subprocess.run([str(BINARY), "import", "--data-dir", str(cairn.data_dir), "--retention-days", "0",
                             str(tmp_path / "one.json")], capture_output=True, text=True, env=clean_env(cairn.data_dir))
    assert result.returncode == 0
    assert "2 records, 1 imported, 1 skipped" in result.stdout
    assert "not an ISO 8601 UTC timestamp" in result.stdout


def test_a_file_larger_than_memory_budget_streams(cairn, tmp_path):
    """A file over the 64 MiB in-memory limit is streamed (checked, then loaded) with bounded
    memory: peak RSS stays well under the file's size."""
    import os
    import subprocess
    from conftest import BINARY, clean_env
    path = tmp_path / "big.json"
    line_count = 0
    with open(path, "w") as out:
        out.write('{"Records": [')
        while out.tell() < 200 * 1024 * 1024:
            entry = record(f"big-{line_count:07d}", "2024-01-01T00:00:00Z",
                           requestParameters={"padding": "x" * 1500, "n": line_count})
            out.write(("," if line_count else "") + json.dumps(entry))
            line_count += 1
        out.write("]}")
    size = path.stat().st_size
    stdout_path, stderr_path = tmp_path / "import.out", tmp_path / "import.err"
    with open(stdout_path, "w") as stdout, open(stderr_path, "w") as stderr:
        process = subprocess.Popen([str(BINARY), "import", "--data-dir", str(cairn.data_dir), "--retention-days", "0",
                                    "--json", str(path)], stdout=stdout, stderr=stderr, env=clean_env(cairn.data_dir))
        # wait4 reports this child's own peak RSS (RUSAGE_CHILDREN would include every
        # earlier child of the test process, moto_server among them).
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    assert process.returncode == 0, stderr_path.read_text()
    report = json.loads(stdout_path.read_text())["files"][0]
    assert report["imported"] == line_count
    peak_bytes = usage.ru_maxrss * 1024
    assert peak_bytes < size * 0.75, f"peak RSS {peak_bytes} for a {size}-byte file"
