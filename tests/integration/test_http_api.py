"""The HTTP API of the real service app (ivr.service.create_app) on a real Redis.

Its dependencies are real where that is cheap (Redis, the acquirer simulator over TCP) and a small
fake where it is not (Asterisk's AMI, see fake_ami.py). A port "with nothing listening" is one
just bound and released.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from simulators.acquirer.settings import load_acquirer_settings
from simulators.acquirer.server import AcquirerServer, build_simulator
from ivr.api.keys import STOPPING, STORE
from ivr.config import Settings, load_settings
from ivr.crypto.keys import generate_dev_keys
from ivr.cpu_guard import find_cpu_quota
from ivr.service import create_app
from ivr.payments.store import PaymentState, PaymentStore
from tests.integration.test_dialer import until
from tests.integration.fake_ami import CORE_STATUS, FakeAmi

AMI_USER = "voicepay-test"
AMI_SECRET = "test-ami-secret"
# panoramisk connects and logs in in the background after start-up: allow it this long.
AMI_LOGIN_WAIT = 5.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Service:
    client: TestClient
    settings: Settings

    @property
    def store(self) -> PaymentStore:
        return self.client.server.app[STORE]

    async def get(self, path: str, **params: str) -> tuple[int, Any]:
        """GET as the operator (the bearer token the service generated at start-up)."""
        token = self.settings.operator_token_file.read_text().strip()
        async with self.client.get(path, params=params,
                                   headers={"Authorization": f"Bearer {token}"}) as response:
            assert response.content_type == "application/json"
            return response.status, await response.json()


StartService = Callable[..., Awaitable[Service]]


@pytest.fixture
async def start_service(tmp_path: Path, redis_server: str,
                        redis_client: aioredis.Redis) -> AsyncIterator[StartService]:
    """Starts the app on demand, with or without a real acquirer and a fake AMI.

    ``redis_client`` is requested only so the database is flushed first.
    """
    async with AsyncExitStack() as stack:

        async def start(*, acquirer: bool = False, ami: FakeAmi | None = None) -> Service:
            generate_dev_keys(tmp_path / "keys")
            acquirer_port = _free_port()
            if acquirer:
                server = AcquirerServer(build_simulator(load_acquirer_settings(var_dir=tmp_path)), "127.0.0.1", 0)
                await server.start()
                stack.push_async_callback(server.close)
                acquirer_port = server.port
            settings = load_settings(
                var_dir=tmp_path, redis_url=redis_server, http_port=_free_port(),
                agi_host="127.0.0.1", agi_port=_free_port(),
                ami_host="127.0.0.1", ami_port=ami.port if ami else _free_port(),
                ami_user=AMI_USER, ami_secret=AMI_SECRET,
                acquirer_host="127.0.0.1", acquirer_port=acquirer_port, acquirer_timeout=1.0,
            )
            # Entered last, so closed first: the service stops before what it talks to.
            client = await stack.enter_async_context(TestClient(TestServer(create_app(settings))))
            return Service(client, settings)

        yield start


@pytest.fixture
async def service(start_service: StartService) -> Service:
    return await start_service()


# Tests list an AMI fixture before start_service, so the service stops first: otherwise
# panoramisk would see Asterisk go away and start reconnecting during teardown.
@pytest.fixture
async def fake_ami() -> AsyncIterator[FakeAmi]:
    async with FakeAmi(username=AMI_USER, secret=AMI_SECRET) as ami:
        yield ami


@pytest.fixture
async def fake_ami_other_secret() -> AsyncIterator[FakeAmi]:
    """An Asterisk whose AMI account has a secret other than the service's."""
    async with FakeAmi(username=AMI_USER, secret="not-the-configured-secret") as ami:
        yield ami


async def wait_for_health(service: Service, *, ok: bool, timeout: float = AMI_LOGIN_WAIT) -> tuple[int, Any]:
    """Polls /healthz until its "ok" is ``ok``; the last answer either way."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        status, body = await service.get("/healthz")
        if body["ok"] is ok or loop.time() > deadline:
            return status, body
        await asyncio.sleep(0.1)


# --- payments ---------------------------------------------------------------------------------

async def test_get_payment_with_history_and_amount(service: Service) -> None:
    payment = await service.store.create({"amount_minor": 5000, "currency": "EUR"},
                                         pan_token="v1.opaque-token", reason="api")
    await service.store.transition(payment.id, PaymentState.PIN_ENTRY, reason="call answered")

    status, body = await service.get(f"/v1/payments/{payment.id}")
    assert status == 200
    assert body["id"] == payment.id and body["status"] == "pin_entry"
    assert body["amount"] == "50.00" and body["currency"] == "EUR" and "amount_minor" not in body
    assert [(e["state"], e["reason"]) for e in body["history"]] == [
        ("created", "api"), ("pin_entry", "call answered")]
    assert not [key for key in body if "pan" in key.lower()]
    assert "v1.opaque-token" not in repr(body)


async def test_internal_fields_are_shown_to_the_operator_only_and_apart(service: Service) -> None:
    payment = await service.store.create({"amount_minor": 5000, "mode": "selfservice",
                                          "call_id": "1700000000.7", "terminal_id": "VPIVR001",
                                          "caller_channel": "PJSIP/cardholder-00000007"})
    await service.store.update(payment.id, stan="000123")
    status, body = await service.get(f"/v1/payments/{payment.id}")
    assert status == 200 and body["mode"] == "selfservice"
    assert body["internal"] == {"call_id": "1700000000.7", "terminal_id": "VPIVR001",
                                "caller_channel": "PJSIP/cardholder-00000007", "stan": "000123"}
    assert not {"call_id", "terminal_id", "stan", "caller_channel"} & set(body)
    # A merchant's view, as in answers and webhooks: the public fields and nothing else.
    public = (await service.store.get(payment.id)).to_json()
    assert "internal" not in public and "stan" not in public and public["amount"] == "50.00"


async def test_small_amounts_keep_their_leading_zero(service: Service) -> None:
    payment = await service.store.create({"amount_minor": 5})
    status, body = await service.get(f"/v1/payments/{payment.id}")
    assert status == 200 and body["amount"] == "0.05"


async def test_unknown_payment_is_404_json(service: Service) -> None:
    status, body = await service.get("/v1/payments/pay_0000000000")
    assert status == 404
    assert body["error_id"] == "no-such-payment" and "pay_0000000000" in body["message"]


async def test_list_newest_first(service: Service) -> None:
    ids = [(await service.store.create({"amount_minor": n})).id for n in (100, 200, 300)]
    status, body = await service.get("/v1/payments")
    assert status == 200
    assert [p["id"] for p in body["payments"]] == ids[::-1]
    assert [p["amount"] for p in body["payments"]] == ["3.00", "2.00", "1.00"]
    # The list is a summary: history only on the single-payment resource.
    assert all("history" not in p for p in body["payments"])


async def test_list_is_empty_without_payments(service: Service) -> None:
    assert await service.get("/v1/payments") == (200, {"payments": []})


async def test_list_filters_by_status_and_limits(service: Service) -> None:
    ids = [(await service.store.create({"amount_minor": n})).id for n in range(1, 5)]
    await service.store.transition(ids[0], PaymentState.CANCELLED)
    await service.store.transition(ids[2], PaymentState.CANCELLED)

    status, body = await service.get("/v1/payments", status="cancelled")
    assert status == 200 and [p["id"] for p in body["payments"]] == [ids[2], ids[0]]
    assert {p["status"] for p in body["payments"]} == {"cancelled"}

    status, body = await service.get("/v1/payments", status="created", limit="1")
    assert status == 200 and [p["id"] for p in body["payments"]] == [ids[3]]

    for limit, count in (("1", 1), ("2", 2), ("500", 4)):
        status, body = await service.get("/v1/payments", limit=limit)
        assert status == 200 and len(body["payments"]) == count, limit


async def test_list_rejects_an_unknown_status(service: Service) -> None:
    status, body = await service.get("/v1/payments", status="paid")
    assert status == 400
    assert body["error_id"] == "invalid-parameter"
    assert body["details"]["parameter"] == "status"
    assert "pin_entry" in body["details"]["reason"]


@pytest.mark.parametrize("limit", ["0", "501", "abc", "-1", "", "1.5", "²", "٣", " 5"])
async def test_list_rejects_a_bad_limit(service: Service, limit: str) -> None:
    status, body = await service.get("/v1/payments", limit=limit)
    assert status == 400
    assert body["error_id"] == "invalid-parameter"
    assert body["details"] == {"parameter": "limit", "reason": "must be a whole number from 1 to 500"}


async def test_unknown_route_is_404(service: Service) -> None:
    async with service.client.get("/v1/nothing-here") as response:
        assert response.status == 404


# --- health -----------------------------------------------------------------------------------

async def test_healthz_503_when_asterisk_and_acquirer_are_down(service: Service) -> None:
    status, body = await service.get("/healthz")
    assert status == 503 and body["ok"] is False
    checks = body["checks"]
    assert checks["redis"] == {"ok": True}
    assert checks["acquirer"] == {"ok": False}
    assert checks["ami"] == {"ok": False}
    assert checks["asterisk"] == {"ok": False}


async def test_healthz_says_what_the_cpu_guard_sees(service: Service) -> None:
    """Informational: the guard's setting, what it read, whether calls are refused; the guard
    runs even with AMI down (its refusal then waits for Asterisk), and ok does not depend on it."""
    async def read_twice() -> bool:
        return (await service.get("/healthz"))[1]["admission"]["cpu_busy_percent"] is not None
    await until(read_twice, 10)
    status, body = await service.get("/healthz")
    admission = body["admission"]
    assert admission["cpu_guard_percent"] == 80
    assert 0 <= admission["cpu_busy_percent"] <= 100
    assert isinstance(admission["refusing_new_calls"], bool)
    # The quota the guard watches, as this process's cgroups have it (none on the VM, maybe in CI).
    quota = find_cpu_quota()
    assert admission["cpu_quota_cores"] == (None if quota is None else quota.cores)


async def test_healthz_sees_a_running_acquirer(start_service: StartService) -> None:
    service = await start_service(acquirer=True)
    status, body = await service.get("/healthz")
    assert status == 503  # the AMI port still has nothing behind it
    assert body["checks"]["acquirer"] == {"ok": True}
    assert body["checks"]["redis"] == {"ok": True}
    assert body["checks"]["ami"]["ok"] is False and body["checks"]["asterisk"]["ok"] is False


async def test_healthz_200_when_everything_answers(fake_ami: FakeAmi, start_service: StartService) -> None:
    service = await start_service(acquirer=True, ami=fake_ami)
    status, body = await wait_for_health(service, ok=True)
    assert status == 200, body
    body.pop("admission")  # the CPU guard's reading: test_healthz_says_what_the_cpu_guard_sees
    assert body == {"ok": True, "checks": {
        "redis": {"ok": True},
        "acquirer": {"ok": True},
        "ami": {"ok": True},
        "asterisk": {
            "ok": True,
            "startup": f"{CORE_STATUS['CoreStartupDate']} {CORE_STATUS['CoreStartupTime']}",
            "current_calls": CORE_STATUS["CoreCurrentCalls"],
        },
    }}
    names = fake_ami.action_names()
    assert names[0] == "Login" and "Ping" in names and "CoreStatus" in names
    login = fake_ami.actions[0]
    assert login["Username"] == AMI_USER and login["Events"] == "call"


async def test_healthz_503_when_only_the_acquirer_is_down(fake_ami: FakeAmi,
                                                          start_service: StartService) -> None:
    service = await start_service(acquirer=False, ami=fake_ami)
    # Wait until the AMI side is up, so the acquirer is the only thing failing.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + AMI_LOGIN_WAIT
    while True:
        status, body = await service.get("/healthz")
        if body["checks"]["ami"]["ok"] or loop.time() > deadline:
            break
        await asyncio.sleep(0.1)
    assert status == 503
    assert body["checks"]["ami"]["ok"] is True and body["checks"]["asterisk"]["ok"] is True
    assert body["checks"]["acquirer"] == {"ok": False}


async def test_healthz_503_when_the_ami_login_is_refused(fake_ami_other_secret: FakeAmi,
                                                         start_service: StartService) -> None:
    service = await start_service(acquirer=True, ami=fake_ami_other_secret)
    # Give panoramisk the time it needs to log in, had the secret been right.
    await asyncio.sleep(0.5)
    status, body = await wait_for_health(service, ok=True, timeout=1.0)
    assert status == 503
    assert body["checks"]["ami"] == {"ok": False} and body["checks"]["asterisk"] == {"ok": False}
    assert body["checks"]["acquirer"] == {"ok": True}
    assert fake_ami_other_secret.action_names() == ["Login"]  # nothing follows a refused login


async def test_healthz_goes_503_when_asterisk_stops(fake_ami: FakeAmi, start_service: StartService) -> None:
    service = await start_service(acquirer=True, ami=fake_ami)
    assert (await wait_for_health(service, ok=True))[0] == 200
    await fake_ami.close()
    # The AMI client's action timeout (3 s) bounds how long a dead Asterisk can go unnoticed.
    status, body = await wait_for_health(service, ok=False, timeout=5.0)
    assert status == 503
    assert body["checks"]["ami"] == {"ok": False} and body["checks"]["asterisk"] == {"ok": False}
    assert body["checks"]["redis"] == {"ok": True} and body["checks"]["acquirer"] == {"ok": True}


async def test_healthz_503_while_draining_so_a_balancer_stops_sending(
        fake_ami: FakeAmi, start_service: StartService) -> None:
    service = await start_service(acquirer=True, ami=fake_ami)
    status, _ = await wait_for_health(service, ok=True)
    assert status == 200
    service.client.server.app[STOPPING].set()  # what drain() sets on SIGTERM
    status, body = await service.get("/healthz")
    assert status == 503 and body["ok"] is False and body["stopping"] is True
    assert all(check["ok"] for check in body["checks"].values())
