"""Fuzzing the domain's readers of outside input that are not a wire protocol: a merchant's order
body (``ivr/api/payment_request.py``), amounts, the keyed-number checks (card, mobile, ID number,
expiry) and the BIN table the acquirer publishes. Each returns its value or raises its one
documented error, whose text never repeats a card or ID number."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, strategies as st

from ivr.api.errors import InvalidParameter
from ivr.api.payment_request import parse_order
from ivr.hostlink.bin_table import BinInfo, BinTable, BinTableError, UnknownBin
from ivr.money import Money
from ivr.orders import Order
from ivr.validation import (ValidationError, check_card_number, check_expiry_mmyy,
                            check_id_number, check_mainland_mobile)
from tests.fuzzing import FUZZ, mutations_of
from tests.integration.test_merchant_api import ORDER

MAXIMUM = Money.parse("50000.00")
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=10), inner, max_size=3),
                    max_leaves=8)
# A valid order with some fields replaced, dropped or added: gets past the first checks.
ORDERS = st.builds(
    lambda changes, dropped, extra: {**{k: v for k, v in ORDER.items() if k not in dropped},
                                     **changes, **extra},
    st.dictionaries(st.sampled_from([*ORDER, "language", "notify_url", "agent_id"]),
                    JSON | st.sampled_from(["oneline", "zh", "http://[::1", "https://a.example/",
                                            "7101", "１２０.００", "120.00", "0.00"]), max_size=3),
    st.sets(st.sampled_from(sorted(ORDER)), max_size=2),
    st.dictionaries(st.text(max_size=8), JSON, max_size=1))
BODIES = st.one_of(ORDERS.map(lambda o: json.dumps(o).encode()), st.binary(max_size=200),
                   mutations_of([json.dumps(ORDER).encode()]))


@FUZZ
@given(raw=BODIES)
def test_an_order_body_is_an_order_or_names_what_is_wrong(raw: bytes) -> None:
    try:
        assert isinstance(parse_order(raw, maximum=MAXIMUM), Order)
    except InvalidParameter as exc:
        assert exc.details["parameter"] and exc.details["reason"]
        text = json.dumps(exc.details) + str(exc)
        assert ORDER["card_number"] not in text and ORDER["id_number"] not in text


def _number_like(text: str) -> bool:
    """Long enough to be (part of) a card, mobile or ID number, which no message may repeat."""
    return len(text) >= 6 and text[:-1].isdigit()


TEXTS = st.one_of(st.text(max_size=24), st.text("0123456789Xx*#.-１２", max_size=24),
                  st.sampled_from([ORDER["card_number"], ORDER["id_number"], ORDER["mobile"]]))


@FUZZ
@given(text=TEXTS)
def test_keyed_numbers_are_checked_or_refused_with_a_validation_error(text: str) -> None:
    for check in (check_card_number, check_mainland_mobile, check_id_number, check_expiry_mmyy):
        try:
            assert check(text) == text
        except ValidationError as exc:
            assert exc.reason
            assert not _number_like(text) or text not in str(exc)


@FUZZ
@given(text=TEXTS)
def test_an_amount_is_money_or_a_value_error(text: str) -> None:
    try:
        assert Money.parse(text).yuan == text
    except ValueError:
        pass


@FUZZ
@given(document=JSON | st.fixed_dictionaries({"bins": st.dictionaries(
           st.text("0123456789a", max_size=12),
           st.fixed_dictionaries({"card_type": st.sampled_from(["debit", "credit", "x"]) | JSON,
                                  "issuer_en": JSON, "issuer_zh": JSON}) | JSON, max_size=3)}),
       pan=TEXTS)
def test_a_bin_table_document_is_a_table_or_refused(document: Any, pan: str) -> None:
    try:
        table = BinTable.from_document(document)
    except BinTableError:
        return
    try:
        assert isinstance(table.lookup(pan), BinInfo)
    except UnknownBin as exc:
        assert not _number_like(pan) or pan not in str(exc)
