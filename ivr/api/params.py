"""Query parameters more than one route reads, checked in one place."""

from __future__ import annotations

from aiohttp import web

from ivr.api.errors import InvalidParameter

__all__ = ["limit_param"]


def limit_param(request: web.Request, default: int = 50, maximum: int = 500) -> int:
    """``?limit=``: a whole number from 1 to ``maximum``, else 400 ``invalid-parameter``."""
    raw = request.query.get("limit", str(default))
    # isdigit() alone also accepts digits int() refuses (e.g. "²"): ASCII digits only.
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= maximum:
        raise InvalidParameter("limit", f"must be a whole number from 1 to {maximum}")
    return int(raw)
