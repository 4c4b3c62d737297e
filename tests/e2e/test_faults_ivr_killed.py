"""The ivr service SIGKILLed mid-payment, then restarted by the supervisor (issue 14, fault suite).

Each test kills the service at one moment of a real call (the authorization in flight, the PIN
prompt, a callback ringing) and ends with the invariant checker of tests/e2e/faults.py: every
payment final, every charge owned by one approved payment or reversed, no phone called twice for
one attempt.
"""

from __future__ import annotations

import dataclasses

import pytest

from simulators.acquirer.testcards import find_test_card
from tests.e2e.faults import FAULT_SETTINGS, faults_fixture, phone_port  # noqa: F401  (the fixture)
from tests.e2e.test_callback_calls import order, submit
from tests.sipp import callback_calls as phone
from tests.sipp import selfservice_calls as calls
from tests.sipp.scenario import Call

pytestmark = pytest.mark.e2e

AUTHORIZING_DEADLINE_S = float(FAULT_SETTINGS["VOICEPAY_RECOVERY_AUTHORIZING_DEADLINE_S"])
CALL_DEADLINE_S = float(FAULT_SETTINGS["VOICEPAY_RECOVERY_CALL_DEADLINE_S"])
# On top of a deadline: the supervisor's restart, a sweep period, a reversal's round trip.
SETTLE_MARGIN_S = 20


def reasons(payment: dict) -> list[str]:
    return [h["reason"] for h in payment["history"]]


def test_killed_while_authorizing_is_reversed_and_failed(stack, faults):
    """The issuer keeps the acquirer silent (8 s, then it charges the card); the service dies
    with the purchase in flight. After the restart the recovery sweep reverses it by its STAN
    and fails the payment: the charge the acquirer made is undone, the payment is final."""
    watch = faults.watch()
    mobile = "13600000041"
    caller = stack.start_call(dataclasses.replace(calls.issuer_timeout(mobile),
                                                  name="kill_authorizing"))
    payment_id = faults.payment_of_mobile(mobile, watch.started)
    faults.wait_status(payment_id, {"authorizing"})
    faults.kill_ivr()
    caller.wait(timeout=60)  # Asterisk lost the AGI session: the caller hears the apology

    verdict = watch.check(settle_within=AUTHORIZING_DEADLINE_S + SETTLE_MARGIN_S, expected=1)
    payment = verdict.payments[payment_id]
    assert payment["status"] == "failed"
    assert reasons(payment)[-1] == ("authorization outcome unknown (its call lost or the acquirer "
                                    "silent past the deadline); reversed (acknowledged)")
    # The acquirer charged the card when the issuer answered; the reversal undid it.
    assert ("0400", "00") in verdict.journal_for(payment["stan"])


def test_killed_at_pin_prompt_is_abandoned_and_nothing_reaches_the_acquirer(stack, faults):
    card = find_test_card("approve")
    watch = faults.watch()
    mobile = "13600000042"
    # Keys the order, then listens to the PIN prompt without keying: the service dies meanwhile.
    caller = stack.start_call(Call("kill_at_pin", calls.NUMBER, calls.order(mobile, card.pan + "#")))
    payment_id = faults.payment_of_mobile(mobile, watch.started)
    faults.wait_status(payment_id, {"pin_entry"})
    faults.kill_ivr()
    # Asterisk lost the AGI session and hangs up (on SIPp's pause: SIPp counts it as failed).
    caller.wait(timeout=60)

    verdict = watch.check(settle_within=CALL_DEADLINE_S + SETTLE_MARGIN_S, expected=1)
    payment = verdict.payments[payment_id]
    assert payment["status"] == "abandoned"
    assert reasons(payment)[-1].endswith("no longer exists; abandoned by recovery")
    assert "stan" not in payment
    assert verdict.journal == []


def test_killed_while_callback_rings_places_no_second_call(stack, faults):
    """The phone rings (attempt 1) when the service dies. The restarted service never places
    attempt 1 again; once its ring time is over it counts it unanswered and places attempt 2
    once, which the cardholder answers and pays."""
    card = find_test_card("approve")
    number = "13800138101"
    watch = faults.watch()
    ringing = stack.phone(phone.never_answers("kill_ringing"), number)
    payment = submit(stack, order(number, card, amount="31.00", language="en"))
    faults.phone_called(number, 1, watch.started)
    faults.kill_ivr()
    assert ringing.wait(timeout=60) == 0, ringing.stdout.read()  # Asterisk's ring timeout

    answering = stack.phone(phone.pays_with_pin("kill_ringing_retry", [card.pin], language="en",
                                                amount_minor=3100), number)
    assert answering.wait(timeout=120) == 0, answering.stdout.read()
    verdict = watch.check(settle_within=SETTLE_MARGIN_S, expected=1)
    final = verdict.payments[payment["id"]]
    assert final["status"] == "approved"
    assert verdict.invites[phone_port(number)] == 2
    attempts = [r for r in reasons(final) if r.startswith("attempt")]
    assert attempts == ["attempt 1 of 3", "attempt 1: no result (its instance stopped)",
                        "attempt 2 of 3"], attempts
