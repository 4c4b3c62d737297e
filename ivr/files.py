"""Private files written atomically: keys, tokens, the acquirer's card book.

A reader sees either the old file or the new one, never half of one, and the file is mode 0600
from the moment it exists (created with that mode, not chmod-ed after the secret is in it).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["write_private", "is_private"]


def write_private(path: Path, text: str | bytes, *, mode: int = 0o600, exclusive: bool = False) -> bool:
    """Write ``text`` to ``path`` atomically; returns False only when ``exclusive`` found a file.

    ``exclusive``: never replace an existing file (two processes generating the same key file at
    first start must agree on one; the loser reads the winner's). The temporary name is unique
    per call, so concurrent writers never write into each other's temporary file. ``text`` as
    str is written UTF-8; bytes are written as they are (a GBK file, say).
    """
    path = Path(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)  # the umask may have narrowed or, for 0644, kept it
            handle.write(text.encode() if isinstance(text, str) else text)
            handle.flush()
            os.fsync(handle.fileno())
        if not exclusive:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)  # link() fails if the name exists; rename() would replace it
        except FileExistsError:
            return False
        return True
    finally:
        tmp.unlink(missing_ok=True)


def is_private(path: Path) -> bool:
    """True if neither group nor others may read or write ``path``."""
    return not Path(path).stat().st_mode & 0o077
