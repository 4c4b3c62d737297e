"""Money given back, typed: a void or a refund, its states, and why one is refused.

Every void and refund is a money record of its own (what settlement and reconciliation will
read): amount in fen, merchant, original payment, the acquirer references of both the original
and of itself, timestamps, state.

States::

    sending ──► succeeded | declined          the acquirer answered
       ├──► failed                            it never reached the acquirer (no connection)
       └──► reversal_pending ──► reversed     the answer was lost: a 0400 until acknowledged

``sending`` holds its amount against the payment from before the message leaves;
``declined``, ``failed`` and ``reversed`` free it again; ``succeeded`` keeps it for good.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ivr.money import Money

__all__ = [
    "RefundKind",
    "RefundState",
    "FINAL_REFUND_STATES",
    "RELEASING_STATES",
    "Refund",
    "RefundRefused",
    "NotRefundable",
    "AlreadyVoided",
    "VoidNotAllowed",
    "VoidWindowClosed",
    "RefundWindowClosed",
    "RefundExceedsCaptured",
    "NoSuchRefund",
    "new_refund_id",
]


class RefundKind(str, Enum):
    VOID = "void"      # the whole purchase, within its settlement day
    REFUND = "refund"  # part or all of it, later; several per payment

    def __str__(self) -> str:
        return self.value


class RefundState(str, Enum):
    SENDING = "sending"
    SUCCEEDED = "succeeded"
    DECLINED = "declined"
    FAILED = "failed"
    REVERSAL_PENDING = "reversal_pending"
    REVERSED = "reversed"

    def __str__(self) -> str:
        return self.value


# Final states in which nothing was given back: the amount held for it is free again.
RELEASING_STATES = frozenset({RefundState.DECLINED, RefundState.FAILED, RefundState.REVERSED})
FINAL_REFUND_STATES = frozenset({RefundState.SUCCEEDED, *RELEASING_STATES})


def new_refund_id() -> str:
    return "rfd_" + secrets.token_hex(10)


@dataclass(frozen=True)
class Refund:
    """One void or refund as stored in ``refund:{id}`` (strings in Redis, typed here)."""

    id: str
    kind: RefundKind
    state: RefundState
    amount: Money
    payment_id: str
    merchant_id: str
    reason: str
    # This message at the acquirer: what its reversal needs, and what the acquirer answered.
    stan: str
    transmission: str
    local_time: str
    local_date: str
    terminal_id: str
    merchant_field: str
    # The original purchase at the acquirer.
    original_stan: str
    original_transmission: str
    original_rrn: str
    response_code: str = ""
    rrn: str = ""
    reversal_transmission: str = ""
    created_at: str = ""
    updated_at: str = ""

    @classmethod
    def from_record(cls, record: Mapping[str, str]) -> Refund:
        values: dict[str, Any] = {k: record.get(k, "") for k in _STRING_FIELDS}
        return cls(kind=RefundKind(record["kind"]), state=RefundState(record["state"]),
                   amount=Money(int(record["amount_minor"])), **values)

    def record(self) -> dict[str, str]:
        fields = {k: str(getattr(self, k)) for k in _STRING_FIELDS}
        return {**fields, "kind": self.kind.value, "state": self.state.value,
                "amount_minor": str(self.amount.fen)}

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_REFUND_STATES

    def to_json(self) -> dict[str, Any]:
        """What the merchant sees: no STANs or transmission times, the RRNs and the outcome."""
        return {"id": self.id, "kind": self.kind.value, "status": self.state.value,
                "amount": self.amount.yuan, "currency": "CNY", "payment_id": self.payment_id,
                "merchant_id": self.merchant_id, "reason": self.reason,
                "response_code": self.response_code, "rrn": self.rrn,
                "original_rrn": self.original_rrn, "created_at": self.created_at,
                "updated_at": self.updated_at}


_STRING_FIELDS = ("id", "payment_id", "merchant_id", "reason", "stan", "transmission",
                  "local_time", "local_date", "terminal_id", "merchant_field", "original_stan",
                  "original_transmission", "original_rrn", "response_code", "rrn",
                  "reversal_transmission", "created_at", "updated_at")


# --- refusals: domain errors, given HTTP meaning only in ivr/api/errors.py ------------------------

class RefundRefused(Exception):
    """A void or refund the platform will not send. Messages name ids and amounts, never cards."""

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.details = details or {}


class NotRefundable(RefundRefused):
    """The payment was not approved (nothing was taken)."""


class AlreadyVoided(RefundRefused):
    """The payment is voided (or a void of it is under way)."""


class VoidNotAllowed(RefundRefused):
    """Refunds were made (or are under way): what is left must be refunded, not voided."""


class VoidWindowClosed(RefundRefused):
    """The purchase's settlement day has ended: refund it instead."""


class RefundWindowClosed(RefundRefused):
    """The purchase is older than the refund window."""


class RefundExceedsCaptured(RefundRefused):
    """More than what is left of the captured amount."""


class NoSuchRefund(RefundRefused):
    def __init__(self, refund_id: str) -> None:
        super().__init__(f"no refund {refund_id}")
