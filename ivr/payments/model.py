"""A payment, typed: its states, the transitions between them, and the fields it carries.

Redis keeps a payment as a hash of strings (``Payment.record``); everything else reads the typed
attributes of :class:`Payment`. The names of the stored fields are the attribute names (the
amount is stored in fen as ``amount_minor``), and the store refuses to write any other name, so a
misspelt field fails at once instead of quietly becoming a new one.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any

from ivr.money import Money

__all__ = [
    "PaymentState",
    "PaymentMode",
    "FINAL_STATES",
    "TRANSITIONS",
    "PUBLIC_FIELDS",
    "RECORD_FIELDS",
    "Payment",
    "check_field_names",
    "new_payment_id",
]


class PaymentState(str, Enum):
    CREATED = "created"
    RISK_PASSED = "risk_passed"
    RISK_DECLINED = "risk_declined"
    RISK_REVIEW = "risk_review"     # a callback waiting for an operator's decision (ivr/risk/review.py)
    CALLING = "calling"
    ANSWERED = "answered"
    CONFIRMED = "confirmed"
    PIN_ENTRY = "pin_entry"
    AUTHORIZING = "authorizing"
    APPROVED = "approved"
    DECLINED = "declined"
    FAILED = "failed"
    ABANDONED = "abandoned"
    REFUSED = "refused"
    EXPIRED = "expired"
    CANCELLED = "cancelled"

    def __str__(self) -> str:  # "approved" in messages and logs, not "PaymentState.APPROVED"
        return self.value


S = PaymentState
FINAL_STATES = frozenset({S.APPROVED, S.DECLINED, S.FAILED, S.ABANDONED, S.REFUSED, S.EXPIRED,
                          S.CANCELLED, S.RISK_DECLINED})

# to-state -> the states it may be entered from. Anything else is refused by the Lua script.
TRANSITIONS: dict[PaymentState, frozenset[PaymentState]] = {
    S.RISK_REVIEW: frozenset({S.CREATED}),
    S.RISK_PASSED: frozenset({S.CREATED, S.RISK_REVIEW}),
    S.RISK_DECLINED: frozenset({S.CREATED, S.RISK_REVIEW}),
    S.CALLING: frozenset({S.RISK_PASSED, S.CALLING}),
    # A one-line payment has no "calling": the caller is switched in from the agent's call.
    S.ANSWERED: frozenset({S.CALLING, S.RISK_PASSED}),
    S.CONFIRMED: frozenset({S.ANSWERED}),
    S.PIN_ENTRY: frozenset({S.CREATED, S.CONFIRMED, S.AUTHORIZING}),
    S.AUTHORIZING: frozenset({S.PIN_ENTRY}),
    S.APPROVED: frozenset({S.AUTHORIZING}),
    S.DECLINED: frozenset({S.AUTHORIZING}),
    S.FAILED: frozenset({S.CREATED, S.RISK_PASSED, S.CALLING, S.ANSWERED, S.CONFIRMED, S.PIN_ENTRY,
                         S.AUTHORIZING}),
    S.ABANDONED: frozenset({S.CREATED, S.ANSWERED, S.CONFIRMED, S.PIN_ENTRY}),
    S.REFUSED: frozenset({S.ANSWERED}),
    S.EXPIRED: frozenset({S.RISK_PASSED, S.CALLING}),
    # Up to the moment the PIN (or CVV2) prompt starts: after that the cardholder is keying.
    S.CANCELLED: frozenset({S.CREATED, S.RISK_REVIEW, S.RISK_PASSED, S.CALLING, S.ANSWERED,
                            S.CONFIRMED}),
}


class PaymentMode(str, Enum):
    SELFSERVICE = "selfservice"  # the cardholder dialled the top-up line
    CALLBACK = "callback"        # the platform called the cardholder back
    ONELINE = "oneline"          # switched in from a live agent call

    def __str__(self) -> str:
        return self.value


def new_payment_id() -> str:
    return "pay_" + secrets.token_hex(10)


@dataclass(frozen=True)
class Payment:
    """One payment as stored: never the card number (only its first 6 and last 4 digits)."""

    id: str
    status: PaymentState
    amount: Money
    mode: PaymentMode | None = None
    currency: str = "CNY"
    description: str = ""
    language: str = ""
    # The merchant and its order (callback and one-line), or our own ids (self-service).
    merchant_id: str = ""
    merchant_order_id: str = ""
    terminal_id: str = ""
    notify_url: str = ""
    # The cardholder, as the merchant gave them (the ID number masked, never in clear).
    cardholder_name: str = ""
    id_number_masked: str = ""
    mobile: str = ""        # the cardholder's phone: the number a callback dials
    topup_number: str = ""  # self-service: the phone number being topped up, not the caller's
    pan_first6: str = ""
    pan_last4: str = ""
    # The risk decision (ivr/risk/gate.py): its outcome, the full record for the operator
    # (JSON: rules fired, scores), what the merchant is told, and for a step-up the keyed digest
    # of the ID number's last 6 characters (never the characters).
    risk_outcome: str = ""
    risk_decision: str = ""
    merchant_reason: str = ""
    id_check_digest: str = ""
    review_decision: str = ""  # approve | decline | timeout: set once, by whoever decides first
    card_type: str = ""     # debit | credit | unknown, from the acquirer's BIN table
    issuer: str = ""
    # The call: Asterisk's unique id, and for one-line payments the agent's and caller's legs.
    call_id: str = ""
    agent_id: str = ""
    agent_channel: str = ""
    caller_channel: str = ""
    # A one-line payment taken with the agent still talking to the caller: "talk-through";
    # "" for the hard switch (the agent held apart).
    oneline_style: str = ""
    # Talk-through with a caller whose phone may key in-band tones: "1", Asterisk sends the agent
    # nothing of the caller (and the agent's recording is paused) until the payment ends.
    caller_muted: str = ""
    # The authorization: what was sent (for a reversal) and what the acquirer answered.
    stan: str = ""
    auth_transmission: str = ""
    auth_local_time: str = ""
    auth_local_date: str = ""
    auth_terminal_id: str = ""
    auth_merchant_field: str = ""
    pin_attempts: int = 0
    response_code: str = ""
    rrn: str = ""
    auth_code: str = ""
    created_at: str = ""
    updated_at: str = ""
    anonymised_at: str = ""
    # The stored strings themselves, for the JSON views.
    record: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_record(cls, record: Mapping[str, str]) -> Payment:
        values: dict[str, Any] = {}
        for f in _ATTRIBUTES:
            raw = record.get(f.name)
            if raw is None or raw == "":
                continue
            values[f.name] = _CONVERT.get(f.name, str)(raw)
        return cls(id=record["id"], status=PaymentState(record["status"]),
                   amount=Money(int(record.get("amount_minor") or 0)), record=dict(record),
                   **values)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATES

    def to_json(self, history: list[dict[str, str]] | None = None, *,
                internal: bool = False) -> dict[str, Any]:
        """The payment as a merchant sees it (API answers, webhooks): ``PUBLIC_FIELDS`` only.

        ``internal`` adds, for the operator, what the platform keeps for itself (call ids,
        channels, STAN, authorization details) under ``"internal"``.
        """
        body: dict[str, Any] = {"id": self.id, "status": self.status.value,
                                "amount": self.amount.yuan}
        hidden: dict[str, str] = {}
        for key, value in sorted(self.record.items()):
            if key in ("id", "status", "amount_minor"):
                continue
            if key in PUBLIC_FIELDS:
                body[key] = value
            else:
                hidden[key] = value
        if history is not None:
            body["history"] = history
        if internal:
            body["internal"] = hidden
        return body


_ATTRIBUTES = [f for f in fields(Payment) if f.name not in ("id", "status", "amount", "record")]
_CONVERT = {"mode": PaymentMode, "pin_attempts": int}

# The names a stored payment may have: the attributes, the amount in fen.
RECORD_FIELDS = frozenset({"id", "status", "amount_minor", *(f.name for f in _ATTRIBUTES)})

# What a merchant may see of a payment. Anything else stored on it stays internal, so a field
# added for the platform's own use can never leak into an API answer or a webhook.
PUBLIC_FIELDS = frozenset({
    "mode", "currency", "description", "merchant_id", "merchant_order_id", "cardholder_name",
    "id_number_masked", "mobile", "topup_number", "language", "card_type", "issuer",
    "pan_first6", "pan_last4", "notify_url", "agent_id", "oneline_style", "response_code", "rrn", "auth_code",
    "merchant_reason",
    "created_at", "updated_at", "anonymised_at",
})


def check_field_names(names: Iterable[str]) -> None:
    """Refuse a write of a field a payment does not have (a typo, or a concept with no name)."""
    unknown = sorted(set(names) - RECORD_FIELDS)
    if unknown:
        raise ValueError(f"payments have no field(s) {', '.join(unknown)}")
