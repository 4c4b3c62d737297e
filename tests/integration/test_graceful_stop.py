"""Stopping the ivr service: calls in progress finish, and no authorization is ever orphaned.

First at FastAGI level, with the self-service harness (real FastAGI server, Redis, acquirer
simulator over TCP, scripted fake Asterisk): ``FastAgiServer.stop()`` with a drain time, and a call
cut off while its authorization is in flight. Then the whole service: ``python -m ivr.service``
in a child process, sent SIGTERM during a call.
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from ivr.agi.server import FastAgiServer
from ivr.config import REPO_ROOT
from ivr.crypto.keys import generate_dev_keys
from ivr.payments.store import PaymentStore
from ivr.selfservice.flow import selfservice
from simulators.acquirer.server import AcquirerServer, build_simulator
from simulators.acquirer.settings import load_acquirer_settings
from simulators.acquirer.testcards import find_test_card
from tests.integration import test_selfservice_fastagi as selfservice_harness
from tests.integration.fake_asterisk import FakeAsterisk, Pause, ScriptMismatch, asks, plays
from tests.integration.test_selfservice_fastagi import (
    APPROVE,
    REFERENCE_NUMBER,
    FlowTracker,
    Ivr,
    order,
)
from tests.leakcheck import scan_text

ivr = selfservice_harness.ivr  # the self-service FastAGI fixture

# Longer than any test here runs: a drain that ends early ends because the call did.
DRAIN_SECONDS = 30.0


@dataclass
class Line:
    """A self-service FastAGI server of the test's own, so the test decides when it stops."""

    server: FastAgiServer
    port: int
    flows: FlowTracker

    def place(self, *script) -> tuple[FakeAsterisk, asyncio.Task]:
        caller = FakeAsterisk(list(script))
        return caller, asyncio.create_task(caller.call("127.0.0.1", self.port, timeout=60))


@pytest.fixture
async def line(ivr: Ivr) -> AsyncIterator[Line]:
    flows = FlowTracker()
    server = FastAgiServer({"selfservice": flows.wrap(functools.partial(selfservice,
                                                                        ctx=ivr.ctx))})
    await server.start("127.0.0.1", 0)
    try:
        yield Line(server, selfservice_harness._bound_port(server), flows)
    finally:
        await server.stop()


# --- FastAGI: the drain ---------------------------------------------------------------------


async def test_stop_lets_a_call_at_the_pin_prompt_finish(ivr: Ivr, line: Line) -> None:
    pin = Pause()
    caller, call = line.place(*order(APPROVE), asks("enter_pin", APPROVE.pin, pause=pin),
                              plays("please_wait"), plays("approved"), *REFERENCE_NUMBER,
                              plays("goodbye"))
    await pin.reached.wait()

    stopping = asyncio.create_task(line.server.stop(drain_seconds=DRAIN_SECONDS))
    await asyncio.sleep(0)  # one turn: stop() closes the listener before its first await
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", line.port)
    assert not stopping.done()

    pin.release.set()
    await call  # raises ScriptMismatch had the IVR cut the call off
    await stopping

    payment = await ivr.the_payment()
    assert payment.status == "approved"
    assert await ivr.states(payment) == ["created", "pin_entry", "authorizing", "approved"]
    assert caller.prompts[-1] == "goodbye" and caller.hung_up_by == "ivr"
    assert line.flows.endings == ["returned"]
    assert [(e["mti"], e["response_code"]) for e in ivr.journal()] == [("0200", "00")]


async def test_a_call_outlasting_the_drain_time_is_cut_off(ivr: Ivr, line: Line) -> None:
    pin = Pause()  # never released: the caller is still thinking about the PIN
    caller, call = line.place(*order(APPROVE), asks("enter_pin", APPROVE.pin, pause=pin))
    await pin.reached.wait()

    await line.server.stop(drain_seconds=0.2)

    assert line.flows.endings == ["CancelledError"]
    assert ivr.journal() == []  # no PIN block existed: nothing reached the acquirer
    pin.release.set()
    await call


# --- an authorization in flight is never orphaned -------------------------------------------


@pytest.mark.parametrize(("card_name", "state", "journal"), [
    ("approve", "approved", [("0200", "00")]),
    # The acquirer stays silent past the IVR's timeout: the request is reversed, nothing charged.
    ("issuer_timeout", "failed", [("0400", "00")]),
])
async def test_a_call_cut_off_during_its_authorization_still_settles_the_payment(
        ivr: Ivr, line: Line, card_name: str, state: str, journal: list[tuple[str, str]]) -> None:
    card = find_test_card(card_name)
    please_wait = Pause()  # the authorization is on its way while this plays
    caller, call = line.place(*order(card), asks("enter_pin", card.pin),
                              plays("please_wait", pause=please_wait))
    await please_wait.reached.wait()

    await line.server.stop()  # no drain: the session is cancelled at once

    payment = await ivr.the_payment()
    assert payment.status == state
    assert await ivr.states(payment) == ["created", "pin_entry", "authorizing", state]
    assert [(e["mti"], e["response_code"]) for e in ivr.journal()][:1] == journal
    assert payment.record["stan"] == ivr.journal()[0]["stan"]
    assert line.flows.endings == ["CancelledError"]
    please_wait.release.set()
    await call


# --- the service: SIGTERM --------------------------------------------------------------------


class ServiceLog:
    """The child service's stderr, line by line, with a wait for a line to appear."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.lines: list[str] = []
        self._changed = asyncio.Condition()
        self._reader = asyncio.create_task(self._read(stream))

    async def _read(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            async with self._changed:
                self.lines.append(line.decode(errors="replace").rstrip("\n"))
                self._changed.notify_all()

    async def wait_for(self, text: str, timeout: float = 20) -> None:
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: any(text in line for line in self.lines)), timeout)

    async def closed(self) -> None:
        """Returns once the whole log is read (the process has closed its stderr)."""
        await self._reader

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass
class ChildService:
    process: asyncio.subprocess.Process
    log: ServiceLog
    http_port: int
    agi_port: int

    def call_held_at_the_pin_prompt(self, pin: Pause) -> tuple[FakeAsterisk, asyncio.Task]:
        caller = FakeAsterisk([*order(APPROVE), asks("enter_pin", APPROVE.pin, pause=pin),
                               plays("please_wait"), plays("approved"), *REFERENCE_NUMBER,
                               plays("goodbye")])
        return caller, asyncio.create_task(caller.call("127.0.0.1", self.agi_port, timeout=60))


@pytest.fixture
async def child_service(tmp_path: Path, redis_server: str,
                        redis_client: aioredis.Redis) -> AsyncIterator[ChildService]:
    """``python -m ivr.service`` on a private Redis and a real acquirer simulator, no Asterisk.

    Afterwards its whole log is searched for card data.
    """
    generate_dev_keys(tmp_path / "keys")
    free_port = selfservice_harness._unused_port
    http_port, agi_port = free_port(), free_port()
    async with AcquirerServer(build_simulator(load_acquirer_settings(var_dir=tmp_path)),
                              "127.0.0.1", 0) as acquirer:
        env = {**os.environ, "VOICEPAY_VAR_DIR": str(tmp_path), "VOICEPAY_REDIS_URL": redis_server,
               "VOICEPAY_HTTP_PORT": str(http_port), "VOICEPAY_AGI_PORT": str(agi_port),
               "VOICEPAY_AMI_PORT": str(free_port()),  # no Asterisk: the AMI client keeps trying
               "VOICEPAY_ACQUIRER_PORT": str(acquirer.port), "VOICEPAY_LANGUAGE": "en",
               "VOICEPAY_DRAIN_SECONDS": str(DRAIN_SECONDS), "VOICEPAY_LOG_LEVEL": "INFO"}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ivr.service", cwd=REPO_ROOT, env=env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE)
        log = ServiceLog(process.stderr)  # type: ignore[arg-type]
        try:
            await log.wait_for("HTTP API on")
            yield ChildService(process, log, http_port, agi_port)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    await asyncio.wait_for(log.closed(), 5)
    assert not scan_text(log.text, "the service's log")


async def test_sigterm_drains_calls_refuses_writes_and_exits(
        child_service: ChildService, redis_client: aioredis.Redis) -> None:
    service = child_service
    # The service as shipped runs on uvloop (ivr/service.py): its signals and sockets are proven
    # here on that loop.
    assert "(event loop: uvloop)" in service.log.text
    pin = Pause()
    caller, call = service.call_held_at_the_pin_prompt(pin)
    await pin.reached.wait()

    service.process.send_signal(signal.SIGTERM)
    await service.log.wait_for("FastAGI: no new calls")  # logged once the listener is closed

    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", service.agi_port)
    async with aiohttp.ClientSession() as http:
        async with http.post(f"http://127.0.0.1:{service.http_port}/v1/payments",
                             json={"amount": "10.00"}) as response:
            assert response.status == 503
            assert (await response.json())["error_id"] == "service-stopping"
    assert service.process.returncode is None  # still draining: the call is at the PIN prompt

    pin.release.set()
    await call  # raises ScriptMismatch had the service cut the call off
    assert await asyncio.wait_for(service.process.wait(), 20) == 0
    await service.log.wait_for("stopped")

    [payment] = await PaymentStore(redis_client, pan_ttl_seconds=60).recent()
    assert payment.status == "approved" and caller.prompts[-1] == "goodbye"
    assert "cut off" not in service.log.text and "cutting off" not in service.log.text


async def test_a_second_sigterm_ends_the_drain(child_service: ChildService) -> None:
    service = child_service
    pin = Pause()  # never released
    caller, call = service.call_held_at_the_pin_prompt(pin)
    await pin.reached.wait()

    service.process.send_signal(signal.SIGTERM)
    await service.log.wait_for("FastAGI: no new calls")
    service.process.send_signal(signal.SIGTERM)

    assert await asyncio.wait_for(service.process.wait(), 20) == 0
    await service.log.wait_for("stopped")
    assert "signalled again: not waiting for calls any longer" in service.log.text
    assert "FastAGI: cutting off 1 calls still in progress" in service.log.text
    pin.release.set()
    with pytest.raises(ScriptMismatch, match="the IVR ended the call before step 8"):
        await call
