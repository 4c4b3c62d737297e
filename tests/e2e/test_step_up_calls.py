"""The ID step-up end to end: a callback the shipped rules step up, a real call from Asterisk to a
SIPp phone that keys the last 6 characters of the ID number (X keyed as *) before the PIN.

The order is in the name of Zhao Liu, whom the police know (identity: match), with the demo
cardholder's card, which the bank has not bound to Zhao Liu (binding: not_bound): ¥18.00 is
small enough for a step-up rather than a review (rules binding_not_bound, _over_20).
"""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from simulators.acquirer.testcards import find_test_card
from simulators.identity.registry import find_test_identity
from tests.e2e.test_callback_calls import finish, journal_for, order, states, submit
from tests.sipp import callback_calls as phone

pytestmark = pytest.mark.e2e

AMOUNT, AMOUNT_MINOR = "18.00", 1800
NAME, ZHAO_LIU = "Zhao Liu", find_test_identity("no-card").id_number
RIGHT = ZHAO_LIU[-6:].replace("X", "*")


def stepped_up_order(number: str, card, **extra) -> dict:
    return order(number, card, amount=AMOUNT, cardholder_name=NAME, id_number=ZHAO_LIU, **extra)



def test_step_up_passed_then_pin_approved(stack):
    card = find_test_card("approve")
    number = "13800138107"
    started = time.time()
    callee = stack.phone(phone.steps_up_with_id("cb_step_up_passed", [RIGHT], card.pin,
                                                language="zh", amount_minor=AMOUNT_MINOR), number)
    payment = submit(stack, stepped_up_order(number, card))
    assert callee.wait(timeout=150) == 0, finish(callee)
    payment = stack.wait_for(payment["id"], {"approved", "declined", "failed", "abandoned"})
    assert payment["status"] == "approved", payment["history"]
    assert payment["internal"]["risk_outcome"] == "step_up"
    assert states(payment) == ["created", "risk_passed", "calling", "answered", "confirmed",
                               "confirmed", "pin_entry", "authorizing", "approved"]
    assert "ID step-up passed" in [h["reason"] for h in payment["history"]]
    seen = journal_for(stack, payment["internal"]["stan"], started)
    assert [(e["mti"], e["response_code"], e["amount"]) for e in seen] == [("0200", "00", AMOUNT_MINOR)]
    played = stack.prompt_names(f"voicepay callback {payment['id']}")
    assert played.index("enter_id_last6") < played.index("enter_pin"), played


def test_step_up_failed_ends_without_a_pin(stack):
    card = find_test_card("approve")
    number = "13800138108"
    started = time.time()
    wrong = ["310021", "123456", "31002"]  # the last is too short: wrong too
    callee = stack.phone(phone.steps_up_with_id("cb_step_up_failed", wrong, None, language="en",
                                                amount_minor=AMOUNT_MINOR), number)
    payment = submit(stack, stepped_up_order(number, card, language="en"))
    assert callee.wait(timeout=150) == 0, finish(callee)
    payment = stack.wait_for(payment["id"], {"approved", "declined", "failed", "abandoned"})
    assert payment["status"] == "failed", payment["history"]
    reasons = [h["reason"] for h in payment["history"]]
    assert reasons[-1] == "ID step-up failed: 3 wrong answers; no PIN was asked for"
    assert [r for r in reasons if r.startswith("ID step-up failed (attempt")] == [
        f"ID step-up failed (attempt {n} of 3)" for n in (1, 2, 3)]
    played = stack.prompt_names(f"voicepay callback {payment['id']}")
    assert played.count("enter_id_last6") == 3 and "id_check_failed" in played, played
    assert "enter_pin" not in played
    assert "stan" not in payment["internal"]
    assert [e for e in stack.journal() if e["amount"] == AMOUNT_MINOR
            and datetime.fromisoformat(e["time"]).timestamp() >= started] == []
