"""ISO 9564 PIN blocks: published known answers, independent recomputation, round trips, errors."""

from __future__ import annotations

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ivr.crypto.pinblock import (
    PinBlockError,
    decipher_pinblock_iso_0,
    decipher_pinblock_iso_4,
    decode_pinblock_iso_0,
    encipher_pinblock_iso_0,
    encipher_pinblock_iso_4,
    encode_pinblock_iso_0,
    pinblock_from_digits,
)

AES_KEY = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
TDES_KEY = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")


def _aes_ecb(key: bytes, block: bytes, *, encrypt: bool) -> bytes:
    cipher = Cipher(algorithms.AES(key), modes.ECB())
    ctx = cipher.encryptor() if encrypt else cipher.decryptor()
    return ctx.update(block) + ctx.finalize()


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


# --- format 0: published clear blocks ---------------------------------------------------------

FORMAT_0_VECTORS = [
    # EFTlab, "Complete list of PIN blocks" (ISO-0 example, also in ID TECH's knowledge base):
    # PIN 1234, PAN 43219876543210987 -> clear PIN block 0412AC89ABCDEF67.
    ("1234", "43219876543210987", "0412AC89ABCDEF67"),
    # psec, pinblock.encode_pinblock_iso_0 doctest: PIN 1234, PAN 5544332211009966.
    ("1234", "5544332211009966", "041277CDDEEFF669"),
]


@pytest.mark.parametrize(("pin", "pan", "clear_block"), FORMAT_0_VECTORS)
def test_format_0_known_answers(pin: str, pan: str, clear_block: str) -> None:
    assert encode_pinblock_iso_0(pin, pan).hex().upper() == clear_block
    assert decode_pinblock_iso_0(bytes.fromhex(clear_block), pan) == pin


def test_format_0_layout_by_hand() -> None:
    # ISO 9564-1 format 0: 0 | PIN length | PIN | F fill, XOR 0000 | 12 PAN digits before the check digit.
    pin_field = bytes.fromhex("06119922FFFFFFFF")
    pan_field = bytes.fromhex("0000" + "188100000001")
    assert encode_pinblock_iso_0("119922", "6221881000000011") == _xor(pin_field, pan_field)


def test_format_0_enciphered_is_tdes_of_the_clear_block() -> None:
    clear = bytes.fromhex("0412AC89ABCDEF67")
    expected = Cipher(TripleDES(TDES_KEY + TDES_KEY[:8]), modes.ECB()).encryptor().update(clear)
    block = encipher_pinblock_iso_0(TDES_KEY, "1234", "43219876543210987")
    assert block == expected
    assert decipher_pinblock_iso_0(TDES_KEY, block, "43219876543210987") == "1234"


# --- format 4 ---------------------------------------------------------------------------------

# The format 4 known answers are built by hand from ISO 9564-1 in test_published_vectors.py.
F4_PAN = "1234567890123456"


def test_format_4_encipher_recomputed_with_plain_aes() -> None:
    pan = "6221882000000000017"  # 19 digits: PAN length nibble 7
    block = encipher_pinblock_iso_4(AES_KEY, "814406", pan)
    assert len(block) == 16
    pan_field = bytes.fromhex(("7" + pan).ljust(32, "0"))
    block_a = _xor(_aes_ecb(AES_KEY, block, encrypt=False), pan_field)
    pin_field = _aes_ecb(AES_KEY, block_a, encrypt=False)
    assert pin_field[:8] == bytes.fromhex("46814406AAAAAAAA")


def test_format_4_is_randomised() -> None:
    assert encipher_pinblock_iso_4(AES_KEY, "119922", F4_PAN) != encipher_pinblock_iso_4(AES_KEY, "119922", F4_PAN)


@pytest.mark.parametrize("pin", ["1234", "119922", "446600", "000000000000"])
@pytest.mark.parametrize("pan", ["6221881000000011", "6221882000000000017", "123456789012"])
@pytest.mark.parametrize("key_len", [16, 24, 32])
def test_format_4_round_trip(pin: str, pan: str, key_len: int) -> None:
    key = bytes(range(key_len))
    assert decipher_pinblock_iso_4(key, encipher_pinblock_iso_4(key, pin, pan), pan) == pin


@pytest.mark.parametrize("pin", ["1234", "905517", "123456789012"])
def test_format_0_round_trip(pin: str) -> None:
    pan = "6221881000000011"
    assert decode_pinblock_iso_0(encode_pinblock_iso_0(pin, pan), pan) == pin
    assert decipher_pinblock_iso_0(TDES_KEY, encipher_pinblock_iso_0(TDES_KEY, pin, pan), pan) == pin


def test_format_4_wrong_pan_or_key_fails_cleanly() -> None:
    block = encipher_pinblock_iso_4(AES_KEY, "119922", "6221881000000011")
    with pytest.raises(PinBlockError) as wrong_pan:
        decipher_pinblock_iso_4(AES_KEY, block, "6221881000000029")
    with pytest.raises(PinBlockError):
        decipher_pinblock_iso_4(bytes(16), block, "6221881000000011")
    # psec's own message would quote the "PIN"; ours does not, and does not chain to it.
    assert "119922" not in str(wrong_pan.value)
    assert wrong_pan.value.__cause__ is None and wrong_pan.value.__suppress_context__


ERRORS = [
    (lambda: encipher_pinblock_iso_4(AES_KEY, "123", F4_PAN), "PIN must be 4 to 12"),
    (lambda: encipher_pinblock_iso_4(AES_KEY, "1234567890123", F4_PAN), "PIN must be 4 to 12"),
    (lambda: encipher_pinblock_iso_4(AES_KEY, "12a4", F4_PAN), "PIN must be 4 to 12"),
    (lambda: encipher_pinblock_iso_4(AES_KEY, "١٢٣٤", F4_PAN), "PIN must be 4 to 12"),
    (lambda: encipher_pinblock_iso_4(AES_KEY, "1234", "12345678901"), "PAN must be 12 to 19"),
    (lambda: encipher_pinblock_iso_4(AES_KEY, "1234", "1" * 20), "PAN must be 12 to 19"),
    (lambda: encipher_pinblock_iso_4(b"short", "1234", F4_PAN), "AES key must be"),
    (lambda: decipher_pinblock_iso_4(AES_KEY, b"\x00" * 8, F4_PAN), "must be 16 bytes"),
    (lambda: decipher_pinblock_iso_4(AES_KEY, b"\x00" * 16, F4_PAN), "does not decode as ISO 9564 format 4"),
    (lambda: encode_pinblock_iso_0("1234", "123456789012"), "PAN must be 13 to 19"),
    (lambda: decode_pinblock_iso_0(b"\x00" * 7, "43219876543210987"), "must be 8 bytes"),
    (lambda: decode_pinblock_iso_0(bytes.fromhex("1412AC89ABCDEF67"), "43219876543210987"), "format 0"),
    (lambda: encipher_pinblock_iso_0(bytes(8), "1234", "43219876543210987"), "TDES key must be"),
    (lambda: pinblock_from_digits(AES_KEY, bytearray(b"12x4"), F4_PAN), "PIN must be 4 to 12"),
    (lambda: pinblock_from_digits(AES_KEY, b"1234", F4_PAN), "bytearray"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(("call", "message"), ERRORS)
def test_errors(call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PinBlockError, match=message) as excinfo:
        call()
    assert isinstance(excinfo.value, ValueError)
    for secret in ("1234", "43219876543210987", F4_PAN):
        assert secret not in str(excinfo.value)


def test_pinblock_from_digits_zeroes_the_buffer() -> None:
    digits = bytearray(b"119922")
    block = pinblock_from_digits(AES_KEY, digits, "6221881000000011")
    assert digits == bytearray(6)
    assert decipher_pinblock_iso_4(AES_KEY, block, "6221881000000011") == "119922"


def test_pinblock_from_digits_zeroes_the_buffer_on_error() -> None:
    digits = bytearray(b"119922")
    with pytest.raises(PinBlockError):
        pinblock_from_digits(AES_KEY, digits, "not-a-pan")
    assert digits == bytearray(6)
