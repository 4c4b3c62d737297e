"""Asterisk yields the cores to the one-threaded services under contention (issue 11).

On a saturated machine, at equal weight, the ivr service waited for a core 30 % of a load step
and half the payments lost their PIN to a question asked late; the stack starts Asterisk at
``ASTERISK_NICE``, in a session whose autogroup (what the kernel weighs between sessions) has
the same value. Checked on the running stack: every thread of the sandboxed Asterisk, and its
session, yield; the ivr service and Redis do not.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.load.measure import process_tree
from devstack.stack import ASTERISK_NICE

pytestmark = pytest.mark.e2e


def _nice(task: Path) -> int:
    """A task's nice value (proc(5) stat field 19), after a command name that may hold spaces."""
    return int((task / "stat").read_text().rsplit(") ", 1)[1].split()[16])


def _threads(pids: list[int]) -> list[Path]:
    return [task for pid in pids for task in Path(f"/proc/{pid}/task").iterdir()]


def _autogroup_nice(pid: int) -> int:
    return int(Path(f"/proc/{pid}/autogroup").read_text().split()[-1])


def test_every_asterisk_thread_yields_and_the_services_it_waits_for_do_not(stack):
    assert stack.processes is not None, "needs the stack the suite starts (its processes)"
    supervisor = stack.processes.supervisor
    asterisk = process_tree(supervisor.pid("asterisk"))
    threads = _threads(asterisk)
    names = {(task / "comm").read_text().strip() for task in threads}
    assert "asterisk" in names and len(threads) > 20, names  # the sandbox and Asterisk's threads
    assert {_nice(task) for task in threads} == {ASTERISK_NICE}
    assert _autogroup_nice(supervisor.pid("asterisk")) == ASTERISK_NICE
    for service in ("ivr", "redis"):
        assert {_nice(task) for task in _threads(process_tree(supervisor.pid(service)))} == {0}
        assert _autogroup_nice(supervisor.pid(service)) == 0
