"""The one private-file writer and the one Money type."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ivr.files import is_private, write_private
from ivr.money import Money


def test_private_file_is_0600_from_the_start_and_replaced_atomically(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "k.json"
    old_umask = os.umask(0)  # a permissive umask must not widen the file
    try:
        assert write_private(path, "one\n")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and is_private(path)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    inode = path.stat().st_ino
    assert write_private(path, "two\n")
    assert path.read_text() == "two\n" and path.stat().st_ino != inode  # a new file, renamed in
    assert [p.name for p in path.parent.iterdir()] == ["k.json"]  # no temporary file left


def test_exclusive_write_never_replaces_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "token"
    assert write_private(path, "first\n", exclusive=True)
    assert not write_private(path, "second\n", exclusive=True)
    assert path.read_text() == "first\n"
    assert [p.name for p in tmp_path.iterdir()] == ["token"]


def test_public_mode_is_kept_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "bins.json"
    write_private(path, "{}\n", mode=0o644)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644 and not is_private(path)


@pytest.mark.parametrize("text, fen", [("0.01", 1), ("88.00", 8800), ("2000.00", 200000),
                                       ("0.00", 0), ("9999999999.99", 999999999999)])
def test_money_reads_yuan_with_two_decimals(text: str, fen: int) -> None:
    money = Money.parse(text)
    assert money.fen == fen and money.yuan == text and str(money) == text


@pytest.mark.parametrize("text", ["88", "88.0", "88.000", "-1.00", "+1.00", "1e3", " 1.00", "01.00",
                                  "1,00", "１.００", "", "NaN", "Infinity", None, 88])
def test_money_refuses_anything_else(text: object) -> None:
    with pytest.raises(ValueError, match="two decimals"):
        Money.parse(text)  # type: ignore[arg-type]


def test_money_is_whole_non_negative_fen_and_ordered() -> None:
    with pytest.raises(ValueError):
        Money(-1)
    with pytest.raises(ValueError):
        Money(1.5)  # type: ignore[arg-type]
    assert Money.parse("2000.00") < Money.parse("2000.01")
