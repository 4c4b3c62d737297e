"""The leak scanner finds what it is meant to find (else the end-to-end check proves nothing)."""

from ivr.acquirer.testcards import find_test_card
from tests.leakcheck import scan_files, scan_text


def test_finds_a_pin_and_a_card_number():
    card = find_test_card("approve")
    leaks = scan_text(f"x pin={card.pin} pan {card.pan} y", "sample")
    kinds = {(leak.kind, leak.card) for leak in leaks}
    assert ("PIN", "approve") in kinds and ("card number", "approve") in kinds
    # The report names the card, never the secret.
    assert all(card.pin not in str(leak) and card.pan not in str(leak) for leak in leaks)


def test_a_pin_inside_a_longer_number_is_not_a_leak():
    card = find_test_card("approve")
    assert scan_text(f"timestamp 17{card.pin}42", "sample") == []


def test_masked_card_numbers_are_fine():
    card = find_test_card("approve")
    assert scan_text(f"card {card.pan[:6]}******{card.pan[-4:]}", "sample") == []


def test_scans_files(tmp_path):
    card = find_test_card("wrong_pin")
    (tmp_path / "a.log").write_text(f"oops {card.pan}\n")
    (tmp_path / "b.log").write_text("clean\n")
    leaks = scan_files([tmp_path / "a.log", tmp_path / "b.log"])
    assert [(leak.where.endswith("a.log"), leak.kind) for leak in leaks] == [(True, "card number")]
