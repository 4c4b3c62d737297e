"""A merchant's order, and what the order service promises to do with it.

The HTTP edge (``ivr/api/payment_request.py``) parses and checks a request body into an
``Order``; from there on, everything (risk, the callback and one-line order services, the
payment store) works with this type and never with the HTTP request.

The order service is found at ``app[ORDERS]``. Contract for implementations:

- ``submit`` creates the payment in the ``PaymentStore`` and returns it. The payment names its
  ``merchant_id`` (the API shows a payment only to the merchant it names) and, when the order
  has one, its ``notify_url`` (where ``WebhookNotifier`` delivers the final state). Never the card or ID number in clear.
  If the order was refused before a payment existed, it raises a domain error and leaves nothing
  behind; if the payment was created and then failed at once, it raises ``PaymentFailed`` (the
  payment is in a final state), which is the request's outcome just as a payment is.
- ``cancel`` moves the payment to ``cancelled`` (ending whatever call the payment is in) and
  returns it; ``InvalidTransition`` if it is too late. The API has already checked that the
  payment belongs to ``merchant`` and was in a cancellable state a moment before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ivr.crypto.pan_vault import mask_pan
from ivr.money import Money

if TYPE_CHECKING:
    from ivr.merchants import Merchant
    from ivr.payments.store import Payment

__all__ = ["Order", "OrderService", "PaymentFailed", "mask_id_number"]


@dataclass(frozen=True, repr=False)
class Order:
    """A merchant's request to take a card payment by phone: a callback, or inside an agent's call.

    Field names are the JSON body's.
    """

    merchant_order_id: str
    amount: Money
    description: str
    card_number: str
    cardholder_name: str
    id_number: str
    mobile: str
    mode: str = "callback"
    # None: the order does not say; the call speaks the cardholder's last language, else zh
    # (ivr/callback/cardholder_language.py).
    language: str | None = None
    notify_url: str | None = None
    agent_id: str | None = None

    def __repr__(self) -> str:
        return (f"Order(merchant_order_id={self.merchant_order_id!r}, "
                f"amount={str(self.amount)!r}, card_number={mask_pan(self.card_number)!r}, "
                f"id_number={mask_id_number(self.id_number)!r}, mobile={self.mobile!r}, "
                f"mode={self.mode!r}, language={self.language!r}, "
                f"notify_url={self.notify_url!r}, agent_id={self.agent_id!r})")

    __str__ = __repr__


def mask_id_number(value: str) -> str:
    """``110105********002X``: region and the last four characters only."""
    if not isinstance(value, str) or len(value) != 18 or not value.isascii():
        return "******"
    return f"{value[:6]}********{value[-4:]}"


class PaymentFailed(Exception):
    """The order became payment ``payment_id``, which then failed at once and is final.

    Unlike a refusal, this is an outcome: a retry of the same request must be told the same, not
    be given a second payment. ``details`` say what the merchant may act on."""

    def __init__(self, message: str, payment_id: str, details: dict[str, str]) -> None:
        super().__init__(message)
        self.payment_id = payment_id
        self.details = {**details, "payment_id": payment_id}


@runtime_checkable
class OrderService(Protocol):
    async def submit(self, merchant: Merchant, order: Order) -> Payment:
        """Create the payment for ``order`` (state ``created``) and start working on it."""
        ...

    async def cancel(self, merchant: Merchant, payment_id: str) -> Payment:
        """Cancel a payment before its PIN is keyed; returns it in state ``cancelled``."""
        ...
