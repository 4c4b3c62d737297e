"""Card numbers at rest: AES-GCM under the IVR's PAN data key, bound to one payment.

The payment id is the GCM associated data, so a token copied onto another payment's record does
not decrypt: a mix-up in the store cannot charge the wrong card. Each token names the key id it
was sealed under (:mod:`ivr.crypto.sealed`): new card numbers are sealed under the current PAN
key, older ones open under theirs until that key is retired; then :class:`PanKeyRetired` says so.
"""

from __future__ import annotations

from ivr.crypto.keyring import KeySource, as_key_source
from ivr.crypto.sealed import SealError, SealKeyUnavailable, SealMismatch, open_sealed, seal

__all__ = ["PanVaultError", "PanKeyRetired", "PanVault", "mask_pan"]


class PanVaultError(Exception):
    """A card number could not be sealed or opened. Never carries the PAN or the token."""


class PanKeyRetired(PanVaultError):
    """The card number was sealed under a PAN key that has since been retired (or never
    issued here): it can no longer be read, by design."""


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
    """``key``: the PAN key's ring source (a watched key file), or one key (tests, tools)."""

    def __init__(self, key: bytes | KeySource) -> None:
        if isinstance(key, (bytes, bytearray)) and len(key) not in (16, 24, 32):
            raise PanVaultError("PAN data key must be an AES key (16, 24 or 32 bytes)")
        self._keys = as_key_source(key, "pan_key")

    def __repr__(self) -> str:
        return "PanVault(key=<hidden>)"

    def encrypt(self, pan: str, payment_id: str) -> str:
        """An opaque text token for ``pan`` that only opens for ``payment_id``."""
        if not _is_pan(pan):
            raise PanVaultError("card number must be 12 to 19 digits")
        return seal(self._keys(), pan.encode("ascii"), _aad(payment_id))

    def decrypt(self, token: str, payment_id: str) -> str:
        aad = _aad(payment_id)
        try:
            plain = open_sealed(self._keys(), token, aad)
        except SealKeyUnavailable as exc:
            raise PanKeyRetired(f"PAN {exc}") from None
        except SealMismatch:
            raise PanVaultError("PAN token does not open for this payment") from None
        except SealError as exc:
            raise PanVaultError(f"PAN {exc}") from None
        return plain.decode("ascii")


def _aad(payment_id: str) -> bytes:
    if not isinstance(payment_id, str) or not payment_id:
        raise PanVaultError("payment id must be a non-empty string")
    return payment_id.encode("utf-8")
