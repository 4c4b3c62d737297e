"""Rate limits at the HTTP edge: per merchant, per client address, per agent id at the login.

Budgets are requests per minute (``rate_limit_*_per_minute`` settings), counted with the
``limits`` library's moving window in Redis, so every ivr instance on one Redis spends the same
budget. A moving window, not a fixed one: a fixed window lets twice the budget through around a
window's edge (the end of one, the start of the next), which is exactly the burst a password
guesser would time. Over budget: 429 ``rate-limited``, with ``Retry-After`` (seconds until the
oldest counted request leaves the window) and the same in the JSON body.

Where each budget is spent, always before the expensive part of a request:
- ``source``: every ``/v1/...`` request but the admin API's, per client address, before anything
  else (the middleware below);
- ``admin``: every ``/v1/admin/...`` request, per client address, before the token is checked;
- ``merchant``: every merchant request whose signature verified and whose nonce is fresh
  (``merchant_auth.authenticate``), per merchant: an unsigned or replayed request never spends a
  merchant's budget, and the order (risk, identity providers, the dialer) comes after;
- ``login-source`` and ``login-agent``: every console login attempt, per client address (the
  middleware) and per agent id typed (``console/routes.py``), before the password hash is
  checked: with the failed-login throttle (``console/sessions.py``), it slows password guessing.

Who spends a budget is named in Redis by a SHA-256 digest: an agent id as typed may be anything
(a password typed in the wrong field, say), and is not ours to keep as it is.

The client address is the TCP peer's (``request.remote``): behind a reverse proxy, that proxy
must be trusted to set it (aiohttp's ``forwarded`` handling), else every client shares one budget.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import AsyncIterator

from aiohttp import web
from limits import RateLimitItem, RateLimitItemPerMinute
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from ivr.api.errors import APIError
from ivr.api.keys import REDIS, SETTINGS
from ivr.config import Settings

__all__ = ["RateLimited", "RateLimits", "RATE_LIMITS", "rate_limits_ctx", "rate_limit_middleware",
           "source_budget"]


class RateLimited(APIError):
    status = 429
    error_id = "rate-limited"

    def __init__(self, budget: str, retry_after_s: int) -> None:
        super().__init__(f"too many requests ({budget}): retry in {retry_after_s} s",
                         {"limit": budget, "retry_after_s": retry_after_s})
        self.headers = {"Retry-After": str(retry_after_s)}


class RateLimits:
    """The budgets of one deployment, spent in its shared Redis."""

    def __init__(self, storage: RedisStorage, settings: Settings) -> None:
        self._limiter = MovingWindowRateLimiter(storage)
        self._budgets: dict[str, RateLimitItem] = {
            "merchant": RateLimitItemPerMinute(settings.rate_limit_merchant_per_minute),
            "source": RateLimitItemPerMinute(settings.rate_limit_source_per_minute),
            "admin": RateLimitItemPerMinute(settings.rate_limit_admin_per_minute),
            "login-source": RateLimitItemPerMinute(settings.rate_limit_login_per_minute),
            "login-agent": RateLimitItemPerMinute(settings.rate_limit_login_per_minute),
        }

    def __repr__(self) -> str:
        return "RateLimits()"

    async def spend(self, budget: str, who: str) -> None:
        """Count one request of ``who`` against ``budget``, or raise ``RateLimited``."""
        item = self._budgets[budget]
        name = hashlib.sha256(who.encode("utf-8", "replace")).hexdigest()
        if await self._limiter.hit(item, budget, name):
            return
        stats = await self._limiter.get_window_stats(item, budget, name)
        raise RateLimited(budget, max(1, math.ceil(stats.reset_time - time.time())))


RATE_LIMITS = web.AppKey("rate_limits", RateLimits)


async def rate_limits_ctx(app: web.Application) -> AsyncIterator[None]:
    """The budgets, on the app's own Redis connection pool (after the Redis context)."""
    settings = app[SETTINGS]
    storage = RedisStorage(f"async+{settings.redis_url}", implementation="redispy",
                           connection_pool=app[REDIS].connection_pool, key_prefix="ratelimit")
    app[RATE_LIMITS] = RateLimits(storage, settings)
    yield


def source_budget(path: str) -> str | None:
    """Which per-address budget a request to ``path`` spends, if any (health checks: none)."""
    if path.startswith("/v1/admin/"):
        return "admin"
    if path.startswith("/v1/"):
        return "source"
    if path == "/console/api/login":
        return "login-source"
    return None


@web.middleware
async def rate_limit_middleware(request: web.Request, handler) -> web.StreamResponse:
    """The per-address budgets, spent before the handler does any work."""
    budget = source_budget(request.path)
    if budget is not None and RATE_LIMITS in request.app:
        await request.app[RATE_LIMITS].spend(budget, request.remote or "unknown")
    return await handler(request)
