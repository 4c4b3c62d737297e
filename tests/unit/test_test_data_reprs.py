"""What the tests' own objects show when pytest prints them: a failing test prints the
arguments of every frame of its traceback, and test-output.log is scanned for card data like
every other log (tests/leakcheck.py). A key's digits (a test PIN, a CVV2) are never shown."""

from __future__ import annotations

from simulators.acquirer.testcards import find_test_card
from tests.e2e.test_talkthrough_calls import Field, _expiry_and_cvv2, _pin
from tests.sipp.scenario import Call, Key


def test_a_keys_digits_are_not_in_its_repr():
    card = find_test_card("approve")
    key = Key(card.pin + "#", cue="enter_pin", label="PIN")
    call = Call("approved", "8000", [Key(card.pan + "#", 300, label="card number"), key])
    for shown in (repr(key), repr(call), str([key])):
        # No message showing ``shown``: it would print the digits this test looks for.
        assert card.pin not in shown and card.pan not in shown, "a key's repr shows its digits"
    assert "PIN" in repr(key)  # what was keyed is still named


def test_a_talk_through_fields_digits_are_not_in_its_repr():
    debit, credit = find_test_card("approve"), find_test_card("credit_approve")
    fields: list[Field] = _pin(debit) + _expiry_and_cvv2(credit)
    shown = repr(fields)
    assert debit.pin not in shown and credit.cvv2 not in shown, "a field's repr shows its digits"
    assert "enter_cvv2" in shown and "CVV2" in shown
