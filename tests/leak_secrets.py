"""The secrets the leak scan looks for: test cards, ID numbers, clear PIN fields, PIN blocks.

Each secret is named by its owner (a test card's name, an identity's label, "PIN block 3"), so a
report can say what leaked without repeating it. Sources:

- the documented test cards (PAN, PIN, CVV2, expiry) and the card the identity registry adds;
- the identity registry's ID numbers, and every valid ID number a test module spells out;
- the clear PIN fields of ISO 9564 formats 0, 1, 3 and 4 for each test PIN (what an encoder holds
  before it enciphers: a debug dump of one would name the PIN);
- the completed PIN blocks the suite sent, read from field 52 of the ISO 8583 requests in a capture
  of the acquirer link with the product's own codec (they live only in memory here, never in a file).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ivr.config import REPO_ROOT
from ivr.hostlink.messages import Iso8583Error, PurchaseRequest, decode_message
from ivr.validation import ValidationError, check_id_number
from simulators.acquirer.testcards import load_test_cards

__all__ = ["Secret", "CARD_NUMBER", "PIN", "CVV2", "EXPIRY", "ID_NUMBER", "PIN_BLOCK",
           "card_secrets", "id_number_secrets", "pin_blocks_in_stream", "all_secrets"]

CARD_NUMBER, PIN, CVV2, EXPIRY = "card number", "PIN", "CVV2", "expiry date"
ID_NUMBER, PIN_BLOCK = "ID number", "PIN block"

REGISTRY = REPO_ROOT / "simulators" / "identity" / "test_registry.json"
_ID_LITERAL = re.compile(r"(?<![0-9A-Za-z])[1-9]\d{16}[\dXx](?![0-9A-Za-z])")


@dataclass(frozen=True, repr=False)
class Secret:
    kind: str
    owner: str  # what a report names: a test card, an identity, a PIN block's number
    value: str  # digits; ID numbers upper-case; PIN blocks upper-case hex

    def __repr__(self) -> str:
        return f"Secret({self.kind}, {self.owner})"


def card_secrets() -> list[Secret]:
    """PAN, PIN, CVV2 and expiry of every documented test card, and the registry's extra card."""
    found: list[Secret] = []
    cards = load_test_cards()
    for card in cards:
        found += [Secret(CARD_NUMBER, card.name, card.pan), Secret(PIN, card.name, card.pin),
                  Secret(EXPIRY, card.name, card.expiry)]  # YYMM, as field 14 and the book keep it
        if card.cvv2:
            found.append(Secret(CVV2, card.name, card.cvv2))
    known = {card.pan for card in cards}
    registry = json.loads(REGISTRY.read_text(encoding="utf-8"))
    extra = sorted({pan for binding in registry["bindings"] for pan in binding["cards"]} - known)
    found += [Secret(CARD_NUMBER, f"registry card {n}", pan) for n, pan in enumerate(extra, 1)]
    return found


def id_number_secrets(test_sources: Iterable[Path] | None = None) -> list[Secret]:
    """The registry's ID numbers, then every other valid one spelled out in the tests' sources."""
    registry = json.loads(REGISTRY.read_text(encoding="utf-8"))
    found = {e["id_number"].upper(): e["label"] for e in registry["identities"]}
    sources = test_sources if test_sources is not None else (REPO_ROOT / "tests").rglob("*.py")
    for source in sorted(sources):
        for literal in _ID_LITERAL.findall(source.read_text(encoding="utf-8")):
            try:
                number = check_id_number(literal)
            except ValidationError:
                continue  # a deliberately wrong sample is nobody's ID number
            found.setdefault(number, f"ID in {source.name}")
    return [Secret(ID_NUMBER, owner, number) for number, owner in found.items()]


def pin_blocks_in_stream(stream: bytes) -> list[bytes]:
    """Field 52 of every purchase request in one direction of the acquirer link (2-byte length
    frames, as ivr/hostlink/framing.py writes them). A stream cut mid-frame keeps what is whole."""
    blocks: list[bytes] = []
    at = 0
    while at + 2 <= len(stream):
        length = int.from_bytes(stream[at:at + 2], "big")
        frame = stream[at + 2:at + 2 + length]
        at += 2 + length
        if length == 0 or len(frame) < length:
            break
        try:
            message = decode_message(frame)
        except Iso8583Error:
            continue
        if isinstance(message, PurchaseRequest) and message.pin_block is not None:
            blocks.append(bytes(message.pin_block))
    return blocks


def all_secrets(pin_blocks: Iterable[bytes] = ()) -> list[Secret]:
    """Everything the scan looks for; ``pin_blocks`` are the ones the run produced."""
    blocks = sorted(set(pin_blocks))
    return [*card_secrets(), *id_number_secrets(),
            *(Secret(PIN_BLOCK, f"PIN block {n}", block.hex().upper())
              for n, block in enumerate(blocks, 1))]
