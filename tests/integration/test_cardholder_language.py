"""The language of a cardholder's last payment, in the real Redis (ivr/callback/cardholder_language.py)."""

from __future__ import annotations

import redis.asyncio as aioredis

from ivr.callback.cardholder_language import LANGUAGE_KEY_PREFIX, CardholderLanguages
from ivr.money import Money
from ivr.orders import Order

MOBILE = "13800138000"
OTHER = "13900139000"


def order(mobile: str, language: str | None) -> Order:
    return Order(merchant_order_id="O1", amount=Money.parse("1.00"), description="bill",
                 card_number="6221881000000011", cardholder_name="Zhang San",
                 id_number="110105199001010014", mobile=mobile, language=language)


async def test_an_order_without_a_language_gets_the_last_one(redis_client: aioredis.Redis) -> None:
    languages = CardholderLanguages(redis_client, b"k" * 32, ttl_seconds=3600)
    assert await languages.choose(order(MOBILE, None)) == "zh"  # never seen: Mandarin
    assert await languages.choose(order(MOBILE, "yue")) == "yue"  # the order says
    assert await languages.choose(order(MOBILE, None)) == "yue"  # the last one
    assert await languages.choose(order(OTHER, None)) == "zh"  # someone else
    assert await languages.choose(order(MOBILE, "en")) == "en"
    assert await languages.choose(order(MOBILE, None)) == "en"


async def test_redis_holds_a_keyed_digest_never_the_number(redis_client: aioredis.Redis) -> None:
    await CardholderLanguages(redis_client, b"k" * 32, ttl_seconds=3600).choose(order(MOBILE, "yue"))
    keys = [k.decode() for k in await redis_client.keys(f"{LANGUAGE_KEY_PREFIX}*")]
    assert len(keys) == 1 and MOBILE not in keys[0]
    assert 0 < await redis_client.ttl(keys[0]) <= 3600
    # Another key (another deployment) finds nothing: the digest is keyed, not a plain hash.
    assert await CardholderLanguages(redis_client, b"x" * 32, ttl_seconds=60).last(MOBILE) is None
