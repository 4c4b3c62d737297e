"""The versions of one key role, and a key file that is re-read when it changes.

A :class:`KeyRing` holds every version of one role (``pek``, ``pan_key``...) a key file keeps:
each has a key id (its TR-31 key version number, 1 to 99) and a check value. Versions are
``active`` or ``retired``. The newest active version is the *current* one: everything new is
made under it (a PIN block, a sealed card number, a digest). Older active versions are still
read (a card number sealed yesterday opens, a digest made yesterday is looked up) until they are
retired; a retired version keeps only its id and check value, the key itself is gone.

:class:`KeyFileWatch` is how a running process picks up a rotation without a restart: every use
asks it for the keys, and it re-reads the file when the file's mtime, inode or size changed (one
``stat`` per use, no background task; the key CLI replaces the file atomically, so a reader sees
the old file or the new one). A file that fails to load keeps the keys already held, loudly in
the log: a bad edit must not take payments down.

    >>> ring = KeyRing.single("pan_key", bytes(32))
    >>> ring.current.id, ring.key(1) == bytes(32)
    (1, True)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

__all__ = ["ACTIVE", "RETIRED", "KeyUnavailable", "KeyVersion", "KeyRing", "KeySource",
           "as_key_source", "KeyFileWatch"]

log = logging.getLogger(__name__)

ACTIVE = "active"
RETIRED = "retired"


class KeyUnavailable(Exception):
    """A key id that is retired or was never issued. Names the role and id, never key material."""


@dataclass(frozen=True, repr=False)
class KeyVersion:
    id: int
    state: str
    kcv: str
    key: bytes | None  # None once retired: the key is destroyed, its id and check value stay

    def __repr__(self) -> str:
        return f"KeyVersion(id={self.id}, state={self.state!r}, kcv={self.kcv!r})"


@dataclass(frozen=True, repr=False)
class KeyRing:
    role: str
    versions: tuple[KeyVersion, ...]  # by id, oldest first; at least one active

    @classmethod
    def single(cls, role: str, key: bytes) -> KeyRing:
        """One active version, id 1: a key given directly (tests, tools)."""
        return cls(role, (KeyVersion(1, ACTIVE, "", bytes(key)),))

    def __call__(self) -> KeyRing:
        """A ring is its own (fixed) :data:`KeySource`."""
        return self

    def __repr__(self) -> str:
        return f"KeyRing({self.role!r}, {list(self.versions)!r})"

    @property
    def current(self) -> KeyVersion:
        """The newest active version: what everything new is made under."""
        return self.readable[0]

    @property
    def readable(self) -> tuple[KeyVersion, ...]:
        """The active versions, newest first: what a lookup or a decryption may try."""
        return tuple(v for v in reversed(self.versions) if v.state == ACTIVE)

    def key(self, key_id: int) -> bytes:
        for version in self.versions:
            if version.id == key_id:
                if version.key is None:
                    raise KeyUnavailable(f"{self.role} key {key_id} is retired")
                return version.key
        raise KeyUnavailable(f"{self.role} key {key_id} is unknown")


# Where a consumer gets its role's keys each time it needs them: a fixed ring, or one read
# from a watched key file.
KeySource = Callable[[], KeyRing]


def as_key_source(key: bytes | KeySource, role: str) -> KeySource:
    """A source for a plain key (one fixed version, id 1) or the source itself."""
    if isinstance(key, (bytes, bytearray)):
        return KeyRing.single(role, key)
    return key


Keys = TypeVar("Keys")


class KeyFileWatch(Generic[Keys]):
    """The keys in ``path``, re-read when the file changes. Loads once at construction, where a
    bad file raises (nothing to keep yet)."""

    def __init__(self, path: Path, load: Callable[[Path], Keys]) -> None:
        self._path = Path(path)
        self._load = load
        self._seen = self._signature()
        self._keys = load(self._path)
        self._failed: tuple[int, int, int] | None = None

    def __repr__(self) -> str:
        return f"KeyFileWatch({str(self._path)!r})"

    def __call__(self) -> Keys:
        signature = self._signature()
        if signature != self._seen and signature != self._failed:
            try:
                self._keys = self._load(self._path)
            except Exception as exc:  # noqa: BLE001 - any failure keeps the keys in hand
                self._failed = signature
                log.error("key file %s changed but does not load (%s): keeping the keys loaded "
                          "before", self._path, exc)
            else:
                self._seen, self._failed = signature, None
                log.info("key file %s re-read: %r", self._path, self._keys)
        return self._keys

    def ring(self, role: str) -> KeySource:
        """A source of one role's ring from this file (its keys have ``ring(role)``)."""
        return lambda: self().ring(role)  # type: ignore[attr-defined]

    def _signature(self) -> tuple[int, int, int]:
        try:
            stat = os.stat(self._path)
        except OSError:
            return (0, 0, 0)
        return (stat.st_mtime_ns, stat.st_ino, stat.st_size)
