"""The merchant API of callback payments, on the real service app and a real Redis.

What is under test is the API (signatures, nonces, body checks, idempotency, ownership, operator
token, OpenAPI document, webhooks), in front of two order services: a small fake that only
creates the payment in the store and cancels it, and the real one (basic risk, the dialer, with a
fake AMI in place of Asterisk). Every case about the API runs against both (the ``api`` fixture's
``fake`` and ``real`` params). A few run against the fake only (``@FAKE_ONLY``), each saying why:
they put a payment into a state by hand, which the real service's dialer is moving at the same
time, or they test the webhook worker itself, which no order service takes part in.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import socket
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from ivr.api.keys import AMI, MERCHANTS, ORDERS, RISK_LISTS, STORE, WEBHOOKS
from tests.integration.risk_fakes import answering_providers, established
from ivr.api.merchant_auth import signed_headers, sign_request
from ivr.api.payment_request import REQUIRED
from ivr.config import Settings, load_settings
from ivr.crypto.keys import generate_dev_keys
from ivr.crypto.pan_vault import mask_pan
from ivr.hostlink.bin_table import BinTable
from ivr.merchants import (BANNED_MCCS, Merchant, MerchantError, MerchantRegistry, UnknownMerchant,
                           ensure_merchant_keys)
from ivr.orders import Order, OrderService
from ivr.service import create_app
from ivr.payments.store import Payment, PaymentState
from ivr.webhooks import WebhookNotifier, webhook_attempts
from tests.integration.fake_ami import FakeAmi
from tests.integration.test_dialer import until

# Not one of the acquirer simulator's documented test cards (those must never reach test output).
CARD = "6221889999999994"
ID_NUMBER = "11010519491231002X"
ORDER = {
    "merchant_order_id": "ORD-1",
    "amount": "120.00",
    "description": "Phone bill",
    "card_number": CARD,
    "cardholder_name": "Li Lei",
    "id_number": ID_NUMBER,
    "mobile": "13800138000",
    "mode": "callback",
}
MAX_WEBHOOK_ATTEMPTS = 4
TEST_CARDS = Path(__file__).parents[2] / "simulators" / "acquirer" / "test_cards.json"
AMI_USER, AMI_SECRET = "voicepay", "test-ami-secret"
# The test webhook receivers listen on loopback, which webhooks may reach only when allowed.
TEST_RECEIVERS = "127.0.0.0/8"
# Cases that only make sense against the fake order service (the reason is at each case).
FAKE_ONLY = pytest.mark.parametrize("api", ["fake"], indirect=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakeOrders:
    """Creates the payment in the store (state created), as the real service's first step does."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.submitted: list[tuple[str, str]] = []
        self.cancelled: list[str] = []

    async def submit(self, merchant: Merchant, order: Order) -> Payment:
        self.submitted.append((merchant.id, order.merchant_order_id))
        await asyncio.sleep(0.05)  # a real submit takes time: room for concurrent requests
        masked = mask_pan(order.card_number)
        payment_fields: dict[str, str | int] = {
            "mode": order.mode, "merchant_id": merchant.id,
            "merchant_order_id": order.merchant_order_id, "amount_minor": order.amount.fen,
            "currency": "CNY", "description": order.description, "language": order.language or "zh",
            "pan_first6": masked[:6], "pan_last4": masked[-4:],
        }
        if order.notify_url:
            payment_fields["notify_url"] = order.notify_url
        return await self.app[STORE].create(payment_fields, reason="merchant api")

    async def cancel(self, merchant: Merchant, payment_id: str) -> Payment:
        self.cancelled.append(payment_id)
        return await self.app[STORE].transition(payment_id, PaymentState.CANCELLED,
                                                reason=f"cancelled by {merchant.id}")


@dataclass
class Api:
    client: TestClient
    settings: Settings
    orders: FakeOrders | None  # None: the real order service
    redis: aioredis.Redis
    ami: FakeAmi | None = None  # the real order service's Asterisk

    @property
    def accepted(self) -> str:
        """The state of a payment just accepted: the fake stops at ``created``; the real order
        service has passed basic risk and scheduled the callback."""
        return "created" if self.orders is not None else "risk_passed"

    async def submitted(self) -> list[tuple[str, str]]:
        """(merchant, order id) of every payment the order service made, oldest first."""
        return [(p.merchant_id, p.merchant_order_id)
                for p in reversed(await self.app[STORE].recent())]

    @property
    def app(self) -> web.Application:
        return self.client.server.app

    def key(self, merchant_id: str) -> bytes:
        """A seed merchant's key, from the keys file, as a merchant's own system holds it."""
        return MerchantRegistry.load(self.settings).get(merchant_id).key

    @property
    def operator_token(self) -> str:
        return self.settings.operator_token_file.read_text().strip()

    async def request(self, method: str, path: str, *, body: bytes = b"",
                      merchant: str | None = "M100001", headers: dict[str, str] | None = None,
                      **sign: Any) -> tuple[int, Any]:
        all_headers = {"Content-Type": "application/json"}
        if merchant is not None:
            all_headers.update(signed_headers(merchant, self.key(merchant), method, path, body,
                                              **sign))
        all_headers.update(headers or {})
        async with self.client.request(method, path, data=body, headers=all_headers) as response:
            assert response.content_type == "application/json"
            return response.status, await response.json()

    async def post_order(self, merchant: str = "M100001", headers: dict[str, str] | None = None,
                         **changes: Any) -> tuple[int, Any]:
        body = json.dumps({**ORDER, **changes}).encode()
        return await self.request("POST", "/v1/payments", body=body, merchant=merchant,
                                  headers=headers)

    async def payment_count(self) -> int:
        return await self.redis.zcard("payments:recent")


@pytest.fixture(params=["fake", "real"])
async def api(request: pytest.FixtureRequest, tmp_path: Path, redis_server: str,
              redis_client: aioredis.Redis) -> AsyncIterator[Api]:
    generate_dev_keys(tmp_path / "keys")
    async with AsyncExitStack() as stack:
        real = request.param == "real"
        # The real order service dials through AMI: a fake Asterisk whose phones ring until hung up.
        ami = (await stack.enter_async_context(FakeAmi(username=AMI_USER, secret=AMI_SECRET))
               if real else None)
        settings = load_settings(
            var_dir=tmp_path, redis_url=redis_server, http_port=_free_port(),
            agi_host="127.0.0.1", agi_port=_free_port(), ami_host="127.0.0.1",
            ami_port=ami.port if ami else _free_port(), ami_user=AMI_USER, ami_secret=AMI_SECRET,
            acquirer_host="127.0.0.1", acquirer_port=_free_port(), acquirer_timeout=1.0,
            webhook_base_delay=0.05, webhook_max_delay=1.0,
            webhook_max_attempts=MAX_WEBHOOK_ATTEMPTS, webhook_timeout=2.0,
            outbound_allowed_networks=TEST_RECEIVERS,
            # Budgets no test here reaches (the API fuzz sends about a thousand requests a
            # minute); the limits themselves are tests/integration/test_rate_limits.py's.
            rate_limit_source_per_minute=100_000, rate_limit_admin_per_minute=100_000,
            rate_limit_merchant_per_minute=100_000,
        )
        app = create_app(settings)
        orders = None
        if real:  # what the acquirer publishes when it starts: the test BINs (622188 debit)
            BinTable.from_document(json.loads(TEST_CARDS.read_text())).write(
                settings.bin_table_file)
            answering_providers(app)  # the police know the cardholder, the card is bound
        else:
            orders = app[ORDERS] = FakeOrders(app)
        client = await stack.enter_async_context(TestClient(TestServer(app)))
        if real:
            await until(lambda: app[AMI].connected)  # the login is under way
            await established(app[RISK_LISTS])  # not one of a new merchant's first payments
        yield Api(client, settings, orders, redis_client, ami)


def _no_secrets(body: Any) -> None:
    text = json.dumps(body)
    assert CARD not in text and ID_NUMBER not in text and CARD[6:] not in text


# --- creating payments --------------------------------------------------------------------------

async def test_signed_post_creates_a_payment(api: Api) -> None:
    status, body = await api.post_order(notify_url="https://merchant.example/hook")
    assert status == 201, body
    assert body["status"] == api.accepted and body["id"].startswith("pay_")
    assert body["amount"] == "120.00" and body["merchant_id"] == "M100001"
    assert body["merchant_order_id"] == "ORD-1"
    _no_secrets(body)
    assert await api.submitted() == [("M100001", "ORD-1")]
    stored = await api.app[STORE].get(body["id"])
    assert stored.record["amount_minor"] == "12000"
    assert await api.payment_count() == 1


async def test_the_order_service_is_an_order_service(api: Api) -> None:
    assert isinstance(api.app[ORDERS], OrderService)


@pytest.mark.parametrize(("field", "value"), [
    ("merchant_order_id", "bad id!"),
    ("amount", "1.5"),
    ("amount", "50000.01"),
    ("description", ""),
    ("card_number", CARD[:-1] + "5"),
    ("cardholder_name", "x" * 65),
    ("id_number", ID_NUMBER[:-1] + "1"),
    ("mobile", "+447700900123"),
    ("language", "de"),
    ("notify_url", "file:///etc/passwd"),
    ("mode", "selfservice"),
])
async def test_each_validation_error_is_400_naming_the_field(api: Api, field: str, value: str) -> None:
    status, body = await api.post_order(**{field: value})
    assert status == 400, body
    assert body["error_id"] == "invalid-parameter"
    assert body["details"]["parameter"] == field and body["details"]["reason"]
    _no_secrets(body)
    assert value not in json.dumps(body) or field not in ("card_number", "id_number")
    assert await api.payment_count() == 0


async def test_missing_field_unknown_field_and_oneline(api: Api) -> None:
    body = json.dumps({k: v for k, v in ORDER.items() if k != "mobile"}).encode()
    status, answer = await api.request("POST", "/v1/payments", body=body)
    assert status == 400 and answer["details"] == {"parameter": "mobile", "reason": "is required"}

    status, answer = await api.post_order(cvv2="123")
    assert status == 400 and answer["details"] == {"parameter": "cvv2", "reason": "unknown field"}

    status, answer = await api.post_order(mode="oneline")
    assert status == 400 and answer["details"]["parameter"] == "agent_id"


@pytest.mark.parametrize("raw", [b"", b"not json", b"[]", b'"order"'])
async def test_body_must_be_a_json_object(api: Api, raw: bytes) -> None:
    status, body = await api.request("POST", "/v1/payments", body=raw)
    assert status == 400 and body["details"]["parameter"] == "body"


@pytest.mark.parametrize("raw", [b"[" * 5000, b'{"a": ' * 5000, b"[" * 5000 + b"]" * 5000])
async def test_a_deeply_nested_body_is_400_and_the_service_goes_on(api: Api, raw: bytes) -> None:
    status, body = await api.request("POST", "/v1/payments", body=raw)
    assert status == 400, body
    assert body["details"] == {"parameter": "body",
                               "reason": "is nested too deeply (an order is one flat object)"}
    assert await api.payment_count() == 0
    assert (await api.post_order())[0] == 201


async def test_the_merchants_own_limit_applies(api: Api) -> None:
    status, body = await api.post_order(merchant="M100002", amount="20000.01")
    assert status == 400 and body["details"]["parameter"] == "amount"
    assert "20000.00" in body["details"]["reason"]
    status, _ = await api.post_order(merchant="M100002", amount="20000.00")
    assert status == 201


# --- authentication -----------------------------------------------------------------------------

async def test_unsigned_post_is_401(api: Api) -> None:
    status, body = await api.post_order(merchant=None)
    assert status == 401 and body["error_id"] == "unauthenticated"
    assert set(body["details"]["missing_headers"]) == {
        "X-Voicepay-Merchant", "X-Voicepay-Timestamp", "X-Voicepay-Nonce", "X-Voicepay-Signature"}


async def test_each_missing_header_is_401(api: Api) -> None:
    body = json.dumps(ORDER).encode()
    full = signed_headers("M100001", api.key("M100001"), "POST", "/v1/payments", body)
    for name in full:
        headers = {k: v for k, v in full.items() if k != name}
        async with api.client.post("/v1/payments", data=body, headers=headers) as response:
            answer = await response.json()
        assert response.status == 401, name
        assert answer["error_id"] == "unauthenticated" and answer["details"]["missing_headers"] == [name]
    assert await api.payment_count() == 0


async def test_unknown_merchant_is_401_as_a_bad_signature(api: Api) -> None:
    """Which merchant ids exist cannot be learnt by asking: an unknown one is answered as a
    known one with a signature that does not verify."""
    body = json.dumps(ORDER).encode()
    answers = []
    for merchant in ("M999999", "M100001"):
        headers = signed_headers(merchant, b"\1" * 32, "POST", "/v1/payments", body)
        async with api.client.post("/v1/payments", data=body, headers=headers) as response:
            answers.append((response.status, await response.json()))
    unknown, known = answers
    assert unknown == known
    assert unknown[0] == 401 and unknown[1]["error_id"] == "bad-signature"
    assert await api.payment_count() == 0


async def test_bad_signature_is_401(api: Api) -> None:
    body = json.dumps(ORDER).encode()
    # Signed with another merchant's key.
    headers = signed_headers("M100001", api.key("M100002"), "POST", "/v1/payments", body)
    async with api.client.post("/v1/payments", data=body, headers=headers) as response:
        answer = await response.json()
    assert response.status == 401 and answer["error_id"] == "bad-signature"
    # Signed correctly, then the body changed on the way (amount raised).
    headers = signed_headers("M100001", api.key("M100001"), "POST", "/v1/payments", body)
    tampered = json.dumps({**ORDER, "amount": "9999.00"}).encode()
    async with api.client.post("/v1/payments", data=tampered, headers=headers) as response:
        answer = await response.json()
    assert response.status == 401 and answer["error_id"] == "bad-signature"
    # The signature covers the path: the same headers on another path do not verify.
    status, answer = await api.request("GET", "/v1/payments/pay_00",
                                       headers={**signed_headers("M100001", api.key("M100001"),
                                                                 "GET", "/v1/payments/pay_01")})
    assert status == 401 and answer["error_id"] == "bad-signature"
    assert await api.payment_count() == 0


async def test_a_bad_signature_does_not_use_up_the_nonce(api: Api) -> None:
    body = json.dumps(ORDER).encode()
    nonce = "n" * 20
    wrong = signed_headers("M100001", b"\0" * 32, "POST", "/v1/payments", body, nonce=nonce)
    async with api.client.post("/v1/payments", data=body, headers=wrong) as response:
        assert response.status == 401
    status, _ = await api.request("POST", "/v1/payments", body=body, nonce=nonce)
    assert status == 201


def test_signature_is_hmac_sha256_over_the_documented_lines() -> None:
    key = bytes(range(32))
    body = b'{"a":1}'
    expected = hmac.new(key, b"\n".join([
        b"POST", b"/v1/payments?x=1", b"1700000000", b"abcdefghijklmnop",
        hashlib.sha256(body).hexdigest().encode()]), hashlib.sha256).hexdigest()
    assert sign_request(key, "post", "/v1/payments?x=1", 1700000000, "abcdefghijklmnop", body) == expected


@pytest.mark.parametrize("skew", [-301, 301, -100000])
async def test_stale_timestamp_is_401(api: Api, skew: int) -> None:
    status, body = await api.request("POST", "/v1/payments", body=json.dumps(ORDER).encode(),
                                     timestamp=int(time.time()) + skew)
    assert status == 401 and body["error_id"] == "stale-request"
    assert await api.payment_count() == 0


async def test_timestamp_inside_the_window_is_accepted(api: Api) -> None:
    status, _ = await api.request("POST", "/v1/payments", body=json.dumps(ORDER).encode(),
                                  timestamp=int(time.time()) - 250)
    assert status == 201


@pytest.mark.parametrize("nonce", ["short", "x" * 65, "has space in it!!", "ünïcödé-ünïcödé-"])
async def test_malformed_nonce_is_401(api: Api, nonce: str) -> None:
    body = json.dumps(ORDER).encode()
    headers = signed_headers("M100001", api.key("M100001"), "POST", "/v1/payments", body,
                             nonce=nonce)
    async with api.client.post("/v1/payments", data=body, headers=headers) as response:
        answer = await response.json()
    assert response.status == 401 and answer["error_id"] == "unauthenticated"


async def test_replayed_nonce_is_409(api: Api, redis_client: aioredis.Redis) -> None:
    body = json.dumps(ORDER).encode()
    headers = signed_headers("M100001", api.key("M100001"), "POST", "/v1/payments", body)
    async with api.client.post("/v1/payments", data=body, headers=headers) as response:
        assert response.status == 201
    async with api.client.post("/v1/payments", data=body, headers=headers) as response:
        answer = await response.json()
    assert response.status == 409 and answer["error_id"] == "replayed-nonce"
    assert await api.payment_count() == 1
    nonce_key = f"nonce:M100001:{headers['X-Voicepay-Nonce']}"
    assert 590 <= await redis_client.ttl(nonce_key) <= 600
    # Nonces are per merchant: another merchant may happen to pick the same one.
    status, _ = await api.request("POST", "/v1/payments", body=body, merchant="M100002",
                                  nonce=headers["X-Voicepay-Nonce"])
    assert status == 201


async def test_suspended_merchant_is_403(api: Api) -> None:
    status, body = await api.post_order(merchant="M100003")
    assert status == 403 and body["error_id"] == "merchant-suspended"
    assert await api.payment_count() == 0


# --- idempotency --------------------------------------------------------------------------------

async def test_idempotent_retry_returns_the_first_payment(api: Api) -> None:
    key = {"Idempotency-Key": "order-1-attempt"}
    first_status, first = await api.post_order(headers=key)
    assert first_status == 201
    second_status, second = await api.post_order(headers=key)  # new nonce, same body and key
    assert (second_status, second) == (first_status, first)
    assert await api.payment_count() == 1
    # Another key, or another merchant with the same key, is another payment.
    assert (await api.post_order(headers={"Idempotency-Key": "other"}))[0] == 201
    status, other = await api.post_order(merchant="M100002", headers=key)
    assert status == 201 and other["id"] != first["id"]
    assert await api.payment_count() == 3


async def test_concurrent_identical_posts_create_one_payment(api: Api) -> None:
    key = {"Idempotency-Key": "concurrent-1"}
    answers = await asyncio.gather(*(api.post_order(headers=key) for _ in range(5)))
    assert {status for status, _ in answers} == {201}
    assert len({body["id"] for _, body in answers}) == 1
    assert await api.payment_count() == 1


async def test_same_key_with_another_body_is_422(api: Api) -> None:
    key = {"Idempotency-Key": "reused"}
    assert (await api.post_order(headers=key))[0] == 201
    status, body = await api.post_order(headers=key, amount="121.00")
    assert status == 422 and body["error_id"] == "idempotency-key-reused"
    assert await api.payment_count() == 1


async def test_idempotency_record_expires_after_a_day(api: Api, redis_client: aioredis.Redis) -> None:
    assert (await api.post_order(headers={"Idempotency-Key": "ttl"}))[0] == 201
    ttl = await redis_client.ttl("idem:M100001:ttl")
    assert 86000 < ttl <= 86400
    stored = json.loads(await redis_client.get("idem:M100001:ttl"))
    assert stored["state"] == "done" and stored["status"] == 201
    _no_secrets(stored)


@pytest.mark.parametrize("bad_key", ["", "x" * 129, "with space"])
async def test_bad_idempotency_key_is_400(api: Api, bad_key: str) -> None:
    status, body = await api.post_order(headers={"Idempotency-Key": bad_key})
    assert status == 400 and body["details"]["parameter"] == "Idempotency-Key"
    assert await api.payment_count() == 0


# --- reading payments ---------------------------------------------------------------------------

async def test_merchant_sees_its_own_payment_only(api: Api) -> None:
    _, created = await api.post_order()
    path = f"/v1/payments/{created['id']}"
    status, body = await api.request("GET", path)
    assert status == 200
    # The real service's dialer may already be calling: whatever the state, the history shows it.
    states = [e["state"] for e in body["history"]]
    assert body["id"] == created["id"] and body["status"] in states
    assert states[0] == "created" and api.accepted in states
    assert body["webhook_attempts"] == []
    _no_secrets(body)

    status, other = await api.request("GET", path, merchant="M100002")
    status_missing, missing = await api.request("GET", "/v1/payments/pay_ffffffffffffffffffff",
                                                merchant="M100002")
    assert status == status_missing == 404
    assert other["error_id"] == missing["error_id"] == "no-such-payment"


async def test_self_service_payments_are_not_a_merchants(api: Api) -> None:
    payment = await api.app[STORE].create({"mode": "selfservice", "amount_minor": 5000})
    status, body = await api.request("GET", f"/v1/payments/{payment.id}")
    assert status == 404 and body["error_id"] == "no-such-payment"


async def test_operator_reads_with_the_bearer_token(api: Api) -> None:
    _, created = await api.post_order()
    token_file = api.settings.operator_token_file
    assert token_file.stat().st_mode & 0o777 == 0o600
    bearer = {"Authorization": f"Bearer {api.operator_token}"}
    status, body = await api.request("GET", f"/v1/payments/{created['id']}", merchant=None,
                                     headers=bearer)
    assert status == 200 and body["id"] == created["id"]
    status, body = await api.request("GET", "/v1/payments", merchant=None, headers=bearer)
    assert status == 200 and [p["id"] for p in body["payments"]] == [created["id"]]

    for headers in ({}, {"Authorization": "Bearer not-the-token"}, {"Authorization": api.operator_token},
                    {"Authorization": f"Basic {api.operator_token}"}):
        for path in (f"/v1/payments/{created['id']}", "/v1/payments"):
            status, body = await api.request("GET", path, merchant=None, headers=headers)
            assert status == 401 and body["error_id"] == "unauthenticated", (headers, path)

    # A merchant signature does not open the operator's list.
    status, _ = await api.request("GET", "/v1/payments")
    assert status == 401
    # Health stays open, and says what is down: no acquirer; an AMI only for the real service.
    async with api.client.get("/healthz") as response:
        assert response.status == 503
        body = await response.json()
    assert body["ok"] is False
    ami = api.ami is not None
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "redis": True, "acquirer": False, "ami": ami, "asterisk": ami}


async def test_the_operator_token_is_kept_across_restarts(api: Api) -> None:
    from ivr.api.merchant_auth import ensure_operator_token
    # Read once, before the "restart": a value taken after it could not tell a new token apart.
    issued = api.operator_token
    assert ensure_operator_token(api.settings) == issued
    assert api.settings.operator_token_file.read_text().strip() == issued
    status, _ = await api.request("GET", "/v1/payments", merchant=None,
                                  headers={"Authorization": f"Bearer {issued}"})
    assert status == 200


# --- cancel -------------------------------------------------------------------------------------

async def test_cancel_before_the_pin(api: Api) -> None:
    _, created = await api.post_order()
    path = f"/v1/payments/{created['id']}/cancel"
    status, body = await api.request("POST", path, merchant="M100002")
    assert status == 404 and body["error_id"] == "no-such-payment"
    status, body = await api.request("POST", path)
    assert status == 200 and body["status"] == "cancelled"
    assert (await api.app[STORE].get(created["id"])).status == "cancelled"
    if api.ami is not None:  # the real service also hangs up the callback's ringing phone
        hangup = await api.ami.received("Hangup")
        assert hangup["Channel"] == (await api.ami.received("Originate"))["ChannelId"]
    # Once cancelled, it stays cancelled.
    status, body = await api.request("POST", path)
    assert status == 409 and body["error_id"] == "invalid-transition"


# Fake only: the states are set by hand, and the real service's dialer sets them too.
@FAKE_ONLY
@pytest.mark.parametrize("state", [PaymentState.RISK_PASSED, PaymentState.CALLING,
                                   PaymentState.ANSWERED])
async def test_cancel_is_allowed_while_calling(api: Api, state: PaymentState) -> None:
    _, created = await api.post_order()
    store = api.app[STORE]
    for step in (PaymentState.RISK_PASSED, PaymentState.CALLING, PaymentState.ANSWERED):
        await store.transition(created["id"], step)
        if step is state:
            break
    status, body = await api.request("POST", f"/v1/payments/{created['id']}/cancel")
    assert status == 200 and body["status"] == "cancelled"


@FAKE_ONLY  # the PIN state is set by hand, while the real service's dialer is calling
async def test_cancel_after_the_pin_is_409(api: Api) -> None:
    _, created = await api.post_order()
    await api.app[STORE].transition(created["id"], PaymentState.PIN_ENTRY, reason="test")
    status, body = await api.request("POST", f"/v1/payments/{created['id']}/cancel")
    assert status == 409 and body["error_id"] == "invalid-transition"
    assert "pin_entry" in body["message"]
    assert api.orders.cancelled == []
    assert (await api.app[STORE].get(created["id"])).status == "pin_entry"


async def test_cancel_must_be_signed(api: Api) -> None:
    _, created = await api.post_order()
    status, body = await api.request("POST", f"/v1/payments/{created['id']}/cancel", merchant=None,
                                     headers={"Authorization": f"Bearer {api.operator_token}"})
    assert status == 401
    assert (await api.app[STORE].get(created["id"])).status is not PaymentState.CANCELLED


# --- OpenAPI ------------------------------------------------------------------------------------

async def test_openapi_describes_every_route_and_only_those(api: Api) -> None:
    async with api.client.get("/v1/openapi.json") as response:
        assert response.status == 200
        document = await response.json()
    assert document["openapi"].startswith("3.1")
    # The agent console's routes (/console...) are its page's own, cookie-authenticated API,
    # not the public one this document describes.
    registered = {(route.method.lower(), route.resource.canonical)
                  for route in api.app.router.routes()
                  if route.method != "HEAD" and not route.resource.canonical.startswith("/console")}
    documented = {(method, path) for path, item in document["paths"].items()
                  for method in item if method in ("get", "post", "put", "patch", "delete")}
    assert registered == documented

    order_schema = document["components"]["schemas"]["CallbackOrder"]
    post = document["paths"]["/v1/payments"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"] == \
        "#/components/schemas/CallbackOrder"
    assert set(order_schema["properties"]) == {f.name for f in fields(Order)}
    assert set(order_schema["required"]) == set(REQUIRED)
    assert order_schema["additionalProperties"] is False
    assert set(document["components"]["securitySchemes"]) == {"merchantSignature", "operatorToken"}
    assert set(document["components"]["schemas"]["Error"]["required"]) == {"error_id", "message"}

    # Every $ref points at something that exists.
    text = json.dumps(document)
    for ref in {part.split('"')[0] for part in text.split('"$ref": "')[1:]}:
        node: Any = document
        for step in ref.removeprefix("#/").split("/"):
            node = node[step]


# --- webhooks -----------------------------------------------------------------------------------

@dataclass
class Receiver:
    """A merchant's webhook endpoint: answers with ``statuses`` in turn (the last one repeats)."""

    statuses: list[int]
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), await request.read()))
        status = self.statuses[min(len(self.received), len(self.statuses)) - 1]
        return web.Response(status=status, text="ok" if status < 300 else "try later")


@pytest.fixture
async def receivers() -> AsyncIterator[Any]:
    async with AsyncExitStack() as stack:

        async def start(*statuses: int) -> Receiver:
            receiver = Receiver(list(statuses))
            app = web.Application()
            app.router.add_post("/hook", receiver.handle)
            server = await stack.enter_async_context(TestServer(app, host="127.0.0.1"))
            receiver.url = str(server.make_url("/hook"))
            return receiver

        yield start


async def _wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_webhook_retried_until_accepted(api: Api, receivers) -> None:
    receiver = await receivers(500, 500, 200)
    _, created = await api.post_order(notify_url=receiver.url)
    payment_id = created["id"]
    assert (await api.request("POST", f"/v1/payments/{payment_id}/cancel"))[0] == 200

    async def delivered() -> bool:
        attempts = await webhook_attempts(api.redis, payment_id)
        return bool(attempts) and attempts[-1]["http_status"] == 200

    await _wait_for(delivered)
    await asyncio.sleep(0.3)  # nothing more comes once accepted
    assert len(receiver.received) == 3

    key = api.key("M100001")
    for headers, body in receiver.received:
        timestamp = headers["X-Voicepay-Timestamp"]
        expected = hmac.new(key, timestamp.encode() + b"\n" + body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-Voicepay-Signature"], expected)
        assert abs(int(timestamp) - time.time()) < 30
        event = json.loads(body)
        assert event["event"] == "payment.cancelled"
        assert event["payment"]["id"] == payment_id and event["payment"]["status"] == "cancelled"
        assert CARD not in body.decode() and ID_NUMBER not in body.decode()
    # Another merchant's key does not verify.
    headers, body = receiver.received[0]
    other = hmac.new(api.key("M100002"), headers["X-Voicepay-Timestamp"].encode() + b"\n" + body,
                     hashlib.sha256).hexdigest()
    assert other != headers["X-Voicepay-Signature"]

    status, payment = await api.request("GET", f"/v1/payments/{payment_id}")
    assert status == 200
    attempts = payment["webhook_attempts"]
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    assert [a["http_status"] for a in attempts] == [500, 500, 200]
    assert attempts[0]["next_retry_at"] and attempts[1]["next_retry_at"]
    assert attempts[2]["next_retry_at"] is None
    assert all(a["error"] is None for a in attempts)
    assert await api.redis.hget(f"pay:{payment_id}:webhook", "state") == b"delivered"
    assert await api.redis.zscore("webhooks:due", payment_id) is None


@FAKE_ONLY  # the webhook worker's own behaviour: no order service takes part
async def test_webhook_gives_up_after_max_attempts(api: Api, receivers) -> None:
    receiver = await receivers(503)
    _, created = await api.post_order(notify_url=receiver.url)
    payment_id = created["id"]
    assert (await api.request("POST", f"/v1/payments/{payment_id}/cancel"))[0] == 200

    async def given_up() -> bool:
        return await api.redis.hget(f"pay:{payment_id}:webhook", "state") == b"failed"

    await _wait_for(given_up)
    await asyncio.sleep(0.5)  # longer than the next back-off would be: no further attempt
    assert len(receiver.received) == MAX_WEBHOOK_ATTEMPTS
    attempts = await webhook_attempts(api.redis, payment_id)
    assert [a["http_status"] for a in attempts] == [503] * MAX_WEBHOOK_ATTEMPTS
    assert attempts[-1]["next_retry_at"] is None
    assert await api.redis.zscore("webhooks:due", payment_id) is None


@FAKE_ONLY  # the webhook worker's own behaviour: no order service takes part
async def test_webhook_backs_off_exponentially(api: Api, receivers) -> None:
    receiver = await receivers(500)
    _, created = await api.post_order(notify_url=receiver.url)
    await api.request("POST", f"/v1/payments/{created['id']}/cancel")

    async def done() -> bool:
        return len(await webhook_attempts(api.redis, created["id"])) == MAX_WEBHOOK_ATTEMPTS

    await _wait_for(done)
    from datetime import datetime
    attempts = await webhook_attempts(api.redis, created["id"])
    at = [datetime.fromisoformat(a["at"].replace("Z", "+00:00")).timestamp() for a in attempts]
    gaps = [b - a for a, b in zip(at, at[1:])]
    # base 0.05 s: 0.05, 0.1, 0.2 (plus scheduling slack)
    for gap, expected in zip(gaps, (0.05, 0.1, 0.2)):
        assert expected - 0.01 <= gap < expected + 0.5, gaps


@FAKE_ONLY  # the webhook worker's own behaviour: no order service takes part
async def test_webhook_errors_are_recorded(api: Api) -> None:
    dead_url = f"http://127.0.0.1:{_free_port()}/hook"
    _, created = await api.post_order(notify_url=dead_url)
    await api.request("POST", f"/v1/payments/{created['id']}/cancel")

    async def first_attempt() -> bool:
        return bool(await webhook_attempts(api.redis, created["id"]))

    await _wait_for(first_attempt)
    attempt = (await webhook_attempts(api.redis, created["id"]))[0]
    assert attempt["http_status"] is None and attempt["error"]


@FAKE_ONLY  # the webhook worker's own behaviour: no order service takes part
async def test_enqueue_is_idempotent_and_only_for_final_states(api: Api, receivers) -> None:
    receiver = await receivers(200)
    notifier = api.app[WEBHOOKS]
    _, created = await api.post_order(notify_url=receiver.url)
    payment = await api.app[STORE].get(created["id"])
    assert await notifier.enqueue(payment) is False  # created: not final
    # The store queues the delivery itself when the payment reaches a final state ...
    payment = await api.app[STORE].transition(created["id"], PaymentState.CANCELLED)
    # ... so queueing it again changes nothing.
    assert await notifier.enqueue(payment) is False

    async def delivered() -> bool:
        return len(receiver.received) == 1

    await _wait_for(delivered)
    await asyncio.sleep(0.2)
    assert len(receiver.received) == 1
    # No notify_url: nothing to do.
    _, plain = await api.post_order(merchant_order_id="ORD-2")
    cancelled = await api.app[STORE].transition(plain["id"], PaymentState.CANCELLED)
    assert await notifier.enqueue(cancelled) is False


@FAKE_ONLY  # the webhook worker's own behaviour: no order service takes part
async def test_pending_webhooks_survive_a_restart(api: Api, receivers,
                                                  redis_client: aioredis.Redis) -> None:
    receiver = await receivers(200)
    registry = api.app[MERCHANTS]
    store = api.app[STORE]
    # The service's own worker is stopped for this test: only the notifiers below deliver.
    await api.client.close()
    store.on_final = None
    payment = await store.create({"merchant_id": "M100001", "notify_url": receiver.url,
                                  "amount_minor": 100})
    payment = await store.transition(payment.id, PaymentState.CANCELLED)
    before = WebhookNotifier(redis_client, registry, api.settings)
    assert await before.enqueue(payment)
    del before  # "the process stops" before any attempt

    after = WebhookNotifier(redis_client, registry, api.settings)
    async with aiohttp.ClientSession() as session:
        assert await after.run_once(session) == 1
    assert len(receiver.received) == 1
    assert [a["http_status"] for a in await webhook_attempts(redis_client, payment.id)] == [200]


# --- the merchant registry ----------------------------------------------------------------------

def test_registry_ships_the_documented_merchants(tmp_path: Path) -> None:
    settings = load_settings(var_dir=tmp_path)
    registry = MerchantRegistry.load(settings)
    normal = registry.get("M100001")
    assert (normal.name_en, normal.name_zh) == ("China Mobile Shanghai", "中国移动上海")
    assert normal.active and not normal.category_banned and len(normal.key) == 32
    assert normal.display_name("zh") == "中国移动上海" and normal.display_name("en") == normal.name_en
    assert registry.get("M100002").active and registry.get("M100002").key != normal.key
    assert not registry.get("M100003").active
    banned = registry.get("M100004")
    assert banned.category_banned and banned.mcc in BANNED_MCCS and "7995" in BANNED_MCCS
    with pytest.raises(UnknownMerchant):
        registry.get("M000000")
    assert len(registry) == 4 and "M100001" in registry


def test_merchant_keys_are_private_and_never_replaced(tmp_path: Path) -> None:
    settings = load_settings(var_dir=tmp_path)
    path = ensure_merchant_keys(settings)
    assert path == tmp_path / "keys" / "merchants.json"
    assert os.stat(path).st_mode & 0o777 == 0o600
    first = json.loads(path.read_text())["merchants"]
    assert set(first) == {"M100001", "M100002", "M100003", "M100004"}
    assert all(len(bytes.fromhex(k)) == 32 for k in first.values())
    ensure_merchant_keys(settings)
    assert json.loads(path.read_text())["merchants"] == first
    assert MerchantRegistry.load(settings).get("M100001").key == bytes.fromhex(first["M100001"])

    # A merchant added to the seed later gets a key; the others keep theirs.
    document = json.loads(path.read_text())
    del document["merchants"]["M100004"]
    path.write_text(json.dumps(document))
    ensure_merchant_keys(settings)
    again = json.loads(path.read_text())["merchants"]
    assert {k: v for k, v in again.items() if k != "M100004"} == \
        {k: v for k, v in first.items() if k != "M100004"}
    assert again["M100004"] != first["M100004"]

    os.chmod(path, 0o644)
    with pytest.raises(MerchantError, match="readable by others"):
        MerchantRegistry.load(settings)


def test_merchant_repr_never_shows_the_key(tmp_path: Path) -> None:
    registry = MerchantRegistry.load(load_settings(var_dir=tmp_path))
    merchant = registry.get("M100001")
    for text in (repr(merchant), str(merchant), f"{merchant}", repr([merchant]), repr(registry)):
        assert merchant.key.hex() not in text and repr(merchant.key) not in text
        assert "hidden" in text or "MerchantRegistry" in text
