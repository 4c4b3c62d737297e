"""A merchant's settlement record for one day: what it sold, gave back, pays in fees, receives.

Built from the day's money (ivr/settlement/ledger.py) and the fee table (fees.py), all in fen:

    gross    every purchase approved that day
    voids    purchases voided that day (they pay no fee)
    refunds  refunds that succeeded that day (their purchase's fee is not given back)
    fees     per purchase not voided, by the fee table, rounded half up per transaction
    net      gross - voids - refunds - fees, paid out on the payout date (T+1). Negative when
             refunds outweigh the day's sales: the merchant owes it, set off against later days.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from ivr.money import Money
from ivr.settlement.fees import FeeTable, fee_of
from ivr.settlement.ledger import PURCHASE, REFUND, VOID, MoneyItem

__all__ = ["MerchantSettlement", "build_settlements", "signed_yuan"]


def signed_yuan(fen: int) -> str:
    """``-12.34`` for -1234 fen: a net may be negative, a Money never is."""
    return ("-" if fen < 0 else "") + Money(abs(fen)).yuan


@dataclass(frozen=True)
class MerchantSettlement:
    merchant_id: str
    day: date
    gross: int
    gross_count: int
    voids: int
    void_count: int
    refunds: int
    refund_count: int
    fees: int
    lines: tuple[dict[str, Any], ...]  # each transaction: kind, ids, RRN, time, amount, fee

    @property
    def net(self) -> int:
        return self.gross - self.voids - self.refunds - self.fees

    @property
    def payout_date(self) -> date:
        return self.day + timedelta(days=1)

    def to_json(self) -> dict[str, Any]:
        return {"merchant_id": self.merchant_id, "day": self.day.isoformat(),
                "payout_date": self.payout_date.isoformat(), "currency": "CNY",
                "gross": Money(self.gross).yuan, "gross_count": self.gross_count,
                "voids": Money(self.voids).yuan, "void_count": self.void_count,
                "refunds": Money(self.refunds).yuan, "refund_count": self.refund_count,
                "fees": Money(self.fees).yuan, "net": signed_yuan(self.net),
                "transactions": list(self.lines)}

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> MerchantSettlement:
        def fen(name: str) -> int:
            return Money.parse(body[name]).fen
        return cls(body["merchant_id"], date.fromisoformat(body["day"]), fen("gross"),
                   body["gross_count"], fen("voids"), body["void_count"], fen("refunds"),
                   body["refund_count"], fen("fees"), tuple(body["transactions"]))

    def to_csv(self) -> str:
        """One row per transaction, then the totals row (amounts in yuan)."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(["type", "id", "payment_id", "rrn", "time", "amount", "fee"])
        for line in self.lines:
            writer.writerow([line["kind"], line["id"], line["payment_id"], line["rrn"],
                             line["at"], line["amount"], line["fee"]])
        writer.writerow(["total", self.merchant_id, self.day.isoformat(),
                         f"payout {self.payout_date.isoformat()}", "", signed_yuan(self.net),
                         Money(self.fees).yuan])
        return out.getvalue()


def build_settlements(day: date, items: list[MoneyItem],
                      fees: FeeTable) -> dict[str, MerchantSettlement]:
    """Each merchant's record of ``day`` (merchants without money that day have none)."""
    voided = {i.payment_id for i in items if i.kind == VOID}
    by_merchant: dict[str, list[MoneyItem]] = {}
    for item in items:
        by_merchant.setdefault(item.merchant_id, []).append(item)
    out = {}
    for merchant_id, own in sorted(by_merchant.items()):
        rate = fees.rate(merchant_id)
        lines = []
        for item in own:
            fee = fee_of(item.amount, rate) if item.kind == PURCHASE and item.id not in voided else 0
            lines.append({"kind": item.kind, "id": item.id, "payment_id": item.payment_id,
                          "rrn": item.rrn, "at": item.at.isoformat(),
                          "amount": Money(item.amount).yuan, "fee": Money(fee).yuan})
        def total(kind: str) -> int:
            return sum(i.amount for i in own if i.kind == kind)
        out[merchant_id] = MerchantSettlement(
            merchant_id, day, total(PURCHASE), sum(i.kind == PURCHASE for i in own),
            total(VOID), sum(i.kind == VOID for i in own), total(REFUND),
            sum(i.kind == REFUND for i in own),
            sum(Money.parse(line["fee"]).fen for line in lines), tuple(lines))
    return out
