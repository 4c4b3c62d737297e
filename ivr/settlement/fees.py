"""The fee table: what the platform charges a merchant per purchase, in fen, integer arithmetic.

Rounding rule: half up, per transaction. A purchase's fee is ``amount * rate_bp / 10000`` rounded
to the nearest fen, a half fen up; at least the row's minimum; never more than the amount.

    >>> fee_of(8800, FeeRate(60, 10))       # 52.8 fen
    53
    >>> fee_of(2500, FeeRate(38, 5))        # 9.5 fen: a half goes up
    10
    >>> fee_of(1000, FeeRate(60, 10))       # 6 fen is under the minimum
    10
    >>> fee_of(3, FeeRate(60, 10))          # never more than the amount
    3
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

__all__ = ["FeeRate", "FeeTable", "FeeTableError", "fee_of", "DEFAULT_FEE_TABLE"]

DEFAULT_FEE_TABLE = Path(__file__).parents[1] / "fee_table.toml"
_MAX_BP = 10_000


class FeeTableError(ValueError):
    """A fee table that cannot be used; names the file and row."""


@dataclass(frozen=True)
class FeeRate:
    rate_bp: int
    min_fen: int


def fee_of(amount_fen: int, rate: FeeRate) -> int:
    """The fee of one purchase of ``amount_fen``, by the rounding rule above."""
    scaled = amount_fen * rate.rate_bp
    fee = scaled // _MAX_BP + (1 if scaled % _MAX_BP * 2 >= _MAX_BP else 0)
    return min(max(fee, rate.min_fen), amount_fen)


@dataclass(frozen=True)
class FeeTable:
    default: FeeRate
    merchants: dict[str, FeeRate]

    def rate(self, merchant_id: str) -> FeeRate:
        return self.merchants.get(merchant_id, self.default)

    @classmethod
    def load(cls, path: Path = DEFAULT_FEE_TABLE) -> FeeTable:
        try:
            document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise FeeTableError(f"fee table {path} is unreadable: {exc}") from None
        if "default" not in document:
            raise FeeTableError(f"fee table {path} has no [default] row")
        merchants = document.get("merchant", {})
        if not isinstance(merchants, dict):
            raise FeeTableError(f"fee table {path}: [merchant.ID] rows, one per merchant")
        return cls(_rate(document["default"], f"{path} [default]"),
                   {mid: _rate(row, f"{path} [merchant.{mid}]") for mid, row in merchants.items()})


def _rate(row: object, where: str) -> FeeRate:
    if not isinstance(row, dict) or set(row) != {"rate_bp", "min_fen"}:
        raise FeeTableError(f"{where}: rate_bp and min_fen, nothing else")
    rate, minimum = row["rate_bp"], row["min_fen"]
    for name, value in (("rate_bp", rate), ("min_fen", minimum)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise FeeTableError(f"{where}: {name} must be a whole number, 0 or more")
    if rate > _MAX_BP:
        raise FeeTableError(f"{where}: rate_bp is at most {_MAX_BP} (100 %)")
    return FeeRate(rate, minimum)
