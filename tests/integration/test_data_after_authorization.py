"""Sensitive data after authorization (PCI DSS 3.3.1): what Redis holds once a payment is paid.

Over the FastAGI harness (test_selfservice_fastagi.py), a debit payment (PIN) and a credit payment
(expiry and CVV2) are approved; the acquirer's side of the link is tapped to learn the exact PIN
block and CVV2 block that went out. Then every Redis key is walked: neither block, in any
encoding, nor the PIN, the CVV2 or the card number is anywhere; the card number's ciphertext is
gone and its first 6 / last 4 stay. A card number whose payment never ends is reduced the same
way when its ciphertext's TTL runs out.
"""

from __future__ import annotations

import base64

import pytest
import redis.asyncio as aioredis

from ivr.payments.store import PaymentState
from ivr.hostlink.messages import PurchaseRequest
from tests.integration import test_selfservice_fastagi as harness
from tests.integration.fake_asterisk import asks, plays
from tests.integration.test_callback_fastagi import CREDIT, INTRO, Orders, answer, approved
from tests.integration.test_dialer import until
from simulators.acquirer.testcards import TestCard
from tests.integration.test_selfservice_fastagi import APPROVE, Ivr
from tests.leakcheck import scan_text

ivr = harness.ivr


@pytest.fixture
def orders(ivr: Ivr) -> Orders:
    return Orders(ivr)


@pytest.fixture
def sent(ivr: Ivr, monkeypatch: pytest.MonkeyPatch) -> list[PurchaseRequest]:
    """Every purchase the acquirer received, decoded: the blocks to look for afterwards."""
    requests: list[PurchaseRequest] = []
    handle = ivr.simulator.handle

    async def tapped(raw: bytes) -> bytes | None:
        if raw[:4] == b"0200":
            requests.append(PurchaseRequest.decode(raw))
        return await handle(raw)

    monkeypatch.setattr(ivr.simulator, "handle", tapped)
    return requests


async def every_key_and_value(redis: aioredis.Redis) -> dict[bytes, bytes]:
    """Every key in Redis with all it holds (fields, members, scores, stream entries) as bytes."""
    found: dict[bytes, bytes] = {}
    async for key in redis.scan_iter(count=1000):
        kind = (await redis.type(key)).decode()
        if kind == "string":
            parts = [await redis.get(key)]
        elif kind == "hash":
            parts = [b for pair in (await redis.hgetall(key)).items() for b in pair]
        elif kind == "stream":
            parts = [b for _, entry in await redis.xrange(key) for pair in entry.items() for b in pair]
        elif kind == "zset":
            parts = [m for m, _ in await redis.zrange(key, 0, -1, withscores=True)]
        elif kind == "list":
            parts = await redis.lrange(key, 0, -1)
        elif kind == "set":
            parts = list(await redis.smembers(key))
        else:
            raise AssertionError(f"unexpected Redis type {kind}")
        found[key] = b"\n".join(p if isinstance(p, bytes) else str(p).encode() for p in parts)
    return found


def encodings(block: bytes) -> list[bytes]:
    """A block as it could have been written: raw, hex either case, base64 either alphabet."""
    return [block, block.hex().encode(), block.hex().upper().encode(),
            base64.b64encode(block), base64.urlsafe_b64encode(block),
            base64.b64encode(block).rstrip(b"="), base64.urlsafe_b64encode(block).rstrip(b"=")]


async def assert_nothing_sensitive_left(ivr: Ivr, payment_id: str, request: PurchaseRequest) -> None:
    stored = await every_key_and_value(ivr.redis)
    assert stored, "Redis is empty: the walk below would prove nothing"
    assert f"pay:{payment_id}".encode() in stored  # the walk reaches the payment
    blocks = [b for b in (request.pin_block, request.cvv2_block) if b is not None]
    assert blocks, "the purchase carried no block: nothing to look for"
    for key, value in stored.items():
        for block in blocks:
            for form in encodings(block):
                assert form not in key and form not in value, f"a block in {key!r}"
        text = (key + b" " + value).decode("utf-8", errors="replace")
        assert scan_text(text, key.decode()) == []  # no PAN, PIN or CVV2 of any test card
    # The card number: its ciphertext is gone with the final state; first 6 and last 4 stay.
    assert f"pay:{payment_id}:pan".encode() not in stored
    record = await ivr.redis.hgetall(f"pay:{payment_id}")
    assert (record[b"pan_first6"], record[b"pan_last4"]) == (request.pan[:6].encode(),
                                                               request.pan[-4:].encode())


@pytest.mark.parametrize(("card", "block"), [(APPROVE, "pin_block"), (CREDIT, "cvv2_block")],
                         ids=["debit-pin-block", "credit-cvv2-block"])
async def test_a_paid_callback_leaves_no_block_and_no_card_number(
        ivr: Ivr, orders: Orders, sent: list[PurchaseRequest], card: TestCard, block: str) -> None:
    payment = await orders.callback(card)
    await answer(ivr, payment, *INTRO, asks("confirm_menu", "1"), *approved(card), plays("goodbye"))
    assert (await ivr.store.get(payment.id)).status is PaymentState.APPROVED
    [request] = sent
    assert getattr(request, block) is not None  # what the walk looks for went out
    await assert_nothing_sensitive_left(ivr, payment.id, request)


async def test_the_self_service_line_leaves_no_pin_block_either(
        ivr: Ivr, sent: list[PurchaseRequest]) -> None:
    await ivr.call(*harness.order(APPROVE), asks("enter_pin", APPROVE.pin), plays("please_wait"),
                   plays("approved"), *harness.REFERENCE_NUMBER, plays("goodbye"))
    payment = await ivr.the_payment()
    assert payment.status is PaymentState.APPROVED
    [request] = sent
    await assert_nothing_sensitive_left(ivr, payment.id, request)


async def test_an_unpaid_card_number_is_encrypted_with_a_ttl_then_reduced_to_first_6_last_4(
        ivr: Ivr, orders: Orders) -> None:
    payment = await orders.callback(APPROVE)  # ordered; the cardholder never answers
    key = f"pay:{payment.id}:pan"
    token = await ivr.redis.get(key)
    assert token is not None and APPROVE.pan.encode() not in token
    assert ivr.ctx.vault.decrypt(token.decode(), payment.id) == APPROVE.pan
    assert 0 < await ivr.redis.ttl(key) <= ivr.settings.pan_ttl_seconds

    await ivr.redis.pexpire(key, 1)  # its TTL runs out

    async def gone() -> bool:
        return not await ivr.redis.exists(key)
    await until(gone)
    record = await ivr.redis.hgetall(f"pay:{payment.id}")
    assert (record[b"pan_first6"], record[b"pan_last4"]) == (APPROVE.pan[:6].encode(),
                                                               APPROVE.pan[-4:].encode())
    stored = await every_key_and_value(ivr.redis)
    assert all(APPROVE.pan.encode() not in k + v for k, v in stored.items())
