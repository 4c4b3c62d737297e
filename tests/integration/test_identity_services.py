"""The identity clients (ivr/risk/identity.py) against the real simulator services
(simulators/identity/), started in this process on free ports: every answer, every failure mode.

The failure modes are switched the way an operator does it, through each simulator's
``PUT /admin/mode``; a refused connection is a stopped simulator.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from unittest import mock

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from ivr.config import load_settings
from ivr.risk.decision import BindingAnswer, IdentityAnswer
from ivr.risk.identity import IdentityProviders, identity_providers
from simulators.identity.binding import binding_app
from simulators.identity.police import police_app
from simulators.identity.service import start_site
from simulators.identity.settings import load_identity_settings

DEMO_NAME, DEMO_ID = "Zhang San", "11010519491231002X"
SECOND_NAME, SECOND_ID = "Li Si", "110101199003074477"
UNREGISTERED_ID = "650101198511110025"     # GB 11643-valid, not in the registry
DEMO_CARD, DEMO_MOBILE = "6221881000000011", "13900000001"
SECOND_CARD, SECOND_MOBILE = "6221889999999994", "13700000002"
SECRETS = [DEMO_ID, SECOND_ID, UNREGISTERED_ID, DEMO_CARD, SECOND_CARD, DEMO_ID[6:14]]
# Longer than any test waits: a "slow" answer is only ever given up on.
SLOW_S = 30.0
TIMEOUT_S = 1.0


@dataclass
class Services:
    police_url: str
    binding_url: str
    police_base: str
    binding_base: str
    runners: dict[str, web.AppRunner]
    providers: IdentityProviders
    http: aiohttp.ClientSession

    async def set_mode(self, service: str, mode: str) -> dict:
        base = self.police_base if service == "police" else self.binding_base
        async with self.http.put(f"{base}/admin/mode", json={"mode": mode}) as response:
            assert response.status == 200, await response.text()
            return await response.json()

    async def ask(self, service: str) -> str:
        """One check the registry answers positively, through the product's client."""
        if service == "police":
            return await self.providers.police.check(DEMO_NAME, DEMO_ID)
        return await self.providers.binding.check(DEMO_CARD, DEMO_MOBILE)


async def _start(**simulator_settings: object) -> tuple[dict[str, web.AppRunner], dict[str, int]]:
    settings = load_identity_settings(slow_s=SLOW_S, **simulator_settings)
    runners, ports = {}, {}
    for name, build in (("police", police_app), ("binding", binding_app)):
        runners[name], ports[name] = await start_site(build(settings), "127.0.0.1", 0)
    return runners, ports


@pytest.fixture
async def services() -> AsyncIterator[Services]:
    runners, ports = await _start()
    police_base = f"http://127.0.0.1:{ports['police']}"
    binding_base = f"http://127.0.0.1:{ports['binding']}"
    settings = load_settings(police_url=f"{police_base}/v1/identity/check",
                             binding_url=f"{binding_base}/v1/binding/check",
                             identity_timeout_s=TIMEOUT_S)
    async with identity_providers(settings) as providers, aiohttp.ClientSession() as http:
        yield Services(settings.police_url, settings.binding_url, police_base, binding_base,
                       runners, providers, http)
    for runner in runners.values():
        await runner.cleanup()


@pytest.fixture(autouse=True)
def no_secrets_in_logs(caplog):
    """Whatever a test does, neither the clients nor the simulators log a card or ID number."""
    caplog.set_level(logging.DEBUG)
    yield
    # At teardown caplog.text is the teardown's own; the test's records are kept per phase.
    lines = [r.getMessage() for when in ("setup", "call") for r in caplog.get_records(when)]
    for secret in SECRETS:
        assert not [line for line in lines if secret in line]


# ---- every answer -------------------------------------------------------------------------------

@pytest.mark.parametrize("name, id_number, expected", [
    (DEMO_NAME, DEMO_ID, IdentityAnswer.MATCH),
    ("张三", DEMO_ID.lower(), IdentityAnswer.MATCH),            # another registered name, lower x
    ("  zhang   SAN ", DEMO_ID, IdentityAnswer.MATCH),         # spaces and case do not matter
    (SECOND_NAME, SECOND_ID, IdentityAnswer.MATCH),
    (SECOND_NAME, DEMO_ID, IdentityAnswer.MISMATCH),
    (DEMO_NAME, UNREGISTERED_ID, IdentityAnswer.NOT_FOUND),
])
async def test_police_answers(services: Services, name: str, id_number: str,
                              expected: IdentityAnswer) -> None:
    assert await services.providers.police.check(name, id_number) is expected


@pytest.mark.parametrize("card, mobile, name, id_number, expected", [
    (DEMO_CARD, DEMO_MOBILE, "", "", BindingAnswer.BOUND),
    (DEMO_CARD, DEMO_MOBILE, DEMO_NAME, DEMO_ID, BindingAnswer.BOUND),
    ("6259061000000015", "13800138105", "张三", "", BindingAnswer.BOUND),     # a credit test card
    (SECOND_CARD, SECOND_MOBILE, SECOND_NAME, SECOND_ID, BindingAnswer.BOUND),
    (DEMO_CARD, SECOND_MOBILE, "", "", BindingAnswer.NOT_BOUND),            # another's mobile
    (DEMO_CARD, DEMO_MOBILE, SECOND_NAME, "", BindingAnswer.NOT_BOUND),     # not the holder's name
    (DEMO_CARD, DEMO_MOBILE, "", SECOND_ID, BindingAnswer.NOT_BOUND),       # nor ID number
    ("4111111111111111", DEMO_MOBILE, "", "", BindingAnswer.NOT_BOUND),     # a card no one registered
])
async def test_binding_answers(services: Services, card: str, mobile: str, name: str,
                               id_number: str, expected: BindingAnswer) -> None:
    assert await services.providers.binding.check(card, mobile, name, id_number) is expected


@pytest.mark.parametrize("id_number", ["110105194912310021",   # check character
                                       "110105194902300027",   # 30 February (check char right)
                                       "99010119900101001X",   # region
                                       "1101051949123100"])    # length
async def test_police_answers_a_malformed_number_mismatch_without_asking(services, id_number):
    await services.runners["police"].cleanup()   # nothing listens any more
    assert await services.providers.police.check(DEMO_NAME, id_number) is IdentityAnswer.MISMATCH
    # The control: a well-formed number is asked about, and finds no one to answer it.
    assert await services.providers.police.check(DEMO_NAME, DEMO_ID) is IdentityAnswer.UNAVAILABLE


# ---- every failure mode -------------------------------------------------------------------------

@pytest.mark.parametrize("service", ["police", "binding"])
@pytest.mark.parametrize("mode", ["down", "slow", "garbage"])
async def test_a_failing_provider_is_unavailable_and_recovers(services: Services, service: str,
                                                              mode: str, caplog) -> None:
    unavailable = IdentityAnswer.UNAVAILABLE if service == "police" else BindingAnswer.UNAVAILABLE
    assert await services.ask(service) is not unavailable         # the control: it answers
    assert await services.set_mode(service, mode) == {"mode": mode}
    assert await services.ask(service) is unavailable
    why = {"down": "HTTP 503", "slow": f"no answer within {TIMEOUT_S:g} s",
           "garbage": "not the contract's JSON"}[mode]
    assert any(r.name == "ivr.risk.identity" and r.getMessage().startswith(f"{service} provider")
               and why in r.getMessage() for r in caplog.records), caplog.text
    await services.set_mode(service, "ok")
    assert await services.ask(service) is not unavailable


@pytest.mark.parametrize("service", ["police", "binding"])
async def test_a_stopped_provider_is_unavailable(services: Services, service: str, caplog) -> None:
    await services.runners[service].cleanup()
    assert str(await services.ask(service)) == "unavailable"
    assert f"{service} provider unavailable: connection failed" in caplog.text


async def test_a_failure_mode_can_be_set_at_start() -> None:
    runners, ports = await _start(police_mode="down", binding_mode="garbage")
    settings = load_settings(police_url=f"http://127.0.0.1:{ports['police']}/v1/identity/check",
                             binding_url=f"http://127.0.0.1:{ports['binding']}/v1/binding/check",
                             identity_timeout_s=TIMEOUT_S)
    try:
        async with identity_providers(settings) as providers:
            assert await providers.police.check(DEMO_NAME, DEMO_ID) is IdentityAnswer.UNAVAILABLE
            assert (await providers.binding.check(DEMO_CARD, DEMO_MOBILE)
                    is BindingAnswer.UNAVAILABLE)
    finally:
        for runner in runners.values():
            await runner.cleanup()


def test_an_unknown_mode_at_start_stops_the_simulator() -> None:
    with pytest.raises(ValueError, match="sideways"):
        police_app(load_identity_settings(police_mode="sideways"))


# ---- answers outside the contract, from a provider that is not ours ---------------------------

@asynccontextmanager
async def another_provider(handler) -> AsyncIterator[IdentityProviders]:
    """The product's clients, both pointed at ``handler`` serving POST /check on a free port."""
    app = web.Application()
    app.router.add_post("/check", handler)
    runner, port = await start_site(app, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{port}/check"
    try:
        async with identity_providers(load_settings(police_url=url, binding_url=url,
                                                    identity_timeout_s=TIMEOUT_S)) as providers:
            yield providers
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("status, body", [
    (200, b'{"result": "maybe"}'),
    (200, b'{"result": "unavailable"}'),                 # ours to say, never the provider's
    (200, b'{"result": ["match"]}'),
    (200, b'["match"]'),
    (200, b'{"result": "match", "pad": "' + b"x" * 10000 + b'"}'),   # far longer than an answer
    (200, b"\xff\xfe"),
    (500, b'{"result": "match"}'),
    (302, b""),
])
async def test_an_answer_outside_the_contract_is_unavailable(status: int, body: bytes) -> None:
    async def provider(request: web.Request) -> web.Response:
        return web.Response(status=status, body=body, content_type="application/json",
                            headers={"Location": "/elsewhere"} if status == 302 else None)

    async with another_provider(provider) as providers:
        assert await providers.police.check(DEMO_NAME, DEMO_ID) is IdentityAnswer.UNAVAILABLE
        assert await providers.binding.check(DEMO_CARD, DEMO_MOBILE) is BindingAnswer.UNAVAILABLE


# ---- the simulators' own edges ------------------------------------------------------------------

async def test_values_travel_in_the_body_only(services: Services) -> None:
    seen: list[str] = []

    async def spy(request: web.Request) -> web.Response:
        seen.append(str(request.rel_url))
        return web.json_response({"result": "bound"})

    async with another_provider(spy) as providers:
        assert (await providers.binding.check(DEMO_CARD, DEMO_MOBILE, DEMO_NAME, DEMO_ID)
                is BindingAnswer.BOUND)
    assert seen == ["/check"]


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"name": "Zhang San"}',
                                  b'{"name": "Zhang San", "id_number": 11010519491231002}'])
async def test_a_malformed_request_gets_400_with_a_reason(services: Services, body: bytes) -> None:
    async with services.http.post(services.police_url, data=body) as response:
        assert response.status == 400
        assert (await response.json())["error"]


async def test_binding_optional_fields_must_be_strings(services: Services) -> None:
    body = {"card_number": DEMO_CARD, "mobile": DEMO_MOBILE, "name": 7}
    async with services.http.post(services.binding_url, json=body) as response:
        assert response.status == 400
        assert "name" in (await response.json())["error"]


async def test_admin_refuses_an_unknown_mode_and_health_stays_green_while_down(services) -> None:
    async with services.http.put(f"{services.police_base}/admin/mode",
                                 json={"mode": "sideways"}) as response:
        assert response.status == 400
    await services.set_mode("police", "down")
    async with services.http.get(f"{services.police_base}/healthz") as response:
        assert response.status == 200
        assert await response.json() == {"ok": True, "service": "police", "mode": "down"}
    async with services.http.get(f"{services.police_base}/admin/mode") as response:
        assert await response.json() == {"mode": "down"}


@pytest.mark.parametrize("peer, status", [("192.0.2.10", 403), ("10.1.2.3", 403),
                                          ("127.0.0.1", 200), ("::1", 200)])
async def test_admin_answers_on_loopback_only(peer: str, status: int) -> None:
    app = police_app(load_identity_settings())
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda key, default=None: (
        (peer, 40000) if key == "peername" else default)
    request = make_mocked_request("GET", "/admin/mode", app=app, transport=transport)
    match_info = await app.router.resolve(request)
    response = await match_info.handler(request)
    assert response.status == status
