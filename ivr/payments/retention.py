"""Retention: personal data is kept only as long as it is needed, and Redis stops growing.

Two clocks, both in the settings:
- ``retention_days`` after a payment reached its final state, it is reduced to an anonymous
  record: the fields a merchant's reconciliation needs (ids, amount, outcome, STAN, RRN, times)
  stay; the cardholder's name, masked ID and card numbers, mobile numbers, call ids, notify URL,
  history and webhook records go.
- ``record_retention_days`` after its creation, the anonymous record itself expires, and the
  ``payments:recent`` index forgets it; the index is also capped at ``recent_index_max`` entries.
- Sets of other personal data scored by when it was last seen (``aged_sets``: the returning
  cardholders' digests) forget an entry ``retention_days`` after that.

Only final payments are ever reduced: the store adds a payment to ``payments:ended`` when it
reaches a final state, and this sweep works through that set oldest first. One sweep at a time
across all ivr instances (a short Redis lock), so two instances never race on the same record.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from ivr.payments.store import ENDED_KEY, RECENT_KEY, PaymentState, status_index

__all__ = ["RetentionSweep", "RetentionReport", "ANONYMOUS_FIELDS"]

log = logging.getLogger(__name__)

DAY = 86400
_BATCH = 500
_LOCK_KEY = "retention:lock"

# What an anonymous record keeps: enough to reconcile with the acquirer and the merchant, nothing
# that names or reaches a person.
ANONYMOUS_FIELDS = ("id", "status", "mode", "merchant_id", "merchant_order_id", "terminal_id",
                    "amount_minor", "currency", "card_type", "stan", "response_code", "rrn",
                    "auth_code", "created_at", "updated_at")

# KEYS[1] the payment hash, KEYS[2..] its satellite keys; ARGV[1] when, ARGV[2] seconds the
# anonymous record lives on, ARGV[3..] the fields it keeps. One step, so no reader ever sees a
# half-reduced record.
_ANONYMISE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local keep = {}
for i = 3, #ARGV do keep[ARGV[i]] = true end
for _, name in ipairs(redis.call('HKEYS', KEYS[1])) do
  if not keep[name] then redis.call('HDEL', KEYS[1], name) end
end
redis.call('HSET', KEYS[1], 'anonymised_at', ARGV[1])
redis.call('EXPIRE', KEYS[1], math.max(1, tonumber(ARGV[2])))
for i = 2, #KEYS do redis.call('DEL', KEYS[i]) end
return 1
"""


@dataclass(frozen=True)
class RetentionReport:
    anonymised: int
    forgotten: int  # entries dropped from payments:recent


class RetentionSweep:
    def __init__(self, redis: aioredis.Redis, *, retention_days: float, record_retention_days: float,
                 recent_index_max: int, aged_sets: tuple[str, ...] = ()) -> None:
        self._redis = redis
        self._retention_s = retention_days * DAY
        self._record_s = record_retention_days * DAY
        self._recent_max = recent_index_max
        self._aged_sets = aged_sets
        self._anonymise = redis.register_script(_ANONYMISE_LUA)

    async def run_once(self, now: float | None = None) -> RetentionReport:
        now = time.time() if now is None else now
        anonymised = 0
        while True:
            ids = await self._redis.zrangebyscore(ENDED_KEY, "-inf", now - self._retention_s,
                                                  start=0, num=_BATCH)
            if not ids:
                break
            for raw_id in ids:
                payment_id = raw_id.decode() if isinstance(raw_id, bytes) else raw_id
                anonymised += await self._reduce(payment_id, now)
            await self._redis.zrem(ENDED_KEY, *ids)
        forgotten = await self._redis.zremrangebyscore(RECENT_KEY, "-inf", now - self._record_s)
        forgotten += await self._redis.zremrangebyrank(RECENT_KEY, 0, -(self._recent_max + 1))
        for key in self._aged_sets:
            forgotten += await self._redis.zremrangebyscore(key, "-inf", now - self._retention_s)
        for state in PaymentState:
            index = status_index(state.value)
            await self._redis.zremrangebyscore(index, "-inf", now - self._record_s)
            await self._redis.zremrangebyrank(index, 0, -(self._recent_max + 1))
        if anonymised or forgotten:
            log.info("retention: %d payments reduced to anonymous records, %d index entries dropped",
                     anonymised, forgotten)
        return RetentionReport(anonymised, forgotten)

    async def _reduce(self, payment_id: str, now: float) -> int:
        key = f"pay:{payment_id}"
        created = await self._redis.zscore(RECENT_KEY, payment_id)
        # The anonymous record lives until record_retention after creation (at least a day, so a
        # payment whose index entry is already gone is not kept forever nor dropped at once).
        lives_on = max(DAY, (created or now) + self._record_s - now)
        return int(await self._anonymise(
            keys=[key, f"{key}:history", f"{key}:pan", f"{key}:webhook", f"{key}:webhooks"],
            args=[str(int(now)), str(int(lives_on)), *ANONYMOUS_FIELDS]))

    async def run(self, period_s: float) -> None:
        """Sweep every ``period_s`` until cancelled; a failed round is logged and retried.

        The loop also ends when its task has a cancellation pending: redis-py can swallow a
        CancelledError that lands inside a command (see ivr/webhooks.py).
        """
        task = asyncio.current_task()
        while True:
            try:
                if await self._redis.set(_LOCK_KEY, "1", nx=True, ex=max(1, int(period_s))):
                    await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis away, say: the next round tries again
                log.exception("retention: sweep failed; retrying in %.0f s", period_s)
            if task is not None and task.cancelling():
                return
            await asyncio.sleep(period_s)
