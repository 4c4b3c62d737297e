"""The whole suite in parallel shards, each in its own network namespace with its own stack.

An end-to-end test spends most of its time waiting on real calls: prompts play in real time, a
callback rings, a phone keys its digits. Run one after another they took most of an hour on
two cores that sat nearly idle. Here the end-to-end files are dealt into shards; each shard is
one pytest session in a network namespace of its own (``unshare -n``: a private loopback, so its
Asterisk, Redis, ivr service, SIP edge, SIPp callers and softphones use the usual fixed ports
without meeting another shard's) and a var directory of its own (``VOICEPAY_VAR_DIR``: its own
keys, Redis data, logs and captures), so no test sees another shard's calls or payments. Each
shard ends with the leak scan over everything it left (test_zz_no_card_data_leaks.py), and the
unit and integration tests are one more shard.

Shards are dealt by the seconds each file took when last measured (``FILE_SECONDS``; a file
missing there counts as ``UNMEASURED_SECONDS``), longest first onto the least loaded shard.
What a shard printed is printed whole when it ends, then a table of the shards; the exit status
is pytest's worst. ``make test`` runs this and scans its output for card data afterwards.

    python -m tests.suite [--shards N] [pytest arguments, given to every shard]
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

from ivr.config import REPO_ROOT

E2E_DIR = Path("tests/e2e")
# Runs last in every shard: it reads everything the shard's calls left.
LEAK_SCAN = E2E_DIR / "test_zz_no_card_data_leaks.py"
UNIT_AND_INTEGRATION = [Path("tests/unit"), Path("tests/integration")]

# Seconds each end-to-end file takes (`python -m tests.suite` prints them at the end of a run:
# paste them here when files change). Measured 2026-11-27, four shards, 2-core machine.
FILE_SECONDS: dict[str, float] = {
    "tests/e2e/test_dtmf_modes.py": 565,
    "tests/e2e/test_codecs_and_networks.py": 495,
    "tests/e2e/test_talkthrough_calls.py": 295,
    "tests/e2e/test_callback_calls.py": 353,
    "tests/e2e/test_oneline_calls.py": 312,
    "tests/e2e/test_selfservice_calls.py": 284,
    "tests/e2e/test_softphones.py": 237,
    "tests/e2e/test_talkthrough_console.py": 180,  # measured alone, 2026-11-28
    "tests/e2e/test_talkthrough_load.py": 81,
    "tests/e2e/test_talkthrough_inband.py": 148,
    "tests/e2e/test_asterisk_security.py": 132,
    "tests/e2e/test_sip_edge.py": 138,
    "tests/e2e/test_overload.py": 88,  # measured alone in its own namespace, 2026-11-28
    "tests/e2e/test_faults_ivr_killed.py": 106,
    "tests/e2e/test_faults_asterisk.py": 76,
    "tests/e2e/test_faults_acquirer.py": 91,
    "tests/e2e/test_key_rotation_call.py": 86,
    "tests/e2e/test_settlement_day.py": 82,
    "tests/e2e/test_dialplan_lines.py": 80,
    "tests/e2e/test_step_up_calls.py": 76,
    "tests/e2e/test_console.py": 88,
    "tests/e2e/test_talkthrough_agent_phone.py": 45,
    "tests/e2e/test_faults_redis_restart.py": 53,
    "tests/e2e/test_asterisk_own_address.py": 57,
    "tests/e2e/test_faults_sigterm.py": 48,
    "tests/e2e/test_refund_calls.py": 41,
    "tests/e2e/test_faults_two_instances.py": 36,
    "tests/e2e/test_rtp_ports.py": 0,
    "tests/e2e/test_faults_checker.py": 1,
}
UNMEASURED_SECONDS = 120.0
# A shard's network: its loopback, and one Ethernet interface (a veth pair, both ends inside) like
# any host has: baresip and linphonec take their local address from one and will not register
# without it, and Asterisk seeds its entity id from its MAC. No route leads out: nothing a test
# runs can reach, or wait on, the outside world (a DNS lookup fails at once).
NAMESPACE_SETUP = ("ip link set lo up && ip link add eth0 type veth peer name eth1 && "
                   "ip addr add 198.51.100.2/24 dev eth0 && ip link set eth1 up && "
                   "ip link set eth0 up")
DEFAULT_SHARDS = 4


@dataclass
class Shard:
    name: str
    paths: list[Path]
    seconds: float = 0.0
    niceness: int = 0
    var_dir: Path = field(init=False)
    process: subprocess.Popen | None = None
    started: float = 0.0
    took: float = 0.0
    status: int | None = None

    def __post_init__(self) -> None:
        self.var_dir = REPO_ROOT / "var" / "shards" / self.name

    @property
    def output(self) -> Path:
        return self.var_dir / "log" / "test-output.log"

    @property
    def junit(self) -> Path:
        return self.var_dir / "junit.xml"


def seconds_of(path: Path) -> float:
    """What ``path`` took when last measured (``UNMEASURED_SECONDS`` if never)."""
    return FILE_SECONDS.get(path.as_posix(), UNMEASURED_SECONDS)


def deal(files: list[Path], count: int) -> list[list[Path]]:
    """``files`` into ``count`` lists of about equal measured seconds (longest first, each onto
    the list with the fewest seconds so far), each list in the suite's usual file order."""
    groups: list[list[Path]] = [[] for _ in range(count)]
    totals = [0.0] * count
    for path in sorted(files, key=lambda f: (-seconds_of(f), f.as_posix())):
        lightest = totals.index(min(totals))
        groups[lightest].append(path)
        totals[lightest] += seconds_of(path)
    return [sorted(group) for group in groups]


def plan(count: int) -> list[Shard]:
    files = sorted(p.relative_to(REPO_ROOT) for p in (REPO_ROOT / E2E_DIR).glob("test_*.py"))
    calls = [f for f in files if f != LEAK_SCAN]
    # The unit and integration tests only use the CPU; the calls beside them are real time (a
    # prompt plays for as long as it lasts, a phone keys on its own clock): they yield to the calls.
    shards = [Shard("unit", UNIT_AND_INTEGRATION, niceness=10)]
    for index, group in enumerate(deal(calls, count), start=1):
        if group:
            shards.append(Shard(f"e2e-{index}", [*group, LEAK_SCAN],
                                seconds=sum(map(seconds_of, group))))
    return shards


def _start(shard: Shard, pytest_args: list[str]) -> None:
    shutil.rmtree(shard.var_dir / "e2e", ignore_errors=True)
    (shard.var_dir / "log").mkdir(parents=True, exist_ok=True)
    shard.junit.unlink(missing_ok=True)
    env = dict(os.environ, VOICEPAY_VAR_DIR=str(shard.var_dir))
    python = sys.executable
    pytest = [python, "-m", "pytest", "-p", "no:cacheprovider", "-ra",
              f"--junitxml={shard.junit}", *pytest_args, *map(str, shard.paths)]
    # A shard's stack needs its keys and Asterisk's configuration in its own var directory; the
    # prompts and Asterisk's root filesystem it shares were made by `make test`'s prepare.
    script = (f"{NAMESPACE_SETUP} && "
              f"{shlex.quote(python)} -m devstack.stack prepare >/dev/null && "
              f"exec {shlex.join(pytest)}")
    with shard.output.open("w") as out:
        shard.process = subprocess.Popen(["nice", "-n", str(shard.niceness),
                                          "unshare", "--net", "bash", "-c", script], cwd=REPO_ROOT,
                                         env=env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True, preexec_fn=interruptible)
    shard.started = time.monotonic()


def interruptible() -> None:
    """Run in a shard's process before it starts: SIGINT back to its default. A runner started in
    the background (`nohup`, `&`) hands its children SIGINT ignored, and a shell or pytest that
    starts with SIGINT ignored cannot take it back: the interrupt passed on would stop no stack,
    and every shard would be killed after _interrupt's wait instead."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def file_seconds(shard: Shard) -> dict[str, float]:
    """Seconds per test file in the shard's JUnit report (setup, call and teardown)."""
    if not shard.junit.exists():
        return {}
    seconds: dict[str, float] = {}
    for case in ElementTree.parse(shard.junit).iter("testcase"):
        module = case.get("classname", "").split(".")
        path = "/".join(module[:next((i for i, m in enumerate(module) if m.startswith("test_")),
                                     len(module) - 1) + 1]) + ".py"
        seconds[path] = seconds.get(path, 0.0) + float(case.get("time", 0))
    return seconds


def run(shards: list[Shard], pytest_args: list[str]) -> int:
    if not shutil.which("unshare"):
        print("unshare (util-linux) is missing: the shards cannot have network namespaces")
        return 2
    for shard in shards:
        _start(shard, pytest_args)
        what = ", ".join(p.name for p in shard.paths) or " ".join(pytest_args)
        measured = f" ({shard.seconds:.0f} s when last measured)" if shard.seconds else ""
        print(f"shard {shard.name}: {what}{measured}", flush=True)
    try:
        _wait_for(shards)
    except BaseException:
        _interrupt([s for s in shards if s.process is not None and s.process.poll() is None])
        raise
    measured: dict[str, float] = {}
    for shard in shards:
        measured.update(file_seconds(shard))
    print("\nseconds per end-to-end file (FILE_SECONDS in tests/suite.py):")
    for path, seconds in sorted(measured.items(), key=lambda item: -item[1]):
        if path.startswith(E2E_DIR.as_posix()):
            print(f'    "{path}": {seconds:.0f},')
    print("\n======== shards ========")
    for shard in shards:
        print(f"{shard.name:8} exit {shard.status}  {shard.took:6.0f} s  "
              f"{', '.join(p.name for p in shard.paths)}")
    # Last, so that the end of a long output (all a CI page may keep) says what failed and why.
    for shard in shards:
        if shard.status:
            print(f"\n======== what failed in shard {shard.name} ========")
            print(failure_summary(shard.output.read_text(errors="replace")))
    return max(shard.status or 0 for shard in shards)


def failure_summary(output: str) -> str:
    """What failed in a shard, short: each failure's heading, its ``E`` lines (the assertion and
    its explanation, at most a dozen) and where it was raised, then pytest's own summary; or the
    output's last lines when pytest ended without one (a crash, a timeout)."""
    lines = output.splitlines()
    summary = next((i for i, line in enumerate(lines) if "short test summary info" in line), None)
    if summary is None:
        return "\n".join(lines[-30:])
    failures = next((i for i, line in enumerate(lines) if re.fullmatch(r"=+ FAILURES =+", line)),
                    summary)
    short: list[str] = []
    explained = 0
    for line in lines[failures + 1:summary]:
        if re.fullmatch(r"_{3,} .+ _{3,}", line):  # a failure's heading: the test's name
            short.append(line)
            explained = 0
        elif line.startswith("E ") and explained < 12:
            short.append(line)
            explained += 1
        elif re.match(r"\S+\.py:\d+: \w+", line):  # where it was raised
            short.append(line)
    return "\n".join(short + lines[summary + 1:])


def _wait_for(shards: list[Shard]) -> None:
    """Until every shard has ended; each one's output is printed whole as it ends."""
    running = list(shards)
    while running:
        for shard in list(running):
            assert shard.process is not None
            if shard.process.poll() is None:
                continue
            running.remove(shard)
            shard.status = shard.process.returncode
            shard.took = time.monotonic() - shard.started
            print(f"\n======== shard {shard.name} ({shard.took:.0f} s, pytest exit "
                  f"{shard.status}) ========", flush=True)
            sys.stdout.write(shard.output.read_text(errors="replace"))
            sys.stdout.flush()
        time.sleep(1)


def _interrupt(running: list[Shard]) -> None:
    """Ctrl-C (or SIGTERM) reaches this runner only, each shard being a session of its own: pass it
    on as SIGINT, which lets each pytest stop its stack, then make sure nothing is left."""
    for shard in running:
        assert shard.process is not None
        os.killpg(shard.process.pid, signal.SIGINT)
    deadline = time.monotonic() + 60
    for shard in running:
        assert shard.process is not None
        try:
            shard.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(shard.process.pid, signal.SIGKILL)


def named_paths(pytest_args: list[str]) -> list[str]:
    """The test paths (or node ids) among pytest's arguments, e.g. ``tests/unit`` or
    ``tests/e2e/test_console.py::test_x``."""
    return [arg for arg in pytest_args
            if not arg.startswith("-") and (REPO_ROOT / arg.split("::")[0]).exists()]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.suite", description=__doc__.split("\n")[0])
    parser.add_argument("--shards", type=int, default=DEFAULT_SHARDS,
                        help="end-to-end shards (the unit and integration tests are one more)")
    args, pytest_args = parser.parse_known_args(argv)
    # SIGTERM as an exception, so the shards get the same interrupt as on Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    if named_paths(pytest_args):
        # A part of the suite named on the command line runs as it is asked for: one pytest
        # session (one stack if it places calls) in a namespace of its own.
        return run([Shard("selected", [])], pytest_args)
    return run(plan(max(1, args.shards)), pytest_args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
