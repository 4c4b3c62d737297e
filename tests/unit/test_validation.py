from __future__ import annotations

import pytest

from ivr.validation import (
    InvalidCardNumber,
    InvalidMobileNumber,
    ValidationError,
    check_card_number,
    check_mainland_mobile,
    luhn_valid,
)


@pytest.mark.parametrize(
    ("digits", "valid"),
    [
        ("79927398713", True),  # the classic Luhn example (Wikipedia, "Luhn algorithm")
        ("79927398710", False),
        ("4111111111111111", True),  # widely published Visa test number
        ("4111111111111112", False),
        ("6221881000000011", True),
        ("6221882000000000017", True),
        ("0", True),
        ("", False),
        ("12a4", False),
        ("٤١١١", False),  # Arabic-Indic digits are not card digits
    ],
)
def test_luhn(digits: str, valid: bool) -> None:
    assert luhn_valid(digits) is valid


@pytest.mark.parametrize("pan", ["6221881000000011", "6221882000000000017", "4111111111111111", "4222222222222"])
def test_card_number_ok(pan: str) -> None:
    assert check_card_number(pan) == pan


@pytest.mark.parametrize(
    ("pan", "reason", "message"),
    [
        ("6221881000000012", "checksum", "check digit"),
        ("622188100000", "length", "13 to 19"),
        ("62218810000000000000", "length", "13 to 19"),
        ("6221 8810 0000 0011", "not_digits", "digits only"),
        ("", "not_digits", "digits only"),
    ],
)
def test_card_number_errors(pan: str, reason: str, message: str) -> None:
    with pytest.raises(InvalidCardNumber, match=message) as excinfo:
        check_card_number(pan)
    assert excinfo.value.reason == reason
    assert isinstance(excinfo.value, ValidationError) and isinstance(excinfo.value, ValueError)
    assert not pan or pan not in str(excinfo.value)


@pytest.mark.parametrize("mobile", ["13800138000", "15912345678", "19912345678", "16612345678"])
def test_mobile_ok(mobile: str) -> None:
    assert check_mainland_mobile(mobile) == mobile


@pytest.mark.parametrize(
    ("mobile", "reason", "message"),
    [
        ("12800138000", "prefix", "13 to 19"),
        ("23800138000", "prefix", "13 to 19"),
        ("1380013800", "length", "11 digits"),
        ("138001380001", "length", "11 digits"),
        ("138-0013-800", "not_digits", "digits only"),
        ("１３８００１３８０００", "not_digits", "digits only"),  # full-width digits
    ],
)
def test_mobile_errors(mobile: str, reason: str, message: str) -> None:
    with pytest.raises(InvalidMobileNumber, match=message) as excinfo:
        check_mainland_mobile(mobile)
    assert excinfo.value.reason == reason
