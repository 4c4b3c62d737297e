"""Fuzzing the merchant's side of webhooks (``ivr/webhook_verify.py``): genuine deliveries, made
with the very signer voicepay sends them with, verify; any change to one of them, and anything
else at all, is a ``WebhookRejected`` and never another exception."""

from __future__ import annotations

import json

import pytest
from hypothesis import example, given, strategies as st

from ivr.webhook_verify import MAX_BODY, WebhookRejected, verify_webhook
from ivr.webhooks import webhook_signature
from tests.fuzzing import FUZZ, mutations_of

SECRET = bytes(range(32))
NOW = 1_767_225_600
STATUSES = ["approved", "declined", "failed", "abandoned", "refused", "expired", "cancelled",
            "risk_declined"]

DELIVERIES = st.builds(
    lambda pid, status, amount, at: (
        json.dumps({"payment": {"id": f"pay_{pid}", "status": status, "amount": amount},
                    "event": f"payment.{status}"}).encode(), str(NOW + at)),
    st.text("0123456789abcdef", min_size=1, max_size=20), st.sampled_from(STATUSES),
    st.sampled_from(["0.01", "120.00", "50000.00"]), st.integers(-300, 300))


def _headers(timestamp: str, body: bytes, secret: bytes = SECRET) -> dict[str, str]:
    return {"X-Voicepay-Timestamp": timestamp,
            "X-Voicepay-Signature": webhook_signature(secret, timestamp, body)}


@FUZZ
@given(delivery=DELIVERIES, upper=st.booleans())
def test_a_genuine_delivery_verifies(delivery: tuple[bytes, str], upper: bool) -> None:
    body, timestamp = delivery
    headers = {k.lower() if upper else k: v.upper() if upper else v
               for k, v in _headers(timestamp, body).items()}
    assert verify_webhook(SECRET, headers, body, now=NOW) == json.loads(body)


@FUZZ
@given(delivery=DELIVERIES, data=st.data())
def test_any_change_to_a_delivery_is_rejected(delivery: tuple[bytes, str],
                                              data: st.DataObject) -> None:
    body, timestamp = delivery
    headers = _headers(timestamp, body)
    part = data.draw(st.sampled_from(["body", "X-Voicepay-Timestamp", "X-Voicepay-Signature"]))
    original = body if part == "body" else headers[part].encode()
    changed = data.draw(mutations_of([original]))
    if part == "body":
        body, same = changed, changed == original
    else:
        # A header is read as sent around it: spaces around it and the hex digits' case.
        headers[part] = changed.decode("latin-1")
        same = headers[part].strip().lower() == original.decode().lower()
    if same:
        return  # nothing that counts was changed
    with pytest.raises(WebhookRejected):
        verify_webhook(SECRET, headers, body, now=NOW)


TEXT = st.text(max_size=80)


@FUZZ
@given(headers=st.dictionaries(st.sampled_from(["X-Voicepay-Timestamp", "x-voicepay-signature",
                                                "X-Voicepay-Signature", "Content-Type"]) | TEXT,
                               TEXT | st.sampled_from([str(NOW), "0" * 64, "１７６７２２５６００"]),
                               max_size=4),
       body=st.binary(max_size=200) | st.sampled_from([b"[]", b"{}", b'{"payment": 1}', b"[" * 5000]))
@example(headers={"X-Voicepay-Timestamp": "１７６７２２５６００", "X-Voicepay-Signature": "0" * 64},
         body=b"{}")
@example(headers={"X-Voicepay-Timestamp": "9" * 40, "X-Voicepay-Signature": "0" * 64}, body=b"{}")
def test_anything_else_is_rejected_and_nothing_raises_otherwise(headers: dict[str, str],
                                                                 body: bytes) -> None:
    try:
        verify_webhook(SECRET, headers, body, now=NOW)
    except WebhookRejected:
        return
    pytest.fail("verified without a genuine signature")


@pytest.mark.parametrize("body", [
    b'"payment"', b'{"payment": {"id": "pay_1"}, "event": "payment.approved"}',
    b'{"payment": {"id": "pay_1", "status": "approved"}, "event": "refund.done"}',
    b"[" * 5000 + b"]" * 5000, b"\xff\xfe", b" " * (MAX_BODY + 1)])
def test_a_signed_body_that_is_no_event_is_rejected(body: bytes) -> None:
    """Signed correctly (the secret leaked, or a bug on our side): still not acted on."""
    timestamp = str(NOW)
    with pytest.raises(WebhookRejected):
        verify_webhook(SECRET, _headers(timestamp, body), body, now=NOW)


def test_stale_and_wrong_secret_are_rejected() -> None:
    body = b'{"payment": {"id": "pay_1", "status": "approved"}, "event": "payment.approved"}'
    with pytest.raises(WebhookRejected, match="from now"):
        verify_webhook(SECRET, _headers(str(NOW - 301), body), body, now=NOW)
    with pytest.raises(WebhookRejected, match="does not verify"):
        verify_webhook(SECRET, _headers(str(NOW), body, secret=b"\0" * 32), body, now=NOW)
