"""The basic risk engine: four checks that decline, and one that steps up.

Every check that fails is a fired rule, not just the first, so an operator reading the payment's
decision sees the whole picture. A declining check outweighs a step-up. The rules engine
(``RulesRiskEngine``) implements the same ``RiskEngine`` interface and replaces this one in
``ivr/service.py``.
"""

from __future__ import annotations

from collections.abc import Callable

from ivr.money import Money
from ivr.risk.decision import FiredRule, RiskDecision, RiskOutcome, RiskRequest

__all__ = ["BasicRiskEngine", "DECLINE_SCORE", "STEP_UP_SCORE"]

DECLINE_SCORE = 100
STEP_UP_SCORE = 50

Check = Callable[[RiskRequest], "str | None"]


def _merchant_active(request: RiskRequest) -> str | None:
    return None if request.merchant.active else f"merchant {request.merchant.id} is not active"


def _merchant_category(request: RiskRequest) -> str | None:
    merchant = request.merchant
    return f"merchant category {merchant.mcc} is not admitted" if merchant.category_banned else None


def _amount_within_merchant_limit(request: RiskRequest) -> str | None:
    limit = request.merchant.max_amount
    return f"amount exceeds the merchant's limit of {limit}" if request.order.amount > limit else None


def _card_supported(request: RiskRequest) -> str | None:
    return ("card issuer not supported (BIN not in the acquirer's table)"
            if request.card is None else None)


DECLINE_CHECKS: dict[str, Check] = {
    "merchant_active": _merchant_active,
    "merchant_category": _merchant_category,
    "merchant_limit": _amount_within_merchant_limit,
    "card_supported": _card_supported,
}


class BasicRiskEngine:
    """``RiskEngine``: decline on any failed check; step up at or over ``step_up_amount``."""

    def __init__(self, step_up_amount: Money) -> None:
        self._step_up_amount = step_up_amount

    async def assess(self, request: RiskRequest) -> RiskDecision:
        fired = [FiredRule(name, DECLINE_SCORE, reason) for name, check in DECLINE_CHECKS.items()
                 if (reason := check(request))]
        if request.order.amount >= self._step_up_amount:
            fired.append(FiredRule("step_up_amount", STEP_UP_SCORE,
                                   f"amount at or over {self._step_up_amount}: ID step-up"))
        score = sum(rule.score for rule in fired)
        if score >= DECLINE_SCORE:
            outcome = RiskOutcome.DECLINE
        elif score >= STEP_UP_SCORE:
            outcome = RiskOutcome.STEP_UP
        else:
            outcome = RiskOutcome.APPROVE
        return RiskDecision(outcome, score=score, fired=tuple(fired), rules_version="basic")
