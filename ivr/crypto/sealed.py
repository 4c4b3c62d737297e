"""AES-GCM tokens that name their key: ``<key id>.<base64url(nonce | ciphertext | tag)>``.

The card-number vault and the merchant-secret box both seal short values under a key ring
(:mod:`ivr.crypto.keyring`): new tokens under the current key, each token opened under the key
id it names, so a rotation leaves every older token readable until its key is retired. A token
without an id (written before keys had ids) was sealed under version 1.

    >>> from ivr.crypto.keyring import KeyRing
    >>> ring = KeyRing.single("pan_key", bytes(32))
    >>> token = seal(ring, b"secret", b"context")
    >>> token.startswith("1."), open_sealed(ring, token, b"context")
    (True, b'secret')
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ivr.crypto.keyring import KeyRing, KeyUnavailable

__all__ = ["SealError", "SealKeyUnavailable", "SealMismatch", "seal", "open_sealed", "key_id_of"]

_NONCE_LEN = 12
_TAG_LEN = 16


class SealError(Exception):
    """A token could not be sealed or opened. Never carries the value or the token."""


class SealKeyUnavailable(SealError):
    """The token names a key id that is retired or unknown."""


class SealMismatch(SealError):
    """The token does not open under the key it names for this context (tampered, swapped)."""


def seal(ring: KeyRing, plain: bytes, aad: bytes) -> str:
    current = ring.current
    assert current.key is not None  # the current version is active
    nonce = os.urandom(_NONCE_LEN)
    sealed = _aead(current.key).encrypt(nonce, bytes(plain), aad)
    return f"{current.id}.{base64.urlsafe_b64encode(nonce + sealed).decode('ascii')}"


def key_id_of(token: str | bytes) -> int:
    """The key id a token names (1 for a token from before key ids)."""
    text = _text(token)
    head, dot, _ = text.partition(".")
    if not dot:
        return 1
    if not (head.isascii() and head.isdigit() and 1 <= len(head) <= 2):
        raise SealError("token names no valid key id")
    return int(head)


def open_sealed(ring: KeyRing, token: str | bytes, aad: bytes) -> bytes:
    """The value in ``token``; SealError if it is malformed, its key is retired or unknown
    (the message says which key), or it was not sealed for ``aad`` under that key."""
    text = _text(token)
    key_id = key_id_of(text)
    body = text.partition(".")[2] or text
    try:
        raw = base64.urlsafe_b64decode(body.encode("ascii"))
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise SealError("token is not valid base64") from None
    if len(raw) < _NONCE_LEN + _TAG_LEN:
        raise SealError("token is too short")
    try:
        key = ring.key(key_id)
    except KeyUnavailable as exc:
        raise SealKeyUnavailable(f"token was sealed under {exc}") from None
    try:
        return _aead(key).decrypt(raw[:_NONCE_LEN], raw[_NONCE_LEN:], aad)
    except InvalidTag:
        raise SealMismatch("token does not open (wrong key or context)") from None


def _text(token: str | bytes) -> str:
    if isinstance(token, (bytes, bytearray)):
        try:
            return bytes(token).decode("ascii")
        except UnicodeDecodeError:
            raise SealError("token is not ASCII") from None
    if not isinstance(token, str):
        raise SealError("token is not text")
    return token


def _aead(key: bytes) -> AESGCM:
    try:
        return AESGCM(key)
    except ValueError:
        raise SealError("key is not an AES key") from None
