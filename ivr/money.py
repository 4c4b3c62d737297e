"""Money: an amount of CNY in fen, and the one way it is read from and written as yuan.

Amounts cross our boundaries as yuan strings with exactly two decimals ("88.00"): the merchant
API, the settings, the merchants file. Inside they are whole fen, so nothing ever rounds.

    >>> Money.parse("2000.00").fen
    200000
    >>> str(Money(8801))
    '88.01'
    >>> Money.parse("88.1")
    Traceback (most recent call last):
    ...
    ValueError: an amount is yuan with exactly two decimals, e.g. "88.00"
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Money"]

# No sign, no exponent, no spaces, no leading zeros but one: what a person writes on an invoice.
_YUAN = re.compile(r"(0|[1-9][0-9]{0,11})\.([0-9]{2})")


@dataclass(frozen=True, order=True)
class Money:
    fen: int

    def __post_init__(self) -> None:
        if not isinstance(self.fen, int) or isinstance(self.fen, bool) or self.fen < 0:
            raise ValueError("an amount is a whole, non-negative number of fen")

    @classmethod
    def parse(cls, yuan: str) -> Money:
        """``"88.00"`` -> ``Money(8800)``; anything else, including ``"88"``, is a ValueError."""
        match = _YUAN.fullmatch(yuan) if isinstance(yuan, str) else None
        if match is None:
            raise ValueError('an amount is yuan with exactly two decimals, e.g. "88.00"')
        return cls(int(match[1]) * 100 + int(match[2]))

    @property
    def yuan(self) -> str:
        return f"{self.fen // 100}.{self.fen % 100:02d}"

    def __str__(self) -> str:
        return self.yuan
