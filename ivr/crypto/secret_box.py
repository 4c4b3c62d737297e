"""Secrets at rest: AES-GCM under the box key, each sealed value bound to its context.

Merchants' API keys and webhook secrets are stored in Redis sealed with this box. The context
(merchant id and the secret's role) is the GCM associated data, so a sealed value copied onto
another merchant, or from the webhook secret onto the API key, does not open.

The box key is a role of the IVR's key file (``box_key``, a TR-31 block under the KBPK,
:mod:`ivr.crypto.keys`) and rotates like the others: each sealed value names the key id it was
sealed under (:mod:`ivr.crypto.sealed`), new values are sealed under the current key. A merchant's
secrets move to the current key when they are next written (rotating the merchant's API key or
webhook secret); values still under a retired key no longer open.
"""

from __future__ import annotations

from ivr.crypto.keyring import KeySource, as_key_source
from ivr.crypto.sealed import SealError, key_id_of, open_sealed, seal

__all__ = ["SecretBoxError", "SecretBox"]

_KEY_BYTES = 32


class SecretBoxError(Exception):
    """A secret could not be sealed or opened. Never carries the secret or the sealed text."""


class SecretBox:
    """``key``: the box key's ring source (a watched key file), or one key (tests, tools)."""

    def __init__(self, key: bytes | KeySource) -> None:
        if isinstance(key, (bytes, bytearray)) and len(key) != _KEY_BYTES:
            raise SecretBoxError("the secret box key must be 32 bytes (AES-256)")
        self._keys = as_key_source(key, "box_key")

    def __repr__(self) -> str:
        return "SecretBox(key=<hidden>)"

    def seal(self, secret: bytes, context: str) -> str:
        """An opaque text token for ``secret`` that only opens for ``context``."""
        return seal(self._keys(), secret, context.encode("utf-8"))

    def open(self, token: str | bytes, context: str) -> bytes:
        try:
            return open_sealed(self._keys(), token, context.encode("utf-8"))
        except SealError as exc:
            raise SecretBoxError(f"sealed {context}: {exc}") from None

    def reseal(self, token: str | bytes, context: str) -> str | None:
        """``token`` sealed anew under the current key, or None if it already is."""
        try:
            if key_id_of(token) == self._keys().current.id:
                return None
        except SealError as exc:
            raise SecretBoxError(f"sealed {context}: {exc}") from None
        return self.seal(self.open(token, context), context)
