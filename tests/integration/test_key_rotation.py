"""Keys rotated and retired while the service runs, with `voicepay-keys`' own functions.

The harness is the FastAGI one (test_selfservice_fastagi.py): the flows get their keys from the
watched key file, as the service does, and the acquirer simulator watches its own. Nothing is
restarted between a rotation and the calls after it. Each test shows the overlap (what was made
under the old key still works, new things are made under the new one) and then the retirement
(the old key's data is refused with a domain error, never a crash).
"""

from __future__ import annotations

import itertools
import time

import pytest

from ivr.crypto.keyring import KeyFileWatch
from ivr.crypto.keys import load_acquirer_keys, load_ivr_keys, retire, rotate
from ivr.crypto.pan_vault import PanKeyRetired
from ivr.crypto.pinblock import encipher_pinblock_iso_4
from ivr.crypto.secret_box import SecretBoxError
from ivr.hostlink.messages import PurchaseRequest, PurchaseResponse, ResponseCode
from ivr.money import Money
from ivr.oneline.orders import RETURNING_KEY, ReturningCardholders
from ivr.paying.id_step_up import IdDigests
from ivr.payments.store import PaymentState
from ivr.risk.lists import RiskLists
from ivr.risk.subjects import SubjectDigester, subjects_of
from ivr.risk.velocity import Velocity
from ivr.risk.audit import RiskAudit
from tests.integration import test_selfservice_fastagi as harness
from tests.integration.fake_asterisk import asks, plays
from tests.integration.test_callback_fastagi import (CALLBACK_START, INTRO, Orders, answer,
                                                     approved)
from tests.integration.test_selfservice_fastagi import APPROVE, REFERENCE_NUMBER, Ivr, order

ivr = harness.ivr  # the FastAGI fixture: flows and acquirer on watched key files

_STAN = itertools.count(900001)


@pytest.fixture
def orders(ivr: Ivr) -> Orders:
    return Orders(ivr)


async def _self_service_call(ivr: Ivr) -> None:
    await ivr.call(*order(APPROVE), asks("enter_pin", APPROVE.pin), plays("please_wait"),
                   plays("approved"), *REFERENCE_NUMBER, plays("goodbye"))


async def _pin_block_under(ivr: Ivr, key_id: int, pek: bytes) -> ResponseCode:
    """A purchase whose PIN block was made under ``pek`` and names ``key_id``, straight to the
    acquirer: what an IVR instance that has not yet seen the rotation sends."""
    request = PurchaseRequest.create(
        pan=APPROVE.pan, amount=100, stan=f"{next(_STAN):06d}", terminal_id=ivr.settings.terminal_id,
        merchant_id=ivr.settings.merchant_id, pin_key_id=key_id,
        pin_block=encipher_pinblock_iso_4(pek, APPROVE.pin, APPROVE.pan))
    answer_bytes = await ivr.simulator.handle(request.encode())
    assert answer_bytes is not None
    return PurchaseResponse.decode(answer_bytes).response_code


async def test_a_pek_rotation_reaches_the_next_call_and_the_acquirer_reads_both_ids(ivr: Ivr) -> None:
    keys_dir = ivr.settings.keys_dir
    await _self_service_call(ivr)
    old_pek = load_ivr_keys(ivr.settings.ivr_keys_file).pek

    rotate(keys_dir, "pek")
    await _self_service_call(ivr)

    journal = [line for line in ivr.journal() if line["mti"] == "0200"]
    assert [(p["response_code"], p["pin_key_id"]) for p in journal] == [("00", 1), ("00", 2)]
    # The overlap: a PIN block still made under key 1 is read with key 1.
    assert await _pin_block_under(ivr, 1, old_pek) is ResponseCode.APPROVED
    assert load_acquirer_keys(keys_dir / "acquirer.json").ring("pek").current.id == 2

    retire(keys_dir, "pek", 1)
    # Retired: a block under it is refused (96), not misread under another key, not a PIN try.
    assert await _pin_block_under(ivr, 1, old_pek) is ResponseCode.SYSTEM_MALFUNCTION
    await _self_service_call(ivr)  # the IVR goes on under key 2
    last = [line for line in ivr.journal() if line["mti"] == "0200"][-1]
    assert (last["response_code"], last["pin_key_id"]) == ("00", 2)
    assert all(p.status is PaymentState.APPROVED for p in await ivr.payments())


async def test_card_numbers_sealed_before_a_rotation_are_paid_until_their_key_is_retired(
        ivr: Ivr, orders: Orders) -> None:
    keys_dir = ivr.settings.keys_dir
    before = await orders.callback(APPROVE)
    left_until_retired = await orders.callback(APPROVE)
    rotate(keys_dir, "pan_key")
    after = await orders.callback(APPROVE)
    tokens = {p.id: await ivr.store.pan_token(p.id) for p in (before, left_until_retired, after)}
    assert [tokens[p.id].split(".")[0] for p in (before, left_until_retired, after)] == ["1", "1", "2"]

    for payment in (before, after):  # the old id and the new one, both read
        await answer(ivr, payment, *INTRO, asks("confirm_menu", "1"), *approved(APPROVE),
                     plays("goodbye"))
        assert (await ivr.store.get(payment.id)).status is PaymentState.APPROVED

    retire(keys_dir, "pan_key", 1)
    with pytest.raises(PanKeyRetired, match="pan_key key 1 is retired"):
        ivr.ctx.vault.decrypt(tokens[left_until_retired.id], left_until_retired.id)
    caller = await answer(ivr, left_until_retired, plays("service_unavailable"), plays("goodbye"))
    payment = await ivr.store.get(left_until_retired.id)
    assert payment.status is PaymentState.FAILED
    assert await ivr.states(payment) == [*CALLBACK_START, "failed"]
    assert "pan_key key 1 is retired" in (await ivr.store.history(payment.id))[-1]["reason"]
    assert caller.prompts == ["service_unavailable", "goodbye"] and ivr.flows.endings[-1] == "returned"
    assert len([line for line in ivr.journal() if line["mti"] == "0200"]) == 2  # nothing sent for it


async def test_merchant_secrets_move_to_a_rotated_box_key_before_the_old_one_is_retired(
        ivr: Ivr) -> None:
    keys_dir = ivr.settings.keys_dir
    merchants = ivr.ctx.merchants
    assert merchants is not None
    merchant = await merchants.get("M100001")
    rotate(keys_dir, "box_key")
    assert (await merchants.get("M100001")).key == merchant.key  # the old id still opens

    # Before the reseal, retiring the old key would lock every merchant out: it is refused by
    # nothing but common sense, so the service reseals every period (ivr/service.py).
    resealed = await merchants.reseal_all()
    assert resealed >= 2  # at least M100001's API key and webhook secret
    assert await merchants.reseal_all() == 0  # idempotent
    sealed = await ivr.redis.hget("merchant:M100001", "key")
    assert sealed.decode().startswith("2.")
    retire(keys_dir, "box_key", 1)
    again = await merchants.get("M100001")
    assert (again.key, again.webhook_secret) == (merchant.key, merchant.webhook_secret)


async def test_a_secret_still_under_a_retired_box_key_is_a_domain_error(ivr: Ivr) -> None:
    keys_dir = ivr.settings.keys_dir
    merchants = ivr.ctx.merchants
    assert merchants is not None
    rotate(keys_dir, "box_key")
    retire(keys_dir, "box_key", 1)  # without the reseal: the mistake the reseal task prevents
    with pytest.raises(SecretBoxError, match="box_key key 1 is retired"):
        await merchants.get("M100001")


async def test_cardholder_digests_are_looked_up_under_both_keys_until_the_old_one_is_retired(
        ivr: Ivr) -> None:
    keys_dir = ivr.settings.keys_dir
    redis = ivr.redis
    ring = KeyFileWatch(ivr.settings.ivr_keys_file, load_ivr_keys).ring("cardholder_key")
    id_digests = IdDigests(ring)
    returning = ReturningCardholders(redis, ring)
    digester = SubjectDigester(ring)
    lists = RiskLists(redis, digester, RiskAudit(redis, keep_s={}))
    velocity = Velocity(redis)
    card, mobile = APPROVE.pan, "13800138000"

    def subjects() -> dict:
        return subjects_of(digester, card=card, mobile=mobile, id_number="", merchant="M100001",
                           source="")

    await returning.remember(card, mobile)
    await lists.add("block", "card", card, note="chargebacks")
    now = time.time()
    first = await velocity.record("pay_before", Money.parse("50.00"), subjects(), now)
    step_up = id_digests.of_id_number("pay_x", "11010519900101001X")

    rotate(keys_dir, "cardholder_key")
    assert subjects()["card"].older and subjects()["card"].digest not in subjects()["card"].older
    assert await returning.seen(card, mobile)
    assert await lists.hits(subjects()) == {"block:card"}
    second = await velocity.record("pay_after", Money.parse("30.00"), subjects(), now + 1)
    # The windows run on across the rotation: both payments count, amounts add up.
    assert (first["card_payments_24h"], second["card_payments_24h"]) == (1, 2)
    assert second["card_amount_24h"] == 80.0 and second["merchant_payments_7d"] == 2
    assert id_digests.matches("pay_x", bytearray(b"01001*"), step_up)

    retire(keys_dir, "cardholder_key", 1)
    # What was recorded under the retired key is no longer found: forgotten, by design.
    assert not await returning.seen(card, mobile)
    assert await lists.hits(subjects()) == set()
    third = await velocity.record("pay_later", Money.parse("10.00"), subjects(), now + 2)
    assert third["card_payments_24h"] == 2  # pay_after and pay_later: recorded under key 2
    assert not id_digests.matches("pay_x", bytearray(b"01001*"), step_up)
    assert await redis.zcard(RETURNING_KEY) == 1  # the old digest stays until retention drops it
