"""The messages of our host link as typed dataclasses over pyiso8583.

Every message validates its fields when built, so a decoded message is a well-formed one. Errors
are :class:`Iso8583Error` naming the field, never quoting its value or the raw bytes (pyiso8583's
own ``DecodeError`` keeps the whole message, so it is never allowed to escape). ``repr`` masks the
card number and hides the PIN block, the CVV2 block and the expiry date.

A purchase is authorized one of two ways, and the message carries either or both:

* debit cards: online PIN, field 52 (ISO 9564 format 4 block under the PEK);
* credit cards, card not present: expiry date (field 14, YYMM) and CVV2, field 48 (AES-GCM block
  under the CVV key, see :mod:`ivr.crypto.cvv2`).

Which one a card needs is the acquirer's decision; the message only checks each field's shape.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from typing import Any, ClassVar, Self

import iso8583

from ivr.crypto.cvv2 import CVV2_BLOCK_LENGTH
from ivr.crypto.pan_vault import mask_pan
from ivr.hostlink.spec import VOICEPAY_SPEC

__all__ = [
    "Iso8583Error",
    "ResponseCode",
    "PurchaseRequest",
    "PurchaseResponse",
    "ReversalRequest",
    "ReversalResponse",
    "EchoRequest",
    "EchoResponse",
    "Message",
    "decode_message",
    "peek_mti",
    "transmission_datetime",
    "time_fields",
    "PURCHASE",
    "ECHO_TEST",
    "CNY",
    "KEYED_WITH_PIN",
]

PURCHASE = "000000"
ECHO_TEST = "301"
CNY = "156"
# Manual key entry, PIN entry capable: the caller types the card number on the keypad.
KEYED_WITH_PIN = "012"


class Iso8583Error(ValueError):
    """A message could not be built, encoded or decoded. Never carries field values or bytes."""


class ResponseCode(str, Enum):
    """Field 39 codes we send and understand, each with a short English description."""

    description: str

    def __new__(cls, code: str, description: str) -> ResponseCode:
        member = str.__new__(cls, code)
        member._value_ = code
        member.description = description
        return member

    APPROVED = "00", "Approved"
    DO_NOT_HONOUR = "05", "Do not honour"
    INVALID_TRANSACTION = "12", "Invalid transaction"
    INVALID_AMOUNT = "13", "Invalid amount"
    INVALID_CARD_NUMBER = "14", "Invalid card number"
    ORIGINAL_NOT_FOUND = "25", "Unable to locate original transaction"
    FORMAT_ERROR = "30", "Format error"
    INSUFFICIENT_FUNDS = "51", "Insufficient funds"
    EXPIRED_CARD = "54", "Expired card"
    INCORRECT_PIN = "55", "Incorrect PIN"
    EXCEEDS_AMOUNT_LIMIT = "61", "Exceeds withdrawal amount limit"
    RESTRICTED_CARD = "62", "Restricted card"
    PIN_TRIES_EXCEEDED = "75", "Allowable number of PIN tries exceeded"
    # ISO 8583:1987 has no CVV2 code. Visa answers N7; the two-digit code used for a failed CVV2
    # by UnionPay-style and many other hosts (and by this link) is 82.
    BAD_CVV2 = "82", "CVV2 verification failed"
    ISSUER_UNAVAILABLE = "91", "Issuer or switch inoperative"
    DUPLICATE = "94", "Duplicate transmission"
    SYSTEM_MALFUNCTION = "96", "System malfunction"

    @property
    def approved(self) -> bool:
        return self is ResponseCode.APPROVED


def transmission_datetime(moment: datetime | None = None) -> str:
    """Field 7, MMDDhhmmss in UTC, as ISO 8583 has it."""
    moment = (moment or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return moment.strftime("%m%d%H%M%S")


def time_fields(now: datetime | None = None) -> dict[str, str]:
    """What stamps a request sent ``now``: field 7 (UTC) and fields 12 and 13 (local time)."""
    now = now or datetime.now(timezone.utc)
    local = now.astimezone()
    return {"transmission": transmission_datetime(now), "local_time": local.strftime("%H%M%S"),
            "local_date": local.strftime("%m%d")}


def peek_mti(raw: bytes) -> str | None:
    """The message type of ``raw`` if it starts with four digits, without decoding the rest."""
    head = bytes(raw[:4])
    return head.decode("ascii") if len(head) == 4 and head.isdigit() else None


# --- field checks: each raises Iso8583Error naming the field, never showing the value ---------


def _digits(value: object, length: int, name: str) -> None:
    if not (isinstance(value, str) and len(value) == length and value.isascii() and value.isdigit()):
        raise Iso8583Error(f"{name} must be {length} digits")


def _text(value: object, length: int, name: str) -> None:
    if not (isinstance(value, str) and len(value) == length and value.isascii() and value.isprintable()):
        raise Iso8583Error(f"{name} must be {length} printable ASCII characters")


def _pan(value: object) -> None:
    if not (isinstance(value, str) and 12 <= len(value) <= 19 and value.isascii() and value.isdigit()):
        raise Iso8583Error("pan must be 12 to 19 digits")


def _amount(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 10**12:
        raise Iso8583Error("amount must be an integer from 0 to 999999999999 minor units")


def _optional(check: Callable[..., None], value: object, *args: Any) -> None:
    if value is not None:
        check(value, *args)


class Message:
    """Encode/decode plumbing shared by every message; subclasses list their fields."""

    MTI: ClassVar[str]
    _SECRET_FIELDS: ClassVar[frozenset[str]] = frozenset()

    def _fields(self) -> dict[str, str | None]:
        raise NotImplementedError

    @classmethod
    def _from_fields(cls, doc: dict[str, Any]) -> Self:
        raise NotImplementedError

    def encode(self) -> bytes:
        doc: dict[str, Any] = {"t": self.MTI}
        doc.update({k: v for k, v in self._fields().items() if v is not None})
        try:
            raw, _ = iso8583.encode(doc, VOICEPAY_SPEC)
        except iso8583.EncodeError as exc:
            raise Iso8583Error(f"{type(self).__name__}: cannot encode field {exc.field}") from None
        return bytes(raw)

    @classmethod
    def decode(cls, raw: bytes) -> Self:
        doc = _decode_fields(raw)
        if doc["t"] != cls.MTI:
            raise Iso8583Error(f"expected MTI {cls.MTI}, got {doc['t']}")
        try:
            return cls._from_fields(doc)
        except KeyError as exc:
            raise Iso8583Error(f"{cls.__name__}: field {exc.args[0]} is missing") from None
        except (TypeError, ValueError) as exc:
            if isinstance(exc, Iso8583Error):
                raise
            raise Iso8583Error(f"{cls.__name__}: malformed field") from None

    def __repr__(self) -> str:
        parts = []
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.name == "pan":
                shown = repr(mask_pan(value))
            elif f.name in self._SECRET_FIELDS and value is not None:
                shown = "<hidden>"
            else:
                shown = repr(value)
            parts.append(f"{f.name}={shown}")
        return f"{type(self).__name__}({', '.join(parts)})"


def _decode_fields(raw: bytes) -> dict[str, Any]:
    if not isinstance(raw, (bytes, bytearray)):
        raise Iso8583Error("message must be bytes")
    try:
        doc, _ = iso8583.decode(bytes(raw), VOICEPAY_SPEC)
    except iso8583.DecodeError as exc:
        raise Iso8583Error(f"malformed message at field {exc.field}") from None
    mti = doc.get("t", "")
    if not (len(mti) == 4 and mti.isdigit()):
        raise Iso8583Error("message type is not 4 digits")
    return doc


def _card_fields(msg: PurchaseRequest | ReversalRequest) -> dict[str, str | None]:
    """Fields 2-49 shared by a purchase and its reversal."""
    return {
        "2": msg.pan,
        "3": msg.processing_code,
        "4": f"{msg.amount:012d}",
        "7": msg.transmission,
        "11": msg.stan,
        "12": msg.local_time,
        "13": msg.local_date,
        "14": msg.expiry,
        "22": msg.pos_entry_mode,
        "41": msg.terminal_id,
        "42": msg.merchant_id,
        "49": msg.currency,
    }


def _card_kwargs(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "pan": doc["2"],
        "processing_code": doc["3"],
        "amount": _parse_amount(doc["4"]),
        "transmission": doc["7"],
        "stan": doc["11"],
        "local_time": doc["12"],
        "local_date": doc["13"],
        "expiry": doc.get("14"),
        "pos_entry_mode": doc["22"],
        "terminal_id": doc["41"],
        "merchant_id": doc["42"],
        "currency": doc["49"],
    }


def _parse_amount(text: str) -> int:
    _digits(text, 12, "amount")
    return int(text)


def _check_card_fields(msg: PurchaseRequest | ReversalRequest) -> None:
    _pan(msg.pan)
    _amount(msg.amount)
    _digits(msg.processing_code, 6, "processing_code")
    _digits(msg.transmission, 10, "transmission")
    _digits(msg.stan, 6, "stan")
    _digits(msg.local_time, 6, "local_time")
    _digits(msg.local_date, 4, "local_date")
    _optional(_digits, msg.expiry, 4, "expiry")
    _digits(msg.pos_entry_mode, 3, "pos_entry_mode")
    _text(msg.terminal_id, 8, "terminal_id")
    _text(msg.merchant_id, 15, "merchant_id")
    _digits(msg.currency, 3, "currency")


@dataclass(frozen=True, repr=False)
class PurchaseRequest(Message):
    """0200: a purchase, amount in minor units (fen), with online PIN and/or expiry + CVV2."""

    MTI: ClassVar[str] = "0200"
    _SECRET_FIELDS: ClassVar[frozenset[str]] = frozenset({"pin_block", "expiry", "cvv2_block"})

    pan: str
    amount: int
    stan: str
    transmission: str
    local_time: str
    local_date: str
    terminal_id: str
    merchant_id: str
    pin_block: bytes | None = None
    currency: str = CNY
    expiry: str | None = None
    processing_code: str = PURCHASE
    pos_entry_mode: str = KEYED_WITH_PIN
    cvv2_block: bytes | None = None
    # The key ids (TR-31 key versions) the PIN block and the CVV2 block were made under, so the
    # acquirer picks the right key while an old and a new one overlap: field 53 (below).
    pin_key_id: int | None = None
    cvv_key_id: int | None = None

    def __post_init__(self) -> None:
        _check_card_fields(self)
        _optional(_key_id, self.pin_key_id, "pin_key_id")
        _optional(_key_id, self.cvv_key_id, "cvv_key_id")
        if self.pin_block is not None and (
            not isinstance(self.pin_block, (bytes, bytearray)) or len(self.pin_block) != 16
        ):
            raise Iso8583Error("pin_block must be 16 bytes (ISO 9564 format 4)")
        if self.cvv2_block is not None and (
            not isinstance(self.cvv2_block, (bytes, bytearray)) or len(self.cvv2_block) != CVV2_BLOCK_LENGTH
        ):
            raise Iso8583Error(f"cvv2_block must be {CVV2_BLOCK_LENGTH} bytes (AES-GCM CVV2 block)")

    @classmethod
    def create(
        cls,
        *,
        pan: str,
        amount: int,
        stan: str,
        terminal_id: str,
        merchant_id: str,
        pin_block: bytes | None = None,
        expiry: str | None = None,
        cvv2_block: bytes | None = None,
        pin_key_id: int | None = None,
        cvv_key_id: int | None = None,
        now: datetime | None = None,
    ) -> PurchaseRequest:
        """A purchase stamped with the current time (field 7 in UTC, 12/13 local).

        ``expiry`` is YYMM, as field 14 has it (the cardholder keys MMYY: convert first).
        """
        return cls(
            pan=pan,
            amount=amount,
            stan=stan,
            **time_fields(now),
            terminal_id=terminal_id,
            merchant_id=merchant_id,
            pin_block=bytes(pin_block) if pin_block is not None else None,
            expiry=expiry,
            cvv2_block=bytes(cvv2_block) if cvv2_block is not None else None,
            pin_key_id=pin_key_id,
            cvv_key_id=cvv_key_id,
        )

    @property
    def key(self) -> tuple[str, str, str]:
        """What identifies this transaction for duplicates and reversals."""
        return (self.terminal_id, self.stan, self.transmission)

    def _fields(self) -> dict[str, str | None]:
        # pyiso8583 takes binary fields as hex text and puts the raw bytes on the wire.
        return {
            **_card_fields(self),
            "48": _hex_or_none(self.cvv2_block),
            "52": _hex_or_none(self.pin_block),
            "53": _security_control(self.pin_key_id, self.cvv_key_id),
        }

    @classmethod
    def _from_fields(cls, doc: dict[str, Any]) -> Self:
        pin_key_id, cvv_key_id = _key_ids(doc.get("53"))
        return cls(
            **_card_kwargs(doc),
            pin_block=bytes.fromhex(doc["52"]) if "52" in doc else None,
            cvv2_block=bytes.fromhex(doc["48"]) if "48" in doc else None,
            pin_key_id=pin_key_id,
            cvv_key_id=cvv_key_id,
        )


def _key_id(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 99:
        raise Iso8583Error(f"{name} must be a key id from 1 to 99")


# Field 53, security related control information (n16): our layout is the PIN key's id (2
# digits), the CVV key's id (2 digits, 00 = none), then 12 zeros reserved. Absent when neither
# key is named: an acquirer then uses its current keys.
def _security_control(pin_key_id: int | None, cvv_key_id: int | None) -> str | None:
    if pin_key_id is None and cvv_key_id is None:
        return None
    return f"{pin_key_id or 0:02d}{cvv_key_id or 0:02d}" + "0" * 12


def _key_ids(field: str | None) -> tuple[int | None, int | None]:
    if field is None:
        return None, None
    _digits(field, 16, "security control (field 53)")
    return int(field[:2]) or None, int(field[2:4]) or None


def _hex_or_none(block: bytes | None) -> str | None:
    return bytes(block).hex().upper() if block is not None else None


@dataclass(frozen=True, repr=False)
class PurchaseResponse(Message):
    """0210: the answer to a purchase. It never echoes the card number."""

    MTI: ClassVar[str] = "0210"

    processing_code: str
    amount: int
    transmission: str
    stan: str
    rrn: str
    response_code: ResponseCode
    terminal_id: str
    merchant_id: str
    auth_code: str | None = None

    def __post_init__(self) -> None:
        _digits(self.processing_code, 6, "processing_code")
        _amount(self.amount)
        _digits(self.transmission, 10, "transmission")
        _digits(self.stan, 6, "stan")
        _text(self.rrn, 12, "rrn")
        if not isinstance(self.response_code, ResponseCode):
            raise Iso8583Error("response_code must be a ResponseCode")
        _text(self.terminal_id, 8, "terminal_id")
        _text(self.merchant_id, 15, "merchant_id")
        _optional(_text, self.auth_code, 6, "auth_code")

    @classmethod
    def for_request(
        cls, request: PurchaseRequest, code: ResponseCode, rrn: str, auth_code: str | None = None
    ) -> PurchaseResponse:
        return cls(
            processing_code=request.processing_code,
            amount=request.amount,
            transmission=request.transmission,
            stan=request.stan,
            rrn=rrn,
            response_code=code,
            terminal_id=request.terminal_id,
            merchant_id=request.merchant_id,
            auth_code=auth_code if code.approved else None,
        )

    @property
    def approved(self) -> bool:
        return self.response_code.approved

    def _fields(self) -> dict[str, str | None]:
        return {
            "3": self.processing_code,
            "4": f"{self.amount:012d}",
            "7": self.transmission,
            "11": self.stan,
            "37": self.rrn,
            "38": self.auth_code,
            "39": self.response_code.value,
            "41": self.terminal_id,
            "42": self.merchant_id,
        }

    @classmethod
    def _from_fields(cls, doc: dict[str, Any]) -> Self:
        return cls(
            processing_code=doc["3"],
            amount=_parse_amount(doc["4"]),
            transmission=doc["7"],
            stan=doc["11"],
            rrn=doc["37"],
            response_code=_parse_code(doc["39"]),
            terminal_id=doc["41"],
            merchant_id=doc["42"],
            auth_code=doc.get("38"),
        )


def _parse_code(text: str) -> ResponseCode:
    try:
        return ResponseCode(text)
    except ValueError:
        raise Iso8583Error("response code is not one we know") from None


@dataclass(frozen=True, repr=False)
class ReversalRequest(Message):
    """0400: undo a purchase whose answer never came. Field 90 names the original."""

    MTI: ClassVar[str] = "0400"
    _SECRET_FIELDS: ClassVar[frozenset[str]] = frozenset({"expiry"})

    pan: str
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
    currency: str = CNY
    expiry: str | None = None
    processing_code: str = PURCHASE
    pos_entry_mode: str = KEYED_WITH_PIN

    def __post_init__(self) -> None:
        _check_card_fields(self)
        _digits(self.original_mti, 4, "original_mti")
        _digits(self.original_stan, 6, "original_stan")
        _digits(self.original_transmission, 10, "original_transmission")

    @classmethod
    def for_purchase(cls, original: PurchaseRequest, *, now: datetime | None = None) -> ReversalRequest:
        """The reversal of ``original``: same STAN and card data, a new transmission time."""
        return cls(
            pan=original.pan,
            amount=original.amount,
            stan=original.stan,
            transmission=transmission_datetime(now),
            local_time=original.local_time,
            local_date=original.local_date,
            terminal_id=original.terminal_id,
            merchant_id=original.merchant_id,
            original_mti=original.MTI,
            original_stan=original.stan,
            original_transmission=original.transmission,
            currency=original.currency,
            expiry=original.expiry,
            processing_code=original.processing_code,
            pos_entry_mode=original.pos_entry_mode,
        )

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.terminal_id, self.stan, self.transmission)

    @property
    def original_key(self) -> tuple[str, str, str]:
        """The ``key`` of the purchase being reversed."""
        return (self.terminal_id, self.original_stan, self.original_transmission)

    def _fields(self) -> dict[str, str | None]:
        # Original MTI, STAN and transmission time; the acquirer and forwarder ids stay zero.
        original = f"{self.original_mti}{self.original_stan}{self.original_transmission}".ljust(42, "0")
        return {**_card_fields(self), "90": original}

    @classmethod
    def _from_fields(cls, doc: dict[str, Any]) -> Self:
        original = doc["90"]
        _digits(original, 42, "original data elements")
        return cls(
            **_card_kwargs(doc),
            original_mti=original[0:4],
            original_stan=original[4:10],
            original_transmission=original[10:20],
        )


@dataclass(frozen=True, repr=False)
class ReversalResponse(Message):
    """0410: the acquirer's acknowledgement of a reversal."""

    MTI: ClassVar[str] = "0410"

    processing_code: str
    amount: int
    transmission: str
    stan: str
    response_code: ResponseCode
    terminal_id: str
    merchant_id: str

    def __post_init__(self) -> None:
        _digits(self.processing_code, 6, "processing_code")
        _amount(self.amount)
        _digits(self.transmission, 10, "transmission")
        _digits(self.stan, 6, "stan")
        if not isinstance(self.response_code, ResponseCode):
            raise Iso8583Error("response_code must be a ResponseCode")
        _text(self.terminal_id, 8, "terminal_id")
        _text(self.merchant_id, 15, "merchant_id")

    @classmethod
    def for_request(cls, request: ReversalRequest, code: ResponseCode) -> ReversalResponse:
        return cls(
            processing_code=request.processing_code,
            amount=request.amount,
            transmission=request.transmission,
            stan=request.stan,
            response_code=code,
            terminal_id=request.terminal_id,
            merchant_id=request.merchant_id,
        )

    def _fields(self) -> dict[str, str | None]:
        return {
            "3": self.processing_code,
            "4": f"{self.amount:012d}",
            "7": self.transmission,
            "11": self.stan,
            "39": self.response_code.value,
            "41": self.terminal_id,
            "42": self.merchant_id,
        }

    @classmethod
    def _from_fields(cls, doc: dict[str, Any]) -> Self:
        return cls(
            processing_code=doc["3"],
            amount=_parse_amount(doc["4"]),
            transmission=doc["7"],
            stan=doc["11"],
            response_code=_parse_code(doc["39"]),
            terminal_id=doc["41"],
            merchant_id=doc["42"],
        )


@dataclass(frozen=True, repr=False)
class EchoRequest(Message):
    """0800 with network management code 301: is the link alive?"""

    MTI: ClassVar[str] = "0800"

    stan: str
    transmission: str

    def __post_init__(self) -> None:
        _digits(self.stan, 6, "stan")
        _digits(self.transmission, 10, "transmission")

    def _fields(self) -> dict[str, str | None]:
        return {"7": self.transmission, "11": self.stan, "70": ECHO_TEST}

    @classmethod
    def _from_fields(cls, doc: dict[str, Any]) -> Self:
        if doc["70"] != ECHO_TEST:
            raise Iso8583Error("network management code is not an echo test")
        return cls(stan=doc["11"], transmission=doc["7"])


@dataclass(frozen=True, repr=False)
class EchoResponse(Message):
    MTI: ClassVar[str] = "0810"

    stan: str
    transmission: str
    response_code: ResponseCode = ResponseCode.APPROVED

    def __post_init__(self) -> None:
        _digits(self.stan, 6, "stan")
        _digits(self.transmission, 10, "transmission")
        if not isinstance(self.response_code, ResponseCode):
            raise Iso8583Error("response_code must be a ResponseCode")

    def _fields(self) -> dict[str, str | None]:
        return {"7": self.transmission, "11": self.stan, "39": self.response_code.value, "70": ECHO_TEST}

    @classmethod
    def _from_fields(cls, doc: dict[str, Any]) -> Self:
        return cls(stan=doc["11"], transmission=doc["7"], response_code=_parse_code(doc["39"]))


_BY_MTI: dict[str, type[Message]] = {
    cls.MTI: cls
    for cls in (
        PurchaseRequest,
        PurchaseResponse,
        ReversalRequest,
        ReversalResponse,
        EchoRequest,
        EchoResponse,
    )
}


def decode_message(raw: bytes) -> Message:
    """Whichever of our messages ``raw`` holds, by its MTI."""
    mti = peek_mti(raw)
    if mti not in _BY_MTI:
        raise Iso8583Error("unsupported message type")
    return _BY_MTI[mti].decode(raw)
