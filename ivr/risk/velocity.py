"""Velocity: counts and sums over sliding windows per card, mobile, ID number, merchant and source.

Each counter below is a fact the rules can use. Redis keeps one sorted set per measure and subject
(``risk:vel:<measure>:<kind>:<digest>``, scored by time), so every window over it is exact, not a
bucketed estimate:

- ``payments``: member = payment id, how many payments named the subject;
- ``amount``: member = ``<payment id>:<fen>``, the sum of their amounts;
- ``cards``: member = the card's digest, how many distinct cards went with the subject.

``record`` adds one payment and reads every counter in one Lua script, so concurrent payments never
lose an update and the numbers include the payment itself. It is idempotent by payment id: a
retried or duplicated assessment finds ``risk:vel:seen:<payment id>`` and only reads. Every
assessed payment counts towards ``payments`` and ``cards`` (card testing is made of declined
attempts); a payment risk control declined is taken out of ``amount`` again (``forget_amount``), so
a refused large order does not use up an honest cardholder's daily limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import redis.asyncio as aioredis

from ivr.money import Money
from ivr.risk.subjects import Subject

__all__ = ["Counter", "COUNTERS", "Velocity"]

Measure = Literal["payments", "amount", "cards"]

_HOUR = 3600
_DAY = 24 * _HOUR


@dataclass(frozen=True)
class Counter:
    name: str          # the fact's name in rules
    kind: str          # the subject it is kept per
    measure: Measure
    window_s: int


COUNTERS: tuple[Counter, ...] = (
    Counter("card_payments_1h", "card", "payments", _HOUR),        # card testing
    Counter("card_payments_24h", "card", "payments", _DAY),
    Counter("card_amount_24h", "card", "amount", _DAY),            # the per-card daily limit (yuan)
    Counter("mobile_cards_24h", "mobile", "cards", _DAY),          # many cards on one mobile
    Counter("mobile_payments_24h", "mobile", "payments", _DAY),
    Counter("id_number_cards_24h", "id_number", "cards", _DAY),    # many cards on one ID number
    Counter("merchant_payments_10m", "merchant", "payments", 600),  # merchant bursts
    Counter("source_payments_10m", "source", "payments", 600),
)

_SEEN_TTL_S = max(c.window_s for c in COUNTERS)

# KEYS[1]: the payment's seen marker; KEYS[2..]: sorted sets. ARGV: now, seen TTL, then per sorted
# set its member ("" = nothing to add) and the longest window kept; then per counter the index of
# its set in KEYS, its window, and 1 if it sums the amounts in the members.
_RECORD = """
local now = tonumber(ARGV[1])
local fresh = redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2])
local i = 3
for k = 2, #KEYS do
  local member, keep = ARGV[i], tonumber(ARGV[i + 1])
  i = i + 2
  if fresh and member ~= '' then redis.call('ZADD', KEYS[k], now, member) end
  redis.call('ZREMRANGEBYSCORE', KEYS[k], '-inf', now - keep)
  redis.call('EXPIRE', KEYS[k], math.ceil(keep))
end
local out = {}
while i <= #ARGV do
  local key, since = KEYS[tonumber(ARGV[i])], '(' .. (now - tonumber(ARGV[i + 1]))
  if ARGV[i + 2] == '1' then
    local total = 0
    for _, m in ipairs(redis.call('ZRANGEBYSCORE', key, since, '+inf')) do
      total = total + tonumber(string.match(m, ':(%d+)$'))
    end
    out[#out + 1] = total
  else
    out[#out + 1] = redis.call('ZCOUNT', key, since, '+inf')
  end
  i = i + 3
end
return out
"""


def _key(measure: str, subject: Subject) -> str:
    return f"risk:vel:{measure}:{subject.kind}:{subject.digest}"


class Velocity:
    def __init__(self, redis: aioredis.Redis, counters: tuple[Counter, ...] = COUNTERS) -> None:
        self._redis = redis
        self._counters = counters
        self._script = redis.register_script(_RECORD)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self._counters)

    async def record(self, payment_id: str, amount: Money, subjects: dict[str, Subject],
                     now: float) -> dict[str, float]:
        """Count this payment (once) and return every counter, this payment included. A counter
        whose subject the payment lacks (no source, no ID number) is 0."""
        members = {"payments": payment_id, "amount": f"{payment_id}:{amount.fen}",
                   "cards": subjects["card"].digest if "card" in subjects else ""}
        keys: list[str] = []
        keep: dict[str, int] = {}
        member_of: dict[str, str] = {}
        for c in self._counters:
            if c.kind in subjects:
                key = _key(c.measure, subjects[c.kind])
                if key not in keep:
                    keys.append(key)
                    member_of[key] = members[c.measure]
                keep[key] = max(keep.get(key, 0), c.window_s)
        args: list[object] = [now, _SEEN_TTL_S]
        for key in keys:
            args += [member_of[key], keep[key]]
        asked = [c for c in self._counters if c.kind in subjects]
        for c in asked:
            args += [keys.index(_key(c.measure, subjects[c.kind])) + 2, c.window_s,
                     1 if c.measure == "amount" else 0]
        values = await self._script(keys=[f"risk:vel:seen:{payment_id}", *keys], args=args)
        numbers = {c.name: 0.0 for c in self._counters}
        for c, value in zip(asked, values):
            numbers[c.name] = int(value) / 100 if c.measure == "amount" else float(value)
        return numbers

    async def forget_amount(self, payment_id: str, amount: Money,
                            subjects: dict[str, Subject]) -> None:
        """Take a declined payment out of the sums (it stays in the counts)."""
        member = f"{payment_id}:{amount.fen}"
        keys = {_key("amount", subjects[c.kind]) for c in self._counters
                if c.measure == "amount" and c.kind in subjects}
        async with self._redis.pipeline(transaction=True) as pipe:
            for key in sorted(keys):
                pipe.zrem(key, member)
            await pipe.execute()
