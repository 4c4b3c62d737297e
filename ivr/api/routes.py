"""The HTTP API: payments and health. Handlers are thin; the store and the checks do the work."""

from __future__ import annotations

import asyncio
import logging

from typing import Any

from aiohttp import web

from ivr.api.errors import HANDLED, APIError, InvalidParameter, error_answer
from ivr.api.keys import ACQUIRER, AMI, CPU_GUARD, REDIS, REFUNDS, STOPPING, STORE
from ivr.api.merchant_auth import authenticate_reader, require_operator
from ivr.api.params import limit_param
from ivr.payments.store import NoSuchPayment, PaymentState
from ivr.webhooks import webhook_attempts

__all__ = ["routes", "error_middleware", "MAX_BODY", "BodyTooLarge"]

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

# The most of a request body the service reads (aiohttp's client_max_size, counted after
# decompression). Every body it takes is one small JSON object (an order is under 2 KB); 1 MiB
# (aiohttp's default, made explicit) leaves room for a deeply nested one to get its 400 reason.
MAX_BODY = 1024 * 1024


class BodyTooLarge(APIError):
    status = 413
    error_id = "body-too-large"


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except HANDLED as exc:
        status, body = error_answer(exc)
        return web.json_response(body, status=status, headers=getattr(exc, "headers", None))
    except web.HTTPRequestEntityTooLarge:
        # aiohttp's own answer is text/plain: say it the way every other refusal is said.
        status, body = error_answer(BodyTooLarge(f"the body is larger than {MAX_BODY} bytes"))
        return web.json_response(body, status=status)


@routes.get("/v1/payments/{payment_id}")
async def get_payment(request: web.Request) -> web.Response:
    """For the operator (bearer token) any payment; for a merchant (signed) only its own."""
    merchant = await authenticate_reader(request)
    store = request.app[STORE]
    payment_id = request.match_info["payment_id"]
    payment = await store.get(payment_id)
    if merchant is not None and payment.merchant_id != merchant.id:
        raise NoSuchPayment(payment_id)  # another merchant's payment does not exist for you
    body = payment.to_json(history=await store.history(payment_id), internal=merchant is None)
    body["webhook_attempts"] = await webhook_attempts(request.app[REDIS], payment_id)
    if REFUNDS in request.app:  # its voids and refunds, what was given back and what is left
        body.update(await request.app[REFUNDS].summary(payment))
    return web.json_response(body)


@routes.get("/v1/payments")
async def list_payments(request: web.Request) -> web.Response:
    """Operator only (bearer token)."""
    require_operator(request)
    status = request.query.get("status")
    if status is not None and status not in {s.value for s in PaymentState}:
        raise InvalidParameter("status", f"must be one of {', '.join(s.value for s in PaymentState)}")
    payments = await request.app[STORE].recent(status=status, limit=limit_param(request))
    return web.json_response({"payments": [p.to_json() for p in payments]})


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """Each dependency's reachability; 200 only when all of them answer."""
    app = request.app

    async def redis_ok() -> bool:
        try:
            return bool(await asyncio.wait_for(app[REDIS].ping(), 2))
        except Exception:  # any failure means "down" here; the reason is in the service log
            log.warning("healthz: redis unreachable", exc_info=True)
            return False

    async def acquirer_ok() -> bool:
        try:
            return await asyncio.wait_for(app[ACQUIRER].echo(), 3)
        except Exception:
            log.warning("healthz: acquirer unreachable", exc_info=True)
            return False

    redis_up, acquirer_up, ami_up, asterisk = await asyncio.gather(
        redis_ok(), acquirer_ok(), app[AMI].ping(), app[AMI].asterisk_status())
    checks = {
        "redis": {"ok": redis_up},
        "acquirer": {"ok": acquirer_up},
        "ami": {"ok": ami_up},
        "asterisk": {"ok": asterisk is not None, **(asterisk or {})},
    }
    healthy = all(c["ok"] for c in checks.values())
    body: dict[str, Any] = {"ok": healthy, "checks": checks}
    if CPU_GUARD in app:
        # Said, not judged: refusing new calls is the machine protecting the calls it carries.
        guard = app[CPU_GUARD]
        body["admission"] = {
            "cpu_guard_percent": guard.busy_percent,
            "cpu_busy_percent": None if guard.busy_now is None else round(guard.busy_now, 1),
            "cpu_quota_cores": guard.quota_cores,
            "refusing_new_calls": guard.full}
    if STOPPING in request.app and request.app[STOPPING].is_set():
        # Draining: a load balancer must stop sending calls and orders here.
        healthy = body["ok"] = False
        body["stopping"] = True
    return web.json_response(body, status=200 if healthy else 503)
