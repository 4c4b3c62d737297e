"""The merchant API of callback payments: create, cancel, and the OpenAPI document.

Reading a payment (``GET /v1/payments/{id}``) is in ``routes.py``, shared with the operator.
Handlers are thin: ``merchant_auth`` says who is asking, ``payment_request`` checks the body,
the order service (``app[ORDERS]``) does the work.

Idempotency: a POST with ``Idempotency-Key`` reserves ``idem:{merchant}:{key}`` with SET NX
before anything is created, so of two concurrent identical requests only one reaches the order
service; the other waits for the first response and returns it. The key keeps the body's hash
and the response (status and body) for ``idempotency_ttl_seconds``: a payment, or the error
that ended the payment made for the request (``PaymentFailed``). A request refused before any
payment existed frees the key, so that it can be retried.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from ivr.api.errors import APIError, InvalidParameter, error_answer
from ivr.api.keys import MERCHANTS, ORDERS, REDIS, SETTINGS, STORE, WEBHOOKS
from ivr.api.merchant_auth import authenticate
from ivr.api.payment_request import UnsupportedMode, parse_order
from ivr.oneline.orders import TALK_THROUGH
from ivr.config import Settings
from ivr.merchants import Merchant
from ivr.orders import Order, PaymentFailed
from ivr.outbound import policy_from_setting
from ivr.payments.store import (TRANSITIONS, InvalidTransition, NoSuchPayment, Payment,
                                PaymentState)

__all__ = ["merchant_routes", "OPENAPI_FILE", "CANCELLABLE_STATES", "IdempotencyKeyReused",
           "IdempotencyKeyInUse", "checked_order", "idempotent_write", "submit_order", "cancel_order"]

log = logging.getLogger(__name__)
merchant_routes = web.RouteTableDef()

OPENAPI_FILE = Path(__file__).with_name("openapi.json")
# A payment can be cancelled until the cardholder starts keying the PIN.
CANCELLABLE_STATES = TRANSITIONS[PaymentState.CANCELLED]
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,128}")
# How long a retry waits for a concurrent first request with the same key to finish.
_IDEMPOTENCY_WAIT = 30.0


class IdempotencyKeyReused(APIError):
    status = 422
    error_id = "idempotency-key-reused"


class IdempotencyKeyInUse(APIError):
    status = 409
    error_id = "idempotency-key-in-use"


class OrdersUnavailable(APIError):
    status = 503
    error_id = "orders-unavailable"


def checked_order(raw: bytes, merchant: Merchant, settings: Settings) -> Order:
    """The order in a request body, by the API's rules and the merchant's own limit."""
    order = parse_order(raw, maximum=settings.max_payment)
    if order.mode == TALK_THROUGH and not settings.talkthrough_enabled:
        raise UnsupportedMode("mode", "talk-through payments are turned off on this platform "
                                      "(VOICEPAY_TALKTHROUGH); use oneline")
    if order.amount > merchant.max_amount:
        raise InvalidParameter("amount", f"must be at most {merchant.max_amount} for this merchant")
    # Webhooks go to public addresses only (SSRF); a name is judged again when it is connected to.
    if order.notify_url and (refusal := policy_from_setting(
            settings.outbound_allowed_networks).url_refusal(order.notify_url)):
        raise InvalidParameter("notify_url", f"must reach a public address: {refusal}")
    return order


async def submit_order(app: web.Application, merchant: Merchant, order: Order,
                       ) -> tuple[int, dict[str, Any]]:
    """Hand an order to the order service: (201, the payment) or the answer of a payment that
    failed at once. Shared by the merchant API and the agent console."""
    if ORDERS not in app:
        raise OrdersUnavailable("callback payments are not available on this server")
    # Counted here, once per request: a replay with the same Idempotency-Key never gets here.
    await app[MERCHANTS].count_order(merchant, order.amount)
    try:
        payment = await app[ORDERS].submit(merchant, order)
    except PaymentFailed as exc:
        # A payment exists (and is final): this answer is the request's outcome, which a
        # retry with the same Idempotency-Key gets again instead of a second payment.
        log.info("merchant %s: payment %s for order %s failed: %s", merchant.id,
                 exc.payment_id, order.merchant_order_id, exc)
        return error_answer(exc)
    log.info("merchant %s: payment %s created for order %s", merchant.id, payment.id,
             order.merchant_order_id)
    return 201, payment.to_json()


@merchant_routes.post("/v1/payments")
async def create_payment(request: web.Request) -> web.Response:
    app = request.app
    merchant = await authenticate(request)
    raw = await request.read()
    order = checked_order(raw, merchant, app[SETTINGS])
    return await idempotent_write(request, merchant, raw,
                                  functools.partial(submit_order, app, merchant, order))


async def idempotent_write(request: web.Request, merchant: Merchant, raw: bytes,
                           submit: Callable[[], Awaitable[tuple[int, dict[str, Any]]]],
                           ) -> web.Response:
    """``submit``'s answer, once per ``Idempotency-Key`` when the request has one: every merchant
    write (payments, voids, refunds) goes through here. The path is compared with the body, so
    one key on two payments' voids (both with an empty body) is a reuse, not a replay."""
    idempotency_key = request.headers.get("Idempotency-Key")
    if idempotency_key is None:
        status, body = await submit()
        return web.json_response(body, status=status)
    if not _IDEMPOTENCY_KEY.fullmatch(idempotency_key):
        raise InvalidParameter("Idempotency-Key", "must be 1 to 128 visible ASCII characters")
    request_hash = hashlib.sha256(request.path.encode() + b"\n" + raw).hexdigest()
    return await _idempotent(request, f"idem:{merchant.id}:{idempotency_key}", request_hash,
                             submit)


async def _idempotent(request: web.Request, key: str, body_hash: str, submit) -> web.Response:
    redis = request.app[REDIS]
    ttl = request.app[SETTINGS].idempotency_ttl_seconds
    reservation = json.dumps({"state": "pending", "body_hash": body_hash})
    # A reservation outlives a crashed request only briefly, so the key does not stay blocked.
    if await redis.set(key, reservation, nx=True, ex=int(2 * _IDEMPOTENCY_WAIT)):
        try:
            status, body = await submit()
        except BaseException:
            # Nothing was answered: free the key so that a retry can try again.
            await redis.delete(key)
            raise
        await redis.set(key, json.dumps({"state": "done", "body_hash": body_hash,
                                         "status": status, "body": body}), ex=ttl)
        return web.json_response(body, status=status)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + _IDEMPOTENCY_WAIT
    while True:
        raw = await redis.get(key)
        if raw is None:
            # The first request failed and freed the key meanwhile: this one takes it over.
            return await _idempotent(request, key, body_hash, submit)
        stored = json.loads(raw)
        if stored["body_hash"] != body_hash:
            raise IdempotencyKeyReused("this Idempotency-Key was used with a different body")
        if stored["state"] == "done":
            return web.json_response(stored["body"], status=stored["status"],
                                     headers={"Idempotent-Replayed": "true"})
        if loop.time() > deadline:
            raise IdempotencyKeyInUse("a request with this Idempotency-Key is still in progress")
        await asyncio.sleep(0.05)


@merchant_routes.post("/v1/payments/{payment_id}/cancel")
async def cancel_payment(request: web.Request) -> web.Response:
    merchant = await authenticate(request)
    payment = await cancel_order(request.app, merchant, request.match_info["payment_id"])
    return web.json_response(payment.to_json())


async def cancel_order(app: web.Application, merchant: Merchant, payment_id: str) -> Payment:
    """Cancel one of ``merchant``'s payments: shared by the merchant API and the agent console."""
    payment = await app[STORE].get(payment_id)
    if payment.merchant_id != merchant.id:
        raise NoSuchPayment(payment_id)  # another merchant's payment does not exist for you
    if payment.status not in {s.value for s in CANCELLABLE_STATES}:
        raise InvalidTransition(payment_id, payment.status, PaymentState.CANCELLED.value)
    if ORDERS not in app:
        raise OrdersUnavailable("callback payments are not available on this server")
    payment = await app[ORDERS].cancel(merchant, payment_id)
    log.info("merchant %s: payment %s cancelled", merchant.id, payment_id)
    if WEBHOOKS in app:
        await app[WEBHOOKS].enqueue(payment)  # idempotent: the order service may have done it
    return payment


@merchant_routes.get("/v1/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=OPENAPI_FILE.read_bytes(), content_type="application/json")
