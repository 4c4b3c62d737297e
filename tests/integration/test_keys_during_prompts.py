"""No key press lost or taken for the wrong question, in every flow (issue 13).

A caller keys during every prompt that leads to a question (the welcome, the merchant and amount
readout, every re-prompt), and that key is the first of the question's answer; keys pressed
during a prompt that leads to no question ("please wait"), or between two questions, never reach
the next one. The fake Asterisk treats keys as Asterisk does (tests/integration/fake_asterisk.py):
a key during a prompt played without escape digits is thrown away, and so is a key pressed
between two commands. Each case ends in the payment the keys were meant for: a PIN whose first
digit came during a re-prompt is approved by the acquirer, which only happens if every digit of it
reached the PIN block in order.
"""

from __future__ import annotations

import pytest

from ivr.payments.store import PaymentState
from tests.integration import test_selfservice_fastagi as harness
from tests.integration.fake_asterisk import Expect, asks, keyed_between, keys_on, plays
from tests.integration.test_callback_fastagi import (CALLBACK_START, CREDIT, CREDIT_MMYY, INTRO,
                                                     INTRO_HEARD, MERCHANT_NAME, Orders, answer,
                                                     approved)
from tests.integration.test_callback_fastagi import fake_ami, orders  # noqa: F401 (fixtures)
from tests.integration.test_selfservice_fastagi import (APPROVE, MOBILE, NOT_THE_PIN,
                                                        REFERENCE_NUMBER, WRONG_PIN, Ivr)

ivr = harness.ivr  # the FastAGI fixture, with the service's three routes

PAN, PIN = APPROVE.pan, APPROVE.pin
RESULT = [plays("please_wait"), plays("approved"), *REFERENCE_NUMBER]


def keyed_during(prompt: str, answer: str) -> list[Expect]:
    """``answer`` keyed from the start of ``prompt``: its first key cuts it short."""
    rest = [keys_on(answer[1:])] if len(answer) > 1 else []
    return [plays(prompt, interrupted_by=answer[0]), *rest]


# --- self-service: every question, answered during the prompts that lead to it ----------------

# (what the caller hears and keys up to the PIN, and the answers the payment must hold)
SELFSERVICE_CASES = {
    "mobile during 'not valid'": [
        *harness.WELCOME, asks("enter_mobile", "123"),
        *keyed_during("invalid_mobile", MOBILE),
        asks("amount_menu", "1"), asks("enter_card", PAN), asks("enter_pin", PIN)],
    "mobile during 'no input'": [
        *harness.WELCOME, asks("enter_mobile"),
        *keyed_during("no_input", MOBILE),
        asks("amount_menu", "1"), asks("enter_card", PAN), asks("enter_pin", PIN)],
    "amount during 'invalid choice'": [
        *harness.WELCOME, asks("enter_mobile", MOBILE), asks("amount_menu", "7"),
        *keyed_during("invalid_choice", "1"),
        asks("enter_card", PAN), asks("enter_pin", PIN)],
    "card during 'not valid'": [
        *harness.WELCOME, asks("enter_mobile", MOBILE), asks("amount_menu", "1"),
        asks("enter_card", "1234"),
        *keyed_during("invalid_card", PAN),
        asks("enter_pin", PIN)],
    "PIN during 'not valid'": [
        *harness.WELCOME, asks("enter_mobile", MOBILE), asks("amount_menu", "1"),
        asks("enter_card", PAN), asks("enter_pin", "12"),
        *keyed_during("invalid_pin", PIN)],
    "PIN during 'no input'": [
        *harness.WELCOME, asks("enter_mobile", MOBILE), asks("amount_menu", "1"),
        asks("enter_card", PAN), asks("enter_pin"),
        *keyed_during("no_input", PIN)],
}


@pytest.mark.parametrize("script", SELFSERVICE_CASES.values(), ids=SELFSERVICE_CASES.keys())
async def test_selfservice_answers_keyed_during_their_lead_in(ivr: Ivr,
                                                             script: list[Expect]) -> None:
    caller = await ivr.call(*script, *RESULT, plays("goodbye"))

    payment = await ivr.the_payment()
    assert payment.status == "approved" and payment.record["pin_attempts"] == "1"
    assert payment.record["topup_number"] == MOBILE and payment.record["amount_minor"] == "5000"
    assert (payment.record["pan_first6"], payment.record["pan_last4"]) == (PAN[:6], PAN[-4:])
    assert caller.discarded_keys == ""


@pytest.mark.parametrize("re_prompt", ["incorrect_pin", "try_again"])
async def test_a_pin_keyed_again_during_incorrect_pin_is_the_new_pin(ivr: Ivr,
                                                                      re_prompt: str) -> None:
    # Keys during "please wait" lead to no question: they are dropped, not the next PIN's start.
    lead_in = {"incorrect_pin": [], "try_again": [plays("incorrect_pin")]}[re_prompt]
    caller = await ivr.call(*harness.order(WRONG_PIN), asks("enter_pin", NOT_THE_PIN),
                            plays("please_wait", interrupted_by="9"),
                            *lead_in, *keyed_during(re_prompt, WRONG_PIN.pin),
                            *RESULT, plays("goodbye"))

    payment = await ivr.the_payment()
    assert payment.status == "approved" and payment.record["pin_attempts"] == "2"
    assert caller.discarded_keys == "9"


async def test_a_key_during_the_welcome_that_chooses_no_language_is_discarded(ivr: Ivr) -> None:
    # The greeting and the language offers are the language question (7/8/9): a mobile number's
    # first digit keyed there is not kept, and the mobile question is asked from its start.
    caller = await ivr.call(plays("topup_welcome", interrupted_by="1"), *harness.WELCOME[1:],
                            asks("enter_mobile", MOBILE), asks("amount_menu", "1"),
                            asks("enter_card", PAN), asks("enter_pin", PIN),
                            *RESULT, plays("goodbye"))

    payment = await ivr.the_payment()
    assert payment.status == "approved" and payment.record["topup_number"] == MOBILE
    assert caller.discarded_keys == "1"


async def test_keys_between_two_questions_never_reach_the_next(ivr: Ivr) -> None:
    # Keyed after each answer and before the next question: Asterisk drops them, and every
    # question is still asked from its first prompt and answered with its own keys.
    caller = await ivr.call(
        *harness.WELCOME, asks("enter_mobile", MOBILE),
        keyed_between("#", asks("amount_menu", "1")),
        keyed_between("2", asks("enter_card", PAN)),
        keyed_between("11", asks("enter_pin", PIN)),
        *RESULT, plays("goodbye"))

    payment = await ivr.the_payment()
    assert payment.status == "approved" and payment.record["amount_minor"] == "5000"
    assert caller.discarded_keys == "#211"
    assert caller.prompts[:len(harness.ORDER) + 1] == [*harness.ORDER, "enter_pin"]


# --- callback and one-line: the readout leads to "press 1 to pay" --------------------------------


@pytest.mark.parametrize("during", range(len(INTRO)), ids=INTRO_HEARD)
async def test_callback_1_keyed_during_the_readout_pays(ivr: Ivr, orders: Orders,
                                                        during: int) -> None:
    payment = await orders.callback(APPROVE)
    caller = await answer(ivr, payment, *INTRO[:during],
                          plays(INTRO_HEARD[during], interrupted_by="1"),
                          asks("enter_pin", PIN), *RESULT, plays("goodbye"))

    payment = await ivr.store.get(payment.id)
    assert payment.status is PaymentState.APPROVED and payment.pin_attempts == 1
    assert await ivr.states(payment) == [*CALLBACK_START, "confirmed", "pin_entry",
                                         "authorizing", "approved"]
    # The rest of the readout and the menu were skipped: the next thing asked was the PIN.
    assert caller.prompts[:during + 2] == [*INTRO_HEARD[:during + 1], "enter_pin"]
    assert caller.discarded_keys == ""


async def test_callback_2_keyed_during_the_amount_refuses(ivr: Ivr, orders: Orders) -> None:
    payment = await orders.callback(APPROVE)
    await answer(ivr, payment, *INTRO[:3], plays("num_50", interrupted_by="2"),
                 plays("payment_refused"), plays("goodbye"))

    assert (await ivr.store.get(payment.id)).status is PaymentState.REFUSED
    assert ivr.journal() == []


@pytest.mark.parametrize("re_prompt", ["invalid_choice", "no_input"])
async def test_callback_menu_answered_during_its_re_prompt(ivr: Ivr, orders: Orders,
                                                           re_prompt: str) -> None:
    payment = await orders.callback(APPROVE)
    await answer(ivr, payment, *INTRO, asks("confirm_menu", "" if re_prompt == "no_input" else "5"),
                 plays(re_prompt, interrupted_by="1"), *approved(APPROVE), plays("goodbye"))

    assert (await ivr.store.get(payment.id)).status is PaymentState.APPROVED


async def test_callback_credit_card_answers_keyed_during_re_prompts(ivr: Ivr,
                                                                    orders: Orders) -> None:
    payment = await orders.callback(CREDIT)
    caller = await answer(ivr, payment, *INTRO[:1], plays(MERCHANT_NAME, interrupted_by="1"),
                          asks("enter_expiry", "1329"), *keyed_during("invalid_expiry", CREDIT_MMYY),
                          asks("enter_cvv2", "12"), *keyed_during("invalid_cvv2", CREDIT.cvv2),
                          *RESULT, plays("goodbye"))

    payment = await ivr.store.get(payment.id)
    assert payment.status is PaymentState.APPROVED and payment.response_code == "00"
    assert caller.discarded_keys == ""


async def test_oneline_1_keyed_during_the_merchant_name_pays(ivr: Ivr, orders: Orders,
                                                             fake_ami: object) -> None:
    payment = await orders.oneline(APPROVE)
    caller = await answer(ivr, payment, INTRO[0], plays(MERCHANT_NAME, interrupted_by="1"),
                          asks("enter_pin", PIN), *RESULT, flow="oneline")

    payment = await ivr.store.get(payment.id)
    assert payment.status is PaymentState.APPROVED and payment.pin_attempts == 1
    assert caller.prompts[:3] == ["callback_intro", MERCHANT_NAME, "enter_pin"]
    assert caller.discarded_keys == ""
