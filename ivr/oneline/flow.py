"""The caller's side of a one-line payment, from the moment the AMI Redirect put them here.

    switched in (the agent now hears hold music, apart from us, and their call recording is
    paused) → the order read out and paid → the agent's recording resumed → back to the
    dialplan, which bridges the caller to the same agent

Talk-through (``oneline_style``): the agent was not held apart but listens to the caller's voice
and talks to them (dialplan/oneline.conf, [agent-talkthrough]); their recording was never paused,
so there is nothing to resume.

If the caller hangs up, the agent is told and released. If the merchant cancels, the caller is
redirected back to the agent (``OnelineOrders.cancel``): this session sees the same hang-up, and
the agent, who is being bridged back, must not be released.
"""

from __future__ import annotations

import logging

from ivr import dialplan_variables as dv
from ivr.agi.channel import AgiChannel, AgiHangup
from ivr.oneline.orders import TALK_THROUGH
from ivr.paying.context import FlowContext
from ivr.paying.order_payment import pay_order
from ivr.payments.store import InvalidTransition, NoSuchPayment, Payment, PaymentState

__all__ = ["oneline"]

log = logging.getLogger(__name__)


async def oneline(call: AgiChannel, ctx: FlowContext) -> None:
    payment_id = await call.get_variable(dv.PAYMENT_ID) or ""
    try:
        talk_through = (await ctx.store.get(payment_id)).oneline_style == TALK_THROUGH
        payment = await ctx.store.transition(
            payment_id, PaymentState.ANSWERED, call_id=call.uniqueid,
            reason="caller in secure capture; agent talking through, hearing no digit"
                   if talk_through else "caller switched to the payment IVR; agent held apart")
    except (NoSuchPayment, InvalidTransition) as exc:
        log.info("call %s: one-line payment %r not taken: %s", call.uniqueid, payment_id, exc)
        return
    log.info("call %s payment %s: caller in the payment IVR", call.uniqueid, payment.id)
    assert ctx.oneline is not None
    try:
        await pay_order(call, ctx, payment)
    except AgiHangup:
        if (await ctx.store.get(payment.id)).status is not PaymentState.CANCELLED:
            await ctx.oneline.release_agent(payment.agent_channel)
        raise
    finally:
        # Whatever the ending: nothing of the payment is said or keyed from here on. A process
        # that dies first leaves the recording paused until the call ends: silence, no leak.
        if not talk_through or payment.caller_muted:
            await _resume_recording(ctx, payment)
        if payment.caller_muted:
            assert ctx.oneline is not None
            await ctx.oneline.unmute_caller(payment.agent_channel)
        if talk_through:
            # The agent's keys were dropped so ChanSpy's * and # could not act; lifted now, the
            # result read out, a moment before the dialplan's Bridge() takes the agent back.
            assert ctx.oneline is not None
            await ctx.oneline.pass_agent_keys(payment.agent_channel)
    if talk_through:
        await _note_if_the_agent_left(ctx, payment)


async def _note_if_the_agent_left(ctx: FlowContext, payment: Payment) -> None:
    """Talk-through: the agent's phone may hang up while the caller keys, and the caller pays
    on; the payment's history says the agent had gone (as the hard switch's says the agent's
    recording could not be resumed), and the dialplan offers the caller another agent."""
    assert ctx.oneline is not None
    if await ctx.oneline.agent_on_call(payment.agent_channel) is False:
        await ctx.store.note(payment.id, "the agent's call ended during the payment: the caller "
                             "is offered another agent", event="agent_gone")
        log.info("payment %s: the agent's call ended during the talk-through payment", payment.id)


async def _resume_recording(ctx: FlowContext, payment: Payment) -> None:
    assert ctx.oneline is not None
    if await ctx.oneline.resume_recording(payment.agent_channel):
        await ctx.store.note(payment.id, "the agent's call recording resumed",
                             event="recording_resumed")
    else:
        await ctx.store.note(payment.id, "the agent's call recording was not resumed: their "
                             "call has ended", event="recording_ended")
        log.info("payment %s: the agent's recording was not resumed (their call has ended)",
                 payment.id)
