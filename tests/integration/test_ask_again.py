"""The agent's "ask again" on a one-line payment, over real FastAGI against the scripted fake
Asterisk (the callback harness: real store, vault, acquirer simulator and its journal, and the
leak check after every test). The request is made as the console makes it (``AskAgain.request``)
while the caller's answer to that field's question is held: the flow must discard that answer,
ask the question again after "please enter it again", and send only the new answer.
"""

from __future__ import annotations

import asyncio

import pytest

from ivr.console.progress import progress
from ivr.paying.ask_again import AskAgain, AskAgainRefused
from ivr.payments.store import PaymentState
from tests.integration.fake_asterisk import Pause, asks, plays
from tests.integration.test_callback_fastagi import (CREDIT, CREDIT_MMYY, INTRO, Orders, answer,
                                                     fake_ami, orders)
from tests.integration.test_selfservice_fastagi import (APPROVE, NOT_THE_PIN, REFERENCE_NUMBER,
                                                        Ivr)
from tests.integration import test_selfservice_fastagi as harness

ivr = harness.ivr
__all__ = ["fake_ami", "orders"]  # fixtures used here by name

PAID = [plays("please_wait"), plays("approved"), *REFERENCE_NUMBER]


async def asked_while_held(ivr: Ivr, payment_id: str, held: Pause, field: str,
                           call: asyncio.Task) -> None:
    """The agent presses "ask again" on ``field`` while the caller's answer is held."""
    await held.reached.wait()
    await AskAgain(ivr.redis, ivr.store).request(await ivr.store.get(payment_id), field)
    held.release.set()
    await call


async def test_the_pin_is_asked_again_and_the_old_one_never_reaches_the_acquirer(
        ivr: Ivr, orders: Orders, fake_ami) -> None:
    payment = await orders.oneline(APPROVE)
    pin = Pause()
    call = asyncio.create_task(answer(
        ivr, payment, *INTRO, asks("confirm_menu", "1"), asks("enter_pin", NOT_THE_PIN, pause=pin),
        plays("ask_again"), asks("enter_pin", APPROVE.pin), *PAID, flow="oneline"))
    await asked_while_held(ivr, payment.id, pin, "pin", call)

    caller = call.result()
    first = caller.prompts.index("enter_pin")
    assert caller.prompts[first:first + 4] == ["enter_pin", "ask_again", "enter_pin", "please_wait"]
    payment = await ivr.store.get(payment.id)
    assert payment.status is PaymentState.APPROVED and payment.record["pin_attempts"] == "1"
    # One authorization, with the second PIN: the first never left the IVR (it would be a 55).
    assert [(e["mti"], e["response_code"]) for e in ivr.journal()] == [("0200", "00")]
    assert (await ivr.states(payment)).count("authorizing") == 1
    history = await ivr.store.history(payment.id)
    assert [e.get("event") for e in history if e.get("about") == "pin"] == [
        "ask_again_requested", "asked_again"]
    [pin_line] = [line for line in progress(payment, history)["lines"] if line["step"] == "pin"]
    assert pin_line == {"step": "pin", "status": "accepted", "digits": len(APPROVE.pin),
                        "detail": {"asked_again": 1}}
    assert not await ivr.redis.exists(f"pay:{payment.id}:ask_again")


async def test_the_expiry_asked_again_while_the_cvv2_is_keyed(ivr: Ivr, orders: Orders,
                                                              fake_ami) -> None:
    """Both go to the acquirer together: the expiry can be asked again until then."""
    payment = await orders.oneline(CREDIT)
    cvv2 = Pause()
    wrong_expiry = "1230"  # a valid date, not the card's: the acquirer would decline it (54)
    call = asyncio.create_task(answer(
        ivr, payment, *INTRO, asks("confirm_menu", "1"), asks("enter_expiry", wrong_expiry),
        asks("enter_cvv2", CREDIT.cvv2, pause=cvv2), plays("ask_again"),
        asks("enter_expiry", CREDIT_MMYY), *PAID, flow="oneline"))
    await asked_while_held(ivr, payment.id, cvv2, "expiry", call)

    assert (await ivr.store.get(payment.id)).status is PaymentState.APPROVED
    assert [(e["mti"], e["response_code"]) for e in ivr.journal()] == [("0200", "00")]
    history = await ivr.store.history(payment.id)
    lines = {line["step"]: line for line in progress(await ivr.store.get(payment.id),
                                                     history)["lines"]}
    assert lines["expiry"]["detail"] == {"asked_again": 1} and lines["expiry"]["digits"] == 4
    assert lines["cvv2"]["status"] == "accepted"


async def test_the_cvv2_is_asked_again(ivr: Ivr, orders: Orders, fake_ami) -> None:
    payment = await orders.oneline(CREDIT)
    cvv2 = Pause()
    call = asyncio.create_task(answer(
        ivr, payment, *INTRO, asks("confirm_menu", "1"), asks("enter_expiry", CREDIT_MMYY),
        asks("enter_cvv2", "123", pause=cvv2), plays("ask_again"),
        asks("enter_cvv2", CREDIT.cvv2), *PAID, flow="oneline"))
    await asked_while_held(ivr, payment.id, cvv2, "cvv2", call)

    assert (await ivr.store.get(payment.id)).status is PaymentState.APPROVED
    # The wrong CVV2 would have been an 82.
    assert [(e["mti"], e["response_code"]) for e in ivr.journal()] == [("0200", "00")]


@pytest.mark.parametrize(("state", "field", "card"), [
    ("authorizing", "pin", APPROVE),   # the PIN is in an authorization
    ("approved", "pin", APPROVE),
    ("answered", "pin", APPROVE),      # nothing is being keyed yet
    ("pin_entry", "cvv2", APPROVE),    # a debit card's payment asks for no CVV2
    ("pin_entry", "card_number", APPROVE),
    ("pin_entry", "expiry", CREDIT),   # allowed: the control
])
async def test_when_a_field_can_be_asked_again(ivr: Ivr, orders: Orders, state: str, field: str,
                                               card) -> None:
    payment = await orders.oneline(card)
    path = {"answered": ["answered"], "pin_entry": ["answered", "confirmed", "pin_entry"],
            "authorizing": ["answered", "confirmed", "pin_entry", "authorizing"],
            "approved": ["answered", "confirmed", "pin_entry", "authorizing", "approved"]}[state]
    for step in path:
        payment = await ivr.store.transition(payment.id, PaymentState(step))
    ask_again = AskAgain(ivr.redis, ivr.store)
    if (state, field) == ("pin_entry", "expiry"):
        await ask_again.request(payment, field)
        assert await ivr.redis.smembers(f"pay:{payment.id}:ask_again") == {b"expiry"}
        return
    with pytest.raises(AskAgainRefused, match=f"payment {payment.id}: the .* cannot be asked"):
        await ask_again.request(payment, field)
    assert not await ivr.redis.exists(f"pay:{payment.id}:ask_again")


async def test_a_callback_payment_has_no_agent_to_ask_again(ivr: Ivr, orders: Orders) -> None:
    payment = await orders.callback(APPROVE)
    with pytest.raises(AskAgainRefused, match="only a one-line payment"):
        await AskAgain(ivr.redis, ivr.store).request(payment, "pin")


async def test_a_request_that_raced_the_callers_hash_is_recorded_as_too_late(
        ivr: Ivr, orders: Orders) -> None:
    """Accepted while the PIN was keyed, but the flow had already taken the answer: once the
    payment is authorizing the request is closed, and the history says it came too late."""
    payment = await orders.oneline(APPROVE)
    for step in ("answered", "confirmed", "pin_entry"):
        payment = await ivr.store.transition(payment.id, PaymentState(step))
    ask_again = AskAgain(ivr.redis, ivr.store)
    await ask_again.request(payment, "pin")
    payment = await ivr.store.transition(payment.id, PaymentState.AUTHORIZING)
    await ask_again.close(payment.id)

    assert not await ivr.redis.exists(f"pay:{payment.id}:ask_again")
    assert await ask_again.taken(payment.id, ["pin"]) is None
    history = await ivr.store.history(payment.id)
    assert history[-1]["event"] == "ask_again_too_late" and history[-1]["about"] == "pin"
    [pin_line] = [line for line in progress(payment, history)["lines"] if line["step"] == "pin"]
    assert pin_line["detail"] == {"ask_again_too_late": True}
    with pytest.raises(AskAgainRefused, match="is authorizing"):
        await ask_again.request(payment, "pin")
