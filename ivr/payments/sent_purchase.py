"""What was sent to the acquirer for a payment, kept on the payment before it leaves.

A purchase whose answer never came may still have been charged: whoever finds the payment later
(the recovery sweep, after a crash) must be able to reverse it without the call that sent it. A
0400 names its original by terminal, STAN and transmission time, and carries card and amount.
"""

from __future__ import annotations

from dataclasses import dataclass

from ivr.hostlink.messages import PurchaseRequest
from ivr.payments.model import Payment

__all__ = ["SentPurchase"]


@dataclass(frozen=True)
class SentPurchase:
    """What names a purchase at the acquirer, kept on the payment before the purchase is sent.

    With the card number (the payment's PAN token, kept until the payment is final) and the
    amount, it is all a reversal needs: a process that dies mid-authorization leaves enough
    behind for recovery (ivr/payments/recovery.py) to undo it without the caller.
    """

    stan: str
    transmission: str
    local_time: str
    local_date: str
    terminal_id: str
    merchant_field: str  # field 42 as sent: the merchant id padded to 15

    # dataclass field -> payment field ("stan" predates this record and keeps its name).
    _PAYMENT_FIELDS = {"stan": "stan", "transmission": "auth_transmission",
                       "local_time": "auth_local_time", "local_date": "auth_local_date",
                       "terminal_id": "auth_terminal_id", "merchant_field": "auth_merchant_field"}

    @classmethod
    def of(cls, request: PurchaseRequest) -> SentPurchase:
        return cls(request.stan, request.transmission, request.local_time, request.local_date,
                   request.terminal_id, request.merchant_id)

    @classmethod
    def of_payment(cls, payment: Payment) -> SentPurchase | None:
        """The purchase last sent for ``payment``, or None if none was ever about to be sent."""
        if not (payment.stan and payment.auth_transmission):
            return None
        return cls(payment.stan, payment.auth_transmission, payment.auth_local_time,
                   payment.auth_local_date, payment.auth_terminal_id, payment.auth_merchant_field)

    def payment_fields(self) -> dict[str, str]:
        return {key: getattr(self, name) for name, key in self._PAYMENT_FIELDS.items()}

    def purchase(self, pan: str, amount: int) -> PurchaseRequest:
        """The purchase as far as its reversal needs it: no PIN block, CVV2 or expiry (a 0400
        names its original by terminal, STAN and transmission time, and carries card and amount)."""
        return PurchaseRequest(pan=pan, amount=amount, stan=self.stan,
                               transmission=self.transmission, local_time=self.local_time,
                               local_date=self.local_date, terminal_id=self.terminal_id,
                               merchant_id=self.merchant_field)
