"""What one load step measured, read from SIPp's files, /proc and the stack's records; and the
knee over the steps. Pure functions over text and numbers (tests/unit/test_bench_load.py), so the
benchmark's figures can be checked without placing a call.
"""

from __future__ import annotations

import ipaddress
import os
import re
import resource
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

from tests.sipp.scenario import REFUSED_COUNTER, REFUSED_RTD

__all__ = ["StepResult", "steady_growth_kib", "SippCounts", "sipp_counts", "rtt_ms",
           "ANSWERED_RTD", "REFUSED_RTD",
           "percentile", "process_tree", "cpu_seconds", "rss_kib", "udp_counters",
           "udp_socket_drops", "approved_right", "baseline_reads_right", "knee",
           "peak_calls_at_once", "pin_to_outcome_ms", "taskprocessor_alerts", "ApiStep",
           "api_step", "run_queue_seconds", "children_cpu_seconds", "nice_value", "sipp_invites",
           "DialerResult", "dialer_result"]

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class StepResult:
    """One call rate against one target (``ivr`` or ``baseline``)."""

    target: str
    rate: float                    # calls per second SIPp was asked for
    placed: int                    # calls SIPp created
    completed: int                 # calls answered whose scenario SIPp finished (the BYE answered)
    failed: int
    refused: int                   # calls refused with SIP 503 before answer (admission), not failed
    right: int                     # ivr: payments approved with the right amount at both ends;
                                   # baseline: calls whose every answer the dialplan read right
    invite_200_p50_ms: float | None
    invite_200_p99_ms: float | None
    invite_503_p50_ms: float | None  # how fast a refused call heard so (None: none refused)
    invite_503_p99_ms: float | None
    # component -> CPU milliseconds per completed call; "sipp": the load generator's own
    cpu_ms_per_call: dict[str, float]
    udp_rcvbuf_errors: int         # the whole namespace: mostly SIPp's unread media socket
    sip_socket_drops: int          # datagrams dropped at Asterisk's SIP socket (UDP 5060)
    rss_growth_kib: dict[str, int]  # component -> resident memory after the step less before
    calls_at_once: int = 0         # the most SIPp held at once
    # component -> resident memory at its highest in the step less before, per call at once
    kib_per_call: dict[str, float] = field(default_factory=dict)
    pin_to_outcome_p50_ms: float | None = None  # ivr: "PIN entered" to the acquirer's answer
    pin_to_outcome_p99_ms: float | None = None  # settled (while "please wait" plays)
    # (seconds into the step, component -> resident KiB), about one a minute: a soak's memory
    rss_timeline: list[tuple[float, dict[str, int]]] = field(default_factory=list)
    # component -> the time its main thread was ready to run but waited for a core, as a share
    # of the step's wall time (%): the ivr service and Redis each serve every call from one thread
    waited_percent: dict[str, float] = field(default_factory=dict)
    # taskprocessor -> times Asterisk warned its queue reached the high-water mark in the step
    # (with the "global" overload trigger, any of them made PJSIP ignore new INVITEs)
    taskprocessor_alerts: dict[str, int] = field(default_factory=dict)
    # a held step: the calls SIPp kept up at once (a new one as soon as one ended); None: a
    # step of `rate` calls a second
    held: int | None = None

    @property
    def clean(self) -> bool:
        """No failed or refused call, every call completed, and every one of them right."""
        return self.placed > 0 and self.failed == 0 and self.refused == 0 \
            and self.completed == self.placed and self.right == self.placed


class SippCounts(NamedTuple):
    placed: int
    completed: int  # answered and finished: SIPp's successful calls less the refused ones
    failed: int
    refused: int    # ended by a 503 to the INVITE, which the scenario accepts (Call.refusable)


def sipp_counts(stat_csv: str) -> SippCounts:
    """The calls of SIPp's ``-trace_stat`` file: its last row holds the cumulative ("(C)")
    counters. A refused call reaches the scenario's end, so SIPp counts it successful too; the
    scenario's own counter (REFUSED_COUNTER, a column only once a call was refused) tells it."""
    rows = [line.split(";") for line in stat_csv.splitlines() if line.strip()]
    if len(rows) < 2:
        raise ValueError("SIPp's statistics file has no data row")
    header, last = rows[0], rows[-1]
    value = dict(zip(header, last))
    refused = int(value.get(f"{REFUSED_COUNTER}(C)") or 0)
    successful = int(value["SuccessfulCall(C)"])
    return SippCounts(int(value["OutgoingCall(C)"]), successful - refused,
                      int(value["FailedCall(C)"]), refused)


ANSWERED_RTD = "1"  # SIPp's name for rtd="true": the INVITE sent to its 200 received


def rtt_ms(rtt_csv: str, rtd: str = ANSWERED_RTD) -> list[float]:
    """The response times (ms) of one measure in SIPp's ``-trace_rtt`` file (``date_ms;rtt_ms;
    rtd`` lines after a header, the last field the measure's name): ANSWERED_RTD (INVITE to
    200) or REFUSED_RTD (INVITE to 503), one per call."""
    samples = []
    for line in rtt_csv.splitlines():
        fields = line.split(";")
        if len(fields) >= 3 and fields[2].strip() == rtd:
            try:
                samples.append(float(fields[1]))
            except ValueError:
                continue  # the header
    return samples


def percentile(samples: list[float], percent: int) -> float | None:
    """Nearest-rank percentile (None without samples)."""
    if not samples:
        return None
    ordered = sorted(samples)
    rank = -(-percent * len(ordered) // 100)
    return ordered[max(rank, 1) - 1]


def process_tree(pid: int, proc: Path = Path("/proc")) -> list[int]:
    """``pid`` and every descendant (Asterisk runs under bubblewrap: the server is a child)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for children in (proc / str(current) / "task").glob("*/children"):
            try:
                todo += [int(child) for child in children.read_text().split()]
            except OSError:
                continue  # the task ended meanwhile
    return found


def cpu_seconds(stat_line: str) -> float:
    """User + system CPU seconds from a ``/proc/<pid>/stat`` line (fields 14 and 15; the
    command name in brackets may itself hold spaces, so fields are counted after its ')')."""
    fields = stat_line.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def nice_value(stat_line: str) -> int:
    """The nice value from a ``/proc/<pid>/stat`` line (field 19, counted after the ')')."""
    return int(stat_line.rsplit(")", 1)[1].split()[16])


def children_cpu_seconds() -> float:
    """CPU seconds of this process's ended and reaped children (SIPp, once a step's run ends)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_queue_seconds(schedstat: str) -> float:
    """Seconds a task waited on a run queue, ready but not running, from ``/proc/<pid>/schedstat``
    (run time, wait time in ns, time slices): on a shared machine, the CPU it did not get."""
    return int(schedstat.split()[1]) / 1e9


def rss_kib(status: str) -> int:
    """Resident memory (KiB) from a ``/proc/<pid>/status`` text; 0 for a process without one
    (a zombie, a kernel thread)."""
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def udp_counters(snmp: str) -> dict[str, int]:
    """The ``Udp:`` counters of ``/proc/net/snmp`` (a header line, then a values line)."""
    lines = [line.split() for line in snmp.splitlines() if line.startswith("Udp:")]
    if len(lines) < 2:
        raise ValueError("no Udp lines in /proc/net/snmp")
    return {name: int(value) for name, value in zip(lines[0][1:], lines[1][1:])}


def udp_socket_drops(proc_net_udp: str, address: str, port: int) -> int:
    """Datagrams dropped (the last column of ``/proc/net/udp``) at the socket bound to
    ``address:port`` (IPv4): which socket's buffer overflowed, where the snmp counters only say
    that one did. The kernel writes the address as a little-endian hex word."""
    local = f"{bytes(reversed(ipaddress.IPv4Address(address).packed)).hex().upper()}:{port:04X}"
    return sum(int(fields[-1]) for fields in (line.split() for line in proc_net_udp.splitlines()[1:])
               if len(fields) > 12 and fields[1] == local)


def approved_right(payments: list[dict[str, str]], journal: list[dict], amount_minor: int) -> int:
    """Payments approved for ``amount_minor`` that the acquirer's journal shows approved
    (0200, 00) for the same amount, unreversed, under the same RRN."""
    charged = {entry.get("rrn") for entry in journal
               if entry.get("mti") == "0200" and entry.get("response_code") == "00"
               and entry.get("amount") == amount_minor and not entry.get("reversed")
               and not entry.get("duplicate")}
    return sum(1 for payment in payments
               if payment.get("status") == "approved"
               and payment.get("amount_minor") == str(amount_minor)
               and payment.get("rrn") and payment.get("rrn") in charged)


def baseline_reads_right(log_lines: list[str], marker: str, expected: tuple[str, ...]) -> int:
    """Calls whose answers the baseline dialplan logged (``marker:uniqueid:a:b:...``) as
    ``expected``; each call counted once."""
    right = set()
    for line in log_lines:
        if marker + ":" not in line:
            continue
        uniqueid, *answers = line.split(marker + ":", 1)[1].strip().split(":")
        if tuple(answers) == expected:
            right.add(uniqueid)
    return len(right)


def knee(steps: list[StepResult], by: str = "rate") -> float | None:
    """The highest rate (or, ``by="held"``, calls held at once) with every call clean, climbing
    from the lowest: the step before the first unclean one (a clean step above a failed one is
    luck, not capacity). None when even the lowest failed."""
    best = None
    for step in sorted(steps, key=lambda s: getattr(s, by)):
        if not step.clean:
            break
        best = getattr(step, by)
    return best


def steady_growth_kib(timeline: list[tuple[float, dict[str, int]]], after_s: float
                      ) -> dict[str, int] | None:
    """Each component's resident memory at the last sample less at the first one taken
    ``after_s`` or later into the step (once the calls at once have reached their steady
    number): flat over a soak is near 0. None without two such samples."""
    steady = [(at, kib) for at, kib in timeline if at >= after_s]
    if len(steady) < 2:
        return None
    first, last = steady[0][1], steady[-1][1]
    return {name: last[name] - first[name] for name in first}


_QUEUE_REACHED = re.compile(r"Taskprocessor '([^']+?)(?:-[0-9a-f]{8})?' queue reached")


def taskprocessor_alerts(log_lines: list[str]) -> dict[str, int]:
    """Asterisk's "queue reached ... high water mark" warnings by taskprocessor (its instance
    suffix dropped: stasis/m:manager:core-0000000c is stasis/m:manager:core)."""
    return dict(Counter(match.group(1) for line in log_lines
                        if (match := _QUEUE_REACHED.search(line))))


def peak_calls_at_once(stat_csv: str) -> int:
    """The most calls SIPp held at once, from the ``CurrentCall`` column of its ``-trace_stat``
    rows (one every ``-fd`` seconds)."""
    rows = [line.split(";") for line in stat_csv.splitlines() if line.strip()]
    if len(rows) < 2:
        raise ValueError("SIPp's statistics file has no data row")
    column = rows[0].index("CurrentCall")
    return max(int(row[column]) for row in rows[1:] if len(row) > column and row[column].isdigit())


_PIN_ENTERED = re.compile(r"^(\S+ \S+) INFO ivr\.paying\.pin_entry: call (\S+) payment (\S+): "
                          r"PIN entered")
_OUTCOME = re.compile(r"^(\S+ \S+) INFO ivr\.paying\.pin_entry: call (\S+) payment (\S+): "
                      r"(approved|declined|failed) ")


def pin_to_outcome_ms(ivr_log_lines: list[str]) -> list[float]:
    """Per payment, milliseconds from the ivr's "PIN entered" line to its outcome line: the
    acquirer's answer and the settling, while "please wait" plays (the result is read out once
    both are done). A payment asked for its PIN again counts from its last PIN."""
    entered: dict[str, datetime] = {}
    samples = []
    for line in ivr_log_lines:
        if match := _PIN_ENTERED.match(line):
            entered[match.group(3)] = _log_time(match.group(1))
        elif (match := _OUTCOME.match(line)) and match.group(3) in entered:
            began = entered.pop(match.group(3))
            samples.append((_log_time(match.group(1)) - began).total_seconds() * 1000)
    return samples


def _log_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f")
def _core_percent(cpu_before: dict[str, float], cpu_after: dict[str, float],
                  seconds: float) -> dict[str, float]:
    """CPU each component used over ``seconds`` of wall time, as a share of one core (%)."""
    return {name: 100 * (cpu_after[name] - cpu_before[name]) / seconds for name in cpu_after}


@dataclass(frozen=True)
class ApiStep:
    """One merchant API step: ``concurrency`` clients in a closed loop for ``seconds``."""

    name: str                      # "orders" (POST /v1/payments) or "get" (GET /v1/payments/{id})
    concurrency: int
    seconds: float                 # wall time, from the first request to the last answer
    answers: int                   # every answer, whatever its status (0: no HTTP answer)
    ok: int                        # answers with the step's expected status (201, 200)
    ok_per_s: float
    p50_ms: float | None           # latency of the expected answers
    p99_ms: float | None
    statuses: dict[str, int]       # status -> answers: a 429 or a 503 is a result too
    cpu_percent: dict[str, float]  # component -> share of one core over the step
    # component -> share of the step its main thread was ready to run but waited for a core:
    # with cpu_percent near 100 together, the CPU limits it, its own or a shared machine's
    run_queue_percent: dict[str, float]


def api_step(name: str, concurrency: int, expected: int, samples: list[tuple[int, float]],
             seconds: float, cpu_before: dict[str, float], cpu_after: dict[str, float],
             wait_before: dict[str, float], wait_after: dict[str, float]) -> ApiStep:
    """A step's figures from its (status, milliseconds) answers; latency counts only the
    expected answers (a fast refusal would flatter it), every status is counted."""
    ok_ms = [ms for status, ms in samples if status == expected]
    statuses = Counter(str(status) for status, _ in samples)
    return ApiStep(name=name, concurrency=concurrency, seconds=round(seconds, 3),
                   answers=len(samples), ok=len(ok_ms),
                   ok_per_s=len(ok_ms) / seconds if seconds > 0 else 0.0,
                   p50_ms=percentile(ok_ms, 50), p99_ms=percentile(ok_ms, 99),
                   statuses=dict(sorted(statuses.items())),
                   cpu_percent=_core_percent(cpu_before, cpu_after, seconds),
                   run_queue_percent=_core_percent(wait_before, wait_after, seconds))


# SIPp's -trace_msg: each message after a line of dashes and its time: date, time of day and,
# since SIPp 3.4, the same instant in unix seconds ("2026-11-28\t00:20:01.123456\t1764289201.123456").
_TRACE_HEAD = re.compile(r"^-{20,} (?P<when>.+)$", re.MULTILINE)
_INVITE_LINE = re.compile(r"^INVITE sip:(?P<user>[^@;>\s]+)@", re.MULTILINE)


def _trace_time(when: str) -> float:
    fields = when.split()
    if re.fullmatch(r"[0-9]+\.[0-9]+", fields[-1]):
        return float(fields[-1])
    return datetime.strptime(" ".join(fields[:2]), "%Y-%m-%d %H:%M:%S.%f").timestamp()  # local


def sipp_invites(messages_log: str) -> list[tuple[float, str]]:
    """(unix time, Request-URI user) of every INVITE SIPp received, in its ``-trace_msg`` file;
    the user is the number dialled (``PJSIP/{mobile}@endpoint`` puts the mobile there)."""
    heads = list(_TRACE_HEAD.finditer(messages_log))
    invites = []
    for head, following in zip(heads, heads[1:] + [None]):
        block = messages_log[head.end():following.start() if following else len(messages_log)]
        if "message received" not in block:
            continue
        request = _INVITE_LINE.search(block)
        if request is not None:
            invites.append((_trace_time(head.group("when")), request.group("user")))
    return invites


@dataclass(frozen=True)
class DialerResult:
    """Callbacks made due at once, and the phone calls the dialer placed for them."""

    released: int                    # callbacks made due (released from review), one number each
    outcomes: dict[str, int]         # "order 201 risk_review", "approval 200", "order 503"...
    invited: int                     # of them, rung: the first INVITE for its number arrived
    releasing_s: float               # the first release sent to the last answered
    dialling_s: float                # the first release sent to the last INVITE
    originates_per_s: float          # invited / dialling_s
    due_invite_p50_ms: float | None  # a callback's release sent to its INVITE at the phone
    due_invite_p99_ms: float | None
    # component -> CPU ms per number rung: its release, the call placed and answered, the second
    # the phone stays on the line and the hang-up (the burst's whole window)
    cpu_ms_per_callback: dict[str, float]


def dialer_result(sent: dict[str, float], released: dict[str, float],
                  invites: list[tuple[float, str]], cpu_before: dict[str, float],
                  cpu_after: dict[str, float], outcomes: dict[str, int]) -> DialerResult:
    """``sent`` and ``released``: number -> when its callback's release was sent and when it was
    answered; ``invites``: ``sipp_invites``. A number's first INVITE counts (a retransmission is
    not a call); INVITEs for numbers not released are not counted."""
    first_invite: dict[str, float] = {}
    for when, number in sorted(invites):
        if number in released:
            first_invite.setdefault(number, when)
    start = min(sent.values(), default=0.0)
    releasing_s = max(released.values(), default=start) - start
    dialling_s = max(first_invite.values(), default=start) - start
    latencies = [1000 * (first_invite[n] - sent[n]) for n in first_invite]
    return DialerResult(
        released=len(released), outcomes=dict(sorted(outcomes.items())),
        invited=len(first_invite), releasing_s=round(releasing_s, 3),
        dialling_s=round(dialling_s, 3),
        originates_per_s=len(first_invite) / dialling_s if dialling_s > 0 else 0.0,
        due_invite_p50_ms=percentile(latencies, 50),
        due_invite_p99_ms=percentile(latencies, 99),
        cpu_ms_per_callback={name: 1000 * (cpu_after[name] - cpu_before[name])
                             / max(len(first_invite), 1) for name in cpu_after})
