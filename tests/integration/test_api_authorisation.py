"""Who gets in where, on the real service app and a real Redis: the cases of issue 15's "API"
proof not already in test_merchant_api.py (signature: wrong key, body and path changed, missing
headers, malformed nonce; replay: same nonce 409, stale and future timestamps 401; a merchant
reading another's payment; the operator's token) and test_console_api.py (expired session, logout,
CSRF missing, forged or another session's, another agent's payment).

Here: the signature also covers the query and the method; a merchant can never cancel another's
payment nor see its webhooks, and gets the very answer an unknown id gets, whatever state the
payment is in; the operator's token opens no merchant route, a merchant's signature no operator
route, and the token is compared in constant time; the console refuses every route without a
session, every write without the session's CSRF token, a cookie replayed after logout, and an
agent of one merchant on another merchant's payment.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json

import pytest

from ivr.api import merchant_auth
from ivr.api.keys import STORE
from ivr.api.merchant_auth import signed_headers
from ivr.console.routes import COOKIE
from ivr.payments.store import PaymentState
from tests.integration.test_console_api import ORDER as CONSOLE_ORDER, Console, console  # noqa: F401
from tests.integration.test_merchant_api import (FAKE_ONLY, ORDER, Api, api,  # noqa: F401
                                                 receivers)

UNKNOWN = "pay_ffffffffffffffffffff"


# --- signatures ---------------------------------------------------------------------------------------

async def test_the_signature_covers_the_query(api: Api) -> None:
    _, created = await api.post_order()
    path = f"/v1/payments/{created['id']}"
    headers = signed_headers("M100001", api.key("M100001"), "GET", path + "?view=a")
    async with api.client.get(path + "?view=b", headers=headers) as response:
        assert response.status == 401 and (await response.json())["error_id"] == "bad-signature"
    async with api.client.get(path, headers=headers) as response:
        assert response.status == 401
    # Control: the query it was signed with verifies.
    async with api.client.get(path + "?view=a", headers=headers) as response:
        assert response.status == 200


async def test_the_signature_covers_the_method(api: Api) -> None:
    _, created = await api.post_order()
    path = f"/v1/payments/{created['id']}/cancel"
    # Signed as a read of the payment, sent as its cancel (same body, same path otherwise).
    for signed_as in ("GET", "PUT"):
        headers = signed_headers("M100001", api.key("M100001"), signed_as, path)
        async with api.client.post(path, headers=headers) as response:
            assert response.status == 401 and (await response.json())["error_id"] == "bad-signature"
    assert (await api.app[STORE].get(created["id"])).status != PaymentState.CANCELLED


# --- one merchant, another's payment -----------------------------------------------------------------

@FAKE_ONLY  # puts the payment into each state by hand, which the real dialer would be moving
@pytest.mark.parametrize("state", [None, PaymentState.PIN_ENTRY, PaymentState.CANCELLED])
async def test_another_merchants_payment_does_not_exist_for_you(api: Api, receivers,
                                                                state: PaymentState | None) -> None:
    """Read or cancel, in a cancellable state or not, final or not: the answer to merchant B is
    the answer to an id nobody has, word for word but the id; A's payment is untouched."""
    receiver = await receivers(200)
    _, created = await api.post_order(notify_url=receiver.url)
    payment_id = created["id"]
    if state is not None:
        await api.app[STORE].transition(payment_id, state)
    before = (await api.app[STORE].get(payment_id)).status

    for method, suffix in (("GET", ""), ("POST", "/cancel")):
        status, theirs = await api.request(method, f"/v1/payments/{payment_id}{suffix}",
                                           merchant="M100002")
        unknown_status, unknown = await api.request(method, f"/v1/payments/{UNKNOWN}{suffix}",
                                                     merchant="M100002")
        assert status == unknown_status == 404, (method, theirs)
        assert json.dumps(theirs).replace(payment_id, UNKNOWN) == json.dumps(unknown)
        assert "webhook_attempts" not in theirs and "history" not in theirs
    assert (await api.app[STORE].get(payment_id)).status == before
    if state is None:  # B's cancel ended nothing, so nothing was sent anywhere
        assert api.orders.cancelled == [] and receiver.received == []
        assert not await api.redis.exists(f"pay:{payment_id}:webhook")


@FAKE_ONLY  # the webhook worker's own behaviour: no order service takes part
async def test_a_webhook_goes_only_where_its_merchant_said_signed_for_that_merchant(
        api: Api, receivers) -> None:
    """Merchant B can neither cancel A's payment nor point its webhook elsewhere: the one
    delivery goes to A's URL, signed with A's secret, which B's does not verify."""
    a_receiver, b_receiver = await receivers(200), await receivers(200)
    _, a_payment = await api.post_order(notify_url=a_receiver.url)
    await api.post_order(merchant="M100002", notify_url=b_receiver.url)
    assert (await api.request("POST", f"/v1/payments/{a_payment['id']}/cancel",
                              merchant="M100002"))[0] == 404
    assert (await api.request("POST", f"/v1/payments/{a_payment['id']}/cancel"))[0] == 200
    await _until(lambda: len(a_receiver.received) == 1)
    assert b_receiver.received == []
    headers, body = a_receiver.received[0]
    assert json.loads(body)["payment"]["id"] == a_payment["id"]
    timestamp = headers["X-Voicepay-Timestamp"].encode()
    for merchant, verifies in (("M100001", True), ("M100002", False)):
        expected = hmac.new(api.key(merchant), timestamp + b"\n" + body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(expected, headers["X-Voicepay-Signature"]) is verifies


async def _until(condition, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.02)


# --- operator and merchants: each its own door ------------------------------------------------------

async def test_the_operator_token_opens_no_merchant_route(api: Api) -> None:
    _, created = await api.post_order()
    bearer = {"Authorization": f"Bearer {api.operator_token}"}
    for method, path, body in (("POST", "/v1/payments", json.dumps(ORDER).encode()),
                               ("POST", f"/v1/payments/{created['id']}/cancel", b"")):
        status, answer = await api.request(method, path, body=body, merchant=None, headers=bearer)
        assert status == 401 and answer["error_id"] == "unauthenticated", path
    assert await api.payment_count() == 1
    # Nor does it stand in for a merchant's signature beside a merchant's name.
    headers = {**bearer, "X-Voicepay-Merchant": "M100001"}
    status, answer = await api.request("GET", f"/v1/payments/{created['id']}", merchant=None,
                                       headers=headers)
    assert status == 401


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/v1/payments"),
    ("GET", "/v1/admin/merchants"),
    ("POST", "/v1/admin/merchants/M100002/suspend"),
    ("POST", "/v1/admin/merchants/M100001/rotate-key"),
    ("GET", "/v1/admin/risk/rules"),
    ("POST", f"/v1/admin/payments/{UNKNOWN}/review"),
])
async def test_a_merchant_signature_opens_no_operator_route(api: Api, method: str, path: str) -> None:
    body = b'{"reason": "x", "decision": "approve"}' if method == "POST" else b""
    status, answer = await api.request(method, path, body=body)
    assert status == 401 and answer["error_id"] == "unauthenticated", answer
    status, _ = await api.request("GET", "/v1/admin/merchants/M100002", merchant=None,
                                  headers={"Authorization": f"Bearer {api.operator_token}"})
    assert status == 200


async def test_the_operator_token_is_compared_in_constant_time(api: Api,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """``compare_digest`` returns at once for inputs of unequal length: what it compares must
    have one length whatever was sent, or a guesser learns the token's length."""
    compared: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def spy(a, b):
        compared.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(merchant_auth.hmac, "compare_digest", spy)
    token = api.operator_token
    for presented in ("x", token[:-1], token + "x", "y" * 500, token):
        status, _ = await api.request("GET", "/v1/payments", merchant=None,
                                      headers={"Authorization": f"Bearer {presented}"})
        assert status == (200 if presented == token else 401)
    assert len(compared) == 5 and len(set(compared)) == 1
    (a, b), = set(compared)
    assert a == b


# --- the agent console ------------------------------------------------------------------------------

_READS = ["/console/api/session", "/console/api/call", "/console/api/payments",
          f"/console/api/payments/{UNKNOWN}/events"]
_WRITES = ["/console/api/logout", "/console/api/orders/check", "/console/api/payments",
           f"/console/api/payments/{UNKNOWN}/cancel", f"/console/api/payments/{UNKNOWN}/ask-again"]


async def test_every_console_route_needs_a_session(console: Console) -> None:
    for path in _READS:
        response = await console.client.get(path)
        assert response.status == 401 and (await response.json())["error_id"] == "not-logged-in", path
    for path in _WRITES:
        response = await console.post(path, CONSOLE_ORDER, csrf="anything")
        assert response.status == 401, path
    console.client.session.cookie_jar.update_cookies({COOKIE: "forged-session-token"})
    assert (await console.client.get("/console/api/session")).status == 401


async def test_every_console_write_needs_the_sessions_csrf_token(console: Console) -> None:
    csrf = await console.logged_in()
    for path in _WRITES:
        for token in (None, "", csrf[:-1], csrf + "x"):
            response = await console.post(path, CONSOLE_ORDER, csrf=token)
            assert response.status == 403, (path, token)
            assert (await response.json())["error_id"] == "csrf-refused"
    assert await console.redis.zcard("payments:recent") == 0
    assert (await console.client.get("/console/api/session")).status == 200  # still logged in


async def test_a_cookie_replayed_after_logout_is_refused(console: Console) -> None:
    csrf = await console.logged_in()
    token = console.client.session.cookie_jar.filter_cookies(
        console.client.make_url("/console"))[COOKIE].value
    assert (await console.post("/console/api/logout", csrf=csrf)).status == 200
    console.client.session.cookie_jar.update_cookies({COOKIE: token})
    response = await console.client.get("/console/api/session")
    assert response.status == 401
    assert (await console.post("/console/api/payments", CONSOLE_ORDER, csrf=csrf)).status == 401


async def test_an_agent_of_another_merchant_cannot_reach_the_payment(console: Console) -> None:
    """7101 takes payments for M100001, 7103 for M100002: 7103 gets, on 7101's payment, the
    answers an unknown id gets, and 7101's payment is untouched."""
    csrf = await console.logged_in("7101")
    payment = await (await console.post("/console/api/payments", CONSOLE_ORDER, csrf=csrf)).json()
    other_csrf = await console.logged_in("7103")
    for path in ("/console/api/payments/{}/cancel", "/console/api/payments/{}/ask-again"):
        theirs = await console.post(path.format(payment["id"]), {"field": "pin"}, csrf=other_csrf)
        unknown = await console.post(path.format(UNKNOWN), {"field": "pin"}, csrf=other_csrf)
        assert theirs.status == unknown.status == 404
        assert (json.dumps(await theirs.json()).replace(payment["id"], UNKNOWN)
                == json.dumps(await unknown.json()))
    events = await console.client.get(f"/console/api/payments/{payment['id']}/events")
    assert events.status == 404
    history = await (await console.client.get("/console/api/payments")).json()
    assert history["payments"] == []
    stored = await console.client.server.app[STORE].get(payment["id"])
    assert stored.status == "created" and stored.merchant_id == "M100001"
