"""The recovery sweep on a real Redis and the real acquirer simulator over TCP.

A "process that died" is reproduced exactly: the real Authorizer records the purchase and sends
it, and its outcome is never settled (or the purchase is recorded and never sent), so the payment
is left ``authorizing`` as a SIGKILL would leave it. Deadlines are 0: every payment is overdue.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from ivr.config import load_settings
from ivr.crypto.keys import IvrKeys, generate_dev_keys, load_ivr_keys
from ivr.crypto.pan_vault import PanVault
from ivr.crypto.pinblock import pinblock_from_digits
from ivr.hostlink.acquirer_client import AcquirerClient
from ivr.hostlink.messages import PurchaseRequest
from ivr.paying.authorization import Authorizer
from ivr.payments.sent_purchase import SentPurchase
from ivr.payments.recovery import RecoverySweep
from ivr.payments.store import PaymentState, PaymentStore, new_payment_id
from simulators.acquirer.server import AcquirerServer, build_simulator, journal_path
from simulators.acquirer.settings import AcquirerSettings, load_acquirer_settings
from simulators.acquirer.simulator import AcquirerSimulator
from simulators.acquirer.testcards import find_test_card

CARD = find_test_card("approve")
AMOUNT = 4200
IVR = load_settings()
S = PaymentState
ALL_OVERDUE = {S.AUTHORIZING: 0.0, S.ANSWERED: 0.0, S.CONFIRMED: 0.0, S.PIN_ENTRY: 0.0}
UNKNOWN = "authorization outcome unknown (its call lost or the acquirer silent past the deadline)"


class FakeChannels:
    """AMI as the sweep sees it: the unique ids of the live channels, or AMI down."""

    def __init__(self, *uniqueids: str, down: bool = False) -> None:
        self.uniqueids = uniqueids
        self.down = down

    async def channels(self) -> list[dict[str, str]]:
        if self.down:
            raise ConnectionError("AMI not connected")
        return [{"Channel": f"PJSIP/x-{i}", "Uniqueid": u} for i, u in enumerate(self.uniqueids)]


@dataclass
class World:
    store: PaymentStore
    redis: aioredis.Redis
    keys: IvrKeys
    vault: PanVault
    simulator: AcquirerSimulator
    acquirer_settings: AcquirerSettings
    port: int

    def client(self, port: int | None = None, *, reversal_attempts: int = 3) -> AcquirerClient:
        return AcquirerClient("127.0.0.1", port or self.port, 0.5, reversal_attempts=reversal_attempts)

    def sweeper(self, client: AcquirerClient | None = None, ami: FakeChannels | None = None) -> RecoverySweep:
        return RecoverySweep(self.store, self.redis, client or self.client(), self.vault, ALL_OVERDUE,
                             ami=ami)

    def journal(self) -> list[dict[str, object]]:
        path = journal_path(self.acquirer_settings)
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    async def payment(self, *states: PaymentState, call_id: str = "1700000000.1") -> str:
        payment_id = new_payment_id()
        await self.store.create({"amount_minor": AMOUNT, "merchant_id": IVR.merchant_id,
                                 "call_id": call_id},
                                payment_id=payment_id, pan_token=self.vault.encrypt(CARD.pan, payment_id))
        for state in states:
            await self.store.transition(payment_id, state)
        return payment_id

    async def approved_then_died(self) -> str:
        """Authorized and charged at the acquirer; the process died before settling it."""
        payment_id = await self.payment(S.PIN_ENTRY, S.AUTHORIZING)
        authorizer = Authorizer(self.client(), self.store, terminal_id=IVR.terminal_id,
                                merchant_id=IVR.merchant_id, cvv_key=self.keys.cvv_key)
        pin_block = pinblock_from_digits(self.keys.pek, bytearray(CARD.pin.encode()), CARD.pan)
        outcome = await authorizer.authorize(await self.store.get(payment_id), CARD.pan,
                                             pin_block=pin_block)
        assert outcome.state is S.APPROVED  # ...and never settled
        return payment_id

    async def recorded_then_died(self) -> str:
        """The purchase was recorded, as the Authorizer does before sending, and never sent."""
        payment_id = await self.payment(S.PIN_ENTRY, S.AUTHORIZING)
        request = PurchaseRequest.create(pan=CARD.pan, amount=AMOUNT, stan=await self.store.next_stan(),
                                         terminal_id=IVR.terminal_id, merchant_id=IVR.merchant_id.ljust(15),
                                         pin_block=bytes(16))
        await self.store.prepare_authorization(payment_id, **SentPurchase.of(request).payment_fields())
        return payment_id

    async def reasons(self, payment_id: str) -> list[str]:
        return [entry["reason"] for entry in await self.store.history(payment_id)]


@pytest.fixture
async def world(tmp_path: Path, redis_client: aioredis.Redis) -> AsyncIterator[World]:
    acquirer_settings = load_acquirer_settings(var_dir=tmp_path, issuer_delay=0.5, port=0)
    simulator = build_simulator(acquirer_settings)  # generates the dev keys both sides use
    generate_dev_keys(load_settings(var_dir=tmp_path).keys_dir)
    keys = load_ivr_keys(load_settings(var_dir=tmp_path).ivr_keys_file)
    async with AcquirerServer(simulator, "127.0.0.1", 0) as server:
        yield World(PaymentStore(redis_client), redis_client, keys, PanVault(keys.pan_key),
                    simulator, acquirer_settings, server.port)


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_an_approved_purchase_left_authorizing_is_reversed_and_failed(world: World) -> None:
    payment_id = await world.approved_then_died()
    assert world.simulator.balance(CARD.pan) == CARD.balance - AMOUNT  # charged

    assert await world.sweeper().sweep() == 1

    payment = await world.store.get(payment_id)
    assert payment.status == "failed" and payment.record["response_code"] == "00"
    assert (await world.reasons(payment_id))[-1] == f"{UNKNOWN}; reversed (acknowledged)"
    assert world.simulator.balance(CARD.pan) == CARD.balance
    [reversal] = [e for e in world.journal() if e["mti"] == "0400"]
    assert reversal["stan"] == payment.record["stan"] and reversal["response_code"] == "00"
    assert reversal["reversed"] is True
    assert await world.store.pan_token(payment_id) is None  # final: the card number is dropped
    assert payment_id not in await world.store.pending_since(time.time())  # nothing left to do


async def test_a_purchase_that_never_arrived_is_failed_and_a_late_one_is_not_charged(world: World) -> None:
    payment_id = await world.recorded_then_died()

    assert await world.sweeper().sweep() == 1

    payment = await world.store.get(payment_id)
    assert payment.status == "failed" and payment.record["response_code"] == "25"
    assert (await world.reasons(payment_id))[-1] == (
        f"{UNKNOWN}; the acquirer never received it (25), nothing charged")
    assert [e["mti"] for e in world.journal()] == ["0400"]
    assert world.simulator.balance(CARD.pan) == CARD.balance


async def test_with_the_acquirer_down_it_stays_authorizing_until_a_later_sweep(world: World) -> None:
    payment_id = await world.approved_then_died()
    down = world.client(_unused_port(), reversal_attempts=1)

    assert await world.sweeper(down).sweep() == 0
    assert (await world.store.get(payment_id)).status == "authorizing"
    stan = (await world.store.get(payment_id)).record["stan"]
    note = f"{UNKNOWN}; reversal of stan {stan} not acknowledged; retried at the next sweep"
    assert (await world.reasons(payment_id))[-1] == note
    assert world.simulator.balance(CARD.pan) == CARD.balance - AMOUNT
    # Another sweep still down adds no second copy of the same note.
    await world.sweeper(down).sweep()
    assert (await world.reasons(payment_id)).count(note) == 1

    assert await world.sweeper().sweep() == 1
    assert (await world.store.get(payment_id)).status == "failed"
    assert (await world.reasons(payment_id))[-1] == f"{UNKNOWN}; reversed (acknowledged)"
    assert world.simulator.balance(CARD.pan) == CARD.balance


async def test_a_call_state_whose_channel_is_gone_is_abandoned(world: World) -> None:
    payment_id = await world.payment(S.PIN_ENTRY, call_id="1700000000.7")

    assert await world.sweeper(ami=FakeChannels("1700000000.99")).sweep() == 1

    assert (await world.store.get(payment_id)).status == "abandoned"
    reason = (await world.reasons(payment_id))[-1]
    assert reason.startswith("pin_entry for ") and reason.endswith(
        "call 1700000000.7 no longer exists; abandoned by recovery")
    assert world.journal() == []  # nothing was sent for it


async def test_a_call_state_whose_channel_is_alive_is_left_alone(world: World) -> None:
    alive = await world.payment(S.PIN_ENTRY, call_id="1700000000.7")
    answered = await world.payment(S.RISK_PASSED, S.CALLING, S.ANSWERED, call_id="1700000000.8")
    before = await world.store.history(alive)

    assert await world.sweeper(ami=FakeChannels("1700000000.7")).sweep() == 1

    assert (await world.store.get(alive)).status == "pin_entry"
    assert await world.store.history(alive) == before
    assert (await world.store.get(answered)).status == "abandoned"  # the control: its call is gone


async def test_with_ami_down_call_states_wait_for_a_sweep_that_can_check(world: World) -> None:
    payment_id = await world.payment(S.PIN_ENTRY)
    assert await world.sweeper(ami=FakeChannels(down=True)).sweep() == 0
    assert (await world.store.get(payment_id)).status == "pin_entry"


async def test_callbacks_due_are_left_to_the_dialer(world: World) -> None:
    due = [await world.payment(S.RISK_PASSED), await world.payment(S.RISK_PASSED, S.CALLING)]
    assert await world.sweeper(ami=FakeChannels()).sweep() == 0
    assert [(await world.store.get(p)).status for p in due] == ["risk_passed", "calling"]


async def test_two_sweepers_settle_each_payment_once(world: World) -> None:
    stranded = [await world.approved_then_died() for _ in range(6)]
    calls = [await world.payment(S.PIN_ENTRY, call_id=f"1700000001.{i}") for i in range(6)]

    settled = await asyncio.gather(world.sweeper(ami=FakeChannels()).sweep(),
                                   world.sweeper(ami=FakeChannels()).sweep())

    assert sum(settled) == len(stranded) + len(calls)
    for payment_id in stranded + calls:
        states = [entry["state"] for entry in await world.store.history(payment_id)]
        assert states.count("failed") + states.count("abandoned") == 1
    reversals = [e["stan"] for e in world.journal() if e["mti"] == "0400"]
    stans = [(await world.store.get(p)).record["stan"] for p in stranded]
    assert sorted(reversals) == sorted(stans)  # one reversal per purchase, none twice
    assert world.simulator.balance(CARD.pan) == CARD.balance
    assert [k async for k in world.redis.scan_iter("recovery:claim:*")] == []  # claims released


class FakeDialer:
    def __init__(self) -> None:
        self.scheduled: list[str] = []

    async def schedule(self, payment_id: str) -> None:
        self.scheduled.append(payment_id)


async def left_risk_passed(world: World, mode: str) -> tuple[str, FakeDialer, RecoverySweep]:
    """A payment of ``mode`` that a crash left risk_passed, overdue; a sweep with a dialer."""
    payment_id = await world.payment(S.RISK_PASSED)
    await world.store.update(payment_id, mode=mode)
    dialer = FakeDialer()
    sweep = RecoverySweep(world.store, world.redis, world.client(), world.vault,
                          {S.RISK_PASSED: 0.0}, dialer=dialer)
    return payment_id, dialer, sweep


async def test_a_callback_left_risk_passed_is_handed_to_the_dialer_once(world: World) -> None:
    payment_id, dialer, sweep = await left_risk_passed(world, "callback")
    assert await sweep.sweep() == 0 and await sweep.sweep() == 0
    assert dialer.scheduled == [payment_id, payment_id]  # idempotent in the dialer itself
    notes = [e["reason"] for e in await world.store.history(payment_id)]
    assert notes.count("recovery: callback scheduled (none was due after the risk decision)") == 1
    assert (await world.store.get(payment_id)).status == "risk_passed"


async def test_a_oneline_payment_never_switched_fails(world: World) -> None:
    payment_id, dialer, sweep = await left_risk_passed(world, "oneline")
    assert await sweep.sweep() == 1
    payment = await world.store.get(payment_id)
    assert payment.status == "failed" and dialer.scheduled == []
    assert "never switched" in (await world.store.history(payment_id))[-1]["reason"]
