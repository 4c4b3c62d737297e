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
makes. An operator running Asterisk on another host turns it off (100) and sizes the count.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from ivr import dialplan_variables as dv

__all__ = ["CpuGuard", "CpuTimes", "read_cpu_times", "guard_admission", "REOPEN_BELOW", "HOLD_S",
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


class CpuGuard:
    """Open or closed, from CPU times observed every ``PERIOD_S``: closed while the machine was
    busier than ``busy_percent`` over the last ``WINDOW_S``, open again at ``busy_percent -
    REOPEN_BELOW`` or less."""

    def __init__(self, busy_percent: int) -> None:
        if not 1 <= busy_percent <= 100:
            raise ValueError(f"VOICEPAY_ADMIT_CPU_BUSY_PERCENT must be 1 to 100 "
                             f"(100: never refuse), not {busy_percent}")
        self.busy_percent = busy_percent
        self.full = False
        self.busy_now: float | None = None  # percent over the window; None until it has two reads
        self._seen: collections.deque[CpuTimes] = collections.deque(
            maxlen=round(WINDOW_S / PERIOD_S) + 1)

    @property
    def off(self) -> bool:
        """100: no machine is busier than that, so there is nothing to watch or publish."""
        return self.busy_percent == 100

    def observe(self, times: CpuTimes) -> bool:
        """Take one reading; True if the guard changed (opened or closed) with it."""
        self._seen.append(times)
        oldest = self._seen[0]
        elapsed = times.total - oldest.total
        if elapsed <= 0:
            return False
        self.busy_now = 100 * (times.busy - oldest.busy) / elapsed
        was = self.full
        if self.busy_now > self.busy_percent:
            self.full = True
        elif self.busy_now <= self.busy_percent - REOPEN_BELOW:
            self.full = False
        return self.full != was


async def guard_admission(guard: CpuGuard, ami, read=read_cpu_times) -> None:
    """Until cancelled: read the CPUs, decide, publish VOICEPAY_CPU_FULL_UNTIL to Asterisk. A
    round Asterisk does not take (AMI down) is tried again next second, the guard kept meanwhile;
    a failed read is logged once, not every second, until a read succeeds again."""
    failing = False
    while True:
        try:
            if guard.observe(read()):
                if guard.full:
                    log.warning("the machine's CPUs were %.1f %% busy over %d s (limit %d %%): "
                                "new payment calls are refused with 503 until %d %% or less",
                                guard.busy_now, WINDOW_S, guard.busy_percent,
                                guard.busy_percent - REOPEN_BELOW)
                else:
                    log.info("the machine's CPUs were %.1f %% busy over %d s: new payment calls "
                             "are admitted again", guard.busy_now, WINDOW_S)
            failing = False
        except (OSError, ValueError):
            if not failing:
                log.exception("cannot read the machine's CPU times; the guard stays %s",
                              "closed" if guard.full else "open")
            failing = True
        await ami.set_global(dv.CPU_FULL_UNTIL,
                             str(int(time.time()) + HOLD_S) if guard.full else "0")
        await asyncio.sleep(PERIOD_S)
