"""The facts a rule can name, with their types: the whole vocabulary of the rules file.

A rules file is checked against ``FACT_TYPES`` when it is loaded (an unknown name or a comparison of
the wrong types is refused then, not at a payment). The engine builds one ``facts`` dict per
payment with exactly these names; the dict holds no card, ID or mobile number (list hits and
velocity are already reduced to names and numbers), so it is stored as it is in the decision audit
and replayed by the backtest.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import rule_engine

from ivr.risk.decision import BindingAnswer, IdentityAnswer, RiskRequest
from ivr.risk.velocity import COUNTERS

__all__ = ["FACT_TYPES", "MODES", "LIST_NAMES", "build_facts", "facts_for_rules"]

MODES: tuple[str, ...] = ("callback", "oneline", "selfservice")
LIST_NAMES: tuple[str, ...] = ("block", "allow", "review")

_T = rule_engine.DataType
FACT_TYPES: dict[str, Any] = {
    "amount": _T.FLOAT,                    # yuan
    "mode": _T.STRING,                     # callback | oneline | selfservice
    "merchant_id": _T.STRING,
    "merchant_active": _T.BOOLEAN,
    "merchant_category": _T.STRING,        # ISO 18245 MCC
    "merchant_category_banned": _T.BOOLEAN,
    "merchant_max_amount": _T.FLOAT,       # yuan
    "card_known": _T.BOOLEAN,              # the BIN is in the acquirer's table
    "card_type": _T.STRING,                # debit | credit | unknown
    "pin_verified": _T.BOOLEAN,            # a debit card: the payment is authorized by PIN
    "identity": _T.STRING,                 # match | mismatch | not_found | unavailable | skipped
    "binding": _T.STRING,                  # bound | not_bound | unavailable | skipped
    "lists": _T.SET(_T.STRING),            # hits as "<list>:<kind>", e.g. "block:card" (lists.py)
    **{c.name: _T.FLOAT for c in COUNTERS},
}
SKIPPED = "skipped"  # the provider was not asked: the payment has nothing to ask about


def build_facts(request: RiskRequest, *, identity: IdentityAnswer | str,
                binding: BindingAnswer | str, list_hits: set[str],
                velocity: dict[str, float]) -> dict[str, Any]:
    """JSON-able facts of one payment (``lists`` a sorted list; see ``facts_for_rules``)."""
    merchant, order, card = request.merchant, request.order, request.card
    return {
        "amount": order.amount.fen / 100,
        "mode": request.mode,
        "merchant_id": merchant.id,
        "merchant_active": merchant.active,
        "merchant_category": merchant.mcc,
        "merchant_category_banned": merchant.category_banned,
        "merchant_max_amount": merchant.max_amount.fen / 100,
        "card_known": card is not None,
        "card_type": card.card_type if card is not None else "unknown",
        "pin_verified": card is not None and not card.is_credit,
        "identity": str(identity),
        "binding": str(binding),
        "lists": sorted(list_hits),
        **velocity,
    }


def facts_for_rules(facts: dict[str, Any]) -> dict[str, Any]:
    """What rule-engine evaluates: numbers as exact Decimals (0.1 + 0.2 is 0.3 in a rule), the list
    hits as a set."""
    out = {name: (Decimal(str(v)) if isinstance(v, float) else v) for name, v in facts.items()}
    out["lists"] = set(facts["lists"])
    return out

