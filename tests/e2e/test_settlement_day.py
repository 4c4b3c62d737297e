"""A settlement day end to end: callbacks paid on real SIPp calls through real Asterisk, a void,
a partial refund and a refund refused through the merchant API, the day closed on demand (as at
its cut-off), the acquirer simulator's own ZM file of it, and a clean reconciliation; then the same
day with one acquirer record removed and one amount altered, and the report names both.

Merchant M100002 only, so the day's other tests (M100001's) change nothing checked here: its
record and its reconciliation lines are this test's alone.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime

import pytest

from ivr.admin import call_api
from ivr.money import Money
from ivr.settlement.zm_file import TxnCode, ZmFile, file_name
from simulators.acquirer.testcards import find_test_card
from tests.e2e.test_callback_calls import finish, order
from tests.sipp import callback_calls as phone

pytestmark = pytest.mark.e2e

MERCHANT = "M100002"  # 上海市电力公司: 25 bp, no minimum (ivr/fee_table.toml)


def _operator(stack, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    token = (stack.settings.keys_dir / "operator.token").read_text().strip()
    return call_api(stack.api + path, method, {"Authorization": f"Bearer {token}"},
                    json.dumps(body).encode() if body is not None else None)


def _paid_by_phone(stack, number: str, amount_minor: int) -> dict:
    card = find_test_card("approve")
    callee = stack.phone(phone.pays_with_pin(f"settle_{number[-1]}", [card.pin], language="zh",
                                             amount_minor=amount_minor, merchant=MERCHANT), number)
    status, payment = stack.merchant_request(
        "POST", "/v1/payments", order(number, card, amount=Money(amount_minor).yuan),
        merchant=MERCHANT)
    assert status == 201, payment
    assert callee.wait(timeout=120) == 0, finish(callee)
    payment = stack.wait_for(payment["id"], {"approved", "declined", "failed", "abandoned"})
    assert payment["status"] == "approved", payment["history"]
    return payment


def test_a_day_of_calls_is_settled_and_reconciles_clean(stack):
    kept = _paid_by_phone(stack, "13800138108", 8800)
    voided = _paid_by_phone(stack, "13800138109", 5000)

    status, void = stack.merchant_request("POST", f"/v1/payments/{voided['id']}/void", {},
                                          merchant=MERCHANT)
    assert status == 201 and void["status"] == "succeeded", void
    status, refund = stack.merchant_request("POST", f"/v1/payments/{kept['id']}/refunds",
                                            {"amount": "30.00"}, merchant=MERCHANT)
    assert status == 201 and refund["status"] == "succeeded", refund
    status, refused = stack.merchant_request("POST", f"/v1/payments/{kept['id']}/refunds",
                                             {"amount": "60.00"}, merchant=MERCHANT)
    assert status == 422 and refused["error_id"] == "refund-exceeds-captured", refused

    # The cut-off, on demand: the operator closes the day now.
    # The suite's cut-off is 12 hours from its start (tests/e2e/conftest.py): one day's money.
    day = stack.settings.cutoff.day_of(datetime.fromisoformat(refund["updated_at"]))
    assert stack.settings.cutoff.day_of(datetime.fromisoformat(kept["created_at"])) == day
    status, settled = _operator(stack, "POST", f"/v1/admin/settlements/{day}/run", {"early": True})
    assert status in (200, 201), settled
    [record] = [m for m in settled["merchants"] if m["merchant_id"] == MERCHANT]
    # 88.00 pays 0.22 (25 bp); the voided 50.00 pays none; the refund gives none back.
    assert (record["gross"], record["voids"], record["refunds"], record["fees"], record["net"]) \
        == ("138.00", "50.00", "30.00", "0.22", "57.78")
    assert {t["id"] for t in record["transactions"]} == {kept["id"], voided["id"], void["id"],
                                                         refund["id"]}

    # The merchant's statement (its CSV form and other merchants: tests/integration).
    status, statement = stack.merchant_request("GET", f"/v1/settlements/{day}",
                                               merchant=MERCHANT)
    assert status == 200 and statement == record

    # Both files: the acquirer's own, GBK, with the merchant's Chinese name and masked cards.
    # The simulator rewrites the day's file half a second after the last message.
    path = stack.settings.acquirer_files_dir / file_name(day)

    def ours_in_file() -> list:
        return [r for r in ZmFile.decode(path.read_bytes()).records if r.merchant_code == MERCHANT
                ] if path.exists() else []
    assert stack.wait_until(lambda: len(ours_in_file()) == 4, 10), ours_in_file()
    raw = path.read_bytes()
    zm = ZmFile.decode(raw)
    ours = [r for r in zm.records if r.merchant_code == MERCHANT]
    assert sorted(r.txn_code.value for r in ours) == sorted(
        [TxnCode.PURCHASE.value] * 2 + [TxnCode.VOID.value, TxnCode.REFUND.value])
    assert {r.merchant_name for r in ours} == {"上海市电力公司"}
    assert find_test_card("approve").pan not in raw.decode("gbk")

    status, report = _operator(stack, "POST", f"/v1/admin/settlements/{day}/reconcile")
    assert status == 200, report
    mine = [line for line in report["lines"] if line["merchant_id"] == MERCHANT]
    assert len(mine) == 4 and {line["result"] for line in mine} == {"matched"}, mine
    assert {line["rrn"] for line in mine} == {kept["rrn"], voided["rrn"], void["rrn"],
                                              refund["rrn"]}

    # The same day again, with the acquirer's file missing the kept purchase and the refund's
    # amount altered by one fen: the report names exactly those two, with the action to take.
    # The simulator's own file is put back afterwards (it rewrites it after its next message anyway).
    purchase = next(r for r in ours if r.rrn == kept["rrn"])
    refunded = next(r for r in ours if r.rrn == refund["rrn"])
    tampered = [replace(r, amount=r.amount + 1, settlement_amount=r.settlement_amount + 1)
                if r is refunded else r for r in zm.records if r is not purchase]
    try:
        path.write_bytes(ZmFile(zm.day, zm.acquirer, zm.created_at, tuple(tampered)).encode())
        status, report = _operator(stack, "POST", f"/v1/admin/settlements/{day}/reconcile")
    finally:
        path.write_bytes(raw)
    assert status == 200 and not report["clean"], report
    problems = {(line["result"], line["rrn"]) for line in report["lines"]
                if line["merchant_id"] == MERCHANT and line["result"] != "matched"}
    assert problems == {("missing_acquirer", kept["rrn"]), ("amount_mismatch", refund["rrn"])}
    mismatch = next(line for line in report["lines"] if line["result"] == "amount_mismatch")
    assert (mismatch["our_amount"], mismatch["acquirer_amount"]) == ("30.00", "30.01")
    assert all(line["action"] for line in report["lines"] if line["result"] != "matched")
