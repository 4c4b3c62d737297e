"""Callback orders: from a validated merchant request to a ringing phone.

submit: create the payment (card number encrypted, first 6 / last 4 in clear) → risk decision
(ivr/risk/gate.py) → approve or step_up: risk_passed, the callback is scheduled (in Redis: any
instance dials it; a step-up is asked for on the call) | review: risk_review, until an operator
decides (ivr/risk/review.py) | decline: risk_declined, done, merchant notified.
cancel: before the PIN, the payment becomes ``cancelled`` and any call of it is hung up.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ivr.hostlink.bin_table import BinInfo, PublishedBins
from ivr.orders import Order, mask_id_number
from ivr.callback.cardholder_language import CardholderLanguages
from ivr.callback.dialer import Dialer
from ivr.crypto.pan_vault import PanVault, mask_pan
from ivr.merchants import Merchant
from ivr.speech import DEFAULT_LANGUAGE
from ivr.risk.decision import RiskOutcome, RiskRequest
from ivr.risk.gate import RiskGate
from ivr.payments.store import Payment, PaymentState, PaymentStore, new_payment_id

__all__ = ["CallbackOrders"]

log = logging.getLogger(__name__)


class CallbackOrders:
    def __init__(self, store: PaymentStore, vault: PanVault, bins_path: Path, dialer: Dialer,
                 risk: RiskGate, languages: CardholderLanguages | None = None) -> None:
        self._store = store
        self._languages = languages
        self._vault = vault
        self._bins = PublishedBins(bins_path)
        self._dialer = dialer
        self.risk = risk

    def card(self, card_number: str) -> BinInfo | None:
        return self._bins.card(card_number)

    async def submit(self, merchant: Merchant, order: Order) -> Payment:
        card = self.card(order.card_number)
        payment = await self.create(merchant, order, card, mode="callback")
        request = RiskRequest(payment.id, "callback", merchant, order, card, source=merchant.id)
        decision = await self.risk.assess(request)
        fields = self.risk.fields(decision, request)
        reason = self.risk.history(decision)
        if decision.outcome is RiskOutcome.REVIEW:
            return await self._store.transition(payment.id, PaymentState.RISK_REVIEW,
                                                reason=reason, **fields)
        if not decision.passed:
            return await self._store.transition(payment.id, PaymentState.RISK_DECLINED,
                                                reason=reason, **fields)
        payment = await self._store.transition(payment.id, PaymentState.RISK_PASSED,
                                               reason=reason, **fields)
        await self._dialer.schedule(payment.id)
        return payment

    async def create(self, merchant: Merchant, order: Order, card: BinInfo | None, *,
                     mode: str, **extra: str) -> Payment:
        """The payment of a merchant's order: card number encrypted, first 6 / last 4 in clear."""
        masked = mask_pan(order.card_number)
        payment_id = new_payment_id()
        language = (await self._languages.choose(order) if self._languages is not None
                    else order.language or DEFAULT_LANGUAGE)
        payment = await self._store.create(
            {
                "mode": mode,
                "merchant_id": merchant.id,
                "merchant_order_id": order.merchant_order_id,
                "amount_minor": order.amount.fen,
                "currency": "CNY",
                "description": order.description,
                "cardholder_name": order.cardholder_name,
                "id_number_masked": mask_id_number(order.id_number),
                "mobile": order.mobile,
                "language": language,
                "pan_first6": masked[:6],
                "pan_last4": masked[-4:],
                "card_type": card.card_type if card else "unknown",
                "issuer": card.issuer(language) if card else "",
                **({"notify_url": order.notify_url} if order.notify_url else {}),
                **extra,
            },
            payment_id=payment_id,
            pan_token=self._vault.encrypt(order.card_number, payment_id),
            reason=f"{mode} order {order.merchant_order_id} from {merchant.id}",
        )
        log.info("payment %s: %s order from %s, card %s", payment.id, mode, merchant.id, masked)
        return payment

    async def cancel(self, merchant: Merchant, payment_id: str) -> Payment:
        payment = await self._store.transition(payment_id, PaymentState.CANCELLED,
                                               reason=f"cancelled by merchant {merchant.id}")
        await self._dialer.hang_up(payment_id)
        log.info("payment %s: cancelled by merchant %s", payment_id, merchant.id)
        return payment
