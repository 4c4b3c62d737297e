"""The callback call, once the cardholder picks up the call the dialer placed.

    answered → the order read out and paid (ivr/paying/order_payment.py) → goodbye

Only the payment id came with the call: a channel variable set by the dialer's Originate.
"""

from __future__ import annotations

import logging

from ivr import dialplan_variables as dv
from ivr.agi.channel import AgiChannel
from ivr.paying.context import FlowContext
from ivr.paying.order_payment import pay_order
from ivr.payments.store import InvalidTransition, NoSuchPayment, PaymentState

__all__ = ["callback"]

log = logging.getLogger(__name__)


async def callback(call: AgiChannel, ctx: FlowContext) -> None:
    payment_id = await call.get_variable(dv.PAYMENT_ID) or ""
    try:
        payment = await ctx.store.transition(payment_id, PaymentState.ANSWERED,
                                             reason=f"answered (call {call.uniqueid})",
                                             call_id=call.uniqueid)
    except (NoSuchPayment, InvalidTransition) as exc:
        # Cancelled while ringing, or a stray call: nothing to pay here.
        log.info("call %s: callback for payment %r not taken: %s", call.uniqueid, payment_id, exc)
        await call.hangup()
        return
    # This transition is what tells the dialer (whichever instance placed the call) it was taken.
    log.info("call %s payment %s: cardholder answered", call.uniqueid, payment.id)
    await pay_order(call, ctx, payment)
    await call.stream(ctx.prompts(payment.language)["goodbye"])
    await call.hangup()
