"""Real softphones through the SIP edge: baresip and Linphone's linphonec (tests/softphones), set
up as the README's "Pointing a softphone at it" says, registering with digest auth and the
generated passwords, keying RFC 4733, each as a cardholder paying on 8000, a cardholder taking a
callback, and an agent in a one-line payment.

Each phone listens on ports of its own (SIP 509N, RTP 180N0: clear of SIPp's) and, for baresip,
on a loopback address of its own; the edge (127.0.0.2) is where both register and call.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from simulators.acquirer.testcards import find_test_card
from tests.dtmf_detect import detect_dtmf
from tests.e2e.test_callback_calls import order, submit
from tests.e2e.test_oneline_calls import _paid_with_the_agent_apart
from tests.e2e.test_sip_edge import softphone_password
from tests.softphones import Account
from tests.softphones.baresip import Baresip
from tests.softphones.linphone import Linphone

pytestmark = pytest.mark.e2e

SOFTPHONES = ["baresip", "linphone"]
# Where each kind of phone listens. linphonec binds every address (it has no setting for one);
# its packets to the edge come from 127.0.0.1.
ADDRESS = {"baresip": "127.0.0.20", "linphone": "127.0.0.1"}
SIP_PORT = {"baresip": 5094, "linphone": 5095}
RTP_PORT = {"baresip": 18040, "linphone": 18050}
BARESIP_CONTROL_PORT = 5594
# Each kind of phone has an account of its own where there are two: the one test's phone never
# meets the other's registration.
CARDHOLDER = {"baresip": "6001", "linphone": "6002"}
AGENT = {"baresip": "7001", "linphone": "7002"}
# The demo softphone's number: the only callback target with a password (asterisk-conf/pjsip.conf).
CALLBACK_NUMBER = "13900000001"
SELFSERVICE_MARKER = "voicepay self-service top-up"


@contextmanager
def softphone(stack, kind: str, user: str, name: str, *, record: bool = False,
              **account_options) -> Iterator[Baresip | Linphone]:
    """A registered ``kind`` softphone with ``user``'s account and its generated password
    (``account_options``: an Account's ``edge`` and ``transport``, else the edge over UDP);
    ``record``: it keeps the audio it receives (an agent's: a cardholder's phone would keep its
    own key clicks too, in var/, which is leak-scanned)."""
    account = Account(user=user, password=softphone_password(stack, user),
                      address=ADDRESS[kind], sip_port=SIP_PORT[kind], rtp_port=RTP_PORT[kind],
                      **account_options)
    directory = stack.work_dir / "softphones" / f"{name}_{kind}"
    phone = (Baresip(account, directory, ctrl_port=BARESIP_CONTROL_PORT, record=record)
             if kind == "baresip" else Linphone(account, directory, record=record))
    with phone:
        phone.wait_registered()
        yield phone


def _keys_when_asked(stack, phone, marker: str, prompt: str, keys: str, *, since: int) -> None:
    """Key ``keys`` once the IVR plays ``prompt`` to the call logged as ``marker``: a cardholder
    answers the question asked, not before."""
    stack.wait_for_prompt(marker, prompt, since=since)
    phone.keys(keys)


def _final(stack, payment_id: str) -> dict:
    return stack.wait_for(payment_id, {"approved", "declined", "failed", "abandoned", "refused"})


@pytest.mark.parametrize("kind", SOFTPHONES)
def test_selfservice_payment_from_a_softphone(stack, kind):
    """The cardholder dials 8000 and keys mobile number, amount, card number and PIN (the approve
    card's, with repeated digits) as RFC 4733, each when asked: approved, for the card and amount
    keyed."""
    card = find_test_card("approve")
    mobile = {"baresip": "13700000021", "linphone": "13700000022"}[kind]
    before = stack.payment_ids()
    mark = stack.asterisk_mark()
    with softphone(stack, kind, CARDHOLDER[kind], "selfservice") as phone:
        phone.dial("8000")
        phone.wait_connected()
        for prompt, keys in [("enter_mobile", mobile), ("amount_menu", "1"),
                             ("enter_card", card.pan + "#"), ("enter_pin", card.pin + "#")]:
            _keys_when_asked(stack, phone, SELFSERVICE_MARKER, prompt, keys, since=mark)
        payment = stack.new_payment(mobile, before)
        final = _final(stack, payment["id"])
        phone.wait_ended()  # the IVR reads the result out and hangs up
    assert final["status"] == "approved", final["history"]
    assert final["amount"] == "50.00"
    assert (final["pan_first6"], final["pan_last4"]) == (card.pan[:6], card.pan[-4:])
    assert final["internal"]["pin_attempts"] == "1"


@pytest.mark.parametrize("kind", SOFTPHONES)
def test_callback_answered_and_paid_on_a_softphone(stack, kind):
    """A callback order for the softphone's number: the platform calls it through the edge, the
    cardholder answers, keys 1 to pay and the PIN: approved."""
    card = find_test_card("approve")
    mark = stack.asterisk_mark()
    with softphone(stack, kind, CALLBACK_NUMBER, "callback") as phone:
        payment = submit(stack, order(CALLBACK_NUMBER, card, amount="21.00", language="en"))
        phone.answer_when_called(timeout=90)
        phone.wait_connected()
        marker = f"voicepay callback {payment['id']}"
        _keys_when_asked(stack, phone, marker, "confirm_menu", "1", since=mark)
        _keys_when_asked(stack, phone, marker, "enter_pin", card.pin + "#", since=mark)
        final = _final(stack, payment["id"])
        phone.wait_ended()
    assert final["status"] == "approved", final["history"]
    assert final["internal"]["pin_attempts"] == "1"


@pytest.mark.parametrize("kind", SOFTPHONES)
def test_oneline_payment_with_the_agent_on_a_softphone(stack, kind):
    """The agent takes the queue's call on a softphone; the caller (SIPp) keys a control digit
    while bridged, then pays in the one-line IVR and comes back. The isolation proof of
    tests/e2e/test_oneline_calls.py, on the softphone's own ports: no telephone-event, no INFO
    reached it during the payment, though the control digit did before. And the phone's own
    account of it: the only key it received is the control digit, and the audio it received
    holds no keypad tone."""
    with softphone(stack, kind, AGENT[kind], "agent", record=True) as phone:
        final, _ = _paid_with_the_agent_apart(
            stack, f"oneline_softphone_{kind}", "44.00", softphone=phone,
            mobile={"baresip": "13800138211", "linphone": "13800138212"}[kind])
        received = phone.keys_received()
    assert final["agent_id"] == AGENT[kind]
    assert received == "5", received  # the control digit, and nothing of the payment
    heard = phone.received_audio()
    assert heard, "the agent's softphone recorded nothing it received"
    assert [digit for path in heard for _, digit in detect_dtmf(path)] == []
