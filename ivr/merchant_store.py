"""The live merchant registry in Redis: admitted, changed and read while the stack runs.

Every ivr instance reads a merchant from Redis on each use (one HGETALL), so a change made
through any instance (suspension, new limits, a rotated key) applies to the very next request on
every instance; there is no cache to go stale.

    merchant:{id}              hash: name_en, name_zh, name_yue, mcc, status, max_amount,
                               daily_max ("" for none), key, previous_key, previous_key_until,
                               webhook_secret, admitted_at, updated_at
    merchants:ids              sorted set: merchant ids by admission time
    merchants:audit            stream: one entry per change (actor, action, merchant_id, changes
                               as JSON, at); never a secret
    merchant:{id}:day:{date}   the fen of orders accepted on that day (China time), for daily_max

``key``, ``previous_key`` and ``webhook_secret`` are sealed with AES-GCM (``ivr/crypto/secret_box.py``)
under a key in ``keys_dir``, bound to the merchant and the secret's role: Redis never holds them
in clear. A change and its audit entry are written by one Lua script, so neither exists without
the other.

At first start the seed merchants (``ivr/merchants_seed.toml``, keys from the keys file) are
added if absent; a merchant already in Redis is never overwritten by the seed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import redis.asyncio as aioredis

from ivr.config import Settings
from ivr.crypto.keyring import KeyFileWatch, KeySource
from ivr.crypto.keys import load_ivr_keys
from ivr.crypto.secret_box import SecretBox
from ivr.merchants import (NAME_FIELDS, CategoryBanned, DailyLimitReached, InvalidMerchant, Merchant,
                           MerchantExists, MerchantRegistry, MerchantStatus, UnknownMerchant,
                           banned_categories, check_fields, check_limits, check_merchant_id,
                           check_name,
                           merchant_from_fields)
from ivr.money import Money

__all__ = ["MerchantStore", "AUDIT_KEY", "IDS_KEY", "merchant_key", "OPERATOR", "iso_seconds"]

log = logging.getLogger(__name__)

IDS_KEY = "merchants:ids"
AUDIT_KEY = "merchants:audit"
# Who made a change through the admin API (the one operator token); the seed is "seed".
OPERATOR = "operator"
_KEY_BYTES = 32
_ADMIT_FIELDS = frozenset({"id", *NAME_FIELDS, "mcc", "max_amount", "daily_max"})
# Mainland China keeps one time zone and no daylight saving: a merchant's day is this day.
_CHINA = timezone(timedelta(hours=8))
_DAY_KEY_TTL_S = 2 * 86400


def merchant_key(merchant_id: str) -> str:
    return f"merchant:{merchant_id}"


# Creates the merchant unless it exists; records it in the index and the audit stream.
_CREATE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for k, v in pairs(cjson.decode(ARGV[1])) do redis.call('HSET', KEYS[1], k, v) end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
redis.call('XADD', KEYS[3], '*', unpack(ARGV, 4))
return 1
"""
# Changes an existing merchant and records the change. ARGV[2], if not empty, names a secret whose
# current sealed value becomes its "previous_" value first (a key rotation with grace). ARGV[3]:
# the values the change was checked against; if another change came first, nothing is done (-1).
_UPDATE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for k, v in pairs(cjson.decode(ARGV[3])) do
  if (redis.call('HGET', KEYS[1], k) or '') ~= v then return -1 end
end
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[1], 'previous_' .. ARGV[2], redis.call('HGET', KEYS[1], ARGV[2]))
end
for k, v in pairs(cjson.decode(ARGV[1])) do redis.call('HSET', KEYS[1], k, v) end
redis.call('XADD', KEYS[2], '*', unpack(ARGV, 4))
return 1
"""
# Replaces sealed secrets (ARGV: field, old value, new value, ...) whose value is still the old
# one: a secret rotated meanwhile is left as the rotation wrote it.
_RESEAL_LUA = """
local done = 0
for i = 1, #ARGV, 3 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2])
    done = done + 1
  end
end
return done
"""
# Adds an order's amount to the merchant's day unless that passes the limit (ARGV[2]; -1: none).
_DAILY_LUA = """
local total = redis.call('INCRBY', KEYS[1], ARGV[1])
local limit = tonumber(ARGV[2])
if limit >= 0 and total > limit then
  redis.call('DECRBY', KEYS[1], ARGV[1])
  return -1
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return total
"""


def iso_seconds(unix: float) -> str:
    return (datetime.fromtimestamp(unix, timezone.utc).isoformat(timespec="seconds")
            .replace("+00:00", "Z"))


def _known_shape(merchant_id: object) -> str:
    """An id that can name a merchant; anything else is no merchant (and no Redis key)."""
    try:
        return check_merchant_id(merchant_id)
    except InvalidMerchant:
        raise UnknownMerchant(str(merchant_id)[:16]) from None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


# The sealed fields of a merchant's hash, with the role each is bound to.
_SEALED_FIELDS = (("key", "api-key"), ("previous_key", "api-key"), ("webhook_secret", "webhook-secret"))


class _ChangedMeanwhile(Exception):
    """The fields a change was checked against changed before it was written."""


class MerchantStore:
    def __init__(self, redis: aioredis.Redis, box: SecretBox, *, banned: frozenset[str],
                 key_grace_s: float, ceiling: Money) -> None:
        self._redis = redis
        self._box = box
        self._banned = banned
        self._key_grace_s = key_grace_s
        self._ceiling = ceiling
        self._create = redis.register_script(_CREATE_LUA)
        self._update = redis.register_script(_UPDATE_LUA)
        self._daily = redis.register_script(_DAILY_LUA)
        self._reseal = redis.register_script(_RESEAL_LUA)

    @classmethod
    def from_settings(cls, redis: aioredis.Redis, settings: Settings,
                      box_key: KeySource | None = None) -> MerchantStore:
        """``box_key``: the box key's ring (the service's watched key file); by default read
        from the IVR's key file."""
        if box_key is None:
            box_key = KeyFileWatch(settings.ivr_keys_file, load_ivr_keys).ring("box_key")
        return cls(redis, SecretBox(box_key),
                   banned=banned_categories(settings.banned_mccs),
                   key_grace_s=settings.merchant_key_grace_s, ceiling=settings.max_payment)

    def __repr__(self) -> str:
        return "MerchantStore()"

    # ---- reading --------------------------------------------------------------------------------
    async def get(self, merchant_id: str) -> Merchant:
        """The merchant as it is now, or UnknownMerchant (never None)."""
        raw = await self._redis.hgetall(merchant_key(_known_shape(merchant_id)))
        if not raw:
            raise UnknownMerchant(merchant_id)
        return self._merchant(merchant_id, {_text(k): _text(v) for k, v in raw.items()})

    async def exists(self, merchant_id: str) -> bool:
        return bool(await self._redis.exists(merchant_key(merchant_id)))

    async def list(self) -> list[Merchant]:
        """Every merchant, in the order they were admitted."""
        ids = [_text(i) for i in await self._redis.zrange(IDS_KEY, 0, -1)]
        return [await self.get(merchant_id) for merchant_id in ids]

    async def audit(self, *, merchant_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The newest audit entries first (of one merchant if given)."""
        entries = []
        # Read in pages from the newest, so one merchant's history is found among the others'.
        last = "+"
        while len(entries) < limit:
            page = await self._redis.xrevrange(AUDIT_KEY, max=last, count=200)
            if not page:
                break
            for entry_id, values in page:
                entry = {_text(k): _text(v) for k, v in values.items()}
                if merchant_id is None or entry["merchant_id"] == merchant_id:
                    entries.append({"id": _text(entry_id), **entry,
                                    "changes": json.loads(entry["changes"])})
            last = "(" + _text(page[-1][0])
        return entries[:limit]

    def _merchant(self, merchant_id: str, h: dict[str, str]) -> Merchant:
        def secret(field: str, role: str) -> bytes:
            return self._box.open(h[field], f"{merchant_id}:{role}") if h.get(field) else b""

        return Merchant(
            id=merchant_id, name_en=h["name_en"], name_zh=h["name_zh"],
            name_yue=h.get("name_yue", ""), mcc=h["mcc"], status=MerchantStatus(h["status"]),
            max_amount=Money.parse(h["max_amount"]),
            daily_max=Money.parse(h["daily_max"]) if h.get("daily_max") else None,
            key=secret("key", "api-key"), previous_key=secret("previous_key", "api-key"),
            previous_key_until=float(h.get("previous_key_until") or 0),
            webhook_secret=secret("webhook_secret", "webhook-secret"),
            banned_mccs=self._banned)

    async def reseal_all(self) -> int:
        """Seal every merchant's secrets still under an older box key under the current one, so
        the older key can be retired; how many secrets were resealed. Idempotent, any instance."""
        done = 0
        for merchant_id in [_text(i) for i in await self._redis.zrange(IDS_KEY, 0, -1)]:
            raw = await self._redis.hgetall(merchant_key(merchant_id))
            h = {_text(k): _text(v) for k, v in raw.items()}
            args: list[str] = []
            for field, role in _SEALED_FIELDS:
                new = self._box.reseal(h[field], f"{merchant_id}:{role}") if h.get(field) else None
                if new is not None:
                    args += [field, h[field], new]
            if args:
                done += int(await self._reseal(keys=[merchant_key(merchant_id)], args=args))
        if done:
            log.info("merchant registry: %d secrets resealed under the current box key", done)
        return done

    # ---- admission ------------------------------------------------------------------------------
    async def seed(self, registry: MerchantRegistry) -> int:
        """Add the seed merchants that are not in Redis yet; how many were added."""
        added = 0
        for merchant_id in registry:
            merchant = registry.get(merchant_id)
            if await self._insert(merchant, actor="seed", action="seeded"):
                added += 1
        if added:
            log.info("merchant registry: %d seed merchants added", added)
        return added

    async def seed_when_reachable(self, registry: MerchantRegistry, *, retry_s: float = 1.0) -> int:
        """``seed``, retried until Redis answers (an ivr instance may start before its Redis)."""
        while True:
            try:
                return await self.seed(registry)
            except (aioredis.ConnectionError, aioredis.TimeoutError, OSError):
                log.warning("merchant registry: Redis unreachable, seeding again in %gs", retry_s)
                await asyncio.sleep(retry_s)

    async def admit(self, fields: Mapping[str, object], *,
                    actor: str = OPERATOR) -> tuple[Merchant, bytes, bytes]:
        """Admit a new merchant: (merchant, its API key, its webhook secret), the secrets to be
        shown once. InvalidMerchant, CategoryBanned or MerchantExists otherwise."""
        check_fields(fields, _ADMIT_FIELDS)
        entry = dict(fields)
        entry.setdefault("id", f"M{secrets.randbelow(900000) + 100000}")
        merchant = merchant_from_fields(entry, status=MerchantStatus.ACTIVE, ceiling=self._ceiling)
        if merchant.mcc in self._banned:
            raise CategoryBanned(merchant.mcc)
        key, webhook_secret = secrets.token_bytes(_KEY_BYTES), secrets.token_bytes(_KEY_BYTES)
        merchant = replace(merchant, key=key, webhook_secret=webhook_secret, banned_mccs=self._banned)
        if not await self._insert(merchant, actor=actor, action="admitted"):
            raise MerchantExists(merchant.id)
        log.info("merchant %s admitted (category %s) by %s", merchant.id, merchant.mcc, actor)
        return merchant, key, webhook_secret

    async def _insert(self, merchant: Merchant, *, actor: str, action: str) -> bool:
        now = time.time()
        record = {
            "name_en": merchant.name_en, "name_zh": merchant.name_zh, "name_yue": merchant.name_yue,
            "mcc": merchant.mcc, "status": merchant.status.value,
            "max_amount": merchant.max_amount.yuan,
            "daily_max": merchant.daily_max.yuan if merchant.daily_max else "",
            "key": self._box.seal(merchant.key, f"{merchant.id}:api-key"),
            "webhook_secret": self._box.seal(merchant.webhook_secret, f"{merchant.id}:webhook-secret"),
            "admitted_at": iso_seconds(now), "updated_at": iso_seconds(now),
        }
        public = {k: v for k, v in merchant.to_public().items() if k != "category_banned"}
        created = await self._create(
            keys=[merchant_key(merchant.id), IDS_KEY, AUDIT_KEY],
            args=[json.dumps(record), now, merchant.id,
                  *self._audit_entry(actor, action, merchant.id, public, now)])
        return bool(created)

    # ---- changes --------------------------------------------------------------------------------
    async def suspend(self, merchant_id: str, *, reason: str = "", actor: str = OPERATOR) -> Merchant:
        """Its requests are refused (403) and its payments declined from the next one on."""
        return await self._change(merchant_id, "suspended", {"status": MerchantStatus.SUSPENDED.value},
                                  actor=actor, note={"reason": reason} if reason else {})

    async def reactivate(self, merchant_id: str, *, reason: str = "",
                         actor: str = OPERATOR) -> Merchant:
        merchant = await self.get(merchant_id)
        if merchant.category_banned:  # banned since it was admitted: it stays suspended
            raise CategoryBanned(merchant.mcc)
        return await self._change(merchant_id, "reactivated", {"status": MerchantStatus.ACTIVE.value},
                                  actor=actor, note={"reason": reason} if reason else {})

    async def set_limits(self, merchant_id: str, changes: Mapping[str, object], *,
                         actor: str = OPERATOR) -> Merchant:
        """New ``max_amount`` and/or ``daily_max`` (None removes the daily limit)."""
        check_fields(changes, ("max_amount", "daily_max"))
        while True:
            merchant = await self.get(merchant_id)
            current = {"max_amount": merchant.max_amount.yuan,
                       "daily_max": merchant.daily_max.yuan if merchant.daily_max else ""}
            # Checked together with the limit not being changed: daily_max >= max_amount holds.
            max_amount, daily_max = check_limits(
                changes.get("max_amount", current["max_amount"]),
                changes.get("daily_max", current["daily_max"] or None), ceiling=self._ceiling)
            record = {"max_amount": max_amount.yuan, "daily_max": daily_max.yuan if daily_max else ""}
            try:
                return await self._change(merchant_id, "limits-changed", record, actor=actor,
                                          expect=current)
            except _ChangedMeanwhile:
                continue  # another operator's change came first: check against it

    async def set_names(self, merchant_id: str, changes: Mapping[str, object], *,
                        actor: str = OPERATOR) -> Merchant:
        """New display names; an empty ``name_yue`` falls back to the Mandarin name again."""
        check_fields(changes, NAME_FIELDS)
        record = {name: check_name(name, value, optional=name == "name_yue")
                  for name, value in changes.items()}
        return await self._change(merchant_id, "names-changed", record, actor=actor)

    async def rotate_key(self, merchant_id: str, *, actor: str = OPERATOR) -> tuple[Merchant, bytes]:
        """A new API key (returned, to be shown once); the old one verifies for the grace period."""
        key = secrets.token_bytes(_KEY_BYTES)
        until = time.time() + self._key_grace_s
        merchant = await self._change(
            merchant_id, "key-rotated",
            {"key": self._box.seal(key, f"{merchant_id}:api-key"), "previous_key_until": repr(until)},
            actor=actor, move_to_previous="key", note={"previous_key_valid_until": iso_seconds(until)})
        return merchant, key

    async def rotate_webhook_secret(self, merchant_id: str, *,
                                    actor: str = OPERATOR) -> tuple[Merchant, bytes]:
        """A new webhook secret (returned, to be shown once): every webhook from now on is signed
        with it."""
        secret = secrets.token_bytes(_KEY_BYTES)
        merchant = await self._change(
            merchant_id, "webhook-secret-rotated",
            {"webhook_secret": self._box.seal(secret, f"{merchant_id}:webhook-secret")}, actor=actor)
        return merchant, secret

    async def _change(self, merchant_id: str, action: str, record: dict[str, str], *, actor: str,
                      move_to_previous: str = "", note: dict[str, str] | None = None,
                      expect: dict[str, str] | None = None) -> Merchant:
        _known_shape(merchant_id)
        now = time.time()
        # Sealed secrets are never part of the audit: it says a secret changed, not to what.
        shown = {k: v for k, v in record.items() if k not in ("key", "webhook_secret",
                                                              "previous_key_until")}
        changed = await self._update(
            keys=[merchant_key(merchant_id), AUDIT_KEY],
            args=[json.dumps({**record, "updated_at": iso_seconds(now)}), move_to_previous,
                  json.dumps(expect or {}), *self._audit_entry(actor, action, merchant_id, {**shown, **(note or {})}, now)])
        if changed == -1:
            raise _ChangedMeanwhile()
        if not changed:
            raise UnknownMerchant(merchant_id)
        log.info("merchant %s: %s by %s", merchant_id, action, actor)
        return await self.get(merchant_id)

    @staticmethod
    def _audit_entry(actor: str, action: str, merchant_id: str, changes: dict[str, Any],
                     now: float) -> list[str]:
        return ["actor", actor, "action", action, "merchant_id", merchant_id,
                "changes", json.dumps(changes, ensure_ascii=False, sort_keys=True), "at", iso_seconds(now)]

    # ---- the daily total ------------------------------------------------------------------------
    async def count_order(self, merchant: Merchant, amount: Money, *, now: float | None = None) -> None:
        """Add an accepted order to the merchant's day, or DailyLimitReached if that would pass
        its ``daily_max`` (then nothing is added). Every accepted order counts, whatever its
        outcome later: the limit bounds what a merchant can ask for in a day."""
        day = datetime.fromtimestamp(time.time() if now is None else now, _CHINA).strftime("%Y%m%d")
        limit = merchant.daily_max.fen if merchant.daily_max is not None else -1
        total = await self._daily(keys=[f"merchant:{merchant.id}:day:{day}"],
                                  args=[amount.fen, limit, _DAY_KEY_TTL_S])
        if total == -1:
            raise DailyLimitReached(merchant.daily_max)  # type: ignore[arg-type]
