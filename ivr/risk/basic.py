"""The basic risk decision for an order (callback or one-line): every check that fails is a reason.

A decision lists every reason, not just the first, so an operator reading the payment's history
sees the whole picture. Deeper checks (identity services, velocity, blacklists) come later and
slot in as more functions in CHECKS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ivr.hostlink.bin_table import BinInfo
from ivr.orders import Order
from ivr.merchants import Merchant

__all__ = ["RiskDecision", "assess"]


@dataclass(frozen=True)
class RiskDecision:
    reasons: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.reasons

    def summary(self) -> str:
        return "; ".join(self.reasons) if self.reasons else "basic checks passed"


Check = Callable[[Merchant, Order, "BinInfo | None"], "str | None"]


def _merchant_active(merchant: Merchant, order: Order, card: BinInfo | None) -> str | None:
    return None if merchant.active else f"merchant {merchant.id} is not active"


def _merchant_category(merchant: Merchant, order: Order, card: BinInfo | None) -> str | None:
    return f"merchant category {merchant.mcc} is not admitted" if merchant.category_banned else None


def _amount_within_merchant_limit(merchant: Merchant, order: Order,
                                  card: BinInfo | None) -> str | None:
    if order.amount > merchant.max_amount:
        return f"amount exceeds the merchant's limit of {merchant.max_amount}"
    return None


def _card_supported(merchant: Merchant, order: Order, card: BinInfo | None) -> str | None:
    return "card issuer not supported (BIN not in the acquirer's table)" if card is None else None


CHECKS: list[Check] = [_merchant_active, _merchant_category, _amount_within_merchant_limit,
                       _card_supported]


def assess(merchant: Merchant, order: Order, card: BinInfo | None) -> RiskDecision:
    return RiskDecision([reason for check in CHECKS if (reason := check(merchant, order, card))])
