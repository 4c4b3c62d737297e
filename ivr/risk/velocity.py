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

A rotation of the cardholder key (the digests' key) changes every subject's digest, so new
payments are recorded in new sets. Each counter reads the sets under every readable key and adds
them up, so the windows run on across a rotation as long as the old key is not retired; retire
it no sooner than the longest window (7 days) after the rotation, or the counters restart. The
one approximation: a card seen on both sides of a rotation is two members of a ``cards`` set
(one digest per key), so ``mobile_cards_24h`` and ``id_number_cards_24h`` may count it twice for
at most a day: a higher count, the cautious side.
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
    Counter("merchant_payments_1h", "merchant", "payments", _HOUR),
    # The merchant's own normal rate (and a merchant with none: new or dormant), so a burst is
    # measured against what is usual for that merchant, not one number for every merchant.
    Counter("merchant_payments_7d", "merchant", "payments", 7 * _DAY),
    Counter("source_payments_10m", "source", "payments", 600),
)

_SEEN_TTL_S = max(c.window_s for c in COUNTERS)

# KEYS[1]: the payment's seen marker; KEYS[2..]: sorted sets. ARGV: now, seen TTL, then per sorted
# set its member ("" = nothing to add: the sets under older keys are only read) and the longest
# window kept; then per counter how many sets it adds up, their indexes in KEYS, its window, and 1
# if it sums the amounts in the members.
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
  local n = tonumber(ARGV[i])
  local since, sum = '(' .. (now - tonumber(ARGV[i + n + 1])), ARGV[i + n + 2] == '1'
  local total = 0
  for j = 1, n do
    local key = KEYS[tonumber(ARGV[i + j])]
    if sum then
      for _, m in ipairs(redis.call('ZRANGEBYSCORE', key, since, '+inf')) do
        total = total + tonumber(string.match(m, ':(%d+)$'))
      end
    else
      total = total + redis.call('ZCOUNT', key, since, '+inf')
    end
  end
  out[#out + 1] = total
  i = i + n + 3
end
return out
"""


def _key(measure: str, subject: Subject, digest: str | None = None) -> str:
    return f"risk:vel:{measure}:{subject.kind}:{digest or subject.digest}"


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
        read: dict[str, list[str]] = {}  # per counter, its sets: the current key's, then older
        for c in self._counters:
            if c.kind in subjects:
                subject = subjects[c.kind]
                read[c.name] = [_key(c.measure, subject, d) for d in subject.digests]
                for index, key in enumerate(read[c.name]):
                    if key not in keep:
                        keys.append(key)
                        member_of[key] = members[c.measure] if index == 0 else ""
                    keep[key] = max(keep.get(key, 0), c.window_s)
        args: list[object] = [now, _SEEN_TTL_S]
        for key in keys:
            args += [member_of[key], keep[key]]
        asked = [c for c in self._counters if c.kind in subjects]
        for c in asked:
            args += [len(read[c.name]), *(keys.index(key) + 2 for key in read[c.name]),
                     c.window_s, 1 if c.measure == "amount" else 0]
        values = await self._script(keys=[f"risk:vel:seen:{payment_id}", *keys], args=args)
        numbers = {c.name: 0.0 for c in self._counters}
        for c, value in zip(asked, values):
            numbers[c.name] = int(value) / 100 if c.measure == "amount" else float(value)
        return numbers

    async def forget_amount(self, payment_id: str, amount: Money,
                            subjects: dict[str, Subject]) -> None:
        """Take a declined payment out of the sums (it stays in the counts)."""
        member = f"{payment_id}:{amount.fen}"
        # Recorded under the key current then, which may be an older one now.
        keys = {_key("amount", subjects[c.kind], digest) for c in self._counters
                if c.measure == "amount" and c.kind in subjects
                for digest in subjects[c.kind].digests}
        async with self._redis.pipeline(transaction=True) as pipe:
            for key in sorted(keys):
                pipe.zrem(key, member)
            await pipe.execute()
