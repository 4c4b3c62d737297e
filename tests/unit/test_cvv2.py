"""CVV2 in transit: AES-GCM under the CVV key, bound to PAN and STAN, keypad buffer wiped."""

from __future__ import annotations

import doctest

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import ivr.crypto.cvv2
from ivr.crypto.cvv2 import CVV2_BLOCK_LENGTH, Cvv2Error, decrypt_cvv2, encrypt_cvv2

KEY = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
PAN = "6259061000000015"
STAN = "000042"


def test_round_trip_and_the_buffer_is_wiped() -> None:
    digits = bytearray(b"398")
    blob = encrypt_cvv2(KEY, digits, PAN, STAN)
    assert digits == bytearray(3)
    assert len(blob) == CVV2_BLOCK_LENGTH == 31
    assert b"398" not in blob
    assert decrypt_cvv2(KEY, blob, PAN, STAN) == "398"


def test_layout_is_nonce_ciphertext_tag_with_last4_and_stan_as_aad() -> None:
    blob = encrypt_cvv2(KEY, bytearray(b"552"), PAN, STAN)
    clear = AESGCM(KEY).decrypt(blob[:12], blob[12:], b"0015000042")
    assert clear == b"552"


def test_nonce_is_random() -> None:
    blobs = {encrypt_cvv2(KEY, bytearray(b"398"), PAN, STAN) for _ in range(20)}
    assert len(blobs) == 20


@pytest.mark.parametrize(
    ("key", "pan", "stan"),
    [
        (bytes(16), PAN, STAN),  # another key, e.g. the PEK
        (KEY, "6259061000000023", STAN),  # another card
        (KEY, PAN, "000043"),  # another transaction
    ],
)
def test_a_block_only_opens_for_its_key_card_and_stan(key: bytes, pan: str, stan: str) -> None:
    blob = encrypt_cvv2(KEY, bytearray(b"398"), PAN, STAN)
    with pytest.raises(Cvv2Error, match="does not authenticate") as excinfo:
        decrypt_cvv2(key, blob, pan, stan)
    assert excinfo.value.__cause__ is None and excinfo.value.__suppress_context__


def test_a_tampered_block_does_not_open() -> None:
    blob = bytearray(encrypt_cvv2(KEY, bytearray(b"398"), PAN, STAN))
    blob[13] ^= 1
    with pytest.raises(Cvv2Error, match="does not authenticate"):
        decrypt_cvv2(KEY, bytes(blob), PAN, STAN)


@pytest.mark.parametrize(
    ("key", "digits", "pan", "stan", "message"),
    [
        (KEY[:15], bytearray(b"398"), PAN, STAN, "CVV key must be"),
        (KEY, bytearray(b"39"), PAN, STAN, "CVV2 must be 3 ASCII digits"),
        (KEY, bytearray(b"3988"), PAN, STAN, "CVV2 must be 3 ASCII digits"),
        (KEY, bytearray(b"39a"), PAN, STAN, "CVV2 must be 3 ASCII digits"),
        (KEY, bytearray(b"398"), "12345", STAN, "PAN must be"),
        (KEY, bytearray(b"398"), PAN, "42", "STAN must be 6"),
    ],
)
def test_encrypt_errors_wipe_and_never_show_digits(
    key: bytes, digits: bytearray, pan: str, stan: str, message: str
) -> None:
    shown = bytes(digits).decode()
    with pytest.raises(Cvv2Error, match=message) as excinfo:
        encrypt_cvv2(key, digits, pan, stan)
    assert digits == bytearray(len(digits))
    assert shown not in str(excinfo.value) and PAN not in str(excinfo.value)


def test_only_a_bytearray_is_accepted() -> None:
    with pytest.raises(Cvv2Error, match="bytearray"):
        encrypt_cvv2(KEY, b"398", PAN, STAN)  # type: ignore[arg-type]


def test_decrypt_errors() -> None:
    blob = encrypt_cvv2(KEY, bytearray(b"398"), PAN, STAN)
    with pytest.raises(Cvv2Error, match="31 bytes"):
        decrypt_cvv2(KEY, blob[:-1], PAN, STAN)
    # A block that authenticates but holds no CVV2 (sealed by someone else's code).
    nonce = bytes(12)
    odd = nonce + AESGCM(KEY).encrypt(nonce, b"3x8", b"0015000042")
    with pytest.raises(Cvv2Error, match="does not hold a CVV2") as excinfo:
        decrypt_cvv2(KEY, odd, PAN, STAN)
    assert "3x8" not in str(excinfo.value)


def test_doctests() -> None:
    result = doctest.testmod(ivr.crypto.cvv2)
    assert result.attempted >= 3 and result.failed == 0
