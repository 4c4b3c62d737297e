"""Checks on what callers key in: card numbers, mainland China mobile and resident ID numbers.

Errors say what is wrong (``reason``) so the IVR can pick a prompt, and never repeat the digits.
"""

from __future__ import annotations

import re
from datetime import date

__all__ = [
    "ValidationError",
    "InvalidCardNumber",
    "InvalidMobileNumber",
    "InvalidIdNumber",
    "luhn_valid",
    "check_card_number",
    "check_mainland_mobile",
    "check_id_number",
    "id_number_check_char",
    "ID_REGION_PREFIXES",
    "InvalidExpiry",
    "check_expiry_mmyy",
]

# [0-9], not \d: \d also matches Arabic-Indic and other Unicode digits.
_MOBILE = re.compile(r"1[3-9][0-9]{9}")


class ValidationError(ValueError):
    """Caller input rejected. ``reason`` is a short machine-readable word."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class InvalidCardNumber(ValidationError):
    pass


class InvalidMobileNumber(ValidationError):
    pass


class InvalidIdNumber(ValidationError):
    pass


def _ascii_digits(value: object) -> bool:
    return isinstance(value, str) and value.isascii() and value.isdigit()


def luhn_valid(digits: str) -> bool:
    """True if ``digits`` is a non-empty ASCII digit string with a valid Luhn check digit."""
    if not _ascii_digits(digits):
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 0x30
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def check_card_number(digits: str) -> str:
    """``digits`` if it can be a card number (13-19 digits, Luhn), else InvalidCardNumber."""
    if not _ascii_digits(digits):
        raise InvalidCardNumber("card number must contain digits only", reason="not_digits")
    if not 13 <= len(digits) <= 19:
        raise InvalidCardNumber("card number must be 13 to 19 digits long", reason="length")
    if not luhn_valid(digits):
        raise InvalidCardNumber("card number check digit is wrong", reason="checksum")
    return digits


def check_mainland_mobile(digits: str) -> str:
    """``digits`` if it is an 11-digit mainland China mobile number (1[3-9]...), else an error."""
    if not _ascii_digits(digits):
        raise InvalidMobileNumber("mobile number must contain digits only", reason="not_digits")
    if len(digits) != 11:
        raise InvalidMobileNumber("mobile number must be 11 digits long", reason="length")
    if not _MOBILE.fullmatch(digits):
        raise InvalidMobileNumber("mobile number must start with 13 to 19", reason="prefix")
    return digits


# GB 11643-1999: weight of position i (0-based, left to right) is 2**(17-i) mod 11 (ISO 7064 MOD 11-2).
_ID_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
_ID_CHECK_CHARS = "0123456789X"
# The earliest birth year accepted. Resident ID numbers were first issued in 1984 (18 digits from
# 1999); a holder born before 1900 would be over 125 today, so such a date means a mistyped number.
_ID_MIN_BIRTH_YEAR = 1900

# The province-level region codes (the first two digits of the six-digit GB/T 2260 region code)
# that resident ID numbers are issued under. A prefix table is enough to catch a mistyped or made-up
# number; the full county-level table changes every year and is the identity provider's business.
# 71: Taiwan; 81, 82: the Hong Kong and Macao residence permits; 83: the Taiwan residence permit.
ID_REGION_PREFIXES: dict[str, str] = {
    "11": "Beijing", "12": "Tianjin", "13": "Hebei", "14": "Shanxi", "15": "Inner Mongolia",
    "21": "Liaoning", "22": "Jilin", "23": "Heilongjiang",
    "31": "Shanghai", "32": "Jiangsu", "33": "Zhejiang", "34": "Anhui", "35": "Fujian",
    "36": "Jiangxi", "37": "Shandong",
    "41": "Henan", "42": "Hubei", "43": "Hunan", "44": "Guangdong", "45": "Guangxi", "46": "Hainan",
    "50": "Chongqing", "51": "Sichuan", "52": "Guizhou", "53": "Yunnan", "54": "Tibet",
    "61": "Shaanxi", "62": "Gansu", "63": "Qinghai", "64": "Ningxia", "65": "Xinjiang",
    "71": "Taiwan", "81": "Hong Kong", "82": "Macao", "83": "Taiwan (residence permit)",
}


def id_number_check_char(first17: str) -> str:
    """The GB 11643-1999 check character (``0``-``9`` or ``X``) for 17 ASCII digits.

    >>> id_number_check_char("11010519491231002")
    'X'
    """
    if not (_ascii_digits(first17) and len(first17) == 17):
        raise InvalidIdNumber("ID number must start with 17 digits", reason="not_digits")
    total = sum((ord(c) - 0x30) * w for c, w in zip(first17, _ID_WEIGHTS))
    return _ID_CHECK_CHARS[(12 - total % 11) % 11]


def check_id_number(value: str, *, today: date | None = None) -> str:
    """``value`` (with a lower-case ``x`` made ``X``) if it is a valid China resident ID number.

    GB 11643-1999: 18 characters, 6 digits of region, 8 of birth date (YYYYMMDD), 3 of sequence,
    then the ISO 7064 MOD 11-2 check character. Checked here: the check character, a real birth
    date from 1900 to ``today``, and a known province-level region (``ID_REGION_PREFIXES``).
    Errors say which (``reason``: length, not_digits, region, birth_date, checksum) and never
    repeat the number.

    >>> check_id_number("11010519491231002x")
    '11010519491231002X'
    """
    if not isinstance(value, str) or not value.isascii():
        raise InvalidIdNumber("ID number must be 17 digits and a check character", reason="not_digits")
    if len(value) != 18:
        raise InvalidIdNumber("ID number must be 18 characters long", reason="length")
    value = value.upper()
    if not _ascii_digits(value[:17]) or value[17] not in _ID_CHECK_CHARS:
        raise InvalidIdNumber("ID number must be 17 digits and a check character (0-9 or X)",
                              reason="not_digits")
    if value[:2] not in ID_REGION_PREFIXES:
        raise InvalidIdNumber("ID number holds no known region code", reason="region")
    try:
        born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        raise InvalidIdNumber("ID number holds no valid birth date", reason="birth_date") from None
    if not _ID_MIN_BIRTH_YEAR <= born.year or born > (today or date.today()):
        raise InvalidIdNumber("ID number holds no plausible birth date", reason="birth_date")
    if id_number_check_char(value[:17]) != value[17]:
        raise InvalidIdNumber("ID number check character is wrong", reason="checksum")
    return value


class InvalidExpiry(ValidationError):
    """A keyed card expiry date that is not MMYY with a month from 01 to 12."""


def check_expiry_mmyy(digits: str) -> str:
    """A card expiry as keyed on the phone, MMYY. Whether it has passed is the issuer's call (54)."""
    if not (_ascii_digits(digits) and len(digits) == 4):
        raise InvalidExpiry("expiry must be four digits, MMYY", reason="length")
    if not 1 <= int(digits[:2]) <= 12:
        raise InvalidExpiry("expiry month must be 01 to 12", reason="month")
    return digits
