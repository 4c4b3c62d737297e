"""Keyed digests (HMAC-SHA256) under a key role that rotates.

Digests stand in for values Redis must never hold (card, mobile and ID numbers) and are looked
up: a list entry, a returning cardholder, a velocity counter, a step-up answer. New digests are
made under the current key; a lookup tries the digest under every readable (active) version, so
what was recorded before a rotation is still found until the old key is retired. After that it
is no longer found: what was recorded under a retired key is forgotten, by design.

    >>> from ivr.crypto.keyring import KeyRing
    >>> digests = KeyedDigest(KeyRing.single("cardholder_key", bytes(32)))
    >>> digests.all(b"card:", b"6221881000000011") == [digests.current(b"card:", b"6221881000000011")]
    True
"""

from __future__ import annotations

import hashlib
import hmac

from ivr.crypto.keyring import KeySource, as_key_source

__all__ = ["KeyedDigest"]


class KeyedDigest:
    """``key``: the role's ring source (a watched key file), or one key (tests, tools). Parts
    are fed to the HMAC one by one, so a caller's bytearray is never copied."""

    def __init__(self, key: bytes | KeySource, role: str = "cardholder_key") -> None:
        self._keys = as_key_source(key, role)

    def __repr__(self) -> str:
        return "KeyedDigest(key=<hidden>)"

    def current(self, *parts: bytes | bytearray) -> str:
        """The digest new records are made with."""
        return _hmac(self._keys().current.key, parts)

    def all(self, *parts: bytes | bytearray) -> list[str]:
        """The digest under every readable key, the current one first: what a lookup tries."""
        return [_hmac(version.key, parts) for version in self._keys().readable]

    def matches(self, expected: str, *parts: bytes | bytearray) -> bool:
        """Whether ``expected`` is the digest of ``parts`` under any readable key."""
        found = False
        for digest in self.all(*parts):  # no early exit: the time does not say which key
            found |= hmac.compare_digest(digest, expected)
        return found


def _hmac(key: bytes | None, parts: tuple[bytes | bytearray, ...]) -> str:
    assert key is not None  # readable versions are active: they hold their key
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for part in parts:
        mac.update(part)
    return mac.hexdigest()
