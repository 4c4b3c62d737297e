"""Asterisk finds its own address without DNS (issue 11, the 5-second INVITE stalls).

With RTP listening on every address, Asterisk looks for its own address for every call (the RTCP
set-up's ast_find_ourip): the host name, then A.ROOT-SERVERS.NET. With no /etc/hosts in the
sandbox both went to DNS on the pjsip serializer handling the INVITE; a lost DNS answer holds it
for the resolver's 5-s timeout. The sandbox now gets a generated /etc/hosts naming both.

- The sandbox, given no network at all, resolves the host name and the root server from that
  file; without the file (the control) the host name is not found.
- A whole payment call makes Asterisk attempt no DNS query and read no missing /etc/hosts
  (strace on the running Asterisk); the control shows the same trace sees a DNS query when a
  process in the sandbox makes one.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from bench.load.measure import process_tree
from devstack.asterisk_sandbox import ROOT_SERVER_A, AsteriskSandbox, ensure_rootfs
from ivr.config import load_settings
from tests.sipp import selfservice_calls as calls

pytestmark = pytest.mark.e2e

HOSTNAME = socket.gethostname()


@pytest.fixture
def sandbox(tmp_path) -> AsteriskSandbox:
    settings = load_settings(var_dir=tmp_path)
    sandbox = AsteriskSandbox(settings, ensure_rootfs(settings))
    sandbox.prepare()
    return sandbox


def _resolve(sandbox: AsteriskSandbox, name: str) -> subprocess.CompletedProcess:
    return subprocess.run(sandbox.command("getent", "hosts", name, network=False),
                          capture_output=True, text=True, timeout=30)


def test_the_sandbox_resolves_its_own_names_with_no_network_at_all(sandbox):
    written = dict(line.split("\t")[::-1] for line in sandbox.hosts_file.read_text().splitlines()
                   if not line.startswith("#"))
    own = _resolve(sandbox, HOSTNAME)
    assert own.returncode == 0 and own.stdout.split()[0] == written[HOSTNAME]
    root = _resolve(sandbox, ROOT_SERVER_A[1].upper())  # as Asterisk asks for it
    assert root.returncode == 0 and root.stdout.split()[0] == ROOT_SERVER_A[0]
    # Control: with no network a name the file does not hold is not found, so the answers above
    # came from the file; and without the file, the host name is not found either.
    assert _resolve(sandbox, "no-such-name.invalid").returncode == 2
    sandbox.hosts_file.unlink()
    assert _resolve(sandbox, HOSTNAME).returncode == 2


def _nameservers(root: Path) -> set[str]:
    resolv = root / "etc" / "resolv.conf"
    text = resolv.read_text() if resolv.exists() else ""
    return set(re.findall(r"(?m)^nameserver\s+(\S+)", text)) or {"127.0.0.1"}


def _lookups(trace: str, nameservers: set[str]) -> list[str]:
    """DNS queries attempted (a connect to a nameserver's port 53) and missing /etc/hosts reads
    in an strace log. pjsip's own connect to 127.0.0.1:53 picks an interface and sends nothing:
    only the resolver's nameservers count."""
    return [line for line in trace.splitlines()
            if ("htons(53)" in line and any(f'"{ns}"' in line for ns in nameservers))
            or ('"/etc/hosts"' in line and "ENOENT" in line)]


def _strace(out: Path) -> list[str]:
    """strace following every thread and child, tracing what a name lookup does."""
    return ["strace", "-f", "-e", "trace=connect,openat", "-o", str(out)]


def _attach(pid: int, out: Path) -> subprocess.Popen:
    """strace attached to ``pid`` (every thread); returns once it is attached."""
    tracer = subprocess.Popen([*_strace(out), "-p", str(pid)], stderr=subprocess.PIPE, text=True)
    assert tracer.stderr is not None
    attached = tracer.stderr.readline()
    assert "attached" in attached, attached
    return tracer


def _stop(tracer: subprocess.Popen) -> None:
    tracer.send_signal(signal.SIGINT)
    tracer.wait(timeout=30)


def test_a_payment_call_makes_asterisk_ask_dns_nothing(stack, tmp_path):
    assert stack.processes is not None, "needs the stack the suite starts (its Asterisk's pid)"
    sandbox = stack.processes.asterisk
    nameservers = _nameservers(sandbox.root)
    asterisk = [pid for pid in process_tree(stack.processes.supervisor.pid("asterisk"))
                if Path(f"/proc/{pid}/comm").read_text().strip() == "asterisk"][-1]

    trace = tmp_path / "asterisk.strace"
    tracer = _attach(asterisk, trace)
    try:
        mobile = "13800001101"
        before = stack.payment_ids()
        result = stack.call(calls.approved(mobile))
        assert result.returncode == 0, result.stdout[-2000:]
    finally:
        _stop(tracer)
    assert stack.new_payment(mobile, before)["status"] == "approved"
    assert "connect(" in trace.read_text(), "the trace saw none of Asterisk's connects"
    assert _lookups(trace.read_text(), nameservers) == []

    # Control: a lookup in the same sandbox, traced with the same options, is seen.
    control = tmp_path / "control.strace"
    subprocess.run([*_strace(control), *sandbox.command("getent", "hosts", "no-such-name.invalid")],
                   capture_output=True, timeout=60, check=False)
    assert _lookups(control.read_text(), nameservers), control.read_text()[-2000:]
