"""Admission by the machine's spare CPU: while its CPUs are busier than the setting, Asterisk
refuses new payment calls with SIP 503, as it does past VOICEPAY_MAX_PAYMENT_CALLS.

A count of calls is sized on one hour of one machine, and the same machine is not the same every
hour: on the development VM the same call cost Asterisk 108 ms in one afternoon and 264 ms in
another (README "Benchmarks"). A count set in the quick hour is too high in the slow one, and the
calls it then admits take the CPU the calls already answered need to read their keys. What the
count stands for is the CPU, so this guard watches it: the share of the last few seconds the
machine's CPUs were busy (``/proc/stat``; stolen time is busy, the host kept it), published once
a second as the dialplan global VOICEPAY_CPU_FULL_UNTIL (a time a few seconds ahead while
closed, so refusals end by themselves if this service stops), which dialplan/admission.conf
refuses on and the callback dialer waits on. Above the setting it closes; it opens again only
10 points lower, so a machine at the edge does not flap call by call.

It measures the machine the ivr service runs on: Asterisk's, in every deployment this repository
makes. In a container with a CPU quota (cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``, on the
service's cgroup or one above it), the quota is the machine: the guard also watches the cgroup's
usage against it, and the busier of the two decides. An operator running Asterisk on another host
turns it off (100) and sizes the count.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from ivr import dialplan_variables as dv

__all__ = ["CpuGuard", "CpuTimes", "CpuQuota", "read_cpu_times", "find_cpu_quota",
           "read_quota_times", "guard_admission", "REOPEN_BELOW", "HOLD_S",
           "WINDOW_S", "PERIOD_S"]

log = logging.getLogger(__name__)

# Seconds of CPU time the decision looks back over: short, since every second it takes to see
# the machine full admits more calls (16 a second in run 10); two, not one, so a single second
# of call set-ups does not close it. 5 s was tried: no better, and slower to close.
WINDOW_S = 2
# How often the CPUs are read and the global published (again: a dialplan reload resets it).
PERIOD_S = 1.0
# Points below the setting at which a closed guard opens again.
REOPEN_BELOW = 10
# How far ahead a closed guard's refusals reach: three rounds, so one late round (AMI slow, the
# event loop busy) does not open it, and a stopped service's refusals end within seconds.
HOLD_S = 3


@dataclass(frozen=True)
class CpuTimes:
    """The machine's CPU time since boot, in clock ticks: all of it, and the busy part."""

    busy: int
    total: int


def read_cpu_times(path: Path = Path("/proc/stat")) -> CpuTimes:
    """The first line of /proc/stat: user nice system idle iowait irq softirq steal (guest
    time is already in user). Idle and iowait are the CPU's to give; the rest is not."""
    with path.open("rb") as stat:
        fields = stat.readline().split()
    if len(fields) < 9 or fields[0] != b"cpu":
        raise ValueError(f"{path}: no cpu line")
    user, nice, system, idle, iowait, irq, softirq, steal = (int(f) for f in fields[1:9])
    total = user + nice + system + idle + iowait + irq + softirq + steal
    return CpuTimes(busy=total - idle - iowait, total=total)


@dataclass(frozen=True)
class CpuQuota:
    """A cgroup's CPU quota in cores, and the file its usage is counted in: ``cpu.stat``
    (cgroup v2, ``usage_usec``) or ``cpuacct.usage`` (v1, nanoseconds)."""

    cores: float
    usage: Path


def find_cpu_quota(proc_cgroup: Path = Path("/proc/self/cgroup"),
                   root: Path = Path("/sys/fs/cgroup")) -> CpuQuota | None:
    """The tightest CPU quota on this process's cgroup or any above it, or None (no quota, no
    cgroup file system, a file unreadable: the machine alone is watched)."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    hierarchies = {}  # controller ("" for cgroup v2's one hierarchy) → (its mount, the path)
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue  # not a cgroup line: nothing to learn from it
        _, controllers, path = parts
        for controller in controllers.split(","):
            hierarchies[controller] = (root / controllers, Path(path.lstrip("/")))
    quotas = []
    if "" in hierarchies:
        mount, path = hierarchies[""]
        quotas += [_v2_quota(mount / level) for level in _levels(path)]
    if "cpu" in hierarchies:
        mount, path = hierarchies["cpu"]
        acct_mount, _ = hierarchies.get("cpuacct", hierarchies["cpu"])
        quotas += [_v1_quota(mount / level, acct_mount / level) for level in _levels(path)]
    return min((q for q in quotas if q is not None and _readable(q)), key=lambda q: q.cores,
               default=None)


def _readable(quota: CpuQuota) -> bool:
    """A quota whose usage cannot be read (cgroup v1's cpuacct not mirroring cpu) is left out
    rather than failing every round of the guard."""
    try:
        read_quota_times(quota)
        return True
    except (OSError, ValueError, KeyError):
        return False


def _levels(path: Path) -> list[Path]:
    """A cgroup's path and every path above it, up to the hierarchy's root ("")."""
    return [path, *path.parents]


def _v2_quota(cgroup: Path) -> CpuQuota | None:
    try:
        limit, period = (cgroup / "cpu.max").read_text().split()
        return None if limit == "max" else CpuQuota(int(limit) / int(period), cgroup / "cpu.stat")
    except (OSError, ValueError):
        return None  # the root has no cpu.max; a cgroup without the cpu controller neither


def _v1_quota(cgroup: Path, acct: Path) -> CpuQuota | None:
    try:
        limit = int((cgroup / "cpu.cfs_quota_us").read_text())
        period = int((cgroup / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return CpuQuota(limit / period, acct / "cpuacct.usage") if limit > 0 else None


def read_quota_times(quota: CpuQuota, now: float | None = None) -> CpuTimes:
    """The cgroup's CPU time used and the time its quota allowed since the clock's epoch, in
    microseconds: their ratio over a window is how busy the quota was."""
    text = quota.usage.read_text()
    if quota.usage.name == "cpu.stat":
        fields = dict(line.split() for line in text.splitlines() if line.strip())
        used = int(fields["usage_usec"])
    else:
        used = int(text) // 1000
    now = time.monotonic() if now is None else now
    return CpuTimes(busy=used, total=int(now * 1_000_000 * quota.cores))


class CpuGuard:
    """Open or closed, from CPU times observed every ``PERIOD_S``: closed while the machine was
    busier than ``busy_percent`` over the last ``WINDOW_S``, open again at ``busy_percent -
    REOPEN_BELOW`` or less."""

    def __init__(self, busy_percent: int, quota: CpuQuota | None = None) -> None:
        if not 1 <= busy_percent <= 100:
            raise ValueError(f"VOICEPAY_ADMIT_CPU_BUSY_PERCENT must be 1 to 100 "
                             f"(100: never refuse), not {busy_percent}")
        self.busy_percent = busy_percent
        self.full = False
        self.busy_now: float | None = None  # percent over the window; None until it has two reads
        self.quota = quota  # the container's CPU quota, watched with the machine
        self._seen: collections.deque[tuple[CpuTimes, ...]] = collections.deque(
            maxlen=round(WINDOW_S / PERIOD_S) + 1)

    @property
    def off(self) -> bool:
        """100: no machine is busier than that, so there is nothing to watch or publish."""
        return self.busy_percent == 100

    @property
    def quota_cores(self) -> float | None:
        """The quota watched, in cores; None without one, or with the guard off."""
        return None if self.off or self.quota is None else self.quota.cores

    def read(self) -> tuple[CpuTimes, ...]:
        """One reading of each source: the machine, and the quota if there is one."""
        machine = read_cpu_times()
        return (machine,) if self.quota is None else (machine, read_quota_times(self.quota))

    def observe(self, *readings: CpuTimes) -> bool:
        """Take one reading of each source (the machine, and its CPU quota if it has one); the
        busier decides. True if the guard changed (opened or closed) with it."""
        self._seen.append(readings)
        shares = [100 * (new.busy - old.busy) / (new.total - old.total)
                  for old, new in zip(self._seen[0], readings) if new.total > old.total]
        if not shares:
            return False
        # A quota's usage can run a little past the time it allowed (101 % seen): it is full.
        self.busy_now = min(100.0, max(shares))
        was = self.full
        if self.busy_now > self.busy_percent:
            self.full = True
        elif self.busy_now <= self.busy_percent - REOPEN_BELOW:
            self.full = False
        return self.full != was


def _cpus(guard: CpuGuard) -> str:
    """What the guard's percent is of, as its log lines say it."""
    if guard.quota_cores is None:
        return "the machine's CPUs"
    return f"the machine's CPUs or its {guard.quota_cores:g}-core quota (the busier)"


async def guard_admission(guard: CpuGuard, ami, read=None) -> None:
    """Until cancelled: read the CPUs (``guard.read`` unless told), decide, publish
    VOICEPAY_CPU_FULL_UNTIL to Asterisk. A round Asterisk does not take (AMI down) is tried again
    next second, the guard kept meanwhile; a failed read is logged once, not every second, until
    a read succeeds again."""
    read = read or guard.read
    failing = False
    while True:
        try:
            if guard.observe(*read()):
                if guard.full:
                    log.warning("%s were %.1f %% busy over %d s (limit %d %%): new payment "
                                "calls are refused with 503 until %d %% or less", _cpus(guard),
                                guard.busy_now, WINDOW_S, guard.busy_percent,
                                guard.busy_percent - REOPEN_BELOW)
                else:
                    log.info("%s were %.1f %% busy over %d s: new payment calls are admitted "
                             "again", _cpus(guard), guard.busy_now, WINDOW_S)
            failing = False
        except (OSError, ValueError):
            if not failing:
                log.exception("cannot read the machine's CPU times; the guard stays %s",
                              "closed" if guard.full else "open")
            failing = True
        await ami.set_global(dv.CPU_FULL_UNTIL,
                             str(int(time.time()) + HOLD_S) if guard.full else "0")
        await asyncio.sleep(PERIOD_S)
