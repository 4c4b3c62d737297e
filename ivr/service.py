"""The ivr service: one asyncio process with the HTTP API, the FastAGI server and the AMI client.

Everything with a lifetime is a ``cleanup_ctx`` generator below: start, ``yield``, stop, in one
place, in dependency order (aiohttp stops them in reverse).
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from aiohttp import web

from ivr.acquirer.client import AcquirerClient
from ivr.agi.server import FastAgiServer
from ivr.ami.client import AmiClient
from ivr.api.keys import ACQUIRER, AMI, REDIS, SETTINGS, STORE
from ivr.api.routes import error_middleware, routes
from ivr.config import Settings, load_settings
from ivr.crypto.keys import load_ivr_keys
from ivr.crypto.pan_vault import PanVault
from ivr.flows.authorization import Authorizer
from ivr.flows.context import FlowContext
from ivr.flows.selfservice import selfservice
from ivr.prompts import Manifest
from ivr.store.payments import PaymentStore

__all__ = ["create_app", "main", "configure_logging"]

log = logging.getLogger("ivr.service")


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # aiohttp's access log would print query strings; ours carry no card data, but keep it quiet.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


async def _redis_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    client = aioredis.Redis.from_url(settings.redis_url)
    app[REDIS] = client
    app[STORE] = PaymentStore(client, pan_ttl_seconds=settings.pan_ttl_seconds)
    yield
    await client.aclose()


async def _acquirer_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app[ACQUIRER] = AcquirerClient(settings.acquirer_host, settings.acquirer_port,
                                   timeout=settings.acquirer_timeout)
    yield


async def _ami_ctx(app: web.Application) -> AsyncIterator[None]:
    client = AmiClient(app[SETTINGS])
    await client.start()
    app[AMI] = client
    yield
    await client.close()


async def _fastagi_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    keys = load_ivr_keys(settings.ivr_keys_file)
    ctx = FlowContext(
        settings=settings,
        store=app[STORE],
        vault=PanVault(keys.pan_key),
        pek=keys.pek,
        authorizer=Authorizer(app[ACQUIRER], app[STORE], terminal_id=settings.terminal_id,
                              merchant_id=settings.merchant_id),
        manifest=Manifest.load(),
    )
    # What the dialplan can reach: AGI(agi://host:port/<name>).
    server = FastAgiServer({
        "selfservice": functools.partial(selfservice, ctx=ctx),
    })
    await server.start(settings.agi_host, settings.agi_port)
    yield
    await server.stop()


def create_app(settings: Settings | None = None) -> web.Application:
    app = web.Application(middlewares=[error_middleware])
    app[SETTINGS] = settings or load_settings()
    app.add_routes(routes)
    app.cleanup_ctx.extend([_redis_ctx, _acquirer_ctx, _ami_ctx, _fastagi_ctx])
    return app


def main() -> None:
    settings = load_settings()
    configure_logging(settings.log_level)
    web.run_app(create_app(settings), host=settings.http_host, port=settings.http_port,
                print=lambda *_: log.info("HTTP API on http://%s:%d", settings.http_host,
                                          settings.http_port))


if __name__ == "__main__":
    main()
