"""What the merchant API needs from the order service (risk checks, AMI originate, cancel).

The API checks the request (signature, body, idempotency, ownership, cancellable state) and
then hands over to an ``OrderService`` found at ``app[ORDERS]``. Contract for implementations:

- ``submit`` creates the payment in the ``PaymentStore`` and returns it. The payment's fields
  must include ``merchant_id`` (``PAYMENT_MERCHANT_FIELD``: the API shows a payment only to the
  merchant it names) and, when the order has one, ``notify_url`` (``PAYMENT_NOTIFY_URL_FIELD``:
  where ``WebhookNotifier`` delivers the final state). Never the card or ID number in clear.
- ``cancel`` moves the payment to ``cancelled`` (hanging up a call in progress) and returns it;
  ``InvalidTransition`` if it is too late. The API has already checked that the payment belongs
  to ``merchant`` and was in a cancellable state a moment before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ivr.api.payment_request import CallbackOrder
    from ivr.merchants import Merchant
    from ivr.payments.store import Payment

__all__ = ["OrderService", "PAYMENT_MERCHANT_FIELD", "PAYMENT_NOTIFY_URL_FIELD"]

PAYMENT_MERCHANT_FIELD = "merchant_id"
PAYMENT_NOTIFY_URL_FIELD = "notify_url"


@runtime_checkable
class OrderService(Protocol):
    async def submit(self, merchant: Merchant, order: CallbackOrder) -> Payment:
        """Create the payment for ``order`` (state ``created``) and start working on it."""
        ...

    async def cancel(self, merchant: Merchant, payment_id: str) -> Payment:
        """Cancel a payment before its PIN is keyed; returns it in state ``cancelled``."""
        ...
