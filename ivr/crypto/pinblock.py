"""ISO 9564-1 PIN blocks: format 4 (AES) for the host link, format 0 (TDES) for legacy peers.

Thin, typed wrappers over :mod:`psec.pinblock`. psec raises ``ValueError`` messages that quote the
offending PIN digits or filler; we check inputs ourselves and re-raise decode failures as
:class:`PinBlockError` *without chaining*, so a logged traceback can never show a PIN.
"""

from __future__ import annotations

import os

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from psec import aes as _aes
from psec import pinblock as _psec_pinblock
from psec import tools as _tools

__all__ = [
    "PinBlockError",
    "encipher_pinblock_iso_4",
    "decipher_pinblock_iso_4",
    "encode_pinblock_iso_0",
    "decode_pinblock_iso_0",
    "encipher_pinblock_iso_0",
    "decipher_pinblock_iso_0",
    "pinblock_from_digits",
]

_MIN_PIN, _MAX_PIN = 4, 12
_AES_KEY_LENGTHS = (16, 24, 32)
# Format 0 with double- or triple-length TDES only: single DES is not a PIN key any more.
_TDES_KEY_LENGTHS = (16, 24)
_ASCII_DIGITS = frozenset(b"0123456789")


class PinBlockError(ValueError):
    """A PIN block could not be built or read. The message never contains PIN, PAN or block."""


def _is_digits(value: str) -> bool:
    # str.isdigit() alone accepts non-ASCII digits such as "١٢٣٤".
    return value.isascii() and value.isdigit()


def _check_pin(pin: str) -> None:
    if not isinstance(pin, str) or not _is_digits(pin) or not _MIN_PIN <= len(pin) <= _MAX_PIN:
        raise PinBlockError("PIN must be 4 to 12 ASCII digits")


def _check_pan(pan: str, *, min_len: int) -> None:
    if not isinstance(pan, str) or not _is_digits(pan) or not min_len <= len(pan) <= 19:
        raise PinBlockError(f"PAN must be {min_len} to 19 ASCII digits")


def _check_key(key: bytes, lengths: tuple[int, ...], kind: str) -> None:
    if not isinstance(key, (bytes, bytearray)) or len(key) not in lengths:
        raise PinBlockError(f"{kind} key must be {', '.join(map(str, lengths))} bytes long")


def _check_block(block: bytes, length: int) -> None:
    if not isinstance(block, (bytes, bytearray)) or len(block) != length:
        raise PinBlockError(f"PIN block must be {length} bytes long")


def encipher_pinblock_iso_4(aes_key: bytes, pin: str, pan: str) -> bytes:
    """Encrypt ``pin`` bound to ``pan`` as a 16-byte ISO 9564 format 4 PIN block."""
    _check_key(aes_key, _AES_KEY_LENGTHS, "AES")
    _check_pin(pin)
    # Format 4 takes PANs shorter than 12 digits too; card numbers here are at least 12.
    _check_pan(pan, min_len=12)
    return _psec_pinblock.encipher_pinblock_iso_4(bytes(aes_key), pin, pan)


def decipher_pinblock_iso_4(aes_key: bytes, pin_block: bytes, pan: str) -> str:
    """Decrypt a format 4 PIN block and return the PIN; a wrong key or PAN fails as PinBlockError."""
    _check_key(aes_key, _AES_KEY_LENGTHS, "AES")
    _check_block(pin_block, 16)
    _check_pan(pan, min_len=12)
    try:
        return _psec_pinblock.decipher_pinblock_iso_4(bytes(aes_key), bytes(pin_block), pan)
    except ValueError:
        raise PinBlockError("PIN block does not decode as ISO 9564 format 4") from None


def encode_pinblock_iso_0(pin: str, pan: str) -> bytes:
    """The clear 8-byte ISO 9564 format 0 (ANSI X9.8) PIN block."""
    _check_pin(pin)
    _check_pan(pan, min_len=13)
    return _psec_pinblock.encode_pinblock_iso_0(pin, pan)


def decode_pinblock_iso_0(pin_block: bytes, pan: str) -> str:
    """The PIN inside a clear format 0 block."""
    _check_block(pin_block, 8)
    _check_pan(pan, min_len=13)
    try:
        return _psec_pinblock.decode_pinblock_iso_0(bytes(pin_block), pan)
    except ValueError:
        raise PinBlockError("PIN block does not decode as ISO 9564 format 0") from None


def encipher_pinblock_iso_0(tdes_key: bytes, pin: str, pan: str) -> bytes:
    """A format 0 block encrypted under a double- or triple-length TDES key (ECB)."""
    _check_key(tdes_key, _TDES_KEY_LENGTHS, "TDES")
    return _tdes_ecb(tdes_key, encode_pinblock_iso_0(pin, pan), encrypt=True)


def decipher_pinblock_iso_0(tdes_key: bytes, pin_block: bytes, pan: str) -> str:
    """The PIN inside a TDES-encrypted format 0 block."""
    _check_key(tdes_key, _TDES_KEY_LENGTHS, "TDES")
    _check_block(pin_block, 8)
    return decode_pinblock_iso_0(_tdes_ecb(tdes_key, bytes(pin_block), encrypt=False), pan)


def _tdes_ecb(key: bytes, block: bytes, *, encrypt: bool) -> bytes:
    # psec's TDES helpers trip cryptography's deprecation warnings on every call. A double-length
    # key K1K2 is spelled out as K1K2K1, which is the same cipher.
    full_key = bytes(key) + bytes(key[:8]) if len(key) == 16 else bytes(key)
    cipher = Cipher(TripleDES(full_key), modes.ECB())
    context = cipher.encryptor() if encrypt else cipher.decryptor()
    return context.update(block) + context.finalize()


def pinblock_from_digits(aes_key: bytes, digits: bytearray, pan: str) -> bytes:
    """Format 4 block from the keypad buffer, then wipe the buffer, whatever happens.

    The IVR collects DTMF into a ``bytearray`` because, unlike ``str``, it can be overwritten.
    So the PIN is never turned into a ``str`` here: the clear PIN field is assembled in a second
    ``bytearray`` that is wiped too. (The AES library may still hold transient copies.)
    """
    pin_field = bytearray(16)
    try:
        _check_key(aes_key, _AES_KEY_LENGTHS, "AES")
        _check_pan(pan, min_len=12)
        if not isinstance(digits, bytearray):
            raise PinBlockError("PIN digits must be a bytearray")
        if not _MIN_PIN <= len(digits) <= _MAX_PIN or any(d not in _ASCII_DIGITS for d in digits):
            raise PinBlockError("PIN must be 4 to 12 ASCII digits")
        _fill_pin_field_iso_4(pin_field, digits)
        key = bytes(aes_key)
        block_a = _aes.encrypt_aes_ecb(key, pin_field)
        block_b = _tools.xor(block_a, _psec_pinblock.encode_pan_field_iso_4(pan))
        return _aes.encrypt_aes_ecb(key, block_b)
    finally:
        for buffer in (digits, pin_field):
            if isinstance(buffer, bytearray):
                buffer[:] = bytes(len(buffer))


def _fill_pin_field_iso_4(field: bytearray, digits: bytearray) -> None:
    """Control 4, length, PIN digits, fill A up to 16 nibbles, then 8 random bytes."""
    nibbles = [4, len(digits)] + [d - 0x30 for d in digits] + [0xA] * (14 - len(digits))
    for i in range(8):
        field[i] = (nibbles[2 * i] << 4) | nibbles[2 * i + 1]
    field[8:16] = _random_pad()
    nibbles[:] = [0] * len(nibbles)


def _random_pad() -> bytes:
    # A function of its own so tests can pin it to a published known answer.
    return os.urandom(8)
