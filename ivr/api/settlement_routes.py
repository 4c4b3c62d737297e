"""Settlement over HTTP: the merchant's statement, the operator's day and reconciliation.

    GET  /v1/settlements/{day}[?format=csv]           signed: the merchant's own record of the day
    GET  /v1/admin/settlements/{day}                  operator: every merchant's record
    POST /v1/admin/settlements/{day}/run              operator: settle it now ({"early": true}
                                                      closes an open day: drills, tests)
    POST /v1/admin/settlements/{day}/reconcile        operator: against the acquirer's file
    GET  /v1/admin/settlements/{day}/reconciliation   operator: the latest report

``day`` is ``YYYY-MM-DD``. A merchant with no record that day (or asking before the run) gets 404,
the same as for a day of someone else's: a statement is only ever its own. The work is
ivr/settlement/run.py's; its refusals get their status in ivr/api/errors.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import date

from aiohttp import web

from ivr.api.errors import APIError, InvalidParameter
from ivr.api.keys import REDIS, SETTINGS, SETTLEMENT, STORE
from ivr.api.merchant_auth import authenticate, require_operator
from ivr.api.payment_request import parse_json_object
from ivr.periodic import run_periodically
from ivr.refunds.store import RefundStore
from ivr.settlement.fees import FeeTable
from ivr.settlement.run import NotSettled, SettlementService

__all__ = ["settlement_routes", "settlement_ctx", "parse_day"]

log = logging.getLogger(__name__)
settlement_routes = web.RouteTableDef()


class NotReconciled(APIError):
    status = 404
    error_id = "not-reconciled"


def parse_day(text: str) -> date:
    try:
        if len(text) != 10:
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidParameter("day", "must be a date, YYYY-MM-DD") from None


def _operator_day(request: web.Request) -> date:
    """The day an operator's request names, once its bearer token is checked."""
    require_operator(request)
    return parse_day(request.match_info["day"])


@settlement_routes.get("/v1/settlements/{day}")
async def merchant_statement(request: web.Request) -> web.Response:
    merchant = await authenticate(request)
    day = parse_day(request.match_info["day"])
    wanted = request.query.get("format", "json")
    if wanted not in ("json", "csv"):
        raise InvalidParameter("format", "must be json or csv")
    record = await request.app[SETTLEMENT].statement(day, merchant.id)
    if wanted == "csv":
        return web.Response(text=record.to_csv(), content_type="text/csv", headers={
            "Content-Disposition": f'attachment; filename="{merchant.id}_{day:%Y%m%d}.csv"'})
    return web.json_response(record.to_json())


@settlement_routes.get("/v1/admin/settlements/{day}")
async def operator_day(request: web.Request) -> web.Response:
    day = _operator_day(request)
    settled = await request.app[SETTLEMENT].get(day)
    if settled is None:
        raise NotSettled(f"{day} is not settled")
    return web.json_response(settled.to_json())


@settlement_routes.post("/v1/admin/settlements/{day}/run")
async def operator_run(request: web.Request) -> web.Response:
    day = _operator_day(request)
    raw = await request.read()
    body = parse_json_object(raw, what="a settlement run") if raw.strip() else {}
    if set(body) - {"early"} or not isinstance(body.get("early", False), bool):
        raise InvalidParameter("early", "the body is {} or {\"early\": true|false}")
    settled = await request.app[SETTLEMENT].run(day, early=body.get("early", False))
    log.info("operator: settlement of %s run (%s)", day,
             "committed" if settled.committed_now else "settled already")
    return web.json_response({**settled.to_json(), "committed_now": settled.committed_now},
                             status=201 if settled.committed_now else 200)


@settlement_routes.post("/v1/admin/settlements/{day}/reconcile")
async def operator_reconcile(request: web.Request) -> web.Response:
    day = _operator_day(request)
    return web.json_response(await request.app[SETTLEMENT].reconcile(day))


@settlement_routes.get("/v1/admin/settlements/{day}/reconciliation")
async def operator_reconciliation(request: web.Request) -> web.Response:
    day = _operator_day(request)
    report = await request.app[SETTLEMENT].reconciliation(day)
    if report is None:
        raise NotReconciled(f"{day} has not been reconciled")
    return web.json_response(report)


async def settlement_ctx(app: web.Application) -> AsyncIterator[None]:
    """The settlement service, and its automatic round: each closed day settled, then reconciled
    when the acquirer's file is there, every recovery period (on any instance: the commit is
    once per day whoever runs it)."""
    settings = app[SETTINGS]
    service = SettlementService(app[REDIS], app[STORE], RefundStore(app[REDIS]),
                                cutoff=settings.cutoff, fees=FeeTable.load(settings.fee_table),
                                acquirer_files=settings.acquirer_files_dir)
    app[SETTLEMENT] = service
    task = asyncio.create_task(run_periodically(service.run_due, settings.recovery_period_s, log,
                                                "settlement round"), name="settlement")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
