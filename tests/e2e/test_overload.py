"""Past the knee, on the real stack (README "Past the knee"): Asterisk full refuses a new call
with SIP 503 before answering it while the calls it carries pay with every digit read; the ivr
service full answers a new self-service call with "all lines are busy" and hangs up; the
machine's CPUs busy, the ivr service's CPU guard has Asterisk refuse new calls with 503.

The limits are set low for these tests through the same paths as the settings: the dialplan
global written from ``max_payment_calls`` (devstack/dialplan_globals.py) and reloaded, and the
ivr service restarted with ``VOICEPAY_AGI_MAX_SESSIONS``; both are put back afterwards.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.load.measure import REFUSED_RTD, SippCounts, rtt_ms, sipp_counts
from devstack.dialplan_globals import write_globals
from ivr import dialplan_variables as dv
from ivr.config import load_settings
from simulators.acquirer.testcards import find_test_card
from tests.e2e.test_callback_calls import finish, order, submit
from tests.sipp import callback_calls as phone
from tests.sipp import selfservice_calls as calls
from tests.sipp.scenario import Call, write_scenario

pytestmark = pytest.mark.e2e

LIMIT = 2
SELFSERVICE_MARKER = "voicepay self-service top-up"  # the NoOp of dialplan/selfservice.conf
CARD = find_test_card("approve")


def _sandbox(stack):
    if stack.processes is None:
        pytest.fail("the overload tests change Asterisk's limit and restart the ivr service: they "
                    "need the stack the tests start (unset VOICEPAY_E2E_USE_RUNNING)", pytrace=False)
    return stack.processes.asterisk


def _set_limit(sandbox, settings) -> None:
    write_globals(settings, sandbox.generated_dir)
    sandbox.cli("dialplan reload")
    shown = sandbox.cli("dialplan show globals")
    assert f"{dv.MAX_PAYMENT_CALLS}={settings.max_payment_calls}" in shown, shown


def _payment_calls(sandbox) -> int:
    """Channels in the admission group now (dialplan/admission.conf)."""
    return sum("payment-calls" in line for line in sandbox.cli("group show channels").splitlines())


@pytest.fixture
def asterisk_limit(stack) -> Iterator[object]:
    """Asterisk carrying at most LIMIT payment calls, from an idle start."""
    sandbox = _sandbox(stack)
    assert stack.wait_until(lambda: _payment_calls(sandbox) == 0, 60), \
        "calls of an earlier test are still up"
    _set_limit(sandbox, load_settings(max_payment_calls=LIMIT))
    try:
        yield sandbox
    finally:
        _set_limit(sandbox, stack.settings)


@dataclasses.dataclass
class CountedCall:
    """A refusable call whose outcome SIPp counts (the benchmark's -trace_stat and -trace_rtt)."""

    process: subprocess.Popen
    directory: Path

    def counts(self) -> SippCounts:
        return sipp_counts((self.directory / "stat.csv").read_text())

    def refusal_ms(self) -> list[float]:
        return [ms for path in self.directory.glob("*_rtt.csv")
                for ms in rtt_ms(path.read_text(), REFUSED_RTD)]


def _start_counted(stack, call: Call, media_port: int) -> CountedCall:
    directory = stack.work_dir / f"overload-{call.name}"
    scenario = write_scenario(dataclasses.replace(call, refusable=True), directory)
    argv = ["sipp", "127.0.0.1:5060", "-sf", scenario.name, "-m", "1", "-l", "1",
            "-i", "127.0.0.1", "-p", "0", "-mi", "127.0.0.1", "-mp", str(media_port),
            "-nostdin", "-timeout", "240s", "-timeout_error",
            "-trace_err", "-error_file", str(directory / "errors.log"),
            "-trace_stat", "-stf", str(directory / "stat.csv"), "-fd", "1",
            "-trace_rtt", "-rtt_freq", "1"]
    process = subprocess.Popen(argv, cwd=directory, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    stack.started.append(process)
    return CountedCall(process, directory)


def _ended(process: subprocess.Popen, what: str) -> None:
    out, _ = process.communicate(timeout=240)
    assert process.returncode == 0, f"SIPp's {what} failed:\n{out[-2000:]}"


def _approved_right(stack, mobile: str, before: set[str]) -> None:
    """The call's payment approved with every digit read (mobile, card, PIN) and charged the
    right amount at the acquirer, under the payment's RRN."""
    payment = stack.new_payment(mobile, before)
    assert payment["status"] == "approved", payment["history"]
    assert (payment["amount"], payment["topup_number"]) == ("50.00", mobile)
    assert (payment["pan_first6"], payment["pan_last4"]) == (CARD.pan[:6], CARD.pan[-4:])
    charged = [e for e in stack.journal() if e.get("rrn") == payment["rrn"]]
    assert [(e["mti"], e["response_code"], e["amount"]) for e in charged] == [("0200", "00", 5000)]


def _named(call: Call, name: str) -> Call:
    return dataclasses.replace(call, name=name)


def test_only_a_backlog_in_pjsip_itself_silences_sip(stack):
    """A backlog of AMI events (the manager's router, what backs up at the knee) must not make
    Asterisk ignore new INVITEs: the guard the running Asterisk loaded is PJSIP's own."""
    shown = _sandbox(stack).cli("pjsip show settings")
    [line] = [line for line in shown.splitlines() if "taskprocessor_overload_trigger" in line]
    assert line.split(":", 1)[1].strip() == "pjsip_only", line


def test_asterisk_full_refuses_a_new_call_with_503_and_the_calls_in_progress_pay(
        stack, asterisk_limit):
    sandbox = asterisk_limit
    before = stack.payment_ids()
    mobiles = ("13800000911", "13800000912", "13800000913")
    # Two calls in progress, the first one refusable too: admitted, it must be counted completed.
    first = _start_counted(stack, _named(calls.approved(mobiles[0]), "overload-first"), 16200)
    second = stack.start_call(_named(calls.approved(mobiles[1]), "overload-second"),
                              media_port=16400)
    assert stack.wait_until(lambda: _payment_calls(sandbox) == LIMIT, 30), \
        "the two calls never both reached the dialplan"

    third = _start_counted(stack, _named(calls.approved(mobiles[2]), "overload-third"), 16600)
    _ended(third.process, "third call")
    assert third.counts() == SippCounts(placed=1, completed=0, failed=0, refused=1)
    print(f"INVITE to 503: {third.refusal_ms()} ms")
    assert len(third.refusal_ms()) == 1

    _ended(first.process, "first call")
    _ended(second, "second call")
    assert first.counts() == SippCounts(placed=1, completed=1, failed=0, refused=0)
    for mobile in mobiles[:2]:
        _approved_right(stack, mobile, before)
    refused = [p for p in stack.get("/v1/payments?limit=200")["payments"]
               if p["id"] not in before and p.get("topup_number") == mobiles[2]]
    assert refused == []


def test_asterisk_full_a_callback_waits_for_a_free_line_then_pays(stack, asterisk_limit):
    """Asterisk never refuses a callback the cardholder answers, so the dialer keeps callbacks
    within the limit: with two payment calls up (the limit), a callback ordered waits in
    ``calling``, its cardholder's phone not rung, until a call ends; then it is placed, as
    attempt 1, and pays."""
    sandbox = asterisk_limit
    before = stack.payment_ids()
    mobiles = ("13800000915", "13800000916")
    calls_up = [stack.start_call(_named(calls.approved(mobile), f"overload-cb-{n}"),
                                 media_port=16200 + 200 * n) for n, mobile in enumerate(mobiles)]
    assert stack.wait_until(lambda: _payment_calls(sandbox) == LIMIT, 30), \
        "the two calls never both reached the dialplan"
    number = "13800138106"
    callee = stack.phone(phone.pays_with_pin("overload_callback", [CARD.pin], language="zh",
                                             amount_minor=8800), number)
    payment = submit(stack, order(number, CARD))
    waiting = "waiting for a free line: Asterisk carries 2 payment calls, its limit is 2"

    def reasons() -> list[str]:
        return [h["reason"] for h in stack.get(f"/v1/payments/{payment['id']}")["history"]]
    assert stack.wait_until(lambda: waiting in reasons(), 15), reasons()
    # Asked again every few seconds while both calls last: never placed meanwhile.
    while _payment_calls(sandbox) == LIMIT:
        assert not [r for r in reasons() if r.startswith("attempt")], reasons()
        time.sleep(0.5)

    assert callee.wait(timeout=120) == 0, finish(callee)
    final = stack.wait_for(payment["id"], {"approved", "declined", "failed", "abandoned",
                                           "expired"})
    assert final["status"] == "approved", final["history"]
    said = [h["reason"] for h in final["history"]]
    assert said.index(waiting) < said.index("attempt 1 of 3"), said
    for process, mobile in zip(calls_up, mobiles):
        _ended(process, f"call {mobile}")
        _approved_right(stack, mobile, before)


@pytest.fixture
def ivr_limit(stack) -> Iterator[None]:
    """The ivr service running at most one flow at once; the suite's service afterwards."""
    with stack.ivr_restarted_with("the overload tests", VOICEPAY_AGI_MAX_SESSIONS="1"):
        yield


def test_the_ivr_service_full_says_all_lines_are_busy_and_the_call_in_progress_pays(
        stack, ivr_limit):
    before = stack.payment_ids()
    mobile = "13800000914"
    mark = stack.asterisk_mark()
    in_progress = stack.start_call(_named(calls.approved(mobile), "busy-first"), media_port=16200)
    stack.wait_for_prompt(SELFSERVICE_MARKER, "topup_welcome", since=mark)

    mark = stack.asterisk_mark()
    result = stack.call(Call("busy-second", calls.NUMBER, []))  # waits for the IVR's BYE
    assert result.returncode == 0, f"the second call did not end cleanly:\n{result.stdout[-2000:]}"
    heard = stack.prompts_played(SELFSERVICE_MARKER, since=mark)
    assert [Path(path).stem for path in heard] == ["lines_busy"], heard
    assert "/zh/" in heard[0]  # the line's language

    _ended(in_progress, "call in progress")
    _approved_right(stack, mobile, before)


def _cpu_full_until(sandbox) -> int:
    """VOICEPAY_CPU_FULL_UNTIL as the running dialplan has it (ivr/cpu_guard.py)."""
    shown = sandbox.cli("dialplan show globals")
    [value] = [line.split("=", 1)[1].strip() for line in shown.splitlines()
               if line.strip().startswith(f"{dv.CPU_FULL_UNTIL}=")]
    return int(value)


def test_the_machines_cpus_busy_refuse_a_new_call_with_503_then_calls_pay_again(stack):
    """The ivr service with its CPU guard at 95 % (the suite runs it off: conftest.py) and both
    cores kept busy (a busy loop each, as a machine past its knee): within the guard's window it
    publishes its refusal, and a new call hears 503 before it is answered. The service back
    without the guard, its last refusal runs out by itself and the next call pays."""
    sandbox = _sandbox(stack)
    processes = stack.processes
    before = stack.payment_ids()
    mark = stack.asterisk_mark()
    with stack.ivr_restarted_with("the overload tests", VOICEPAY_ADMIT_CPU_BUSY_PERCENT="95"):
        # At the lowest priority: they take only what nothing else wants (the other shards'
        # calls keep their CPU), and that still leaves the cores 100 % busy, which the guard reads.
        burners = [subprocess.Popen(["nice", "-n", "19", sys.executable, "-c", "while True: pass"])
                   for _ in range(2)]
        try:
            assert stack.wait_until(lambda: _cpu_full_until(sandbox) > time.time(), 30), \
                "the guard never closed with both cores busy"
            refused = _start_counted(stack, _named(calls.approved("13800000917"), "cpu-refused"),
                                     16200)
            _ended(refused.process, "call while the CPUs were busy")
        finally:
            for burner in burners:
                burner.kill()
                burner.wait()
    assert refused.counts() == SippCounts(placed=1, completed=0, failed=0, refused=1)
    said = (processes.log_dir / "ivr.log").read_text(encoding="utf-8")
    assert "new payment calls are refused with 503" in said
    assert any("refused with 503: the machine's CPUs are too busy for another payment call"
               in line for line in stack.asterisk_lines(mark))

    assert stack.wait_until(lambda: _cpu_full_until(sandbox) < time.time(), 15), \
        "a stopped guard's refusal did not run out"
    mobile = "13800000918"
    result = stack.call(_named(calls.approved(mobile), "cpu-open-again"))
    assert result.returncode == 0, f"the call after the guard did not pay:\n{result.stdout[-2000:]}"
    _approved_right(stack, mobile, before)
