"""The AMI connection cut, and Asterisk restarted, during calls (issue 14, fault suite).

tests/e2e/test_callback_calls.py already cuts AMI while a phone rings and then answers. Here the
phone does not answer: the OriginateResponse that would have said so was due on the connection
that was cut, so the dialer never hears how attempt 1 ended, and must neither wait on it for
ever nor place it a second time.
"""

from __future__ import annotations

import signal
import subprocess

import pytest

from simulators.acquirer.testcards import find_test_card
from tests.e2e.faults import (ATTEMPT_PLACED, FAULT_SETTINGS, faults_fixture,  # noqa: F401  (the fixture)
                              phone_port, wait_until)
from tests.e2e.test_callback_calls import order, submit
from tests.sipp import callback_calls as phone
from tests.sipp import selfservice_calls as calls
from tests.sipp.scenario import Call

pytestmark = pytest.mark.e2e

CALL_DEADLINE_S = float(FAULT_SETTINGS["VOICEPAY_RECOVERY_CALL_DEADLINE_S"])
SETTLE_MARGIN_S = 20


def reasons(payment: dict) -> list[str]:
    return [h["reason"] for h in payment["history"]]


def cut_ami(stack) -> None:
    """Reset the ivr service's AMI connection under it, as a network fault would."""
    killed = subprocess.run(["ss", "-K", "dst", "127.0.0.1", "dport", "=",
                             str(stack.settings.ami_port)], capture_output=True, text=True)
    assert killed.returncode == 0, killed.stderr


def test_ami_cut_while_an_unanswered_callback_rings_places_each_attempt_once(stack, faults):
    card = find_test_card("approve")
    number = "13800138106"
    watch = faults.watch()
    mark = stack.asterisk_mark()
    ringing = stack.phone(phone.never_answers("ami_cut_ringing"), number)
    payment = submit(stack, order(number, card, amount="32.00", language="en"))
    wait_until("the phone to ring", lambda: stack.ringing(number, mark), 20)
    cut_ami(stack)
    assert ringing.wait(timeout=60) == 0, ringing.stdout.read()  # Asterisk's ring timeout
    wait_until("the service to log in to AMI again",
               lambda: faults.healthz()[1]["checks"]["ami"]["ok"], 15)

    answering = stack.phone(phone.pays_with_pin("ami_cut_retry", [card.pin], language="en",
                                                amount_minor=3200), number)
    assert answering.wait(timeout=120) == 0, answering.stdout.read()
    verdict = watch.check(settle_within=SETTLE_MARGIN_S, expected=1)
    final = verdict.payments[payment["id"]]
    assert final["status"] == "approved", reasons(final)
    assert verdict.invites[phone_port(number)] == 2
    attempts = [r for r in reasons(final) if r.startswith("attempt")]
    assert [r for r in attempts if ATTEMPT_PLACED.match(r)] == ["attempt 1 of 3", "attempt 2 of 3"]
    # Attempt 1 was settled as not answered before attempt 2 was placed.
    assert attempts[1].startswith("attempt 1: "), attempts


def test_asterisk_restarted_during_a_call_ends_the_payment_and_charges_nothing(stack, faults):
    card = find_test_card("approve")
    watch = faults.watch()
    mobile = "13600000061"
    # Keys the order, then listens to the PIN prompt: Asterisk dies under the call meanwhile.
    caller = stack.start_call(Call("asterisk_restart", calls.NUMBER,
                                   calls.order(mobile, card.pan + "#"), hang_up_after_ms=120000))
    payment_id = faults.payment_of_mobile(mobile, watch.started)
    faults.wait_status(payment_id, {"pin_entry"})
    faults.processes.kill("asterisk", signal.SIGKILL)  # returns once it is back, fully booted
    caller.kill()  # its call died with the old Asterisk; SIPp would wait out its pause
    caller.communicate(timeout=10)

    verdict = watch.check(settle_within=CALL_DEADLINE_S + SETTLE_MARGIN_S, expected=1)
    payment = verdict.payments[payment_id]
    assert payment["status"] == "abandoned", reasons(payment)
    assert "stan" not in payment
    assert verdict.journal == []
    # The service found the new Asterisk by itself: AMI logged in again, Asterisk answers.
    health = wait_until("the service to see Asterisk again",
                        lambda: (h := faults.healthz()[1])["checks"]["ami"]["ok"]
                        and h["checks"]["asterisk"]["ok"] and h, 30)
    assert health["ok"], health
