"""The operator's risk control API (bearer token): lists, the rules, and the audit streams.

    GET    /v1/admin/risk/lists/{list}/{kind}            entries: digest, masked label, note
    POST   /v1/admin/risk/lists/{list}/{kind}            {"value": "...", "note": "..."} -> 201
    DELETE /v1/admin/risk/lists/{list}/{kind}/{digest}   204, or 404 if not on the list
    GET    /v1/admin/risk/rules                          the running rules and their version
    POST   /v1/admin/risk/rules/reload                   200 loaded/unchanged, 422 rejected (why)
    GET    /v1/admin/risk/audit/{stream}?limit=&payment_id=   decisions | rules | lists, newest first

``list`` is block, allow or review; ``kind`` card, mobile, id_number, merchant or source. A value
is never echoed: answers show its digest and masked label only.
"""

from __future__ import annotations

from aiohttp import web

from ivr.api.errors import APIError, InvalidParameter
from ivr.api.payment_request import parse_json_object
from ivr.api.keys import RISK_AUDIT, RISK_LISTS, RISK_RULES
from ivr.api.merchant_auth import require_operator
from ivr.api.params import limit_param
from ivr.risk.audit import DECISIONS, LISTS, RULES
from ivr.risk.lists import UnknownList
from ivr.validation import ValidationError

__all__ = ["admin_risk_routes"]

admin_risk_routes = web.RouteTableDef()

_STREAMS = {"decisions": DECISIONS, "rules": RULES, "lists": LISTS}
_SEARCH_DEPTH = 10_000  # how far back a payment_id filter looks in the decision audit


class NoSuchList(APIError):
    status = 404
    error_id = "no-such-list"


class NoSuchEntry(APIError):
    status = 404
    error_id = "no-such-entry"


class NoSuchStream(APIError):
    status = 404
    error_id = "no-such-stream"


class RulesRejected(APIError):
    status = 422
    error_id = "rules-rejected"


def _list_and_kind(request: web.Request) -> tuple[str, str]:
    require_operator(request)
    return request.match_info["list"], request.match_info["kind"]


@admin_risk_routes.get("/v1/admin/risk/lists/{list}/{kind}")
async def list_entries(request: web.Request) -> web.Response:
    name, kind = _list_and_kind(request)
    try:
        entries = await request.app[RISK_LISTS].entries(name, kind)
    except UnknownList as exc:
        raise NoSuchList(str(exc)) from None
    return web.json_response({"list": name, "kind": kind,
                              "entries": [e.to_json() for e in entries]})


@admin_risk_routes.post("/v1/admin/risk/lists/{list}/{kind}")
async def add_entry(request: web.Request) -> web.Response:
    name, kind = _list_and_kind(request)
    body = parse_json_object(await request.read(), what="a list entry")
    if not isinstance(body.get("value"), str):
        raise InvalidParameter("value", "a string is required")
    note = body.get("note", "")
    if not isinstance(note, str) or len(note) > 500:
        raise InvalidParameter("note", "a string of at most 500 characters")
    try:
        entry = await request.app[RISK_LISTS].add(name, kind, body["value"], note)
    except UnknownList as exc:
        raise NoSuchList(str(exc)) from None
    except ValidationError as exc:
        # Its message names what is wrong, never the value.
        raise InvalidParameter("value", f"not a valid {kind} ({exc.reason})") from None
    return web.json_response({"list": name, "kind": kind, **entry.to_json()}, status=201)


@admin_risk_routes.delete("/v1/admin/risk/lists/{list}/{kind}/{digest}")
async def remove_entry(request: web.Request) -> web.Response:
    name, kind = _list_and_kind(request)
    try:
        removed = await request.app[RISK_LISTS].remove(name, kind, request.match_info["digest"])
    except UnknownList as exc:
        raise NoSuchList(str(exc)) from None
    if not removed:
        raise NoSuchEntry(f"no such entry on the {name} list of {kind}s")
    return web.Response(status=204)


@admin_risk_routes.get("/v1/admin/risk/rules")
async def running_rules(request: web.Request) -> web.Response:
    require_operator(request)
    book = request.app[RISK_RULES]
    return web.json_response({"file": str(book.path), **book.current.to_json()})


@admin_risk_routes.post("/v1/admin/risk/rules/reload")
async def reload_rules(request: web.Request) -> web.Response:
    require_operator(request)
    result = await request.app[RISK_RULES].reload(trigger="admin")
    if not result.ok:
        raise RulesRejected("the rules file was rejected; the running rules are unchanged",
                            {"running_version": result.version, "problems": list(result.problems)})
    return web.json_response({"result": result.result, "version": result.version})


@admin_risk_routes.get("/v1/admin/risk/audit/{stream}")
async def read_audit(request: web.Request) -> web.Response:
    require_operator(request)
    stream = _STREAMS.get(request.match_info["stream"])
    if stream is None:
        raise NoSuchStream(f"no audit stream {request.match_info['stream']!r}: "
                         f"one of {', '.join(_STREAMS)}")
    limit = limit_param(request)
    audit = request.app[RISK_AUDIT]
    payment_id = request.query.get("payment_id")
    if payment_id is None:
        entries = await audit.newest(stream, limit)
    else:
        entries = [e for e in await audit.newest(stream, _SEARCH_DEPTH)
                   if e.get("payment_id") == payment_id][:limit]
    return web.json_response({"entries": entries})
