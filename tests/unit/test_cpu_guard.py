"""The CPU guard (ivr/cpu_guard.py): /proc/stat read right, a cgroup's CPU quota found and its
usage read, closed above the setting over the window (the busier of machine and quota), open
again only 10 points lower, and published to Asterisk as a time that runs out."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from ivr import dialplan_variables as dv
from ivr import cpu_guard
from ivr.cpu_guard import (HOLD_S, WINDOW_S, CpuGuard, CpuQuota, CpuTimes, find_cpu_quota,
                           guard_admission, read_cpu_times, read_quota_times)

# A real /proc/stat's first lines: user nice system idle iowait irq softirq steal guest guest_nice.
STAT = ("cpu  4705 356 584 3699 23 23 0 12 0 0\n"
        "cpu0 1393280 32966 572056 13343292 6130 0 17875 0 23933 0\n")


def test_reads_busy_and_total_ticks_with_iowait_idle_and_steal_busy(tmp_path: Path):
    stat = tmp_path / "stat"
    stat.write_text(STAT)
    total = 4705 + 356 + 584 + 3699 + 23 + 23 + 0 + 12
    assert read_cpu_times(stat) == CpuTimes(busy=total - 3699 - 23, total=total)


def test_a_file_without_the_cpu_line_is_an_error(tmp_path: Path):
    stat = tmp_path / "stat"
    stat.write_text("intr 1 2 3\n")
    with pytest.raises(ValueError, match="no cpu line"):
        read_cpu_times(stat)


def test_this_machines_proc_stat_reads():
    times = read_cpu_times()
    assert 0 <= times.busy <= times.total and times.total > 0


class _Machine:
    """CPU times that advance one second at a time, busy by a given percent."""

    def __init__(self) -> None:
        self.times = CpuTimes(0, 0)

    def seconds(self, guard: CpuGuard, busy_percents: list[int]) -> list[bool]:
        """One reading a second; the guard's state after each."""
        states = []
        for percent in busy_percents:
            self.times = CpuTimes(self.times.busy + percent, self.times.total + 100)
            guard.observe(self.times)
            states.append(guard.full)
        return states


def test_closes_only_when_the_window_was_busier_than_the_setting():
    guard, machine = CpuGuard(90), _Machine()
    # A busy second inside a quieter window does not close it: the window's share does.
    assert machine.seconds(guard, [50] * WINDOW_S + [100]) == [False] * (WINDOW_S + 1)
    assert guard.busy_now == pytest.approx((50 * (WINDOW_S - 1) + 100) / WINDOW_S)
    assert machine.seconds(guard, [100] * WINDOW_S)[-1] is True
    assert guard.busy_now == 100


def test_opens_again_only_ten_points_below_the_setting():
    guard, machine = CpuGuard(90), _Machine()
    machine.seconds(guard, [100] * (WINDOW_S + 1))
    assert guard.full
    # At 85 % over the window (below the setting, above its reopening point) it stays closed.
    assert machine.seconds(guard, [85] * WINDOW_S) == [True] * WINDOW_S
    assert machine.seconds(guard, [80] * WINDOW_S)[-1] is False


def test_observe_says_when_it_changed():
    guard = CpuGuard(50)
    assert guard.observe(CpuTimes(0, 0)) is False  # one reading: nothing to judge yet
    assert guard.busy_now is None
    assert guard.observe(CpuTimes(60, 100)) is True
    assert guard.observe(CpuTimes(120, 200)) is False
    assert guard.observe(CpuTimes(120, 200)) is False  # no time passed: no judgement


def test_one_hundred_never_closes():
    assert _Machine().seconds(CpuGuard(100), [100] * 10) == [False] * 10


@pytest.mark.parametrize("setting", [0, 101, -5])
def test_a_setting_outside_one_to_a_hundred_is_refused(setting: int):
    with pytest.raises(ValueError, match="VOICEPAY_ADMIT_CPU_BUSY_PERCENT"):
        CpuGuard(setting)


class _Asterisk:
    def __init__(self) -> None:
        self.globals: list[tuple[str, str]] = []

    async def set_global(self, name: str, value: str) -> bool:
        self.globals.append((name, value))
        return True


async def _rounds(guard: CpuGuard, readings, rounds: int, monkeypatch) -> _Asterisk:
    monkeypatch.setattr(cpu_guard, "PERIOD_S", 0)
    asterisk = _Asterisk()
    feed = iter(readings)

    def read() -> tuple[CpuTimes]:
        reading = next(feed)
        if isinstance(reading, Exception):
            raise reading
        return (reading,)

    task = asyncio.create_task(guard_admission(guard, asterisk, read))
    while len(asterisk.globals) < rounds:
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return asterisk


async def test_a_closed_guard_publishes_a_time_just_ahead_an_open_one_zero(monkeypatch, caplog):
    readings = [CpuTimes(100 * n, 100 * n) for n in range(3)] + [CpuTimes(200, 300 + 100 * n)
                                                                 for n in range(1, 7)]
    caplog.set_level(logging.INFO, "ivr.cpu_guard")
    asterisk = await _rounds(CpuGuard(90), readings, len(readings), monkeypatch)
    names = {name for name, _ in asterisk.globals}
    assert names == {dv.CPU_FULL_UNTIL}
    values = [int(value) for _, value in asterisk.globals]
    assert values[0] == 0  # one reading: open
    now = time.time()
    assert all(now <= value <= now + HOLD_S + 1 for value in values[1:3])  # closed: ahead
    assert values[-1] == 0  # idle for the whole window since: open again
    said = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("the machine's CPUs were") and "refused with 503" in line
               for line in said), said
    assert any("admitted again" in line for line in said), said


async def test_with_a_quota_the_log_says_which_cpus(monkeypatch, caplog):
    guard = CpuGuard(90, CpuQuota(1.5, Path("cpu.stat")))
    readings = [CpuTimes(100 * n, 100 * n) for n in range(3)]
    caplog.set_level(logging.INFO, "ivr.cpu_guard")
    await _rounds(guard, readings, len(readings), monkeypatch)
    assert any(r.getMessage().startswith(
        "the machine's CPUs or its 1.5-core quota (the busier) were 100.0 % busy")
        for r in caplog.records), [r.getMessage() for r in caplog.records]


async def test_a_failed_read_is_logged_once_and_the_guard_kept(monkeypatch, caplog):
    readings = [CpuTimes(0, 0), CpuTimes(100, 100), OSError("gone"), OSError("gone"),
                OSError("gone"), CpuTimes(300, 300)]
    guard = CpuGuard(90)
    asterisk = await _rounds(guard, readings, len(readings), monkeypatch)
    assert [r.getMessage() for r in caplog.records].count(
        "cannot read the machine's CPU times; the guard stays closed") == 1
    assert all(int(value) > 0 for _, value in asterisk.globals[1:]), "kept closed meanwhile"


# --- a container's CPU quota --------------------------------------------------------------------

def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_a_cgroup_v2_quota_is_found_on_the_services_cgroup_or_above(tmp_path: Path):
    root, proc = tmp_path / "cgroup", tmp_path / "proc-cgroup"
    proc.write_text("0::/system.slice/voicepay.service\n")
    _write(root / "system.slice/voicepay.service/cpu.max", "max 100000\n")
    _write(root / "system.slice/cpu.max", "150000 100000\n")  # 1.5 cores on the slice
    _write(root / "system.slice/cpu.stat", "usage_usec 2500000\nuser_usec 2000000\n")
    quota = find_cpu_quota(proc, root)
    assert quota == CpuQuota(1.5, root / "system.slice/cpu.stat")
    # A tighter one on the service's own cgroup wins.
    _write(root / "system.slice/voicepay.service/cpu.max", "50000 100000\n")
    _write(root / "system.slice/voicepay.service/cpu.stat", "usage_usec 1000\n")
    assert find_cpu_quota(proc, root).cores == 0.5
    # As a container sees it (its own cgroup is the root of what it sees).
    proc.write_text("0::/\n")
    _write(root / "cpu.max", "200000 100000\n")
    _write(root / "cpu.stat", "usage_usec 1000\n")
    assert find_cpu_quota(proc, root) == CpuQuota(2.0, root / "cpu.stat")


def test_no_quota_means_the_machine_alone(tmp_path: Path):
    root, proc = tmp_path / "cgroup", tmp_path / "proc-cgroup"
    proc.write_text("0::/user.slice\n")
    _write(root / "user.slice/cpu.max", "max 100000\n")
    assert find_cpu_quota(proc, root) is None
    assert find_cpu_quota(tmp_path / "no-such-file", root) is None
    proc.write_text("garbage\n\n0::/user.slice\n")  # a line that is not a cgroup's is passed
    assert find_cpu_quota(proc, root) is None
    # This machine's own cgroups (the development VM and CI: no quota) read without an error.
    find_cpu_quota()


def test_a_cgroup_v1_quota_is_found_with_cpuacct_mounted_apart(tmp_path: Path):
    root, proc = tmp_path / "cgroup", tmp_path / "proc-cgroup"
    proc.write_text("4:memory:/x\n3:cpuacct:/docker/abc\n2:cpu:/docker/abc\n")
    _write(root / "cpu/docker/abc/cpu.cfs_quota_us", "-1\n")
    _write(root / "cpu/docker/abc/cpu.cfs_period_us", "100000\n")
    _write(root / "cpu/docker/cpu.cfs_quota_us", "100000\n")
    _write(root / "cpu/docker/cpu.cfs_period_us", "100000\n")
    # Its usage unreadable (cpuacct not mirroring cpu): left out, the machine alone watched.
    assert find_cpu_quota(proc, root) is None
    _write(root / "cpuacct/docker/cpuacct.usage", "1000\n")
    assert find_cpu_quota(proc, root) == CpuQuota(1.0, root / "cpuacct/docker/cpuacct.usage")
    proc.write_text("2:cpu,cpuacct:/\n")  # mounted together
    _write(root / "cpu,cpuacct/cpuacct.usage", "1000\n")
    _write(root / "cpu,cpuacct/cpu.cfs_quota_us", "300000\n")
    _write(root / "cpu,cpuacct/cpu.cfs_period_us", "100000\n")
    assert find_cpu_quota(proc, root) == CpuQuota(3.0, root / "cpu,cpuacct/cpuacct.usage")


def test_a_quotas_usage_reads_against_the_time_it_allowed(tmp_path: Path):
    _write(tmp_path / "cpu.stat", "usage_usec 2500000\nuser_usec 2000000\n")
    assert read_quota_times(CpuQuota(1.5, tmp_path / "cpu.stat"), now=10.0) == CpuTimes(
        busy=2_500_000, total=15_000_000)
    _write(tmp_path / "cpuacct.usage", "7000000000\n")  # v1: nanoseconds
    assert read_quota_times(CpuQuota(2.0, tmp_path / "cpuacct.usage"), now=4.0) == CpuTimes(
        busy=7_000_000, total=8_000_000)
    assert len(CpuGuard(90, CpuQuota(2.0, tmp_path / "cpuacct.usage")).read()) == 2
    assert len(CpuGuard(90).read()) == 1


def test_the_busier_of_machine_and_quota_decides():
    guard = CpuGuard(80)
    # The machine half idle, the container's 1-core quota used to the full: closed.
    guard.observe(CpuTimes(0, 0), CpuTimes(0, 0))
    assert guard.observe(CpuTimes(100, 200), CpuTimes(100, 100)) is True
    assert guard.full and guard.busy_now == 100
    # Both quiet: open again.
    guard.observe(CpuTimes(110, 400), CpuTimes(110, 300))
    guard.observe(CpuTimes(120, 600), CpuTimes(120, 500))
    assert not guard.full and guard.busy_now == 5
    # A quota's usage a little past the time it allowed reads as full, not as 101 %.
    guard.observe(CpuTimes(130, 800), CpuTimes(1530, 1500))
    assert guard.busy_now == 100
