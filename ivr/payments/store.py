"""Payments in Redis: one hash per payment, an append-only history stream, atomic transitions.

Keys (no card data in any key name; the card number only as an AES-GCM token, in its own key so
it can expire on its own):
    pay:{id}            hash: the payment's public fields and current status
    pay:{id}:history    stream: one entry per transition (state, at, reason)
    pay:{id}:pan        string: the encrypted card number, with a TTL (lifted once a purchase is
                        about to be sent: a reversal needs it), deleted at a final state
    payments:recent     sorted set: payment ids by creation time (trimmed by ivr/payments/retention.py)
    payments:pending    sorted set: ids of payments not yet final, by when they entered their
                        current state (what the recovery sweep reads)
    payments:status:{state}  sorted set: the payments now in that state, by creation time (the
                        transition script moves them), so listing by state never scans
    payments:ended      sorted set: payment ids by the time they reached a final state, until the
                        retention sweep has reduced them to an anonymous record
    acquirer:stan       counter for ISO 8583 STANs
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone

import redis.asyncio as aioredis

from ivr.payments.model import (FINAL_STATES, TRANSITIONS, Payment, PaymentState,
                                check_field_names, new_payment_id)

# The model's names are re-exported: the store is where most callers meet a payment.
__all__ = [
    "new_payment_id",
    "PaymentState",
    "FINAL_STATES",
    "TRANSITIONS",
    "Payment",
    "PaymentStore",
    "StoreError",
    "NoSuchPayment",
    "InvalidTransition",
]


# Checks the current state and applies the change in one step, so two writers (the call flow and
# an API cancel, say) can never both win. Re-entering the current state is a no-op, which makes
# retried transitions idempotent. ARGV[5] is when the payment entered the new state (epoch
# seconds), or empty for a final state, which leaves the pending index. ARGV[6] is a JSON list of
# extra history fields (name, value, ...): what was keyed, see ``transition``. ARGV[7] is when a
# final state was reached (empty for any other): the card number goes and the payment joins the
# ended index, also when the final state is entered again (a retry finishes what the first
# attempt may not have). The payment's record comes back with the outcome, so a transition is
# one round trip to Redis: a call's flow makes several, and every round trip costs the ivr
# service's one event loop as much as the command costs Redis.
_TRANSITION_LUA = """
local function finish()
  if ARGV[7] ~= '' then
    redis.call('DEL', KEYS[4])
    redis.call('ZADD', KEYS[5], 'NX', ARGV[7], KEYS[1]:sub(5))
  end
end
local current = redis.call('HGET', KEYS[1], 'status')
if not current then return {'missing', ''} end
local target = ARGV[1]
if current == target then
  finish()
  return {'same', current, redis.call('HGETALL', KEYS[1])}
end
local allowed = false
for i = 8, #ARGV do
  if ARGV[i] == current then allowed = true end
end
if not allowed then return {'refused', current} end
local changes = cjson.decode(ARGV[3])
for k, v in pairs(changes) do redis.call('HSET', KEYS[1], k, v) end
redis.call('HSET', KEYS[1], 'status', target, 'updated_at', ARGV[2])
redis.call('XADD', KEYS[2], '*', 'state', target, 'at', ARGV[2], 'reason', ARGV[4],
           unpack(cjson.decode(ARGV[6])))
-- The pending index holds payment ids: the hash key without its "pay:".
if ARGV[5] == '' then
  redis.call('ZREM', KEYS[3], KEYS[1]:sub(5))
else
  redis.call('ZADD', KEYS[3], ARGV[5], KEYS[1]:sub(5))
end
-- The payment moves from its old state's index to the new one's, keeping its creation time as
-- score. (The index key is built here from the state read here: fine on one Redis, not Cluster.)
local id = string.sub(KEYS[1], 5)
local old_index = 'payments:status:' .. current
local created = redis.call('ZSCORE', old_index, id)
if created then
  redis.call('ZREM', old_index, id)
  redis.call('ZADD', 'payments:status:' .. target, created, id)
end
finish()
return {'ok', current, redis.call('HGETALL', KEYS[1])}
"""


# Sets fields of a payment that exists (never creating a record without its state), and with
# KEYS[2] keeps that key from expiring: one round trip where EXISTS then HSET took two.
_SET_FIELDS_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
if KEYS[2] then redis.call('PERSIST', KEYS[2]) end
return 1
"""


RECENT_KEY = "payments:recent"
ENDED_KEY = "payments:ended"


def status_index(state: str) -> str:
    return f"payments:status:{state}"


class StoreError(Exception):
    """A payment store refusal. Messages name payment ids and states, never card data."""


class NoSuchPayment(StoreError):
    def __init__(self, payment_id: str) -> None:
        super().__init__(f"no payment {payment_id}")
        self.payment_id = payment_id


class InvalidTransition(StoreError):
    def __init__(self, payment_id: str, current: str, target: str) -> None:
        super().__init__(f"payment {payment_id} is {current}; it cannot become {target}")
        self.payment_id = payment_id
        self.current = current
        self.target = target


_PENDING = "payments:pending"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class PaymentStore:
    def __init__(self, redis: aioredis.Redis, *, pan_ttl_seconds: int = 86400,
                 on_final: Callable[[Payment], Awaitable[None]] | None = None) -> None:
        self._redis = redis
        self._pan_ttl = pan_ttl_seconds
        self._transition = redis.register_script(_TRANSITION_LUA)
        self._set_fields = redis.register_script(_SET_FIELDS_LUA)
        # Called once per payment when it reaches a final state (the merchant's webhook).
        self.on_final = on_final

    @staticmethod
    def _key(payment_id: str) -> str:
        return f"pay:{payment_id}"

    async def create(self, fields: dict[str, str | int], *, pan_token: str | None = None,
                     payment_id: str | None = None, reason: str = "") -> Payment:
        payment_id = payment_id or new_payment_id()
        now = _now()
        check_field_names(fields)
        record = {k: str(v) for k, v in fields.items()}
        record.update(id=payment_id, status=PaymentState.CREATED.value, created_at=now, updated_at=now)
        key = self._key(payment_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=record)
            pipe.xadd(f"{key}:history", {"state": PaymentState.CREATED.value, "at": now, "reason": reason})
            created = time.time()
            pipe.zadd(_PENDING, {payment_id: created})
            pipe.zadd(RECENT_KEY, {payment_id: created})
            pipe.zadd(status_index(PaymentState.CREATED.value), {payment_id: created})
            if pan_token is not None:
                pipe.set(f"{key}:pan", pan_token, ex=self._pan_ttl)
            await pipe.execute()
        return Payment.from_record(record)

    async def transition(self, payment_id: str, target: PaymentState, *, reason: str = "",
                         keyed: tuple[str, int] | None = None, **changes: str | int) -> Payment:
        """Move a payment to ``target`` if its current state allows it; returns the new payment.

        ``keyed``: (field, digits) when the transition follows the caller keying a field (pin,
        expiry, cvv2, id): the history entry gets ``field`` and ``digits``, how many were keyed
        and never which. What the agent console shows as "6 digits entered".
        """
        check_field_names(changes)
        allowed = [s.value for s in TRANSITIONS.get(target, frozenset())]
        key = self._key(payment_id)
        final = target in FINAL_STATES
        now = repr(time.time())
        outcome, current, *record = await self._transition(
            keys=[key, f"{key}:history", _PENDING, f"{key}:pan", ENDED_KEY],
            args=[target.value, _now(), json.dumps({k: str(v) for k, v in changes.items()}), reason,
                  "" if final else now,
                  json.dumps(["field", keyed[0], "digits", str(keyed[1])] if keyed else []),
                  now if final else "", *allowed],
        )
        outcome, current = _text(outcome), _text(current)
        if outcome == "missing":
            raise NoSuchPayment(payment_id)
        if outcome == "refused":
            raise InvalidTransition(payment_id, current, target.value)
        payment = Payment.from_record(_fields(record[0]))
        if final and self.on_final is not None:
            await self.on_final(payment)
        return payment

    async def note(self, payment_id: str, reason: str, *, event: str = "", about: str = "",
                   keyed: tuple[str, int] | None = None) -> None:
        """A history entry without a state change (e.g. "attempt 2: busy"). ``event`` names what
        happened for programs that read the history (the agent console): "ringing"; ``about``
        the field it concerns ("pin"); ``keyed`` is as for ``transition``."""
        key = self._key(payment_id)
        payment = await self.get(payment_id)
        entry = {"state": payment.status, "at": _now(), "reason": reason}
        if event:
            entry["event"] = event
        if about:
            entry["about"] = about
        if keyed:
            entry.update(field=keyed[0], digits=str(keyed[1]))
        await self._redis.xadd(f"{key}:history", entry)

    async def update(self, payment_id: str, **changes: str | int) -> None:
        """Set informational fields that are not a state change (e.g. the call's unique id)."""
        check_field_names(changes)
        await self._set(payment_id, {k: str(v) for k, v in changes.items()})

    async def set_once(self, payment_id: str, name: str, value: str) -> bool:
        """Set a field only if the payment has none yet (HSETNX): True for the one writer that
        did. Two deciders racing (an operator, a timeout) agree on who decided."""
        check_field_names([name])
        if not await self._redis.exists(self._key(payment_id)):
            raise NoSuchPayment(payment_id)
        return bool(await self._redis.hsetnx(self._key(payment_id), name, value))

    async def prepare_authorization(self, payment_id: str, **fields: str) -> None:
        """Record what a reversal needs before the purchase is sent, and keep the card number
        until the payment is final: a process that dies mid-authorization leaves enough behind
        for recovery to reverse it without the caller."""
        await self._set(payment_id, fields, persist=f"{self._key(payment_id)}:pan")

    async def _set(self, payment_id: str, fields: dict[str, str], *, persist: str = "") -> None:
        if not fields:
            raise ValueError("no fields to set")
        keys = [self._key(payment_id), persist] if persist else [self._key(payment_id)]
        if not await self._set_fields(keys=keys, args=[x for kv in fields.items() for x in kv]):
            raise NoSuchPayment(payment_id)

    async def approved_at(self, payment: Payment) -> datetime:
        """When the payment was approved: its history says; an anonymised payment (history gone,
        long after any refund window) falls back to its last update."""
        for entry in reversed(await self.history(payment.id)):
            if entry.get("state") == PaymentState.APPROVED.value:
                return datetime.fromisoformat(entry["at"])
        return datetime.fromisoformat(payment.updated_at)

    async def pending_since(self, before: float) -> list[str]:
        """Ids of payments not final that entered their state before ``before`` (epoch s), oldest
        first."""
        ids = await self._redis.zrangebyscore(_PENDING, "-inf", before)
        return [_text(raw) for raw in ids]

    async def get(self, payment_id: str) -> Payment:
        raw = await self._redis.hgetall(self._key(payment_id))
        if not raw:
            raise NoSuchPayment(payment_id)
        return Payment.from_record({_text(k): _text(v) for k, v in raw.items()})

    async def pan_token(self, payment_id: str) -> str | None:
        value = await self._redis.get(f"{self._key(payment_id)}:pan")
        return _text(value) if value is not None else None

    async def history(self, payment_id: str) -> list[dict[str, str]]:
        entries = await self._redis.xrange(f"{self._key(payment_id)}:history")
        return [{_text(k): _text(v) for k, v in data.items()} for _, data in entries]

    async def recent(self, *, status: str | None = None, limit: int = 50) -> list[Payment]:
        """The newest payments first, optionally only those now in ``status``.

        One index read and one pipelined read of the records, whatever the store holds. A record
        that changed state or expired between the two reads is left out.
        """
        index = RECENT_KEY if status is None else status_index(status)
        ids = [_text(i) for i in await self._redis.zrevrange(index, 0, limit - 1)]
        async with self._redis.pipeline(transaction=False) as pipe:
            for payment_id in ids:
                pipe.hgetall(self._key(payment_id))
            records = await pipe.execute()
        found: list[Payment] = []
        for payment_id, raw in zip(ids, records):
            fields = {_text(k): _text(v) for k, v in raw.items()}
            if fields and (status is None or fields["status"] == status):
                found.append(Payment.from_record(fields))
        return found

    async def in_state(self, status: PaymentState, *, older_than: float,
                       limit: int = 500, newer_than: float | str = "-inf") -> list[str]:
        """Ids of payments now in ``status`` created before the unix time ``older_than`` (and
        not before ``newer_than``)."""
        ids = await self._redis.zrangebyscore(status_index(status.value), newer_than, older_than,
                                              start=0, num=limit)
        return [_text(i) for i in ids]

    async def next_stan(self) -> str:
        value = await self._redis.incr("acquirer:stan")
        return f"{(value - 1) % 999999 + 1:06d}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _fields(flat: list[bytes | str]) -> dict[str, str]:
    """A hash as a script returns HGETALL's reply: name, value, name, value, ..."""
    return {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}
