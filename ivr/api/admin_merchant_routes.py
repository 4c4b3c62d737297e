"""The operator's merchant admin API (bearer token): admit, list, show, suspend, reactivate,
limits, display names, key and webhook secret rotation, and each merchant's audit trail.

    POST /v1/admin/merchants                               admit: 201, the secrets shown once
    GET  /v1/admin/merchants                               list
    GET  /v1/admin/merchants/{id}                          show
    POST /v1/admin/merchants/{id}/suspend                  {"reason": "..."} optional
    POST /v1/admin/merchants/{id}/reactivate               {"reason": "..."} optional
    POST /v1/admin/merchants/{id}/limits                   {"max_amount": "500.00", "daily_max": ...}
    POST /v1/admin/merchants/{id}/names                    {"name_en"|"name_zh"|"name_yue": ...}
    POST /v1/admin/merchants/{id}/rotate-key               the new key shown once; the old one
                                                           verifies for merchant_key_grace_s
    POST /v1/admin/merchants/{id}/rotate-webhook-secret    the new secret shown once
    GET  /v1/admin/merchants/{id}/audit                    newest first

Handlers are thin: the registry (``ivr/merchant_store.py``) checks every field and raises domain
errors, which ``ivr/api/errors.py`` turns into 4xx answers with a reason. A secret is in a
response body only the once it is made (with ``Cache-Control: no-store``), never in a log line.
"""

from __future__ import annotations

import time
import unicodedata
from typing import Any

from aiohttp import web

from ivr.api.errors import InvalidParameter
from ivr.api.keys import MERCHANTS
from ivr.api.merchant_auth import require_operator
from ivr.api.payment_request import parse_json_object
from ivr.merchant_store import iso_seconds
from ivr.merchants import Merchant

__all__ = ["admin_merchant_routes"]

admin_merchant_routes = web.RouteTableDef()

_BASE = "/v1/admin/merchants"
_REASON_MAX = 200
_NO_STORE = {"Cache-Control": "no-store"}


def merchant_json(merchant: Merchant) -> dict[str, Any]:
    """A merchant as the operator sees it: no secret, and until when a replaced key verifies."""
    body = merchant.to_public()
    until = merchant.previous_key_until
    body["previous_key_valid_until"] = (iso_seconds(until) if len(merchant.signing_keys(time.time())) > 1
                                        else None)
    return body


async def _body(request: web.Request, *, optional: bool = False) -> dict[str, Any]:
    raw = await request.read()
    if optional and not raw.strip():
        return {}
    return parse_json_object(raw, what="a merchant change")


async def _reason(request: web.Request) -> str:
    body = await _body(request, optional=True)
    unknown = set(body) - {"reason"}
    if unknown:
        raise InvalidParameter("body", "only a reason may be given")
    reason = body.get("reason", "")
    if not isinstance(reason, str) or len(reason) > _REASON_MAX or any(
            unicodedata.category(c) in ("Cc", "Cf") for c in reason):
        raise InvalidParameter("reason", f"must be text of at most {_REASON_MAX} characters")
    return reason


def _id(request: web.Request) -> str:
    return request.match_info["merchant_id"]


@admin_merchant_routes.post(_BASE)
async def admit(request: web.Request) -> web.Response:
    require_operator(request)
    merchant, key, webhook_secret = await request.app[MERCHANTS].admit(await _body(request))
    return web.json_response({
        "merchant": merchant_json(merchant),
        "api_key": key.hex(),
        "webhook_secret": webhook_secret.hex(),
        "note": "the API key and webhook secret are shown only now: give them to the merchant",
    }, status=201, headers=_NO_STORE)


@admin_merchant_routes.get(_BASE)
async def list_merchants(request: web.Request) -> web.Response:
    require_operator(request)
    merchants = await request.app[MERCHANTS].list()
    return web.json_response({"merchants": [merchant_json(m) for m in merchants]})


@admin_merchant_routes.get(_BASE + "/{merchant_id}")
async def show(request: web.Request) -> web.Response:
    require_operator(request)
    return web.json_response(merchant_json(await request.app[MERCHANTS].get(_id(request))))


@admin_merchant_routes.post(_BASE + "/{merchant_id}/suspend")
async def suspend(request: web.Request) -> web.Response:
    require_operator(request)
    merchant = await request.app[MERCHANTS].suspend(_id(request), reason=await _reason(request))
    return web.json_response(merchant_json(merchant))


@admin_merchant_routes.post(_BASE + "/{merchant_id}/reactivate")
async def reactivate(request: web.Request) -> web.Response:
    require_operator(request)
    merchant = await request.app[MERCHANTS].reactivate(_id(request), reason=await _reason(request))
    return web.json_response(merchant_json(merchant))


@admin_merchant_routes.post(_BASE + "/{merchant_id}/limits")
async def limits(request: web.Request) -> web.Response:
    require_operator(request)
    merchant = await request.app[MERCHANTS].set_limits(_id(request), await _body(request))
    return web.json_response(merchant_json(merchant))


@admin_merchant_routes.post(_BASE + "/{merchant_id}/names")
async def names(request: web.Request) -> web.Response:
    require_operator(request)
    merchant = await request.app[MERCHANTS].set_names(_id(request), await _body(request))
    return web.json_response(merchant_json(merchant))


def _new_secret(merchant: Merchant, name: str, secret: bytes, note: str) -> web.Response:
    """The answer to a rotation: the one time the new secret is shown."""
    return web.json_response({"merchant": merchant_json(merchant), name: secret.hex(), "note": note},
                             headers=_NO_STORE)


@admin_merchant_routes.post(_BASE + "/{merchant_id}/rotate-key")
async def rotate_key(request: web.Request) -> web.Response:
    require_operator(request)
    merchant, key = await request.app[MERCHANTS].rotate_key(_id(request))
    return _new_secret(merchant, "api_key", key, "the new API key is shown only now; the old one "
                                                 "works until previous_key_valid_until")


@admin_merchant_routes.post(_BASE + "/{merchant_id}/rotate-webhook-secret")
async def rotate_webhook_secret(request: web.Request) -> web.Response:
    require_operator(request)
    merchant, secret = await request.app[MERCHANTS].rotate_webhook_secret(_id(request))
    return _new_secret(merchant, "webhook_secret", secret, "the new webhook secret is shown only "
                                                           "now; every webhook from now on is signed with it")


@admin_merchant_routes.get(_BASE + "/{merchant_id}/audit")
async def audit(request: web.Request) -> web.Response:
    require_operator(request)
    store = request.app[MERCHANTS]
    merchant = await store.get(_id(request))  # 404 for a merchant that does not exist
    return web.json_response({"audit": await store.audit(merchant_id=merchant.id)})
