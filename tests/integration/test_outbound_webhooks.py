"""Webhooks never reach an address that is not public (SSRF), on the real service app and a real
Redis: refused when the order names one (400 naming ``notify_url``), and refused again when the
delivery connects (the attempt fails with the reason, no request is sent): names that resolve to
loopback, DNS rebinding, IP literals in any form, redirects. Each with a control in which the
operator allows loopback and the same delivery arrives, so the refusal is the policy's doing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from ivr.api.keys import MERCHANTS, STORE
from ivr.payments.store import PaymentState
from ivr.webhooks import WebhookNotifier, webhook_attempts
from tests.integration.test_merchant_api import FAKE_ONLY, Api, Receiver, api, receivers  # noqa: F401

pytestmark = FAKE_ONLY  # the webhook worker and the order's checks: no order service takes part


@pytest.mark.parametrize("url", [
    "http://10.0.0.1/hook", "http://169.254.169.254/latest/meta-data/", "http://[::1]:8080/hook",
    "http://[::ffff:10.0.0.1]/hook", "http://0.0.0.0:8080/", "http://224.0.0.1/",
    "http://2130706433:8080/hook", "http://0x7f.1/hook", "http://192.168.1.1/",
])
async def test_an_order_naming_an_address_that_is_not_public_is_refused(api: Api, url: str) -> None:
    status, body = await api.post_order(notify_url=url)
    assert status == 400, body
    assert body["details"]["parameter"] == "notify_url"
    assert body["details"]["reason"].startswith("must reach a public address: ")
    assert await api.payment_count() == 0


async def test_an_allowed_network_and_a_public_name_are_accepted(api: Api) -> None:
    # The fixture's service allows 127.0.0.0/8 (its test receivers listen there).
    assert (await api.post_order(notify_url="http://127.0.0.1:9/hook"))[0] == 201
    assert (await api.post_order(notify_url="https://merchant.example/hook"))[0] == 201


# --- at delivery ----------------------------------------------------------------------------------

async def _deliver(api: Api, url: str, *, allowed: str) -> list[dict]:
    """One delivery to ``url`` by a notifier whose operator allows ``allowed``: its attempts.

    The payment is put in the store as it is (no admission check), as if its URL had passed
    admission and what it names had changed since."""
    await api.client.close()  # the service's own worker would deliver it too: stopped
    store = api.app[STORE]
    store.on_final = None
    payment = await store.create({"merchant_id": "M100001", "notify_url": url, "amount_minor": 100})
    payment = await store.transition(payment.id, PaymentState.CANCELLED)
    notifier = WebhookNotifier(api.redis, api.app[MERCHANTS],
                               dataclasses.replace(api.settings, outbound_allowed_networks=allowed))
    assert await notifier.enqueue(payment)
    async with notifier.client_session() as session:
        assert await notifier.run_once(session) == 1
    return await webhook_attempts(api.redis, payment.id)


def _on(receiver: Receiver, host: str) -> str:
    return receiver.url.replace("127.0.0.1", host, 1)


# (Decimal and short forms, 2130706433 or 127.1, never get this far: aiohttp refuses the URL.)
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "0x7f.1", "[::ffff:127.0.0.1]"])
async def test_a_delivery_to_loopback_is_refused_when_it_connects(api: Api, receivers,
                                                                  host: str) -> None:
    receiver = await receivers(200)
    attempts = await _deliver(api, _on(receiver, host), allowed="")
    assert receiver.received == []
    (attempt,) = attempts
    assert attempt["http_status"] is None
    assert attempt["error"].startswith("outbound address refused: ")
    assert "is loopback" in attempt["error"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "0x7f.1"])
async def test_control_the_same_delivery_arrives_when_loopback_is_allowed(api: Api, receivers,
                                                                          host: str) -> None:
    receiver = await receivers(200)
    attempts = await _deliver(api, _on(receiver, host), allowed="127.0.0.0/8")
    assert len(receiver.received) == 1
    assert [a["http_status"] for a in attempts] == [200]


@pytest.mark.parametrize("allowed", ["", "127.0.0.0/8"])
async def test_dns_rebinding_is_refused_on_the_address_connected_to(
        api: Api, receivers, monkeypatch: pytest.MonkeyPatch, allowed: str) -> None:
    """A name that passed admission (names are not looked up then) and resolves to loopback
    when the webhook goes out: refused, and only the policy makes the difference."""
    receiver = await receivers(200)
    port = int(receiver.url.split(":")[2].split("/")[0])
    loop = asyncio.get_running_loop()
    real_getaddrinfo = loop.getaddrinfo

    async def rebound(host, *args, **kwargs):
        if host == "merchant.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return await real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(loop, "getaddrinfo", rebound)
    assert (await api.post_order(notify_url="http://merchant.example/hook"))[0] == 201
    attempts = await _deliver(api, f"http://merchant.example:{port}/hook", allowed=allowed)
    if allowed:
        assert len(receiver.received) == 1 and attempts[0]["http_status"] == 200
    else:
        assert receiver.received == []
        assert attempts[0]["error"] == "outbound address refused: 127.0.0.1 is loopback"


async def test_a_redirect_is_not_followed(api: Api, receivers) -> None:
    target = await receivers(200)
    app = web.Application()

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(target.url)

    app.router.add_post("/hook", redirect)
    async with TestServer(app, host="127.0.0.1") as server:
        attempts = await _deliver(api, str(server.make_url("/hook")), allowed="127.0.0.0/8")
    assert attempts[0]["http_status"] == 302
    assert target.received == []


async def test_the_refusal_is_logged(api: Api, receivers, caplog: pytest.LogCaptureFixture) -> None:
    receiver = await receivers(200)
    with caplog.at_level("INFO", logger="ivr.webhooks"):
        await _deliver(api, receiver.url, allowed="")
    assert any("outbound address refused: 127.0.0.1 is loopback" in r.getMessage()
               for r in caplog.records)
    assert receiver.received == []
