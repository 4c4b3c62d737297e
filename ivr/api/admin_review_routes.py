"""The operator's review desk over HTTP: decide on a callback the risk engine held for review.

    POST /v1/admin/payments/{id}/review   Authorization: Bearer <operator token>
         {"decision": "approve" | "decline", "note": "..."}

200 with the payment as the operator sees it (its new state, the risk decision, the history);
409 ``review-not-pending`` if it is not waiting for review (decided already, or never held);
404 for no such payment. The work is the review desk's (ivr/risk/review.py).
"""

from __future__ import annotations

import logging

from aiohttp import web

from ivr.api.errors import InvalidParameter
from ivr.api.payment_request import parse_json_object
from ivr.api.keys import REVIEWS, STORE
from ivr.api.merchant_auth import require_operator
from ivr.risk.review import APPROVE, DECLINE

__all__ = ["admin_review_routes", "NOTE_MAX"]

log = logging.getLogger(__name__)
admin_review_routes = web.RouteTableDef()

NOTE_MAX = 500


@admin_review_routes.post("/v1/admin/payments/{payment_id}/review")
async def review_payment(request: web.Request) -> web.Response:
    require_operator(request)
    decision, note = _parse(await request.read())
    payment_id = request.match_info["payment_id"]
    payment = await request.app[REVIEWS].decide(payment_id, decision, note)
    log.info("operator: payment %s review %s", payment_id, decision)
    store = request.app[STORE]
    return web.json_response(payment.to_json(history=await store.history(payment_id),
                                             internal=True))


def _parse(raw: bytes) -> tuple[str, str]:
    body = parse_json_object(raw, what="a review decision")
    unknown = set(body) - {"decision", "note"}
    if unknown:
        raise InvalidParameter("body", "only decision and note are accepted")
    decision = body.get("decision")
    if decision not in (APPROVE, DECLINE):
        raise InvalidParameter("decision", f"must be {APPROVE!r} or {DECLINE!r}")
    note = body.get("note", "")
    if not isinstance(note, str) or len(note) > NOTE_MAX or not note.isprintable():
        raise InvalidParameter("note", f"must be text of at most {NOTE_MAX} printable characters")
    return decision, note
