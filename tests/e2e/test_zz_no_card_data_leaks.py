"""After the calls: no test PIN, CVV2 or full card number anywhere it must never be.

Named test_zz_* so it runs after the other end-to-end tests in this folder, over everything they
left: every log (Asterisk's included), every Redis value, and all AMI traffic of the session.
(Test output itself is checked by `make test` after pytest exits: see the Makefile.)
"""

from __future__ import annotations

import subprocess

import pytest
import redis

from tests.leakcheck import scan_files, scan_text

pytestmark = pytest.mark.e2e


def _all_log_files(stack) -> list:
    var = stack.settings.var_dir
    files = [*(var / "log").glob("*.log"), *(var / "asterisk" / "log").rglob("*"),
             *(var / "e2e").glob("*.log"), var / "acquirer" / "journal.jsonl"]
    return [f for f in files if f.is_file()]


def test_logs_hold_no_card_data(stack):
    files = _all_log_files(stack)
    names = {f.name for f in files}
    # The check means something only if the logs of a real call are there.
    assert {"ivr.log", "messages.log", "journal.jsonl"} <= names, names
    assert "authorizing" in (stack.settings.var_dir / "log" / "ivr.log").read_text()
    assert scan_files(files) == []


def test_redis_holds_no_card_data(stack):
    client = redis.Redis.from_url(stack.settings.redis_url)
    dumped: list[str] = []
    for key in client.scan_iter(count=500):
        kind = client.type(key).decode()
        dumped.append(key.decode())
        if kind == "hash":
            dumped += [f"{k!r}={v!r}" for k, v in client.hgetall(key).items()]
        elif kind == "stream":
            dumped += [repr(fields) for _, fields in client.xrange(key)]
        elif kind == "string":
            dumped.append(repr(client.get(key)))
        elif kind == "zset":
            dumped += [repr(m) for m in client.zrange(key, 0, -1)]
        elif kind == "list":
            dumped += [repr(m) for m in client.lrange(key, 0, -1)]
    text = "\n".join(dumped)
    assert "pay_" in text  # the calls' payments are there to be checked
    assert scan_text(text, "redis") == []


def test_ami_traffic_holds_no_card_data(stack):
    capture = stack.settings.var_dir / "capture" / "ami.pcapng"
    result = subprocess.run(
        ["tshark", "-r", str(capture), "-T", "fields", "-e", "tcp.payload"],
        capture_output=True, text=True, timeout=120)
    payload = "".join(bytes.fromhex(line.replace(":", "")).decode("latin-1")
                      for line in result.stdout.split() if line)
    assert "Response: Success" in payload  # the capture really holds the AMI session
    assert scan_text(payload, "AMI traffic") == []
