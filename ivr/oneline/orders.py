"""One-line orders: a payment taken inside the agent's live call.

Because it is immediate (no second channel the platform opens itself), it is allowed only up to
VOICEPAY_ONELINE_MAX_AMOUNT, or for a returning cardholder: this card and this mobile number were
seen together in an approved payment before. Otherwise the agent is told to use a callback.

    limits → find the agent's call → create payment → risk → switch the legs
                                                               (if it fails: payment failed)

Risk outcomes: approve and step_up switch the caller in (a step-up is asked for on the call);
review is declined (risk_declined, "declined by risk control"): the caller and the agent are on
the line now and an operator's decision may take half an hour. The agent can still offer a
callback, which waits for review.
    cancel (before the PIN) → the caller goes back to the agent; the payment is cancelled
"""

from __future__ import annotations

import logging
import time

import redis.asyncio as aioredis

from ivr.callback.orders import CallbackOrders
from ivr.crypto.keyed_digest import KeyedDigest
from ivr.crypto.keyring import KeySource
from ivr.merchants import Merchant
from ivr.oneline.switch import AgentCall, OnelineSwitch, SwitchFailed
from ivr.money import Money
from ivr.orders import Order
from ivr.payments.model import PaymentMode
from ivr.payments.store import Payment, PaymentState, PaymentStore
from ivr.risk.decision import RiskOutcome, RiskRequest
from ivr.risk.gate import GENERIC_DECLINE

__all__ = ["RETURNING_KEY", "TALK_THROUGH", "OnelineNotAllowed", "OnelineOrders", "Orders",
           "ReturningCardholders"]

log = logging.getLogger(__name__)


class OnelineNotAllowed(Exception):
    def __init__(self, maximum: Money) -> None:
        super().__init__(
            f"a one-line payment is limited to {maximum} for a new cardholder: "
            "use a callback payment (mode callback) instead")
        self.details = {"max_amount": maximum.yuan, "use_mode": "callback"}


# The order mode, and the payment's oneline_style, of a one-line payment taken with the agent
# still talking to the caller (ivr/oneline/switch.py); the payment's mode stays "oneline", so
# risk, limits, ask-again and recovery treat it as any one-line payment.
TALK_THROUGH = "talk-through"

# Sorted set: digest -> unix time of the pair's latest approved payment. The retention sweep
# forgets a pair retention_days after it was last seen, like the payments that made it known.
RETURNING_KEY = "cardholders:seen"


class ReturningCardholders:
    """Card + mobile pairs seen in an approved payment, kept as keyed digests (HMAC-SHA256 under
    the IVR's cardholder key, never the card-number vault's key), so Redis never holds a card
    number, not even hashed without a key. Remembered under the current key, looked up under
    every readable one: a cardholder stays returning across a rotation until the old key is
    retired."""

    def __init__(self, redis: aioredis.Redis, key: bytes | KeySource) -> None:
        self._redis = redis
        self._digests = KeyedDigest(key)

    @staticmethod
    def _pair(pan: str, mobile: str) -> tuple[bytes, ...]:
        return (pan.encode(), b":", mobile.encode())

    async def remember(self, pan: str, mobile: str) -> None:
        await self._redis.zadd(RETURNING_KEY, {self._digests.current(*self._pair(pan, mobile)): time.time()})

    async def seen(self, pan: str, mobile: str) -> bool:
        for digest in self._digests.all(*self._pair(pan, mobile)):  # two only while keys overlap
            if await self._redis.zscore(RETURNING_KEY, digest) is not None:
                return True
        return False


class OnelineOrders:
    def __init__(self, store: PaymentStore, orders: CallbackOrders, switch: OnelineSwitch,
                 returning: ReturningCardholders, maximum: Money) -> None:
        self._store = store
        self._orders = orders
        self._switch = switch
        self._returning = returning
        self._maximum = maximum

    async def submit(self, merchant: Merchant, order: Order) -> Payment:
        assert order.agent_id is not None
        if order.amount > self._maximum and not await self._returning.seen(order.card_number,
                                                                               order.mobile):
            raise OnelineNotAllowed(self._maximum)
        call = await self._switch.find(order.agent_id)
        card = self._orders.card(order.card_number)
        talk_through = order.mode == TALK_THROUGH
        # A caller whose phone may key in-band tones is muted to the agent (README,
        # "Talk-through": Asterisk misses a key keyed over speech and leaves its tone in).
        mute_caller = talk_through and await self._switch.keys_in_band(call.caller_channel)
        payment = await self._orders.create(merchant, order, card, mode="oneline",
                                            agent_id=order.agent_id,
                                            agent_channel=call.agent_channel,
                                            caller_channel=call.caller_channel,
                                            **({"oneline_style": TALK_THROUGH} if talk_through
                                               else {}),
                                            **({"caller_muted": "1"} if mute_caller else {}))
        risk = self._orders.risk
        request = RiskRequest(payment.id, "oneline", merchant, order, card, source=merchant.id)
        decision = await risk.assess(request)
        if decision.outcome is RiskOutcome.REVIEW:
            return await self._store.transition(
                payment.id, PaymentState.RISK_DECLINED,
                reason=f"{risk.history(decision, GENERIC_DECLINE)}: no review while the caller "
                       "waits",
                **risk.fields(decision, request, merchant_reason=GENERIC_DECLINE))
        if not decision.passed:
            return await self._store.transition(payment.id, PaymentState.RISK_DECLINED,
                                                reason=risk.history(decision),
                                                **risk.fields(decision, request))
        # risk_passed before the switch: the caller's flow takes the payment from there, and
        # may start before the Redirect is even acknowledged.
        payment = await self._store.transition(payment.id, PaymentState.RISK_PASSED,
                                               reason=risk.history(decision),
                                               **risk.fields(decision, request))
        try:
            await self._switch.switch(order.agent_id, call, payment.id, talk_through=talk_through,
                                      mute_caller=mute_caller)
        except SwitchFailed as exc:
            # Nobody will take this payment now: it ends here, and the merchant hears why.
            await self._store.transition(payment.id, PaymentState.FAILED, reason=str(exc))
            log.warning("payment %s: %s", payment.id, exc)
            raise
        if not talk_through or mute_caller:
            await self._store.note(payment.id, "the agent's call recording paused",
                                   event="recording_paused")
        if mute_caller:
            await self._store.note(payment.id, "the caller's phone may key in-band tones: the "
                                   "agent hears silence from the caller until the payment ends, "
                                   "and can still talk to them", event="caller_muted")
        return payment

    async def cancel(self, merchant: Merchant, payment: Payment) -> Payment:
        """Cancel before the PIN. A caller already switched to the payment IVR goes back to the
        agent, who is waiting in [agent-wait]; if that cannot be done, the caller is hung up and
        the agent released, so nobody is left in the payment IVR or on hold."""
        switched = payment.status is not PaymentState.CREATED  # the switch follows risk_passed
        payment = await self._store.transition(payment.id, PaymentState.CANCELLED,
                                               reason=f"cancelled by merchant {merchant.id}")
        if not switched:
            return payment  # the caller is still talking to the agent; submit stops at risk
        call = AgentCall(payment.agent_channel,
                         payment.caller_channel)
        if await self._switch.return_to_agent(call.caller_channel):
            outcome = "caller taken out of the payment IVR and returned to the agent"
        else:
            hung_up = await self._switch.hang_up(call.caller_channel)
            await self._switch.release_agent(call.agent_channel)
            outcome = ("caller could not be returned to the agent: "
                       + ("caller hung up, agent released" if hung_up else "caller already gone"))
        await self._store.note(payment.id, outcome)
        log.info("payment %s: cancelled by merchant %s; %s", payment.id, merchant.id, outcome)
        return payment


class Orders:
    """The order service the API talks to: callback or one-line, by the order's mode."""

    def __init__(self, store: PaymentStore, callback: CallbackOrders, oneline: OnelineOrders) -> None:
        self._store = store
        self._callback = callback
        self._oneline = oneline

    async def submit(self, merchant: Merchant, order: Order) -> Payment:
        if order.mode in ("oneline", TALK_THROUGH):
            return await self._oneline.submit(merchant, order)
        return await self._callback.submit(merchant, order)

    async def cancel(self, merchant: Merchant, payment_id: str) -> Payment:
        payment = await self._store.get(payment_id)
        if payment.mode is PaymentMode.ONELINE:
            return await self._oneline.cancel(merchant, payment)
        return await self._callback.cancel(merchant, payment_id)
