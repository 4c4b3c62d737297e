"""Test doubles for risk control: identity providers that answer at once, as told, orders, and a
scripted risk engine that answers whatever outcome a test sets (driving approve, step_up, review,
decline or an engine failure through the real order services and call flows)."""

from __future__ import annotations

import asyncio

from ivr.api.keys import IDENTITY
from ivr.hostlink.bin_table import BinInfo
from ivr.merchants import Merchant, MerchantStatus
from ivr.money import Money
from ivr.orders import Order
from ivr.risk.identity import IdentityProviders
from ivr.risk.decision import (BindingAnswer, FiredRule, IdentityAnswer, RiskDecision, RiskOutcome,
                               RiskRequest)

DEBIT = BinInfo("debit", "Voicepay Test Bank", "语音支付测试银行")
MERCHANT = Merchant(id="M100001", name_en="Test shop", name_zh="测试商店", mcc="5411",
                    status=MerchantStatus.ACTIVE, max_amount=Money.parse("50000.00"))
CARD = "6221881000000011"          # documented test cards (simulators/acquirer/test_cards.json)
OTHER_CARDS = ["6221882000000000017", "6221881000000029", "6221881000000037",
               "6221881000000045", "6221881000000052", "6221881000000060"]
ID_NUMBER = "11010519491231002X"   # GB 11643's own worked example
MOBILE = "13800138101"


class FakeIdentity:
    """Answers ``answer``; ``"fail"`` raises, ``"hang"`` never answers. Counts its calls."""

    def __init__(self, answer: str = "match") -> None:
        self.answer = answer
        self.calls = 0

    async def check(self, *args: str) -> IdentityAnswer:
        self.calls += 1
        if self.answer == "fail":
            raise ConnectionError("refused")
        if self.answer == "hang":
            await asyncio.Event().wait()
        return self.answer  # type: ignore[return-value]


class FakeBinding(FakeIdentity):
    def __init__(self, answer: str = "bound") -> None:
        super().__init__(answer)

    async def check(self, *args: str) -> BindingAnswer:  # type: ignore[override]
        return await super().check(*args)  # type: ignore[return-value]


def order(amount: str = "88.00", card: str = CARD, mobile: str = MOBILE, id_number: str = ID_NUMBER,
          name: str = "张三", mode: str = "callback") -> Order:
    return Order(merchant_order_id="o-1", amount=Money.parse(amount), description="test",
                 card_number=card, cardholder_name=name, id_number=id_number, mobile=mobile,
                 mode=mode)


def request(payment_id: str, *, merchant: Merchant = MERCHANT, card_info: BinInfo | None = DEBIT,
            source: str = "", mode: str = "callback", **order_fields) -> RiskRequest:
    return RiskRequest(payment_id=payment_id, mode=mode, merchant=merchant,
                       order=order(mode=mode, **order_fields), card=card_info, source=source)


async def established(lists) -> None:
    """The test merchant counts as established: a fresh Redis has no week of its payments, and
    the shipped rules review a new or dormant merchant's first payments (merchant_new_or_dormant)."""
    await lists.add("allow", "merchant", MERCHANT.id, "established (tests)")


class EngineBroke(RuntimeError):
    """What the scripted engine raises when told to fail."""


class ScriptedRiskEngine:
    def __init__(self, outcome: RiskOutcome = RiskOutcome.APPROVE) -> None:
        self.outcome: RiskOutcome | None = outcome  # None: the engine raises
        self.requests: list[RiskRequest] = []

    async def assess(self, request: RiskRequest) -> RiskDecision:
        self.requests.append(request)
        if self.outcome is None:
            raise EngineBroke("scripted failure")
        if self.outcome is RiskOutcome.APPROVE:
            return RiskDecision(RiskOutcome.APPROVE, rules_version="scripted")
        rule = FiredRule(f"scripted_{self.outcome.value}", 60, f"the test asked for {self.outcome}")
        shadow = FiredRule("scripted_shadow", 40, "a shadow rule, recorded only", shadow=True)
        return RiskDecision(self.outcome, score=60, fired=(rule, shadow), rules_version="scripted")


def answering_providers(app, identity: str = "match", binding: str = "bound") -> None:
    """Before start-up: the service's own rules engine asks identity providers that answer as told
    (the HTTP ones and their simulators are tested in test_identity_services.py)."""
    app[IDENTITY] = IdentityProviders(FakeIdentity(identity), FakeBinding(binding))  # type: ignore[arg-type]

