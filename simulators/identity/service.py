"""What both identity simulators share: the check endpoint with its latency and failure modes, the
loopback-only admin endpoint, ``/healthz``, and running as a process.

Failure modes (``Mode``), set at start by ``VOICEPAY_POLICE_MODE``/``VOICEPAY_BINDING_MODE`` and at
run time by ``PUT /admin/mode`` with ``{"mode": "..."}`` (``GET`` reads it):

- ``ok``: the answer from the test registry after latency ± jitter;
- ``down``: ``503`` at once, as a provider behind a load balancer with no backend;
- ``slow``: the answer only after ``VOICEPAY_IDENTITY_SLOW_S`` (longer than any client waits);
- ``garbage``: ``200`` with a body that is not the contract's JSON.

A provider that refuses connections is a stopped process (the stack's ``stop_component``).
``/admin/mode`` and ``/healthz`` ignore the mode: a simulated outage must stay switchable, and the
process is healthy while it simulates one. Values arrive in the POST body only and are never
logged; a log line names the service and its answer word.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import signal
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlparse

from aiohttp import web

from ivr.log import configure_logging
from simulators.identity.settings import IdentitySettings, load_identity_settings

__all__ = ["Mode", "Behaviour", "CheckSpec", "identity_app", "start_site", "run_service", "main"]

log = logging.getLogger("simulators.identity")

# What the "garbage" mode answers: cut-off JSON under a JSON content type, as a crashing backend
# behind a proxy might send.
GARBAGE_BODY = b'{"result": "ma'


class Mode(StrEnum):
    OK = "ok"
    DOWN = "down"
    SLOW = "slow"
    GARBAGE = "garbage"


@dataclass
class Behaviour:
    """How the service answers now; ``mode`` changes at run time, the rest is from its settings."""

    mode: Mode
    latency_s: float
    jitter_s: float
    slow_s: float

    @classmethod
    def from_settings(cls, settings: IdentitySettings, mode: str) -> Behaviour:
        return cls(Mode(mode), settings.latency_ms / 1000, settings.jitter_ms / 1000, settings.slow_s)

    def delay(self) -> float:
        if self.mode is Mode.SLOW:
            return self.slow_s
        return max(0.0, random.uniform(self.latency_s - self.jitter_s, self.latency_s + self.jitter_s))


@dataclass(frozen=True)
class CheckSpec:
    """One service's check: its name, the URL it serves, its body fields and its answer."""

    name: str                                  # "police" | "binding": in logs and /healthz
    url: str                                   # where it listens and the path it serves
    required: tuple[str, ...]
    optional: tuple[str, ...]
    answer: Callable[..., str]                 # the body's fields as keyword arguments → answer


BEHAVIOUR = web.AppKey("behaviour", Behaviour)
SPEC = web.AppKey("spec", CheckSpec)


def _bad_request(reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=400)


async def _check(request: web.Request) -> web.StreamResponse:
    spec, behaviour = request.app[SPEC], request.app[BEHAVIOUR]
    if behaviour.mode is Mode.DOWN:
        return web.json_response({"error": "service unavailable"}, status=503)
    await asyncio.sleep(behaviour.delay())
    if behaviour.mode is Mode.GARBAGE:
        return web.Response(body=GARBAGE_BODY, content_type="application/json")
    try:
        body = await request.json()
    except ValueError:
        return _bad_request("body is not JSON")
    if not isinstance(body, dict):
        return _bad_request("body is not a JSON object")
    missing = [f for f in spec.required if not isinstance(body.get(f), str) or not body[f]]
    wrong = [f for f in spec.optional if f in body and not isinstance(body[f], str)]
    if missing or wrong:
        return _bad_request(f"fields must be strings: {', '.join(missing + wrong)}")
    answer = spec.answer(**{f: body[f] for f in (*spec.required, *spec.optional) if f in body})
    log.info("%s check answered %s", spec.name, answer)
    return web.json_response({"result": answer})


def _loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


async def _admin_mode(request: web.Request) -> web.Response:
    if not _loopback(request.remote):
        return web.json_response({"error": "the admin endpoint answers on loopback only"}, status=403)
    spec, behaviour = request.app[SPEC], request.app[BEHAVIOUR]
    if request.method == "PUT":
        try:
            body = await request.json()
            behaviour.mode = Mode(body["mode"])
        except (ValueError, KeyError, TypeError):
            return _bad_request(f"body must be {{\"mode\": one of {[m.value for m in Mode]}}}")
        log.warning("%s simulator: mode now %s", spec.name, behaviour.mode)
    return web.json_response({"mode": behaviour.mode.value})


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True, "service": request.app[SPEC].name,
                              "mode": request.app[BEHAVIOUR].mode.value})


def identity_app(spec: CheckSpec, behaviour: Behaviour) -> web.Application:
    app = web.Application(client_max_size=64 * 1024)  # a check body is a few fields
    app[SPEC], app[BEHAVIOUR] = spec, behaviour
    app.router.add_post(urlparse(spec.url).path or "/", _check)
    app.router.add_route("GET", "/admin/mode", _admin_mode)
    app.router.add_route("PUT", "/admin/mode", _admin_mode)
    app.router.add_get("/healthz", _healthz)
    return app


async def start_site(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve ``app``; returns its runner (``cleanup()`` stops it) and the bound port (``port`` 0:
    a free one). A client that gives up cancels its slow answer, so a stop never waits on one."""
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner, int(runner.addresses[0][1])


async def run_service(app: web.Application) -> None:
    """Run ``app`` as a process on its spec's URL until SIGTERM or SIGINT."""
    spec = app[SPEC]
    url = urlparse(spec.url)
    runner, port = await start_site(app, url.hostname or "127.0.0.1", url.port or 80)
    log.info("%s simulator listening on %s:%s (mode %s)", spec.name, url.hostname, port,
             app[BEHAVIOUR].mode)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("%s simulator stopping", spec.name)
        await runner.cleanup()


def main(build: Callable[[IdentitySettings], web.Application]) -> int:
    """A simulator process: settings from the environment, ``build`` makes its app."""
    settings = load_identity_settings()
    configure_logging(settings.log_level)
    asyncio.run(run_service(build(settings)))
    return 0
