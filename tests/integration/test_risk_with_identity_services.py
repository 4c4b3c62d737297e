"""Risk control through the merchant API with the real identity services (issue 8): the service's
own HTTP clients ask the police and bank binding simulators (simulators/identity/, started here on
free ports), the shipped rules decide, the payment keeps the decision.

Each answer of the documented test registry, and each provider failing, through one signed
``POST /v1/payments``: a provider outage never approves, the decision names it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from ivr.api.keys import RISK_LISTS, STORE
from simulators.identity.binding import binding_app
from simulators.identity.police import police_app
from simulators.identity.service import start_site
from simulators.identity.settings import load_identity_settings
from tests.integration.fake_ami import FakeAmi
from tests.integration.risk_fakes import established
from tests.integration.test_orders_api import fake_ami, running_service  # noqa: F401 (fixture)
from tests.integration.test_merchant_api import Api

DEMO = {"cardholder_name": "Zhang San", "id_number": "11010519491231002X",
        "card_number": "6221881000000011", "mobile": "13900000001"}
ZHAO_LIU = {"cardholder_name": "Zhao Liu", "id_number": "310101198506151238"}  # holds no card


class Identity:
    """Both simulators, and a way to switch their failure modes as an operator's test would."""

    def __init__(self, bases: dict[str, str]) -> None:
        self.bases = bases

    async def set_mode(self, service: str, mode: str) -> None:
        async with aiohttp.ClientSession() as http:
            async with http.put(f"{self.bases[service]}/admin/mode", json={"mode": mode}) as answer:
                assert answer.status == 200, await answer.text()


@pytest.fixture
async def identity() -> AsyncIterator[Identity]:
    # Answers at once (no simulated latency), and "slow" means longer than the client waits.
    settings = load_identity_settings(latency_ms=0, jitter_ms=0, slow_s=30.0)
    runners, bases = [], {}
    for name, build in (("police", police_app), ("binding", binding_app)):
        runner, port = await start_site(build(settings), "127.0.0.1", 0)
        runners.append(runner)
        bases[name] = f"http://127.0.0.1:{port}"
    yield Identity(bases)
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def api(tmp_path: Path, redis_server: str, redis_client: aioredis.Redis, fake_ami: FakeAmi,
              identity: Identity) -> AsyncIterator[Api]:
    async with running_service(
            tmp_path, redis_server, redis_client, fake_ami,
            police_url=f"{identity.bases['police']}/v1/identity/check",
            binding_url=f"{identity.bases['binding']}/v1/binding/check",
            identity_timeout_s=1.0) as api:
        await established(api.app[RISK_LISTS])  # not one of a new merchant's first payments
        yield api


async def _decision(api: Api, **order: str) -> tuple[str, dict]:
    status, body = await api.post_order(**{**DEMO, **order})
    assert status == 201, body
    payment = await api.app[STORE].get(body["id"])
    return body["status"], json.loads(payment.risk_decision)


def _fired(decision: dict) -> list[str]:
    return [rule["name"] for rule in decision["fired"] if not rule["shadow"]]


async def test_the_registered_cardholder_passes(api: Api) -> None:
    status, decision = await _decision(api)
    assert (status, decision["outcome"]) == ("risk_passed", "approve"), decision
    assert decision["unavailable"] == [] and _fired(decision) == []


async def test_a_name_that_does_not_go_with_the_id_number_is_declined(api: Api) -> None:
    status, decision = await _decision(api, cardholder_name="Li Si")
    assert (status, decision["outcome"]) == ("risk_declined", "decline")
    assert "identity_mismatch" in _fired(decision)


async def test_someone_elses_card_is_stepped_up_when_small_and_reviewed_above(api: Api) -> None:
    status, decision = await _decision(api, amount="18.00", **ZHAO_LIU)
    assert (status, decision["outcome"]) == ("risk_passed", "step_up")
    assert _fired(decision) == ["binding_not_bound"]
    status, decision = await _decision(api, amount="120.00", merchant_order_id="ORD-2", **ZHAO_LIU)
    assert (status, decision["outcome"]) == ("risk_review", "review")
    assert _fired(decision) == ["binding_not_bound", "binding_not_bound_over_20"]


@pytest.mark.parametrize("mode", ["down", "garbage", "slow"])
@pytest.mark.parametrize("service", ["police", "binding"])
async def test_a_provider_that_fails_never_approves(api: Api, identity: Identity, service: str,
                                                    mode: str) -> None:
    await identity.set_mode(service, mode)
    status, decision = await _decision(api)
    # The shipped rules' path for an outage: review, named in the decision.
    assert (status, decision["outcome"]) == ("risk_review", "review"), decision
    assert decision["unavailable"] == [service]
