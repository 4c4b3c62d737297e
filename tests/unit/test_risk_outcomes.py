"""The ID step-up digest, and the decision kept on a payment (the engine's rules: test_risk_rules.py)."""

from __future__ import annotations

import json

import pytest

from ivr.hostlink.bin_table import BinInfo
from ivr.merchants import Merchant, MerchantStatus
from ivr.money import Money
from ivr.orders import Order
from ivr.paying.id_step_up import IdDigests
from ivr.risk.decision import RiskOutcome, RiskRequest
from ivr.risk.gate import GENERIC_DECLINE, RiskGate
from tests.integration.risk_fakes import ScriptedRiskEngine

DEBIT = BinInfo("debit", "Voicepay Test Bank", "语音支付测试银行")
ID_NUMBER = "11010519491231002X"


def request(amount: str = "100.00", *, mcc: str = "4814", status=MerchantStatus.ACTIVE,
            card: BinInfo | None = DEBIT, limit: str = "50000.00") -> RiskRequest:
    merchant = Merchant("M100001", "Shop", "商店", mcc, status, Money.parse(limit))
    order = Order("ORD-1", Money.parse(amount), "bill", "6221881000000011", "Zhang San",
                  ID_NUMBER, "13800138000")
    return RiskRequest("pay_0123", "callback", merchant, order, card)


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
    engine = ScriptedRiskEngine(RiskOutcome.STEP_UP)
    gate = RiskGate(engine, IdDigests(b"k" * 32))
    asked = request("5000.00")
    decision = await gate.assess(asked)
    fields = gate.fields(decision, asked)
    assert fields["risk_outcome"] == "step_up" and len(fields["id_check_digest"]) == 64
    assert json.loads(fields["risk_decision"])["fired"][0]["name"] == "scripted_step_up"
    assert "merchant_reason" not in fields
    engine.outcome = RiskOutcome.DECLINE
    declined = await gate.assess(request(mcc="7995"))
    assert gate.history(declined) == "risk: decline (declined by risk control)"
    assert gate.fields(declined, asked)["merchant_reason"] == GENERIC_DECLINE
    assert "id_check_digest" not in gate.fields(declined, asked)
