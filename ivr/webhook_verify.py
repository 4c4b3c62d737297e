"""The merchant's side of voicepay's webhooks: check one delivery before trusting it.

A delivery (``ivr/webhooks.py``) is a POST whose body is ``{"payment": {...}, "event":
"payment.<status>"}``, with ``X-Voicepay-Timestamp`` (unix seconds) and ``X-Voicepay-Signature``
(hex HMAC-SHA256 of the merchant's webhook secret over ``timestamp + "\\n" + body``). A receiver
hands the headers, the raw body bytes (before any JSON parsing) and its secret to
``verify_webhook``::

    from ivr.webhook_verify import WebhookRejected, verify_webhook

    try:
        event = verify_webhook(secret, request.headers, raw_body)
    except WebhookRejected as exc:
        return 400, str(exc)            # never act on it; voicepay retries a genuine one
    # event["event"] == "payment.approved", event["payment"]["id"] == "pay_..."

Checked in this order, each failure a ``WebhookRejected`` whose text names what was wrong and
never repeats the body: the body is at most ``MAX_BODY`` bytes (so no more is hashed or parsed);
both headers are there and well formed; the timestamp is within ``tolerance_s`` of the receiver's
clock (an old delivery captured and sent again is refused); the signature verifies
(constant-time); the body is a JSON object with ``event`` and ``payment.id``/``payment.status``.
Retries can deliver the same event twice: act on a payment's final state once.
"""

from __future__ import annotations

import hmac
import json
import re
import time
from collections.abc import Mapping
from typing import Any

from ivr.webhooks import webhook_signature

__all__ = ["WebhookRejected", "verify_webhook", "MAX_BODY", "DEFAULT_TOLERANCE_S"]

# A delivery is one payment's public fields, a few KB; more is not from voicepay.
MAX_BODY = 64 * 1024
DEFAULT_TOLERANCE_S = 300
_TIMESTAMP = re.compile(r"[0-9]{1,12}")   # ASCII digits only: str.isdigit() takes "１２"
_SIGNATURE = re.compile(r"[0-9a-fA-F]{64}")
_EVENT = re.compile(r"payment\.[a-z_]{1,32}")


class WebhookRejected(ValueError):
    """This delivery must not be acted on; the message says why."""


def _header(headers: Mapping[str, str], name: str) -> str:
    wanted = name.lower()
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == wanted:
            if not isinstance(value, str):
                raise WebhookRejected(f"{name} is not text")
            return value.strip()
    raise WebhookRejected(f"{name} is missing")


def verify_webhook(secret: bytes, headers: Mapping[str, str], body: bytes, *,
                   now: float | None = None,
                   tolerance_s: float = DEFAULT_TOLERANCE_S) -> dict[str, Any]:
    """The event of a genuine, fresh delivery; ``WebhookRejected`` for anything else."""
    if not isinstance(body, (bytes, bytearray)):
        raise WebhookRejected("the body must be the raw bytes received")
    if len(body) > MAX_BODY:
        raise WebhookRejected(f"the body is over {MAX_BODY} bytes")
    timestamp = _header(headers, "X-Voicepay-Timestamp")
    signature = _header(headers, "X-Voicepay-Signature")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise WebhookRejected("X-Voicepay-Timestamp must be unix seconds")
    if not _SIGNATURE.fullmatch(signature):
        raise WebhookRejected("X-Voicepay-Signature must be 64 hex digits")
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > tolerance_s:
        raise WebhookRejected(f"X-Voicepay-Timestamp is more than {tolerance_s:g} s from now")
    expected = webhook_signature(secret, timestamp, bytes(body))
    if not hmac.compare_digest(expected, signature.lower()):
        raise WebhookRejected("the signature does not verify")
    try:
        event = json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise WebhookRejected("the body is not JSON") from None
    payment = event.get("payment") if isinstance(event, dict) else None
    if not (isinstance(payment, dict) and isinstance(payment.get("id"), str)
            and isinstance(payment.get("status"), str)
            and isinstance(event.get("event"), str) and _EVENT.fullmatch(event["event"])):
        raise WebhookRejected('the body is not {"event": "payment.<status>", "payment": {...}}')
    return event
