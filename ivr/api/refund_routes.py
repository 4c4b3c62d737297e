"""The merchant API of voids and refunds (ivr/refunds/service.py does the work).

    POST /v1/payments/{id}/void       {"reason": "..."} (optional; an empty body will do)
    POST /v1/payments/{id}/refunds    {"amount": "12.34", "reason": "..."}
    GET  /v1/payments/{id}/refunds    the payment's voids and refunds, refunded and refundable

Writes are signed and idempotent like every merchant write (``idempotent_write``). A record the
acquirer settled (succeeded, declined, or failed before it left) is 201 with its state; one whose
answer was lost and whose reversal is not acknowledged yet is 202 ``reversal_pending`` (a webhook
follows). A refusal before anything was sent is a 4xx naming why (ivr/api/errors.py).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ivr.api.errors import APIError, InvalidParameter
from ivr.api.keys import REFUNDS
from ivr.api.merchant_auth import authenticate, authenticate_reader
from ivr.api.merchant_routes import idempotent_write
from ivr.api.payment_request import parse_json_object
from ivr.money import Money
from ivr.refunds.model import Refund
from ivr.refunds.service import RefundService

__all__ = ["refund_routes", "parse_refund", "parse_void"]

refund_routes = web.RouteTableDef()

_REASON_MAX = 128


class RefundsUnavailable(APIError):
    status = 503
    error_id = "refunds-unavailable"


def _body(raw: bytes, allowed: set[str]) -> dict[str, Any]:
    body = parse_json_object(raw, what="a void or refund") if raw.strip() else {}
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidParameter(unknown[0][:40], "unknown field")
    return body


def _reason(body: dict[str, Any]) -> str:
    reason = body.get("reason", "")
    if not (isinstance(reason, str) and len(reason) <= _REASON_MAX and reason.isprintable()):
        raise InvalidParameter("reason", f"must be text of at most {_REASON_MAX} characters")
    return reason


def parse_void(raw: bytes) -> str:
    """The reason in a void's body (which may be empty)."""
    return _reason(_body(raw, {"reason"}))


def parse_refund(raw: bytes) -> tuple[Money, str]:
    """The amount and reason in a refund's body, or InvalidParameter naming the bad field."""
    body = _body(raw, {"amount", "reason"})
    if "amount" not in body:
        raise InvalidParameter("amount", "is required")
    try:
        amount = Money.parse(body["amount"])
    except ValueError as exc:
        raise InvalidParameter("amount", str(exc)) from None
    if amount.fen == 0:
        raise InvalidParameter("amount", "must be more than 0.00")
    return amount, _reason(body)


def _answer(refund: Refund) -> tuple[int, dict[str, Any]]:
    return (201 if refund.is_final else 202), refund.to_json()


def _service(request: web.Request) -> RefundService:
    if REFUNDS not in request.app:
        raise RefundsUnavailable("voids and refunds are not available on this server")
    return request.app[REFUNDS]


@refund_routes.post("/v1/payments/{payment_id}/void")
async def void_payment(request: web.Request) -> web.Response:
    merchant = await authenticate(request)
    raw = await request.read()
    reason = parse_void(raw)
    service = _service(request)

    async def submit() -> tuple[int, dict[str, Any]]:
        return _answer(await service.void(merchant.id, request.match_info["payment_id"], reason))

    return await idempotent_write(request, merchant, raw, submit)


@refund_routes.post("/v1/payments/{payment_id}/refunds")
async def refund_payment(request: web.Request) -> web.Response:
    merchant = await authenticate(request)
    raw = await request.read()
    amount, reason = parse_refund(raw)
    service = _service(request)

    async def submit() -> tuple[int, dict[str, Any]]:
        return _answer(await service.refund(merchant.id, request.match_info["payment_id"], amount,
                                            reason))

    return await idempotent_write(request, merchant, raw, submit)


@refund_routes.get("/v1/payments/{payment_id}/refunds")
async def list_refunds(request: web.Request) -> web.Response:
    """For a merchant (signed) its own payment's; for the operator (bearer token) any."""
    merchant = await authenticate_reader(request)
    body = await _service(request).of_payment(merchant.id if merchant else None,
                                              request.match_info["payment_id"])
    return web.json_response({"payment_id": request.match_info["payment_id"], **body})
