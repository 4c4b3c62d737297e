"""The stack's supervisor, driven with plain processes (python one-liners, sh): real children,
real signals, real process groups. Back-off figures are read from the supervisor's own record of
what it scheduled, never from a clock."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.load.measure import nice_value
from devstack.supervisor import Backoff, ProcessSpec, Supervisor, SupervisorError

# Short back-off so a crash loop is a few hundred milliseconds; the cap is reached at attempt 3.
QUICK = Backoff(first=0.05, factor=2.0, cap=0.2, reset_after=30.0)

# Listens on a port (its readiness), unless the crash file exists: then it exits with 3 at once.
LISTENER = """
import os, socket, sys, time
if os.path.exists(sys.argv[2]):
    sys.exit(3)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
time.sleep(600)
"""

# Writes its name to a shared file when it gets SIGTERM (the order of stopping, seen from the
# children), and a ready file once its handler is in place.
RECORDS_SIGTERM = """
import signal, sys, time
def stopped(*_):
    with open(sys.argv[2], "a") as out:
        out.write(sys.argv[1] + "\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, stopped)
open(sys.argv[3], "w").close()
time.sleep(600)
"""

IGNORES_SIGTERM = """
import signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
open(sys.argv[1], "w").close()
time.sleep(600)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _until(condition: Callable[[], bool], timeout: float = 20) -> None:
    """Wait for a state, polled: fails the test if it never comes."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.02)


@pytest.fixture
def supervisor() -> Iterator[Supervisor]:
    sup = Supervisor(backoff=QUICK, poll_interval=0.02)
    try:
        yield sup
    finally:
        sup.stop()


def _listener(tmp_path: Path, name: str = "listener") -> tuple[ProcessSpec, int, Path]:
    port, crash = _free_port(), tmp_path / f"{name}.crash"
    spec = ProcessSpec(name, [sys.executable, "-c", LISTENER, str(port), str(crash)],
                       tmp_path / f"{name}.log", lambda: _port_open(port), stop_timeout=5)
    return spec, port, crash


def test_a_killed_child_is_restarted_and_ready_again(supervisor: Supervisor, tmp_path: Path):
    spec, port, _ = _listener(tmp_path)
    supervisor.start(spec)
    first = supervisor.pid("listener")

    second = supervisor.kill("listener", signal.SIGKILL, timeout=20)

    assert second != first and not _alive(first)
    assert _port_open(port)
    [restart] = supervisor.restarts
    assert (restart.name, restart.attempt, restart.exit) == ("listener", 1, "killed by SIGKILL")
    # The child's log says where one run ended and the next began.
    assert "restart 1 after killed by SIGKILL" in spec.log_path.read_text()


def test_back_off_grows_while_a_child_keeps_crashing_then_it_comes_back(
        supervisor: Supervisor, tmp_path: Path):
    spec, port, crash = _listener(tmp_path)
    supervisor.start(spec)
    crash.touch()  # from now on every start exits with 3 at once

    os.kill(supervisor.pid("listener"), signal.SIGKILL)
    _until(lambda: len(supervisor.restarts) >= 6)
    crash.unlink()
    supervisor.wait_ready("listener", timeout=20)

    schedule = supervisor.restarts[:6]
    assert [r.attempt for r in schedule] == [1, 2, 3, 4, 5, 6]
    assert [r.delay for r in schedule] == [0.05, 0.1, 0.2, 0.2, 0.2, 0.2]  # doubling, capped
    assert schedule[0].exit == "killed by SIGKILL"
    assert {r.exit for r in schedule[1:]} == {"exit code 3"}
    assert _port_open(port)


def _nice(pid: int) -> int:
    return nice_value(Path(f"/proc/{pid}/stat").read_text())


def test_a_process_started_nice_yields_and_so_does_its_sessions_autogroup(
        supervisor: Supervisor, tmp_path: Path):
    port = _free_port()
    spec = ProcessSpec("yielding", [sys.executable, "-c", LISTENER, str(port),
                                    str(tmp_path / "never")],
                       tmp_path / "yielding.log", lambda: _port_open(port), nice=7)
    supervisor.start(spec)
    pid = supervisor.pid("yielding")
    assert _nice(pid) == 7
    assert os.getsid(pid) == pid  # a session of its own ...
    autogroup = Path(f"/proc/{pid}/autogroup")
    if Path("/proc/sys/kernel/sched_autogroup_enabled").exists():
        # ... whose autogroup, what the scheduler weighs against the other sessions, yields too
        assert autogroup.read_text().split()[-1] == "7"
    assert _nice(os.getpid()) == os.getpriority(os.PRIO_PROCESS, 0)  # the supervisor untouched


def test_nice_is_the_value_asked_for_whatever_the_supervisor_runs_at(tmp_path: Path):
    # The suite runs its unit shard at nice 10 and nice(1) adjusts what a child inherits: a
    # process asked for 7 ran at 17. Here a supervisor running at its own nice + 3 starts one
    # asked for 9, and it runs at 9.
    port = _free_port()
    script = f"""
import os, socket, sys
from pathlib import Path
sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
from bench.load.measure import nice_value
from devstack.supervisor import ProcessSpec, Supervisor
os.nice(3)
def up():
    try:
        socket.create_connection(("127.0.0.1", {port}), timeout=0.5).close()
        return True
    except OSError:
        return False
sup = Supervisor()
try:
    sup.start(ProcessSpec("nine", [sys.executable, "-c", {LISTENER!r}, "{port}",
                                   {str(tmp_path / "never")!r}],
                          Path({str(tmp_path / "nine.log")!r}), up, nice=9))
    stat = Path(f"/proc/{{sup.pid('nine')}}/stat").read_text()
    print(nice_value(stat), os.getpriority(os.PRIO_PROCESS, 0))
finally:
    sup.stop()
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    child, supervisor = done.stdout.split()
    assert int(supervisor) == os.getpriority(os.PRIO_PROCESS, 0) + 3
    assert int(child) == 9


def test_nice_is_within_what_nice_accepts():
    with pytest.raises(ValueError, match="nice must be -20 to 19"):
        ProcessSpec("eager", ["true"], Path("/dev/null"), lambda: True, nice=-21)


def test_back_off_starts_again_after_a_long_enough_run():
    backoff = Backoff(first=1, factor=2, cap=30, reset_after=60)
    assert [backoff.delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff.next_attempt(5, uptime=59.9) == 6
    assert backoff.next_attempt(5, uptime=60) == 1


def test_stop_terminates_children_in_reverse_order(supervisor: Supervisor, tmp_path: Path):
    stopped = tmp_path / "stopped.txt"
    for name in ("first", "second", "third"):
        ready = tmp_path / f"{name}.ready"
        supervisor.start(ProcessSpec(
            name, [sys.executable, "-c", RECORDS_SIGTERM, name, str(stopped), str(ready)],
            tmp_path / f"{name}.log", ready.exists))
    pids = [supervisor.pid(name) for name in ("first", "second", "third")]

    supervisor.stop()

    assert stopped.read_text().split() == ["third", "second", "first"]
    assert not any(_alive(pid) for pid in pids)
    assert supervisor.restarts == []  # a requested stop is not a crash


def test_a_child_that_ignores_sigterm_is_killed_after_its_timeout(
        supervisor: Supervisor, tmp_path: Path):
    ready = tmp_path / "stubborn.ready"
    supervisor.start(ProcessSpec("stubborn", [sys.executable, "-c", IGNORES_SIGTERM, str(ready)],
                                 tmp_path / "stubborn.log", ready.exists, stop_timeout=0.3))
    pid = supervisor.pid("stubborn")

    supervisor.stop_component("stubborn")

    [ended] = supervisor.exits
    assert (ended.pid, ended.returncode, ended.requested) == (pid, -signal.SIGKILL, True)
    assert not _alive(pid)


def test_a_stopped_component_stays_down_until_started_again(
        supervisor: Supervisor, tmp_path: Path):
    spec, port, _ = _listener(tmp_path)
    supervisor.start(spec)

    supervisor.stop_component("listener")
    assert not _port_open(port)
    assert supervisor.restarts == []

    supervisor.start_component("listener")
    assert _port_open(port)


def test_the_whole_process_group_goes_with_its_leader(supervisor: Supervisor, tmp_path: Path):
    # sh starts a grandchild and is then killed: the grandchild must not outlive it (it would
    # hold the port the restarted process needs).
    grandchild = tmp_path / "grandchild.pid"
    supervisor.start(ProcessSpec("family", ["sh", "-c", f"sleep 600 & echo $! > {grandchild}; wait"],
                                 tmp_path / "family.log",
                                 lambda: grandchild.exists() and grandchild.read_text().strip() != ""))
    orphan = int(grandchild.read_text())

    supervisor.kill("family", signal.SIGKILL, timeout=20)

    assert not _alive(orphan)


def test_a_child_that_dies_before_it_is_ready_fails_the_start(
        supervisor: Supervisor, tmp_path: Path):
    with pytest.raises(SupervisorError, match=r"broken did not start \(exit code 3\)"):
        supervisor.start(ProcessSpec("broken", ["sh", "-c", "exit 3"], tmp_path / "broken.log",
                                     lambda: False))
    assert supervisor.restarts == []


def test_a_child_never_ready_fails_the_start_and_is_not_left_running(
        supervisor: Supervisor, tmp_path: Path):
    with pytest.raises(SupervisorError, match=r"mute did not start \(not ready after 0.3s\)"):
        supervisor.start(ProcessSpec("mute", ["sleep", "600"], tmp_path / "mute.log",
                                     lambda: False, start_timeout=0.3))
    [ended] = supervisor.exits
    assert ended.returncode == -signal.SIGKILL and not _alive(ended.pid)
