"""Merchants: the ``Merchant`` type, the rules a merchant's fields follow, and the shipped seed.

The live registry, managed while the stack runs, is in Redis (``ivr/merchant_store.py``). It is
filled at first start from a shipped seed, ``ivr/merchants_seed.toml`` (development data: ids,
display names, category code, status, limits). The seed merchants' API keys are not in the seed:
``ensure_merchant_keys`` generates 32 random bytes per merchant at first use into
``settings.merchant_keys_file`` (``<keys_dir>/merchants.json``, mode 0600) and never replaces a
key it finds there, so a merchant's integration keeps working across restarts.

Neither a ``Merchant``'s ``repr`` nor any error here ever shows a key or secret.
"""

from __future__ import annotations

import json
import re
import secrets
import tomllib
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
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
    "InvalidMerchant",
    "CategoryBanned",
    "MerchantExists",
    "DailyLimitReached",
    "MerchantStatus",
    "Merchant",
    "MerchantRegistry",
    "banned_categories",
    "check_fields",
    "check_merchant_id",
    "check_name",
    "check_mcc",
    "check_limits",
    "merchant_from_fields",
    "load_seed",
    "NAME_FIELDS",
    "ensure_merchant_keys",
]

SEED_FILE = Path(__file__).with_name("merchants_seed.toml")

# Merchant category codes (ISO 18245) we never take payments for: card scheme rules and PBOC
# regulation forbid card-not-present gambling, betting and adult content in mainland China. The
# operator adds more with VOICEPAY_BANNED_MCCS (``banned_categories``). A merchant in one of these
# categories cannot be admitted; one already in the registry (a seed merchant, or a category banned
# later) has its payments declined by the order service's risk check (``Merchant.category_banned``).
BANNED_MCCS: frozenset[str] = frozenset({
    "7995",  # betting: lottery tickets, casino gaming chips, off-track betting
    "7800",  # government-owned lotteries
    "7801",  # government-licensed online casinos
    "7802",  # government-licensed horse and dog racing
    "5967",  # direct marketing, inbound teleservices: adult content by phone and online
    "7273",  # dating and escort services
})

_KEYS_FORMAT = 1
_KEY_BYTES = 32
_MERCHANT_ID = re.compile(r"M[0-9]{6}")
_MCC = re.compile(r"[0-9]{4}")
_NAME_MAX = 64
# Field names we are willing to repeat back in an "unknown field" error.
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
NAME_FIELDS = ("name_en", "name_zh", "name_yue")


class MerchantError(Exception):
    """A merchant or the registry is not as it must be. Messages name files, fields and
    merchants, never keys or secrets."""


class UnknownMerchant(MerchantError, LookupError):
    def __init__(self, merchant_id: str) -> None:
        super().__init__("no such merchant")
        self.merchant_id = merchant_id


class InvalidMerchant(MerchantError, ValueError):
    """One field of a merchant is not acceptable; ``details`` name it and say why."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.details = {"parameter": name, "reason": reason}


class CategoryBanned(MerchantError):
    def __init__(self, mcc: str) -> None:
        super().__init__(f"merchant category {mcc} is banned: it cannot be admitted or reactivated")
        self.details = {"mcc": mcc}


class MerchantExists(MerchantError):
    def __init__(self, merchant_id: str) -> None:
        super().__init__(f"merchant {merchant_id} already exists")
        self.details = {"merchant_id": merchant_id}


class DailyLimitReached(MerchantError):
    def __init__(self, daily_max: Money) -> None:
        super().__init__(f"this order would take the merchant past its daily total of {daily_max}")
        self.details = {"daily_max": daily_max.yuan}


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
    max_amount: Money  # the largest single payment
    key: bytes = field(default=b"", compare=False)  # the API key requests are signed with
    name_yue: str = ""  # Cantonese; empty: the Mandarin name is used
    daily_max: Money | None = None  # the most this merchant's orders may total in one day
    # Signs the webhooks sent to this merchant (a seed merchant's starts as its API key).
    webhook_secret: bytes = field(default=b"", compare=False)
    # After a key rotation the replaced key still verifies until previous_key_until (unix time).
    previous_key: bytes = field(default=b"", compare=False)
    previous_key_until: float = field(default=0.0, compare=False)
    # Categories banned when this merchant was read: the built-in ones plus the operator's own.
    banned_mccs: frozenset[str] = field(default=BANNED_MCCS, compare=False)

    def __repr__(self) -> str:
        return (f"Merchant(id={self.id!r}, name_en={self.name_en!r}, mcc={self.mcc!r}, "
                f"status={self.status.value!r}, key=<hidden>)")

    __str__ = __repr__

    @property
    def active(self) -> bool:
        return self.status is MerchantStatus.ACTIVE

    @property
    def category_banned(self) -> bool:
        return self.mcc in self.banned_mccs

    def display_name(self, language: str) -> str:
        if language == "yue":
            return self.name_yue or self.name_zh
        return self.name_zh if language == "zh" else self.name_en

    def signing_keys(self, now: float) -> tuple[bytes, ...]:
        """The keys a request signed at ``now`` may verify with: the current one, and the one it
        replaced while its grace period lasts."""
        if self.previous_key and now < self.previous_key_until:
            return (self.key, self.previous_key)
        return (self.key,)

    def to_public(self) -> dict[str, object]:
        """What the operator sees of a merchant: everything but its secrets."""
        return {
            "id": self.id, "name_en": self.name_en, "name_zh": self.name_zh,
            "name_yue": self.name_yue or None, "mcc": self.mcc, "status": self.status.value,
            "max_amount": self.max_amount.yuan,
            "daily_max": self.daily_max.yuan if self.daily_max is not None else None,
            "category_banned": self.category_banned,
        }


def banned_categories(extra: str = "") -> frozenset[str]:
    """The built-in banned categories plus ``extra``, the operator's comma-separated MCCs
    (``settings.banned_mccs``)."""
    codes = [code.strip() for code in extra.split(",") if code.strip()]
    for code in codes:
        if not _MCC.fullmatch(code):
            raise MerchantError(f"VOICEPAY_BANNED_MCCS: {code!r} is not a four-digit category code")
    return BANNED_MCCS | frozenset(codes)


# The rules of a merchant's fields, for the seed and for admission alike: each returns the value
# as stored, or raises InvalidMerchant naming the field.

def check_fields(given: Mapping[str, object], allowed: frozenset[str] | tuple[str, ...]) -> None:
    """No field but ``allowed``, and at least one: a misspelt limit must not pass silently."""
    if not given:
        raise InvalidMerchant("body", f"give at least one of {', '.join(sorted(allowed))}")
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        shown = unknown[0] if _FIELD_NAME.fullmatch(unknown[0]) else "(field name)"
        raise InvalidMerchant(shown, "unknown field")


def check_merchant_id(value: object) -> str:
    if not isinstance(value, str) or not _MERCHANT_ID.fullmatch(value):
        raise InvalidMerchant("id", "must be M and six digits, such as M100001")
    return value


def check_name(name: str, value: object, *, optional: bool = False) -> str:
    """A display name, read out to cardholders and shown to people."""
    if optional and (value is None or value == ""):
        return ""
    if not isinstance(value, str) or not value.strip():
        raise InvalidMerchant(name, "must be a non-empty string")
    if len(value) > _NAME_MAX:
        raise InvalidMerchant(name, f"must be at most {_NAME_MAX} characters")
    if any(unicodedata.category(c) in ("Cc", "Cf") for c in value):
        raise InvalidMerchant(name, "must not contain control characters")
    return value.strip()


def check_mcc(value: object) -> str:
    if not isinstance(value, str) or not _MCC.fullmatch(value):
        raise InvalidMerchant("mcc", "must be a four-digit ISO 18245 category code, such as \"4814\"")
    return value


def _amount(name: str, value: object) -> Money:
    try:
        amount = Money.parse(value)  # type: ignore[arg-type]
    except ValueError:
        raise InvalidMerchant(name, 'must be yuan with exactly two decimals, such as "500.00"') from None
    if amount.fen < 1:
        raise InvalidMerchant(name, "must be at least 0.01")
    return amount


def check_limits(max_amount: object, daily_max: object, *,
                 ceiling: Money | None = None) -> tuple[Money, Money | None]:
    """Per-payment maximum (at most ``ceiling``, the platform's own) and the optional daily
    total, which cannot be below it."""
    per_payment = _amount("max_amount", max_amount)
    if ceiling is not None and per_payment > ceiling:
        raise InvalidMerchant("max_amount", f"must be at most {ceiling} (the platform's limit)")
    if daily_max is None:
        return per_payment, None
    per_day = _amount("daily_max", daily_max)
    if per_day < per_payment:
        raise InvalidMerchant("daily_max", "must be at least max_amount")
    return per_payment, per_day


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
    where = f"merchant seed {path}, merchant {entry.get('id')!r}"
    unknown = set(entry) - {"id", *NAME_FIELDS, "mcc", "status", "max_amount", "daily_max"}
    if unknown:
        raise MerchantError(f"{where}: unknown keys {sorted(unknown)}")
    try:
        status = MerchantStatus(entry.get("status"))
    except ValueError:
        raise MerchantError(f"{where}: status must be active or suspended") from None
    try:
        return merchant_from_fields(entry, status=status)
    except InvalidMerchant as exc:
        raise MerchantError(f"{where}: {exc}") from None


def merchant_from_fields(entry: Mapping[str, object], *, status: MerchantStatus,
                         ceiling: Money | None = None) -> Merchant:
    """A merchant (without secrets) from its fields, each checked; InvalidMerchant otherwise."""
    max_amount, daily_max = check_limits(entry.get("max_amount"), entry.get("daily_max"),
                                         ceiling=ceiling)
    return Merchant(id=check_merchant_id(entry.get("id")),
                    name_en=check_name("name_en", entry.get("name_en")),
                    name_zh=check_name("name_zh", entry.get("name_zh")),
                    name_yue=check_name("name_yue", entry.get("name_yue"), optional=True),
                    mcc=check_mcc(entry.get("mcc")), status=status,
                    max_amount=max_amount, daily_max=daily_max)


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
    """The seed merchants with their keys from the keys file, read-only: what the live registry
    (``ivr/merchant_store.py``) starts from, and what development tools sign with."""

    def __init__(self, merchants: list[Merchant]) -> None:
        self._merchants = {m.id: m for m in merchants}

    def __repr__(self) -> str:
        return f"MerchantRegistry({sorted(self._merchants)})"

    @classmethod
    def load(cls, settings: Settings, *, seed: Path = SEED_FILE) -> MerchantRegistry:
        path = ensure_merchant_keys(settings, seed=seed)
        keys = _read_keys(path)
        # Until a webhook secret of its own is rotated in, a seed merchant's webhooks are signed
        # with its API key, as they always were.
        merchants = [replace(m, key=bytes.fromhex(keys[m.id]), webhook_secret=bytes.fromhex(keys[m.id]))
                     for m in load_seed(seed)]
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
