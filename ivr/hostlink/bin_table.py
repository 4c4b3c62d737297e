"""The acquirer's BIN table: which card numbers are debit or credit, and who issued them.

The acquirer publishes it (``prepare_acquirer`` writes ``var/acquirer/bin_table.json`` from the
``bins`` section of the test card seed) and the IVR reads only that published file, so it can tell
a caller "Voicepay Test Credit" and ask for expiry and CVV2 instead of a PIN.

    >>> table = BinTable({"622188": BinInfo("debit", "Voicepay Test Bank", "语音支付测试银行")})
    >>> table.lookup("6221881000000011").card_type
    'debit'
    >>> table.lookup("6221881000000011").issuer("zh")
    '语音支付测试银行'

Lookups take the longest matching prefix, so a range can be carved out of a wider BIN. A card
number no entry matches raises :class:`UnknownBin`, whose message never quotes the number.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ivr.files import write_private


__all__ = ["BinInfo", "BinTable", "BinTableError", "UnknownBin", "CardType", "BIN_TABLE_FILE",
           "PublishedBins"]

log = logging.getLogger(__name__)

BIN_TABLE_FILE = "bin_table.json"
CardType = Literal["debit", "credit"]
_CARD_TYPES = ("debit", "credit")
_FORMAT = 1


class BinTableError(Exception):
    """The BIN table file is missing or malformed."""


class UnknownBin(LookupError):
    """No BIN in the table matches the card number. The message never shows the number."""


@dataclass(frozen=True)
class BinInfo:
    card_type: CardType
    issuer_en: str
    issuer_zh: str

    def __post_init__(self) -> None:
        if self.card_type not in _CARD_TYPES:
            raise BinTableError("card_type must be 'debit' or 'credit'")
        if not (isinstance(self.issuer_en, str) and self.issuer_en and isinstance(self.issuer_zh, str)
                and self.issuer_zh):
            raise BinTableError("issuer names must be non-empty strings")

    @property
    def is_credit(self) -> bool:
        return self.card_type == "credit"

    def issuer(self, language: str) -> str:
        """The issuer's name in ``language``: Chinese for "zh" and "yue", else English."""
        return self.issuer_zh if language in ("zh", "yue") else self.issuer_en


class BinTable:
    def __init__(self, bins: Mapping[str, BinInfo]) -> None:
        for prefix in bins:
            if not (isinstance(prefix, str) and 1 <= len(prefix) <= 11 and prefix.isascii() and prefix.isdigit()):
                raise BinTableError("a BIN must be 1 to 11 digits")
        self._bins = dict(bins)
        self._lengths = sorted({len(prefix) for prefix in self._bins}, reverse=True)

    def __repr__(self) -> str:
        return f"BinTable(bins={sorted(self._bins)})"

    def __len__(self) -> int:
        return len(self._bins)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BinTable) and self._bins == other._bins

    def lookup(self, pan: str) -> BinInfo:
        """The entry with the longest BIN that starts ``pan``; UnknownBin if there is none."""
        if not (isinstance(pan, str) and pan.isascii() and pan.isdigit()):
            raise UnknownBin("card number must be ASCII digits")
        for length in self._lengths:
            info = self._bins.get(pan[:length])
            if info is not None and length < len(pan):
                return info
        raise UnknownBin("no BIN in the table matches the card number")

    # --- files --------------------------------------------------------------------------------

    @classmethod
    def from_document(cls, document: Any) -> BinTable:
        """From ``{"bins": {prefix: {card_type, issuer_en, issuer_zh}}}``: the published file, or
        the test card seed, whose ``bins`` section has the same shape."""
        try:
            return cls({prefix: BinInfo(**entry) for prefix, entry in document["bins"].items()})
        except (KeyError, TypeError, AttributeError):
            raise BinTableError("BIN table is malformed") from None

    @classmethod
    def load(cls, path: Path) -> BinTable:
        try:
            document = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise BinTableError(f"BIN table {path} not found; the acquirer publishes it at start-up") from None
        except (OSError, ValueError):
            raise BinTableError(f"BIN table {path} is unreadable") from None
        try:
            return cls.from_document(document)
        except BinTableError as exc:
            raise BinTableError(f"{path}: {exc}") from None

    def to_document(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "note": "Published by the acquirer (simulators.acquirer.server.prepare_acquirer); read by the IVR.",
            "bins": {
                prefix: {"card_type": info.card_type, "issuer_en": info.issuer_en, "issuer_zh": info.issuer_zh}
                for prefix, info in sorted(self._bins.items())
            },
        }

    def write(self, path: Path) -> None:
        """Publish the table at ``path`` atomically (it holds no secrets: mode 0644)."""
        write_private(Path(path), json.dumps(self.to_document(), indent=2, ensure_ascii=False) + "\n",
                      mode=0o644)


class PublishedBins:
    """The table the acquirer publishes, read on first use: the acquirer may start after the IVR.

    ``card`` answers None for a card number no entry matches, or while no table is published.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._table: BinTable | None = None

    def card(self, pan: str) -> BinInfo | None:
        if self._table is None:
            try:
                self._table = BinTable.load(self._path)
            except BinTableError as exc:
                log.warning("BIN table unavailable: %s", exc)
                return None
        try:
            return self._table.lookup(pan)
        except UnknownBin:
            return None
