"""Merchant admission through the operator's admin API, on the real service app and a real Redis.

The order service is the small fake of test_merchant_api.py (it creates the payment in the store),
except where a case says it needs the real one: what is under test is the registry and the API.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from ivr.api.keys import MERCHANTS, ORDERS, STORE
from ivr.api.merchant_auth import signed_headers
from ivr.config import load_settings
from ivr.crypto.keys import generate_dev_keys
from ivr.merchant_store import MerchantStore
from ivr.merchants import MerchantRegistry, MerchantStatus
from ivr.payments.store import PaymentState
from ivr.service import create_app
from tests.integration.test_dialer import until
from tests.integration.test_merchant_api import (ORDER, TEST_RECEIVERS, Api, FakeOrders,  # noqa: F401
                                                _free_port, receivers)

NEW = {"id": "M200001", "name_en": "Harbour Tea House", "name_zh": "海港茶楼", "mcc": "5812",
       "max_amount": "800.00", "daily_max": "2000.00"}


class Admin(Api):
    """The test's operator (bearer token) and merchants (signed), on one service app."""

    keys: dict[str, bytes]

    def key(self, merchant_id: str) -> bytes:
        return self.keys.get(merchant_id) or super().key(merchant_id)

    async def admin(self, method: str, path: str, body: Any = None, *,
                    token: str | None = None, raw: bytes | None = None) -> tuple[int, Any]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
        headers = {"Authorization": f"Bearer {token if token is not None else self.operator_token}",
                   "Content-Type": "application/json"}
        async with self.client.request(method, "/v1/admin/merchants" + path, data=data,
                                       headers=headers) as response:
            return response.status, await response.json()

    async def admit(self, **changes: Any) -> dict[str, Any]:
        status, body = await self.admin("POST", "", {**NEW, **changes})
        assert status == 201, body
        self.keys[body["merchant"]["id"]] = bytes.fromhex(body["api_key"])
        return body

    async def order_with_key(self, merchant: str, key: bytes, **changes: Any) -> tuple[int, Any]:
        body = json.dumps({**ORDER, **changes}).encode()
        headers = {"Content-Type": "application/json",
                   **signed_headers(merchant, key, "POST", "/v1/payments", body)}
        async with self.client.post("/v1/payments", data=body, headers=headers) as response:
            return response.status, await response.json()


AdminFactory = Callable[..., Awaitable[Admin]]


@pytest.fixture
async def make_admin(tmp_path: Path, redis_server: str,
                     redis_client: aioredis.Redis) -> AsyncIterator[AdminFactory]:
    generate_dev_keys(tmp_path / "keys")
    async with AsyncExitStack() as stack:

        async def start(**overrides: Any) -> Admin:
            settings = load_settings(
                var_dir=tmp_path, redis_url=redis_server, http_port=_free_port(),
                agi_port=_free_port(), ami_port=_free_port(), acquirer_port=_free_port(),
                webhook_base_delay=0.05, webhook_max_delay=0.5,
                outbound_allowed_networks=TEST_RECEIVERS, **overrides)
            app = create_app(settings)
            app[ORDERS] = orders = FakeOrders(app)
            client = await stack.enter_async_context(TestClient(TestServer(app)))
            admin = Admin(client, settings, orders, redis_client)
            admin.keys = {}
            return admin

        yield start


@pytest.fixture
async def admin(make_admin: AdminFactory) -> Admin:
    return await make_admin()


# --- admission ----------------------------------------------------------------------------------

async def test_admit_shows_the_secrets_once_and_the_merchant_can_take_orders(admin: Admin) -> None:
    status, body = await admin.admin("POST", "", NEW)
    assert status == 201, body
    merchant = body["merchant"]
    assert merchant == {"id": "M200001", "name_en": "Harbour Tea House", "name_zh": "海港茶楼",
                        "name_yue": None, "mcc": "5812", "status": "active", "max_amount": "800.00",
                        "daily_max": "2000.00", "category_banned": False,
                        "previous_key_valid_until": None}
    key, webhook_secret = bytes.fromhex(body["api_key"]), bytes.fromhex(body["webhook_secret"])
    assert len(key) == 32 and len(webhook_secret) == 32 and key != webhook_secret

    # Shown and listed afterwards, never with a secret again.
    status, shown = await admin.admin("GET", "/M200001")
    assert status == 200 and shown == merchant
    status, listed = await admin.admin("GET", "")
    assert [m["id"] for m in listed["merchants"]] == ["M100001", "M100002", "M100003", "M100004",
                                                       "M200001"]
    for text in (json.dumps(shown), json.dumps(listed)):
        assert body["api_key"] not in text and body["webhook_secret"] not in text

    status, created = await admin.order_with_key("M200001", key)
    assert status == 201, created
    assert created["merchant_id"] == "M200001"
    # Another merchant's key does not sign for it.
    assert (await admin.order_with_key("M200001", admin.key("M100001")))[0] == 401


async def test_admitting_without_an_id_gets_one_and_the_same_id_twice_is_409(admin: Admin) -> None:
    fields = {k: v for k, v in NEW.items() if k != "id"}
    status, body = await admin.admin("POST", "", fields)
    assert status == 201 and body["merchant"]["id"].startswith("M") and len(body["merchant"]["id"]) == 7
    await admin.admit()
    status, again = await admin.admin("POST", "", NEW)
    assert status == 409 and again["error_id"] == "merchant-exists"
    status, seed = await admin.admin("POST", "", {**NEW, "id": "M100001"})
    assert status == 409
    # The refused admissions changed nothing: M100001 still signs with its own key.
    assert (await admin.post_order())[0] == 201


@pytest.mark.parametrize("mcc", ["7995", "7800", "7801", "7802", "5967"])
async def test_banned_categories_cannot_be_admitted(admin: Admin, mcc: str) -> None:
    status, body = await admin.admin("POST", "", {**NEW, "mcc": mcc})
    assert status == 422, body
    assert body["error_id"] == "category-banned" and body["details"] == {"mcc": mcc}
    assert "banned" in body["message"]
    assert (await admin.admin("GET", "/M200001"))[0] == 404
    assert not await admin.redis.exists("merchant:M200001")


async def test_categories_banned_in_settings_cannot_be_admitted_or_reactivated(
        make_admin: AdminFactory) -> None:
    admin = await make_admin(banned_mccs="6051, 5816")
    status, body = await admin.admin("POST", "", {**NEW, "mcc": "6051"})
    assert status == 422 and body["error_id"] == "category-banned"
    await admin.admit(mcc="5812")
    assert (await admin.admin("POST", "", {**NEW, "id": "M200002", "mcc": "5816"}))[0] == 422
    # A seed merchant in a banned category stays suspended.
    status, body = await admin.admin("POST", "/M100004/suspend")
    assert status == 200 and body["category_banned"]
    status, body = await admin.admin("POST", "/M100004/reactivate")
    assert status == 422 and body["error_id"] == "category-banned"


@pytest.mark.parametrize(("change", "parameter"), [
    ({"id": "200001"}, "id"),
    ({"id": "M2000011"}, "id"),
    ({"name_en": ""}, "name_en"),
    ({"name_zh": "   "}, "name_zh"),
    ({"name_en": "Tea\nHouse"}, "name_en"),
    ({"name_zh": "茶" * 65}, "name_zh"),
    ({"name_yue": 7}, "name_yue"),
    ({"mcc": "58a2"}, "mcc"),
    ({"mcc": 5812}, "mcc"),
    ({"max_amount": "800"}, "max_amount"),
    ({"max_amount": "0.00"}, "max_amount"),
    ({"max_amount": "50000.01"}, "max_amount"),  # above the platform's own maximum
    ({"daily_max": "700.00"}, "daily_max"),  # below the per-payment maximum
    ({"api_key": "00" * 32}, "api_key"),  # a merchant's secrets are never chosen by the caller
    ({"status": "active"}, "status"),
])
async def test_bad_admission_input_is_400_naming_the_field(admin: Admin, change: dict[str, Any],
                                                           parameter: str) -> None:
    status, body = await admin.admin("POST", "", {**NEW, **change})
    assert status == 400, body
    assert body["error_id"] == "invalid-parameter"
    assert body["details"]["parameter"] == parameter and body["details"]["reason"]
    assert await admin.redis.zcard("merchants:ids") == 4


@pytest.mark.parametrize("raw", [b"", b"not json", b"[]", b'{"mcc": "5812", "mcc": "5813"}',
                                 b"[" * 5000])
async def test_a_body_that_is_not_one_json_object_is_400(admin: Admin, raw: bytes) -> None:
    status, body = await admin.admin("POST", "", raw=raw)
    assert status == 400 and body["error_id"] == "invalid-parameter", body


async def test_the_admin_api_needs_the_operator_token(admin: Admin) -> None:
    for method, path in [("POST", ""), ("GET", ""), ("GET", "/M100001"),
                         ("POST", "/M100001/suspend"), ("POST", "/M100001/rotate-key"),
                         ("GET", "/M100001/audit")]:
        status, body = await admin.admin(method, path, NEW if method == "POST" else None,
                                         token="not-the-token")
        assert status == 401 and body["error_id"] == "unauthenticated", (method, path)
    # A merchant's signature is not the operator's token.
    headers = signed_headers("M100001", admin.key("M100001"), "GET", "/v1/admin/merchants")
    async with admin.client.get("/v1/admin/merchants", headers=headers) as response:
        assert response.status == 401
    assert (await admin.admin("GET", "/M100001"))[1]["status"] == "active"


async def test_unknown_merchants_are_404(admin: Admin) -> None:
    for method, path in [("GET", "/M999999"), ("POST", "/M999999/suspend"),
                         ("POST", "/M999999/rotate-key"), ("GET", "/M999999/audit"),
                         ("GET", "/not-a-merchant"), ("POST", "/not-a-merchant/reactivate")]:
        status, body = await admin.admin(method, path)
        assert status == 404 and body["error_id"] == "no-such-merchant", (method, path, body)
    status, body = await admin.admin("POST", "/M999999/limits", {"max_amount": "10.00"})
    assert status == 404
    assert not await admin.redis.exists("merchant:M999999")


# --- suspension ---------------------------------------------------------------------------------

async def test_a_suspended_merchants_next_request_is_403_until_reactivated(admin: Admin) -> None:
    _, first = await admin.post_order()
    status, body = await admin.admin("POST", "/M100001/suspend", {"reason": "chargebacks"})
    assert status == 200 and body["status"] == "suspended"

    status, refused = await admin.post_order(merchant_order_id="ORD-2")
    assert status == 403 and refused["error_id"] == "merchant-suspended"
    status, refused = await admin.request("GET", f"/v1/payments/{first['id']}")
    assert status == 403 and refused["error_id"] == "merchant-suspended"
    assert await admin.submitted() == [("M100001", "ORD-1")]
    # Another merchant is untouched.
    assert (await admin.post_order(merchant="M100002", merchant_order_id="ORD-3"))[0] == 201

    status, body = await admin.admin("POST", "/M100001/reactivate")
    assert status == 200 and body["status"] == "active"
    assert (await admin.post_order(merchant_order_id="ORD-4"))[0] == 201


async def test_another_instance_sees_a_change_on_its_next_request(make_admin: AdminFactory) -> None:
    one, two = await make_admin(), await make_admin()
    assert (await two.post_order())[0] == 201
    assert (await one.admin("POST", "/M100001/suspend"))[0] == 200
    status, body = await two.post_order(merchant_order_id="ORD-2")
    assert status == 403 and body["error_id"] == "merchant-suspended"


async def test_a_suspended_merchants_order_is_declined_by_risk(admin: Admin) -> None:
    """The order service's risk check reads the merchant as the registry has it now."""
    from ivr.api.keys import RISK_ENGINE
    from ivr.risk.decision import RiskOutcome, RiskRequest
    from ivr.orders import Order
    from ivr.money import Money
    store = admin.app[MERCHANTS]
    await store.suspend("M100002")
    order = Order(merchant_order_id="X", amount=Money.parse("10.00"), description="d",
                  card_number="6221889999999994", cardholder_name="Li Lei",
                  id_number="11010519491231002X", mobile="13800138000", mode="callback")
    engine = admin.app[RISK_ENGINE]  # the service's own: the shipped rules
    decision = await engine.assess(RiskRequest("pay_x", "callback", await store.get("M100002"),
                                               order, None))
    assert decision.outcome is RiskOutcome.DECLINE
    assert "merchant_not_active" in [rule.name for rule in decision.fired]


# --- limits and names ---------------------------------------------------------------------------

async def test_a_new_per_payment_limit_applies_to_the_next_order(admin: Admin) -> None:
    assert (await admin.post_order(amount="120.00"))[0] == 201
    status, body = await admin.admin("POST", "/M100001/limits", {"max_amount": "100.00"})
    assert status == 200 and body["max_amount"] == "100.00" and body["daily_max"] is None
    status, refused = await admin.post_order(amount="120.00", merchant_order_id="ORD-2")
    assert status == 400 and refused["details"]["parameter"] == "amount"
    assert "100.00" in refused["details"]["reason"]
    assert (await admin.post_order(amount="100.00", merchant_order_id="ORD-3"))[0] == 201


async def test_the_daily_total_counts_each_order_once(admin: Admin) -> None:
    # M100001's max_amount is 50000.00: a daily total below it is refused.
    status, body = await admin.admin("POST", "/M100001/limits", {"daily_max": "250.00"})
    assert status == 400 and body["details"]["parameter"] == "daily_max"
    status, body = await admin.admin("POST", "/M100001/limits",
                                     {"max_amount": "200.00", "daily_max": "250.00"})
    assert status == 200 and (body["max_amount"], body["daily_max"]) == ("200.00", "250.00")

    idem = {"Idempotency-Key": "order-1"}
    assert (await admin.post_order(amount="120.00", headers=idem))[0] == 201
    status, replay = await admin.post_order(amount="120.00", headers=idem)
    assert status == 201  # a retried request is not a second order
    status, second = await admin.post_order(amount="120.00", merchant_order_id="ORD-2")
    assert status == 201, second
    status, third = await admin.post_order(amount="20.00", merchant_order_id="ORD-3")
    assert status == 403 and third["error_id"] == "merchant-daily-limit"
    assert third["details"] == {"daily_max": "250.00"}
    assert len(await admin.submitted()) == 2
    # Removing the daily limit lets the next order through.
    assert (await admin.admin("POST", "/M100001/limits", {"daily_max": None}))[0] == 200
    assert (await admin.post_order(amount="20.00", merchant_order_id="ORD-4"))[0] == 201


@pytest.mark.parametrize(("body", "parameter"), [
    ({}, "body"),
    ({"max": "10.00"}, "max"),
    ({"max_amount": "ten"}, "max_amount"),
    ({"max_amount": "60000.00"}, "max_amount"),
    ({"daily_max": "0.00"}, "daily_max"),
])
async def test_bad_limits_are_400_and_change_nothing(admin: Admin, body: dict[str, Any],
                                                     parameter: str) -> None:
    status, answer = await admin.admin("POST", "/M100002/limits", body)
    assert status == 400 and answer["details"]["parameter"] == parameter, answer
    assert (await admin.admin("GET", "/M100002"))[1]["max_amount"] == "20000.00"


async def test_display_names_change_and_cantonese_falls_back_to_mandarin(admin: Admin) -> None:
    store = admin.app[MERCHANTS]
    assert (await store.get("M100001")).display_name("yue") == "中国移动上海"
    status, body = await admin.admin("POST", "/M100001/names",
                                     {"name_yue": "中國移動上海", "name_en": "China Mobile SH"})
    assert status == 200 and (body["name_yue"], body["name_en"]) == ("中國移動上海", "China Mobile SH")
    merchant = await store.get("M100001")
    assert merchant.display_name("yue") == "中國移動上海" and merchant.display_name("zh") == "中国移动上海"
    assert merchant.display_name("en") == "China Mobile SH"
    assert (await admin.admin("POST", "/M100001/names", {"name_yue": ""}))[1]["name_yue"] is None
    status, body = await admin.admin("POST", "/M100001/names", {"name_fr": "x"})
    assert status == 400 and body["details"]["parameter"] == "name_fr"
    status, body = await admin.admin("POST", "/M100001/names", {"name_zh": "\u202e"})
    assert status == 400 and body["details"]["parameter"] == "name_zh"


# --- key and webhook secret rotation ------------------------------------------------------------

async def test_a_rotated_key_works_and_the_old_one_only_within_the_grace_period(
        make_admin: AdminFactory) -> None:
    admin = await make_admin(merchant_key_grace_s=3.0)
    old = admin.key("M100001")
    status, body = await admin.admin("POST", "/M100001/rotate-key")
    assert status == 200, body
    new = bytes.fromhex(body["api_key"])
    assert len(new) == 32 and new != old
    assert body["merchant"]["previous_key_valid_until"]
    assert body["api_key"] not in json.dumps((await admin.admin("GET", "/M100001"))[1])

    assert (await admin.order_with_key("M100001", new))[0] == 201
    assert (await admin.order_with_key("M100001", old, merchant_order_id="ORD-2"))[0] == 201

    # Once the grace period is over (waited for, not slept through), only the new key signs.
    async def old_key_refused() -> bool:
        status, body = await admin.order_with_key("M100001", old, merchant_order_id="ORD-X",
                                                  amount="0.01")
        assert status in (201, 401), body
        return status == 401 and body["error_id"] == "bad-signature"

    await until(old_key_refused, timeout=15)
    assert (await admin.order_with_key("M100001", new, merchant_order_id="ORD-3"))[0] == 201
    assert (await admin.admin("GET", "/M100001"))[1]["previous_key_valid_until"] is None

    # A second rotation replaces the grace key: only the newest two ever verify.
    _, again = await admin.admin("POST", "/M100001/rotate-key")
    newest = bytes.fromhex(again["api_key"])
    assert (await admin.order_with_key("M100001", newest, merchant_order_id="ORD-4"))[0] == 201
    assert (await admin.order_with_key("M100001", new, merchant_order_id="ORD-5"))[0] == 201
    assert (await admin.order_with_key("M100001", old, merchant_order_id="ORD-6"))[0] == 401


async def test_webhooks_are_signed_with_the_rotated_webhook_secret(admin: Admin, receivers) -> None:
    receiver = await receivers(200)
    api_key = admin.key("M100001")
    status, body = await admin.admin("POST", "/M100001/rotate-webhook-secret")
    assert status == 200, body
    secret = bytes.fromhex(body["webhook_secret"])
    assert secret != api_key

    _, created = await admin.post_order(notify_url=receiver.url)
    assert (await admin.request("POST", f"/v1/payments/{created['id']}/cancel"))[0] == 200
    await until(lambda: len(receiver.received) == 1, timeout=10)
    headers, raw = receiver.received[0]
    signed = headers["X-Voicepay-Timestamp"].encode() + b"\n" + raw
    assert hmac.compare_digest(headers["X-Voicepay-Signature"],
                               hmac.new(secret, signed, hashlib.sha256).hexdigest())
    assert headers["X-Voicepay-Signature"] != hmac.new(api_key, signed, hashlib.sha256).hexdigest()
    # The API key is unchanged by it.
    assert (await admin.post_order(merchant_order_id="ORD-2"))[0] == 201


# --- audit, secrecy, restart --------------------------------------------------------------------

async def test_every_change_is_in_the_audit_stream_without_secrets(admin: Admin) -> None:
    admitted = await admin.admit()
    steps = [("POST", "/M200001/suspend", {"reason": "KYC review"}),
             ("POST", "/M200001/reactivate", None),
             ("POST", "/M200001/limits", {"max_amount": "500.00"}),
             ("POST", "/M200001/names", {"name_yue": "海港茶樓"}),
             ("POST", "/M200001/rotate-key", None),
             ("POST", "/M200001/rotate-webhook-secret", None)]
    secrets_shown = [admitted["api_key"], admitted["webhook_secret"]]
    for method, path, body in steps:
        status, answer = await admin.admin(method, path, body)
        assert status == 200, answer
        secrets_shown += [answer[k] for k in ("api_key", "webhook_secret") if k in answer]
    # A refused change is no change.
    assert (await admin.admin("POST", "/M200001/limits", {"max_amount": "x"}))[0] == 400

    status, body = await admin.admin("GET", "/M200001/audit")
    assert status == 200
    audit = list(reversed(body["audit"]))
    assert [e["action"] for e in audit] == ["admitted", "suspended", "reactivated", "limits-changed",
                                            "names-changed", "key-rotated",
                                            "webhook-secret-rotated"]
    assert {e["actor"] for e in audit} == {"operator"}
    assert all(e["merchant_id"] == "M200001" and e["at"].endswith("Z") for e in audit)
    assert audit[0]["changes"]["mcc"] == "5812" and audit[1]["changes"] == {"reason": "KYC review",
                                                                           "status": "suspended"}
    assert audit[3]["changes"] == {"max_amount": "500.00", "daily_max": "2000.00"}
    assert set(audit[5]["changes"]) == {"previous_key_valid_until"}
    assert audit[6]["changes"] == {}
    text = json.dumps(body) + (await _every_redis_value(admin.redis)).decode()
    for secret in secrets_shown:
        assert secret not in text
    # The seed merchants' first start is recorded too, as the seed's doing.
    seeded = (await admin.admin("GET", "/M100001/audit"))[1]["audit"]
    assert [(e["actor"], e["action"]) for e in seeded] == [("seed", "seeded")]


async def _every_redis_value(redis: aioredis.Redis) -> bytes:
    values = []
    async for key in redis.scan_iter():
        kind = (await redis.type(key)).decode()
        if kind == "string":
            values.append(await redis.get(key))
        elif kind == "hash":
            values += [k + b"=" + v for k, v in (await redis.hgetall(key)).items()]
        elif kind == "zset":
            values += await redis.zrange(key, 0, -1)
        elif kind == "list":
            values += await redis.lrange(key, 0, -1)
        elif kind == "set":
            values += list(await redis.smembers(key))
        elif kind == "stream":
            values += [json.dumps({k.decode(): v.decode() for k, v in entry.items()}).encode()
                       for _, entry in await redis.xrange(key)]
        values.append(key)
    return b"\n".join(values)


async def test_no_secret_in_logs_or_in_redis_in_clear(admin: Admin,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    admitted = await admin.admit()
    _, rotated = await admin.admin("POST", "/M200001/rotate-key")
    _, rewebhooked = await admin.admin("POST", "/M100001/rotate-webhook-secret")
    assert (await admin.order_with_key("M200001", bytes.fromhex(rotated["api_key"])))[0] == 201
    secrets_ = [bytes.fromhex(s) for s in (admitted["api_key"], admitted["webhook_secret"],
                                            rotated["api_key"], rewebhooked["webhook_secret"])]
    secrets_ += [MerchantRegistry.load(admin.settings).get(m).key for m in ("M100001", "M100002")]
    stored = await _every_redis_value(admin.redis)
    assert b"merchant:M200001" in stored  # the scan does see the registry
    logged = caplog.text
    assert "M200001" in logged  # and the log does speak of it
    merchant = await admin.app[MERCHANTS].get("M200001")
    for secret in secrets_:
        for form in (secret, secret.hex().encode(), base64.b64encode(secret),
                     base64.urlsafe_b64encode(secret)):
            assert form not in stored
            assert form.decode("latin-1") not in logged
        assert secret.hex() not in repr(merchant) and secret.hex() not in repr(admin.app[MERCHANTS])


async def test_the_registry_survives_a_restart_and_the_seed_never_overwrites_it(
        admin: Admin, redis_client: aioredis.Redis) -> None:
    await admin.admit()
    await admin.admin("POST", "/M100001/suspend")
    await admin.admin("POST", "/M100002/limits", {"max_amount": "10.00"})
    # A fresh registry on the same Redis and keys, as a restarted instance has.
    again = MerchantStore.from_settings(redis_client, admin.settings)
    assert await again.seed(MerchantRegistry.load(admin.settings)) == 0
    assert (await again.get("M100001")).status is MerchantStatus.SUSPENDED
    assert (await again.get("M100002")).max_amount.yuan == "10.00"
    assert (await again.get("M200001")).key == admin.keys["M200001"]


async def test_a_merchants_secrets_do_not_open_under_another_merchant(
        admin: Admin, redis_client: aioredis.Redis) -> None:
    """Sealed values are bound to their merchant: a copied ciphertext is refused, not used."""
    await admin.admit()
    sealed = await redis_client.hget("merchant:M200001", "key")
    await redis_client.hset("merchant:M100002", "key", sealed)
    status, body = await admin.admin("GET", "/M100002")
    assert status == 500 and body["error_id"] == "merchant-registry-error"
    assert sealed.decode() not in json.dumps(body)


async def test_payments_of_an_admitted_merchant_reach_the_store(admin: Admin) -> None:
    admitted = await admin.admit()
    key = bytes.fromhex(admitted["api_key"])
    status, created = await admin.order_with_key("M200001", key, amount="800.00")
    assert status == 201
    payment = await admin.app[STORE].get(created["id"])
    assert payment.merchant_id == "M200001" and payment.status == PaymentState.CREATED.value
    status, refused = await admin.order_with_key("M200001", key, amount="800.01",
                                                 merchant_order_id="ORD-2")
    assert status == 400 and refused["details"]["parameter"] == "amount"


# --- the operator's command line ----------------------------------------------------------------

async def test_the_cli_drives_the_admin_api(admin: Admin, capsys: pytest.CaptureFixture[str]) -> None:
    from ivr.admin import main as admin_cli
    base = ["--url", str(admin.client.make_url("")), "--token-file",
            str(admin.settings.operator_token_file)]

    async def cli(*argv: str) -> tuple[int, Any]:
        capsys.readouterr()
        code = await asyncio.to_thread(admin_cli, [*base, *argv])  # urllib blocks: not in the loop
        return code, json.loads(capsys.readouterr().out)

    code, admitted = await cli("admit", "--id", "M200001", "--name-en", "Harbour Tea House",
                               "--name-zh", "海港茶楼", "--mcc", "5812", "--max", "800.00")
    assert code == 0 and admitted["merchant"]["daily_max"] is None
    key = bytes.fromhex(admitted["api_key"])
    assert (await admin.order_with_key("M200001", key))[0] == 201

    code, refused = await cli("admit", "--name-en", "Casino", "--name-zh", "赌场", "--mcc", "7995",
                              "--max", "10.00")
    assert code == 1 and refused["error_id"] == "category-banned"
    code, listed = await cli("list")
    assert code == 0 and "M200001" in [m["id"] for m in listed["merchants"]]
    code, suspended = await cli("suspend", "M200001", "--reason", "review")
    assert code == 0 and suspended["status"] == "suspended"
    assert (await admin.order_with_key("M200001", key, merchant_order_id="ORD-2"))[0] == 403
    assert (await cli("reactivate", "M200001"))[1]["status"] == "active"
    code, changed = await cli("limits", "M200001", "--max", "100.00", "--daily-max", "300.00")
    assert code == 0 and (changed["max_amount"], changed["daily_max"]) == ("100.00", "300.00")
    assert (await cli("limits", "M200001", "--no-daily-max"))[1]["daily_max"] is None
    assert (await cli("names", "M200001", "--yue", "海港茶樓"))[1]["name_yue"] == "海港茶樓"
    code, rotated = await cli("rotate-key", "M200001")
    assert code == 0 and bytes.fromhex(rotated["api_key"]) != key
    code, shown = await cli("show", "M200001")
    assert code == 0 and shown["previous_key_valid_until"] and "api_key" not in shown
    code, audit = await cli("audit", "M200001")
    assert [e["action"] for e in audit["audit"]][:2] == ["key-rotated", "names-changed"]
    assert (await cli("show", "M999999"))[0] == 1


async def test_concurrent_limit_changes_never_leave_a_daily_total_below_the_payment_limit(
        admin: Admin) -> None:
    from ivr.merchants import InvalidMerchant
    store = admin.app[MERCHANTS]
    await store.set_limits("M100002", {"max_amount": "100.00", "daily_max": "500.00"})
    results = await asyncio.gather(store.set_limits("M100002", {"max_amount": "300.00"}),
                                   store.set_limits("M100002", {"daily_max": "200.00"}),
                                   return_exceptions=True)
    assert sum(isinstance(r, InvalidMerchant) for r in results) == 1, results
    merchant = await store.get("M100002")
    assert merchant.daily_max is not None and merchant.daily_max >= merchant.max_amount
