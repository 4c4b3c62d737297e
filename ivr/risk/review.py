"""Review: a callback the risk engine held (``risk_review``) waits for an operator's decision.

    risk_review ── operator approves ──► risk_passed → the callback is scheduled, as after approve
                ── operator declines ──► risk_declined (merchant told "declined by risk control")
                ── nobody decides within VOICEPAY_RISK_REVIEW_TIMEOUT_S ──► risk_declined

Exactly one decision counts. Whoever decides first writes ``review_decision`` on the payment with
HSETNX (``PaymentStore.set_once``), then applies it; any later decision is refused
(``ReviewNotPending``), the timeout included. The timeout is the recovery sweep's
(ivr/payments/recovery.py calls ``settle_overdue``), so any instance declines a forgotten review
after a crash; a decision written by a process that died before applying it is applied there too.
Only callbacks are ever held: a caller on the line cannot wait (ivr/oneline/orders.py,
ivr/selfservice/flow.py).
"""

from __future__ import annotations

import logging
from typing import Protocol

from ivr.payments.store import Payment, PaymentState, PaymentStore
from ivr.risk.gate import GENERIC_DECLINE

__all__ = ["ReviewDesk", "ReviewNotPending", "APPROVE", "DECLINE", "TIMEOUT"]

log = logging.getLogger(__name__)

APPROVE, DECLINE, TIMEOUT = "approve", "decline", "timeout"


class ReviewNotPending(Exception):
    """The payment is not waiting for review: decided already, or never held."""

    def __init__(self, payment_id: str, status: str, decision: str = "") -> None:
        already = f" (review decision: {decision})" if decision else ""
        super().__init__(f"payment {payment_id} is {status}{already}; it is not waiting for review")
        self.details = {"payment_id": payment_id, "status": status,
                        **({"review_decision": decision} if decision else {})}


class CallbackScheduler(Protocol):
    async def schedule(self, payment_id: str) -> None: ...


class ReviewDesk:
    def __init__(self, store: PaymentStore, dialer: CallbackScheduler) -> None:
        self._store = store
        self._dialer = dialer

    async def decide(self, payment_id: str, decision: str, note: str) -> Payment:
        """An operator's decision (``approve`` or ``decline``) with their note."""
        if decision not in (APPROVE, DECLINE):
            raise ValueError(f"a review decision is {APPROVE} or {DECLINE}")
        payment = await self._store.get(payment_id)
        if payment.status is not PaymentState.RISK_REVIEW:
            raise ReviewNotPending(payment_id, payment.status.value, payment.review_decision)
        if not await self._store.set_once(payment_id, "review_decision", decision):
            current = await self._store.get(payment_id)
            raise ReviewNotPending(payment_id, current.status.value, current.review_decision)
        why = f"review: {decision}d by the operator" + (f": {note}" if note else "")
        return await self._apply(payment_id, decision, why)

    async def settle_overdue(self, payment: Payment, age: float) -> bool:
        """The recovery sweep's part: a review past its timeout is declined, unless a decision
        was written and not applied (its process died), which is applied now. True if final."""
        if payment.review_decision or not await self._store.set_once(payment.id, "review_decision",
                                                                   TIMEOUT):
            decision = (await self._store.get(payment.id)).review_decision
            why = f"review: {decision} decided earlier, applied by recovery"
        else:
            decision = TIMEOUT
            why = f"review: no decision within {age:.0f} s; declined"
        payment = await self._apply(payment.id, decision, why)
        return payment.is_final

    async def _apply(self, payment_id: str, decision: str, why: str) -> Payment:
        if decision == APPROVE:
            payment = await self._store.transition(payment_id, PaymentState.RISK_PASSED, reason=why)
            await self._dialer.schedule(payment_id)
        else:
            payment = await self._store.transition(payment_id, PaymentState.RISK_DECLINED,
                                                   reason=why, merchant_reason=GENERIC_DECLINE)
        log.info("payment %s: %s", payment_id, why)
        return payment
