"""The secret part of every flow: PIN entry, PIN block, authorization, result.

The clear PIN lives in one bytearray from the moment Asterisk returns it until
``pinblock_from_digits`` has built the ISO 9564 format 4 block and zeroed it: a few milliseconds,
inside this process, never logged, never stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

from ivr import dialplan_variables as dv
from ivr.agi.channel import AgiChannel, AgiError, AgiHangup
from ivr.crypto.pinblock import pinblock_from_digits
from ivr.paying.ask_again import ASK_AGAIN
from ivr.paying.authorization import Outcome
from ivr.paying.context import FlowContext
from ivr.paying.keypad import Keypad
from ivr.prompts import Prompts
from ivr.payments.store import Payment, PaymentState

__all__ = ["collect_pin_and_authorize", "authorize_during_please_wait", "settle", "announce",
           "abandon"]

log = logging.getLogger(__name__)

MAX_PIN_ATTEMPTS = 3


async def collect_pin_and_authorize(call: AgiChannel, ctx: FlowContext, keypad: Keypad,
                                    prompts: Prompts, payment: Payment, pan: str) -> Outcome:
    """PIN entry and authorization, re-prompting after an incorrect PIN. Returns the final outcome.

    Raises ``AgiHangup`` or ``TooManyAttempts`` if the caller leaves or keys nothing usable before
    a PIN block exists; the payment is then left in ``pin_entry`` for the caller to abandon.
    """
    payment = await ctx.store.transition(payment.id, PaymentState.PIN_ENTRY, reason="asking for PIN")
    lead_in: tuple[str, ...] = ()
    for attempt in range(1, MAX_PIN_ATTEMPTS + 1):
        digits = await keypad.secret("enter_pin", lead_in=lead_in, min_len=4, max_len=12,
                                     invalid="invalid_pin")
        while await ctx.asked_again(payment, "pin"):  # the agent: that entry is discarded
            digits[:] = b"\0" * len(digits)
            digits = await keypad.secret("enter_pin", lead_in=ASK_AGAIN, min_len=4, max_len=12,
                                         invalid="invalid_pin")
        pin_length = len(digits)
        pek = ctx.pin_key()
        assert pek.key is not None  # the current version is active
        pin_block = pinblock_from_digits(pek.key, digits, pan)  # wipes `digits`
        await ctx.store.transition(payment.id, PaymentState.AUTHORIZING,
                                   reason=f"PIN entered ({pin_length} digits), PIN block built",
                                   keyed=("pin", pin_length), pin_attempts=attempt)
        await ctx.close_ask_again(payment)
        log.info("call %s payment %s: PIN entered (%d digits), authorizing", call.uniqueid,
                 payment.id, pin_length)
        outcome = await authorize_during_please_wait(
            call, ctx, prompts, payment, ctx.authorizer.authorize(payment, pan, pin_block=pin_block,
                                                            pin_key_id=pek.id))
        if outcome.incorrect_pin and attempt < MAX_PIN_ATTEMPTS and not call.hung_up:
            await ctx.store.transition(payment.id, PaymentState.PIN_ENTRY, reason=outcome.reason,
                                       response_code=outcome.response_code)
            # Part of the next PIN question: a caller may start re-keying while told why.
            lead_in = ("incorrect_pin", "try_again")
            continue
        await settle(ctx, payment, outcome, call)
        if call.hung_up:
            raise AgiHangup("STREAM FILE", "caller hung up during authorization")
        return outcome
    raise AssertionError("unreachable: the last attempt always settles")


async def authorize_during_please_wait(call: AgiChannel, ctx: FlowContext, prompts: Prompts,
                                      payment: Payment,
                                      authorization: Coroutine[Any, Any, Outcome]) -> Outcome:
    """Ask the acquirer while "please wait" plays; returns its answer.

    Once on its way, an authorization is never orphaned: the acquirer may already have charged the
    card. A caller hanging up, or any AGI failure here (a hang-up Asterisk reports only as
    result=-1, a missing sound file), does not stop it, so its answer is still recorded. If the
    call itself is cancelled (the service stopping after its drain time), the answer is awaited and
    the payment settled with it before the cancellation goes on: no one is left to re-prompt.
    """
    answer = asyncio.create_task(authorization)
    try:
        # No question follows "please wait" for sure, so it takes no keys: keys pressed now are
        # dropped, and a PIN asked again is asked from its first prompt.
        with contextlib.suppress(AgiError):
            await call.stream(prompts["please_wait"])
        return await asyncio.shield(answer)
    except asyncio.CancelledError:
        # Shielded as well: a second cancellation ends this wait, not the settling.
        await asyncio.shield(_settle_when_answered(ctx, payment, answer, call))
        raise


async def _settle_when_answered(ctx: FlowContext, payment: Payment, answer: asyncio.Task[Outcome],
                                call: AgiChannel) -> None:
    outcome = await answer
    log.warning("call %s payment %s: call cut off during its authorization; settling it",
                call.uniqueid, payment.id)
    await settle(ctx, payment, outcome, call)


async def settle(ctx: FlowContext, payment: Payment, outcome: Outcome, call: AgiChannel) -> None:
    await ctx.store.transition(payment.id, outcome.state, reason=outcome.reason,
                               response_code=outcome.response_code, rrn=outcome.rrn,
                               auth_code=outcome.auth_code)
    log.info("call %s payment %s: %s (%s)", call.uniqueid, payment.id, outcome.state.value,
             outcome.reason)


async def announce(call: AgiChannel, prompts: Prompts, outcome: Outcome) -> None:
    """Tell the caller how it ended; an approval is read back with its reference number."""
    reference = prompts.digits(outcome.rrn) if outcome.state is PaymentState.APPROVED else []
    await call.play(prompts[outcome.prompt], *reference)
    await call.set_variable(dv.RESULT, "success")


async def abandon(ctx: FlowContext, payment: Payment, call: AgiChannel, why: str) -> None:
    """The caller left (or gave up) before a PIN block existed: nothing went to the acquirer."""
    current = await ctx.store.get(payment.id)
    if current.is_final or current.status is PaymentState.AUTHORIZING:
        return
    await ctx.store.transition(payment.id, PaymentState.ABANDONED, reason=why)
    log.info("call %s payment %s: abandoned (%s)", call.uniqueid, payment.id, why)

