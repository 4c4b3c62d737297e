"""Retention on a real Redis: personal data goes after retention_days, the index stays bounded."""

from __future__ import annotations

import time

import pytest
import redis.asyncio as aioredis

from ivr.oneline.orders import RETURNING_KEY, ReturningCardholders
from ivr.payments.retention import ANONYMOUS_FIELDS, DAY, RetentionSweep
from ivr.payments.store import PaymentState, PaymentStore

S = PaymentState
PERSONAL = {"cardholder_name": "Zhang San", "id_number_masked": "110105********002X",
            "mobile": "13900000001", "pan_first6": "622188", "pan_last4": "0011",
            "notify_url": "http://127.0.0.1:9/hook", "call_id": "1700000000.1"}


@pytest.fixture
def store(redis_client: aioredis.Redis) -> PaymentStore:
    return PaymentStore(redis_client)


def sweep(redis: aioredis.Redis, *, recent_max: int = 1000) -> RetentionSweep:
    return RetentionSweep(redis, retention_days=180, record_retention_days=1825,
                          recent_index_max=recent_max)


async def ended_payment(store: PaymentStore, redis: aioredis.Redis) -> str:
    payment = await store.create({"amount_minor": 8800, "merchant_id": "M000001",
                                  "merchant_order_id": "A-1", **PERSONAL}, pan_token="v1.token")
    await store.transition(payment.id, S.RISK_PASSED)
    await store.transition(payment.id, S.CALLING)
    await store.transition(payment.id, S.ANSWERED)
    await store.transition(payment.id, S.REFUSED, reason="cardholder pressed 2")
    await redis.rpush(f"pay:{payment.id}:webhooks", '{"attempt": 1}')
    await redis.hset(f"pay:{payment.id}:webhook", mapping={"url": PERSONAL["notify_url"]})
    return payment.id


async def test_a_final_payment_is_reduced_to_an_anonymous_record_after_retention(
        store: PaymentStore, redis_client: aioredis.Redis) -> None:
    payment_id = await ended_payment(store, redis_client)
    # Not yet: the retention period has not passed.
    assert (await sweep(redis_client).run_once()).anonymised == 0
    assert (await store.get(payment_id)).record["cardholder_name"] == "Zhang San"

    report = await sweep(redis_client).run_once(now=time.time() + 181 * DAY)
    assert report.anonymised == 1
    record = await store.get(payment_id)
    assert set(record.record) <= set(ANONYMOUS_FIELDS) | {"anonymised_at"}
    assert record.status == "refused" and record.record["amount_minor"] == "8800"
    assert record.record["merchant_order_id"] == "A-1"
    raw = b" ".join(v for pair in (await redis_client.hgetall(f"pay:{payment_id}")).items()
                    for v in pair)
    for value in PERSONAL.values():
        assert value.encode() not in raw
    for satellite in ("history", "webhook", "webhooks", "pan"):
        assert not await redis_client.exists(f"pay:{payment_id}:{satellite}")
    # The record itself lives on until record retention after creation, then expires.
    ttl = await redis_client.ttl(f"pay:{payment_id}")
    assert (1825 - 181 - 1) * DAY < ttl <= (1825 - 181) * DAY + 5
    # Done once: a second sweep has nothing left to reduce.
    assert (await sweep(redis_client).run_once(now=time.time() + 182 * DAY)).anonymised == 0


async def test_a_payment_still_in_progress_is_never_reduced(store: PaymentStore,
                                                            redis_client: aioredis.Redis) -> None:
    payment = await store.create({"amount_minor": 1, **PERSONAL})
    await store.transition(payment.id, S.RISK_PASSED)
    await sweep(redis_client).run_once(now=time.time() + 400 * DAY)
    assert (await store.get(payment.id)).record["mobile"] == PERSONAL["mobile"]


async def test_the_payments_index_is_bounded_by_count_and_age(store: PaymentStore,
                                                              redis_client: aioredis.Redis) -> None:
    ids = [(await store.create({"amount_minor": n})).id for n in range(1, 8)]
    report = await sweep(redis_client, recent_max=5).run_once()
    assert report.forgotten == 2
    assert [p.id for p in await store.recent(limit=50)] == list(reversed(ids))[:5]
    report = await sweep(redis_client, recent_max=5).run_once(now=time.time() + 1826 * DAY)
    assert report.forgotten == 5 and await store.recent() == []


async def test_listing_skips_records_that_expired_and_finds_an_old_state_at_once(
        store: PaymentStore, redis_client: aioredis.Redis) -> None:
    wanted = (await store.create({"amount_minor": 1})).id
    await store.transition(wanted, S.RISK_DECLINED)
    for n in range(1200):  # newer payments in another state: more than the old code scanned
        await store.create({"amount_minor": n + 2})
    gone = (await store.create({"amount_minor": 9})).id
    await redis_client.delete(f"pay:{gone}")  # expired since the index was written
    found = await store.recent(status="risk_declined", limit=5)
    assert [p.id for p in found] == [wanted]
    newest = await store.recent(limit=3)
    # The index is read first: a record gone since then is left out, never shown half-read.
    assert gone not in [p.id for p in newest] and len(newest) == 2


async def test_each_payment_is_in_exactly_its_current_states_index(
        store: PaymentStore, redis_client: aioredis.Redis) -> None:
    payment_id = await ended_payment(store, redis_client)
    for state in PaymentState:
        members = await redis_client.zrange(f"payments:status:{state.value}", 0, -1)
        assert (payment_id.encode() in members) == (state is S.REFUSED), state
    created = await redis_client.zscore("payments:recent", payment_id)
    assert await redis_client.zscore("payments:status:refused", payment_id) == created
    assert await store.in_state(S.REFUSED, older_than=time.time()) == [payment_id]
    assert await store.in_state(S.REFUSED, older_than=created - 1) == []


async def test_a_returning_cardholder_is_forgotten_retention_days_after_last_seen(
        redis_client: aioredis.Redis) -> None:
    returning = ReturningCardholders(redis_client, bytes(range(32)))
    await returning.remember("6221881000000011", "13900000001")
    assert await returning.seen("6221881000000011", "13900000001")
    sweep = RetentionSweep(redis_client, retention_days=180, record_retention_days=1825,
                           recent_index_max=1000, aged_sets=(RETURNING_KEY,))
    await sweep.run_once(now=time.time() + 179 * DAY)
    assert await returning.seen("6221881000000011", "13900000001")
    await sweep.run_once(now=time.time() + 181 * DAY)
    assert not await returning.seen("6221881000000011", "13900000001")
    assert await redis_client.exists(RETURNING_KEY) == 0
