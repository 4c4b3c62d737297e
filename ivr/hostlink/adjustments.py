"""Voids, refunds and their reversals on the host link, as China UnionPay-style hosts have them.

Money given back after a purchase never carries the card: the merchant does not have it, and the
platform deleted it when the payment ended. Each message names its original instead, and the
acquirer finds the card from that:

* a **void** (cancel the purchase the same settlement day, full amount): 0200, processing code
  200000, answered 0210;
* a **refund** (part or all of a settled purchase, later): 0220, processing code 200000,
  answered 0230;
* the **reversal** of either, when its answer was lost: 0400, processing code 200000, field 90
  naming the void or refund (its MTI, STAN and transmission time), answered 0410.

A void or refund names the purchase in field 90 (MTI 0200, the purchase's STAN and transmission
time) and field 37 (the purchase's RRN); field 4 is the amount given back, in fen. One field
table per message (``_FIELDS``) serves both directions.

    >>> void = VoidRequest.create(amount=8800, stan="000042", terminal_id="VPIVR001",
    ...     merchant_id="M100001".ljust(15), original_stan="000041",
    ...     original_transmission="1127093000", original_rrn="633109000123")
    >>> VoidRequest.decode(void.encode()) == void
    True
    >>> decode_adjustment(void.encode()).original_rrn
    '633109000123'
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Self

from ivr.hostlink.messages import (CNY, Iso8583Error, Message, PurchaseRequest, PurchaseResponse,
                                   ReversalResponse, _amount, _decode_fields, _digits, _parse_amount,
                                   _text, time_fields)

__all__ = [
    "MONEY_BACK",
    "AdjustmentRequest",
    "VoidRequest",
    "RefundRequest",
    "AdjustmentReversal",
    "VoidResponse",
    "RefundResponse",
    "AdjustmentReversalResponse",
    "adjustment_type",
    "decode_adjustment",
]

# Processing code 20xxxx: "returns" (credit to the cardholder), default accounts.
MONEY_BACK = "200000"

# Field 90 (original data elements) is 42 digits: MTI, STAN, transmission time, then the
# acquirer's and forwarder's ids, which this link leaves zero.
_ORIGINAL_LENGTH = 42


@dataclass(frozen=True, repr=False)
class AdjustmentRequest(Message):
    """What a void, a refund and their reversal share: amount, our STAN, the original named."""

    amount: int
    stan: str
    transmission: str
    local_time: str
    local_date: str
    terminal_id: str
    merchant_id: str
    original_mti: str
    original_stan: str
    original_transmission: str
    # The purchase's RRN: on a void or refund; a reversal names its original by field 90 alone.
    original_rrn: str | None = None
    currency: str = CNY
    processing_code: str = MONEY_BACK

    # ISO 8583 field -> attribute; field 90 is built from the three original_* attributes.
    _FIELDS: ClassVar[dict[str, str]] = {
        "3": "processing_code", "7": "transmission", "11": "stan", "12": "local_time",
        "13": "local_date", "37": "original_rrn", "41": "terminal_id", "42": "merchant_id",
        "49": "currency",
    }

    def __post_init__(self) -> None:
        _amount(self.amount)
        _digits(self.processing_code, 6, "processing_code")
        if not self.processing_code.startswith("20"):
            raise Iso8583Error("processing_code must be 20xxxx (returns)")
        _digits(self.transmission, 10, "transmission")
        _digits(self.stan, 6, "stan")
        _digits(self.local_time, 6, "local_time")
        _digits(self.local_date, 4, "local_date")
        _text(self.terminal_id, 8, "terminal_id")
        _text(self.merchant_id, 15, "merchant_id")
        _digits(self.currency, 3, "currency")
        _digits(self.original_mti, 4, "original_mti")
        _digits(self.original_stan, 6, "original_stan")
        _digits(self.original_transmission, 10, "original_transmission")
        if self.original_rrn is not None:
            _text(self.original_rrn, 12, "original_rrn")

    @classmethod
    def create(cls, *, amount: int, stan: str, terminal_id: str, merchant_id: str,
               original_stan: str, original_transmission: str, original_rrn: str | None = None,
               original_mti: str = PurchaseRequest.MTI, now: datetime | None = None) -> Self:
        """Stamped with the current time (field 7 in UTC, 12/13 local), as a purchase is."""
        return cls(amount=amount, stan=stan, **time_fields(now),
                   terminal_id=terminal_id, merchant_id=merchant_id, original_mti=original_mti,
                   original_stan=original_stan, original_transmission=original_transmission,
                   original_rrn=original_rrn)

    @property
    def key(self) -> tuple[str, str, str]:
        """What identifies this message for duplicates and for its own reversal."""
        return (self.terminal_id, self.stan, self.transmission)

    @property
    def original_key(self) -> tuple[str, str, str]:
        """The ``key`` of the message it names: the purchase, or the void or refund reversed."""
        return (self.terminal_id, self.original_stan, self.original_transmission)

    def _fields(self) -> dict[str, str | None]:
        fields: dict[str, str | None] = {n: getattr(self, a) for n, a in self._FIELDS.items()}
        fields["4"] = f"{self.amount:012d}"
        fields["90"] = (f"{self.original_mti}{self.original_stan}{self.original_transmission}"
                        .ljust(_ORIGINAL_LENGTH, "0"))
        return fields

    @classmethod
    def _from_fields(cls, doc: dict[str, Any]) -> Self:
        original = doc["90"]
        _digits(original, _ORIGINAL_LENGTH, "original data elements")
        return cls(amount=_parse_amount(doc["4"]), original_mti=original[0:4],
                   original_stan=original[4:10], original_transmission=original[10:20],
                   **{a: doc[n] for n, a in cls._FIELDS.items() if n in doc})


@dataclass(frozen=True, repr=False)
class VoidRequest(AdjustmentRequest):
    """0200 / 200000: cancel a purchase of this settlement day, its full amount."""

    MTI: ClassVar[str] = "0200"


@dataclass(frozen=True, repr=False)
class RefundRequest(AdjustmentRequest):
    """0220 / 200000: give back part or all of a purchase; several may follow one purchase."""

    MTI: ClassVar[str] = "0220"


@dataclass(frozen=True, repr=False)
class AdjustmentReversal(AdjustmentRequest):
    """0400 / 200000: undo a void or refund whose answer never came."""

    MTI: ClassVar[str] = "0400"

    @classmethod
    def of(cls, request: VoidRequest | RefundRequest, *, transmission: str) -> AdjustmentReversal:
        """The reversal of ``request``. ``transmission`` is chosen once and kept, so that every
        retry (by any instance, after any restart) sends the same bytes: a duplicate to the host."""
        return cls(amount=request.amount, stan=request.stan, transmission=transmission,
                   local_time=request.local_time, local_date=request.local_date,
                   terminal_id=request.terminal_id, merchant_id=request.merchant_id,
                   original_mti=request.MTI, original_stan=request.stan,
                   original_transmission=request.transmission, currency=request.currency,
                   processing_code=request.processing_code)


# The answers have the purchase's and reversal's shapes: only the MTI of a refund's differs.
VoidResponse = PurchaseResponse
AdjustmentReversalResponse = ReversalResponse


@dataclass(frozen=True, repr=False)
class RefundResponse(PurchaseResponse):
    """0230: the answer to a refund (the refund's own RRN, 38 empty)."""

    MTI: ClassVar[str] = "0230"


_BY_MTI: dict[str, type[AdjustmentRequest]] = {
    cls.MTI: cls for cls in (VoidRequest, RefundRequest, AdjustmentReversal)}


def adjustment_type(raw: bytes) -> type[AdjustmentRequest] | None:
    """Which of a void, a refund or a reversal of either ``raw`` holds; None if none of those, or
    not a message at all. A purchase and a purchase's reversal share MTIs 0200 and 0400 with them:
    field 3 (20xxxx) tells them apart."""
    try:
        doc = _decode_fields(raw)
    except Iso8583Error:
        return None
    kind = _BY_MTI.get(doc["t"])
    return kind if kind is not None and str(doc.get("3", "")).startswith("20") else None


def decode_adjustment(raw: bytes) -> AdjustmentRequest | None:
    """The void, refund or reversal of either in ``raw`` (None if it holds none of them)."""
    kind = adjustment_type(raw)
    return kind.decode(raw) if kind is not None else None
