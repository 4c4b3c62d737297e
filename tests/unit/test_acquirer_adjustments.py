"""The acquirer simulator's voids, refunds and their reversals, driven through ``handle``."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from ivr.hostlink.adjustments import (AdjustmentReversal, RefundRequest, RefundResponse,
                                      VoidRequest, VoidResponse)
from ivr.hostlink.messages import PurchaseRequest, PurchaseResponse, ResponseCode, ReversalResponse
# The simulator's own test harness and its fixtures (h, settings).
from tests.unit.test_acquirer_simulator import IVR, Harness, card, h, settings  # noqa: F401

RC = ResponseCode
_stans = itertools.count(500000)


def give_back(kind: type[VoidRequest] | type[RefundRequest], purchase: PurchaseRequest,
              answer: PurchaseResponse, amount: int, **changes: object) -> VoidRequest | RefundRequest:
    request = kind.create(amount=amount, stan=f"{next(_stans):06d}", terminal_id=IVR.terminal_id,
                          merchant_id=purchase.merchant_id, original_stan=purchase.stan,
                          original_transmission=purchase.transmission, original_rrn=answer.rrn)
    return replace(request, **changes) if changes else request


async def send(h: Harness, request: VoidRequest | RefundRequest | AdjustmentReversal):
    raw = await h.sim.handle(request.encode())
    assert raw is not None
    if isinstance(request, AdjustmentReversal):
        return ReversalResponse.decode(raw)
    return (RefundResponse if isinstance(request, RefundRequest) else VoidResponse).decode(raw)


async def paid(h: Harness, amount: int = 5000) -> tuple[PurchaseRequest, PurchaseResponse]:
    purchase = h.purchase(card("approve"), amount=amount)
    answer = await h.pay(purchase)
    assert answer.approved
    return purchase, answer


async def test_refunds_up_to_the_amount_then_13(h: Harness) -> None:
    purchase, answer = await paid(h)
    start = h.sim.balance(purchase.pan)
    first = await send(h, give_back(RefundRequest, purchase, answer, 3000))
    assert first.response_code is RC.APPROVED and first.MTI == "0230" and first.rrn != answer.rrn
    assert (await send(h, give_back(RefundRequest, purchase, answer, 2001))).response_code is RC.INVALID_AMOUNT
    assert (await send(h, give_back(RefundRequest, purchase, answer, 2000))).response_code is RC.APPROVED
    assert h.sim.balance(purchase.pan) == start + 5000
    line = h.journal_lines()[-1]
    assert line["mti"] == "0220" and line["original_rrn"] == answer.rrn and line["amount"] == 2000
    assert line["pan"] == purchase.pan[:6] + "******" + purchase.pan[-4:]


async def test_a_void_once_and_never_after_a_refund(h: Harness) -> None:
    purchase, answer = await paid(h)
    start = h.sim.balance(purchase.pan)
    assert (await send(h, give_back(VoidRequest, purchase, answer, 4999))).response_code is RC.INVALID_AMOUNT
    assert (await send(h, give_back(VoidRequest, purchase, answer, 5000))).response_code is RC.APPROVED
    assert (await send(h, give_back(VoidRequest, purchase, answer, 5000))).response_code is RC.INVALID_TRANSACTION
    assert (await send(h, give_back(RefundRequest, purchase, answer, 1))).response_code is RC.INVALID_TRANSACTION
    assert h.sim.balance(purchase.pan) == start + 5000
    other, other_answer = await paid(h)
    assert (await send(h, give_back(RefundRequest, other, other_answer, 1))).approved
    assert (await send(h, give_back(VoidRequest, other, other_answer, 5000))).response_code is RC.INVALID_TRANSACTION


@pytest.mark.parametrize("changes", [
    {"original_rrn": "999999999999"},          # another RRN
    {"original_stan": "999999"},               # no such purchase
    {"merchant_id": "M999999".ljust(15)},      # another merchant's
    {"original_mti": "0220"},                  # not a purchase
])
async def test_an_original_it_cannot_find_is_25(h: Harness, changes: dict) -> None:
    purchase, answer = await paid(h)
    request = give_back(RefundRequest, purchase, answer, 100, **changes)
    assert (await send(h, request)).response_code is RC.ORIGINAL_NOT_FOUND


async def test_a_declined_or_reversed_original_is_12(h: Harness) -> None:
    declined = h.purchase(card("insufficient_funds"), amount=999_999)
    answer = await h.pay(declined)
    assert answer.response_code is RC.INSUFFICIENT_FUNDS
    assert (await send(h, give_back(RefundRequest, declined, answer, 1))).response_code is RC.INVALID_TRANSACTION
    purchase, answer = await paid(h)
    assert (await h.reverse(purchase)).response_code is RC.APPROVED
    assert (await send(h, give_back(VoidRequest, purchase, answer, 5000))).response_code is RC.INVALID_TRANSACTION


async def test_the_same_stan_with_other_content_is_94_and_a_retransmission_is_answered_again(h: Harness) -> None:
    purchase, answer = await paid(h)
    refund = give_back(RefundRequest, purchase, answer, 1000)
    first = await send(h, refund)
    assert await send(h, refund) == first  # the same bytes: the same answer, applied once
    assert (await send(h, replace(refund, amount=1001))).response_code is RC.DUPLICATE
    assert h.sim.balance(purchase.pan) == card("approve").balance - 4000


async def test_a_reversal_undoes_a_refund_or_void_once(h: Harness) -> None:
    purchase, answer = await paid(h)
    charged = h.sim.balance(purchase.pan)
    refund = give_back(RefundRequest, purchase, answer, 1500)
    assert (await send(h, refund)).approved
    reversal = AdjustmentReversal.of(refund, transmission="1127100000")
    assert (await send(h, reversal)).response_code is RC.APPROVED
    assert (await send(h, reversal)).response_code is RC.APPROVED  # a duplicate: not undone twice
    assert h.sim.balance(purchase.pan) == charged
    void = give_back(VoidRequest, purchase, answer, 5000)
    assert (await send(h, void)).approved  # the refund is gone: the whole amount may be voided
    assert (await send(h, AdjustmentReversal.of(void, transmission="1127100001"))).response_code is RC.APPROVED
    assert h.sim.balance(purchase.pan) == charged
    assert (await send(h, give_back(RefundRequest, purchase, answer, 5000))).approved


async def test_a_reversal_before_its_refund_means_the_refund_is_never_applied(h: Harness) -> None:
    purchase, answer = await paid(h)
    charged = h.sim.balance(purchase.pan)
    refund = give_back(RefundRequest, purchase, answer, 1500)
    early = await send(h, AdjustmentReversal.of(refund, transmission="1127100002"))
    assert early.response_code is RC.ORIGINAL_NOT_FOUND
    late = await send(h, refund)
    assert not late.approved and h.sim.balance(purchase.pan) == charged


async def test_a_purchase_reversed_after_a_partial_refund_gives_back_only_the_rest(h: Harness) -> None:
    purchase, answer = await paid(h)
    assert (await send(h, give_back(RefundRequest, purchase, answer, 2000))).approved
    assert (await h.reverse(purchase)).response_code is RC.APPROVED
    assert h.sim.balance(purchase.pan) == card("approve").balance
