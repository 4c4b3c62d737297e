"""The documented test cards (``test_cards.json``), clear PINs and CVV2s included, for tests and demos.

Only the card issuer (:func:`simulators.acquirer.cardbook.issue_cards`) and tests read this; the running
simulator works from the issued card book, which holds PIN offsets instead of PINs and nothing at
all about CVV2s (it recomputes them under the CVK).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ivr.crypto.pan_vault import mask_pan

__all__ = ["SEED_PATH", "TestCard", "TestCardError", "load_test_cards", "find_test_card"]

SEED_PATH = Path(__file__).with_name("test_cards.json")


class TestCardError(Exception):
    """The seed file is malformed or a card is not in it."""

    __test__ = False


@dataclass(frozen=True, repr=False)
class TestCard:
    # Not a pytest test class, despite the name.
    __test__ = False

    name: str
    pan: str
    expiry: str
    pin: str
    balance: int
    limit: int
    status: str
    behaviour: str
    description: str = ""
    # Credit cards only: the CVV2 "printed on the back", as the CVK computes it. Documentation.
    cvv2: str | None = None

    def __repr__(self) -> str:
        return f"TestCard(name={self.name!r}, pan={mask_pan(self.pan)!r}, behaviour={self.behaviour!r})"


def load_test_cards(path: Path = SEED_PATH) -> list[TestCard]:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        return [TestCard(**entry) for entry in document["cards"]]
    except (OSError, ValueError, KeyError, TypeError):
        raise TestCardError(f"test card seed {path} is unreadable or malformed") from None


def find_test_card(name: str, path: Path = SEED_PATH) -> TestCard:
    """The test card called ``name`` (e.g. ``"approve"``, ``"issuer_timeout"``)."""
    for card in load_test_cards(path):
        if card.name == name:
            return card
    raise TestCardError(f"no test card named {name!r}")
