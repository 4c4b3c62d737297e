"""The language a cardholder was last called in, so the next call speaks it too.

A merchant's order may name the language of the call; one that does not gets the language of the
cardholder's last payment, else Mandarin. The cardholder is known by their mobile number, kept
only as a keyed digest (HMAC-SHA256 under the IVR's cardholder key, with its own label so it
matches no other digest of the same number): Redis never holds the number. Each entry expires
after the retention period, like the payments it was learnt from.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from ivr.crypto.keyring import KeySource
from ivr.orders import Order
from ivr.risk.subjects import SubjectDigester
from ivr.speech import DEFAULT_LANGUAGE, LANGUAGES

__all__ = ["CardholderLanguages", "LANGUAGE_KEY_PREFIX"]

LANGUAGE_KEY_PREFIX = "cardholders:language:"


class CardholderLanguages:
    def __init__(self, redis: aioredis.Redis, key: bytes | KeySource, *, ttl_seconds: int) -> None:
        self._redis = redis
        self._digests = SubjectDigester(key)
        self._ttl_seconds = ttl_seconds

    def _redis_key(self, mobile: str) -> str:
        return LANGUAGE_KEY_PREFIX + self._digests.digest("language", mobile)

    async def last(self, mobile: str) -> str | None:
        """Looked up under every readable cardholder key, the current one first."""
        keys = [LANGUAGE_KEY_PREFIX + d for d in self._digests.digests("language", mobile)]
        for value in await self._redis.mget(keys):
            language = value.decode() if isinstance(value, bytes) else value
            if language in LANGUAGES:
                return language
        return None

    async def choose(self, order: Order) -> str:
        """The order's language if it names one, else the cardholder's last, else Mandarin; the
        choice is remembered as their last."""
        language = order.language or await self.last(order.mobile) or DEFAULT_LANGUAGE
        await self._redis.set(self._redis_key(order.mobile), language, ex=self._ttl_seconds)
        return language
