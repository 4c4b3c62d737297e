"""The basic risk engine's outcomes, the ID step-up digest, and the decision kept on a payment."""

from __future__ import annotations

import json

import pytest

from ivr.hostlink.bin_table import BinInfo
from ivr.merchants import Merchant, MerchantStatus
from ivr.money import Money
from ivr.orders import Order
from ivr.paying.id_step_up import IdDigests
from ivr.risk.basic import BasicRiskEngine
from ivr.risk.decision import RiskOutcome, RiskRequest
from ivr.risk.gate import GENERIC_DECLINE, RiskGate

DEBIT = BinInfo("debit", "Voicepay Test Bank", "语音支付测试银行")
ID_NUMBER = "11010519491231002X"


def request(amount: str = "100.00", *, mcc: str = "4814", status=MerchantStatus.ACTIVE,
            card: BinInfo | None = DEBIT, limit: str = "50000.00") -> RiskRequest:
    merchant = Merchant("M100001", "Shop", "商店", mcc, status, Money.parse(limit))
    order = Order("ORD-1", Money.parse(amount), "bill", "6221881000000011", "Zhang San",
                  ID_NUMBER, "13800138000")
    return RiskRequest("pay_0123", "callback", merchant, order, card)


ENGINE = BasicRiskEngine(Money.parse("5000.00"))


@pytest.mark.parametrize(("asked", "outcome", "fired"), [
    (request(), RiskOutcome.APPROVE, []),
    (request("4999.99"), RiskOutcome.APPROVE, []),
    (request("5000.00"), RiskOutcome.STEP_UP, ["step_up_amount"]),
    (request(status=MerchantStatus.SUSPENDED), RiskOutcome.DECLINE, ["merchant_active"]),
    (request(mcc="7995"), RiskOutcome.DECLINE, ["merchant_category"]),
    (request("200.00", limit="100.00"), RiskOutcome.DECLINE, ["merchant_limit"]),
    (request(card=None), RiskOutcome.DECLINE, ["card_supported"]),
    # A declining check outweighs a step-up, and every failed check is named.
    (request("6000.00", card=None, mcc="7995"), RiskOutcome.DECLINE,
     ["merchant_category", "card_supported", "step_up_amount"]),
], ids=["approve", "just-under", "step-up", "suspended", "banned-mcc", "over-limit", "unknown-bin",
        "all-named"])
async def test_basic_engine_outcomes(asked: RiskRequest, outcome: RiskOutcome,
                                     fired: list[str]) -> None:
    decision = await ENGINE.assess(asked)
    assert decision.outcome is outcome
    assert [rule.name for rule in decision.fired] == fired
    assert decision.score == sum(rule.score for rule in decision.fired)


def test_id_digest_takes_star_for_x_and_wipes_what_was_keyed() -> None:
    digests = IdDigests(b"k" * 32)
    expected = digests.of_id_number("pay_1", ID_NUMBER)
    keyed = bytearray(b"31002*")
    assert digests.matches("pay_1", keyed, expected)
    assert keyed == bytearray(6)
    assert digests.of_id_number("pay_1", ID_NUMBER.lower()) == expected  # x or X
    assert not digests.matches("pay_1", bytearray(b"310021"), expected)
    assert not digests.matches("pay_1", bytearray(b"31002"), expected)
    # Bound to the payment and the key: the same characters elsewhere do not match.
    assert not digests.matches("pay_2", bytearray(b"31002*"), expected)
    assert not IdDigests(b"j" * 32).matches("pay_1", bytearray(b"31002*"), expected)
    assert "31002" not in expected


async def test_the_payment_keeps_the_decision_and_the_history_names_no_rule() -> None:
    gate = RiskGate(ENGINE, IdDigests(b"k" * 32))
    asked = request("5000.00")
    decision = await gate.assess(asked)
    fields = gate.fields(decision, asked)
    assert fields["risk_outcome"] == "step_up" and len(fields["id_check_digest"]) == 64
    assert json.loads(fields["risk_decision"])["fired"][0]["name"] == "step_up_amount"
    assert "merchant_reason" not in fields
    declined = await gate.assess(request(mcc="7995"))
    assert gate.history(declined) == "risk: decline (declined by risk control)"
    assert gate.fields(declined, asked)["merchant_reason"] == GENERIC_DECLINE
    assert "id_check_digest" not in gate.fields(declined, asked)
