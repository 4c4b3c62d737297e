"""The leak scanner finds what it is meant to find (else the end-to-end check proves nothing)."""

from simulators.acquirer.testcards import find_test_card
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


def test_log_timestamps_are_not_mistaken_for_a_cvv2():
    card = find_test_card("credit_approve")
    line = f"2026-11-25 13:42:26.{card.cvv2} INFO ivr.paying: payment pay_1: approved"
    assert scan_text(line, "sample") == []
    assert [leak.kind for leak in scan_text(f"cvv2={card.cvv2}", "sample")] == ["CVV2"]


def test_the_service_log_format_puts_a_dot_before_milliseconds():
    import logging

    from ivr.log import configure_logging
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers.clear()
    try:
        configure_logging("INFO")
        formatter = root.handlers[0].formatter
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
        record.msecs = 398
        assert ".398 INFO" in formatter.format(record)
    finally:
        root.handlers[:] = saved
