"""Card numbers at rest: AES-GCM under the IVR's PAN data key, bound to one payment.

The payment id is the GCM associated data, so a token copied onto another payment's record does
not decrypt: a mix-up in the store cannot charge the wrong card.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["PanVaultError", "PanVault", "mask_pan"]

_NONCE_LEN = 12
_TAG_LEN = 16


class PanVaultError(Exception):
    """A card number could not be sealed or opened. Never carries the PAN or the token."""


def _is_pan(value: object) -> bool:
    return isinstance(value, str) and value.isascii() and value.isdigit() and 12 <= len(value) <= 19


def mask_pan(pan: str) -> str:
    """``622188******1234``: the only form a card number may take in logs and journals.

    Anything that is not a plausible PAN masks to ``******`` so a logging path can call this on
    whatever it holds without ever echoing it.
    """
    if not _is_pan(pan):
        return "******"
    return f"{pan[:6]}******{pan[-4:]}"


class PanVault:
    def __init__(self, key: bytes) -> None:
        if not isinstance(key, (bytes, bytearray)) or len(key) not in (16, 24, 32):
            raise PanVaultError("PAN data key must be an AES key (16, 24 or 32 bytes)")
        self._aead = AESGCM(bytes(key))

    def __repr__(self) -> str:
        return "PanVault(key=<hidden>)"

    def encrypt(self, pan: str, payment_id: str) -> str:
        """An opaque, URL-safe text token for ``pan`` that only opens for ``payment_id``."""
        if not _is_pan(pan):
            raise PanVaultError("card number must be 12 to 19 digits")
        nonce = os.urandom(_NONCE_LEN)
        sealed = self._aead.encrypt(nonce, pan.encode("ascii"), _aad(payment_id))
        return base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def decrypt(self, token: str, payment_id: str) -> str:
        aad = _aad(payment_id)
        try:
            raw = base64.urlsafe_b64decode(token.encode("ascii"))
        except (AttributeError, UnicodeEncodeError, binascii.Error, ValueError):
            raise PanVaultError("PAN token is not valid base64") from None
        if len(raw) < _NONCE_LEN + _TAG_LEN:
            raise PanVaultError("PAN token is too short")
        try:
            plain = self._aead.decrypt(raw[:_NONCE_LEN], raw[_NONCE_LEN:], aad)
        except InvalidTag:
            raise PanVaultError("PAN token does not open for this payment") from None
        return plain.decode("ascii")


def _aad(payment_id: str) -> bytes:
    if not isinstance(payment_id, str) or not payment_id:
        raise PanVaultError("payment id must be a non-empty string")
    return payment_id.encode("utf-8")
