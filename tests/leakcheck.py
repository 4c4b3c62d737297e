"""Looks for test card data where it must never be: logs, Redis, AMI traffic, test output.

Secrets are the documented test cards' PANs, PINs and CVV2s. PINs and CVV2s are short, so they
count only as whole tokens (not inside a hex id or a timestamp); a PAN counts anywhere.

    python -m tests.leakcheck FILE...     # exit 1 and name the place if anything leaked
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from simulators.acquirer.testcards import load_test_cards

__all__ = ["Leak", "secrets_of_test_cards", "scan_text", "scan_files"]


@dataclass(frozen=True)
class Leak:
    where: str
    kind: str
    card: str  # the test card's name, never the secret itself

    def __str__(self) -> str:
        return f"{self.kind} of test card {self.card!r} found in {self.where}"


def secrets_of_test_cards() -> list[tuple[str, str, re.Pattern[str]]]:
    """(card name, kind, pattern) for every secret of every documented test card."""
    found = []
    for card in load_test_cards():
        found.append((card.name, "card number", re.compile(re.escape(card.pan))))
        # A secret inside a longer token (a hex id, a timestamp's milliseconds) is chance, not a
        # leak; one standing on its own (pin=119922, "398") is.
        if card.pin:
            found.append((card.name, "PIN", re.compile(rf"(?<!\w){re.escape(card.pin)}(?!\w)")))
        cvv = getattr(card, "cvv2", None)
        if cvv:
            found.append((card.name, "CVV2", re.compile(rf"(?<![\w.:]){re.escape(cvv)}(?![\w.:])")))
    return found


def scan_text(text: str, where: str) -> list[Leak]:
    return [Leak(where, kind, name) for name, kind, pattern in secrets_of_test_cards()
            if pattern.search(text)]


def scan_files(paths: list[Path]) -> list[Leak]:
    leaks: list[Leak] = []
    for path in paths:
        if path.is_file():
            leaks += scan_text(path.read_bytes().decode("utf-8", errors="replace"), str(path))
    return leaks


def main(argv: list[str]) -> int:
    leaks = scan_files([Path(p) for p in argv])
    for leak in leaks:
        print(f"LEAK: {leak}")
    print(f"leakcheck: {len(argv)} files scanned, {len(leaks)} leaks")
    return 1 if leaks else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
