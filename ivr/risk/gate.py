"""Risk at order time, for every flow: ask the engine, and keep its decision on the payment.

The order services (callback, one-line) and the self-service flow call ``assess`` once the
payment exists, then act on the outcome themselves (what each does with ``review`` differs: a
callback can wait for an operator, a caller on the line cannot). ``fields`` is what they write on
the payment with the state the decision leads to:

    risk_outcome     approve | step_up | review | decline
    risk_decision    the full record (rules fired, scores, providers unavailable): operators only
    merchant_reason  the generic reason a merchant is shown ("declined by risk control")
    id_check_digest  step_up only: the keyed digest of the ID number's last 6 characters

The payment's history is shown to the merchant too, so the transition's reason is ``history``'s:
the outcome and the generic reason, never a rule's name or a list; the rules that fired are in
``risk_decision`` and in the log.

An engine that fails never approves: the payment is declined, with the failure as the reason.
"""

from __future__ import annotations

import json
import logging

from ivr.paying.id_step_up import IdDigests
from ivr.risk.decision import FiredRule, RiskDecision, RiskEngine, RiskOutcome, RiskRequest

__all__ = ["RiskGate", "ENGINE_FAILED", "GENERIC_DECLINE"]

log = logging.getLogger(__name__)

ENGINE_FAILED = "risk_engine_failed"
# What a merchant is told when a flow declines an outcome it cannot act on (review on a live call).
GENERIC_DECLINE = RiskDecision(RiskOutcome.DECLINE).merchant_reason


class RiskGate:
    def __init__(self, engine: RiskEngine, id_digests: IdDigests) -> None:
        self.engine = engine
        self.id_digests = id_digests

    async def assess(self, request: RiskRequest) -> RiskDecision:
        try:
            decision = await self.engine.assess(request)
        except Exception as exc:  # noqa: BLE001 - any failure declines; the type says which
            # The type only: an engine's message could quote what it was given.
            log.error("payment %s: risk engine failed (%s); declined", request.payment_id,
                      type(exc).__name__)
            decision = RiskDecision(RiskOutcome.DECLINE, fired=(FiredRule(
                ENGINE_FAILED, 0, f"the risk engine failed ({type(exc).__name__})"),))
        log.info("payment %s: %s", request.payment_id, decision.summary())
        return decision

    @staticmethod
    def history(decision: RiskDecision, merchant_reason: str | None = None) -> str:
        """The risk transition's reason in the payment's history, which the merchant sees."""
        reason = decision.merchant_reason if merchant_reason is None else merchant_reason
        return f"risk: {decision.outcome}" + (f" ({reason})" if reason else "")

    def fields(self, decision: RiskDecision, request: RiskRequest, *,
               merchant_reason: str | None = None) -> dict[str, str]:
        """What the payment keeps of ``decision``. ``merchant_reason`` overrides the decision's,
        for a flow that turns an outcome into another (a live call cannot wait for review)."""
        fields = {"risk_outcome": decision.outcome.value,
                  "risk_decision": json.dumps(decision.to_record(), ensure_ascii=False)}
        reason = decision.merchant_reason if merchant_reason is None else merchant_reason
        if reason:
            fields["merchant_reason"] = reason
        if decision.outcome is RiskOutcome.STEP_UP and request.order.id_number:
            fields["id_check_digest"] = self.id_digests.of_id_number(request.payment_id,
                                                                     request.order.id_number)
        return fields
