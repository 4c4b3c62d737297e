"""Paying a merchant's order on the phone, once the cardholder is on the line: shared by the
callback and the one-line flows.

    "... your payment to <merchant>. The amount is <amount>."  → 1 to pay, 2 to refuse
    → if risk asked for a step-up: the last 6 characters of the ID number (ivr/paying/id_step_up.py)
    → debit card: PIN        credit card: expiry (MMYY), then the CVV2
    → "please wait" → result with the reference number

The card number is decrypted from Redis for the seconds the call needs it; the CVV2 is sealed
for the acquirer at once and never stored.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ivr.agi.channel import AgiChannel, AgiHangup
from ivr.crypto.pan_vault import PanKeyRetired
from ivr.paying.ask_again import ASK_AGAIN
from ivr.paying.authorization import Outcome
from ivr.paying.context import FlowContext
from ivr.paying.id_step_up import confirm_id
from ivr.paying.keypad import Keypad, TooManyAttempts
from ivr.paying.pin_entry import (abandon, announce, authorize_during_please_wait,
                                  collect_pin_and_authorize, settle)
from ivr.prompts import Prompts
from ivr.speech import amount_prompts
from ivr.payments.store import Payment, PaymentState
from ivr.risk.decision import RiskOutcome
from ivr.validation import check_expiry_mmyy

__all__ = ["CardNumberGone", "pay_order"]

log = logging.getLogger(__name__)


class CardNumberGone(Exception):
    """The payment's encrypted card number is no longer in Redis (its TTL ran out while the
    callback waited, or it was dropped), or its PAN key was retired: nothing can be charged."""

    def __init__(self, payment_id: str, why: str = "encrypted card number missing or expired") -> None:
        super().__init__(f"payment {payment_id}: {why}")


async def pay_order(call: AgiChannel, ctx: FlowContext, payment: Payment) -> bool:
    """Take the payment of an ``answered`` order. True if the caller heard a result, refused, or
    heard that it cannot be paid (card number gone: payment failed);
    False if they gave up keying. Raises ``AgiHangup`` (payment abandoned) if they hang up."""
    prompts = ctx.prompts(payment.language)
    keypad = ctx.keypad(call, prompts)
    await call.set_digit_timeout(ctx.settings.inter_digit_timeout_ms)
    try:
        try:
            pan = await _card_number(ctx, payment)
        except CardNumberGone as exc:
            # End the payment here, so it is not left ``answered`` for the recovery sweep, and
            # tell the caller rather than leaving them to the dialplan's failure path.
            await ctx.store.transition(payment.id, PaymentState.FAILED, reason=str(exc))
            log.warning("call %s: %s", call.uniqueid, exc)
            await call.stream(prompts["service_unavailable"])
            return True
        # The whole readout leads to the menu: "1" keyed while the amount is read out is the answer.
        merchant_name = await ctx.merchant_name(payment.merchant_id, prompts)
        wants_to_pay = await keypad.choice(
            "confirm_menu", {"1": True, "2": False},
            lead_in=["callback_intro", merchant_name, "callback_amount",
                     *amount_prompts(payment.amount.fen, prompts.language)])
        if not wants_to_pay:
            await ctx.store.transition(payment.id, PaymentState.REFUSED, reason="cardholder pressed 2")
            await call.stream(prompts["payment_refused"])
            return True
        payment = await ctx.store.transition(payment.id, PaymentState.CONFIRMED,
                                             reason="cardholder pressed 1")
        if payment.risk_outcome == RiskOutcome.STEP_UP and not await _id_confirmed(
                call, ctx, prompts, payment):
            return True  # the payment failed and the caller heard so; no PIN was asked for
        if payment.card_type == "credit":
            outcome = await _expiry_and_cvv2(call, ctx, keypad, prompts, payment, pan)
        else:
            outcome = await collect_pin_and_authorize(call, ctx, keypad, prompts, payment, pan)
    except TooManyAttempts as exc:
        await abandon(ctx, payment, call, f"no valid entry at {exc.step}")
        return False
    except AgiHangup:
        await abandon(ctx, payment, call, "cardholder hung up")
        raise
    await announce(call, prompts, outcome)
    return True


async def _id_confirmed(call: AgiChannel, ctx: FlowContext, prompts: Prompts,
                        payment: Payment) -> bool:
    assert ctx.risk is not None, "the service sets the risk gate; a step-up needs its key"
    return await confirm_id(call, ctx.store, ctx.risk.id_digests, prompts, payment,
                            max_attempts=ctx.settings.id_check_max_attempts,
                            first_digit_timeout_ms=ctx.settings.first_digit_timeout_ms)


async def _card_number(ctx: FlowContext, payment: Payment) -> str:
    token = await ctx.store.pan_token(payment.id)
    if token is None:
        raise CardNumberGone(payment.id)
    try:
        return ctx.vault.decrypt(token, payment.id)
    except PanKeyRetired as exc:
        raise CardNumberGone(payment.id, str(exc)) from None


async def _expiry_and_cvv2(call: AgiChannel, ctx: FlowContext, keypad: Keypad, prompts: Prompts,
                           payment: Payment, pan: str) -> Outcome:
    """Credit cards: expiry and CVV2 instead of a PIN. The agent of a one-line payment may ask
    for either again until they go to the acquirer (ivr/paying/ask_again.py)."""

    async def expiry(lead_in: Sequence[str] = ()) -> str:
        return await keypad.digits("enter_expiry", max_digits=4, check=check_expiry_mmyy,
                                   invalid="invalid_expiry", lead_in=lead_in)

    async def cvv2(lead_in: Sequence[str] = ()) -> bytearray:
        return await keypad.secret("enter_cvv2", min_len=3, max_len=3, invalid="invalid_cvv2",
                                   lead_in=lead_in)

    expiry_mmyy = await expiry()
    while await ctx.asked_again(payment, "expiry"):
        expiry_mmyy = await expiry(ASK_AGAIN)
    payment = await ctx.store.transition(payment.id, PaymentState.PIN_ENTRY,
                                         reason="expiry entered, asking for CVV2",
                                         keyed=("expiry", len(expiry_mmyy)))
    cvv2_digits = await cvv2()
    try:
        # A request for the expiry made while the CVV2 was keyed acts now: both go together.
        while asked := await ctx.asked_again(payment, "expiry", "cvv2"):
            if asked == "expiry":
                expiry_mmyy = await expiry(ASK_AGAIN)
                await ctx.store.note(payment.id, "expiry entered again",
                                     keyed=("expiry", len(expiry_mmyy)))
            else:
                cvv2_digits[:] = b"\0" * len(cvv2_digits)
                cvv2_digits = await cvv2(ASK_AGAIN)
    except BaseException:
        cvv2_digits[:] = b"\0" * len(cvv2_digits)
        raise
    await ctx.store.transition(payment.id, PaymentState.AUTHORIZING,
                               reason="expiry and CVV2 entered", keyed=("cvv2", len(cvv2_digits)),
                               pin_attempts=0)
    await ctx.close_ask_again(payment)
    log.info("call %s payment %s: expiry and CVV2 entered, authorizing", call.uniqueid, payment.id)
    authorization = ctx.authorizer.authorize(
        payment, pan, expiry_yymm=expiry_mmyy[2:] + expiry_mmyy[:2], cvv2_digits=cvv2_digits)
    outcome = await authorize_during_please_wait(call, ctx, prompts, payment, authorization)
    await settle(ctx, payment, outcome, call)
    if call.hung_up:
        raise AgiHangup("STREAM FILE", "caller hung up during authorization")
    return outcome
