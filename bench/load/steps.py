"""One load step: SIPp places calls at one rate against one target, and what it cost.

Before and after the step: CPU of each component's process tree (/proc/<pid>/stat), the UDP
counters of this network namespace (/proc/net/snmp), and where the acquirer's journal and
Asterisk's log ended; after it, SIPp's counts and INVITE→200 times, the payments approved since
the step began (Redis) against the acquirer's journal, or the baseline's logged reads.
"""

from __future__ import annotations

import json
import math
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import redis

from bench.load import baseline
from bench.load.measure import (REFUSED_RTD, StepResult, approved_right, baseline_reads_right,
                                children_cpu_seconds, cpu_seconds, peak_calls_at_once,
                                percentile, pin_to_outcome_ms, process_tree, rss_kib, rtt_ms,
                                run_queue_seconds, sipp_counts, taskprocessor_alerts,
                                udp_counters, udp_socket_drops)
from ivr.payments.store import status_index
from ivr.selfservice.flow import TOPUP_AMOUNTS_MINOR
from simulators.acquirer.testcards import find_test_card
from tests.sipp.scenario import Call, Key, write_scenario

__all__ = ["Target", "targets", "human_paced", "regular_paced", "PACES", "Probes", "run_step",
           "held_fill_rate", "sipp_argv"]

# The components whose CPU is counted per call.
COMPONENTS = ("asterisk", "ivr", "redis", "acquirer")
# The components that serve every call from one thread: late, they make every call late.
ONE_THREAD = ("ivr", "redis")
AMOUNT_MINOR = TOPUP_AMOUNTS_MINOR["1"]  # both calls key menu 1
# A call lasts about a minute; SIPp may hold this many seconds of calls at once before -l bites.
CALL_SECONDS = 70
# The person-paced call from INVITE to BYE on an idle IVR (measured: about 78 s).
CALL_LENGTH_S = 78
# The regular caller's call (regular_paced), INVITE to BYE (measured at 8 calls/s: 50.5 s, the
# baseline's 49.6 s).
REGULAR_CALL_LENGTH_S = 50


@dataclass(frozen=True)
class Target:
    name: str
    call: Call
    # INVITE to BYE on an idle IVR: how fast a held step turns over.
    call_length_s: int = CALL_LENGTH_S


# A cardholder keys an answer once the question has been heard out, and a moment later. A load
# step keyed at machine speed (each answer a fixed 300 ms after the last) measures how fast keys
# can race the prompts, not how many callers the line carries. A scenario cannot hear when a
# question really begins, so under load its keys come on the schedule of an idle IVR: keyed
# 1.5 s into a question, they fell before it whenever the work between two questions (the IVR's
# payment record and risk check before the PIN) ran late, and Asterisk's AGI loop drops a key
# that arrives while no command listens. Keyed after the whole question, an answer is only lost
# if the IVR is later than the question lasts (5-9 s). The call lasts about a minute, not 39 s.
REACTION_MS = 1000


def human_paced(number: str, answers: tuple[str, str, str, str], name: str) -> Call:
    """The self-service call keyed as a person does: each answer a second after its question.
    Refusable: past VOICEPAY_MAX_PAYMENT_CALLS the line answers 503 (dialplan/admission.conf),
    which SIPp counts apart from failures; the baseline has no admission and never refuses."""
    from tests.sipp.selfservice_calls import WELCOME_MS, clock
    mobile, menu_key, card, pin_digits = answers
    return Call(name, number, [
        Key(mobile, WELCOME_MS + clock.ms("enter_mobile") + REACTION_MS),
        Key(menu_key, clock.ms("amount_menu") + REACTION_MS),
        Key(card + "#", clock.ms("enter_card") + REACTION_MS, label="card number"),
        _pin_after_its_question(pin_digits),
    ], refusable=True)


def regular_paced(number: str, answers: tuple[str, str, str, str], name: str) -> Call:
    """The self-service call keyed by a regular caller, who knows the line: the mobile number,
    the amount and the card number keyed while each question is still being asked (the shipped
    QA call's schedule, ``order`` in tests/sipp/selfservice_calls.py, the issue's 39-s call), the
    PIN a second after its whole question. Between the card number and the PIN question the IVR
    records the payment and asks the risk rules, so a PIN keyed on an idle IVR's schedule would
    fall before the question whenever that ran late under load, and a key while no command
    listens is lost (REACTION_MS above); before the other questions the IVR asks nobody. About
    50 s a call."""
    from tests.sipp.selfservice_calls import order
    mobile, menu_key, card, pin_digits = answers
    return Call(name, number, [*order(mobile, card + "#", menu_key=menu_key),
                               _pin_after_its_question(pin_digits)], refusable=True)


def _pin_after_its_question(pin_digits: str) -> Key:
    from tests.sipp.selfservice_calls import clock
    return Key(pin_digits + "#", clock.ms("enter_pin") + REACTION_MS, label="PIN")


# --pace: how the benchmark's callers key, and how long their call lasts on an idle IVR.
PACES = {"person": (human_paced, CALL_LENGTH_S), "regular": (regular_paced, REGULAR_CALL_LENGTH_S)}


def targets(pace: str = "person") -> dict[str, Target]:
    """The IVR's approved self-service call and the baseline, keyed alike at ``pace``."""
    # Imported here: the calls time their keys from the prompt WAVs, which exist only once the
    # stack has been prepared (make sounds).
    from tests.sipp.selfservice_calls import NUMBER
    keyed, call_length_s = PACES[pace]
    card = find_test_card("approve")  # PIN with repeated digits
    ivr_answers = ("13800138001", "1", card.pan, card.pin)
    return {"ivr": Target("ivr", keyed(NUMBER, ivr_answers, "approved"), call_length_s),
            "baseline": Target("baseline", keyed(baseline.NUMBER, baseline.ANSWERS, "baseline"),
                               call_length_s)}


@dataclass(frozen=True)
class Probes:
    """Where a step looks: the stack's processes, files and Redis."""

    pid_of: Callable[[str], int]
    redis_url: str
    journal: Path
    messages_log: Path
    ivr_log: Path

    def cpu(self, names: tuple[str, ...] = COMPONENTS) -> dict[str, float]:
        """CPU seconds used so far by each named component's process tree."""
        return {name: sum(self._each(name, "stat", cpu_seconds)) for name in names}

    def run_queue(self, names: tuple[str, ...]) -> dict[str, float]:
        """Seconds each named component's processes (their main threads) waited for a core."""
        return {name: sum(self._each(name, "schedstat", run_queue_seconds)) for name in names}

    def rss(self) -> dict[str, int]:
        """Resident KiB of each component's process tree."""
        return {name: sum(self._each(name, "status", rss_kib)) for name in COMPONENTS}

    def _each(self, name: str, proc_file: str, read: Callable[[str], float]) -> list[float]:
        values = []
        for pid in process_tree(self.pid_of(name)):
            try:
                values.append(read(Path(f"/proc/{pid}/{proc_file}").read_text()))
            except OSError:
                continue  # ended between listing and reading
        return values


def _lines(path: Path) -> list[str]:
    return path.read_text(errors="replace").splitlines() if path.exists() else []


ASTERISK_SIP = ("127.0.0.1", 5060)


def _udp() -> dict[str, int]:
    """This namespace's UDP counters, and the drops at Asterisk's SIP socket as ``sip_drops``."""
    return {**udp_counters(Path("/proc/net/snmp").read_text()),
            "sip_drops": udp_socket_drops(Path("/proc/net/udp").read_text(), *ASTERISK_SIP)}


def held_fill_rate(held: int, call_length_s: int = CALL_LENGTH_S) -> int:
    """Calls a second that fill a held step and keep it full: a quarter above its turnover (the
    calls that end a second), so the fill is no burst but keeps up as calls end."""
    return max(1, math.ceil(held / call_length_s * 1.25))


def sipp_argv(call_dir: Path, scenario: Path, rate: int, duration_s: int,
              held: int | None = None, call_length_s: int = CALL_LENGTH_S) -> list[str]:
    """SIPp for a step: ``rate`` calls a second for ``duration_s`` seconds; or, ``held``, that
    many calls kept up at once (a new one as soon as one ends, -l) for about ``duration_s``
    seconds once full."""
    if held is None:
        # -l: SIPp's default cap on simultaneous calls is far below a loaded IVR's.
        calls, limit = rate * duration_s, rate * CALL_SECONDS * 2
    else:
        calls, limit = held + math.ceil(held * duration_s / call_length_s), held
    lasts_s = math.ceil(calls / rate) + CALL_SECONDS + 120
    return ["sipp", "127.0.0.1:5060", "-sf", scenario.name, "-r", str(rate), "-m", str(calls),
            "-l", str(limit), "-i", "127.0.0.1", "-p", "0",
            "-mi", "127.0.0.1", "-mp", "16000", "-nostdin", "-timeout", f"{lasts_s}s",
            "-trace_stat", "-stf", str(call_dir / "stat.csv"), "-fd", "5",
            "-trace_rtt", "-rtt_freq", "1", "-trace_err", "-error_file", str(call_dir / "errors.log")]


def run_step(target: Target, rate: int, duration_s: int, probes: Probes, work: Path,
             held: int | None = None) -> StepResult:
    step_dir = work / (f"{target.name}-{rate}" if held is None else f"{target.name}-held-{held}")
    step_dir.mkdir(parents=True, exist_ok=True)
    scenario = write_scenario(target.call, step_dir)
    journal_from = len(_lines(probes.journal))
    log_from = len(_lines(probes.messages_log))
    ivr_log_from = len(_lines(probes.ivr_log))
    cpu_before, rss_before, udp_before, started = probes.cpu(), probes.rss(), _udp(), time.time()
    sipp_before, waited_before = children_cpu_seconds(), probes.run_queue(ONE_THREAD)
    rss_peak, timeline = _run_sampling_rss(
        sipp_argv(step_dir, scenario, rate, duration_s, held, target.call_length_s), step_dir, probes)
    cpu_after, rss_after, udp_after = probes.cpu(), probes.rss(), _udp()
    waited_after, seconds = probes.run_queue(ONE_THREAD), time.time() - started
    # SIPp is the only child this process reaps during a step: the load generator's own cost,
    # which shares the cores with everything it measures.
    cpu_before["sipp"], cpu_after["sipp"] = sipp_before, children_cpu_seconds()

    counts = sipp_counts((step_dir / "stat.csv").read_text())
    rtt_files = [path.read_text() for path in step_dir.glob("*_rtt.csv")]
    samples = [sample for text in rtt_files for sample in rtt_ms(text)]
    refusals = [sample for text in rtt_files for sample in rtt_ms(text, REFUSED_RTD)]
    asterisk_log = _lines(probes.messages_log)[log_from:]
    if target.name == "ivr":
        right = _payments_right(probes, started, journal_from)
    else:
        right = baseline_reads_right(asterisk_log, baseline.MARKER, baseline.ANSWERS)
    per_call = max(counts.completed, 1)
    at_once = peak_calls_at_once((step_dir / "stat.csv").read_text())
    pin_samples = (pin_to_outcome_ms(_lines(probes.ivr_log)[ivr_log_from:])
                   if target.name == "ivr" else [])
    return StepResult(
        target=target.name, rate=rate, held=held, placed=counts.placed,
        completed=counts.completed, failed=counts.failed, refused=counts.refused, right=right,
        invite_200_p50_ms=percentile(samples, 50), invite_200_p99_ms=percentile(samples, 99),
        invite_503_p50_ms=percentile(refusals, 50), invite_503_p99_ms=percentile(refusals, 99),
        cpu_ms_per_call={name: 1000 * (cpu_after[name] - cpu_before[name]) / per_call
                         for name in (*COMPONENTS, "sipp")},
        udp_rcvbuf_errors=udp_after["RcvbufErrors"] - udp_before["RcvbufErrors"],
        sip_socket_drops=udp_after["sip_drops"] - udp_before["sip_drops"],
        rss_growth_kib={name: rss_after[name] - rss_before[name] for name in COMPONENTS},
        calls_at_once=at_once,
        kib_per_call={name: (rss_peak[name] - rss_before[name]) / max(at_once, 1)
                      for name in COMPONENTS},
        pin_to_outcome_p50_ms=percentile(pin_samples, 50),
        pin_to_outcome_p99_ms=percentile(pin_samples, 99),
        rss_timeline=timeline,
        waited_percent={name: 100 * (waited_after[name] - waited_before[name]) / seconds
                        for name in ONE_THREAD},
        taskprocessor_alerts=taskprocessor_alerts(asterisk_log),
    )


# How often resident memory is sampled while SIPp runs: its peak, with the most calls at once;
# and how often a sample is kept for the step's timeline (a soak's memory, flat or not).
RSS_SAMPLE_S = 2.0
RSS_TIMELINE_S = 60.0


def _run_sampling_rss(command: list[str], cwd: Path, probes: Probes
                      ) -> tuple[dict[str, int], list[tuple[float, dict[str, int]]]]:
    """Run SIPp to its end; each component's highest resident KiB seen meanwhile, and a sample
    about every RSS_TIMELINE_S (seconds since the start, KiB by component)."""
    started = time.monotonic()
    peak = probes.rss()
    timeline = [(0.0, peak)]
    with subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL) as sipp:
        try:
            while sipp.poll() is None:
                time.sleep(RSS_SAMPLE_S)
                now = probes.rss()
                peak = {name: max(peak[name], kib) for name, kib in now.items()}
                at = time.monotonic() - started
                if at - timeline[-1][0] >= RSS_TIMELINE_S:
                    timeline.append((round(at), now))
        except BaseException:
            sipp.kill()  # interrupted: no SIPp left placing calls into a stopped stack
            raise
    return peak, timeline


def _payments_right(probes: Probes, since: float, journal_from: int) -> int:
    client = redis.Redis.from_url(probes.redis_url, decode_responses=True)
    try:
        ids = client.zrangebyscore(status_index("approved"), since, "+inf")
        payments = [client.hgetall(f"pay:{payment_id}") for payment_id in ids]
    finally:
        client.close()
    journal = [json.loads(line) for line in _lines(probes.journal)[journal_from:] if line.strip()]
    return approved_right(payments, journal, AMOUNT_MINOR)
