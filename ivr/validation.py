"""Checks on what callers key in: card numbers and mainland China mobile numbers.

Errors say what is wrong (``reason``) so the IVR can pick a prompt, and never repeat the digits.
"""

from __future__ import annotations

import re

__all__ = [
    "ValidationError",
    "InvalidCardNumber",
    "InvalidMobileNumber",
    "luhn_valid",
    "check_card_number",
    "check_mainland_mobile",
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
