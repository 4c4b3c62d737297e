"""The ID step-up end to end: a callback the risk engine steps up (an amount at or over
VOICEPAY_RISK_STEP_UP_AMOUNT, 5000.00 by default), a real call from Asterisk to a SIPp phone that
keys the last 6 characters of the ID number (X keyed as *) before the PIN.
"""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from simulators.acquirer.testcards import find_test_card
from tests.e2e.test_callback_calls import ID_NUMBER, finish, journal_for, order, states, submit
from tests.sipp import callback_calls as phone

pytestmark = pytest.mark.e2e

AMOUNT, AMOUNT_MINOR = "5000.00", 500000  # the default step-up amount: stepped up
RIGHT = ID_NUMBER[-6:].replace("X", "*")


def test_step_up_passed_then_pin_approved(stack):
    card = find_test_card("approve")
    number = "13800138107"
    started = time.time()
    callee = stack.phone(phone.steps_up_with_id("cb_step_up_passed", [RIGHT], card.pin,
                                                language="zh", amount_minor=AMOUNT_MINOR), number)
    payment = submit(stack, order(number, card, amount=AMOUNT))
    assert callee.wait(timeout=150) == 0, finish(callee)
    payment = stack.wait_for(payment["id"], {"approved", "declined", "failed", "abandoned"})
    assert payment["status"] == "approved", payment["history"]
    assert payment["internal"]["risk_outcome"] == "step_up"
    assert states(payment) == ["created", "risk_passed", "calling", "answered", "confirmed",
                               "confirmed", "pin_entry", "authorizing", "approved"]
    assert "ID step-up passed" in [h["reason"] for h in payment["history"]]
    seen = journal_for(stack, payment["internal"]["stan"], started)
    assert [(e["mti"], e["response_code"], e["amount"]) for e in seen] == [("0200", "00", 500000)]
    heard = [p.rsplit("/", 1)[-1] for p in
             stack.prompts_played(f"voicepay callback {payment['id']}")]
    assert heard.index("enter_id_last6.slin") < heard.index("enter_pin.slin"), heard


def test_step_up_failed_ends_without_a_pin(stack):
    card = find_test_card("approve")
    number = "13800138108"
    started = time.time()
    wrong = ["310021", "123456", "31002"]  # the last is too short: wrong too
    callee = stack.phone(phone.steps_up_with_id("cb_step_up_failed", wrong, None, language="en",
                                                amount_minor=AMOUNT_MINOR), number)
    payment = submit(stack, order(number, card, amount=AMOUNT, language="en"))
    assert callee.wait(timeout=150) == 0, finish(callee)
    payment = stack.wait_for(payment["id"], {"approved", "declined", "failed", "abandoned"})
    assert payment["status"] == "failed", payment["history"]
    reasons = [h["reason"] for h in payment["history"]]
    assert reasons[-1] == "ID step-up failed: 3 wrong answers; no PIN was asked for"
    assert [r for r in reasons if r.startswith("ID step-up failed (attempt")] == [
        f"ID step-up failed (attempt {n} of 3)" for n in (1, 2, 3)]
    heard = [p.rsplit("/", 1)[-1] for p in
             stack.prompts_played(f"voicepay callback {payment['id']}")]
    assert heard.count("enter_id_last6.slin") == 3 and "id_check_failed.slin" in heard, heard
    assert "enter_pin.slin" not in heard
    assert "stan" not in payment["internal"]
    assert [e for e in stack.journal() if e["amount"] == AMOUNT_MINOR
            and datetime.fromisoformat(e["time"]).timestamp() >= started] == []
