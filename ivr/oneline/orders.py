"""One-line orders: a payment taken inside the agent's live call.

Because it is immediate (no second channel the platform opens itself), it is allowed only up to
VOICEPAY_ONELINE_MAX_AMOUNT, or for a returning cardholder: this card and this mobile number were
seen together in an approved payment before. Otherwise the agent is told to use a callback.

    limits → create payment → basic risk → find the agent's call → switch the legs
"""

from __future__ import annotations

import hashlib
import hmac
import logging

import redis.asyncio as aioredis

from ivr.api.errors import APIError
from ivr.api.payment_request import CallbackOrder
from ivr.callback.orders import CallbackOrders
from ivr.merchants import Merchant
from ivr.oneline.switch import OnelineSwitch
from ivr.risk.basic import assess
from ivr.payments.store import Payment, PaymentState, PaymentStore

__all__ = ["OnelineNotAllowed", "OnelineOrders", "ReturningCardholders"]

log = logging.getLogger(__name__)


class OnelineNotAllowed(APIError):
    status = 403
    error_id = "oneline-not-allowed"

    def __init__(self, max_fen: int) -> None:
        super().__init__(
            f"a one-line payment is limited to {max_fen / 100:.2f} for a new cardholder: "
            "use a callback payment (mode callback) instead",
            {"max_amount": f"{max_fen / 100:.2f}", "use_mode": "callback"})


class ReturningCardholders:
    """Card + mobile pairs seen in an approved payment, kept as keyed digests (HMAC-SHA256 under
    the card data key), so Redis never holds a card number, not even hashed without a key."""

    def __init__(self, redis: aioredis.Redis, key: bytes) -> None:
        self._redis = redis
        self._key = key

    def _digest(self, pan: str, mobile: str) -> str:
        return hmac.new(self._key, f"{pan}:{mobile}".encode(), hashlib.sha256).hexdigest()

    async def remember(self, pan: str, mobile: str) -> None:
        await self._redis.sadd("cardholders:returning", self._digest(pan, mobile))

    async def seen(self, pan: str, mobile: str) -> bool:
        return bool(await self._redis.sismember("cardholders:returning", self._digest(pan, mobile)))


class OnelineOrders:
    def __init__(self, store: PaymentStore, orders: CallbackOrders, switch: OnelineSwitch,
                 returning: ReturningCardholders, max_fen: int) -> None:
        self._store = store
        self._orders = orders
        self._switch = switch
        self._returning = returning
        self._max_fen = max_fen

    async def submit(self, merchant: Merchant, order: CallbackOrder) -> Payment:
        assert order.agent_id is not None
        if order.amount_fen > self._max_fen and not await self._returning.seen(order.card_number,
                                                                               order.mobile):
            raise OnelineNotAllowed(self._max_fen)
        call = await self._switch.find(order.agent_id)
        card = self._orders.card(order.card_number)
        payment = await self._orders.create(merchant, order, card, mode="oneline",
                                            agent_id=order.agent_id,
                                            agent_channel=call.agent_channel,
                                            caller_channel=call.caller_channel)
        decision = assess(merchant, order, card)
        if not decision.passed:
            return await self._store.transition(payment.id, PaymentState.RISK_DECLINED,
                                                reason=decision.summary())
        payment = await self._store.transition(payment.id, PaymentState.RISK_PASSED,
                                               reason=decision.summary())
        await self._switch.switch(order.agent_id, call, payment.id)
        return payment


class Orders:
    """The order service the API talks to: callback or one-line, by the order's mode."""

    def __init__(self, callback: CallbackOrders, oneline: OnelineOrders) -> None:
        self._callback = callback
        self._oneline = oneline

    async def submit(self, merchant: Merchant, order: CallbackOrder) -> Payment:
        if order.mode == "oneline":
            return await self._oneline.submit(merchant, order)
        return await self._callback.submit(merchant, order)

    async def cancel(self, merchant: Merchant, payment_id: str) -> Payment:
        return await self._callback.cancel(merchant, payment_id)
