"""The callback dialer on a real Redis, with a fake AMI that answers Originate as scripted.

Each "instance" is what one ivr service process runs for callbacks: its own AMI connection, its
own Dialer and its own CallbackOrders, all on the one Redis and the one (fake) Asterisk. The call
flow's part, the ANSWERED transition, is played by the fake AMI's script before it reports the
call answered. Timings are short (settings overrides); every wait is on a condition.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from ivr.money import Money
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from ivr import dialplan_variables as dv
from ivr.ami.client import AmiClient
from ivr.orders import Order
from ivr.callback import dialer as dialer_module
from ivr.callback.dialer import DUE_KEY, Dialer
from ivr.callback.orders import CallbackOrders
from ivr.paying.id_step_up import IdDigests
from ivr.risk.gate import RiskGate
from tests.integration.risk_fakes import ScriptedRiskEngine
from ivr.config import Settings, load_settings
from ivr.crypto.keys import generate_dev_keys
from ivr.crypto.pan_vault import PanVault
from ivr.hostlink.bin_table import BinInfo, BinTable
from ivr.merchant_store import MerchantStore
from ivr.merchants import Merchant, MerchantRegistry, MerchantStatus
from ivr.payments.store import PaymentState, PaymentStore
from simulators.acquirer.testcards import find_test_card
from tests.integration.fake_ami import FakeAmi, OriginateScript

USER, SECRET = "voicepay", "test-ami-secret"
MERCHANT = Merchant("M100001", "Test Telecom", "测试电信", "4814", MerchantStatus.ACTIVE, Money.parse("50000.00"))
CARD = find_test_card("approve")
RING_S, GRACE_S, LEASE_S = 0.5, 0.3, 1.0


async def until(condition: Callable[[], Awaitable[bool] | bool], timeout: float = 15.0) -> None:
    """Wait until ``condition()`` holds (it may be async); fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def payment_of(channel_id: str) -> str:
    """``vp-<payment>-<attempt>`` → the payment id."""
    return channel_id[len("vp-"):].rpartition("-")[0]


@dataclass
class Instance:
    ami: AmiClient
    dialer: Dialer
    orders: CallbackOrders

    async def stop(self) -> None:
        await self.dialer.stop()
        await self.ami.close()


@dataclass
class World:
    redis: aioredis.Redis
    store: PaymentStore
    fake: FakeAmi
    settings: Settings
    vault: PanVault
    instances: list[Instance]
    merchants: MerchantStore

    async def instance(self, **overrides: object) -> Instance:
        """Start one more ivr instance's dialer (logged in to AMI before it dials)."""
        settings = load_settings(**{**self.settings.__dict__, **overrides})
        ami = AmiClient(settings)
        await ami.start()
        await until(lambda: ami.connected)
        dialer = Dialer(ami, self.store, self.redis, settings, merchants=self.merchants)
        dialer.start()
        instance = Instance(ami, dialer,
                            CallbackOrders(self.store, self.vault, settings.bin_table_file, dialer,
                                           RiskGate(ScriptedRiskEngine(),
                                                    IdDigests(b"k" * 32))))
        self.instances.append(instance)
        return instance

    async def submit(self, orders: CallbackOrders, mobile: str = "13800138001") -> str:
        order = Order(merchant_order_id=f"ORD-{time.monotonic_ns()}", amount=Money(8800),
                              description="Phone bill", card_number=CARD.pan,
                              cardholder_name="Zhang San", id_number="11010519491231002X",
                              mobile=mobile, language="en")
        payment = await orders.submit(MERCHANT, order)
        assert payment.status == PaymentState.RISK_PASSED.value
        return payment.id

    async def status(self, payment_id: str) -> str:
        return (await self.store.get(payment_id)).status

    async def reasons(self, payment_id: str) -> list[str]:
        return [entry["reason"] for entry in await self.store.history(payment_id)]

    async def done_dialling(self, *payment_ids: str) -> bool:
        """No step of these payments is due or claimed any more."""
        return all([await self.redis.zscore(DUE_KEY, p) is None for p in payment_ids])


@pytest.fixture
async def world(redis_client: aioredis.Redis, tmp_path: Path) -> AsyncIterator[World]:
    BinTable({CARD.pan[:6]: BinInfo("debit", "Voicepay Test Bank", "语音支付测试银行")}).write(
        tmp_path / "acquirer" / "bin_table.json")
    store = PaymentStore(redis_client)
    fake = FakeAmi(username=USER, secret=SECRET)
    await fake.start()
    settings = load_settings(
        var_dir=tmp_path, ami_port=fake.port, ami_user=USER, ami_secret=SECRET,
        callback_max_attempts=3, callback_retry_spacing_s=0.2, callback_ring_timeout_s=RING_S,
        callback_answer_grace_s=GRACE_S, callback_lease_s=LEASE_S, instance_id="")
    generate_dev_keys(settings.keys_dir)  # the merchants' secrets are sealed under the box key
    merchants = MerchantStore.from_settings(redis_client, settings)
    await merchants.seed(MerchantRegistry([replace(MERCHANT, key=b"k" * 32)]))
    world = World(redis_client, store, fake, settings, PanVault(bytes(range(32))), [], merchants)
    fake.originate = script(world)
    yield world
    for instance in world.instances:
        await instance.stop()
    await fake.close()


def script(world: World, *plan: str, default: str = "answered") -> OriginateScript:
    """Each payment's calls go as ``plan`` says, in order, then ``default``; "answered" plays the
    callback flow's ANSWERED transition first, as the real flow does when the phone is picked up."""
    calls: collections.Counter[str] = collections.Counter()

    async def originate(request: dict[str, str]) -> str:
        payment_id = payment_of(request["ChannelId"])
        calls[payment_id] += 1
        outcome = plan[calls[payment_id] - 1] if calls[payment_id] <= len(plan) else default
        if outcome == "answered":
            await world.store.transition(payment_id, PaymentState.ANSWERED, reason="answered (test)")
        return outcome
    return originate


def rings_until_released(world: World, release: asyncio.Event) -> OriginateScript:
    """Each call rings until ``release`` is set, then is answered (the flow's ANSWERED first)."""
    async def originate(request: dict[str, str]) -> str:
        await release.wait()
        await world.store.transition(payment_of(request["ChannelId"]), PaymentState.ANSWERED,
                                     reason="answered (test)")
        return "answered"
    return originate


async def test_busy_first_then_answered_on_the_retry(world: World) -> None:
    world.fake.originate = script(world, "busy")
    instance = await world.instance()
    payment_id = await world.submit(instance.orders)
    await until(lambda: world.done_dialling(payment_id))
    assert await world.status(payment_id) == "answered"
    assert world.fake.originated() == [f"vp-{payment_id}-1", f"vp-{payment_id}-2"]
    reasons = await world.reasons(payment_id)
    assert [r for r in reasons if r.startswith("attempt")] == [
        "attempt 1 of 3", "attempt 1: busy", "attempt 2 of 3"]


async def test_a_suspended_merchants_callback_is_cancelled_before_its_next_attempt(
        world: World) -> None:
    # Suspended while the first attempt rings busy: the retry is never placed.
    busy = script(world, "busy")

    async def suspended_meanwhile(request: dict[str, str]) -> str:
        await world.merchants.suspend(MERCHANT.id, reason="test")
        return await busy(request)

    world.fake.originate = suspended_meanwhile
    instance = await world.instance()
    payment_id = await world.submit(instance.orders)
    await until(lambda: world.done_dialling(payment_id))
    assert await world.status(payment_id) == "cancelled"
    assert world.fake.originated() == [f"vp-{payment_id}-1"]
    assert (await world.reasons(payment_id))[-1] == "merchant suspended: no further call is made"


async def test_every_attempt_unanswered_expires_with_a_note_for_each(world: World) -> None:
    world.fake.originate = script(world, default="no answer")
    instance = await world.instance()
    payment_id = await world.submit(instance.orders)
    await until(lambda: world.done_dialling(payment_id))
    assert await world.status(payment_id) == "expired"
    assert world.fake.originated() == [f"vp-{payment_id}-{n}" for n in (1, 2, 3)]
    reasons = await world.reasons(payment_id)
    assert [r for r in reasons if r.startswith("attempt") and ":" in r] == [
        "attempt 1: no answer", "attempt 2: no answer", "attempt 3: no answer"]
    assert reasons[-1] == "not answered after 3 attempts"


async def test_a_restarted_dialer_picks_up_what_the_stopped_one_left(world: World) -> None:
    """Stopped while one call rang (its AMI result never came) and after another was answered
    (the answer's AMI event lost): the next dialer places neither attempt again. A payment
    accepted while no dialer ran, still ``risk_passed``, is dialled once."""
    plan = {"ringing": "silent", "taken": "answered"}
    roles: dict[str, str] = {}
    answer_all = script(world)

    async def first_run(request: dict[str, str]) -> str:
        payment_id = payment_of(request["ChannelId"])
        if plan[roles[payment_id]] == "answered":
            await world.store.transition(payment_id, PaymentState.ANSWERED, reason="answered")
        return "silent"  # the dialer never hears how either call went
    world.fake.originate = first_run
    first = await world.instance()
    ringing = await world.submit(first.orders)
    roles[ringing] = "ringing"
    taken = await world.submit(first.orders)
    roles[taken] = "taken"
    await until(lambda: len(world.fake.originated()) == 2)
    await first.stop()
    waiting = await world.submit(first.orders)  # accepted while no dialer runs
    assert await world.status(ringing) == "calling"
    assert await world.status(waiting) == "risk_passed"

    world.fake.originate = answer_all
    await world.instance()
    await until(lambda: world.done_dialling(ringing, taken, waiting))
    assert sorted(world.fake.originated()) == sorted(
        [f"vp-{ringing}-1", f"vp-{taken}-1", f"vp-{ringing}-2", f"vp-{waiting}-1"])
    assert [await world.status(p) for p in (ringing, taken, waiting)] == ["answered"] * 3
    assert "attempt 1: no result (its instance stopped)" in await world.reasons(ringing)


async def test_two_instances_place_twenty_due_callbacks_once_each(world: World) -> None:
    idle = await world.instance()
    await idle.dialer.stop()  # only its orders are used: all 20 are due before anyone dials
    payments = [await world.submit(idle.orders, mobile=f"138001380{n:02d}") for n in range(20)]
    assert world.fake.originated() == []
    await asyncio.gather(world.instance(), world.instance())
    await until(lambda: world.done_dialling(*payments))
    assert sorted(world.fake.originated()) == sorted(f"vp-{p}-1" for p in payments)
    assert {await world.status(p) for p in payments} == {"answered"}


async def test_an_instance_stopped_mid_run_is_taken_over_after_its_lease(world: World) -> None:
    world.fake.originate = script(world, "silent")  # attempt 1 rings with no result, then answered
    first = await world.instance()
    payments = [await world.submit(first.orders, mobile=f"139001390{n:02d}") for n in range(6)]
    await until(lambda: len(world.fake.originated()) == 6)
    await world.instance()
    # The first instance keeps its claims while its calls ring: the second takes none of them
    # while those leases are renewed beyond two lease lengths.
    placed = time.time()
    await until(lambda: _leases_beyond(world, payments, placed + 2 * LEASE_S))
    assert len(world.fake.originated()) == 6
    await first.stop()
    await until(lambda: world.done_dialling(*payments))
    assert sorted(world.fake.originated()) == sorted(
        f"vp-{p}-{n}" for p in payments for n in (1, 2))
    assert {await world.status(p) for p in payments} == {"answered"}


async def _leases_beyond(world: World, payments: list[str], when: float) -> bool:
    return all([(await world.redis.zscore(DUE_KEY, p) or 0) > when for p in payments])


async def test_cancel_on_another_instance_hangs_up_the_ringing_call(world: World) -> None:
    world.fake.originate = script(world, default="ring")
    dialling = await world.instance()
    other = await world.instance()
    await other.dialer.stop()  # the API instance: it only cancels
    payment_id = await world.submit(dialling.orders)
    await until(lambda: len(world.fake.originated()) == 1)
    ringing = world.fake.originated()[0]
    cancelled = await other.orders.cancel(MERCHANT, payment_id)
    assert cancelled.status == "cancelled"
    assert world.fake.hung_up() == [ringing]
    await until(lambda: world.done_dialling(payment_id))
    assert world.fake.originated() == [ringing]  # no further attempt
    assert await world.status(payment_id) == "cancelled"


async def test_a_failing_step_is_logged_with_the_payment_and_retried(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="ivr.callback.dialer")
    broken = await world.instance(callback_dial_pattern="PJSIP/{number}")  # no such placeholder
    payment_id = await world.submit(broken.orders)
    await until(lambda: any(r.name == "ivr.callback.dialer" and payment_id in r.getMessage()
                            for r in caplog.records))
    await broken.stop()
    assert world.fake.originated() == []
    assert CARD.pan not in caplog.text
    await world.instance()  # a sound instance finds the step still due
    await until(lambda: world.done_dialling(payment_id))
    assert world.fake.originated() == [f"vp-{payment_id}-1"]
    assert await world.status(payment_id) == "answered"


async def test_a_draining_dialer_places_no_new_call_but_finishes_the_one_ringing(world: World) -> None:
    release = asyncio.Event()
    world.fake.originate = rings_until_released(world, release)
    instance = await world.instance()
    ringing = await world.submit(instance.orders)
    await until(lambda: len(world.fake.originated()) == 1)
    instance.dialer.stop_claiming()  # SIGTERM: the service drains
    waiting = await world.submit(instance.orders)
    release.set()
    await until(lambda: world.done_dialling(ringing))
    assert await world.status(ringing) == "answered"
    # Still due, for another instance or the next start: never dropped, never dialled here.
    assert world.fake.originated() == [f"vp-{ringing}-1"]
    assert await world.status(waiting) == "risk_passed"
    assert await world.redis.zscore(DUE_KEY, waiting) is not None


async def test_a_stop_whose_cancel_a_redis_command_swallowed_places_no_call(world: World) -> None:
    """redis-py can swallow a CancelledError that lands inside a command. A step that swallowed
    its stop's cancel just before the Originate used to dial anyway, and hold up the stop for a
    whole ring timeout; now it dials nothing and stops at once."""
    instance = await world.instance(callback_ring_timeout_s=60.0)
    in_redis = asyncio.Event()
    original_hold = instance.dialer._hold

    async def hold_that_swallows_a_cancel(payment_id: str, **fields: object) -> None:
        in_redis.set()
        try:
            await asyncio.sleep(3600)  # the command the stop's cancel lands in...
        except asyncio.CancelledError:
            pass  # ...and is swallowed, as redis-py can
        await original_hold(payment_id, **fields)
    instance.dialer._hold = hold_that_swallows_a_cancel  # type: ignore[method-assign]
    await world.submit(instance.orders)
    await asyncio.wait_for(in_redis.wait(), 15)
    # Bounded well below the 60 s ring timeout: a liveness bound, not a measured duration.
    await asyncio.wait_for(instance.dialer.stop(), 30)
    assert world.fake.originated() == []


# ---- a free line: the callbacks within Asterisk's limit of payment calls ----

@pytest.fixture
def quick_line_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dialer_module, "_LINE_WAIT_POLL_S", 0.1, raising=False)


def _asked(world: World) -> int:
    """How often the dialer asked Asterisk for its payment lines (one Getvar of the limit each)."""
    return sum(request.get("Variable") == dv.MAX_PAYMENT_CALLS
               for request in world.fake.sent("Getvar"))


async def test_a_callback_waits_while_asterisk_is_full_then_is_placed(
        world: World, quick_line_polls: None) -> None:
    """Asterisk refuses an inbound call past its limit but never a callback the cardholder
    answers: placed while Asterisk is full, a callback took the CPU the calls in progress
    need. It waits, in ``calling``, uncounted, until a payment call ends; then it is placed."""
    world.fake.payment_calls = (2, 2)
    instance = await world.instance()
    payment_id = await world.submit(instance.orders)
    await until(lambda: _asked(world) >= 3)
    assert world.fake.originated() == []
    assert await world.status(payment_id) == "calling"
    world.fake.payment_calls = (1, 2)
    await until(lambda: world.done_dialling(payment_id))
    assert await world.status(payment_id) == "answered"
    assert world.fake.originated() == [f"vp-{payment_id}-1"]  # attempt 1: the wait did not count
    reasons = await world.reasons(payment_id)
    assert reasons[-3:] == ["waiting for a free line: Asterisk carries 2 payment calls, its "
                            "limit is 2", "attempt 1 of 3", "answered (test)"]


async def test_the_attempts_ringing_count_against_the_free_lines(
        world: World, quick_line_polls: None) -> None:
    """One line free and one callback ringing on it: the next callback waits (the ringing one
    joins Asterisk's count when answered)."""
    release = asyncio.Event()
    world.fake.originate = rings_until_released(world, release)
    world.fake.payment_calls = (1, 2)
    instance = await world.instance()
    ringing = await world.submit(instance.orders, mobile="13800138001")
    await until(lambda: len(world.fake.originated()) == 1)
    waiting = await world.submit(instance.orders, mobile="13800138002")
    await until(lambda: world.fake.sent("Getvar") and world.status(waiting), 5)
    asked = _asked(world)
    await until(lambda: _asked(world) >= asked + 2)
    assert world.fake.originated() == [f"vp-{ringing}-1"]
    assert await world.status(waiting) == "calling"
    release.set()  # answered: Asterisk now carries it (2 of 2), and the other still waits
    world.fake.payment_calls = (2, 2)
    await until(lambda: world.done_dialling(ringing))
    asked = _asked(world)
    await until(lambda: _asked(world) >= asked + 2)
    assert world.fake.originated() == [f"vp-{ringing}-1"]
    world.fake.payment_calls = (1, 2)
    await until(lambda: world.done_dialling(waiting))
    assert world.fake.originated() == [f"vp-{ringing}-1", f"vp-{waiting}-1"]


async def test_a_callback_that_waited_too_long_for_a_line_expires_uncalled(
        world: World, quick_line_polls: None) -> None:
    world.fake.payment_calls = (3, 2)  # over: the limit was lowered under the calls carried
    instance = await world.instance(callback_line_wait_s=0.5)
    payment_id = await world.submit(instance.orders)
    await until(lambda: world.done_dialling(payment_id))
    assert await world.status(payment_id) == "expired"
    assert world.fake.originated() == []
    reasons = await world.reasons(payment_id)
    assert reasons[-2] == "waiting for a free line: Asterisk carries 3 payment calls, its limit is 2"
    assert reasons[-1].startswith("not called: no free line for ")
    assert reasons[-1].endswith(" s (Asterisk carries 3 payment calls, its limit is 2)")


async def test_a_callback_waits_while_the_machines_cpus_are_full_then_is_placed(
        world: World, quick_line_polls: None) -> None:
    """Lines free by the count, but the CPU guard refusing new payment calls
    (VOICEPAY_CPU_FULL_UNTIL ahead, ivr/cpu_guard.py): the callback waits as for a full Asterisk, and is
    placed once the guard opens."""
    world.fake.payment_calls = (0, 2)
    world.fake.cpu_full_until = str(int(time.time()) + 3600)
    instance = await world.instance()
    payment_id = await world.submit(instance.orders)
    await until(lambda: _asked(world) >= 3)
    assert world.fake.originated() == []
    assert await world.status(payment_id) == "calling"
    world.fake.cpu_full_until = str(int(time.time()) - 1)  # passed: open again
    await until(lambda: world.done_dialling(payment_id))
    assert world.fake.originated() == [f"vp-{payment_id}-1"]
    reasons = await world.reasons(payment_id)
    assert reasons[-3:] == ["waiting for a free line: the machine's CPUs are too busy for "
                            "another payment call", "attempt 1 of 3", "answered (test)"]


async def test_an_asterisk_that_does_not_say_its_load_is_dialled(world: World) -> None:
    """No admission group (another dialplan) or no answer: the attempt is placed, and the
    Originate's outcome tells what Asterisk made of it."""
    world.fake.payment_calls = None
    instance = await world.instance()
    payment_id = await world.submit(instance.orders)
    await until(lambda: world.done_dialling(payment_id))
    assert await world.status(payment_id) == "answered"
    assert world.fake.sent("Getvar")  # it was asked
