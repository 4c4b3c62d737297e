"""HTTP errors: the edge's own (``APIError`` types carry their status and a stable error id), and
the one table that turns the domain's exceptions into HTTP answers.

The domain (store, order services, the one-line switch) raises plain exceptions that know nothing
about HTTP; ``DOMAIN_ERRORS`` is the only place that gives each a status and an error id. An
exception's ``details`` (a dict, if it has one) go to the client as they are.
"""

from __future__ import annotations

from typing import Any

from ivr.crypto.secret_box import SecretBoxError
from ivr.merchants import (CategoryBanned, DailyLimitReached, InvalidMerchant, MerchantError,
                           MerchantExists, UnknownMerchant)
from ivr.oneline.orders import OnelineNotAllowed
from ivr.oneline.switch import AgentNotOnCall, RecordingNotPaused, SwitchFailed, SwitchUnavailable
from ivr.paying.ask_again import AskAgainRefused
from ivr.payments.store import InvalidTransition, NoSuchPayment, StoreError
from ivr.refunds.model import (AlreadyVoided, NoSuchRefund, NotRefundable, RefundExceedsCaptured,
                               RefundRefused, RefundWindowClosed, VoidNotAllowed, VoidWindowClosed)
from ivr.risk.review import ReviewNotPending

__all__ = ["APIError", "InvalidParameter", "DOMAIN_ERRORS", "HANDLED", "error_answer"]


class APIError(Exception):
    status = 400
    error_id = "bad-request"

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class InvalidParameter(APIError):
    status = 400
    error_id = "invalid-parameter"

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}", {"parameter": name, "reason": reason})


# Domain exception type -> (HTTP status, error id). A subclass not listed answers as its parent.
DOMAIN_ERRORS: dict[type[Exception], tuple[int, str]] = {
    StoreError: (500, "store-error"),
    NoSuchPayment: (404, "no-such-payment"),
    InvalidTransition: (409, "invalid-transition"),
    AgentNotOnCall: (409, "agent-not-on-call"),
    SwitchUnavailable: (503, "switch-unavailable"),
    SwitchFailed: (502, "switch-failed"),
    RecordingNotPaused: (502, "recording-not-paused"),
    OnelineNotAllowed: (403, "oneline-not-allowed"),
    ReviewNotPending: (409, "review-not-pending"),
    AskAgainRefused: (409, "ask-again-refused"),
    MerchantError: (500, "merchant-registry-error"),
    SecretBoxError: (500, "merchant-registry-error"),
    UnknownMerchant: (404, "no-such-merchant"),
    InvalidMerchant: (400, "invalid-parameter"),
    CategoryBanned: (422, "category-banned"),
    MerchantExists: (409, "merchant-exists"),
    DailyLimitReached: (403, "merchant-daily-limit"),
    RefundRefused: (409, "refund-refused"),
    NotRefundable: (409, "payment-not-refundable"),
    AlreadyVoided: (409, "payment-voided"),
    VoidNotAllowed: (409, "void-not-allowed"),
    VoidWindowClosed: (409, "void-window-closed"),
    RefundWindowClosed: (409, "refund-window-closed"),
    RefundExceedsCaptured: (422, "refund-exceeds-captured"),
    NoSuchRefund: (404, "no-such-refund"),
}
# What the error middleware answers itself; anything else is a bug (500, logged by aiohttp).
HANDLED: tuple[type[Exception], ...] = (APIError, *DOMAIN_ERRORS)


def error_answer(exc: Exception) -> tuple[int, dict[str, Any]]:
    """The HTTP status and JSON body for ``exc``, an APIError or a domain error in the table."""
    if isinstance(exc, APIError):
        status, error_id = exc.status, exc.error_id
    else:
        status, error_id = next(DOMAIN_ERRORS[cls] for cls in type(exc).__mro__
                                if cls in DOMAIN_ERRORS)
    body: dict[str, Any] = {"error_id": error_id, "message": str(exc)}
    details = getattr(exc, "details", None)
    if details:
        body["details"] = details
    return status, body
