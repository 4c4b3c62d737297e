"""Callback payments end to end: a signed merchant order, a real call from Asterisk to a SIPp
phone, RFC 4733 digits back, and the result through the API and the acquirer's journal.

Test cardholder numbers 1380013810N ring a SIPp UAS on 127.0.0.1:507N (asterisk-conf/pjsip.conf).
"""

from __future__ import annotations

import dataclasses
import subprocess
import time
from datetime import datetime
from pathlib import PurePosixPath

import pytest

from simulators.acquirer.testcards import find_test_card
from simulators.identity.registry import find_test_identity
from tests.sipp import callback_calls as phone

pytestmark = pytest.mark.e2e

ID_NUMBER = find_test_identity("demo").id_number  # a well-formed GB 11643 test number


def order(number: str, card, *, amount: str = "88.00", language: str = "zh", **extra) -> dict:
    return {
        "merchant_order_id": f"T{int(time.time() * 1000)}{number[-1]}",
        "amount": amount,
        "description": "Phone bill",
        "card_number": card.pan,
        "cardholder_name": "Zhang San",
        "id_number": ID_NUMBER,
        "mobile": number,
        "mode": "callback",
        "language": language,
        **extra,
    }


def submit(stack, body: dict) -> dict:
    status, payment = stack.merchant_request("POST", "/v1/payments", body)
    assert status == 201, payment
    assert payment["status"] in {"risk_passed", "calling"}, payment
    return payment


def finish(callee_process, timeout: float = 200) -> str:
    out, _ = callee_process.communicate(timeout=timeout)
    return out


def journal_for(stack, stan: str, since: float) -> list[dict]:
    return [e for e in stack.journal()
            if e.get("stan") == stan and datetime.fromisoformat(e["time"]).timestamp() >= since]


def states(payment: dict) -> list[str]:
    """The states the payment went through: its history without the dialer's "ringing" notes."""
    return [h["state"] for h in payment["history"] if h.get("event") != "ringing"]


def test_debit_card_approved_in_cantonese(stack):
    """A Cantonese order: every prompt from the yue set, the merchant's name synthesized in
    Cantonese at run time, each played from its .ulaw file (no transcoding)."""
    card = find_test_card("approve")
    number = "13800138101"
    callee = stack.phone(phone.pays_with_pin("cb_cantonese", [card.pin], language="yue",
                                             amount_minor=100110), number)
    payment = submit(stack, order(number, card, amount="1001.10", language="yue"))
    assert callee.wait(timeout=120) == 0, finish(callee)
    payment = stack.wait_for(payment["id"], {"approved", "declined", "failed", "abandoned"})
    assert payment["status"] == "approved" and payment["language"] == "yue"
    heard = [PurePosixPath(p) for p in stack.prompts_played(f"voicepay callback {payment['id']}")]
    assert heard[1].parent.name == "voicepay-names", heard
    rest = heard[:1] + heard[2:]
    assert {p.parent.name for p in rest} == {"yue"}, heard
    # 一千零一元一角, said in Cantonese.
    assert [p.stem for p in heard[2:9]] == ["callback_amount", "num_1", "num_qian", "num_0",
                                            "num_1", "currency_yuan", "num_1"]
    assert {p.suffix for p in heard} == {".ulaw"}, heard


def test_debit_card_approved_in_mandarin(stack):
    card = find_test_card("approve")
    number = "13800138101"
    started = time.time()
    callee = stack.phone(phone.pays_with_pin("cb_debit", [card.pin], language="zh",
                                             amount_minor=8800), number)
    payment = submit(stack, order(number, card))
    assert callee.wait(timeout=120) == 0, finish(callee)
    payment = stack.wait_for(payment["id"], {"approved", "declined", "failed", "abandoned"})
    assert payment["status"] == "approved"
    assert payment["card_type"] == "debit"
    assert states(payment) == ["created", "risk_passed", "calling", "answered", "confirmed",
                               "pin_entry", "authorizing", "approved"]
    seen = journal_for(stack, payment["internal"]["stan"], started)
    assert [(e["mti"], e["response_code"], e["amount"]) for e in seen] == [("0200", "00", 8800)]
    # What the cardholder heard was Mandarin: every prompt of this call from the zh set, but the
    # merchant's name, synthesized by the ivr service into its cache (ivr/spoken_names.py).
    heard = stack.prompts_played(f"voicepay callback {payment['id']}")
    assert heard and heard[0].endswith("/zh/callback_intro.ulaw"), heard
    assert "/voicepay-names/" in heard[1], heard
    assert [p for p in heard[:1] + heard[2:] if "/sounds/zh/" not in p] == []
    # The result, then the reference number read out digit by digit (one Playback list), then
    # goodbye: every digit of the acquirer's RRN, in order.
    names = [PurePosixPath(p).stem for p in heard]
    readout = names[names.index("approved") + 1:]
    assert readout == [f"digit_{d}" for d in payment["rrn"]] + ["goodbye"], names


def test_credit_card_approved_with_expiry_and_cvv2(stack):
    card = find_test_card("credit_approve")
    number = "13800138102"
    started = time.time()
    expiry_mmyy = card.expiry[2:] + card.expiry[:2]
    callee = stack.phone(phone.pays_with_expiry_and_cvv2("cb_credit", expiry_mmyy, card.cvv2,
                                                         language="en", amount_minor=12345), number)
    payment = submit(stack, order(number, card, amount="123.45", language="en"))
    assert callee.wait(timeout=120) == 0, finish(callee)
    payment = stack.wait_for(payment["id"], {"approved", "declined", "failed", "abandoned"})
    assert payment["status"] == "approved", payment["history"]
    assert payment["card_type"] == "credit"
    seen = journal_for(stack, payment["internal"]["stan"], started)
    assert [(e["mti"], e["response_code"], e["amount"]) for e in seen] == [("0200", "00", 12345)]


def test_1_keyed_during_the_readout_answers_the_menu(stack):
    """Issue 13: "1" pressed while the merchant and amount are read out is the menu's answer; the
    PIN asked next gets the PIN, all of it, and is approved at the first try."""
    card = find_test_card("approve")
    number = "13800138105"
    callee = stack.phone(phone.keys_1_during_the_readout("cb_early_1", card.pin, language="zh",
                                                         amount_minor=8800), number)
    payment = submit(stack, order(number, card))
    assert callee.wait(timeout=120) == 0, finish(callee)
    payment = stack.wait_for(payment["id"], {"approved", "declined", "failed", "abandoned"})
    assert payment["status"] == "approved", payment["history"]
    assert payment["internal"]["pin_attempts"] == "1"
    heard = stack.prompt_names(f"voicepay callback {payment['id']}")
    # The key cut the readout short: the menu was never asked, the PIN prompt came next.
    assert "confirm_menu" not in heard and "enter_pin" in heard, heard


def test_cardholder_refuses_with_2(stack):
    card = find_test_card("approve")
    number = "13800138103"
    callee = stack.phone(phone.refuses("cb_refuse", language="zh", amount_minor=5000), number)
    payment = submit(stack, order(number, card, amount="50.00"))
    assert callee.wait(timeout=120) == 0, finish(callee)
    payment = stack.wait_for(payment["id"], {"refused"})
    assert payment["status"] == "refused"
    assert "stan" not in payment


def test_wrong_pin_then_right_pin(stack):
    card = find_test_card("wrong_pin")
    number = "13800138104"
    started = time.time()
    callee = stack.phone(phone.pays_with_pin("cb_wrong_pin", ["2468", card.pin], language="en",
                                             amount_minor=1000), number)
    payment = submit(stack, order(number, card, amount="10.00", language="en"))
    assert callee.wait(timeout=150) == 0, finish(callee)
    payment = stack.wait_for(payment["id"], {"approved", "declined", "failed", "abandoned"})
    assert payment["status"] == "approved"
    assert payment["internal"]["pin_attempts"] == "2"
    codes = [e["response_code"] for e in stack.journal()
             if (e.get("pan") or "").endswith(card.pan[-4:]) and e["mti"] == "0200"
             and datetime.fromisoformat(e["time"]).timestamp() >= started]
    assert codes == ["55", "00"]


def test_no_answer_then_answered_on_retry(stack):
    card = find_test_card("approve")
    number = "13800138105"
    ringing = stack.phone(phone.never_answers("cb_no_answer"), number)
    payment = submit(stack, order(number, card, amount="20.00", language="en"))
    assert ringing.wait(timeout=60) == 0, finish(ringing)
    # The retry comes VOICEPAY_CALLBACK_RETRY_SPACING_S later: the phone answers this time.
    answering = stack.phone(phone.pays_with_pin("cb_answer_retry", [card.pin], language="en",
                                                amount_minor=2000), number)
    assert answering.wait(timeout=120) == 0, finish(answering)
    payment = stack.wait_for(payment["id"], {"approved", "declined", "failed", "expired"})
    assert payment["status"] == "approved"
    reasons = [h["reason"] for h in payment["history"]]
    assert any("attempt 1: no answer" in r for r in reasons), reasons
    assert any("attempt 2 of 3" in r for r in reasons), reasons


def test_busy_until_expired(stack):
    card = find_test_card("approve")
    number = "13800138106"
    callee = stack.phone(phone.busy("cb_busy", calls=3), number)
    payment = submit(stack, order(number, card, amount="20.00"))
    assert callee.wait(timeout=120) == 0, finish(callee)
    payment = stack.wait_for(payment["id"], {"expired"}, timeout=60)
    assert payment["status"] == "expired"
    reasons = [h["reason"] for h in payment["history"]]
    assert [r for r in reasons if r.endswith(": busy")] == [
        "attempt 1: busy", "attempt 2: busy", "attempt 3: busy"]


def test_hang_up_mid_pin_abandons(stack):
    card = find_test_card("approve")
    number = "13800138107"
    callee = stack.phone(phone.hangs_up_mid_pin("cb_hangup", card.pin, language="zh",
                                                amount_minor=3000), number)
    payment = submit(stack, order(number, card, amount="30.00"))
    assert callee.wait(timeout=120) == 0, finish(callee)
    payment = stack.wait_for(payment["id"], {"abandoned"}, timeout=20)
    assert payment["status"] == "abandoned"
    assert "stan" not in payment


def test_cancel_before_answer(stack):
    card = find_test_card("approve")
    number = "13800138108"
    mark = stack.asterisk_mark()
    ringing = stack.phone(phone.never_answers("cb_cancel"), number)
    payment = submit(stack, order(number, card, amount="40.00"))
    assert stack.wait_until(lambda: stack.ringing(number, mark), timeout=20), "the phone never rang"
    status, cancelled = stack.merchant_request("POST", f"/v1/payments/{payment['id']}/cancel", {})
    assert status == 200, cancelled
    assert cancelled["status"] == "cancelled"
    assert ringing.wait(timeout=30) == 0, finish(ringing)  # the ringing call was withdrawn
    # Nothing announces an attempt that is not made: look for one after the dialer's next
    # attempt would have been due (the spacing the stack runs with, and a margin).
    stack.wait_until(lambda: stack.dial_attempts(number, mark) > 1,
                     timeout=stack.settings.callback_retry_spacing_s + 3)
    assert stack.dial_attempts(number, mark) == 1
    assert stack.get(f"/v1/payments/{payment['id']}")["status"] == "cancelled"


def test_five_callbacks_at_once_each_get_their_own_result(stack):
    approve, credit = find_test_card("approve"), find_test_card("credit_approve")
    poor = find_test_card("insufficient_funds")
    plan = [
        ("13800138101", approve, "11.00", phone.pays_with_pin("five_1", [approve.pin], language="en",
                                                              amount_minor=1100), "approved"),
        ("13800138102", credit, "12.00", phone.pays_with_expiry_and_cvv2(
            "five_2", credit.expiry[2:] + credit.expiry[:2], credit.cvv2, language="en",
            amount_minor=1200), "approved"),
        ("13800138103", approve, "13.00", phone.refuses("five_3", language="en", amount_minor=1300),
         "refused"),
        ("13800138104", poor, "14.00", phone.pays_with_pin("five_4", [poor.pin], language="en",
                                                           amount_minor=1400), "declined"),
        ("13800138105", approve, "15.00", phone.pays_with_pin("five_5", [approve.pin], language="en",
                                                              amount_minor=1500), "approved"),
    ]
    phones = [stack.phone(callee, number) for number, _, _, callee, _ in plan]
    payments = [submit(stack, order(number, card, amount=amount, language="en"))
                for number, card, amount, _, _ in plan]
    for process in phones:
        assert process.wait(timeout=180) == 0, finish(process)
    for payment, (number, card, amount, _, expected) in zip(payments, plan):
        final = stack.wait_for(payment["id"], {"approved", "declined", "refused", "failed",
                                               "abandoned", "expired"})
        assert (final["mobile"], final["amount"], final["status"]) == (number, amount, expected)


def test_ami_disconnect_while_ringing_is_survived(stack):
    """The AMI connection drops while the phone rings: the call still completes, no second call
    is placed, and the service logs in to AMI again."""
    card = find_test_card("approve")
    number = "13800138109"
    callee = dataclasses.replace(
        phone.pays_with_pin("cb_ami_drop", [card.pin], language="en", amount_minor=990),
        ring_ms=3000)
    mark = stack.asterisk_mark()
    ringing = stack.phone(callee, number)
    payment = submit(stack, order(number, card, amount="9.90", language="en"))
    assert stack.wait_until(lambda: stack.ringing(number, mark), timeout=20), "the phone never rang"
    killed = subprocess.run(["ss", "-K", "dst", "127.0.0.1", "dport", "=",
                             str(stack.settings.ami_port)], capture_output=True, text=True)
    assert killed.returncode == 0, killed.stderr
    assert ringing.wait(timeout=120) == 0, finish(ringing)
    payment = stack.wait_for(payment["id"], {"approved", "declined", "failed", "abandoned"})
    assert payment["status"] == "approved"
    reasons = [h["reason"] for h in payment["history"]]
    assert [r for r in reasons if r.startswith("attempt")] == ["attempt 1 of 3"]
    assert stack.wait_until(lambda: stack.health()["checks"]["ami"]["ok"], timeout=10)
    log = (stack.settings.var_dir / "log" / "ivr.log").read_text()
    assert "AMI: connection lost" in log
