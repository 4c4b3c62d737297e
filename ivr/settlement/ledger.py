"""The platform's side of one settlement day: every purchase approved and every void and refund
that succeeded within it, read from the payment and refund stores.

A purchase belongs to the day it was approved in, a void or refund to the day it succeeded in
(ivr/payments/settlement_day.py). A day is not ready while money of it is still in flight: a
purchase ``authorizing`` (its answer or reversal is the recovery sweep's), a void or refund not
final (the refund sweep's). Settling then could miss money that lands later, so the run waits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from ivr.payments.model import PaymentState
from ivr.payments.settlement_day import Cutoff
from ivr.payments.store import NoSuchPayment, PaymentStore
from ivr.refunds.model import RefundKind
from ivr.refunds.store import RefundStore

__all__ = ["MoneyItem", "DayNotReady", "day_items", "PURCHASE", "VOID", "REFUND"]

PURCHASE, VOID, REFUND = "purchase", RefundKind.VOID.value, RefundKind.REFUND.value
# A purchase is approved within this long of its payment's creation (callbacks wait for a call,
# reviews for an operator, neither for days): how far before the day to look for its payments.
_CREATED_BEFORE_APPROVAL = timedelta(days=7)
_SCAN = 500
_ALL = -1  # a LIMIT count of -1: every match


class DayNotReady(Exception):
    """Money of the day is still in flight; the run is tried again later."""


@dataclass(frozen=True)
class MoneyItem:
    kind: str            # purchase | void | refund
    id: str              # the payment's id, or the void's or refund's
    payment_id: str
    merchant_id: str
    amount: int          # fen
    rrn: str             # the acquirer's reference of this transaction
    stan: str
    at: datetime
    original_rrn: str = ""  # a void's or refund's purchase

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "id": self.id, "payment_id": self.payment_id,
                "merchant_id": self.merchant_id, "amount_fen": self.amount, "rrn": self.rrn,
                "stan": self.stan, "at": self.at.isoformat(), "original_rrn": self.original_rrn}


async def day_items(payments: PaymentStore, refunds: RefundStore, cutoff: Cutoff,
                    day: date) -> list[MoneyItem]:
    """The day's money, oldest first; DayNotReady if some of it is still in flight."""
    start, end = cutoff.bounds(day)
    await _check_settled(payments, refunds, end)
    items: list[MoneyItem] = []
    # Approval comes after creation, and within the look-back of it.
    candidates = await payments.in_state(
        PaymentState.APPROVED, older_than=end.timestamp(), limit=_ALL,
        newer_than=(start - _CREATED_BEFORE_APPROVAL).timestamp())
    for payment_id in candidates:
        try:
            payment = await payments.get(payment_id)
        except NoSuchPayment:  # removed by retention since: long past any day left to settle
            continue
        approved = await payments.approved_at(payment)
        if start <= approved < end:
            items.append(MoneyItem(PURCHASE, payment.id, payment.id, payment.merchant_id,
                                   payment.amount.fen, payment.rrn, payment.stan, approved))
    for refund_id, when in await refunds.succeeded_between(start.timestamp(), end.timestamp()):
        refund = await refunds.get(refund_id)
        items.append(MoneyItem(refund.kind.value, refund.id, refund.payment_id,
                               refund.merchant_id, refund.amount.fen, refund.rrn, refund.stan,
                               datetime.fromtimestamp(when, timezone.utc), refund.original_rrn))
    return sorted(items, key=lambda i: (i.at, i.id))


async def _check_settled(payments: PaymentStore, refunds: RefundStore, end: datetime) -> None:
    authorizing = await payments.in_state(PaymentState.AUTHORIZING, older_than=end.timestamp(),
                                          limit=1)
    if authorizing:
        raise DayNotReady(f"payment {authorizing[0]} is still authorizing")
    for refund_id in await refunds.due(math.inf, limit=_SCAN):
        refund = await refunds.get(refund_id)
        if datetime.fromisoformat(refund.created_at) < end:
            raise DayNotReady(f"{refund.kind} {refund.id} is still {refund.state}")

