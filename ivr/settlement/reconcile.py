"""Reconciliation: the acquirer's daily file against the platform's own money of the day.

Each transaction is matched by its kind and the acquirer's RRN (unique at the acquirer). Every
line of the report says what was found and what to do:

    matched            both sides agree                     nothing
    missing_ours       only the acquirer has it             investigate (see ACTIONS)
    missing_acquirer   only the platform has it             hold it back from the payout, ask
    amount_mismatch    both have it, amounts differ         raise an adjustment with the acquirer

A report is ``clean`` when every line matched.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from ivr.money import Money
from ivr.settlement.ledger import PURCHASE, REFUND, VOID, MoneyItem
from ivr.settlement.zm_file import TxnCode, ZmFile, ZmRecord

__all__ = ["ReconciliationLine", "Reconciliation", "reconcile", "ACTIONS"]

MATCHED, MISSING_OURS, MISSING_ACQUIRER, AMOUNT_MISMATCH = (
    "matched", "missing_ours", "missing_acquirer", "amount_mismatch")

ACTIONS = {
    MATCHED: "none",
    MISSING_OURS: "investigate: the acquirer settled a transaction the platform has no record "
                  "of; find it by RRN and STAN (a lost answer not reversed?) and ask the "
                  "acquirer to reverse it or record it",
    MISSING_ACQUIRER: "hold it back from the payout and raise a query with the acquirer: the "
                      "platform counts money the acquirer did not settle",
    AMOUNT_MISMATCH: "raise an adjustment with the acquirer for the difference; pay out on the "
                     "acquirer's amount until it is settled",
}

_KIND_OF_CODE = {TxnCode.PURCHASE: PURCHASE, TxnCode.VOID: VOID, TxnCode.REFUND: REFUND}


@dataclass(frozen=True)
class ReconciliationLine:
    result: str
    kind: str
    rrn: str
    merchant_id: str
    ours: int | None       # fen, None when the platform has no record
    acquirer: int | None   # fen, None when the acquirer's file has none
    stan: str = ""
    id: str = ""           # the platform's payment, void or refund id

    def to_json(self) -> dict[str, Any]:
        return {"result": self.result, "kind": self.kind, "rrn": self.rrn, "stan": self.stan,
                "merchant_id": self.merchant_id, "id": self.id,
                "our_amount": None if self.ours is None else Money(self.ours).yuan,
                "acquirer_amount": None if self.acquirer is None else Money(self.acquirer).yuan,
                "action": ACTIONS[self.result]}


@dataclass(frozen=True)
class Reconciliation:
    day: date
    lines: tuple[ReconciliationLine, ...]

    @property
    def clean(self) -> bool:
        return all(line.result == MATCHED for line in self.lines)

    def to_json(self) -> dict[str, Any]:
        counts = {r: sum(1 for line in self.lines if line.result == r)
                  for r in (MATCHED, MISSING_OURS, MISSING_ACQUIRER, AMOUNT_MISMATCH)}
        return {"day": self.day.isoformat(), "clean": self.clean, "counts": counts,
                # The lines that need someone first, then the matched ones.
                "lines": [line.to_json() for line in
                          sorted(self.lines, key=lambda x: (x.result == MATCHED, x.kind, x.rrn))]}


def reconcile(day: date, ours: list[MoneyItem], file: ZmFile) -> Reconciliation:
    theirs: dict[tuple[str, str], ZmRecord] = {
        (_KIND_OF_CODE[r.txn_code], r.rrn): r for r in file.records}
    lines = []
    for item in ours:
        record = theirs.pop((item.kind, item.rrn), None)
        if record is None:
            result = MISSING_ACQUIRER
        else:
            result = MATCHED if record.amount == item.amount else AMOUNT_MISMATCH
        lines.append(ReconciliationLine(result, item.kind, item.rrn, item.merchant_id, item.amount,
                                        None if record is None else record.amount, item.stan,
                                        item.id))
    for (kind, rrn), record in theirs.items():
        lines.append(ReconciliationLine(MISSING_OURS, kind, rrn, record.merchant_code, None,
                                        record.amount, record.stan))
    return Reconciliation(day, tuple(lines))
