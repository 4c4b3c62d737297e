"""What a risk decision is, and what every part of risk control agrees on (issue 8).

The order services (callback, one-line, self-service) ask a ``RiskEngine`` for a decision before any
call is made or any PIN is taken, and act on its ``outcome``:

- ``approve``: go on (the callback is scheduled, the caller is switched in, the PIN is asked for);
- ``step_up``: go on, but the IVR asks for the last 6 digits of the cardholder's ID number before
  the PIN and checks the answer;
- ``review``: the payment waits for an operator's decision (admin API) before any call, and is
  declined if none comes in time;
- ``decline``: the payment ends in ``risk_declined``.

Each rule that fired names itself, adds its score and says why; a shadow rule is recorded but never
counts. The full decision is stored on the payment and in the audit stream (operators); a merchant
sees only ``merchant_reason``.

Identity answers come from providers behind ``IdentityProvider`` and ``BindingProvider``: the
simulated services in ``simulators/identity/`` or a real provider plugged in the same way. An
unavailable provider never approves by default: its name is in ``unavailable`` and the rules decide.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ivr.hostlink.bin_table import BinInfo
    from ivr.merchants import Merchant
    from ivr.orders import Order

__all__ = ["RiskOutcome", "FiredRule", "RiskDecision", "RiskRequest", "RiskEngine",
           "IdentityAnswer", "BindingAnswer", "IdentityProvider", "BindingProvider"]


class RiskOutcome(str, Enum):
    APPROVE = "approve"
    STEP_UP = "step_up"
    REVIEW = "review"
    DECLINE = "decline"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class FiredRule:
    name: str
    score: int
    reason: str
    shadow: bool = False


@dataclass(frozen=True)
class RiskDecision:
    outcome: RiskOutcome
    score: int = 0
    fired: tuple[FiredRule, ...] = ()
    unavailable: tuple[str, ...] = ()   # providers that did not answer: "police", "binding"
    rules_version: str = ""

    @property
    def passed(self) -> bool:
        """The payment may go on to a call (possibly with a step-up)."""
        return self.outcome in (RiskOutcome.APPROVE, RiskOutcome.STEP_UP)

    def summary(self) -> str:
        """For the payment's history and the operator: the outcome and every acting rule."""
        acting = [f"{r.name} (+{r.score}): {r.reason}" for r in self.fired if not r.shadow]
        head = f"risk {self.outcome} (score {self.score})"
        return f"{head}: {'; '.join(acting)}" if acting else head

    @property
    def merchant_reason(self) -> str:
        """What a merchant is told: generic, never which rule or list."""
        return {RiskOutcome.DECLINE: "declined by risk control",
                RiskOutcome.REVIEW: "held for review"}.get(self.outcome, "")

    def to_record(self) -> dict:
        """JSON-able form stored on the payment and in the audit stream."""
        return {"outcome": self.outcome.value, "score": self.score,
                "fired": [{"name": r.name, "score": r.score, "reason": r.reason, "shadow": r.shadow}
                          for r in self.fired],
                "unavailable": list(self.unavailable), "rules_version": self.rules_version}


@dataclass(frozen=True, repr=False)
class RiskRequest:
    """Everything a decision may look at. ``order`` holds the card and ID number in clear: it
    lives in memory only and its repr masks them."""

    payment_id: str           # velocity counts each payment once, however often it is assessed
    mode: str                 # "callback" | "oneline" | "selfservice"
    merchant: "Merchant"
    order: "Order"
    card: "BinInfo | None"    # None: the BIN is not in the acquirer's table
    source: str = ""          # where the request came from: merchant API client, caller number

    def __repr__(self) -> str:
        return f"RiskRequest(payment_id={self.payment_id!r}, mode={self.mode!r}, order={self.order!r})"


class RiskEngine(Protocol):
    async def assess(self, request: RiskRequest) -> RiskDecision: ...


class IdentityAnswer(str, Enum):
    MATCH = "match"
    MISMATCH = "mismatch"
    NOT_FOUND = "not_found"
    UNAVAILABLE = "unavailable"

    def __str__(self) -> str:
        return self.value


class BindingAnswer(str, Enum):
    BOUND = "bound"
    NOT_BOUND = "not_bound"
    UNAVAILABLE = "unavailable"

    def __str__(self) -> str:
        return self.value


class IdentityProvider(Protocol):
    """The police identity service: does this name go with this ID number?"""

    async def check(self, name: str, id_number: str) -> IdentityAnswer: ...


class BindingProvider(Protocol):
    """The issuer's binding service: is this mobile registered for this card?"""

    async def check(self, card_number: str, mobile: str, name: str = "",
                    id_number: str = "") -> BindingAnswer: ...
