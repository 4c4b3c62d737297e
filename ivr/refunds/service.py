"""Voids and refunds, from a merchant's request to the acquirer's answer, and lost answers undone.

1. The payment must be the merchant's (another merchant's is "no such payment"), approved, and
   within its window: a void within its settlement day (``Cutoff``), a refund within
   ``refund_window_days`` of the approval.
2. The record is stored ``sending`` and its amount held against the payment in one Redis step
   (ivr/refunds/store.py), before the message leaves: concurrent requests cannot give back more
   than was taken.
3. The 0200 (void) or 0220 (refund) goes out. An answer makes it ``succeeded`` or ``declined``; no
   connection at all, ``failed``; an answer lost (timeout, connection cut, unreadable) makes it
   ``reversal_pending`` *before* the 0400 is sent, so a crash between the two loses nothing.
4. A 0400 acknowledged (00, or 25: it never arrived) makes it ``reversed``. Until then the sweep
   (``settle_due``, at start and every period, on any instance) sends it again; it also takes
   over a ``sending`` record whose process died before recording an answer.

Each final state is told to the merchant by webhook (``on_final``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from ivr.hostlink.acquirer_client import AcquirerClient, AcquirerError
from ivr.hostlink.adjustments import AdjustmentReversal, RefundRequest, VoidRequest
from ivr.hostlink.messages import transmission_datetime
from ivr.money import Money
from ivr.payments.sent_purchase import SentPurchase
from ivr.payments.settlement_day import Cutoff
from ivr.payments.store import NoSuchPayment, Payment, PaymentState, PaymentStore
from ivr.refunds.model import (NotRefundable, Refund, RefundExceedsCaptured, RefundKind,
                               RefundState, RefundWindowClosed, VoidWindowClosed, new_refund_id)
from ivr.refunds.store import RefundStore

__all__ = ["RefundService", "request_of"]

log = logging.getLogger(__name__)

S = RefundState


def request_of(refund: Refund) -> VoidRequest | RefundRequest:
    """The message a record was sent as, rebuilt from the record (for its reversal)."""
    kind = VoidRequest if refund.kind is RefundKind.VOID else RefundRequest
    return kind(amount=refund.amount.fen, stan=refund.stan, transmission=refund.transmission,
                local_time=refund.local_time, local_date=refund.local_date,
                terminal_id=refund.terminal_id, merchant_id=refund.merchant_field,
                original_mti=VoidRequest.MTI, original_stan=refund.original_stan,
                original_transmission=refund.original_transmission,
                original_rrn=refund.original_rrn)


class RefundService:
    def __init__(self, payments: PaymentStore, refunds: RefundStore, acquirer: AcquirerClient, *,
                 cutoff: Cutoff, window_days: int, answer_deadline_s: float,
                 reversal_retry_s: float = 30.0,
                 on_final: Callable[[Payment, Refund], Awaitable[Any]] | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self._payments = payments
        self._refunds = refunds
        self._acquirer = acquirer
        self._cutoff = cutoff
        self._window = timedelta(days=window_days)
        # A ``sending`` record with no answer recorded this long after it was stored was left by
        # a process that died: longer than the acquirer timeout, so never one still waiting.
        self._answer_deadline_s = answer_deadline_s
        # How long after a round of reversal attempts nobody acknowledged the sweep tries again.
        self._reversal_retry_s = reversal_retry_s
        self._on_final = on_final
        self._clock = clock

    def __repr__(self) -> str:
        return f"RefundService(cutoff={self._cutoff}, window={self._window.days} days)"

    # --- the merchant's requests --------------------------------------------------------------

    async def void(self, merchant_id: str, payment_id: str, reason: str = "") -> Refund:
        payment, approved_at = await self._refundable(merchant_id, payment_id)
        now = self._clock()
        if self._cutoff.day_of(approved_at) != self._cutoff.day_of(now):
            raise VoidWindowClosed(
                f"payment {payment_id}'s settlement day ended at the {self._cutoff} cut-off: "
                f"refund it instead", {"settlement_day": self._cutoff.day_of(approved_at).isoformat()})
        return await self._give_back(payment, RefundKind.VOID, payment.amount, reason)

    async def refund(self, merchant_id: str, payment_id: str, amount: Money,
                     reason: str = "") -> Refund:
        payment, approved_at = await self._refundable(merchant_id, payment_id)
        if self._clock() - approved_at > self._window:
            raise RefundWindowClosed(
                f"payment {payment_id} was approved more than {self._window.days} days ago",
                {"approved_at": approved_at.isoformat()})
        if amount > payment.amount:  # never a message for it (nor one too large for field 4)
            left = Money(max(payment.amount.fen - (await self._refunds.held(payment_id)).fen, 0))
            raise RefundExceedsCaptured(f"{amount} is more than the {left} left of payment "
                                        f"{payment_id}", {"refundable": left.yuan})
        return await self._give_back(payment, RefundKind.REFUND, amount, reason)

    async def of_payment(self, merchant_id: str | None, payment_id: str) -> dict[str, Any]:
        """The payment's voids and refunds and what is left, as the API shows them; a merchant
        (``merchant_id``) sees only its own payments, the operator (None) any."""
        payment = await self._payments.get(payment_id)
        if merchant_id is not None and payment.merchant_id != merchant_id:
            raise NoSuchPayment(payment_id)
        return await self.summary(payment)

    async def summary(self, payment: Payment) -> dict[str, Any]:
        records = await self._refunds.of_payment(payment.id)
        given_back = sum(r.amount.fen for r in records if r.state is S.SUCCEEDED)
        held = (await self._refunds.held(payment.id)).fen
        left = payment.amount.fen - held if payment.status == PaymentState.APPROVED else 0
        return {"refunds": [r.to_json() for r in records],
                "refunded_amount": Money(given_back).yuan,
                "refundable_amount": Money(max(left, 0)).yuan}

    # --- the sweep ------------------------------------------------------------------------------

    async def settle_due(self) -> int:
        """Reverse every record whose answer was lost and is due; how many were looked at."""
        ids = await self._refunds.due(time.time())
        for refund_id in ids:
            try:
                await self._settle_lost(refund_id)
            except Exception:  # one record that cannot be settled must not hold up the others
                log.exception("refund %s: the sweep could not settle it; retrying later", refund_id)
                await self._refunds.look_again(refund_id, time.time() + self._reversal_retry_s)
        return len(ids)

    async def _settle_lost(self, refund_id: str) -> None:
        refund: Refund | None = await self._refunds.get(refund_id)
        if refund is not None and refund.state is S.SENDING:
            log.warning("%s %s of payment %s: no answer recorded; reversing it", refund.kind,
                        refund.id, refund.payment_id)
            refund = await self._reversal_due(refund)
        if refund is not None and refund.state is S.REVERSAL_PENDING:
            await self._reverse(refund)

    # --- the steps --------------------------------------------------------------------------------

    async def _refundable(self, merchant_id: str, payment_id: str) -> tuple[Payment, datetime]:
        payment = await self._payments.get(payment_id)
        if payment.merchant_id != merchant_id:
            raise NoSuchPayment(payment_id)  # another merchant's payment does not exist for you
        if payment.status != PaymentState.APPROVED:
            raise NotRefundable(f"payment {payment_id} is {payment.status}: only an approved "
                                f"payment can be given back", {"payment_status": str(payment.status)})
        if SentPurchase.of_payment(payment) is None or not (payment.rrn and payment.auth_terminal_id):
            # Approved before the platform kept what names a purchase at the acquirer.
            raise NotRefundable(f"payment {payment_id} has no acquirer reference to name it by",
                                {"payment_status": str(payment.status)})
        return payment, await self._approved_at(payment)

    async def _approved_at(self, payment: Payment) -> datetime:
        """When the payment was approved: its history says; an anonymised payment (history gone,
        long after any refund window) falls back to its last update."""
        for entry in reversed(await self._payments.history(payment.id)):
            if entry.get("state") == PaymentState.APPROVED.value:
                return datetime.fromisoformat(entry["at"])
        return datetime.fromisoformat(payment.updated_at)

    async def _give_back(self, payment: Payment, kind: RefundKind, amount: Money,
                         reason: str) -> Refund:
        request_type = VoidRequest if kind is RefundKind.VOID else RefundRequest
        request = request_type.create(
            amount=amount.fen, stan=await self._payments.next_stan(),
            # The original's terminal and field 42: the acquirer finds the purchase by them.
            terminal_id=payment.auth_terminal_id, merchant_id=payment.auth_merchant_field,
            original_stan=payment.stan, original_transmission=payment.auth_transmission,
            original_rrn=payment.rrn, now=self._clock())
        refund = Refund(id=new_refund_id(), kind=kind, state=S.SENDING, amount=amount,
                        payment_id=payment.id, merchant_id=payment.merchant_id, reason=reason,
                        stan=request.stan, transmission=request.transmission,
                        local_time=request.local_time, local_date=request.local_date,
                        terminal_id=request.terminal_id, merchant_field=request.merchant_id,
                        original_stan=payment.stan, original_transmission=payment.auth_transmission,
                        original_rrn=payment.rrn)
        left = await self._refunds.reserve(refund, look_at=time.time() + self._answer_deadline_s)
        log.info("payment %s: %s %s of %s sending (stan %s), %s left", payment.id, kind, refund.id,
                 amount, request.stan, left)
        try:
            answer = await self._acquirer.give_back(request)
        except AcquirerError as exc:
            if not exc.sent:
                return await self._settle(refund, S.FAILED, frozenset({S.SENDING}))
            log.warning("%s %s: %s; reversing it", kind, refund.id, exc)
            pending = await self._reversal_due(refund)
            if pending is None or pending.state is not S.REVERSAL_PENDING:
                return await self._refunds.get(refund.id)
            return await self._reverse(pending)
        code = answer.response_code
        target = S.SUCCEEDED if code.approved else S.DECLINED
        log.info("%s %s: acquirer answered %s (rrn %s)", kind, refund.id, code.value, answer.rrn)
        return await self._settle(refund, target, frozenset({S.SENDING}),
                                  response_code=code.value, rrn=answer.rrn)

    async def _reversal_due(self, refund: Refund) -> Refund | None:
        """Record that ``refund`` must be reversed, with the transmission time every retry of its
        0400 will carry. The record as it stands afterwards (None if it became final)."""
        moved = await self._refunds.transition(
            refund, S.REVERSAL_PENDING, frozenset({S.SENDING}), look_at=time.time(),
            reversal_transmission=transmission_datetime(self._clock()))
        return moved if moved is not None else await self._refunds.get(refund.id)

    async def _reverse(self, refund: Refund) -> Refund:
        reversal = AdjustmentReversal.of(request_of(refund),
                                         transmission=refund.reversal_transmission)
        code = await self._acquirer.reverse_adjustment(reversal)
        if code is None:
            await self._refunds.look_again(refund.id, time.time() + self._reversal_retry_s)
            return refund
        return await self._settle(refund, S.REVERSED, frozenset({S.REVERSAL_PENDING}),
                                  response_code=code.value)

    async def _settle(self, refund: Refund, target: RefundState,
                      allowed_from: frozenset[RefundState], **changes: str) -> Refund:
        """Make ``refund`` final (once: whoever settles it first tells the merchant)."""
        settled = await self._refunds.transition(refund, target, allowed_from, **changes)
        if settled is None:
            return await self._refunds.get(refund.id)
        log.info("%s %s of payment %s: %s", settled.kind, settled.id, settled.payment_id, target)
        if self._on_final is not None:
            await self._on_final(await self._payments.get(settled.payment_id), settled)
        return settled
