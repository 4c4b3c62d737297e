"""CVV2 in transit from the IVR to the acquirer: AES-GCM under the shared CVV key.

A PIN travels as an ISO 9564 block under the PEK; a CVV2 has no such standard block, so it is
sealed with AES-GCM under its own key (``IvrKeys.cvv_key`` / ``AcquirerKeys.cvv_key``, TR-31 D0),
never under the PEK: one key, one purpose.

The block is ``nonce (12 random bytes) || ciphertext (3 bytes) || tag (16 bytes)``, 31 bytes, and
is bound to its transaction by the associated data: the last four digits of the PAN and the STAN.
A block lifted into another purchase (other card, other STAN) fails authentication. GCM leaks the
plaintext length, which is always 3 digits here, so that says nothing.

Errors are :class:`Cvv2Error`, never chained and never quoting digits, PAN or block.

    >>> key = bytes(range(16))
    >>> digits = bytearray(b"398")
    >>> blob = encrypt_cvv2(key, digits, "6259061000000015", "000042")
    >>> digits, len(blob)
    (bytearray(b'\\x00\\x00\\x00'), 31)
    >>> decrypt_cvv2(key, blob, "6259061000000015", "000042")
    '398'
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["Cvv2Error", "CVV2_LENGTH", "CVV2_BLOCK_LENGTH", "encrypt_cvv2", "decrypt_cvv2"]

CVV2_LENGTH = 3
_NONCE_LENGTH = 12
_TAG_LENGTH = 16
CVV2_BLOCK_LENGTH = _NONCE_LENGTH + CVV2_LENGTH + _TAG_LENGTH
_AES_KEY_LENGTHS = (16, 24, 32)
_ASCII_DIGITS = frozenset(b"0123456789")


class Cvv2Error(ValueError):
    """A CVV2 block could not be built or opened. The message never holds CVV2, PAN or block."""


def _check_key(key: bytes) -> None:
    if not isinstance(key, (bytes, bytearray)) or len(key) not in _AES_KEY_LENGTHS:
        raise Cvv2Error("CVV key must be an AES key of 16, 24 or 32 bytes")


def _associated_data(pan: str, stan: str) -> bytes:
    if not (isinstance(pan, str) and 12 <= len(pan) <= 19 and pan.isascii() and pan.isdigit()):
        raise Cvv2Error("PAN must be 12 to 19 ASCII digits")
    if not (isinstance(stan, str) and len(stan) == 6 and stan.isascii() and stan.isdigit()):
        raise Cvv2Error("STAN must be 6 ASCII digits")
    return (pan[-4:] + stan).encode("ascii")


def encrypt_cvv2(key: bytes, digits: bytearray, pan: str, stan: str) -> bytes:
    """Seal the keypad buffer ``digits`` for the purchase (``pan``, ``stan``), then wipe it.

    The buffer is zeroed whatever happens, error or not; the CVV2 is never turned into a ``str``.
    """
    try:
        _check_key(key)
        if not isinstance(digits, bytearray):
            raise Cvv2Error("CVV2 digits must be a bytearray")
        if len(digits) != CVV2_LENGTH or any(d not in _ASCII_DIGITS for d in digits):
            raise Cvv2Error(f"CVV2 must be {CVV2_LENGTH} ASCII digits")
        aad = _associated_data(pan, stan)
        nonce = os.urandom(_NONCE_LENGTH)
        return nonce + AESGCM(bytes(key)).encrypt(nonce, digits, aad)
    finally:
        if isinstance(digits, bytearray):
            digits[:] = bytes(len(digits))


def decrypt_cvv2(key: bytes, blob: bytes, pan: str, stan: str) -> str:
    """The CVV2 inside ``blob``; Cvv2Error if the key, PAN or STAN is not the one it was sealed for."""
    _check_key(key)
    aad = _associated_data(pan, stan)
    if not isinstance(blob, (bytes, bytearray)) or len(blob) != CVV2_BLOCK_LENGTH:
        raise Cvv2Error(f"CVV2 block must be {CVV2_BLOCK_LENGTH} bytes long")
    blob = bytes(blob)
    try:
        clear = bytearray(AESGCM(bytes(key)).decrypt(blob[:_NONCE_LENGTH], blob[_NONCE_LENGTH:], aad))
    except InvalidTag:
        raise Cvv2Error("CVV2 block does not authenticate") from None
    try:
        if len(clear) != CVV2_LENGTH or any(d not in _ASCII_DIGITS for d in clear):
            raise Cvv2Error("CVV2 block does not hold a CVV2")
        return clear.decode("ascii")
    finally:
        clear[:] = bytes(len(clear))
