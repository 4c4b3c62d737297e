"""The acquirer's daily reconciliation file ("ZM"): one layout, written by the acquirer
simulator, read by the platform.

Modelled on UnionPay's merchant reconciliation file: fixed-width GBK text, one record a line
(CRLF), every line ``RECORD_WIDTH`` bytes. A header (``H``), one detail (``D``) per transaction the
acquirer settled that day, a trailer (``T``) with the count and totals the reader checks. Widths
count GBK bytes: a Chinese character takes two. Numbers (N) are right-aligned and zero-padded,
text (A) left-aligned and space-padded. Amounts are fen. The card number is masked (first 6,
last 4) or the writer refuses the record: the file never holds a full card number.

Transaction codes: ``S22`` purchase (消费), ``S31`` void (消费撤销), ``S33`` refund (退货). A purchase
is a debit (``D``: money to the merchant), a void or refund a credit (``C``: money back). The
settlement amount is the amount less the fee; a void's fee is its purchase's fee given back.

    >>> record = ZmRecord(TxnCode.PURCHASE, "000041", "1127143015", "622188******1234", 8800,
    ...                   "4814", "633114000001", "M100001", "VP000001", 33, 8767,
    ...                   merchant_name="中国移动上海")
    >>> file = ZmFile(date(2026, 11, 27), "48020000", datetime(2026, 11, 28, 0, 5), (record,))
    >>> ZmFile.decode(file.encode()) == file
    True
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum

__all__ = ["Field", "HEADER", "DETAIL", "TRAILER", "RECORD_WIDTH", "TxnCode", "ZmRecord",
           "ZmFile", "ZmFileError", "file_name"]

ENCODING = "gbk"


@dataclass(frozen=True)
class Field:
    name: str
    width: int       # bytes, GBK
    kind: str = "A"  # A text, spaces on the right; N an amount or count, zero-padded on the left;
                     # 9 digits that are a name (STAN, time, MCC): exactly ``width`` of them

    @property
    def numeric(self) -> bool:
        return self.kind != "A"


N, D9 = "N", "9"

# The layout, once: the writer and the parser both walk these tables.
HEADER = (Field("record_type", 1), Field("settlement_day", 8, D9), Field("acquirer", 11),
          Field("created_at", 14, D9))
DETAIL = (
    Field("record_type", 1),
    Field("txn_code", 3),
    Field("direction", 1),                # D to the merchant, C back to the cardholder
    Field("stan", 6, D9),
    Field("transmission", 10, D9),         # MMDDhhmmss, as in field 7
    Field("masked_pan", 19),              # first 6, last 4, stars between
    Field("amount", 12, N),
    Field("mcc", 4, D9),
    Field("rrn", 12),
    Field("merchant_code", 15),           # field 42
    Field("terminal", 8),                 # field 41
    Field("fee", 12, N),
    Field("settlement_amount", 12, N),
    Field("original_stan", 6),            # a void's or refund's purchase; blank for a purchase
    Field("original_transmission", 10),
    Field("original_rrn", 12),
    Field("merchant_name", 40),           # Chinese, GBK: 20 characters
)
TRAILER = (Field("record_type", 1), Field("count", 8, N), Field("debit_amount", 16, N),
           Field("credit_amount", 16, N), Field("fee_sign", 1), Field("fee_net", 16, N),
           Field("settlement_sign", 1), Field("settlement_net", 16, N))
RECORD_WIDTH = max(sum(f.width for f in table) for table in (HEADER, DETAIL, TRAILER))

_MASKED = re.compile(r"[0-9]{6}\*{3,9}[0-9]{4}")


class ZmFileError(ValueError):
    """A file that does not follow the layout. Names lines and fields, never their contents."""


class TxnCode(str, Enum):
    PURCHASE = "S22"
    VOID = "S31"
    REFUND = "S33"

    @property
    def direction(self) -> str:
        return "D" if self is TxnCode.PURCHASE else "C"


@dataclass(frozen=True)
class ZmRecord:
    txn_code: TxnCode
    stan: str
    transmission: str
    masked_pan: str
    amount: int
    mcc: str
    rrn: str
    merchant_code: str
    terminal: str
    fee: int
    settlement_amount: int
    original_stan: str = ""
    original_transmission: str = ""
    original_rrn: str = ""
    merchant_name: str = ""

    def __post_init__(self) -> None:
        if not _MASKED.fullmatch(self.masked_pan):
            raise ZmFileError("a card number in the file must be masked (first 6, last 4)")


@dataclass(frozen=True)
class ZmFile:
    day: date
    acquirer: str
    created_at: datetime
    records: tuple[ZmRecord, ...]

    def encode(self) -> bytes:
        header = {"record_type": "H", "settlement_day": f"{self.day:%Y%m%d}",
                  "acquirer": self.acquirer, "created_at": f"{self.created_at:%Y%m%d%H%M%S}"}
        lines = [_line(HEADER, header)]
        for record in self.records:
            values = {f: getattr(record, f) for f in record.__dataclass_fields__}
            values.update(record_type="D", txn_code=record.txn_code.value,
                          direction=record.txn_code.direction)
            lines.append(_line(DETAIL, values))
        lines.append(_line(TRAILER, _totals(self.records)))
        return b"".join(line + b"\r\n" for line in lines)

    @classmethod
    def decode(cls, raw: bytes) -> ZmFile:
        """The file in ``raw``, its trailer checked against its details; ZmFileError if not."""
        lines = raw.split(b"\r\n")
        if lines and lines[-1] == b"":
            lines.pop()
        if len(lines) < 2:
            raise ZmFileError("a file has at least a header and a trailer")
        header = _fields(HEADER, lines[0], 1)
        trailer = _fields(TRAILER, lines[-1], len(lines))
        if header["record_type"] != "H" or trailer["record_type"] != "T":
            raise ZmFileError("the first line must be the header (H), the last the trailer (T)")
        records = []
        for number, line in enumerate(lines[1:-1], start=2):
            values = _fields(DETAIL, line, number)
            try:
                code = TxnCode(values.pop("txn_code"))
            except ValueError:
                raise ZmFileError(f"line {number}: unknown transaction code") from None
            if values.pop("record_type") != "D" or values.pop("direction") != code.direction:
                raise ZmFileError(f"line {number}: not a detail record, or a wrong direction")
            records.append(ZmRecord(txn_code=code, **values))
        if _totals(records) != trailer:
            raise ZmFileError("the trailer's count or totals do not match the details")
        try:
            day = datetime.strptime(header["settlement_day"], "%Y%m%d").date()
            created = datetime.strptime(header["created_at"], "%Y%m%d%H%M%S")
        except ValueError:
            raise ZmFileError("line 1: not a date") from None
        return cls(day, header["acquirer"], created, tuple(records))


def file_name(day: date) -> str:
    """Where the acquirer puts a day's file in the directory it shares with the platform."""
    return f"ZM_{day:%Y%m%d}.txt"


def _totals(records: tuple[ZmRecord, ...] | list[ZmRecord]) -> dict[str, object]:
    def net(name: str) -> int:
        return sum(getattr(r, name) if r.txn_code is TxnCode.PURCHASE else -getattr(r, name)
                   for r in records)
    fee, settlement = net("fee"), net("settlement_amount")
    return {"record_type": "T", "count": len(records),
            "debit_amount": sum(r.amount for r in records if r.txn_code is TxnCode.PURCHASE),
            "credit_amount": sum(r.amount for r in records if r.txn_code is not TxnCode.PURCHASE),
            "fee_sign": "-" if fee < 0 else "+", "fee_net": abs(fee),
            "settlement_sign": "-" if settlement < 0 else "+", "settlement_net": abs(settlement)}


def _line(table: tuple[Field, ...], values: dict[str, object]) -> bytes:
    out = b"".join(_encode(f, values[f.name]) for f in table)
    return out.ljust(RECORD_WIDTH, b" ")


def _encode(field: Field, value: object) -> bytes:
    if field.numeric:
        text = str(value)
        wanted = range(1, field.width + 1) if field.kind == N else (field.width,)
        if not (text.isascii() and text.isdigit() and len(text) in wanted):
            raise ZmFileError(f"{field.name}: not {field.width} digits")
        return text.rjust(field.width, "0").encode("ascii")
    data = str(value).encode(ENCODING)
    if field.name == "merchant_name":
        data = _cut(str(value), field.width)  # a long name is cut, never in half a character
    if len(data) > field.width:
        raise ZmFileError(f"{field.name}: longer than {field.width} bytes")
    return data.ljust(field.width, b" ")


def _cut(text: str, width: int) -> bytes:
    data = text.encode(ENCODING)
    while len(data) > width:
        text = text[:-1]
        data = text.encode(ENCODING)
    return data


def _fields(table: tuple[Field, ...], line: bytes, number: int) -> dict[str, object]:
    if len(line) != RECORD_WIDTH:
        raise ZmFileError(f"line {number}: {len(line)} bytes, not {RECORD_WIDTH}")
    values: dict[str, object] = {}
    offset = 0
    for field in table:
        chunk = line[offset:offset + field.width]
        offset += field.width
        try:
            text = chunk.decode(ENCODING)
        except UnicodeDecodeError:
            raise ZmFileError(f"line {number}: {field.name} is not GBK text") from None
        if field.numeric:
            if not (text.isascii() and text.isdigit()):
                raise ZmFileError(f"line {number}: {field.name} is not a number")
            values[field.name] = int(text) if field.kind == N else text
        else:
            values[field.name] = text.rstrip(" ")
    return values
