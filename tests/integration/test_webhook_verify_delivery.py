"""The merchant's verifier (``ivr/webhook_verify.py``) against a real delivery: the webhook the
service sends when a payment is cancelled verifies with the merchant's secret, and only with it."""

from __future__ import annotations

import pytest

from ivr.webhook_verify import WebhookRejected, verify_webhook
from tests.integration.test_dialer import until
from tests.integration.test_merchant_api import Api, api, receivers  # noqa: F401  (fixtures)


@pytest.mark.parametrize("api", ["fake"], indirect=True)
async def test_a_real_delivery_verifies_with_the_merchants_secret_only(api: Api, receivers) -> None:
    receiver = await receivers(200)
    status, created = await api.post_order(notify_url=receiver.url)
    assert status == 201, created
    assert (await api.request("POST", f"/v1/payments/{created['id']}/cancel"))[0] == 200
    await until(lambda: bool(receiver.received))
    headers, body = receiver.received[0]
    # A seed merchant's webhooks are signed with its API key until its webhook secret is rotated.
    event = verify_webhook(api.key("M100001"), headers, body)
    assert event["event"] == "payment.cancelled" and event["payment"]["id"] == created["id"]
    with pytest.raises(WebhookRejected, match="does not verify"):
        verify_webhook(api.key("M100002"), headers, body)
