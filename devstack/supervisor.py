"""Keep a few long-running processes up, the way systemd would, for a stack on one machine.

Each process runs in its own process group (so a signal reaches everything it started, and the
terminal's Ctrl-C reaches only us). Processes start one after the other, each waited for until its
readiness probe says yes. One that dies on its own is restarted after an exponential back-off
(a crash loop is retried forever but never spun); one that stays up long enough earns a fresh
schedule. ``stop()`` stops them in reverse order: SIGTERM, its stop timeout, then SIGKILL.

This module knows nothing of voicepay: devstack/stack.py says which processes and how to tell
they are ready, and tests/unit/test_supervisor.py drives it with plain processes.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Backoff", "ProcessSpec", "Restart", "Exit", "Supervisor", "SupervisorError",
           "describe_exit"]

log = logging.getLogger("devstack.supervisor")


class SupervisorError(RuntimeError):
    """A process did not start or come back in time; the message names it and its log file."""


@dataclass(frozen=True)
class Backoff:
    """Restart n of a crash streak waits ``first * factor**(n-1)`` seconds, at most ``cap``."""

    first: float = 1.0
    factor: float = 2.0
    cap: float = 30.0
    # A process that stayed up this long before it died is not crash-looping: the next
    # restart is attempt 1 again.
    reset_after: float = 60.0

    def next_attempt(self, previous: int, uptime: float) -> int:
        return 1 if uptime >= self.reset_after else previous + 1

    def delay(self, attempt: int) -> float:
        return min(self.cap, self.first * self.factor ** (attempt - 1))


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: list[str]
    log_path: Path
    ready: Callable[[], bool]
    # SIGTERM, then this long to exit (a service that drains its work needs its drain time),
    # then SIGKILL.
    stop_timeout: float = 10.0
    # How long a start or a restart may take to become ready; a restart that hangs is killed
    # and counts as a crash.
    start_timeout: float = 90.0
    # Run before every start, e.g. to remove a control socket a killed process left behind.
    before_start: Callable[[], None] | None = None
    cwd: Path | None = None
    env: Mapping[str, str] | None = None
    # Its priority under contention, a nice value (-20 to 19; below 0 is ahead of the others and
    # needs root or CAP_SYS_NICE: without it nice(1) says so in the process's log and it keeps
    # the supervisor's), set for the process and for its session's autogroup, which is what the
    # kernel weighs between sessions. None: the supervisor's own, as any child inherits it.
    nice: int | None = None

    def __post_init__(self) -> None:
        if self.nice is not None and not -20 <= self.nice <= 19:
            raise ValueError(f"{self.name}: nice must be -20 to 19, not {self.nice}")


@dataclass(frozen=True)
class Restart:
    """One scheduled restart, as recorded in :attr:`Supervisor.restarts`."""

    name: str
    attempt: int
    delay: float
    exit: str


@dataclass(frozen=True)
class Exit:
    """One process that ended, as recorded in :attr:`Supervisor.exits`."""

    name: str
    pid: int
    returncode: int
    requested: bool  # stopped by us, not died on its own


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


def _set_session_priority(pid: int, nice: int) -> None:
    """Give the session ``pid`` leads (a new one: start_new_session) the ``nice`` value.

    With autogrouping on (most kernels), the scheduler first shares the cores between sessions
    and only then between the threads of one, so a process's own nice value does not weigh it
    against another session's; the session's autogroup does, one for all its processes and
    threads, whenever they start."""
    try:
        Path(f"/proc/{pid}/autogroup").write_text(str(nice))
    except OSError:
        # No autogrouping (kernel option, or off): nice(1)'s per-thread value is what counts.
        # Not allowed (below 0 without the privilege): nice(1) has said so in the log.
        log.debug("autogroup of %d left as it is", pid)


def _has_exited(pid: int) -> bool:
    """True once ``pid`` has ended, without reaping it: while it is an unreaped zombie its pid,
    and so its process group id, cannot be reused, so killing the group stays safe."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None


@dataclass(eq=False)
class _Child:
    spec: ProcessSpec
    process: subprocess.Popen | None = None
    # "starting" -> "ready" -> "exited" -> "backoff" -> "starting" ...; "stopped" when asked.
    state: str = "stopped"
    generation: int = 0  # how many times it was spawned
    attempt: int = 0  # restarts in the current crash streak
    started_at: float = 0.0
    wanted: bool = False  # False: do not restart it
    wake: threading.Event = field(default_factory=threading.Event)  # cuts a back-off short
    keeper: threading.Thread | None = None
    failure: str = ""  # why the last first start failed


class Supervisor:
    def __init__(self, backoff: Backoff = Backoff(), poll_interval: float = 0.2) -> None:
        self.backoff = backoff
        self.poll_interval = poll_interval
        self.restarts: list[Restart] = []
        self.exits: list[Exit] = []
        self._children: dict[str, _Child] = {}  # in start order
        self._changed = threading.Condition()

    # ---- the public verbs ---------------------------------------------------------------------
    def start(self, spec: ProcessSpec) -> None:
        """Start ``spec`` and return once it is ready. A process that exits or is not ready in
        time is a start failure (SupervisorError), not something to retry: it is a set-up error."""
        with self._changed:
            if spec.name in self._children and self._children[spec.name].wanted:
                raise SupervisorError(f"{spec.name} is already running")
            child = self._children.setdefault(spec.name, _Child(spec))
            child.spec = spec
        self._start_child(child)

    def start_component(self, name: str) -> None:
        """Start again a process stopped with :meth:`stop_component`, and wait until it is ready."""
        self._start_child(self._child(name))

    def stop_component(self, name: str, signum: int = signal.SIGTERM) -> None:
        """Stop one process and keep it down (no restart) until :meth:`start_component`."""
        child = self._child(name)
        with self._changed:
            child.wanted = False
            child.wake.set()
            process = child.process
        if process is not None:
            self._terminate(child, process, signum)
        if child.keeper is not None:
            child.keeper.join()
            child.keeper = None
        with self._changed:
            child.state = "stopped"
            self._changed.notify_all()

    def stop(self) -> None:
        """Stop every process, the last started first."""
        for name in reversed(list(self._children)):
            self.stop_component(name)

    def kill(self, name: str, signum: int, timeout: float | None = None) -> int:
        """Send ``signum`` to the process group of ``name`` (as a crash or an OOM kill would hit
        it), then wait until the supervisor has restarted it and it is ready. Returns its new pid."""
        child = self._child(name)
        with self._changed:
            if child.process is None or not child.wanted:
                raise SupervisorError(f"{name} is not running")
            generation = child.generation
            self._signal(child.process, signum)
        self._wait(child, lambda: child.generation > generation and child.state == "ready",
                   timeout, "back")
        return self.pid(name)

    def wait_ready(self, name: str, timeout: float | None = None) -> None:
        child = self._child(name)
        self._wait(child, lambda: child.state == "ready", timeout, "ready")

    def pid(self, name: str) -> int:
        process = self._child(name).process
        if process is None:
            raise SupervisorError(f"{name} is not running")
        return process.pid

    def names(self) -> list[str]:
        return list(self._children)

    # ---- inside -------------------------------------------------------------------------------
    def _child(self, name: str) -> _Child:
        try:
            return self._children[name]
        except KeyError:
            raise SupervisorError(f"no process named {name!r}") from None

    def _wait(self, child: _Child, done: Callable[[], bool], timeout: float | None,
              what: str) -> None:
        timeout = child.spec.start_timeout + self.backoff.cap if timeout is None else timeout
        with self._changed:
            if not self._changed.wait_for(done, timeout):
                raise SupervisorError(f"{child.spec.name} not {what} after {timeout:.0f}s "
                                      f"(state {child.state}); see {child.spec.log_path}")

    def _start_child(self, child: _Child) -> None:
        """Spawn the process and hand it to its keeper thread; return once it is ready."""
        with self._changed:
            if child.wanted:
                raise SupervisorError(f"{child.spec.name} is already running")
            child.wanted = True
            child.wake.clear()
            child.attempt = 0
            try:
                process = self._spawn(child, note="start")
            except OSError as exc:
                child.wanted = False
                raise SupervisorError(f"{child.spec.name} could not be started: {exc}") from None
            child.keeper = threading.Thread(target=self._keep, args=(child, process),
                                            name=f"keep-{child.spec.name}", daemon=True)
            child.keeper.start()
            # No timeout here: the keeper gives up after spec.start_timeout.
            self._changed.wait_for(lambda: child.state in ("ready", "failed"))
            if child.state == "ready":
                return
        child.keeper.join()
        child.keeper = None
        raise SupervisorError(f"{child.spec.name} did not start ({child.failure}); "
                              f"see {child.spec.log_path}")

    def _spawn(self, child: _Child, note: str) -> subprocess.Popen:
        """Start the process (the caller holds the lock)."""
        spec = child.spec
        if spec.before_start is not None:
            spec.before_start()
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        with spec.log_path.open("ab") as output:
            # A marker in the process's own log: where one run ends and the next begins.
            output.write(f"---- supervisor: {note} {time.strftime('%Y-%m-%d %H:%M:%S')} ----\n"
                         .encode())
            output.flush()
            argv = spec.argv
            if spec.nice is not None:
                # nice(1) adjusts the value it inherits (a suite may run this supervisor nice):
                # from this thread's own to the one asked for.
                adjust = spec.nice - os.getpriority(os.PRIO_PROCESS, 0)
                argv = ["nice", "-n", str(adjust), *spec.argv]
            child.process = subprocess.Popen(
                argv, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=spec.cwd, env=None if spec.env is None else dict(spec.env),
                start_new_session=True)
        if spec.nice is not None:
            _set_session_priority(child.process.pid, spec.nice)
        child.generation += 1
        child.started_at = time.monotonic()
        child.state = "starting"
        self._changed.notify_all()
        return child.process

    def _await_ready(self, child: _Child, process: subprocess.Popen) -> str:
        """"ready", "exited" (before it was ready) or "not ready" (in time, or no longer wanted)."""
        deadline = time.monotonic() + child.spec.start_timeout
        while True:
            if _has_exited(process.pid):
                return "exited"
            if not child.wanted or time.monotonic() > deadline:
                return "not ready"
            if self._probe(child):
                with self._changed:
                    child.state = "ready"
                    self._changed.notify_all()
                return "ready"
            time.sleep(self.poll_interval)

    def _probe(self, child: _Child) -> bool:
        try:
            return bool(child.spec.ready())
        except Exception as exc:  # a probe that fails (a CLI timing out, ...) means "not yet"
            log.debug("%s readiness probe failed: %r", child.spec.name, exc)
            return False

    def _signal(self, process: subprocess.Popen, signum: int) -> None:
        """Signal the process group of ``process`` unless it has been reaped (the caller holds
        the lock, and reaping happens under it): a reaped pid may already be someone else's."""
        if process.returncode is None:
            try:
                os.killpg(process.pid, signum)
            except ProcessLookupError:
                pass

    def _reap(self, child: _Child, process: subprocess.Popen) -> int:
        """Wait for ``process`` to end, clear out the rest of its group, reap it, record it
        (as requested if by then we no longer wanted it)."""
        os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)
        with self._changed:
            requested = not child.wanted
            # Anything it started and left behind (bwrap's sandboxed Asterisk, say) goes with
            # it, so a restart finds its ports free.
            self._signal(process, signal.SIGKILL)
            returncode = process.wait()
            self.exits.append(Exit(child.spec.name, process.pid, returncode, requested))
            if child.process is process:
                child.state = "exited"
            self._changed.notify_all()
        return returncode

    def _terminate(self, child: _Child, process: subprocess.Popen, signum: int) -> None:
        """Signal the group, give it ``stop_timeout`` to end, then SIGKILL (the keeper reaps)."""
        with self._changed:
            self._signal(process, signum)
            ended = self._changed.wait_for(lambda: process.returncode is not None,
                                           child.spec.stop_timeout)
            if not ended:
                log.warning("%s did not stop within %gs of %s; sending SIGKILL", child.spec.name,
                            child.spec.stop_timeout, signal.Signals(signum).name)
                self._signal(process, signal.SIGKILL)

    def _keep(self, child: _Child, process: subprocess.Popen | None) -> None:
        """One thread per process for its whole life: wait until it is ready, wait for it to end
        and, unless asked to stop it, restart it after a back-off. A first start that fails is
        reported to :meth:`_start_child` instead. ``process`` None: the last spawn failed."""
        spec = child.spec
        first, failure = True, ""
        while True:
            if process is not None:
                outcome = self._await_ready(child, process)
                if outcome == "ready" and not first:
                    log.warning("%s is back (pid %d, restart %d)", spec.name, process.pid,
                                child.attempt)
                elif outcome == "not ready" and child.wanted:
                    log.warning("%s not ready %gs after it started; killing it", spec.name,
                                spec.start_timeout)
                    with self._changed:
                        self._signal(process, signal.SIGKILL)
                returncode = self._reap(child, process)
                failure = describe_exit(returncode)
                if first and outcome != "ready":
                    with self._changed:
                        child.wanted = False
                        child.failure = (failure if outcome == "exited"
                                         else f"not ready after {spec.start_timeout:g}s")
                        child.state = "failed"
                        self._changed.notify_all()
                    return
                first = False
            uptime = time.monotonic() - child.started_at
            with self._changed:
                if not child.wanted:
                    return
                child.attempt = self.backoff.next_attempt(child.attempt, uptime)
                restart = Restart(spec.name, child.attempt, self.backoff.delay(child.attempt),
                                  failure)
                self.restarts.append(restart)
                child.state = "backoff"
                self._changed.notify_all()
            log.warning("%s %s after %.1fs up; restart %d in %gs; log %s", spec.name, failure,
                        uptime, restart.attempt, restart.delay, spec.log_path)
            child.wake.wait(restart.delay)
            with self._changed:
                if not child.wanted:
                    return
                try:
                    process = self._spawn(child, note=f"restart {restart.attempt} after {failure}")
                except OSError as exc:
                    process, failure = None, f"could not be started ({exc})"
                    child.started_at = time.monotonic()
