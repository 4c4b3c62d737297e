"""The risk audit: three append-only Redis streams, written here and nowhere else.

- ``risk:audit:decisions``: every decision with its inputs (the facts, which hold no card, ID or
  mobile number, and the subjects' digests and masked labels), read by operators and the backtest;
- ``risk:audit:rules``: every attempt to load or reload the rules file and its result;
- ``risk:audit:lists``: every list change (who is identified by digest and masked label only).

Entries are never edited; each has one field, ``entry``, holding JSON. They are deleted only by
age, oldest first (``trim``, every retention period): the decisions and list changes, which name
cardholders by digest and masked label, after ``retention_days`` like a payment's personal data;
the rules reloads, which name nobody, after ``record_retention_days``.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import redis.asyncio as aioredis

from ivr.periodic import run_periodically

__all__ = ["DECISIONS", "RULES", "LISTS", "RiskAudit"]

log = logging.getLogger(__name__)

DECISIONS = "risk:audit:decisions"
RULES = "risk:audit:rules"
LISTS = "risk:audit:lists"


class RiskAudit:
    def __init__(self, redis: aioredis.Redis, keep_s: dict[str, float] | None = None) -> None:
        """``keep_s``: how long each stream keeps an entry, in seconds (a stream not named is
        never trimmed)."""
        self._redis = redis
        self._keep_s = keep_s or {}

    async def append(self, stream: str, entry: dict[str, Any]) -> str:
        entry = {"at": time.time(), **entry}
        entry_id = await self._redis.xadd(stream, {"entry": json.dumps(entry, ensure_ascii=False)})
        return entry_id.decode() if isinstance(entry_id, bytes) else entry_id

    async def trim(self, now: float | None = None) -> int:
        """Delete every entry older than its stream keeps; how many went."""
        now = time.time() if now is None else now
        removed = 0
        for stream, keep_s in self._keep_s.items():
            # Stream ids start with their time in ms: MINID drops every older id, exactly.
            removed += await self._redis.xtrim(stream, minid=f"{int((now - keep_s) * 1000)}-0",
                                               approximate=False)
        return removed

    async def run_trim(self, period_s: float) -> None:
        """Trim every ``period_s`` until cancelled (every instance may: trimming is idempotent)."""
        await run_periodically(self._trim_and_say, period_s, log, "risk audit: trimming")

    async def _trim_and_say(self) -> None:
        if removed := await self.trim():
            log.info("risk audit: %d entries past their retention deleted", removed)

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
