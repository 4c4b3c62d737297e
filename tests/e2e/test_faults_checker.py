"""Controls for the fault suite's invariant checker (tests/e2e/faults.py): each check sees what it
looks for. Pure data, no stack needed."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.e2e.faults import Watch

pytestmark = pytest.mark.e2e


def entry(mti: str, stan: str, code: str, **extra) -> dict:
    return {"mti": mti, "terminal": "VPIVR001", "stan": stan, "response_code": code,
            "rrn": "R" + stan, "amount": 1000, "duplicate": False, **extra}


def payment(pid: str, status: str, stan: str, **extra) -> dict:
    return {"id": pid, "status": status, "stan": stan, "rrn": "R" + stan, "amount_minor": "1000",
            "history": [], **extra}


def test_a_charge_of_an_approved_payment_and_a_reversed_one_pass():
    payments = {"a": payment("a", "approved", "000001"), "f": payment("f", "failed", "000002")}
    journal = [entry("0200", "000001", "00"), entry("0200", "000002", "00"),
               entry("0400", "000002", "00")]
    Watch._charges_belong_to_approved_payments(payments, journal)


@pytest.mark.parametrize("payments, journal", [
    # charged, not reversed, and the payment failed
    ({"f": payment("f", "failed", "000002")}, [entry("0200", "000002", "00")]),
    # approved, but the acquirer has no charge for it
    ({"a": payment("a", "approved", "000001")}, [entry("0200", "000001", "55")]),
    # approved, and its charge was reversed
    ({"a": payment("a", "approved", "000001")},
     [entry("0200", "000001", "00"), entry("0400", "000001", "00")]),
    # the charge's amount is not the payment's
    ({"a": payment("a", "approved", "000001")}, [entry("0200", "000001", "00", amount=999)]),
])
def test_a_charge_without_its_one_approved_payment_is_found(payments, journal):
    with pytest.raises(AssertionError):
        Watch._charges_belong_to_approved_payments(payments, journal)


def callback(pid: str, *attempts: int) -> dict:
    return payment(pid, "expired", "", mode="callback", mobile="13800138101",
                   history=[{"reason": f"attempt {n} of 3"} for n in attempts])


def test_one_call_per_recorded_attempt_passes():
    Watch._each_attempt_called_once({"p": callback("p", 1, 2)}, Counter({5071: 2}))


def test_a_second_call_for_one_attempt_is_found():
    with pytest.raises(AssertionError):
        Watch._each_attempt_called_once({"p": callback("p", 1, 2)}, Counter({5071: 3}))


def test_a_skipped_attempt_number_is_found():
    with pytest.raises(AssertionError):
        Watch._each_attempt_called_once({"p": callback("p", 1, 3)}, Counter({5071: 2}))


def test_a_purchase_the_acquirer_could_not_receive_must_not_be_in_its_journal():
    Watch._unsent_not_journaled([entry("0200", "000001", "00")], frozenset({"000002"}))
    with pytest.raises(AssertionError):
        Watch._unsent_not_journaled([entry("0200", "000002", "91")], frozenset({"000002"}))
