"""The ivr service and Redis run ahead of Asterisk under contention (issue 11).

On a saturated machine, at equal weight, the ivr service waited for a core 30 % of a load step
and half the payments lost their PIN to a question asked late; the stack starts the two
services that serve every call from one thread at ``AHEAD_NICE``, in sessions whose autogroups
(what the kernel weighs between sessions) have the same value. Checked on the running stack:
every thread of both, and their sessions, run ahead; Asterisk's do not (lowering Asterisk
instead made it yield to everything, its 503s included).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.load.measure import nice_value, process_tree
from devstack.stack import AHEAD_NICE

pytestmark = pytest.mark.e2e


def _nice(task: Path) -> int:
    return nice_value((task / "stat").read_text())


def _threads(pid: int) -> list[Path]:
    return [task for each in process_tree(pid) for task in Path(f"/proc/{each}/task").iterdir()]


def _autogroup_nice(pid: int) -> int:
    return int(Path(f"/proc/{pid}/autogroup").read_text().split()[-1])


def test_the_one_threaded_services_run_ahead_of_every_asterisk_thread(stack):
    assert stack.processes is not None, "needs the stack the suite starts (its processes)"
    supervisor = stack.processes.supervisor
    for service in ("ivr", "redis"):
        assert {_nice(task) for task in _threads(supervisor.pid(service))} == {AHEAD_NICE}
        assert _autogroup_nice(supervisor.pid(service)) == AHEAD_NICE
    asterisk = _threads(supervisor.pid("asterisk"))
    names = {(task / "comm").read_text().strip() for task in asterisk}
    assert "asterisk" in names and len(asterisk) > 20, names  # the sandbox and its threads
    assert {_nice(task) for task in asterisk} == {0}
    assert _autogroup_nice(supervisor.pid("asterisk")) == 0
