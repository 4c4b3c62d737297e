"""Authorizer.authorize against acquirers that misbehave: every failure ends in an Outcome, and the
history says truthfully whether the purchase was reversed.

The acquirer here is a tiny TCP server speaking the real framing, scripted per message type:
answer garbage, answer the reversal properly, or say nothing at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from ivr.config import load_settings
from ivr.crypto.keys import generate_dev_keys, load_ivr_keys
from ivr.crypto.pan_vault import PanVault
from ivr.crypto.pinblock import pinblock_from_digits
from ivr.hostlink.acquirer_client import AcquirerClient
from ivr.hostlink.framing import FramingError, read_frame, write_frame
from ivr.hostlink.messages import PurchaseRequest, ResponseCode, ReversalRequest, ReversalResponse, peek_mti
from ivr.paying.authorization import Authorizer
from ivr.payments.sent_purchase import SentPurchase
from ivr.payments.store import PaymentState, PaymentStore, new_payment_id
from simulators.acquirer.testcards import find_test_card

CARD = find_test_card("approve")
SETTINGS = load_settings()
GARBAGE = b"not an ISO 8583 message"

# What the fake acquirer answers to a message: bytes to send back, or None for silence.
Script = Callable[[bytes], bytes | None]


def garbage(raw: bytes) -> bytes | None:
    return GARBAGE


def silence(raw: bytes) -> bytes | None:
    return None


def garbage_then_acknowledge_reversals(raw: bytes) -> bytes | None:
    if peek_mti(raw) == ReversalRequest.MTI:
        return ReversalResponse.for_request(ReversalRequest.decode(raw), ResponseCode.APPROVED).encode()
    return GARBAGE


class FakeAcquirer:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.received: list[str] = []  # message types, in order
        self.frames: list[bytes] = []
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> FakeAcquirer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                raw = await read_frame(reader)
                self.frames.append(raw)
                self.received.append(peek_mti(raw) or "????")
                answer = self.script(raw)
                if answer is not None:
                    write_frame(writer, answer)
                    await writer.drain()
        except (FramingError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


@pytest.fixture
async def store(redis_client: aioredis.Redis) -> PaymentStore:
    return PaymentStore(redis_client)


@pytest.fixture
def keys(tmp_path: Path):
    settings = load_settings(var_dir=tmp_path)
    generate_dev_keys(settings.keys_dir)
    return load_ivr_keys(settings.ivr_keys_file)


async def authorizing_payment(store: PaymentStore, vault: PanVault) -> str:
    """A self-service payment whose PIN was just entered, as the flow leaves it."""
    payment_id = new_payment_id()
    await store.create({"amount_minor": 1234, "merchant_id": SETTINGS.merchant_id},
                       payment_id=payment_id, pan_token=vault.encrypt(CARD.pan, payment_id))
    await store.transition(payment_id, PaymentState.PIN_ENTRY)
    await store.transition(payment_id, PaymentState.AUTHORIZING)
    return payment_id


async def authorize_via(port: int, store: PaymentStore, keys, payment_id: str):
    client = AcquirerClient("127.0.0.1", port, timeout=0.2, reversal_attempts=2)
    authorizer = Authorizer(client, store, terminal_id=SETTINGS.terminal_id,
                            merchant_id=SETTINGS.merchant_id, cvv_key=keys.cvv_key)
    pin_block = pinblock_from_digits(keys.pek, bytearray(CARD.pin.encode()), CARD.pan)
    return await authorizer.authorize(await store.get(payment_id), CARD.pan, pin_block=pin_block)


async def test_garbled_answer_with_an_unacknowledged_reversal_is_left_for_recovery(store, keys) -> None:
    vault = PanVault(keys.pan_key)
    payment_id = await authorizing_payment(store, vault)
    async with FakeAcquirer(garbage) as acquirer:
        outcome = await authorize_via(acquirer.port, store, keys, payment_id)

    # The purchase went out and both reversal attempts got garbage back.
    assert acquirer.received == ["0200", "0400", "0400"]
    assert outcome.state is PaymentState.AUTHORIZING and outcome.prompt == "service_unavailable"
    assert "not acknowledged" in outcome.reason and "was reversed" not in outcome.reason
    history = await store.history(payment_id)
    assert history[-1] == {"state": "authorizing", "at": history[-1]["at"], "reason": outcome.reason}


async def test_what_a_reversal_needs_is_kept_before_the_purchase_is_sent(store, keys, redis_client) -> None:
    payment_id = await authorizing_payment(store, PanVault(keys.pan_key))
    async with FakeAcquirer(silence) as acquirer:
        outcome = await authorize_via(acquirer.port, store, keys, payment_id)
    assert outcome.state is PaymentState.AUTHORIZING
    # The payment names exactly the purchase that went out, and still holds the card number
    # (no expiry) until it is final, so recovery can reverse it without the caller.
    sent = PurchaseRequest.decode(acquirer.frames[0])
    record = SentPurchase
    assert record.of_payment(await store.get(payment_id)) == record.of(sent)
    assert await store.pan_token(payment_id) is not None
    assert await redis_client.ttl(f"pay:{payment_id}:pan") == -1


async def test_garbled_answer_with_an_acknowledged_reversal_fails(store, keys) -> None:
    payment_id = await authorizing_payment(store, PanVault(keys.pan_key))
    async with FakeAcquirer(garbage_then_acknowledge_reversals) as acquirer:
        outcome = await authorize_via(acquirer.port, store, keys, payment_id)

    assert acquirer.received == ["0200", "0400"]
    assert outcome.state is PaymentState.FAILED
    assert outcome.reason == "acquirer's answer was unreadable or not for this request; the request was reversed"


async def test_no_answer_and_no_reversal_acknowledged_is_not_recorded_as_reversed(store, keys) -> None:
    payment_id = await authorizing_payment(store, PanVault(keys.pan_key))
    async with FakeAcquirer(silence) as acquirer:
        outcome = await authorize_via(acquirer.port, store, keys, payment_id)

    assert acquirer.received == ["0200", "0400", "0400"]
    assert outcome.state is PaymentState.AUTHORIZING and outcome.prompt == "issuer_unavailable"
    assert outcome.reason == ("acquirer did not answer in time; the reversal was not acknowledged: "
                              "left authorizing for recovery to reverse")
    assert (await store.history(payment_id))[-1]["reason"] == outcome.reason


async def test_unreachable_acquirer_fails_and_nothing_is_left_to_reverse(store, keys) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    payment_id = await authorizing_payment(store, PanVault(keys.pan_key))
    outcome = await authorize_via(port, store, keys, payment_id)
    assert (outcome.state, outcome.reason) == (PaymentState.FAILED, "acquirer unreachable")
