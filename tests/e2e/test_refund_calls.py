"""A refund end to end: a callback paid on a real call (SIPp phone, PIN by RFC 4733), then a
partial refund through the merchant API, found in the acquirer simulator's journal."""

from __future__ import annotations

import pytest

from simulators.acquirer.testcards import find_test_card
from tests.e2e.test_callback_calls import finish, order, submit
from tests.sipp import callback_calls as phone

pytestmark = pytest.mark.e2e


def test_a_paid_callback_is_refunded_in_part(stack):
    card = find_test_card("approve")
    number = "13800138103"
    callee = stack.phone(phone.pays_with_pin("cb_refund", [card.pin], language="zh",
                                             amount_minor=8800), number)
    payment = submit(stack, order(number, card))
    assert callee.wait(timeout=120) == 0, finish(callee)
    payment = stack.wait_for(payment["id"], {"approved", "declined", "failed", "abandoned"})
    assert payment["status"] == "approved", payment["history"]

    status, refund = stack.merchant_request("POST", f"/v1/payments/{payment['id']}/refunds",
                                            {"amount": "30.00", "reason": "one item returned"})
    assert status == 201 and refund["status"] == "succeeded", refund
    # At the acquirer: one 0220 for 30.00 naming the purchase by its RRN, approved.
    seen = [e for e in stack.journal() if e.get("rrn") == refund["rrn"]]
    assert [(e["mti"], e["processing_code"], e["response_code"], e["amount"], e["original_rrn"])
            for e in seen] == [("0220", "200000", "00", 3000, payment["rrn"])]
    assert seen[0]["pan"] == card.pan[:6] + "******" + card.pan[-4:]

    status, listed = stack.merchant_request("GET", f"/v1/payments/{payment['id']}/refunds")
    assert status == 200
    assert listed["refunded_amount"] == "30.00" and listed["refundable_amount"] == "58.00"
    # The rest cannot be voided now that part of it is refunded.
    status, answer = stack.merchant_request("POST", f"/v1/payments/{payment['id']}/void", {})
    assert status == 409 and answer["error_id"] == "void-not-allowed"

