"""Voids, refunds and their reversals on the wire; the settlement day; refund bodies and records."""

from __future__ import annotations

from datetime import datetime, timezone

import iso8583
import pytest

from ivr.api.errors import APIError
from ivr.api.refund_routes import parse_refund, parse_void
from ivr.hostlink.adjustments import (AdjustmentReversal, RefundRequest, RefundResponse,
                                      VoidRequest, adjustment_type, decode_adjustment)
from ivr.hostlink.messages import Iso8583Error, PurchaseRequest, ResponseCode, ReversalRequest
from ivr.hostlink.spec import VOICEPAY_SPEC
from ivr.money import Money
from ivr.payments.settlement_day import Cutoff
from ivr.refunds.model import Refund, RefundKind, RefundState
from ivr.refunds.service import request_of

NOW = datetime(2026, 11, 27, 9, 30, 0, tzinfo=timezone.utc)
ORIGINAL = dict(original_stan="000041", original_transmission="1127093000",
                original_rrn="633109000123")


def _refund(**changes: object) -> RefundRequest:
    return RefundRequest.create(amount=1234, stan="000042", terminal_id="VPIVR001",
                                merchant_id="M100001".ljust(15), now=NOW,
                                **{**ORIGINAL, **changes})  # type: ignore[arg-type]


def test_a_refund_is_0220_returns_naming_its_original() -> None:
    raw = _refund().encode()
    fields, _ = iso8583.decode(raw, VOICEPAY_SPEC)
    assert fields["t"] == "0220" and fields["3"] == "200000"
    assert fields["4"] == "000000001234" and fields["11"] == "000042"
    assert fields["7"] == "1127093000" and fields["37"] == "633109000123"
    # Field 90: original MTI (the purchase), STAN and transmission time, zero-filled to 42.
    assert fields["90"] == "0200" + "000041" + "1127093000" + "0" * 22
    assert "2" not in fields and "52" not in fields  # no card, no PIN: the original names them
    assert RefundRequest.decode(raw) == _refund()


def test_a_void_is_0200_returns_and_not_a_purchase() -> None:
    void = VoidRequest.create(amount=8800, stan="000043", terminal_id="VPIVR001",
                              merchant_id="M100001".ljust(15), now=NOW, **ORIGINAL)
    raw = void.encode()
    assert adjustment_type(raw) is VoidRequest and decode_adjustment(raw) == void
    with pytest.raises(Iso8583Error, match="field 2 is missing"):
        PurchaseRequest.decode(raw)


def test_purchases_and_their_reversals_are_not_adjustments() -> None:
    purchase = PurchaseRequest.create(pan="6221889999999994", amount=100, stan="000001",
                                      terminal_id="VPIVR001", merchant_id="M100001".ljust(15))
    assert adjustment_type(purchase.encode()) is None
    assert adjustment_type(ReversalRequest.for_purchase(purchase).encode()) is None
    assert adjustment_type(b"garbage") is None


def test_the_reversal_of_a_refund_names_the_refund() -> None:
    refund = _refund()
    reversal = AdjustmentReversal.of(refund, transmission="1127093105")
    fields, _ = iso8583.decode(reversal.encode(), VOICEPAY_SPEC)
    assert fields["t"] == "0400" and fields["3"] == "200000" and fields["4"] == "000000001234"
    assert fields["90"][:20] == "0220" + "000042" + "1127093000"
    assert "37" not in fields
    assert reversal.original_key == refund.key
    # The same transmission time, the same bytes: every retry is a duplicate to the host.
    assert AdjustmentReversal.of(refund, transmission="1127093105").encode() == reversal.encode()


def test_the_answers() -> None:
    refund = _refund()
    answer = RefundResponse.for_request(refund, ResponseCode.INVALID_AMOUNT, "633109000200")  # type: ignore[arg-type]
    decoded = RefundResponse.decode(answer.encode())
    assert decoded.MTI == "0230" and decoded.response_code is ResponseCode.INVALID_AMOUNT
    assert decoded.stan == refund.stan and decoded.amount == 1234


@pytest.mark.parametrize(("changes", "error"), [
    ({"original_rrn": "short"}, "original_rrn must be 12"),
    ({"original_stan": "41"}, "original_stan must be 6 digits"),
    ({"original_transmission": "x" * 10}, "original_transmission must be 10 digits"),
])
def test_bad_references_are_refused_without_values(changes: dict, error: str) -> None:
    with pytest.raises(Iso8583Error, match=error) as excinfo:
        _refund(**changes)
    assert str(list(changes.values())[0]) not in str(excinfo.value)


def test_amounts_are_whole_fen() -> None:
    for amount in (-1, 12.34, 10**12):
        with pytest.raises(Iso8583Error, match="amount"):
            RefundRequest.create(amount=amount, stan="000042", terminal_id="VPIVR001",  # type: ignore[arg-type]
                                 merchant_id="M".ljust(15), **ORIGINAL)
    assert _refund().amount == Money.parse("12.34").fen


def test_a_processing_code_other_than_returns_is_refused() -> None:
    refund = _refund()
    with pytest.raises(Iso8583Error, match="20xxxx"):
        RefundRequest(**{**refund.__dict__, "processing_code": "000000"})


# --- the settlement day -----------------------------------------------------------------------------

@pytest.mark.parametrize(("utc", "day"), [
    ("2026-11-27T14:59:59+00:00", "2026-11-27"),   # 22:59:59 in Shanghai
    ("2026-11-27T15:00:00+00:00", "2026-11-28"),   # 23:00: the next settlement day
    ("2026-11-27T16:30:00+00:00", "2026-11-28"),   # 00:30 the next calendar day
    ("2026-12-31T15:00:00+00:00", "2027-01-01"),
])
def test_the_cutoff_closes_the_day(utc: str, day: str) -> None:
    assert Cutoff.parse("23:00 Asia/Shanghai").day_of(datetime.fromisoformat(utc)).isoformat() == day


@pytest.mark.parametrize("text", ["23:00", "24:00 Asia/Shanghai", "23:00 Mars/Base", "11pm UTC", ""])
def test_a_bad_cutoff_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        Cutoff.parse(text)


# --- what a merchant sends ----------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "parameter"), [
    (b'{"amount": "1.5"}', "amount"), (b'{"amount": "0.00"}', "amount"),
    (b'{"amount": 100}', "amount"), (b'{}', "amount"), (b"[1]", "body"), (b"{", "body"),
    (b'{"amount": "1.00", "x": 1}', "x"), (b'{"amount": "1.00", "reason": "\\u0000"}', "reason"),
])
def test_bad_refund_bodies(raw: bytes, parameter: str) -> None:
    with pytest.raises(APIError) as excinfo:
        parse_refund(raw)
    assert excinfo.value.details["parameter"] == parameter


def test_good_bodies() -> None:
    assert parse_refund(b'{"amount": "0.01", "reason": "returned"}') == (Money(1), "returned")
    assert parse_void(b"") == "" and parse_void(b'{"reason": "typo"}') == "typo"
    with pytest.raises(APIError):
        parse_void(b'{"amount": "1.00"}')  # a void is always the whole amount


def test_a_record_rebuilds_the_message_it_was_sent_as() -> None:
    sent = _refund()
    record = Refund(id="rfd_1", kind=RefundKind.REFUND, state=RefundState.SENDING,
                    amount=Money(1234), payment_id="pay_1", merchant_id="M100001", reason="",
                    stan=sent.stan, transmission=sent.transmission, local_time=sent.local_time,
                    local_date=sent.local_date, terminal_id=sent.terminal_id,
                    merchant_field=sent.merchant_id, **ORIGINAL)
    assert Refund.from_record(record.record()) == record
    assert request_of(record) == sent
    assert record.to_json()["amount"] == "12.34" and "stan" not in record.to_json()
