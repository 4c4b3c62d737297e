"""The merchant registry: who may ask for callback payments, and the key each one signs with.

Merchants are defined in a shipped seed, ``ivr/merchants_seed.toml`` (development data: ids,
display names in English and Mandarin, category code, status, limit). Their API keys are not in
the seed: ``ensure_merchant_keys`` generates 32 random bytes per merchant at first use into
``settings.merchant_keys_file`` (``<keys_dir>/merchants.json``, mode 0600) and never replaces a
key it finds there, so a merchant's integration keeps working across restarts.

Neither a ``Merchant``'s ``repr`` nor any error here ever shows a key.
"""

from __future__ import annotations

import json
import re
import secrets
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from ivr.files import is_private, write_private
from ivr.money import Money
from ivr.config import Settings

__all__ = [
    "BANNED_MCCS",
    "SEED_FILE",
    "MerchantError",
    "UnknownMerchant",
    "MerchantStatus",
    "Merchant",
    "MerchantRegistry",
    "load_seed",
    "ensure_merchant_keys",
]

SEED_FILE = Path(__file__).with_name("merchants_seed.toml")

# Merchant category codes (ISO 18245) we never take payments for: card scheme rules and PBOC
# regulation forbid card-not-present gambling and betting in mainland China. A merchant in one of
# these categories may exist in the registry, but the order service's risk check declines its
# payments (``Merchant.category_banned``).
BANNED_MCCS: frozenset[str] = frozenset({
    "7995",  # betting: lottery tickets, casino gaming chips, off-track betting
    "7800",  # government-owned lotteries
    "7801",  # government-licensed online casinos
    "7802",  # government-licensed horse and dog racing
})

_KEYS_FORMAT = 1
_KEY_BYTES = 32
_MERCHANT_ID = re.compile(r"M[0-9]{6}")
_MCC = re.compile(r"[0-9]{4}")


class MerchantError(Exception):
    """The registry cannot be loaded. Messages name files and merchants, never keys."""


class UnknownMerchant(MerchantError, LookupError):
    def __init__(self, merchant_id: str) -> None:
        super().__init__("no such merchant")
        self.merchant_id = merchant_id


class MerchantStatus(str, Enum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


@dataclass(frozen=True, repr=False)
class Merchant:
    id: str
    name_en: str
    name_zh: str
    mcc: str
    status: MerchantStatus
    max_amount: Money
    key: bytes = field(default=b"", compare=False)

    def __repr__(self) -> str:
        return (f"Merchant(id={self.id!r}, name_en={self.name_en!r}, mcc={self.mcc!r}, "
                f"status={self.status.value!r}, key=<hidden>)")

    __str__ = __repr__

    @property
    def active(self) -> bool:
        return self.status is MerchantStatus.ACTIVE

    @property
    def category_banned(self) -> bool:
        return self.mcc in BANNED_MCCS

    def display_name(self, language: str) -> str:
        """The name said to a cardholder: the Chinese name in Mandarin and Cantonese."""
        return self.name_zh if language in ("zh", "yue") else self.name_en


def load_seed(path: Path = SEED_FILE) -> list[Merchant]:
    """The merchants defined in the seed file, without keys."""
    try:
        document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise MerchantError(f"merchant seed {path} is unreadable: {exc}") from None
    entries = document.get("merchant")
    if not isinstance(entries, list) or not entries:
        raise MerchantError(f"merchant seed {path} defines no [[merchant]]")
    merchants: list[Merchant] = []
    seen: set[str] = set()
    for entry in entries:
        merchant = _seed_entry(entry, path)
        if merchant.id in seen:
            raise MerchantError(f"merchant seed {path}: {merchant.id} is defined twice")
        seen.add(merchant.id)
        merchants.append(merchant)
    return merchants


def _seed_entry(entry: object, path: Path) -> Merchant:
    if not isinstance(entry, dict):
        raise MerchantError(f"merchant seed {path}: a [[merchant]] is not a table")
    merchant_id = entry.get("id")
    where = f"merchant seed {path}, merchant {merchant_id!r}"
    if not isinstance(merchant_id, str) or not _MERCHANT_ID.fullmatch(merchant_id):
        raise MerchantError(f"{where}: id must be M and six digits")
    for name in ("name_en", "name_zh"):
        if not isinstance(entry.get(name), str) or not entry[name].strip():
            raise MerchantError(f"{where}: {name} is missing")
    mcc = entry.get("mcc")
    if not isinstance(mcc, str) or not _MCC.fullmatch(mcc):
        raise MerchantError(f"{where}: mcc must be four digits")
    try:
        status = MerchantStatus(entry.get("status"))
    except ValueError:
        raise MerchantError(f"{where}: status must be active or suspended") from None
    try:
        max_amount = Money.parse(entry.get("max_amount"))  # type: ignore[arg-type]
    except ValueError:
        raise MerchantError(f"{where}: max_amount must be yuan with two decimals, e.g. \"500.00\"") from None
    unknown = set(entry) - {"id", "name_en", "name_zh", "mcc", "status", "max_amount"}
    if unknown:
        raise MerchantError(f"{where}: unknown keys {sorted(unknown)}")
    return Merchant(id=merchant_id, name_en=entry["name_en"], name_zh=entry["name_zh"], mcc=mcc,
                    status=status, max_amount=max_amount)


def ensure_merchant_keys(settings: Settings, *, seed: Path = SEED_FILE) -> Path:
    """Make sure every seeded merchant has an API key in ``settings.merchant_keys_file``.

    Keys already in the file are kept as they are; only merchants without one get a new key.
    Returns the file's path.
    """
    path = settings.merchant_keys_file
    merchants = load_seed(seed)
    existing = _read_keys(path) if path.exists() else {}
    missing = [m.id for m in merchants if m.id not in existing]
    if not missing:
        return path
    keys = dict(existing)
    keys.update({merchant_id: secrets.token_hex(_KEY_BYTES) for merchant_id in missing})
    document = {
        "format": _KEYS_FORMAT,
        "note": "Development merchant API keys (HMAC-SHA256, hex). Never shared, never logged.",
        "merchants": dict(sorted(keys.items())),
    }
    # First creation is exclusive: a file another process created meanwhile wins, and is read.
    if not write_private(path, json.dumps(document, indent=2) + "\n", exclusive=not existing):
        return ensure_merchant_keys(settings, seed=seed)
    return path


def _read_keys(path: Path) -> dict[str, str]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        private = is_private(path)
    except (OSError, ValueError):
        raise MerchantError(f"merchant key file {path} is unreadable") from None
    if not private:
        raise MerchantError(f"merchant key file {path} is readable by others; chmod 600 it")
    if not isinstance(document, dict) or document.get("format") != _KEYS_FORMAT:
        raise MerchantError(f"merchant key file {path} is not a merchant key file")
    keys = document.get("merchants")
    if not isinstance(keys, dict):
        raise MerchantError(f"merchant key file {path} is malformed")
    for merchant_id, key in keys.items():
        if not (isinstance(key, str) and re.fullmatch(r"[0-9a-f]{64}", key)):
            raise MerchantError(f"merchant key file {path}: the key of {merchant_id} is malformed")
    return keys


class MerchantRegistry:
    """The seeded merchants with their keys; read-only once loaded."""

    def __init__(self, merchants: list[Merchant]) -> None:
        self._merchants = {m.id: m for m in merchants}

    def __repr__(self) -> str:
        return f"MerchantRegistry({sorted(self._merchants)})"

    @classmethod
    def load(cls, settings: Settings, *, seed: Path = SEED_FILE) -> MerchantRegistry:
        path = ensure_merchant_keys(settings, seed=seed)
        keys = _read_keys(path)
        merchants = [
            Merchant(id=m.id, name_en=m.name_en, name_zh=m.name_zh, mcc=m.mcc, status=m.status,
                     max_amount=m.max_amount, key=bytes.fromhex(keys[m.id]))
            for m in load_seed(seed)
        ]
        return cls(merchants)

    def get(self, merchant_id: str) -> Merchant:
        """The merchant, or UnknownMerchant (never None)."""
        try:
            return self._merchants[merchant_id]
        except (KeyError, TypeError):
            raise UnknownMerchant(merchant_id) from None

    def __contains__(self, merchant_id: object) -> bool:
        return merchant_id in self._merchants

    def __iter__(self) -> Iterator[str]:
        return iter(self._merchants)

    def __len__(self) -> int:
        return len(self._merchants)
