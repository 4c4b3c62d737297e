"""One signed webhook per payment, for every final state, to a real aiohttp receiver; its body is
the merchant's view of the payment (PUBLIC_FIELDS), never the platform's internal fields.

The service app and the merchant API are real (the fixtures of test_merchant_api.py). Cancelled
and risk_declined are reached through the API, the first with either order service and the second
with the real one (its basic risk); the states a call reaches are set on the store along the
paths the flows take, with the internal fields the flows write (call id, STAN, channels): the
webhook is queued by the store itself when any code path ends a payment.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest

from ivr.api.keys import STORE
from ivr.payments.model import FINAL_STATES, PUBLIC_FIELDS
from ivr.payments.store import PaymentState as S
from tests.integration.test_merchant_api import FAKE_ONLY, Api, Receiver, _wait_for, api, receivers

__all__ = ["api", "receivers"]  # fixtures

# What a call writes that the merchant must never see.
INTERNAL = {"call_id": "1715000000.7", "agent_channel": "PJSIP/1001-00000002",
            "caller_channel": "PJSIP/cardholder-00000001"}
ANSWERED = [(S.RISK_PASSED, {}), (S.CALLING, {}), (S.ANSWERED, INTERNAL)]
AUTHORIZING = [*ANSWERED, (S.CONFIRMED, {}), (S.PIN_ENTRY, {}),
               (S.AUTHORIZING, {"stan": "000123", "pin_attempts": 1})]
# The path to each final state the call side reaches, as the flows and the dialer take it.
PATHS: dict[S, list[tuple[S, dict[str, Any]]]] = {
    S.APPROVED: [*AUTHORIZING, (S.APPROVED, {"response_code": "00", "rrn": "123456789012",
                                             "auth_code": "A1B2C3"})],
    S.DECLINED: [*AUTHORIZING, (S.DECLINED, {"response_code": "51"})],
    S.FAILED: [*AUTHORIZING, (S.FAILED, {"response_code": "91"})],
    S.ABANDONED: [*ANSWERED, (S.CONFIRMED, {}), (S.PIN_ENTRY, {}), (S.ABANDONED, {})],
    S.REFUSED: [*ANSWERED, (S.REFUSED, {})],
    S.EXPIRED: [(S.RISK_PASSED, {}), (S.CALLING, {}), (S.EXPIRED, {})],
}


async def check_webhook(api: Api, headers: dict[str, str], raw: bytes, payment_id: str,
                        state: str) -> None:
    merchant = (await api.app[STORE].get(payment_id)).merchant_id  # signed with its own key
    expected = hmac.new(api.key(merchant), headers["X-Voicepay-Timestamp"].encode() + b"\n" + raw,
                        hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Voicepay-Signature"], expected)
    body = json.loads(raw)
    assert body["event"] == f"payment.{state}"
    payment = body["payment"]
    assert (payment["id"], payment["status"]) == (payment_id, state)
    assert set(payment) - {"id", "status", "amount"} <= PUBLIC_FIELDS, set(payment) - PUBLIC_FIELDS
    for value in INTERNAL.values():
        assert value not in raw.decode()
    assert "stan" not in payment and "internal" not in payment


async def received_once(api: Api, receiver: Receiver, payments: dict[str, str]) -> None:
    """Every payment's webhook delivered, each exactly once, and checked."""

    async def all_delivered() -> bool:
        states = [await api.redis.hget(f"pay:{p}:webhook", "state") for p in payments]
        return all(state == b"delivered" for state in states)

    await _wait_for(all_delivered)
    # Delivered is the end of a delivery: nothing more will come for these payments.
    by_payment: dict[str, list[tuple[dict[str, str], bytes]]] = {}
    for headers, raw in receiver.received:
        by_payment.setdefault(json.loads(raw)["payment"]["id"], []).append((headers, raw))
    assert {p: len(hooks) for p, hooks in by_payment.items()} == {p: 1 for p in payments}
    for payment_id, state in payments.items():
        [(headers, raw)] = by_payment[payment_id]
        await check_webhook(api, headers, raw, payment_id, state)


@FAKE_ONLY  # the states are set by hand: the real service's dialer would be moving them too
async def test_every_final_state_of_a_call_is_notified_once(api: Api, receivers) -> None:
    receiver = await receivers(200)
    payments: dict[str, str] = {}
    for state, path in PATHS.items():
        _, created = await api.post_order(merchant_order_id=f"ORD-{state}",
                                          notify_url=receiver.url)
        for step, changes in path:
            await api.app[STORE].transition(created["id"], step, reason="test", **changes)
        payments[created["id"]] = state.value
    _, created = await api.post_order(merchant_order_id="ORD-cancelled", notify_url=receiver.url)
    assert (await api.request("POST", f"/v1/payments/{created['id']}/cancel"))[0] == 200
    payments[created["id"]] = "cancelled"

    assert set(payments.values()) == {s.value for s in FINAL_STATES} - {"risk_declined"}
    await received_once(api, receiver, payments)


@pytest.mark.parametrize("api", ["real"], indirect=True)
async def test_risk_declined_and_cancelled_orders_are_notified_once(api: Api, receivers) -> None:
    receiver = await receivers(200)
    # A banned merchant category: the real order service's basic risk declines it at once.
    status, declined = await api.post_order(merchant="M100004", notify_url=receiver.url)
    assert status == 201 and declined["status"] == "risk_declined"
    _, cancelled = await api.post_order(notify_url=receiver.url)
    assert (await api.request("POST", f"/v1/payments/{cancelled['id']}/cancel"))[0] == 200

    await received_once(api, receiver, {declined["id"]: "risk_declined",
                                        cancelled["id"]: "cancelled"})
