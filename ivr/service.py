"""The ivr service: one asyncio process with the HTTP API, the FastAGI server and the AMI client.

Everything with a lifetime is a ``cleanup_ctx`` generator below: start, ``yield``, stop, in one
place, in dependency order (aiohttp stops them in reverse).

SIGTERM (or Ctrl-C) stops it gracefully: API writes are refused with 503 and no new call is
taken, calls in progress get up to ``VOICEPAY_DRAIN_SECONDS`` to finish, then everything stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
import uvloop
from aiohttp import web

from ivr.hostlink.acquirer_client import AcquirerClient
from ivr.agi.server import FastAgiServer, parse_networks
from ivr.ami.client import AmiClient
from ivr.cpu_guard import CpuGuard, find_cpu_quota, guard_admission
from ivr.api.admin_review_routes import admin_review_routes
from ivr.api.keys import (ACQUIRER, AMI, CPU_GUARD, DIALER, IDENTITY, MERCHANTS, OPERATOR_TOKEN, ORDERS, REDIS, REVIEWS,
                          REFUNDS, RISK_AUDIT, RISK_ENGINE, RISK_LISTS, RISK_RULES, SETTINGS, STOPPING,
                          STORE, WEBHOOKS)
from ivr.api.admin_risk_routes import admin_risk_routes
from ivr.api.merchant_auth import ensure_operator_token
from ivr.api.admin_merchant_routes import admin_merchant_routes
from ivr.api.merchant_routes import merchant_routes
from ivr.api.rate_limits import rate_limit_middleware, rate_limits_ctx
from ivr.api.errors import APIError
from ivr.api.refund_routes import refund_routes
from ivr.api.settlement_routes import settlement_ctx, settlement_routes
from ivr.api.routes import MAX_BODY, error_middleware, routes
from ivr.config import Settings, load_settings
from ivr.console.routes import STATIC_DIR, console_ctx, console_routes
from ivr.crypto.keyring import KeyFileWatch
from ivr.crypto.keys import IvrKeys, load_ivr_keys
from ivr.crypto.pan_vault import PanVault
from ivr.paying.ask_again import AskAgain
from ivr.redis_pool import redis_client
from ivr.paying.authorization import Authorizer
from ivr.log import configure_logging
from ivr.paying.context import FlowContext
from ivr.callback.flow import callback
from ivr.selfservice.flow import lines_busy, selfservice
from ivr.oneline.flow import oneline
from ivr.oneline.orders import RETURNING_KEY, OnelineOrders, Orders, ReturningCardholders
from ivr.oneline.switch import OnelineSwitch
from ivr.callback.dialer import Dialer
from ivr.callback.cardholder_language import CardholderLanguages
from ivr.callback.orders import CallbackOrders
from ivr.merchants import MerchantRegistry
from ivr.merchant_store import MerchantStore
from ivr.periodic import run_periodically
from ivr.payments.due_work import worker_name
from ivr.hostlink.bin_table import PublishedBins
from ivr.paying.id_step_up import IdDigests
from ivr.risk.gate import RiskGate
from ivr.risk.review import ReviewDesk
from ivr.payments.recovery import RecoverySweep, deadlines_from
from ivr.payments.retention import DAY, RetentionSweep
from ivr.payments.store import Payment, PaymentStore
from ivr.periodic import run_periodically
from ivr.refunds.model import Refund
from ivr.refunds.service import RefundService
from ivr.refunds.store import RefundStore
from ivr.risk.audit import DECISIONS, LISTS, RULES, RiskAudit
from ivr.risk.decision import BindingProvider, IdentityProvider
from ivr.risk.engine import RulesRiskEngine
from ivr.risk.identity import identity_providers
from ivr.risk.lists import RiskLists
from ivr.risk.rules import RuleBook
from ivr.risk.subjects import SubjectDigester
from ivr.risk.velocity import Velocity
from ivr.prompts import Manifest
from ivr.spoken_names import CACHE_SUBDIR, SpokenNames
from ivr.webhooks import WebhookNotifier

__all__ = ["create_app", "build_risk_engine", "drain", "serve", "main"]

log = logging.getLogger("ivr.service")

AGI_SERVER = web.AppKey("agi_server", FastAgiServer)
# The IVR's key file, re-read when `voicepay-keys` rotates or retires a key (ivr/crypto/keyring.py).
IVR_KEYS = web.AppKey("ivr_keys", KeyFileWatch[IvrKeys])
# How long start-up waits for the seed merchants to be in Redis before it goes on without them.
_SEED_WAIT_S = 5.0


class ServiceStopping(APIError):
    status = 503
    error_id = "service-stopping"


@web.middleware
async def _refuse_writes_while_stopping(request: web.Request, handler) -> web.StreamResponse:
    """A payment created now could not be called back or switched by this instance."""
    if request.method not in ("GET", "HEAD", "OPTIONS") and request.app[STOPPING].is_set():
        raise ServiceStopping("the service is stopping; retry in a moment or on another instance")
    return await handler(request)


async def _keys_ctx(app: web.Application) -> AsyncIterator[None]:
    """The IVR's keys: every part asks for its role's ring on each use, so a rotation or a
    retirement applies without a restart. Watching the file's mtime rather than a Redis nudge:
    the acquirer simulator, which has no Redis, picks up a PEK rotation the same way, and a key
    change needs no second channel that could be missed or forged."""
    app[IVR_KEYS] = KeyFileWatch(app[SETTINGS].ivr_keys_file, load_ivr_keys)
    yield


async def _redis_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    client = redis_client(settings)
    app[REDIS] = client
    store = PaymentStore(client, pan_ttl_seconds=settings.pan_ttl_seconds)
    app[STORE] = store
    yield
    await client.aclose()


async def _merchant_api_ctx(app: web.Application) -> AsyncIterator[None]:
    """The merchant registry (seeded at first start), the operator token (generated at first
    use), and the webhook worker."""
    settings = app[SETTINGS]
    merchants = MerchantStore.from_settings(app[REDIS], settings, app[IVR_KEYS].ring("box_key"))
    # Idempotent: only seed merchants not in Redis yet are added (every instance may run it).
    # Done before the API answers; if Redis is away at start, as soon as it is back.
    seeding = asyncio.create_task(merchants.seed_when_reachable(MerchantRegistry.load(settings)),
                                  name="merchant-seed")
    await asyncio.wait({seeding}, timeout=_SEED_WAIT_S)
    app[MERCHANTS] = merchants
    app[OPERATOR_TOKEN] = ensure_operator_token(settings)
    notifier = WebhookNotifier(app[REDIS], app[MERCHANTS], settings)
    app[WEBHOOKS] = notifier
    # Every final state, whoever causes it (call flow, dialer, cancel), notifies the merchant.
    app[STORE].on_final = notifier.enqueue
    worker = asyncio.create_task(notifier.run(), name="webhooks")
    # After a box key rotation every merchant's secrets move to the new key within a period, so
    # the old key can then be retired (ivr/crypto/secret_box.py).
    resealing = asyncio.create_task(
        run_periodically(merchants.reseal_all, settings.recovery_period_s, log,
                         "resealing merchant secrets"), name="merchant-reseal")
    yield
    notifier.stop()
    await asyncio.wait({worker}, timeout=settings.webhook_timeout + 1)
    for task in (worker, seeding, resealing):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _risk_ctx(app: web.Application) -> AsyncIterator[None]:
    """Risk control: the rules file (a broken one stops the start: there is nothing to keep),
    reloaded when it changes, the rules every instance on this Redis runs; the lists and the audit
    streams the admin API works on, trimmed by the retention settings."""
    settings = app[SETTINGS]
    audit = RiskAudit(app[REDIS], keep_s={DECISIONS: settings.retention_days * DAY,
                                          LISTS: settings.retention_days * DAY,
                                          RULES: settings.record_retention_days * DAY})
    app[RISK_AUDIT] = audit
    book = RuleBook(settings.risk_rules_file, audit, app[REDIS],
                    origin=worker_name(settings.instance_id))
    await book.start()
    app[RISK_RULES] = book
    digester = SubjectDigester(app[IVR_KEYS].ring("cardholder_key"))
    app[RISK_LISTS] = RiskLists(app[REDIS], digester, audit)
    tasks = {asyncio.create_task(book.watch(settings.risk_rules_poll_s), name="risk-rules"),
             asyncio.create_task(audit.run_trim(settings.retention_period_s), name="risk-audit")}
    async with contextlib.AsyncExitStack() as stack:
        if IDENTITY not in app:  # tests may put providers answering as told in before start-up
            app[IDENTITY] = await stack.enter_async_context(identity_providers(settings))
        if RISK_ENGINE not in app:  # tests may put a scripted engine in before start-up
            # The one place the engine every order (callback, one-line, self-service) passes is chosen.
            app[RISK_ENGINE] = build_risk_engine(app, app[IDENTITY].police, app[IDENTITY].binding)
        yield
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def build_risk_engine(app: web.Application, identity: IdentityProvider,
                      binding: BindingProvider) -> RulesRiskEngine:
    """The rules engine over this app's running rules, lists and audit (after ``_risk_ctx``)."""
    settings = app[SETTINGS]
    lists = app[RISK_LISTS]
    return RulesRiskEngine(app[RISK_RULES], lists, Velocity(app[REDIS]), app[RISK_AUDIT],
                           lists.digester, identity, binding,
                           provider_timeout_s=settings.identity_timeout_s)


async def _acquirer_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app[ACQUIRER] = AcquirerClient(settings.acquirer_host, settings.acquirer_port,
                                   timeout=settings.acquirer_timeout)
    yield


async def _ami_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    client = AmiClient(settings)
    await client.start()
    app[AMI] = client
    # A wrong setting stops the start here.
    guard = CpuGuard(settings.admit_cpu_busy_percent, quota=find_cpu_quota())
    app[CPU_GUARD] = guard
    guarding = None
    if not guard.off:
        if guard.quota_cores is not None:
            log.info("CPU guard: this service's cgroup has a quota of %.2f cores; it is watched "
                     "with the machine", guard.quota_cores)
        guarding = asyncio.create_task(guard_admission(guard, client), name="cpu-guard")
    yield
    if guarding is not None:
        guarding.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await guarding
    await client.close()


async def _calls_ctx(app: web.Application) -> AsyncIterator[None]:
    """The call side: the dialer, the one-line switch, the order service, the FastAGI flows."""
    settings = app[SETTINGS]
    keys = app[IVR_KEYS]
    vault = PanVault(keys.ring("pan_key"))
    dialer = Dialer(app[AMI], app[STORE], app[REDIS], settings, merchants=app[MERCHANTS])
    app[DIALER] = dialer
    dialer.start()
    settings.talkthrough_enabled  # a wrong value stops the start here
    switch = OnelineSwitch(app[AMI], prompts_to_agent=settings.talkthrough_prompts_to_agent)
    returning = ReturningCardholders(app[REDIS], keys.ring("cardholder_key"))
    risk = RiskGate(app[RISK_ENGINE], IdDigests(keys.ring("cardholder_key")))
    app[REVIEWS] = ReviewDesk(app[STORE], dialer)
    languages = CardholderLanguages(app[REDIS], keys.ring("cardholder_key"),
                                    ttl_seconds=int(settings.retention_days * 86400))
    callback_orders = CallbackOrders(app[STORE], vault, settings.bin_table_file, dialer, risk,
                                     languages)
    if ORDERS not in app:  # API tests put a fake order service in before start-up
        app[ORDERS] = Orders(app[STORE], callback_orders,
                             OnelineOrders(app[STORE], callback_orders, switch,
                                           returning, settings.oneline_max))
    ctx = FlowContext(
        settings=settings,
        store=app[STORE],
        vault=vault,
        pek=keys.ring("pek"),
        authorizer=Authorizer(app[ACQUIRER], app[STORE], terminal_id=settings.terminal_id,
                              merchant_id=settings.merchant_id, cvv_key=keys.ring("cvv_key"),
                              on_approved=returning.remember),
        manifest=(manifest := Manifest.load()),
        oneline=switch,
        merchants=app[MERCHANTS],
        names=SpokenNames(settings.var_dir / CACHE_SUBDIR, manifest.voices),
        risk=risk,
        bins=PublishedBins(settings.bin_table_file),
        ask_again=AskAgain(app[REDIS], app[STORE]),
    )
    # What the dialplan can reach: AGI(agi://host:port/<name>).
    server = FastAgiServer({
        "selfservice": functools.partial(selfservice, ctx=ctx),
        "callback": functools.partial(callback, ctx=ctx),
        "oneline": functools.partial(oneline, ctx=ctx),
    }, allowed_peers=parse_networks(settings.agi_allowed_peers),
        max_sessions=settings.agi_max_sessions,
        busy={"selfservice": functools.partial(lines_busy, ctx=ctx)})
    await server.start(settings.agi_host, settings.agi_port)
    app[AGI_SERVER] = server
    yield
    await server.stop()  # after drain(): whatever outlasted the drain time is cut off now
    await dialer.stop()


async def _recovery_ctx(app: web.Application) -> AsyncIterator[None]:
    """The recovery sweep: at start, then every period, settles payments a dead process or a
    vanished call left half-way (ivr/payments/recovery.py)."""
    settings = app[SETTINGS]
    sweep = RecoverySweep(app[STORE], app[REDIS], app[ACQUIRER],
                          PanVault(app[IVR_KEYS].ring("pan_key")),
                          deadlines_from(settings), ami=app[AMI], dialer=app[DIALER],
                          reviews=app[REVIEWS])
    task = asyncio.create_task(sweep.run(settings.recovery_period_s), name="recovery")
    yield
    # A reversal cut short here is sent again by the next sweep, of this or another instance.
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _refunds_ctx(app: web.Application) -> AsyncIterator[None]:
    """Voids and refunds (ivr/refunds/), and their sweep: at start, then every recovery period,
    a lost answer is reversed until the acquirer acknowledges it, on any instance."""
    settings = app[SETTINGS]

    async def tell_merchant(payment: Payment, refund: Refund) -> None:
        # The payment by its ids only: a record kept after the payment's retention (which
        # deletes the payment's own webhook) must hold no cardholder data.
        about = {"id": payment.id, "merchant_order_id": payment.merchant_order_id,
                 "amount": payment.amount.yuan, "status": payment.status.value}
        await app[WEBHOOKS].enqueue_event(refund.id, f"{refund.kind}.{refund.state}",
                                          {"refund": refund.to_json(), "payment": about}, payment)

    service = RefundService(app[STORE], RefundStore(app[REDIS]), app[ACQUIRER],
                            cutoff=settings.cutoff, window_days=settings.refund_window_days,
                            answer_deadline_s=settings.recovery_authorizing_deadline_s,
                            on_final=tell_merchant)
    app[REFUNDS] = service
    task = asyncio.create_task(run_periodically(service.settle_due, settings.recovery_period_s,
                                                log, "refund sweep"), name="refund-sweep")
    yield
    # A reversal cut short here is sent again by the next sweep, of this or another instance.
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _retention_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    sweep = RetentionSweep(app[REDIS], retention_days=settings.retention_days,
                           record_retention_days=settings.record_retention_days,
                           recent_index_max=settings.recent_index_max,
                           aged_sets=(RETURNING_KEY,))
    task = asyncio.create_task(sweep.run(settings.retention_period_s), name="retention")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def create_app(settings: Settings | None = None) -> web.Application:
    app = web.Application(middlewares=[error_middleware, rate_limit_middleware,
                                       _refuse_writes_while_stopping],
                          client_max_size=MAX_BODY)
    app[SETTINGS] = settings or load_settings()
    app[STOPPING] = asyncio.Event()
    app.add_routes(routes)
    app.add_routes(merchant_routes)
    app.add_routes(admin_risk_routes)
    app.add_routes(admin_merchant_routes)
    app.add_routes(admin_review_routes)
    app.add_routes(refund_routes)
    app.add_routes(settlement_routes)
    app.add_routes(console_routes)
    app.router.add_static("/console/static", STATIC_DIR)
    app.cleanup_ctx.extend([_keys_ctx, _redis_ctx, rate_limits_ctx, _retention_ctx, _merchant_api_ctx,
                            _risk_ctx, console_ctx, _acquirer_ctx, _ami_ctx, _calls_ctx, _recovery_ctx,
                            _refunds_ctx, settlement_ctx])
    return app


async def drain(app: web.Application) -> None:
    """The graceful part of a stop: refuse API writes and new calls, and give the calls in
    progress up to ``drain_seconds`` to finish. The app's cleanup stops the rest afterwards."""
    settings = app[SETTINGS]
    app[STOPPING].set()
    app[DIALER].stop_claiming()
    log.info("stopping: API writes refused, no new calls; calls in progress have up to %gs",
             settings.drain_seconds)
    await app[AGI_SERVER].stop(drain_seconds=settings.drain_seconds)


async def serve(app: web.Application) -> None:
    """Run the service until SIGTERM or SIGINT, then drain and stop it.

    Not aiohttp's ``run_app``: it closes the HTTP listener first, so the API could not answer
    503 while calls drain. A second signal ends the drain early; calls still in progress are then
    cut off (an authorization in flight is still settled, see ``ivr.paying.pin_entry``).
    """
    settings = app[SETTINGS]
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.http_host, settings.http_port).start()
        log.info("HTTP API on http://%s:%d (event loop: %s)", settings.http_host,
                 settings.http_port, type(asyncio.get_running_loop()).__module__.split(".")[0])
        signalled = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(signum, signalled.set)
        await signalled.wait()
        signalled.clear()
        draining = asyncio.create_task(drain(app))
        second_signal = asyncio.create_task(signalled.wait())
        await asyncio.wait({draining, second_signal}, return_when=asyncio.FIRST_COMPLETED)
        if not draining.done():
            log.warning("signalled again: not waiting for calls any longer")
        for task in (draining, second_signal):
            task.cancel()
        await asyncio.gather(draining, second_signal, return_exceptions=True)
    finally:
        await runner.cleanup()
    log.info("stopped")


def main() -> None:
    settings = load_settings()
    configure_logging(settings.log_level)
    # libuv's event loop: the same asyncio API, with the sockets of every call (FastAGI, Redis,
    # AMI, the acquirer) handled in C; README "Payment calls per second" has the before and after.
    uvloop.run(serve(create_app(settings)))


if __name__ == "__main__":
    main()
