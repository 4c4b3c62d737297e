"""The simulated issuer's card book: card data and IBM 3624 PIN offsets, never clear PINs.

IBM 3624 parameters, fixed for every card:

* decimalization table ``0123456789012345``, the usual identity mapping of hex digits A-F to 0-5;
* validation data = the card number's digits: all 16 of a 16-digit PAN, the rightmost 16 of a
  longer one (the method takes one 16-hex-digit block), padded with ``F`` if shorter. Using the PAN
  itself, rather than a part of it, means no two cards share validation data.

An offset is only meaningful under the PVK it was computed with, so the book records that key's
check value and the simulator refuses a book issued under another key.

Each card also carries its type (``debit`` or ``credit``) and issuer, from the seed's BIN table.
The book holds nothing about CVV2s: the simulator recomputes a credit card's CVV2 under the CVK
from the PAN and expiry date, as an issuer does.
"""

from __future__ import annotations

import hmac
import json
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.utils import CryptographyDeprecationWarning
from psec import pin as _psec_pin

from ivr.files import write_private
from ivr.hostlink.bin_table import BinTable, BinTableError, UnknownBin
from simulators.acquirer.testcards import load_test_cards
from ivr.crypto.keys import kcv
from ivr.crypto.pan_vault import mask_pan

__all__ = [
    "DECIMALIZATION_TABLE",
    "CardBookError",
    "IssuedCard",
    "CardBook",
    "issue_cards",
    "verify_pin",
]

DECIMALIZATION_TABLE = "0123456789012345"
# 2: cards carry card_type and issuer.
_FORMAT = 2


class CardBookError(Exception):
    """The card book is missing, malformed, or was issued under another PVK."""


@dataclass(frozen=True, repr=False)
class IssuedCard:
    name: str
    pan: str
    expiry: str
    pin_offset: str
    balance: int
    limit: int
    status: str
    behaviour: str
    card_type: str
    issuer: str

    def __repr__(self) -> str:
        return (
            f"IssuedCard(name={self.name!r}, pan={mask_pan(self.pan)!r}, card_type={self.card_type!r}, "
            f"status={self.status!r})"
        )

    @property
    def is_credit(self) -> bool:
        return self.card_type == "credit"


@dataclass(frozen=True)
class CardBook:
    pvk_kcv: str
    cards: dict[str, IssuedCard]

    def __repr__(self) -> str:
        return f"CardBook(pvk_kcv={self.pvk_kcv!r}, cards={len(self.cards)})"

    def get(self, pan: str) -> IssuedCard | None:
        return self.cards.get(pan)

    def __iter__(self) -> Iterator[IssuedCard]:
        return iter(self.cards.values())

    def __len__(self) -> int:
        return len(self.cards)

    @classmethod
    def load(cls, path: Path) -> CardBook:
        try:
            document = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CardBookError(f"card book {path} not found") from None
        except (OSError, ValueError):
            raise CardBookError(f"card book {path} is unreadable") from None
        try:
            if document["format"] != _FORMAT or document["decimalization_table"] != DECIMALIZATION_TABLE:
                raise CardBookError(f"card book {path} uses another format")
            cards = [IssuedCard(**entry) for entry in document["cards"]]
            return cls(pvk_kcv=document["pvk_kcv"], cards={card.pan: card for card in cards})
        except (KeyError, TypeError):
            raise CardBookError(f"card book {path} is malformed") from None

    def check_pvk(self, pvk: bytes) -> None:
        if kcv(pvk, "T") != self.pvk_kcv:
            raise CardBookError("card book was issued under another PVK; re-issue it")


def issue_cards(seed_path: Path, pvk: bytes, out_path: Path) -> CardBook:
    """Issue every seed card: compute its PIN offset under ``pvk`` and write the book (0600).

    Card type and issuer come from the seed's ``bins`` section; a card outside it is refused.
    """
    try:
        bins = BinTable.load(seed_path)
    except BinTableError:
        raise CardBookError(f"seed {seed_path} has no valid BIN table") from None
    seeds = load_test_cards(seed_path)
    try:
        infos = [bins.lookup(seed.pan) for seed in seeds]
    except UnknownBin:
        raise CardBookError(f"seed {seed_path} has a card outside its BIN table") from None
    cards = [
        IssuedCard(
            name=seed.name,
            pan=seed.pan,
            expiry=seed.expiry,
            pin_offset=_offset(pvk, seed.pin, seed.pan),
            balance=seed.balance,
            limit=seed.limit,
            status=seed.status,
            behaviour=seed.behaviour,
            card_type=info.card_type,
            issuer=info.issuer_en,
        )
        for seed, info in zip(seeds, infos, strict=True)
    ]
    book = CardBook(pvk_kcv=kcv(pvk, "T"), cards={card.pan: card for card in cards})
    document = {
        "format": _FORMAT,
        "note": "Issued by simulators.acquirer.cardbook: PIN offsets only, no clear PINs.",
        "decimalization_table": DECIMALIZATION_TABLE,
        "validation_data": "PAN, rightmost 16 digits, F-padded",
        "pvk_kcv": book.pvk_kcv,
        "cards": [asdict(card) for card in cards],
    }
    write_private(Path(out_path), json.dumps(document, indent=2) + "\n")
    return book


def verify_pin(card: IssuedCard, pin: str, pvk: bytes) -> bool:
    """True if ``pin`` is the card's PIN: natural PIN under the PVK plus the offset."""
    if not (isinstance(pin, str) and pin.isascii() and pin.isdigit() and len(pin) == len(card.pin_offset)):
        return False
    expected = _ibm3624(_psec_pin.generate_ibm3624_pin, pvk, offset=card.pin_offset, pan=card.pan)
    return hmac.compare_digest(expected.encode("ascii"), pin.encode("ascii"))


def _offset(pvk: bytes, pin: str, pan: str) -> str:
    return _ibm3624(_psec_pin.generate_ibm3624_offset, pvk, pin=pin, pan=pan)


def _ibm3624(function: Callable[..., str], pvk: bytes, *, pan: str, **kwargs: str) -> str:
    length = min(len(pan), 16)
    # psec 1.3 still reaches TripleDES at its deprecated import path and warns on every call.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        return function(
            pvk,
            DECIMALIZATION_TABLE,
            pan=pan,
            pan_verify_offset=len(pan) - length,
            pan_verify_length=length,
            pan_pad="F",
            **kwargs,
        )
