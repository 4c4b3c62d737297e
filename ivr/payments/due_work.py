"""Durable due work in Redis: items by due time, each claimed by one worker at a time, with a lease.

    <due key>       sorted set: item id by the unix time it is due; while claimed, by the time
                    the claim's lease ends
    <item key>      hash per item (e.g. ``pay:{id}:callback``): the worker's own fields, plus
                    ``owner``, the worker holding the claim (absent when nobody does)

A worker claims due items atomically: their score moves to the end of its lease and ``owner``
names it, so no other worker takes them. The holder renews the lease while it works and ends the
claim with ``release``: rescheduled at a given time, or removed. A worker that dies leaves its
claims to run out: a claim whose lease has ended is simply due again, and the next worker to claim
takes it over. Every write a holder makes is checked against ``owner`` in the same script, so a
worker that lost its claim (it stalled past its lease and was taken over) can no longer write; it
learns so from the False it gets back.

Item keys are built inside the claim script from a template, so this needs a single Redis (not a
cluster), as the rest of the service does.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time

import redis.asyncio as aioredis

__all__ = ["DueWork", "worker_name", "sleep_or_wake"]

# ARGV: now, lease end, how many, owner, item key prefix, item key suffix.
_CLAIM_LUA = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], ARGV[2], id)
  redis.call('HSET', ARGV[5] .. id .. ARGV[6], 'owner', ARGV[4])
end
return ids
"""

# KEYS: due, item. ARGV: owner, id, lease end, then field, value pairs. The claim is kept.
_RENEW_LUA = """
if redis.call('HGET', KEYS[2], 'owner') ~= ARGV[1] then return 0 end
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
redis.call('ZADD', KEYS[1], 'XX', ARGV[3], ARGV[2])
return 1
"""

# KEYS: due, item. ARGV: owner, id, next due time ('' = done: removed), then field, value pairs.
_RELEASE_LUA = """
if redis.call('HGET', KEYS[2], 'owner') ~= ARGV[1] then return 0 end
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
redis.call('HDEL', KEYS[2], 'owner')
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[1], ARGV[2])
else
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
end
return 1
"""


def worker_name(configured: str = "") -> str:
    """The owner name a worker claims with: the configured instance id, or one unique to this
    worker (two workers in one process must never share a name)."""
    return configured or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


async def sleep_or_wake(wake: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds`` or until ``wake`` is set. (Not ``wait_for``: on Python 3.11 it can swallow
    the task's own cancellation when its timeout fires at the same moment.)"""
    waiter = asyncio.ensure_future(wake.wait())
    try:
        await asyncio.wait({waiter}, timeout=seconds)
    finally:
        waiter.cancel()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _pairs(fields: dict[str, str | int | float]) -> list[str]:
    return [str(part) for name, value in fields.items() for part in (name, value)]


class DueWork:
    """One kind of due work: ``DueWork(redis, "callbacks:due", "pay:{}:callback")``."""

    def __init__(self, redis: aioredis.Redis, due_key: str, item_key: str) -> None:
        self._redis = redis
        self._due_key = due_key
        self._item_key = item_key
        self._prefix, _, self._suffix = item_key.partition("{}")
        self._claim = redis.register_script(_CLAIM_LUA)
        self._renew = redis.register_script(_RENEW_LUA)
        self._release = redis.register_script(_RELEASE_LUA)

    def key(self, item: str) -> str:
        return self._item_key.format(item)

    async def add(self, item: str, at: float) -> bool:
        """Make ``item`` due at ``at`` unless it is already scheduled or claimed."""
        return bool(await self._redis.zadd(self._due_key, {item: at}, nx=True))

    async def claim(self, owner: str, lease_until: float, now: float, limit: int) -> list[str]:
        """Up to ``limit`` items due at ``now`` (or whose lease ran out), now held by ``owner``."""
        ids = await self._claim(keys=[self._due_key],
                                args=[now, lease_until, limit, owner, self._prefix, self._suffix])
        return [_text(i) for i in ids]

    async def renew(self, item: str, owner: str, lease_until: float,
                    **fields: str | int | float) -> bool:
        """Extend the lease (and set ``fields``) if ``owner`` still holds ``item``."""
        return bool(await self._renew(keys=[self._due_key, self.key(item)],
                                      args=[owner, item, lease_until, *_pairs(fields)]))

    async def release(self, item: str, owner: str, *, at: float | None,
                      **fields: str | int | float) -> bool:
        """End ``owner``'s claim: due again at ``at``, or done (removed) if ``at`` is None."""
        return bool(await self._release(keys=[self._due_key, self.key(item)],
                                        args=[owner, item, "" if at is None else at,
                                              *_pairs(fields)]))

    async def fields(self, item: str) -> dict[str, str]:
        raw = await self._redis.hgetall(self.key(item))
        return {_text(k): _text(v) for k, v in raw.items()}

    async def seconds_to_next(self, longest: float) -> float:
        """How long until the earliest item is due (or its lease ends), at most ``longest``."""
        nearest = await self._redis.zrange(self._due_key, 0, 0, withscores=True)
        return longest if not nearest else min(longest, max(0.0, nearest[0][1] - time.time()))
