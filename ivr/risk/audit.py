"""The risk audit: three append-only Redis streams, written here and nowhere else.

- ``risk:audit:decisions``: every decision with its inputs (the facts, which hold no card, ID or
  mobile number, and the subjects' digests and masked labels), read by operators and the backtest;
- ``risk:audit:rules``: every attempt to load or reload the rules file and its result;
- ``risk:audit:lists``: every list change (who is identified by digest and masked label only).

Entries are never edited or deleted by voicepay; each has one field, ``entry``, holding JSON.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis.asyncio as aioredis

__all__ = ["DECISIONS", "RULES", "LISTS", "RiskAudit"]

DECISIONS = "risk:audit:decisions"
RULES = "risk:audit:rules"
LISTS = "risk:audit:lists"


class RiskAudit:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis

    async def append(self, stream: str, entry: dict[str, Any]) -> str:
        entry = {"at": time.time(), **entry}
        entry_id = await self._redis.xadd(stream, {"entry": json.dumps(entry, ensure_ascii=False)})
        return entry_id.decode() if isinstance(entry_id, bytes) else entry_id

    async def newest(self, stream: str, count: int = 50) -> list[dict[str, Any]]:
        """The newest ``count`` entries, newest first, each with its stream ``id``."""
        rows = await self._redis.xrevrange(stream, count=count)
        return [_entry(entry_id, fields) for entry_id, fields in rows]

    async def all(self, stream: str, batch: int = 1000):
        """Every entry, oldest first (the backtest's replay)."""
        start = "-"
        while True:
            rows = await self._redis.xrange(stream, min=start, count=batch)
            for entry_id, fields in rows:
                yield _entry(entry_id, fields)
            if len(rows) < batch:
                return
            start = "(" + (rows[-1][0].decode() if isinstance(rows[-1][0], bytes) else rows[-1][0])


def _entry(entry_id: bytes | str, fields: dict) -> dict[str, Any]:
    raw = fields.get(b"entry", fields.get("entry"))
    return {"id": entry_id.decode() if isinstance(entry_id, bytes) else entry_id,
            **json.loads(raw)}
