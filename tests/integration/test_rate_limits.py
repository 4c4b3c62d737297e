"""Rate limits (ivr/api/rate_limits.py) on the real service app and a real Redis: per merchant,
per client address, on the admin API and on the console login (per address and per agent id);
429 with Retry-After and a JSON reason, spent before the expensive part, shared by two instances.

Requests from another client address come from 127.0.0.2 (a local address of its own), so that
per-address and per-merchant budgets can be told apart.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from ivr.api.merchant_auth import signed_headers
from ivr.console.agents import AgentRegistry, ensure_agent_credentials
from tests.integration.test_merchant_admin import AdminFactory, make_admin  # noqa: F401
from tests.integration.test_merchant_api import ORDER, Api

BUDGET = 3
PAYMENT = "/v1/payments/pay_ffffffffffffffffffff"  # no such payment: a cheap 404 when allowed


def _assert_rate_limited(status: int, headers: Any, body: dict, limit: str) -> None:
    assert status == 429, body
    assert body["error_id"] == "rate-limited" and body["details"]["limit"] == limit
    retry_after = int(headers["Retry-After"])
    assert 1 <= retry_after <= 60 and body["details"]["retry_after_s"] == retry_after


async def _signed(api: Api, method: str, path: str, merchant: str = "M100001",
                  body: bytes = b"") -> tuple[int, Any, dict]:
    headers = {"Content-Type": "application/json",
               **signed_headers(merchant, api.key(merchant), method, path, body)}
    async with api.client.request(method, path, data=body, headers=headers) as response:
        return response.status, response.headers, await response.json()


@pytest.fixture
async def from_other_address() -> AsyncIterator[Callable[..., Any]]:
    """Requests to a test server from 127.0.0.2: (status, headers, JSON body)."""
    async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))) as session:

        async def request(api: Api, method: str, path: str, **kwargs: Any) -> tuple[int, Any, Any]:
            async with session.request(method, api.client.make_url(path), **kwargs) as response:
                return response.status, response.headers, await response.json()

        yield request


# --- merchants --------------------------------------------------------------------------------------

async def test_a_merchant_over_its_budget_gets_429_and_others_do_not(make_admin: AdminFactory) -> None:
    api = await make_admin(rate_limit_merchant_per_minute=BUDGET)
    for _ in range(BUDGET):
        assert (await _signed(api, "GET", PAYMENT))[0] == 404
    status, headers, body = await _signed(api, "GET", PAYMENT)
    _assert_rate_limited(status, headers, body, "merchant")
    # Before the order service: a payment asked for now is not made.
    order = json.dumps(ORDER).encode()
    status, headers, body = await _signed(api, "POST", "/v1/payments", body=order)
    _assert_rate_limited(status, headers, body, "merchant")
    assert await api.payment_count() == 0 and api.orders.submitted == []
    # Another merchant's budget is its own.
    assert (await _signed(api, "POST", "/v1/payments", "M100002", body=order))[0] == 201


async def test_requests_that_do_not_verify_spend_no_merchants_budget(make_admin: AdminFactory) -> None:
    api = await make_admin(rate_limit_merchant_per_minute=BUDGET)
    wrong = signed_headers("M100001", b"\0" * 32, "GET", PAYMENT)
    for _ in range(2 * BUDGET):
        async with api.client.get(PAYMENT, headers=wrong) as response:
            assert response.status == 401
    # Replays of one good request: the first spends, the replays are refused before.
    good = signed_headers("M100001", api.key("M100001"), "GET", PAYMENT)
    for expected in (404, 409, 409, 409):
        async with api.client.get(PAYMENT, headers=good) as response:
            assert response.status == expected
    for _ in range(BUDGET - 1):
        assert (await _signed(api, "GET", PAYMENT))[0] == 404
    assert (await _signed(api, "GET", PAYMENT))[0] == 429


async def test_two_instances_share_one_budget(make_admin: AdminFactory) -> None:
    first = await make_admin(rate_limit_merchant_per_minute=4)
    second = await make_admin(rate_limit_merchant_per_minute=4)
    assert first.client.port != second.client.port
    for api in (first, second, first, second):
        assert (await _signed(api, "GET", PAYMENT))[0] == 404
    assert (await _signed(first, "GET", PAYMENT))[0] == 429
    assert (await _signed(second, "GET", PAYMENT))[0] == 429


# --- client addresses -------------------------------------------------------------------------------

async def test_an_address_over_its_budget_gets_429_whoever_it_signs_for(
        make_admin: AdminFactory, from_other_address) -> None:
    api = await make_admin(rate_limit_source_per_minute=BUDGET)
    for merchant in ("M100001", "M100002", "M100004"):
        assert (await _signed(api, "GET", PAYMENT, merchant))[0] == 404
    for merchant in ("M100002", None):  # signed or not: refused before anything is looked at
        headers = ({} if merchant is None
                   else signed_headers(merchant, api.key(merchant), "GET", PAYMENT))
        async with api.client.get(PAYMENT, headers=headers) as response:
            _assert_rate_limited(response.status, response.headers, await response.json(), "source")
    async with api.client.get("/v1/openapi.json") as response:
        assert response.status == 429
    # Health checks are not limited; another address has its own budget.
    async with api.client.get("/healthz") as response:
        assert response.status != 429
    assert (await from_other_address(api, "GET", "/v1/openapi.json"))[0] == 200


async def test_the_admin_api_has_its_own_budget_spent_before_the_token_is_checked(
        make_admin: AdminFactory) -> None:
    api = await make_admin(rate_limit_admin_per_minute=BUDGET)
    assert (await api.admin("GET", "", token="not-the-token"))[0] == 401
    for _ in range(BUDGET - 1):
        assert (await api.admin("GET", ""))[0] == 200
    for token in (None, "not-the-token"):
        status, body = await api.admin("GET", "", token=token)
        assert status == 429 and body["error_id"] == "rate-limited"
        assert body["details"]["limit"] == "admin"
    # The merchant API is another budget.
    assert (await _signed(api, "GET", PAYMENT))[0] == 404


# --- the console login ------------------------------------------------------------------------------

@pytest.fixture
async def console_api(make_admin: AdminFactory, monkeypatch: pytest.MonkeyPatch) -> Api:
    api = await make_admin(rate_limit_login_per_minute=2)
    ensure_agent_credentials(api.settings)  # as `devstack.stack prepare` does
    verified: list[str] = []
    real_verify = AgentRegistry.verify

    def counting_verify(self, agent_id: str, password: str):
        verified.append(agent_id)
        return real_verify(self, agent_id, password)

    monkeypatch.setattr(AgentRegistry, "verify", counting_verify)
    api.verified = verified  # type: ignore[attr-defined]
    return api


def _password(api: Api, agent_id: str) -> str:
    shown = api.settings.keys_dir / "agent-passwords.json"
    return json.loads(shown.read_text())["agents"][agent_id]


async def test_console_logins_are_limited_per_agent_id_and_per_address(
        console_api: Api, from_other_address) -> None:
    api = console_api

    async def login(agent_id: str, password: str = "guess", other: bool = False):
        body = {"agent_id": agent_id, "password": password}
        if other:
            return await from_other_address(api, "POST", "/console/api/login", json=body)
        async with api.client.post("/console/api/login", json=body) as response:
            return response.status, response.headers, await response.json()

    assert (await login("7101"))[0] == 401
    assert (await login("7101"))[0] == 401
    # Per agent id: from another address too, even with the right password, and before the
    # password hash is checked (argon2id: the expensive part).
    status, headers, body = await login("7101", _password(api, "7101"), other=True)
    _assert_rate_limited(status, headers, body, "login-agent")
    assert api.verified == ["7101", "7101"]
    # Per address: this one has used its two attempts, whatever agent id it tries now.
    status, headers, body = await login("7102", _password(api, "7102"))
    _assert_rate_limited(status, headers, body, "login-source")
    # Another agent from another address still logs in.
    assert (await login("7102", _password(api, "7102"), other=True))[0] == 200
    # Nothing in Redis names the agent id or the address as typed.
    keys = b" ".join(await api.redis.keys("ratelimit*"))
    assert keys and b"7101" not in keys and b"127.0.0" not in keys


# --- the document ------------------------------------------------------------------------------------

async def test_the_openapi_document_names_429_on_every_rate_limited_operation(
        make_admin: AdminFactory) -> None:
    api = await make_admin()
    async with api.client.get("/v1/openapi.json") as response:
        document = await response.json()
    limited = [(method, path) for path, item in document["paths"].items()
               for method in item if path.startswith("/v1/")]
    assert limited
    for method, path in limited:
        answer = document["paths"][path][method]["responses"].get("429")
        assert answer == {"$ref": "#/components/responses/RateLimited"}, (method, path)
    rate_limited = document["components"]["responses"]["RateLimited"]
    assert "Retry-After" in rate_limited["headers"]
    assert rate_limited["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"}
