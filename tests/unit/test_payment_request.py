"""The body of POST /v1/payments: every refusal names its field and never repeats card or ID."""

from __future__ import annotations

import json
from dataclasses import fields
from ivr.money import Money

import pytest

from ivr.api.errors import InvalidParameter
from ivr.api.payment_request import parse_order
from ivr.orders import Order

MAXIMUM = Money.parse("50000.00")
# Not one of the acquirer simulator's documented test cards (those must never reach test output).
CARD = "6221889999999994"
ID_NUMBER = "11010519491231002X"
GOOD = {
    "merchant_order_id": "ORD-2024_0001",
    "amount": "120.00",
    "description": "Phone bill, May",
    "card_number": CARD,
    "cardholder_name": "李雷",
    "id_number": ID_NUMBER,
    "mobile": "13800138000",
    "mode": "callback",
}


def _parse(**changes: object) -> Order:
    body = {**GOOD, **changes}
    body = {k: v for k, v in body.items() if v is not _DROP}
    return parse_order(json.dumps(body).encode(), maximum=MAXIMUM)


_DROP = object()


def _refused(field: str, **changes: object) -> InvalidParameter:
    with pytest.raises(InvalidParameter) as info:
        _parse(**changes)
    error = info.value
    assert error.details["parameter"] == field, error.details
    assert error.status == 400
    text = f"{error} {error.message} {error.details} {error!r}"
    for secret in (CARD, ID_NUMBER, CARD[6:], ID_NUMBER[6:14]):
        assert secret not in text
    # Not even the value that was refused, when it is card- or ID-like.
    for value in changes.values():
        if isinstance(value, str) and len(value) >= 12 and value[:12].isdigit():
            assert value not in text
    return error


def test_a_good_order():
    order = _parse(notify_url="https://merchant.example/hook?x=1", language="en")
    assert order.merchant_order_id == "ORD-2024_0001"
    assert order.amount == Money(12000) and str(order.amount) == "120.00"
    assert order.card_number == CARD and order.id_number == ID_NUMBER
    assert order.cardholder_name == "李雷" and order.mobile == "13800138000"
    assert (order.mode, order.language, order.notify_url) == ("callback", "en",
                                                              "https://merchant.example/hook?x=1")


def test_defaults():
    order = _parse()
    assert order.language is None and order.notify_url is None  # None: the last language, or zh


@pytest.mark.parametrize("language", ["zh", "yue", "en"])
def test_every_language_is_accepted(language: str) -> None:
    assert _parse(language=language).language == language


def test_repr_masks_card_and_id_number():
    order = _parse()
    for text in (repr(order), str(order), f"{order}", repr([order])):
        assert CARD not in text and ID_NUMBER not in text and "19491231" not in text
        assert "622188******9994" in text and "110105********002X" in text


@pytest.mark.parametrize(("field", "value"), [
    ("merchant_order_id", ""),
    ("merchant_order_id", "a" * 65),
    ("merchant_order_id", "has space"),
    ("merchant_order_id", "ORD/1"),
    ("merchant_order_id", 12),
    ("description", ""),
    ("description", "   "),
    ("description", "x" * 129),
    ("description", "line\nbreak"),
    ("description", 5),
    ("cardholder_name", ""),
    ("cardholder_name", "n" * 65),
    ("cardholder_name", ["Li"]),
    ("card_number", "6221889999999995"),  # Luhn
    ("card_number", "622188999999"),  # 12 digits
    ("card_number", "62218899999999999994"),  # 20 digits
    ("card_number", "6221 8899 9999 9994"),
    ("card_number", 6221889999999994),
    ("id_number", "110105194912310021"),  # check character
    ("id_number", "110105194902300027"),  # 30 February
    ("id_number", "11010519491231002"),  # length
    ("id_number", 11010519491231002),
    ("mobile", "12800138000"),
    ("mobile", "1380013800"),
    ("mobile", "+8613800138000"),
    ("mobile", "447700900123"),
    ("mobile", 13800138000),
    ("mode", "selfservice"),
    ("mode", 1),
    ("language", "fr"),
    ("language", None),
    ("notify_url", "ftp://merchant.example/hook"),
    ("notify_url", "merchant.example/hook"),
    ("notify_url", "https://"),
    ("notify_url", "https://user:pw@merchant.example/"),
    ("notify_url", "https://merchant.example/a b"),
    ("notify_url", "https://merchant.example/" + "a" * 500),
    ("notify_url", "https://merchant.example:99999/"),
    ("notify_url", 5),
])
def test_each_bad_field_is_named(field: str, value: object) -> None:
    error = _refused(field, **{field: value})
    assert error.error_id == "invalid-parameter"
    assert error.details["reason"]


@pytest.mark.parametrize("field", ["merchant_order_id", "amount", "description", "card_number",
                                   "cardholder_name", "id_number", "mobile", "mode"])
def test_required_fields(field: str) -> None:
    error = _refused(field, **{field: _DROP})
    assert error.details["reason"] == "is required"
    error = _refused(field, **{field: None})
    assert error.details["reason"] == "is required"


def test_optional_fields_may_be_left_out():
    order = _parse(language=_DROP, notify_url=None)
    assert order.language is None and order.notify_url is None


@pytest.mark.parametrize("mode", ["oneline", "talk-through"])
def test_in_call_modes_need_an_agent(mode: str) -> None:
    error = _refused("agent_id", mode=mode)
    assert error.error_id == "invalid-parameter" and error.status == 400
    assert mode in error.details["reason"]


def test_talk_through_is_an_order_in_the_agents_call():
    order = _parse(mode="talk-through", agent_id="7101")
    assert (order.mode, order.agent_id) == ("talk-through", "7101")


def test_only_oneline_takes_an_agent():
    _refused("agent_id", agent_id="7101")


@pytest.mark.parametrize("amount", ["0.00", "1", "1.5", "1.234", "-1.00", "abc", "50000.01", "",
                                    "01.00", "1e2", "1,00", " 1.00", "1.00 ", "+1.00", "１.００",
                                    "100000000000000.00", 1, 1.5, None, ["1.00"]])
def test_bad_amounts(amount: object) -> None:
    error = _refused("amount", amount=amount)
    assert error.details["reason"]


@pytest.mark.parametrize(("amount", "fen"), [("0.01", 1), ("0.10", 10), ("1.00", 100),
                                             ("120.50", 12050), ("49999.99", 4999999),
                                             ("50000.00", 5000000)])
def test_good_amounts(amount: str, fen: int) -> None:
    order = _parse(amount=amount)
    assert order.amount.fen == fen and str(order.amount) == amount


def test_max_amount_is_a_parameter():
    body = json.dumps({**GOOD, "amount": "100.01"}).encode()
    with pytest.raises(InvalidParameter, match="at most 100.00"):
        parse_order(body, maximum=Money(10000))
    assert parse_order(json.dumps({**GOOD, "amount": "100.00"}).encode(),
                                maximum=Money(10000)).amount.fen == 10000


def test_unknown_fields_are_refused():
    error = _refused("cvv", cvv="123")
    assert error.details["reason"] == "unknown field"
    # A field name that looks like data is not repeated back.
    body = json.dumps({**GOOD, CARD: "x"}).encode()
    with pytest.raises(InvalidParameter) as info:
        parse_order(body, maximum=MAXIMUM)
    assert info.value.details == {"parameter": "(field name)", "reason": "unknown field"}
    assert CARD not in str(info.value)


def test_duplicate_fields_are_refused():
    raw = json.dumps(GOOD)[:-1] + ', "amount": "1.00"}'
    with pytest.raises(InvalidParameter) as info:
        parse_order(raw.encode(), maximum=MAXIMUM)
    assert info.value.details["parameter"] == "amount"


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1, 2]", b'"text"', b"null", b"42",
                                 b"\xff\xfe{}", b"{"])
def test_body_must_be_a_json_object(raw: bytes) -> None:
    with pytest.raises(InvalidParameter) as info:
        parse_order(raw, maximum=MAXIMUM)
    assert info.value.details["parameter"] == "body"


def test_fields_mirror_the_json_body():
    assert [f.name for f in fields(Order)] == [
        "merchant_order_id", "amount", "description", "card_number", "cardholder_name",
        "id_number", "mobile", "mode", "language", "notify_url", "agent_id"]
