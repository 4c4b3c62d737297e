"""Voids and refunds in Redis: the amount held against a payment checked and taken in one step.

Keys (no card data anywhere: the acquirer finds the card from the original's references):
    refund:{id}               hash: the money record (ivr/refunds/model.py)
    pay:{payment}:refunds     list: the payment's voids and refunds, oldest first
    pay:{payment}:given_back  hash: ``held``, the fen held by voids and refunds in flight or
                              succeeded; ``void``, the id of a void in flight or succeeded
    refunds:unsettled         sorted set: ids of records not final, by when the sweep must look at
                              them (a ``sending`` one once its answer is overdue; a
                              ``reversal_pending`` one when its next reversal attempt is due)

Two refunds racing, or a void racing a refund, can never give back more than was taken: the
reservation script reads the payment's state and amount and the amount held, and holds the new
amount, in one step, before any message leaves. A declined or reversed record frees its amount
again in the same step that makes it final.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import redis.asyncio as aioredis

from ivr.money import Money
from ivr.refunds.model import (RELEASING_STATES, AlreadyVoided, NoSuchRefund, NotRefundable,
                               Refund, RefundExceedsCaptured, RefundState, VoidNotAllowed)
from ivr.payments.store import NoSuchPayment

__all__ = ["RefundStore", "UNSETTLED_KEY"]

UNSETTLED_KEY = "refunds:unsettled"

# KEYS: payment, given_back, record, the payment's list, unsettled. ARGV: kind, amount (fen),
# record id, when the sweep looks at it, the record's fields (JSON). Returns {outcome, detail}.
_RESERVE_LUA = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'missing', ''} end
if status ~= 'approved' then return {'not-approved', status} end
local captured = tonumber(redis.call('HGET', KEYS[1], 'amount_minor'))
local held = tonumber(redis.call('HGET', KEYS[2], 'held') or '0')
local void = redis.call('HGET', KEYS[2], 'void')
if void then return {'voided', void} end
local amount = tonumber(ARGV[2])
if ARGV[1] == 'void' then
  if held > 0 then return {'refunded', tostring(held)} end
  if amount ~= captured then return {'exceeds', tostring(captured - held)} end
  redis.call('HSET', KEYS[2], 'void', ARGV[3])
end
if held + amount > captured then return {'exceeds', tostring(captured - held)} end
redis.call('HINCRBY', KEYS[2], 'held', amount)
for k, v in pairs(cjson.decode(ARGV[5])) do redis.call('HSET', KEYS[3], k, v) end
redis.call('RPUSH', KEYS[4], ARGV[3])
redis.call('ZADD', KEYS[5], ARGV[4], ARGV[3])
return {'ok', tostring(captured - held - amount)}
"""

# KEYS: record, given_back, unsettled. ARGV: target, changes (JSON), '1' to free the amount held,
# when the sweep looks next ('' = never: final), now, then the states it may be entered from.
_TRANSITION_LUA = """
local current = redis.call('HGET', KEYS[1], 'state')
if not current then return {'missing', ''} end
if current == ARGV[1] then return {'same', current} end
local allowed = false
for i = 6, #ARGV do if ARGV[i] == current then allowed = true end end
if not allowed then return {'refused', current} end
for k, v in pairs(cjson.decode(ARGV[2])) do redis.call('HSET', KEYS[1], k, v) end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'updated_at', ARGV[5])
local id = redis.call('HGET', KEYS[1], 'id')
if ARGV[3] == '1' then
  redis.call('HINCRBY', KEYS[2], 'held', -tonumber(redis.call('HGET', KEYS[1], 'amount_minor')))
  if redis.call('HGET', KEYS[2], 'void') == id then redis.call('HDEL', KEYS[2], 'void') end
end
if ARGV[4] == '' then
  redis.call('ZREM', KEYS[3], id)
else
  redis.call('ZADD', KEYS[3], ARGV[4], id)
end
return {'ok', current}
"""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RefundStore:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._reserve = redis.register_script(_RESERVE_LUA)
        self._transition = redis.register_script(_TRANSITION_LUA)

    @staticmethod
    def _key(refund_id: str) -> str:
        return f"refund:{refund_id}"

    async def reserve(self, refund: Refund, *, look_at: float) -> Money:
        """Store ``refund`` (``sending``) holding its amount against its payment, or raise the
        refusal; the amount still refundable after it. ``look_at``: when the sweep should take
        it over if no answer was recorded by then (the process sending it died)."""
        pid = refund.payment_id
        now = _now()
        record = {**refund.record(), "created_at": now, "updated_at": now}
        outcome, detail = (_text(v) for v in await self._reserve(
            keys=[f"pay:{pid}", f"pay:{pid}:given_back", self._key(refund.id),
                  f"pay:{pid}:refunds", UNSETTLED_KEY],
            args=[refund.kind.value, refund.amount.fen, refund.id, look_at, json.dumps(record)]))
        if outcome == "ok":
            return Money(int(detail))
        if outcome == "missing":
            raise NoSuchPayment(pid)
        if outcome == "not-approved":
            raise NotRefundable(f"payment {pid} is {detail}: only an approved payment can be "
                                f"given back", {"payment_status": detail})
        if outcome == "voided":
            raise AlreadyVoided(f"payment {pid} is voided", {"void_id": detail})
        if outcome == "refunded":
            raise VoidNotAllowed(f"payment {pid} has refunds; refund what is left instead",
                                 {"held": Money(int(detail)).yuan})
        raise RefundExceedsCaptured(
            f"{refund.amount.yuan} is more than the {Money(int(detail)).yuan} left of payment {pid}",
            {"refundable": Money(int(detail)).yuan})

    async def transition(self, refund: Refund, target: RefundState,
                         allowed_from: frozenset[RefundState], *, look_at: float | None = None,
                         **changes: str) -> Refund | None:
        """Move ``refund`` to ``target`` if it is in one of ``allowed_from``: the record moved, or
        None if this call did not move it (already there, or in another state: someone else
        settled it). ``look_at`` is when the sweep should look again (for a state not final)."""
        outcome, _ = (_text(v) for v in await self._transition(
            keys=[self._key(refund.id), f"pay:{refund.payment_id}:given_back", UNSETTLED_KEY],
            args=[target.value, json.dumps(changes), "1" if target in RELEASING_STATES else "",
                  "" if look_at is None else look_at, _now(), *(s.value for s in allowed_from)]))
        if outcome == "missing":
            raise NoSuchRefund(refund.id)
        if outcome != "ok":
            return None
        return await self.get(refund.id)

    async def look_again(self, refund_id: str, at: float) -> None:
        """When the sweep should next look at a record that is not final (XX: never re-adds a
        record that became final meanwhile)."""
        await self._redis.zadd(UNSETTLED_KEY, {refund_id: at}, xx=True)

    async def get(self, refund_id: str) -> Refund:
        raw = await self._redis.hgetall(self._key(refund_id))
        if not raw:
            raise NoSuchRefund(refund_id)
        return Refund.from_record({_text(k): _text(v) for k, v in raw.items()})

    async def of_payment(self, payment_id: str) -> list[Refund]:
        ids = [_text(i) for i in await self._redis.lrange(f"pay:{payment_id}:refunds", 0, -1)]
        return [await self.get(i) for i in ids]

    async def held(self, payment_id: str) -> Money:
        """The fen held against the payment by voids and refunds in flight or succeeded."""
        return Money(int(await self._redis.hget(f"pay:{payment_id}:given_back", "held") or 0))

    async def due(self, now: float, limit: int = 100) -> list[str]:
        """Ids of records not final whose time to be looked at has come, oldest first."""
        return [_text(i) for i in await self._redis.zrangebyscore(UNSETTLED_KEY, "-inf", now,
                                                                  start=0, num=limit)]

