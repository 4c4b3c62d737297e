"""The acquirer stopped, and the acquirer slow then recovered, during calls (issue 14, fault suite).

A slow issuer (the ``issuer_timeout`` test card: the acquirer answers late, the IVR reverses) is
covered by tests/e2e/test_selfservice_calls.py. Here the whole acquirer is down (nothing listens:
the purchase never leaves the IVR) or frozen (SIGSTOP: connections are accepted, nothing is
answered, neither the purchase nor its reversals, until it is thawed and works through all of
them at once).
"""

from __future__ import annotations

import pytest

from ivr.payments.recovery import UNKNOWN_OUTCOME
from simulators.acquirer.testcards import find_test_card
from tests.e2e.faults import FAULT_SETTINGS, faults_fixture  # noqa: F401  (the fixture)
from tests.sipp import selfservice_calls as calls
from tests.sipp.cues import Cues
from tests.sipp.scenario import Call, Key

pytestmark = pytest.mark.e2e

AUTHORIZING_DEADLINE_S = float(FAULT_SETTINGS["VOICEPAY_RECOVERY_AUTHORIZING_DEADLINE_S"])
SETTLE_MARGIN_S = 20


def reasons(payment: dict) -> list[str]:
    return [h["reason"] for h in payment["history"]]


def call_at_pin_prompt(stack, faults, name: str, mobile: str, card, since: float) -> tuple:
    """A self-service call keying its order, then waiting at the PIN prompt for the cue
    "PIN prompt"; returns (caller, cues, payment id) once the payment is in ``pin_entry``."""
    cues = Cues()
    caller = stack.start_call(Call(name, calls.NUMBER, [
        *calls.order(mobile, card.pan + "#"),
        Key(card.pin + "#", cue="PIN prompt", label="PIN"),
    ]), cues=cues)
    payment_id = faults.payment_of_mobile(mobile, since)
    faults.wait_status(payment_id, {"pin_entry"})
    return caller, cues, payment_id


def test_acquirer_stopped_fails_the_payment_and_charges_nothing(stack, faults):
    card = find_test_card("approve")
    watch = faults.watch()
    caller, cues, payment_id = call_at_pin_prompt(stack, faults, "acquirer_stopped",
                                                  "13600000071", card, watch.started)
    faults.processes.stop_component("acquirer")
    try:
        cues.send("PIN prompt")
        out, _ = caller.communicate(timeout=90)  # the caller hears it failed; the IVR hangs up
        assert caller.returncode == 0, out[-2000:]
        faults.wait_status(payment_id, {"failed"}, timeout=10)
    finally:
        faults.processes.start_component("acquirer")

    payment = faults.record(payment_id)
    verdict = watch.check(settle_within=10, expected=1, unsent=frozenset({payment["stan"]}))
    payment = verdict.payments[payment_id]
    assert reasons(payment)[-1] == "acquirer unreachable"
    assert verdict.journal == []


def test_acquirer_frozen_then_thawed_leaves_no_charge_standing(stack, faults):
    """The acquirer freezes with the PIN on its way: the IVR's purchase and its reversals all
    go unanswered, so it leaves the payment ``authorizing`` for recovery and tells the caller.
    Thawed, the acquirer answers them all, late; recovery's reversal then settles the payment
    as failed, and whatever the acquirer charged late is reversed. (With the suite's short
    deadline recovery starts reversing while the IVR's own reversals still wait: a purchase
    reversed twice is refunded once.)"""
    card = find_test_card("approve")
    watch = faults.watch()
    caller, cues, payment_id = call_at_pin_prompt(stack, faults, "acquirer_frozen",
                                                  "13600000072", card, watch.started)
    with faults.paused("acquirer"):
        cues.send("PIN prompt")
        out, _ = caller.communicate(timeout=120)
        assert caller.returncode == 0, out[-2000:]
        assert any("left authorizing for recovery" in r for r in reasons(faults.record(payment_id))), \
            reasons(faults.record(payment_id))

    verdict = watch.check(settle_within=AUTHORIZING_DEADLINE_S + SETTLE_MARGIN_S, expected=1)
    payment = verdict.payments[payment_id]
    assert payment["status"] == "failed", reasons(payment)
    assert reasons(payment)[-1] in {
        f"{UNKNOWN_OUTCOME}; reversed (acknowledged)",
        f"{UNKNOWN_OUTCOME}; the acquirer never received it (25), nothing charged"}, reasons(payment)
    # The frozen acquirer did receive the purchase: it is in the journal, and not charged.
    assert "0200" in {mti for mti, _ in verdict.journal_for(payment["stan"])}, verdict.journal
