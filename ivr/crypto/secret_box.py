"""Secrets at rest: AES-GCM under a key of their own, each sealed value bound to its context.

Merchants' API keys and webhook secrets are stored in Redis sealed with this box. The context
(merchant id and the secret's role) is the GCM associated data, so a sealed value copied onto
another merchant, or from the webhook secret onto the API key, does not open.

The key is 32 random bytes in hex, generated at first use into a private file (mode 0600,
``settings.merchant_secrets_key_file``) and never replaced.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ivr.files import is_private, write_private

__all__ = ["SecretBoxError", "SecretBox", "load_or_create_box_key"]

_NONCE_LEN = 12
_TAG_LEN = 16
_KEY_BYTES = 32


class SecretBoxError(Exception):
    """A secret could not be sealed or opened. Never carries the secret or the sealed text."""


class SecretBox:
    def __init__(self, key: bytes) -> None:
        if not isinstance(key, (bytes, bytearray)) or len(key) != _KEY_BYTES:
            raise SecretBoxError("the secret box key must be 32 bytes (AES-256)")
        self._aead = AESGCM(bytes(key))

    def __repr__(self) -> str:
        return "SecretBox(key=<hidden>)"

    def seal(self, secret: bytes, context: str) -> str:
        """An opaque text token for ``secret`` that only opens for ``context``."""
        nonce = os.urandom(_NONCE_LEN)
        sealed = self._aead.encrypt(nonce, bytes(secret), context.encode("utf-8"))
        return base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, token: str | bytes, context: str) -> bytes:
        try:
            raw = base64.urlsafe_b64decode(token)
        except (TypeError, binascii.Error, ValueError):
            raise SecretBoxError(f"sealed {context} is not valid base64") from None
        if len(raw) < _NONCE_LEN + _TAG_LEN:
            raise SecretBoxError(f"sealed {context} is too short")
        try:
            return self._aead.decrypt(raw[:_NONCE_LEN], raw[_NONCE_LEN:], context.encode("utf-8"))
        except InvalidTag:
            raise SecretBoxError(f"sealed {context} does not open (wrong key or context)") from None


def load_or_create_box_key(path: Path) -> bytes:
    """The key in ``path``, generated there first if missing (exclusive: two processes starting
    together agree on one)."""
    if not path.exists():
        write_private(path, secrets.token_hex(_KEY_BYTES) + "\n", exclusive=True)
    if not is_private(path):
        raise SecretBoxError(f"secret box key file {path} is readable by others; chmod 600 it")
    try:
        key = bytes.fromhex(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        raise SecretBoxError(f"secret box key file {path} is unreadable") from None
    if len(key) != _KEY_BYTES:
        raise SecretBoxError(f"secret box key file {path} holds no 32-byte key")
    return key
