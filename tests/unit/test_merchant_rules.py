"""A merchant's field rules, banned categories, key grace, and the secret box, without Redis."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ivr.crypto.secret_box import SecretBox, SecretBoxError
from ivr.merchants import (BANNED_MCCS, InvalidMerchant, Merchant, MerchantError, MerchantStatus,
                           banned_categories, check_fields, check_limits, check_name)
from ivr.money import Money

MERCHANT = Merchant("M200001", "Harbour Tea House", "海港茶楼", "5812", MerchantStatus.ACTIVE,
                    Money.parse("800.00"), key=b"k" * 32)


def test_the_built_in_banned_categories_and_the_operators_own() -> None:
    assert {"7995", "7800", "7801", "7802", "5967"} <= BANNED_MCCS
    assert banned_categories("") == BANNED_MCCS
    assert banned_categories(" 6051,5816 ,") == BANNED_MCCS | {"6051", "5816"}
    with pytest.raises(MerchantError, match="VOICEPAY_BANNED_MCCS"):
        banned_categories("60x1")
    assert replace(MERCHANT, banned_mccs=banned_categories("5812")).category_banned
    assert not MERCHANT.category_banned


@pytest.mark.parametrize(("max_amount", "daily_max", "parameter"), [
    ("800", None, "max_amount"),
    ("0.00", None, "max_amount"),
    (800, None, "max_amount"),
    ("50000.01", None, "max_amount"),
    ("800.00", "799.99", "daily_max"),
    ("800.00", "", "daily_max"),
])
def test_limits_are_refused_naming_the_field(max_amount: object, daily_max: object,
                                             parameter: str) -> None:
    with pytest.raises(InvalidMerchant) as refused:
        check_limits(max_amount, daily_max, ceiling=Money.parse("50000.00"))
    assert refused.value.details["parameter"] == parameter


def test_limits_accepted() -> None:
    assert check_limits("800.00", None) == (Money(80000), None)
    assert check_limits("800.00", "800.00") == (Money(80000), Money(80000))


@pytest.mark.parametrize("value", ["", "  ", "a\nb", "\u202eevil", "x" * 65, None, 3])
def test_bad_names(value: object) -> None:
    with pytest.raises(InvalidMerchant, match="name_en"):
        check_name("name_en", value)


def test_unknown_fields_are_named_only_when_they_look_like_field_names() -> None:
    with pytest.raises(InvalidMerchant) as refused:
        check_fields({"max": "1.00"}, ("max_amount",))
    assert refused.value.details["parameter"] == "max"
    with pytest.raises(InvalidMerchant) as refused:
        check_fields({"<script>": "1.00"}, ("max_amount",))
    assert refused.value.details["parameter"] == "(field name)"
    with pytest.raises(InvalidMerchant) as refused:
        check_fields({}, ("max_amount",))
    assert refused.value.details["parameter"] == "body"


def test_display_names_and_the_cantonese_fallback() -> None:
    assert MERCHANT.display_name("yue") == "海港茶楼"
    assert replace(MERCHANT, name_yue="海港茶樓").display_name("yue") == "海港茶樓"
    assert MERCHANT.display_name("en") == "Harbour Tea House"


def test_the_replaced_key_verifies_only_within_its_grace() -> None:
    rotated = replace(MERCHANT, key=b"n" * 32, previous_key=b"k" * 32, previous_key_until=1000.0)
    assert rotated.signing_keys(999.0) == (b"n" * 32, b"k" * 32)
    assert rotated.signing_keys(1000.0) == (b"n" * 32,)
    assert MERCHANT.signing_keys(0.0) == (b"k" * 32,)


def test_no_secret_in_a_merchants_repr_or_public_form() -> None:
    merchant = replace(MERCHANT, webhook_secret=b"w" * 32, previous_key=b"p" * 32)
    for text in (repr(merchant), str(merchant), str(merchant.to_public())):
        for secret in (b"k" * 32, b"w" * 32, b"p" * 32):
            assert secret.decode() not in text and secret.hex() not in text


def test_the_secret_box_binds_each_secret_to_its_context() -> None:
    box = SecretBox(bytes(range(32)))
    sealed = box.seal(b"s" * 32, "M200001:api-key")
    assert box.open(sealed, "M200001:api-key") == b"s" * 32
    assert b"s" * 32 not in sealed.encode() and ("73" * 32) not in sealed
    for context in ("M200002:api-key", "M200001:webhook-secret"):
        with pytest.raises(SecretBoxError, match="does not open") as refused:
            box.open(sealed, context)
        assert sealed not in str(refused.value)
    with pytest.raises(SecretBoxError):
        SecretBox(bytes(32)).open(sealed, "M200001:api-key")
    with pytest.raises(SecretBoxError):
        box.open("not base64!", "M200001:api-key")
    assert "hidden" in repr(box)
    with pytest.raises(SecretBoxError, match="32 bytes"):
        SecretBox(b"short")
