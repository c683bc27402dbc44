"""No answer leaves before its event's sync. kill -9 leaves the page cache intact, so a crash
test alone would pass with `synchronous=OFF`; this test watches the system calls instead.
Cairn runs under strace while the real clients make gateway calls (moto upstream), STS calls,
CloudTrail lookups and calls that cause service events. For every response Cairn writes to a
client, an fsync or fdatasync of the event store's write-ahead log (on PostgreSQL: a COMMIT
sent and its answer read) must have started after the last bytes of that request were read,
and ended before the response was written: the group commit that made the request's event
durable. The checker itself is tested on made-up traces
that break the rule, so that it is known to be able to fail."""

import re

import boto3

from conftest import Cairn

SYSCALLS = "read,recvfrom,readv,write,writev,sendto,sendmsg,fsync,fdatasync"
LINE = re.compile(r"^(?P<tid>\d+)\s+(?P<time>\d+\.\d+)\s+(?P<rest>.*)$")
# strace -yy names a socket `TCP:[local->remote]`: its `->` is not the end of the name.
CALL = re.compile(r"^(?P<name>\w+)\((?P<fd>\d+)<(?P<path>(?:->|[^>])*)>(?P<args>.*)$")
RESUMED = re.compile(r"^<\.\.\. (?P<name>\w+) resumed>(?P<args>.*)$")
# A response's status line; `100 Continue` is an interim answer, sent before the body is read.
FINAL_RESPONSE = re.compile(r"HTTP/1\.[01] [2-5]\d\d")
RESULT = re.compile(r"=\s*(?P<ret>-?\d+).*<(?P<took>\d+\.\d+)>\s*$")


def parse(lines):
    """(start, end, name, fd description, return value, text) of every complete call."""
    calls, open_calls = [], {}
    for line in lines:
        match = LINE.match(line)
        if not match:
            continue
        tid, start, rest = match["tid"], float(match["time"]), match["rest"]
        resumed = RESUMED.match(rest)
        if resumed:
            if tid not in open_calls:
                continue
            start, name, fd_path, text = open_calls.pop(tid)
            rest_args = resumed["args"]
        else:
            call = CALL.match(rest)
            if not call:
                continue
            name, fd_path, rest_args, text = call["name"], call["path"], call["args"], rest
            if rest.endswith("<unfinished ...>"):
                open_calls[tid] = (start, name, fd_path, text)
                continue
        result = RESULT.search(rest_args)
        if not result:
            continue
        calls.append((start, start + float(result["took"]), name, fd_path, int(result["ret"]), text))
    return sorted(calls)


def violations(calls, port):
    """The responses written to a client before a WAL sync that began after their request."""
    client = f"TCP:[127.0.0.1:{port}->"
    syncs = [(start, end) for start, end, name, path, ret, _ in calls
             if name in ("fsync", "fdatasync") and path.endswith("events.db-wal") and ret == 0]
    syncs += postgres_commits(calls)
    last_read, answered, found, checked = {}, set(), [], 0
    for start, end, name, path, ret, text in calls:
        if not path.startswith(client) or ret <= 0:
            continue
        if name in ("read", "recvfrom", "readv"):
            last_read[path] = start
            answered.discard(path)
        elif FINAL_RESPONSE.search(text) and path in last_read and path not in answered:
            answered.add(path)
            checked += 1
            request_read = last_read[path]
            if not any(sync_start >= request_read and sync_end <= start for sync_start, sync_end in syncs):
                found.append((path, request_read, start))
    return found, checked


# The writer's one-statement commit of live events, as its Parse begins: the statement's
# name, then its text (strace shows the first 24 bytes).
ONE_STATEMENT = re.compile(r"(?P<statement>s\d+)\\0WITH counter")


def postgres_commits(calls):
    """On PostgreSQL, a group is durable when the server answers its COMMIT (with
    synchronous_commit on, it answers after its WAL flush): from the COMMIT written to a
    connection to port 5432 (the writer sends it behind the counter's update, in one message)
    until the next answer read from that connection. A group of live
    events is one autocommitted statement: from the Bind of that prepared statement (named in
    its Parse) until the answer, which the server sends once the commit is flushed."""
    commits, pending, one_statement = [], {}, set()
    for start, end, name, path, ret, text in calls:
        if "->127.0.0.1:5432]" not in path or ret <= 0:
            continue
        if name in ("write", "writev", "sendto", "sendmsg"):
            parsed = ONE_STATEMENT.search(text)
            if parsed:
                one_statement.add(parsed["statement"])
            bound = re.search(r'"B.*?\\0(s\d+)\\0', text)
            # The transaction's last message: the counter's update with COMMIT after it.
            ends = "COMMIT" in text or "UPDATE feed_counter" in text
            if ends or (bound and bound.group(1) in one_statement):
                pending[path] = start
        elif name in ("read", "recvfrom", "readv") and path in pending:
            commits.append((pending.pop(path), end))
    return commits


def made_up(*calls):
    return [f"100 {start:.6f} {text} <{took:.6f}>" for start, took, text in calls]


SOCKET = "7<TCP:[127.0.0.1:4590->127.0.0.1:50000]>"
WAL = "9</data/events.db-wal>"


def test_the_checker_finds_an_answer_sent_before_its_sync():
    synced_in_time = made_up(
        (1.0, 0.001, f'recvfrom({SOCKET}, "POST / HTTP/1.1\\r\\n"..., 8192, 0, NULL, NULL) = 400'),
        (1.1, 0.002, f"fdatasync({WAL}) = 0"),
        (1.2, 0.001, f'writev({SOCKET}, [{{iov_base="HTTP/1.1 200 OK\\r\\n"...}}], 2) = 300'),
    )
    assert violations(parse(synced_in_time), 4590) == ([], 1)
    answered_first = made_up(
        (1.0, 0.001, f'recvfrom({SOCKET}, "POST / HTTP/1.1\\r\\n"..., 8192, 0, NULL, NULL) = 400'),
        (1.1, 0.001, f'writev({SOCKET}, [{{iov_base="HTTP/1.1 200 OK\\r\\n"...}}], 2) = 300'),
        (1.2, 0.002, f"fdatasync({WAL}) = 0"),
    )
    assert len(violations(parse(answered_first), 4590)[0]) == 1
    an_earlier_groups_sync = made_up(
        (0.9, 0.2, f"fsync({WAL}) = 0"),
        (1.0, 0.001, f'recvfrom({SOCKET}, "POST / HTTP/1.1\\r\\n"..., 8192, 0, NULL, NULL) = 400'),
        (1.2, 0.001, f'writev({SOCKET}, [{{iov_base="HTTP/1.1 200 OK\\r\\n"...}}], 2) = 300'),
    )
    assert len(violations(parse(an_earlier_groups_sync), 4590)[0]) == 1, "a sync begun before the request"
    continued_then_synced = made_up(
        (1.0, 0.001, f'recvfrom({SOCKET}, "PUT /b/k HTTP/1.1\\r\\n"..., 8192, 0, NULL, NULL) = 400'),
        (1.05, 0.001, f'writev({SOCKET}, [{{iov_base="HTTP/1.1 100 Continue\\r\\n"...}}], 1) = 25'),
        (1.08, 0.001, f'recvfrom({SOCKET}, "body"..., 8192, 0, NULL, NULL) = 4'),
        (1.1, 0.002, f"fdatasync({WAL}) = 0"),
        (1.2, 0.001, f'writev({SOCKET}, [{{iov_base="HTTP/1.1 200 OK\\r\\n"...}}], 2) = 300'),
    )
    assert violations(parse(continued_then_synced), 4590) == ([], 1), "100 Continue is not an answer"
    postgres = "8<TCP:[127.0.0.1:41000->127.0.0.1:5432]>"
    committed_in_time = made_up(
        (1.0, 0.001, f'recvfrom({SOCKET}, "POST / HTTP/1.1\\r\\n"..., 8192, 0, NULL, NULL) = 400'),
        (1.1, 0.001, f'sendto({postgres}, "Q\\0\\0\\0\\vCOMMIT\\0", 12, MSG_NOSIGNAL, NULL, 0) = 12'),
        (1.15, 0.001, f'recvfrom({postgres}, "C\\0\\0\\0\\vCOMMIT\\0Z"..., 8192, 0, NULL, NULL) = 18'),
        (1.2, 0.001, f'writev({SOCKET}, [{{iov_base="HTTP/1.1 200 OK\\r\\n"...}}], 2) = 300'),
    )
    assert violations(parse(committed_in_time), 4590) == ([], 1)
    counter_then_commit = [line.replace("\\vCOMMIT\\0", "OUPDATE feed_counter") for line in committed_in_time]
    assert counter_then_commit != committed_in_time
    assert violations(parse(counter_then_commit), 4590) == ([], 1)
    answered_before_the_commit_came_back = made_up(
        (1.0, 0.001, f'recvfrom({SOCKET}, "POST / HTTP/1.1\\r\\n"..., 8192, 0, NULL, NULL) = 400'),
        (1.1, 0.001, f'sendto({postgres}, "Q\\0\\0\\0\\vCOMMIT\\0", 12, MSG_NOSIGNAL, NULL, 0) = 12'),
        (1.2, 0.001, f'writev({SOCKET}, [{{iov_base="HTTP/1.1 200 OK\\r\\n"...}}], 2) = 300'),
        (1.25, 0.001, f'recvfrom({postgres}, "C\\0\\0\\0\\vCOMMIT\\0Z"..., 8192, 0, NULL, NULL) = 18'),
    )
    assert len(violations(parse(answered_before_the_commit_came_back), 4590)[0]) == 1
    prepared = f'sendto({postgres}, "P\\0\\0\\3\\271s12\\0WITH counter AS"..., 953, MSG_NOSIGNAL, NULL, 0) = 953'
    bound = f'sendto({postgres}, "B\\0\\0\\1\\37\\0s12\\0\\0\\0\\0\\t"..., 300, MSG_NOSIGNAL, NULL, 0) = 300'
    answer = f'recvfrom({postgres}, "2\\0\\0\\0\\4D\\0\\0\\0\\20"..., 8192, 0, NULL, NULL) = 40'
    one_statement_in_time = made_up(
        (0.5, 0.001, prepared),
        (1.0, 0.001, f'recvfrom({SOCKET}, "POST / HTTP/1.1\\r\\n"..., 8192, 0, NULL, NULL) = 400'),
        (1.1, 0.001, bound),
        (1.15, 0.001, answer),
        (1.2, 0.001, f'writev({SOCKET}, [{{iov_base="HTTP/1.1 200 OK\\r\\n"...}}], 2) = 300'),
    )
    assert violations(parse(one_statement_in_time), 4590) == ([], 1)
    one_statement_answered_first = made_up(
        (0.5, 0.001, prepared),
        (1.0, 0.001, f'recvfrom({SOCKET}, "POST / HTTP/1.1\\r\\n"..., 8192, 0, NULL, NULL) = 400'),
        (1.1, 0.001, bound),
        (1.2, 0.001, f'writev({SOCKET}, [{{iov_base="HTTP/1.1 200 OK\\r\\n"...}}], 2) = 300'),
        (1.25, 0.001, answer),
    )
    assert len(violations(parse(one_statement_answered_first), 4590)[0]) == 1
    another_statement = made_up(
        (1.0, 0.001, f'recvfrom({SOCKET}, "POST / HTTP/1.1\\r\\n"..., 8192, 0, NULL, NULL) = 400'),
        (1.1, 0.001, bound.replace("s12", "s13")),
        (1.15, 0.001, answer),
        (1.2, 0.001, f'writev({SOCKET}, [{{iov_base="HTTP/1.1 200 OK\\r\\n"...}}], 2) = 300'),
    )
    assert len(violations(parse(another_statement), 4590)[0]) == 1, "a read is no commit"
    never_synced = made_up(
        (1.0, 0.001, f'recvfrom({SOCKET}, "POST / HTTP/1.1\\r\\n"..., 8192, 0, NULL, NULL) = 400'),
        (1.2, 0.001, f'write({SOCKET}, "HTTP/1.1 200 OK\\r\\n"..., 300) = 300'),
    )
    assert len(violations(parse(never_synced), 4590)[0]) == 1, "synchronous=OFF"


def test_no_answer_leaves_before_its_events_sync(tmp_path, moto):
    trace = tmp_path / "trace.txt"
    config = tmp_path / "cairn.toml"
    config.write_text(f'upstream = "{moto}"\n')
    server = Cairn(tmp_path / "data", extra_args=["--config", str(config)],
                   wrapper=["strace", "-f", "-qq", "-ttt", "-T", "-yy", "-s", "24", "-e", f"trace={SYSCALLS}",
                            "-o", str(trace)]).start()
    try:
        port = int(server.endpoint.rsplit(":", 1)[1])
        key, secret = server.credentials()

        def client(service):
            return boto3.client(service, endpoint_url=server.endpoint, region_name="us-east-1",
                                aws_access_key_id=key, aws_secret_access_key=secret)

        cloudtrail, kms, sts, sm, s3 = (client(name) for name in ("cloudtrail", "kms", "sts", "secretsmanager", "s3"))
        for round_number in range(3):
            cloudtrail.lookup_events(MaxResults=1)
            kms.create_key(Description=f"durable-{round_number}")
            sts.get_caller_identity()
            s3.create_bucket(Bucket=f"durable-{round_number}")
            s3.put_object(Bucket=f"durable-{round_number}", Key="k", Body=b"v")
            # A call whose service event is committed with it.
            sm.create_secret(Name=f"durable-{round_number}", SecretString="x")
            sm.delete_secret(SecretId=f"durable-{round_number}", RecoveryWindowInDays=7)
    finally:
        server.stop()
    found, checked = violations(parse(trace.read_text(errors="replace").splitlines()), port)
    assert checked >= 21, f"only {checked} responses seen in the trace"
    assert not found, f"{len(found)} of {checked} answers left before their event's sync: {found[:3]}"
