"""Every DTMF mode through the self-service and callback flows (the one-line flow's are in
test_oneline_calls.py, with the isolation proof): a phone keying by SIP INFO (either body) or by
in-band tones on an inband or auto endpoint keys every entry of the flow (mobile number, menu,
card number, the approve card's PIN with its repeated digits, a credit card's expiry and CVV2) and pays
at the first try.

The endpoints and their addresses and numbers: tests/sipp/dtmf_modes.py, asterisk-conf/pjsip.conf.
"""

from __future__ import annotations

import dataclasses
import time

import pytest

from simulators.acquirer.testcards import find_test_card
from tests.e2e.test_callback_calls import finish, journal_for, order, states, submit
from tests.sipp import callback_calls as phone
from tests.sipp import selfservice_calls as calls
from tests.sipp.dtmf_modes import MODES

pytestmark = pytest.mark.e2e

# RFC 4733 through these flows: test_selfservice_calls.py and test_callback_calls.py.
every_other_mode = pytest.mark.parametrize("dtmf", [m for m in MODES if m.name != "rfc4733"],
                                           ids=lambda m: m.name)


def _paid_by_self_service(stack, call, mobile: str, caller_ip: str) -> dict:
    before = stack.payment_ids()
    result = stack.call(call, caller_ip=caller_ip)
    assert result.returncode == 0, f"SIPp scenario {call.name} failed:\n{result.stdout[-2000:]}"
    payment = stack.new_payment(mobile, before)
    card = find_test_card("approve")
    # Every key arrived once: the card number passed Luhn and matched, the PIN (repeated digits)
    # was right at the first try.
    assert payment["status"] == "approved", payment["history"]
    assert (payment["pan_first6"], payment["pan_last4"]) == (card.pan[:6], card.pan[-4:])
    assert [h["state"] for h in payment["history"]] == ["created", "pin_entry", "authorizing",
                                                        "approved"]
    assert payment["internal"]["pin_attempts"] == "1"
    return payment


@every_other_mode
def test_self_service_payment_keyed_in_every_mode(stack, dtmf):
    mobile = f"1370009{MODES.index(dtmf):04d}"
    call = dataclasses.replace(calls.approved(mobile), name=f"selfservice_{dtmf.name}")
    _paid_by_self_service(stack, call.keyed_via(dtmf.keyed_via), mobile, dtmf.caller_ip)


@pytest.mark.parametrize("endpoint", ["rfc4733", "auto"])
def test_a_phone_sending_rfc4733_and_tones_at_once_gets_no_doubled_digits(stack, endpoint):
    """Some phones send each key both as an RFC 4733 event and as a tone in the audio. On the
    default endpoint and on an auto one (this phone offers telephone-event, so auto reads RFC 4733
    and leaves the detector off) each key counts once: a doubled digit would break the card
    number's Luhn check or the PIN."""
    dtmf = next(m for m in MODES if m.endpoint_mode == endpoint)
    mobile = f"1370019{MODES.index(dtmf):04d}"
    call = dataclasses.replace(calls.approved(mobile), name=f"selfservice_both_on_{endpoint}")
    _paid_by_self_service(stack, call.keyed_via("both"), mobile, dtmf.caller_ip)


@every_other_mode
def test_callback_payment_keyed_in_every_mode(stack, dtmf):
    card = find_test_card("approve")
    callee = phone.pays_with_pin(f"cb_{dtmf.name}", [card.pin], language="zh",
                                 amount_minor=8800).keyed_via(dtmf.keyed_via)
    answering = stack.uas(callee, dtmf.phone_port, dtmf.phone_media_port)
    payment = submit(stack, order(dtmf.callback_number, card))
    assert answering.wait(timeout=120) == 0, finish(answering)
    payment = stack.wait_for(payment["id"], {"approved", "declined", "failed", "abandoned"})
    assert payment["status"] == "approved", payment["history"]
    assert states(payment) == ["created", "risk_passed", "calling", "answered", "confirmed",
                               "pin_entry", "authorizing", "approved"]
    assert payment["internal"]["pin_attempts"] == "1"


@every_other_mode
def test_callback_credit_card_keyed_in_every_mode(stack, dtmf):
    """The credit card's entries (where credit is keyed: the callback flow) in each mode: the
    expiry (MMYY) and the CVV2 arrive whole, approved at the first try with one authorization."""
    card = find_test_card("credit_approve")
    started = time.time()
    callee = phone.pays_with_expiry_and_cvv2(
        f"cb_credit_{dtmf.name}", card.expiry[2:] + card.expiry[:2], card.cvv2, language="en",
        amount_minor=12345).keyed_via(dtmf.keyed_via)
    answering = stack.uas(callee, dtmf.phone_port, dtmf.phone_media_port)
    payment = submit(stack, order(dtmf.callback_number, card, amount="123.45", language="en"))
    assert answering.wait(timeout=120) == 0, finish(answering)
    payment = stack.wait_for(payment["id"], {"approved", "declined", "failed", "abandoned"})
    assert payment["status"] == "approved", payment["history"]
    assert payment["card_type"] == "credit"
    # pin_entry is the card-data step whatever the card asks for (here expiry and CVV2).
    assert states(payment) == ["created", "risk_passed", "calling", "answered", "confirmed",
                               "pin_entry", "authorizing", "approved"]
    seen = journal_for(stack, payment["internal"]["stan"], started)
    assert [(e["mti"], e["response_code"], e["amount"]) for e in seen] == [("0200", "00", 12345)]
