"""The agent console's HTTP side: the page, login and session, starting and following payments.

Served by the ivr service's own aiohttp app under ``/console`` (no build step: one HTML page, one
script, one style sheet in ``ivr/console/static/``). The console acts for the agent's merchant
(``agents_seed.toml``) through the same order services, checks and cancel rules as the merchant
API (``ivr/api/merchant_routes.py``).

Security: the session cookie is ``HttpOnly``, ``SameSite=Strict``, ``Secure`` when the request
came over TLS, scoped to ``/console``; every write needs the session's CSRF token in the
``X-CSRF-Token`` header (and JSON, which no cross-site form can send without a preflight); the
login is throttled (``LoginThrottle``) and answers the same for an unknown agent and a wrong
password.

Live progress is a server-sent event stream per payment. It waits on the payment's history
stream in Redis with ``XREAD BLOCK`` (no polling, no extra publish step in the flows: every
transition and note of any instance already appends there) and sends the progress derived from
state and history (``progress.py``) after each new entry; the entry's stream id is the event id.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web

from ivr.api.errors import APIError, InvalidParameter
from ivr.api.payment_request import IN_CALL_MODES, MODES, parse_json_object
from ivr.api.keys import AMI, MERCHANTS, REDIS, SETTINGS, STORE
from ivr.api.merchant_routes import cancel_order, checked_order, submit_order
from ivr.api.rate_limits import RATE_LIMITS
from ivr.console.agents import Agent, AgentDirectory
from ivr.console.progress import progress
from ivr.console.sessions import LoginThrottle, Session, Sessions
from ivr.oneline.orders import TALK_THROUGH
from ivr.oneline.switch import AgentNotOnCall, OnelineSwitch, SwitchUnavailable
from ivr.paying.ask_again import FIELD_NAMES, AskAgain, AskAgainRefused
from ivr.payments.store import NoSuchPayment
from ivr.redis_pool import STREAM_READERS, redis_client

__all__ = ["console_routes", "console_ctx", "AGENTS", "SESSIONS", "COOKIE", "STATIC_DIR"]

log = logging.getLogger(__name__)
console_routes = web.RouteTableDef()

STATIC_DIR = Path(__file__).with_name("static")
COOKIE = "voicepay_console"
AGENTS = web.AppKey("console_agents", AgentDirectory)
SESSIONS = web.AppKey("console_sessions", Sessions)
THROTTLE = web.AppKey("console_throttle", LoginThrottle)
ASK_AGAIN = web.AppKey("console_ask_again", AskAgain)
# Blocking reads of payment histories: a pool of their own (ivr/redis_pool.py says why).
STREAM_REDIS = web.AppKey("console_stream_redis", aioredis.Redis)
# How many payments an agent's history keeps (newest first), and shows at once.
_HISTORY_MAX = 1000
_HISTORY_SHOWN = 50
# An idle event stream sends a comment this often, so proxies and the browser keep it open.
_KEEPALIVE_MS = 15000


def _history_key(agent_id: str) -> str:
    return f"console:agent:{agent_id}:payments"


class NotLoggedIn(APIError):
    status = 401
    error_id = "not-logged-in"


class LoginFailed(APIError):
    status = 401
    error_id = "login-failed"


class TooManyLogins(APIError):
    status = 429
    error_id = "too-many-logins"

    def __init__(self, wait_s: int) -> None:
        super().__init__(f"too many failed logins: try again in {(wait_s + 59) // 60} minute(s)",
                         {"retry_after_s": wait_s})
        self.headers = {"Retry-After": str(wait_s)}


class CsrfRefused(APIError):
    status = 403
    error_id = "csrf-refused"


async def console_ctx(app: web.Application) -> AsyncIterator[None]:
    """The agent registry (loaded at first use) and sessions in Redis."""
    settings = app[SETTINGS]
    app[AGENTS] = AgentDirectory(settings)
    app[SESSIONS] = Sessions(app[REDIS], settings.console_session_ttl_s)
    app[THROTTLE] = LoginThrottle(app[REDIS], settings.console_login_max_failures,
                                  settings.console_login_window_s)
    app[ASK_AGAIN] = AskAgain(app[REDIS], app[STORE])
    app[STREAM_REDIS] = redis_client(settings, "voicepay-console-streams", STREAM_READERS)
    yield
    await app[STREAM_REDIS].aclose()


# --- session ------------------------------------------------------------------------------------

async def _session(request: web.Request) -> tuple[Session, Agent]:
    session = await request.app[SESSIONS].get(request.cookies.get(COOKIE))
    agent = (await request.app[AGENTS].registry()).get(session.agent_id) if session else None
    if session is None or agent is None:
        raise NotLoggedIn("your session has ended: log in again")
    return session, agent


async def _writer(request: web.Request) -> tuple[Session, Agent]:
    """The session of a write: logged in, and the CSRF token in the header."""
    session, agent = await _session(request)
    if not session.csrf_matches(request.headers.get("X-CSRF-Token")):
        log.warning("console: agent %s: a write without the session's CSRF token was refused",
                    agent.id)
        raise CsrfRefused("this request did not come from the console page; reload it")
    return session, agent


async def _json_body(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise InvalidParameter("body", "must be JSON (Content-Type: application/json)")
    return parse_json_object(await request.read(), what="a console request")


async def _agent_json(agent: Agent, session: Session, request: web.Request) -> dict[str, Any]:
    merchant = await request.app[MERCHANTS].get(agent.merchant_id)
    # The modes offered are those checked_order takes: no talk-through while it is turned off.
    talkthrough = request.app[SETTINGS].talkthrough_enabled
    return {"agent": {"id": agent.id, "name": agent.name},
            "merchant": {"id": merchant.id, "name_en": merchant.name_en,
                         "name_zh": merchant.name_zh, "max_amount": merchant.max_amount.yuan},
            "modes": [mode for mode in MODES if mode != TALK_THROUGH or talkthrough],
            "csrf": session.csrf}


@console_routes.get("/console")
async def page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "console.html",
                            headers={"Cache-Control": "no-store",
                                     "Content-Security-Policy": "default-src 'self'; "
                                     "frame-ancestors 'none'"})


@console_routes.post("/console/api/login")
async def login(request: web.Request) -> web.Response:
    body = await _json_body(request)
    agent_id, password = body.get("agent_id"), body.get("password")
    if not isinstance(agent_id, str) or not isinstance(password, str) or not agent_id or not password:
        raise InvalidParameter("agent_id", "agent id and password are both required")
    agent_id = agent_id.strip()[:32]
    # Before the password hash is checked (deliberately slow); per address: the middleware.
    if RATE_LIMITS in request.app:
        await request.app[RATE_LIMITS].spend("login-agent", agent_id)
    client = request.remote or ""
    throttle = request.app[THROTTLE]
    wait = await throttle.blocked_for(agent_id, client)
    if wait:
        raise TooManyLogins(wait)
    registry = await request.app[AGENTS].registry()
    agent = await asyncio.to_thread(registry.verify, agent_id, password[:256])
    if agent is None:
        await throttle.failed(agent_id, client)
        log.info("console: failed login from %s", client)
        raise LoginFailed("the agent id or the password is wrong")
    await throttle.succeeded(agent.id)
    token, session = await request.app[SESSIONS].open(agent.id)
    log.info("console: agent %s logged in", agent.id)
    response = web.json_response(await _agent_json(agent, session, request))
    response.set_cookie(COOKIE, token, path="/console", httponly=True, samesite="Strict",
                        secure=request.secure)
    return response


@console_routes.post("/console/api/logout")
async def logout(request: web.Request) -> web.Response:
    _, agent = await _writer(request)
    await request.app[SESSIONS].close(request.cookies.get(COOKIE))
    log.info("console: agent %s logged out", agent.id)
    response = web.json_response({"logged_out": True})
    response.del_cookie(COOKIE, path="/console")
    return response


@console_routes.get("/console/api/session")
async def whoami(request: web.Request) -> web.Response:
    session, agent = await _session(request)
    return web.json_response(await _agent_json(agent, session, request))


# --- the agent's live call ----------------------------------------------------------------------

@console_routes.get("/console/api/call")
async def live_call(request: web.Request) -> web.Response:
    """The call the agent is on now (AMI), with the caller's number: what a one-line payment
    would be taken in."""
    _, agent = await _session(request)
    if AMI not in request.app:
        return web.json_response({"on_call": False, "reason": "unavailable"})
    try:
        call = await OnelineSwitch(request.app[AMI]).find(agent.id)
    except AgentNotOnCall:
        return web.json_response({"on_call": False, "reason": "no-call"})
    except SwitchUnavailable:
        return web.json_response({"on_call": False, "reason": "unavailable"})
    return web.json_response({"on_call": True, "caller_number": call.caller_number})


# --- payments -----------------------------------------------------------------------------------

def _order_body(body: dict[str, Any], agent: Agent) -> bytes:
    """The merchant API's body for the order the agent typed: a one-line payment is taken in
    this agent's own call, whatever the page sent."""
    body = {k: v for k, v in body.items() if v not in ("", None)}
    body.pop("agent_id", None)
    if body.get("mode") in IN_CALL_MODES:
        body["agent_id"] = agent.id
    return json.dumps(body).encode()


@console_routes.post("/console/api/orders/check")
async def check_order(request: web.Request) -> web.Response:
    """Inline validation: the order by the merchant API's own rules, nothing created."""
    _, agent = await _writer(request)
    merchant = await request.app[MERCHANTS].get(agent.merchant_id)
    checked_order(_order_body(await _json_body(request), agent), merchant, request.app[SETTINGS])
    return web.json_response({"valid": True})


@console_routes.post("/console/api/payments")
async def start_payment(request: web.Request) -> web.Response:
    _, agent = await _writer(request)
    merchant = await request.app[MERCHANTS].get(agent.merchant_id)
    order = checked_order(_order_body(await _json_body(request), agent), merchant,
                          request.app[SETTINGS])
    status, body = await submit_order(request.app, merchant, order)
    payment_id = body.get("id") or body.get("details", {}).get("payment_id")
    if payment_id:
        redis = request.app[REDIS]
        key = _history_key(agent.id)
        async with redis.pipeline(transaction=True) as pipe:
            pipe.zadd(key, {payment_id: time.time()})
            pipe.zremrangebyrank(key, 0, -_HISTORY_MAX - 1)
            await pipe.execute()
        log.info("console: agent %s started %s payment %s", agent.id, order.mode, payment_id)
    return web.json_response(body, status=status)


async def _own_payment(request: web.Request, agent: Agent) -> str:
    """The payment id of the URL, if this agent started it; otherwise it does not exist."""
    payment_id = request.match_info["payment_id"]
    if await request.app[REDIS].zscore(_history_key(agent.id), payment_id) is None:
        raise NoSuchPayment(payment_id)
    return payment_id


@console_routes.post("/console/api/payments/{payment_id}/cancel")
async def cancel(request: web.Request) -> web.Response:
    _, agent = await _writer(request)
    payment_id = await _own_payment(request, agent)
    merchant = await request.app[MERCHANTS].get(agent.merchant_id)
    payment = await cancel_order(request.app, merchant, payment_id)
    log.info("console: agent %s cancelled payment %s", agent.id, payment_id)
    return web.json_response(progress(payment, await request.app[STORE].history(payment_id)))


@console_routes.post("/console/api/payments/{payment_id}/ask-again")
async def ask_again(request: web.Request) -> web.Response:
    """The caller of this agent's one-line payment is asked for one field again
    (ivr/paying/ask_again.py): 202 with the progress, which says so; 409 when not allowed now."""
    _, agent = await _writer(request)
    payment_id = await _own_payment(request, agent)
    field = (await _json_body(request)).get("field")
    if not isinstance(field, str) or field not in FIELD_NAMES:
        raise InvalidParameter("field", f"one of {', '.join(FIELD_NAMES)}")
    store = request.app[STORE]
    payment = await store.get(payment_id)
    if field not in progress(payment, await store.history(payment_id))["payment"]["ask_again"]:
        raise AskAgainRefused(payment_id, field, "it is not being keyed, or it has been sent")
    await request.app[ASK_AGAIN].request(payment, field)
    log.info("console: agent %s asked again for %s of payment %s", agent.id, field, payment_id)
    return web.json_response(progress(payment, await store.history(payment_id)), status=202)


@console_routes.get("/console/api/payments")
async def history(request: web.Request) -> web.Response:
    """The agent's own payments, newest first; ``order`` searches by merchant order id."""
    _, agent = await _session(request)
    wanted = request.query.get("order", "").strip()
    ids = [i.decode() for i in await request.app[REDIS].zrevrange(
        _history_key(agent.id), 0, _HISTORY_MAX - 1)]
    store = request.app[STORE]
    shown = []
    for payment_id in ids:
        try:
            payment = await store.get(payment_id)
        except NoSuchPayment:
            continue  # gone with retention
        if wanted and wanted.lower() not in payment.merchant_order_id.lower():
            continue
        shown.append(progress(payment, [])["payment"])
        if len(shown) == _HISTORY_SHOWN:
            break
    return web.json_response({"payments": shown})


@console_routes.get("/console/api/payments/{payment_id}/events")
async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: the payment's progress as of each history entry, from the first,
    until it is final and no recording is left paused (see the module's doc)."""
    _, agent = await _session(request)
    payment_id = await _own_payment(request, agent)
    store, redis = request.app[STORE], request.app[STREAM_REDIS]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    stream = f"pay:{payment_id}:history"
    # From the first entry, also for a page reconnecting: the story is short, and each event
    # is a whole view the page simply redraws.
    last_id, history = "0-0", []
    while True:
        read = await redis.xread({stream: last_id}, block=_KEEPALIVE_MS)
        if not read:
            await response.write(b": still here\n\n")
            continue
        payment = await store.get(payment_id)
        for entry_id, fields in read[0][1]:
            last_id = entry_id.decode()
            history.append({k.decode(): v.decode() for k, v in fields.items()})
            view = progress(payment, history)
            await response.write(f"id: {last_id}\ndata: {json.dumps(view)}\n\n".encode())
            # A one-line payment's story ends after its result: when the agent's recording
            # goes on (the caller's flow notes it once the result has been read out).
            if view["payment"]["final"] and view["payment"]["recording"] != "paused":
                await response.write_eof()
                return response
