"""The ID step-up on the call, and risk on the self-service line, over real FastAGI against the
scripted fake Asterisk (the harness of test_selfservice_fastagi.py: real Redis, keys, acquirer
simulator, and the leak check of logs and Redis after every test).

A callback order goes through the real order service with the scripted engine answering
``step_up``, so the keyed digest of the ID number's last 6 characters is made as in production.
"""

from __future__ import annotations

import pytest

from ivr.callback.orders import CallbackOrders
from ivr.merchants import MerchantRegistry
from ivr.money import Money
from ivr.orders import Order
from ivr.payments.store import Payment, PaymentState
from ivr.risk.decision import RiskOutcome
from tests.integration import test_selfservice_fastagi as harness
from tests.integration.fake_asterisk import asks, plays
from tests.integration.test_callback_fastagi import INTRO, INTRO_HEARD, answer, approved
from tests.integration.test_selfservice_fastagi import APPROVE, Ivr, order

ivr = harness.ivr

ID_NUMBER = "11010519491231002X"
RIGHT = "31002*"  # the last 6 characters, X keyed as *
WRONG = "310021"


class NoDialer:
    """The order service schedules the callback; here the test places the call itself."""

    async def schedule(self, payment_id: str) -> None:
        pass


async def callback_order(ivr: Ivr, outcome: RiskOutcome = RiskOutcome.STEP_UP) -> Payment:
    """A callback order the engine answered with ``outcome``, now ringing."""
    ivr.risk.outcome = outcome
    assert ivr.ctx.risk is not None
    service = CallbackOrders(ivr.store, ivr.ctx.vault, ivr.settings.bin_table_file,
                             NoDialer(), ivr.ctx.risk)  # type: ignore[arg-type]
    merchant = MerchantRegistry.load(ivr.settings).get("M100001")
    payment = await service.submit(merchant, Order(
        merchant_order_id="ORD-step-up", amount=Money.parse("50.00"), description="mobile bill",
        card_number=APPROVE.pan, cardholder_name="Zhang San", id_number=ID_NUMBER,
        mobile="13800138000", mode="callback", language="en"))
    assert payment.status is PaymentState.RISK_PASSED and payment.risk_outcome == outcome.value
    return await ivr.store.transition(payment.id, PaymentState.CALLING, reason="dialling")


async def reasons(ivr: Ivr, payment: Payment) -> list[str]:
    return [entry["reason"] for entry in await ivr.store.history(payment.id)]


async def test_step_up_passed_then_the_pin(ivr: Ivr) -> None:
    payment = await callback_order(ivr)
    caller = await answer(ivr, payment, *INTRO, asks("confirm_menu", "1"),
                          asks("enter_id_last6", RIGHT), *approved(APPROVE), plays("goodbye"))
    payment = await ivr.store.get(payment.id)
    assert payment.status is PaymentState.APPROVED
    assert caller.prompts[:len(INTRO_HEARD) + 3] == [*INTRO_HEARD, "confirm_menu", "enter_id_last6",
                                                     "enter_pin"]
    assert "ID step-up passed" in await reasons(ivr, payment)
    # For the agent's console: how many keys, never which.
    [passed] = [e for e in await ivr.store.history(payment.id) if e.get("event") == "id_check_passed"]
    assert (passed["field"], passed["digits"]) == ("id", "6") and RIGHT not in str(passed)
    assert len(ivr.journal()) == 1


async def test_a_wrong_answer_is_asked_again(ivr: Ivr) -> None:
    payment = await callback_order(ivr)
    await answer(ivr, payment, *INTRO, asks("confirm_menu", "1"),
                 asks("enter_id_last6", WRONG), plays("id_check_retry"),
                 asks("enter_id_last6", RIGHT), *approved(APPROVE), plays("goodbye"))
    payment = await ivr.store.get(payment.id)
    assert payment.status is PaymentState.APPROVED
    history = await reasons(ivr, payment)
    assert "ID step-up failed (attempt 1 of 3)" in history and "ID step-up passed" in history
    assert not any(WRONG in reason or RIGHT[:5] in reason for reason in history)


async def test_step_up_failed_three_times_fails_the_payment_without_a_pin(ivr: Ivr) -> None:
    payment = await callback_order(ivr)
    caller = await answer(ivr, payment, *INTRO, asks("confirm_menu", "1"),
                          asks("enter_id_last6", WRONG), plays("id_check_retry"),
                          asks("enter_id_last6", "31002"), plays("id_check_retry"),  # too short
                          asks("enter_id_last6", "310020"), plays("id_check_failed"),
                          plays("goodbye"))
    payment = await ivr.store.get(payment.id)
    assert payment.status is PaymentState.FAILED
    assert (await reasons(ivr, payment))[-1] == ("ID step-up failed: 3 wrong answers; no PIN was "
                                                 "asked for")
    assert "enter_pin" not in caller.prompts and ivr.journal() == []
    assert await ivr.store.pan_token(payment.id) is None


async def test_silence_at_the_step_up_counts_as_a_try(ivr: Ivr) -> None:
    payment = await callback_order(ivr)
    await answer(ivr, payment, *INTRO, asks("confirm_menu", "1"),
                 asks("enter_id_last6"), plays("no_input"),
                 asks("enter_id_last6", RIGHT), *approved(APPROVE), plays("goodbye"))
    assert (await ivr.store.get(payment.id)).status is PaymentState.APPROVED


async def test_hanging_up_at_the_step_up_abandons(ivr: Ivr) -> None:
    payment = await callback_order(ivr)
    await answer(ivr, payment, *INTRO, asks("confirm_menu", "1"),
                 asks("enter_id_last6", hang_up=True))
    assert (await ivr.store.get(payment.id)).status is PaymentState.ABANDONED
    assert ivr.journal() == []


async def test_an_approved_callback_is_not_stepped_up(ivr: Ivr) -> None:
    payment = await callback_order(ivr, RiskOutcome.APPROVE)
    caller = await answer(ivr, payment, *INTRO, asks("confirm_menu", "1"), *approved(APPROVE),
                          plays("goodbye"))
    assert "enter_id_last6" not in caller.prompts


# --- self-service: no ID number, nobody to review -----------------------------------------------

@pytest.mark.parametrize("outcome", [RiskOutcome.STEP_UP, RiskOutcome.REVIEW, RiskOutcome.DECLINE])
async def test_selfservice_takes_only_an_approval(ivr: Ivr, outcome: RiskOutcome) -> None:
    ivr.risk.outcome = outcome
    caller = await ivr.call(*order(APPROVE), plays("declined_risk"), plays("goodbye"))
    payment = await ivr.the_payment()
    assert payment.status is PaymentState.RISK_DECLINED
    assert payment.merchant_reason == "declined by risk control"
    assert payment.risk_outcome == outcome.value
    assert "enter_pin" not in caller.prompts and ivr.journal() == []
    [asked] = ivr.risk.requests
    assert (asked.mode, asked.order.amount, asked.card is not None) == ("selfservice",
                                                                       Money(5000), True)


async def test_selfservice_approval_goes_on_to_the_pin(ivr: Ivr) -> None:
    await ivr.call(*order(APPROVE), asks("enter_pin", APPROVE.pin), plays("please_wait"),
                   plays("approved"), *harness.REFERENCE_NUMBER, plays("goodbye"))
    payment = await ivr.the_payment()
    assert payment.status is PaymentState.APPROVED and payment.risk_outcome == "approve"
