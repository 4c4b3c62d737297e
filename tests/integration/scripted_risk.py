"""A scripted risk engine: answers the outcome a test sets, and remembers what it was asked.

The product's ``RiskEngine`` interface (ivr/risk/decision.py), so a test can drive any outcome
(approve, step_up, review, decline, or an engine failure) through the real order services and
call flows without arranging merchants, amounts or lists to provoke it.
"""

from __future__ import annotations

from ivr.risk.decision import FiredRule, RiskDecision, RiskOutcome, RiskRequest

__all__ = ["ScriptedRiskEngine", "EngineBroke"]


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
