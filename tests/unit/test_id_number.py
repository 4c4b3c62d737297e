"""China resident ID numbers (GB 11643-1999): check character (ISO 7064 MOD 11-2), birth date and
region code."""

from __future__ import annotations

from datetime import date

import pytest

from ivr.validation import (ID_REGION_PREFIXES, InvalidIdNumber, ValidationError, check_id_number,
                            id_number_check_char)

# Check characters worked by hand: sum of digit * (2**(17-i) mod 11), then (12 - sum % 11) % 11,
# with 10 written X. Weights: 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2.
VALID = [
    "11010519491231002X",  # the standard's worked example (Beijing, born 1949-12-31): check X
    "440524190001010017",  # Guangdong, born 1900-01-01 (the earliest date accepted): check 7
    "650101198511110025",  # Xinjiang
    "810000199505050030",  # Hong Kong residence permit
    "110101199003074477",  # Beijing Dongcheng, 1990-03-07
    "310101200002290015",  # 29 February of a leap year (2000)
    "510105198001010010",  # check character 0
]


def _with_check(first17: str) -> str:
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    total = sum(int(d) * w for d, w in zip(first17, weights))
    return first17 + "0123456789X"[(12 - total % 11) % 11]


def test_weights_are_the_standards():
    # Independent of the module: the hand-written table agrees with the examples above.
    for number in VALID:
        assert _with_check(number[:17]) == number


@pytest.mark.parametrize("number", VALID)
def test_valid_numbers_pass(number: str) -> None:
    assert check_id_number(number) == number
    assert id_number_check_char(number[:17]) == number[17]


def test_lower_case_x_is_accepted_and_made_upper_case():
    assert check_id_number("11010519491231002x") == "11010519491231002X"


def test_check_character_x_appears():
    assert id_number_check_char("11010519491231002") == "X"
    assert check_id_number("11010519491231002X")


@pytest.mark.parametrize("number", [
    "110105194912310021",  # X expected
    "440524190001010018",
    "11010119900307447X",
    "110101199003074478",
])
def test_wrong_check_character(number: str) -> None:
    with pytest.raises(InvalidIdNumber, match="check character") as info:
        check_id_number(number)
    assert info.value.reason == "checksum"
    assert number not in str(info.value)


@pytest.mark.parametrize("first17", [
    "11010119900230123",  # 30 February
    "11010119901301123",  # month 13
    "11010119900000123",  # month and day 00
    "11010120010229123",  # 29 February of a common year
    "11010118991231123",  # before 1900
    "11010199991231123",  # in the future
])
def test_bad_birth_date(first17: str) -> None:
    number = _with_check(first17)  # a right check character: only the date is wrong
    with pytest.raises(InvalidIdNumber, match="birth date") as info:
        check_id_number(number)
    assert info.value.reason == "birth_date"


def test_birth_today_is_accepted_tomorrow_is_not():
    number = _with_check("11010120240615123")
    assert check_id_number(number, today=date(2024, 6, 15)) == number
    with pytest.raises(InvalidIdNumber):
        check_id_number(number, today=date(2024, 6, 14))


@pytest.mark.parametrize("number", ["", "11010519491231002", "11010519491231002X0",
                                    "110105491231002", "11010519491231002XX"])
def test_wrong_length(number: str) -> None:
    with pytest.raises(InvalidIdNumber, match="18 characters") as info:
        check_id_number(number)
    assert info.value.reason == "length"


@pytest.mark.parametrize("number", [
    "1101051949123100XX",  # X only as the check character
    "11010519491231002Y",
    "A1010519491231002X",
    "110105 9491231002X",
    "١١٠١٠٥١٩٤٩١٢٣١٠٠٢X",  # Arabic-Indic digits
])
def test_not_digits(number: str) -> None:
    with pytest.raises(InvalidIdNumber) as info:
        check_id_number(number)
    assert info.value.reason == "not_digits"
    assert isinstance(info.value, ValidationError)


@pytest.mark.parametrize("value", [None, 11010519491231002, b"11010519491231002X"])
def test_not_a_string(value: object) -> None:
    with pytest.raises(InvalidIdNumber):
        check_id_number(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("number", [
    "00010119900101001X",  # 00: no province
    "990101199001010019",  # 99: no province
    "100101199001010013",  # 10: between Beijing's 11 and nothing
    "720101199001010019",  # 72: not issued
])
def test_unknown_region(number: str) -> None:
    # Each has the right check character: only the region is wrong.
    assert _with_check(number[:17]) == number
    with pytest.raises(InvalidIdNumber, match="region") as info:
        check_id_number(number)
    assert info.value.reason == "region"
    assert number not in str(info.value)


def test_every_province_prefix_is_two_digits_and_named():
    assert len(ID_REGION_PREFIXES) == 35  # 31 mainland + Taiwan + HK, Macao, Taiwan permits
    assert all(len(k) == 2 and k.isdigit() and v for k, v in ID_REGION_PREFIXES.items())
