"""PaymentStore on a real Redis: the Lua transition script, history streams and card-number expiry."""

from __future__ import annotations

import asyncio
import itertools

import pytest
import redis.asyncio as aioredis

from ivr.payments.store import (
    FINAL_STATES,
    TRANSITIONS,
    InvalidTransition,
    NoSuchPayment,
    Payment,
    PaymentState,
    PaymentStore,
)

S = PaymentState
PAN_TTL = 600
# An opaque stand-in for a PanVault token: the store never looks inside it.
PAN_TOKEN = "v1.token-not-a-card-number"

ALLOWED = sorted(((source, target) for target, sources in TRANSITIONS.items() for source in sources
                  if source is not target), key=lambda pair: (pair[0].value, pair[1].value))
REFUSED = [(source, target) for source, target in itertools.product(PaymentState, repeat=2)
           if source is not target and source not in TRANSITIONS.get(target, frozenset())]


@pytest.fixture
def store(redis_client: aioredis.Redis) -> PaymentStore:
    return PaymentStore(redis_client, pan_ttl_seconds=PAN_TTL)


async def force_status(redis: aioredis.Redis, payment_id: str, state: PaymentState) -> None:
    """Test setup only: put a payment in ``state`` without going through the script."""
    await redis.hset(f"pay:{payment_id}", "status", state.value)


async def test_create_and_get(store: PaymentStore) -> None:
    created = await store.create({"amount_minor": 5000, "currency": "EUR", "mobile": "+33600000001"})
    assert created.id.startswith("pay_") and created.status == "created"

    fetched = await store.get(created.id)
    assert fetched.status == "created"
    assert fetched.record["amount_minor"] == "5000" and fetched.record["currency"] == "EUR"
    assert fetched.record["created_at"] == fetched.record["updated_at"]
    assert fetched.record["created_at"].endswith("Z")
    assert not fetched.is_final


async def test_create_with_a_chosen_id(store: PaymentStore) -> None:
    created = await store.create({"amount_minor": 1}, payment_id="pay_chosen")
    assert (await store.get("pay_chosen")).id == created.id == "pay_chosen"


async def test_history_has_one_entry_per_transition(store: PaymentStore) -> None:
    payment = await store.create({"amount_minor": 100}, reason="api")
    await store.transition(payment.id, S.PIN_ENTRY, reason="call answered")
    await store.transition(payment.id, S.AUTHORIZING)

    history = await store.history(payment.id)
    assert [entry["state"] for entry in history] == ["created", "pin_entry", "authorizing"]
    assert [entry["reason"] for entry in history] == ["api", "call answered", ""]
    assert all(entry["at"].endswith("Z") for entry in history)
    assert (await store.get(payment.id)).record["updated_at"] == history[-1]["at"]


async def test_self_service_path(store: PaymentStore) -> None:
    payment = await store.create({"amount_minor": 2500})
    for target in (S.PIN_ENTRY, S.AUTHORIZING, S.APPROVED):
        payment = await store.transition(payment.id, target)
        assert payment.status == target.value
    assert payment.is_final
    assert [e["state"] for e in await store.history(payment.id)] == [
        "created", "pin_entry", "authorizing", "approved"]


async def test_wrong_pin_goes_back_to_pin_entry(store: PaymentStore) -> None:
    payment = await store.create({"amount_minor": 2500})
    await store.transition(payment.id, S.PIN_ENTRY)
    await store.transition(payment.id, S.AUTHORIZING)
    again = await store.transition(payment.id, S.PIN_ENTRY, reason="incorrect PIN", pin_attempts=2)
    assert again.status == "pin_entry" and again.record["pin_attempts"] == "2"
    await store.transition(payment.id, S.AUTHORIZING)
    await store.transition(payment.id, S.DECLINED)
    assert [e["state"] for e in await store.history(payment.id)] == [
        "created", "pin_entry", "authorizing", "pin_entry", "authorizing", "declined"]


async def test_transition_applies_changes_with_the_state(store: PaymentStore) -> None:
    payment = await store.create({"amount_minor": 2500})
    await store.transition(payment.id, S.PIN_ENTRY)
    await store.transition(payment.id, S.AUTHORIZING, stan="000042")
    approved = await store.transition(payment.id, S.APPROVED, auth_code="A1B2C3", rrn="123456789012")
    assert approved.record["stan"] == "000042"
    assert approved.record["auth_code"] == "A1B2C3" and approved.record["rrn"] == "123456789012"


@pytest.mark.parametrize(("current", "target"), [
    (S.APPROVED, S.AUTHORIZING),
    (S.CREATED, S.APPROVED),
    (S.PIN_ENTRY, S.APPROVED),
    (S.DECLINED, S.PIN_ENTRY),
    (S.ABANDONED, S.CANCELLED),
])
async def test_refused_transition_names_both_states(store: PaymentStore, redis_client: aioredis.Redis,
                                                    current: PaymentState, target: PaymentState) -> None:
    payment = await store.create({"amount_minor": 100})
    await force_status(redis_client, payment.id, current)
    with pytest.raises(InvalidTransition) as excinfo:
        await store.transition(payment.id, target, reason="should not land", auth_code="X")
    assert excinfo.value.payment_id == payment.id
    assert excinfo.value.current == current.value and excinfo.value.target == target.value
    assert current.value in str(excinfo.value) and target.value in str(excinfo.value)

    # Nothing was written: same status, no changed fields, no history entry.
    after = await store.get(payment.id)
    assert after.status == current.value and "auth_code" not in after.record
    assert [e["state"] for e in await store.history(payment.id)] == ["created"]


async def test_refused_transitions_through_the_normal_path(store: PaymentStore) -> None:
    payment = await store.create({"amount_minor": 100})
    with pytest.raises(InvalidTransition) as excinfo:
        await store.transition(payment.id, S.APPROVED)
    assert (excinfo.value.current, excinfo.value.target) == ("created", "approved")
    for target in (S.PIN_ENTRY, S.AUTHORIZING, S.APPROVED):
        await store.transition(payment.id, target)
    with pytest.raises(InvalidTransition) as excinfo:
        await store.transition(payment.id, S.AUTHORIZING)
    assert (excinfo.value.current, excinfo.value.target) == ("approved", "authorizing")


async def test_re_entering_the_current_state_is_a_no_op(store: PaymentStore) -> None:
    payment = await store.create({"amount_minor": 100})
    entered = await store.transition(payment.id, S.PIN_ENTRY)
    history = await store.history(payment.id)

    again = await store.transition(payment.id, S.PIN_ENTRY, reason="retried", pin_attempts=9)
    assert again.status == "pin_entry"
    assert again.record == entered.record  # neither the changes nor a new updated_at were applied
    assert await store.history(payment.id) == history


async def test_re_entering_a_final_state_is_a_no_op_too(store: PaymentStore) -> None:
    payment = await store.create({"amount_minor": 100})
    await store.transition(payment.id, S.CANCELLED)
    history = await store.history(payment.id)
    assert (await store.transition(payment.id, S.CANCELLED)).status == "cancelled"
    assert await store.history(payment.id) == history


async def test_unknown_payment(store: PaymentStore) -> None:
    with pytest.raises(NoSuchPayment) as excinfo:
        await store.get("pay_nope")
    assert excinfo.value.payment_id == "pay_nope"
    with pytest.raises(NoSuchPayment):
        await store.transition("pay_nope", S.PIN_ENTRY)
    with pytest.raises(NoSuchPayment):
        await store.update("pay_nope", call_id="1700000000.1")
    assert await store.history("pay_nope") == []
    assert await store.pan_token("pay_nope") is None


async def test_a_refused_or_missing_transition_creates_no_keys(store: PaymentStore,
                                                               redis_client: aioredis.Redis) -> None:
    with pytest.raises(NoSuchPayment):
        await store.transition("pay_ghost", S.PIN_ENTRY)
    assert await redis_client.keys("pay:pay_ghost*") == []


async def test_update_sets_fields_without_a_transition(store: PaymentStore) -> None:
    payment = await store.create({"amount_minor": 100})
    await store.update(payment.id, call_id="1700000000.1")
    updated = await store.get(payment.id)
    assert updated.status == "created" and updated.call_id == "1700000000.1"
    assert len(await store.history(payment.id)) == 1


async def test_card_number_expires_and_is_deleted_at_a_final_state(store: PaymentStore,
                                                                   redis_client: aioredis.Redis) -> None:
    payment = await store.create({"amount_minor": 100}, pan_token=PAN_TOKEN)
    pan_key = f"pay:{payment.id}:pan"
    assert await store.pan_token(payment.id) == PAN_TOKEN
    assert 0 < await redis_client.ttl(pan_key) <= PAN_TTL

    # Intermediate states keep it (the wrong-PIN loop needs the card number again).
    for target in (S.PIN_ENTRY, S.AUTHORIZING, S.PIN_ENTRY, S.AUTHORIZING):
        await store.transition(payment.id, target)
        assert await redis_client.exists(pan_key) == 1
    await store.transition(payment.id, S.APPROVED)
    assert await redis_client.exists(pan_key) == 0
    assert await store.pan_token(payment.id) is None


@pytest.mark.parametrize("final", sorted(FINAL_STATES, key=lambda s: s.value), ids=lambda s: s.value)
async def test_every_final_state_deletes_the_card_number(store: PaymentStore, redis_client: aioredis.Redis,
                                                         final: PaymentState) -> None:
    source = sorted(TRANSITIONS[final], key=lambda s: s.value)[0]
    payment = await store.create({"amount_minor": 100}, pan_token=PAN_TOKEN)
    await force_status(redis_client, payment.id, source)
    await store.transition(payment.id, final)
    assert await redis_client.exists(f"pay:{payment.id}:pan") == 0


async def test_a_refused_final_transition_keeps_the_card_number(store: PaymentStore) -> None:
    payment = await store.create({"amount_minor": 100}, pan_token=PAN_TOKEN)
    with pytest.raises(InvalidTransition):
        await store.transition(payment.id, S.APPROVED)
    assert await store.pan_token(payment.id) == PAN_TOKEN


async def test_concurrent_transitions_exactly_one_wins(store: PaymentStore) -> None:
    for _ in range(20):
        payment = await store.create({"amount_minor": 100})
        await store.transition(payment.id, S.PIN_ENTRY)
        results = await asyncio.gather(
            store.transition(payment.id, S.ABANDONED, reason="caller hung up"),
            store.transition(payment.id, S.AUTHORIZING, reason="PIN entered"),
            return_exceptions=True,
        )
        winners = [r for r in results if isinstance(r, Payment)]
        losers = [r for r in results if isinstance(r, BaseException)]
        assert len(winners) == 1 and len(losers) == 1, results
        assert isinstance(losers[0], InvalidTransition)
        assert losers[0].current == winners[0].status
        assert (await store.get(payment.id)).status == winners[0].status
        history = [e["state"] for e in await store.history(payment.id)]
        assert history == ["created", "pin_entry", winners[0].status]


async def test_recent_newest_first_with_filter_and_limit(store: PaymentStore) -> None:
    ids = [(await store.create({"amount_minor": n})).id for n in range(1, 6)]
    await store.transition(ids[1], S.CANCELLED)
    await store.transition(ids[3], S.CANCELLED)

    assert [p.id for p in await store.recent()] == ids[::-1]
    assert [p.id for p in await store.recent(limit=2)] == [ids[4], ids[3]]
    assert [p.id for p in await store.recent(status="cancelled")] == [ids[3], ids[1]]
    assert [p.id for p in await store.recent(status="cancelled", limit=1)] == [ids[3]]
    assert [p.id for p in await store.recent(status="created")] == [ids[4], ids[2], ids[0]]
    assert await store.recent(status="approved") == []


async def test_recent_skips_ids_whose_payment_is_gone(store: PaymentStore,
                                                      redis_client: aioredis.Redis) -> None:
    kept = await store.create({"amount_minor": 1})
    gone = await store.create({"amount_minor": 2})
    await redis_client.delete(f"pay:{gone.id}")
    assert [p.id for p in await store.recent()] == [kept.id]


async def test_next_stan_is_six_digits_and_wraps(store: PaymentStore, redis_client: aioredis.Redis) -> None:
    assert await store.next_stan() == "000001"
    assert await store.next_stan() == "000002"
    await redis_client.set("acquirer:stan", 999998)
    assert await store.next_stan() == "999999"
    assert await store.next_stan() == "000001"
    assert await store.next_stan() == "000002"


async def test_next_stan_never_repeats_under_concurrency(store: PaymentStore) -> None:
    stans = await asyncio.gather(*(store.next_stan() for _ in range(50)))
    assert len(set(stans)) == 50 and all(len(s) == 6 and s.isdigit() for s in stans)


@pytest.mark.parametrize(("minor", "amount"), [(5000, "50.00"), (5, "0.05"), (0, "0.00"),
                                               (99, "0.99"), (100, "1.00"), (123456, "1234.56")])
def test_to_json_formats_the_amount(minor: int, amount: str) -> None:
    body = Payment.from_record({"id": "pay_x", "status": "created", "amount_minor": str(minor)}).to_json()
    assert body["amount"] == amount and "amount_minor" not in body


async def test_to_json_shows_no_card_data(store: PaymentStore) -> None:
    payment = await store.create({"amount_minor": 5000, "currency": "EUR"}, pan_token=PAN_TOKEN)
    body = (await store.get(payment.id)).to_json(history=await store.history(payment.id))
    assert body["id"] == payment.id and body["status"] == "created" and body["amount"] == "50.00"
    assert [e["state"] for e in body["history"]] == ["created"]
    assert not [key for key in body if "pan" in key.lower()]
    assert PAN_TOKEN not in repr(body)


@pytest.mark.parametrize(("source", "target"), ALLOWED,
                         ids=[f"{s.value}->{t.value}" for s, t in ALLOWED])
async def test_every_listed_transition_is_allowed(store: PaymentStore, redis_client: aioredis.Redis,
                                                  source: PaymentState, target: PaymentState) -> None:
    payment = await store.create({"amount_minor": 100})
    await force_status(redis_client, payment.id, source)
    assert (await store.transition(payment.id, target)).status == target.value
    assert (await store.history(payment.id))[-1]["state"] == target.value


@pytest.mark.parametrize(("source", "target"), REFUSED,
                         ids=[f"{s.value}->{t.value}" for s, t in REFUSED])
async def test_every_unlisted_transition_is_refused(store: PaymentStore, redis_client: aioredis.Redis,
                                                    source: PaymentState, target: PaymentState) -> None:
    payment = await store.create({"amount_minor": 100})
    await force_status(redis_client, payment.id, source)
    with pytest.raises(InvalidTransition) as excinfo:
        await store.transition(payment.id, target)
    assert (excinfo.value.current, excinfo.value.target) == (source.value, target.value)
    assert (await store.get(payment.id)).status == source.value
    assert len(await store.history(payment.id)) == 1


def test_no_final_state_can_be_left() -> None:
    """The table itself: a final state is never a source, so a settled payment stays settled."""
    for target, sources in TRANSITIONS.items():
        assert not sources & FINAL_STATES, target


async def test_a_field_payments_do_not_have_is_refused_before_anything_is_written(
        store: PaymentStore, redis_client: aioredis.Redis) -> None:
    with pytest.raises(ValueError, match="no field.*topup_mobile"):
        await store.create({"amount_minor": 100, "topup_mobile": "13800000001"})
    assert await redis_client.dbsize() == 0
    payment = await store.create({"amount_minor": 100, "topup_number": "13800000001"})
    with pytest.raises(ValueError, match="no field.*rnn"):
        await store.transition(payment.id, S.PIN_ENTRY, rnn="000000000001")
    with pytest.raises(ValueError, match="no field.*cal_id"):
        await store.update(payment.id, cal_id="1700000000.1")
    fetched = await store.get(payment.id)
    assert fetched.status is S.CREATED and fetched.topup_number == "13800000001"
    assert fetched.amount.fen == 100 and fetched.mode is None and fetched.pin_attempts == 0


class _Counting:
    """The store's Redis client, counting the requests it sends (a pipeline is one)."""

    def __init__(self, redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sent = 0
        original = redis.connection_pool.get_connection

        async def counted(*args, **kwargs):
            self.sent += 1
            return await original(*args, **kwargs)

        monkeypatch.setattr(redis.connection_pool, "get_connection", counted)

    def take(self) -> int:
        sent, self.sent = self.sent, 0
        return sent


async def test_each_step_of_a_payment_is_one_round_trip(redis_client: aioredis.Redis,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """What a call's flow asks of Redis: every round trip costs the ivr service's one event loop
    as much as the command costs Redis (the load benchmark's profile). A transition returns the
    record and, at a final state, drops the card number and joins the ended index in the same
    script; setting fields checks the payment exists in the same script."""
    store = PaymentStore(redis_client, pan_ttl_seconds=PAN_TTL)
    payment = await store.create({"amount_minor": 100}, pan_token=PAN_TOKEN)
    await store.transition(payment.id, S.PIN_ENTRY)  # the scripts are loaded once, not counted
    await store.prepare_authorization(payment.id, stan="000001")
    counting = _Counting(redis_client, monkeypatch)

    await store.update(payment.id, risk_outcome="approve")
    assert counting.take() == 1
    authorizing = await store.transition(payment.id, S.AUTHORIZING, keyed=("pin", 6), pin_attempts=1)
    assert counting.take() == 1
    assert authorizing.status == "authorizing" and authorizing.pin_attempts == 1
    assert authorizing.record == (await store.get(payment.id)).record
    counting.take()
    await store.prepare_authorization(payment.id, stan="000002")
    assert counting.take() == 1
    approved = await store.transition(payment.id, S.APPROVED, response_code="00")
    assert counting.take() == 1
    assert approved.status == "approved" and approved.response_code == "00"
    assert await redis_client.exists(f"pay:{payment.id}:pan") == 0
    assert await redis_client.zscore("payments:ended", payment.id) is not None


async def test_re_entering_a_final_state_finishes_what_a_first_attempt_left(
        store: PaymentStore, redis_client: aioredis.Redis) -> None:
    """A final transition retried after the process died between the state change and its
    clean-up (the state was set by an older version in two steps): the retry drops the card
    number and indexes the payment as ended, keeping the first end time."""
    payment = await store.create({"amount_minor": 100}, pan_token=PAN_TOKEN)
    await force_status(redis_client, payment.id, S.DECLINED)
    assert (await store.transition(payment.id, S.DECLINED)).status == "declined"
    assert await redis_client.exists(f"pay:{payment.id}:pan") == 0
    ended = await redis_client.zscore("payments:ended", payment.id)
    assert ended is not None
    await store.transition(payment.id, S.DECLINED)
    assert await redis_client.zscore("payments:ended", payment.id) == ended


async def test_prepare_authorization_keeps_the_card_number_and_refuses_a_missing_payment(
        store: PaymentStore, redis_client: aioredis.Redis) -> None:
    payment = await store.create({"amount_minor": 100}, pan_token=PAN_TOKEN)
    await store.prepare_authorization(payment.id, stan="000001", auth_local_time="103211")
    assert await redis_client.ttl(f"pay:{payment.id}:pan") == -1  # no expiry any more
    assert (await store.get(payment.id)).record["stan"] == "000001"
    with pytest.raises(NoSuchPayment):
        await store.prepare_authorization("pay_ghost", stan="000001")
    assert await redis_client.keys("pay:pay_ghost*") == []
