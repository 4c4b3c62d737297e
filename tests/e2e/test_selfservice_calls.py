"""Self-service top-up calls through real Asterisk, placed by SIPp with RFC 4733 DTMF.

Each test dials 8000, keys what a cardholder would, and then checks the payment through the HTTP
API and what the acquirer simulator journaled. Every test uses its own top-up mobile number, which
is how it finds its payment.
"""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from simulators.acquirer.settings import load_acquirer_settings
from simulators.acquirer.testcards import find_test_card
from tests.sipp import selfservice_calls as calls

pytestmark = pytest.mark.e2e


def place(stack, call, mobile: str) -> dict:
    """Place ``call``, which tops up ``mobile``; returns the payment that call created."""
    before = stack.payment_ids()
    result = stack.call(call)
    assert result.returncode == 0, f"SIPp scenario {call.name} failed:\n{result.stdout[-2000:]}"
    return stack.new_payment(mobile, before)


def journal_since(stack, started: float, masked_pan: str) -> list[dict]:
    return [e for e in stack.journal()
            if e.get("pan") == masked_pan and datetime.fromisoformat(e["time"]).timestamp() >= started]


def masked(pan: str) -> str:
    return f"{pan[:6]}******{pan[-4:]}"


def test_approved_with_repeated_digit_pin(stack):
    card = find_test_card("approve")  # its PIN repeats digits, which must survive RFC 4733
    started = time.time()
    mobile = "13800000001"
    payment = place(stack, calls.approved(mobile), mobile)
    assert payment["status"] == "approved"
    assert payment["amount"] == "50.00"
    assert payment["response_code"] == "00"
    assert (payment["pan_first6"], payment["pan_last4"]) == (card.pan[:6], card.pan[-4:])
    assert [h["state"] for h in payment["history"]] == ["created", "pin_entry", "authorizing",
                                                        "approved"]
    seen = journal_since(stack, started, masked(card.pan))
    assert [(e["mti"], e["response_code"], e["amount"]) for e in seen] == [("0200", "00", 5000)]
    assert seen[0]["stan"] == payment["internal"]["stan"] and seen[0]["rrn"] == payment["rrn"]


def test_wrong_pin_then_right_pin(stack):
    card = find_test_card("wrong_pin")
    started = time.time()
    mobile = "13800000002"
    payment = place(stack, calls.wrong_then_right_pin(mobile), mobile)
    assert payment["status"] == "approved"
    assert payment["amount"] == "100.00"
    assert payment["internal"]["pin_attempts"] == "2"
    states = [h["state"] for h in payment["history"]]
    assert states == ["created", "pin_entry", "authorizing", "pin_entry", "authorizing", "approved"]
    assert payment["history"][3]["reason"].startswith("55")
    seen = journal_since(stack, started, masked(card.pan))
    assert [(e["mti"], e["response_code"]) for e in seen] == [("0200", "55"), ("0200", "00")]


def test_luhn_invalid_card_is_reprompted(stack):
    card = find_test_card("approve_19")
    bad = card.pan[:-1] + str((int(card.pan[-1]) + 1) % 10)  # one digit off: fails Luhn
    mobile = "13900000003"
    started = time.time()
    payment = place(stack, calls.luhn_reprompt(mobile), mobile)
    assert payment["status"] == "approved"
    assert payment["amount"] == "200.00"
    assert payment["pan_last4"] == card.pan[-4:]
    # The acquirer only ever saw the corrected card.
    assert [e["response_code"] for e in journal_since(stack, started, masked(card.pan))] == ["00"]
    assert journal_since(stack, started, masked(bad)) == []


def test_insufficient_funds_is_declined(stack):
    card = find_test_card("insufficient_funds")
    mobile = "13700000004"
    started = time.time()
    payment = place(stack, calls.insufficient_funds(mobile), mobile)
    assert payment["status"] == "declined"
    assert payment["response_code"] == "51"
    assert [(e["mti"], e["response_code"]) for e in journal_since(stack, started, masked(card.pan))] \
        == [("0200", "51")]


def test_issuer_timeout_fails_and_is_reversed(stack):
    card = find_test_card("issuer_timeout")
    mobile = "13600000005"
    started = time.time()
    payment = place(stack, calls.issuer_timeout(mobile), mobile)
    assert payment["status"] == "failed"
    # The reversal is what the acquirer journaled, not what the IVR's reason text says.
    # The simulator answers the late original only after the issuer delay: wait for it.
    stack.wait_until(lambda: any(e["mti"] == "0200"
                                 for e in journal_since(stack, started, masked(card.pan))),
                     timeout=load_acquirer_settings().issuer_delay + 5)
    seen = journal_since(stack, started, masked(card.pan))
    by_mti = {e["mti"]: e for e in seen}
    assert sorted(by_mti) == ["0200", "0400"], seen
    assert (by_mti["0400"]["stan"], by_mti["0400"]["response_code"]) == (payment["internal"]["stan"], "00")
    original = by_mti["0200"]
    assert original["stan"] == payment["internal"]["stan"] and original["reversed"] is True
    assert original["response_code"] != "00"  # never charged


def test_hang_up_mid_pin_abandons_without_reaching_acquirer(stack):
    card = find_test_card("approve")
    mobile = "13500000006"
    started = time.time()
    payment = place(stack, calls.hangup_mid_pin(mobile), mobile)

    payment = stack.wait_for(payment["id"], {"abandoned"}, timeout=5)
    assert payment["status"] == "abandoned"
    assert [h["state"] for h in payment["history"]] == ["created", "pin_entry", "abandoned"]
    assert "stan" not in payment
    assert journal_since(stack, started, masked(card.pan)) == []


def test_shipped_qa_scenario_runs_as_is(stack):
    """QA runs tests/sipp/selfservice/*.xml by hand against `make run`: the shipped file must work."""
    scenario_dir = calls.SIPP_DIR / "selfservice"
    before = stack.payment_ids()
    result = stack.run_sipp(scenario_dir, "approved.xml")
    assert result.returncode == 0, result.stdout[-2000:]
    assert stack.new_payment("13800138001", before)["status"] == "approved"
