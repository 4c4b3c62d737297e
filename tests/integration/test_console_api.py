"""The agent console's HTTP side on the real service app and a real Redis: login, session, CSRF,
the login throttle, starting and following payments (ivr/console/).

The order service is the merchant API tests' fake (it creates the payment and stops); the call
side is exercised end to end in tests/e2e/test_console.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from ivr.api.keys import ORDERS, STORE
from ivr.config import Settings, load_settings
from ivr.console.agents import ensure_agent_credentials
from ivr.console.routes import COOKIE
from ivr.crypto.keys import generate_dev_keys
from ivr.payments.store import PaymentState
from ivr.service import create_app
from tests.integration.test_merchant_api import CARD, ID_NUMBER, FakeOrders, _free_port

MAX_FAILURES = 3
ORDER = {"merchant_order_id": "CON-1", "amount": "88.00", "description": "Phone bill",
         "card_number": CARD, "cardholder_name": "Li Lei", "id_number": ID_NUMBER,
         "mobile": "13800138000", "mode": "callback", "language": "en"}


class RecordingOrders(FakeOrders):
    """The fake order service, keeping every order it was handed."""

    def __init__(self, app) -> None:
        super().__init__(app)
        self.orders: list = []

    async def submit(self, merchant, order):
        self.orders.append(order)
        return await super().submit(merchant, order)


@dataclass
class Console:
    client: TestClient
    settings: Settings
    redis: aioredis.Redis

    def password(self, agent_id: str) -> str:
        shown = self.settings.keys_dir / "agent-passwords.json"
        return json.loads(shown.read_text())["agents"][agent_id]

    async def login(self, agent_id: str = "7101", password: str | None = None):
        return await self.client.post("/console/api/login", json={
            "agent_id": agent_id, "password": password or self.password(agent_id)})

    async def logged_in(self, agent_id: str = "7101") -> str:
        """Log in; returns the session's CSRF token (the cookie stays in the client's jar)."""
        response = await self.login(agent_id)
        assert response.status == 200, await response.text()
        return (await response.json())["csrf"]

    async def post(self, path: str, body: dict | None = None, csrf: str | None = None):
        headers = {"X-CSRF-Token": csrf} if csrf is not None else {}
        return await self.client.post(path, json=body or {}, headers=headers)


@contextlib.asynccontextmanager
async def running_console(tmp_path: Path, redis_server: str, redis_client: aioredis.Redis,
                          **settings_overrides) -> AsyncIterator[Console]:
    generate_dev_keys(tmp_path / "keys")
    settings = load_settings(
        var_dir=tmp_path, redis_url=redis_server, http_port=_free_port(), agi_port=_free_port(),
        ami_port=_free_port(), acquirer_port=_free_port(), console_login_max_failures=MAX_FAILURES,
        **settings_overrides)
    ensure_agent_credentials(settings)  # as `devstack.stack prepare` does
    app = create_app(settings)
    app[ORDERS] = RecordingOrders(app)
    async with TestClient(TestServer(app)) as client:
        yield Console(client, settings, redis_client)


@pytest.fixture
async def console(tmp_path: Path, redis_server: str,
                  redis_client: aioredis.Redis) -> AsyncIterator[Console]:
    async with running_console(tmp_path, redis_server, redis_client) as console:
        yield console


# --- credentials and login ------------------------------------------------------------------------

async def test_agent_passwords_are_generated_private_and_stored_only_hashed(console: Console) -> None:
    hashes = console.settings.keys_dir / "agents.json"
    shown = console.settings.keys_dir / "agent-passwords.json"
    assert hashes.stat().st_mode & 0o777 == 0o600 and shown.stat().st_mode & 0o777 == 0o600
    password = console.password("7101")
    stored = json.loads(hashes.read_text())["agents"]["7101"]
    assert stored.startswith("$argon2id$") and password not in hashes.read_text()


async def test_login_opens_a_session_with_a_strict_http_only_cookie(console: Console) -> None:
    response = await console.login()
    assert response.status == 200
    body = await response.json()
    assert body["agent"] == {"id": "7101", "name": "Wang Fang 王芳"}
    assert body["merchant"]["id"] == "M100001" and body["csrf"]
    cookie = response.cookies[COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/console"
    assert not cookie["secure"]  # plain HTTP here; behind TLS request.secure sets it
    # Redis keeps a digest of the token, never the token, with the idle expiry of the setting.
    keys = [k.decode() for k in await console.redis.keys("console:session:*")]
    assert len(keys) == 1 and cookie.value not in keys[0]
    assert 0 < await console.redis.ttl(keys[0]) <= console.settings.console_session_ttl_s
    session = await console.client.get("/console/api/session")
    assert session.status == 200 and (await session.json())["agent"]["id"] == "7101"


async def test_the_session_names_the_payment_modes_this_platform_takes(
        tmp_path: Path, redis_server: str, redis_client: aioredis.Redis) -> None:
    """The console offers the modes the merchant API takes: talk-through only while it is on
    (VOICEPAY_TALKTHROUGH), so an agent is not offered a mode the order would be refused for."""
    async with running_console(tmp_path / "on", redis_server, redis_client) as console:
        login = await (await console.login()).json()
        session = await (await console.client.get("/console/api/session")).json()
        assert login["modes"] == session["modes"] == ["callback", "oneline", "talk-through"]
    await redis_client.flushdb()  # the next service's own keys seal its own merchant registry
    async with running_console(tmp_path / "off", redis_server, redis_client,
                               talkthrough="off") as console:
        login = await (await console.login()).json()
        session = await (await console.client.get("/console/api/session")).json()
        assert login["modes"] == session["modes"] == ["callback", "oneline"]


async def test_a_wrong_password_and_an_unknown_agent_get_the_same_answer(console: Console) -> None:
    wrong = await console.login("7101", "not-the-password")
    unknown = await console.login("7999", "not-the-password")
    assert wrong.status == unknown.status == 401
    assert await wrong.json() == await unknown.json() == {
        "error_id": "login-failed", "message": "the agent id or the password is wrong"}
    assert COOKIE not in wrong.cookies
    assert (await console.client.get("/console/api/session")).status == 401


async def test_logins_are_refused_after_too_many_failures_even_with_the_right_password(
        console: Console) -> None:
    for _ in range(MAX_FAILURES):
        assert (await console.login("7102", "guess")).status == 401
    blocked = await console.login("7102")
    assert blocked.status == 429
    body = await blocked.json()
    assert body["error_id"] == "too-many-logins"
    assert 0 < body["details"]["retry_after_s"] <= console.settings.console_login_window_s
    assert blocked.headers["Retry-After"] == str(body["details"]["retry_after_s"])


async def test_an_expired_session_must_log_in_again(console: Console) -> None:
    await console.logged_in()
    (key,) = await console.redis.keys("console:session:*")
    await console.redis.pexpire(key, 1)  # its idle time has run out
    assert await _until_gone(console.redis, key)
    response = await console.client.get("/console/api/payments")
    assert response.status == 401
    assert (await response.json())["error_id"] == "not-logged-in"


async def _until_gone(redis: aioredis.Redis, key: bytes) -> bool:
    for _ in range(200):
        if not await redis.exists(key):
            return True
        await asyncio.sleep(0.01)
    return False


async def test_logout_ends_the_session(console: Console) -> None:
    csrf = await console.logged_in()
    assert (await console.post("/console/api/logout", csrf=csrf)).status == 200
    assert await console.redis.keys("console:session:*") == []
    assert (await console.client.get("/console/api/session")).status == 401


# --- CSRF -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("token", [None, "forged"])
async def test_a_write_without_the_sessions_csrf_token_is_refused(console: Console,
                                                                   token: str | None) -> None:
    await console.logged_in()
    response = await console.post("/console/api/payments", ORDER, csrf=token)
    assert response.status == 403
    assert (await response.json())["error_id"] == "csrf-refused"
    assert await console.redis.zcard("payments:recent") == 0
    assert (await console.post("/console/api/logout", csrf=token)).status == 403


async def test_another_sessions_csrf_token_does_not_count(console: Console) -> None:
    other = await console.logged_in("7102")
    await console.logged_in("7101")  # the jar now holds 7101's cookie
    response = await console.post("/console/api/payments", ORDER, csrf=other)
    assert response.status == 403


# --- payments -------------------------------------------------------------------------------------

async def test_inline_check_names_the_field_without_echoing_it(console: Console) -> None:
    csrf = await console.logged_in()
    bad_card = CARD[:-1] + str((int(CARD[-1]) + 1) % 10)  # Luhn fails
    response = await console.post("/console/api/orders/check", {**ORDER, "card_number": bad_card},
                                  csrf=csrf)
    assert response.status == 400
    body = await response.json()
    assert body["details"]["parameter"] == "card_number" and bad_card not in json.dumps(body)
    over = await console.post("/console/api/orders/check", {**ORDER, "amount": "60000.00"},
                              csrf=csrf)
    assert (await over.json())["details"]["parameter"] == "amount"
    ok = await console.post("/console/api/orders/check", ORDER, csrf=csrf)
    assert ok.status == 200
    assert await console.redis.zcard("payments:recent") == 0  # checking creates nothing


async def test_a_payment_started_by_an_agent_is_theirs_and_found_by_order_id(
        console: Console) -> None:
    csrf = await console.logged_in()
    response = await console.post("/console/api/payments", ORDER, csrf=csrf)
    assert response.status == 201
    payment = await response.json()
    stored = await console.client.server.app[STORE].get(payment["id"])
    assert stored.merchant_id == "M100001" and stored.merchant_order_id == "CON-1"
    await console.post("/console/api/payments", {**ORDER, "merchant_order_id": "OTHER-2"}, csrf=csrf)

    found = await (await console.client.get("/console/api/payments?order=con-1")).json()
    assert [p["id"] for p in found["payments"]] == [payment["id"]]
    assert found["payments"][0]["card"] == CARD[:6] + "******" + CARD[-4:]
    everything = await (await console.client.get("/console/api/payments")).json()
    assert len(everything["payments"]) == 2
    assert CARD not in json.dumps(everything) and ID_NUMBER not in json.dumps(everything)

    # Another agent does not see it, cannot follow it, cannot cancel it.
    other_csrf = await console.logged_in("7102")
    assert (await (await console.client.get("/console/api/payments")).json())["payments"] == []
    events = await console.client.get(f"/console/api/payments/{payment['id']}/events")
    assert events.status == 404
    cancel = await console.post(f"/console/api/payments/{payment['id']}/cancel", csrf=other_csrf)
    assert cancel.status == 404


async def test_a_one_line_payment_is_taken_in_the_agents_own_call(console: Console) -> None:
    csrf = await console.logged_in("7102")
    # Whatever agent the page names, the order is for the agent logged in.
    response = await console.post("/console/api/orders/check",
                                  {**ORDER, "mode": "oneline", "agent_id": "7101"}, csrf=csrf)
    assert response.status == 200
    response = await console.post("/console/api/payments",
                                  {**ORDER, "mode": "oneline", "agent_id": "7101"}, csrf=csrf)
    assert response.status == 201
    (order,) = console.client.server.app[ORDERS].orders
    assert (order.mode, order.agent_id) == ("oneline", "7102")


async def test_a_talk_through_payment_is_taken_in_the_agents_own_call(console: Console) -> None:
    """The page's talk-through choice reaches the order service as the API's mode, for the
    agent logged in."""
    csrf = await console.logged_in("7102")
    body = {**ORDER, "mode": "talk-through", "agent_id": "7101"}
    assert (await console.post("/console/api/orders/check", body, csrf=csrf)).status == 200
    await console.post("/console/api/payments", body, csrf=csrf)
    (order,) = console.client.server.app[ORDERS].orders
    assert (order.mode, order.agent_id) == ("talk-through", "7102")


async def test_progress_arrives_as_server_sent_events_until_the_payment_is_final(
        console: Console) -> None:
    csrf = await console.logged_in()
    payment = await (await console.post("/console/api/payments", ORDER, csrf=csrf)).json()
    store = console.client.server.app[STORE]
    events = await console.client.get(f"/console/api/payments/{payment['id']}/events")
    assert events.status == 200 and events.content_type == "text/event-stream"
    first = await _next_event(events)
    assert first["payment"]["status"] == "created"

    await store.transition(payment["id"], PaymentState.PIN_ENTRY)
    assert _line(await _next_event(events), "pin")["status"] == "active"
    await store.transition(payment["id"], PaymentState.AUTHORIZING, keyed=("pin", 6))
    assert _line(await _next_event(events), "pin") == {"step": "pin", "status": "entered",
                                                       "digits": 6}
    await store.transition(payment["id"], PaymentState.APPROVED, rrn="000000000042")
    last = await _next_event(events)
    assert _line(last, "result")["detail"] == {"state": "approved", "rrn": "000000000042"}
    assert await events.content.read() == b""  # the stream ends at the final state


async def _next_event(response) -> dict:
    data = None
    while True:
        line = (await asyncio.wait_for(response.content.readline(), 10)).decode().rstrip("\n")
        if line.startswith("data: "):
            data = json.loads(line[len("data: "):])
        elif line == "" and data is not None:
            return data


def _line(view: dict, step: str) -> dict:
    return next(line for line in view["lines"] if line["step"] == step)


async def test_cancel_from_the_console(console: Console) -> None:
    csrf = await console.logged_in()
    payment = await (await console.post("/console/api/payments", ORDER, csrf=csrf)).json()
    response = await console.post(f"/console/api/payments/{payment['id']}/cancel", csrf=csrf)
    assert response.status == 200
    view = await response.json()
    assert view["payment"]["status"] == "cancelled" and not view["payment"]["cancellable"]
    again = await console.post(f"/console/api/payments/{payment['id']}/cancel", csrf=csrf)
    assert again.status == 409


async def test_the_page_and_its_files_are_served(console: Console) -> None:
    page = await console.client.get("/console")
    assert page.status == 200 and "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    text = await page.text()
    for asset in ("/console/static/console.js", "/console/static/console.css"):
        assert asset in text
        assert (await console.client.get(asset)).status == 200


async def test_ask_again_for_a_field_of_the_agents_one_line_payment(console: Console) -> None:
    """The console's side of "ask again" (the call's side: test_ask_again.py): CSRF, the agent's
    own payment, only a field being keyed, and the field's line says it was asked."""
    csrf = await console.logged_in()
    payment = await (await console.post("/console/api/payments", {**ORDER, "mode": "oneline"},
                                        csrf=csrf)).json()
    path = f"/console/api/payments/{payment['id']}/ask-again"
    store = console.client.server.app[STORE]
    await store.transition(payment["id"], PaymentState.RISK_PASSED)
    await store.transition(payment["id"], PaymentState.ANSWERED)
    too_early = await console.post(path, {"field": "pin"}, csrf=csrf)  # nothing asked for yet
    assert too_early.status == 409
    assert (await too_early.json())["error_id"] == "ask-again-refused"
    await store.transition(payment["id"], PaymentState.CONFIRMED)
    await store.transition(payment["id"], PaymentState.PIN_ENTRY)

    assert (await console.post(path, {"field": "pin"}, csrf=None)).status == 403
    assert (await console.post(path, {"field": "card_number"}, csrf=csrf)).status == 400
    assert (await console.post(path, {"field": "cvv2"}, csrf=csrf)).status == 409  # a debit card
    assert not await console.redis.exists(f"pay:{payment['id']}:ask_again")
    response = await console.post(path, {"field": "pin"}, csrf=csrf)
    assert response.status == 202
    view = await response.json()
    assert _line(view, "pin") == {"step": "pin", "status": "active",
                                  "detail": {"ask_again_pending": True}}
    assert view["payment"]["ask_again"] == ["pin"]
    assert await console.redis.smembers(f"pay:{payment['id']}:ask_again") == {b"pin"}

    await store.transition(payment["id"], PaymentState.AUTHORIZING, keyed=("pin", 6))
    assert (await console.post(path, {"field": "pin"}, csrf=csrf)).status == 409  # sent
    other_csrf = await console.logged_in("7102")
    assert (await console.post(path, {"field": "pin"}, csrf=other_csrf)).status == 404
