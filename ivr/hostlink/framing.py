"""Frames on the host link: a 2-byte big-endian length, then one ISO 8583 message."""

from __future__ import annotations

import asyncio

__all__ = ["MAX_FRAME", "FramingError", "ConnectionClosed", "read_frame", "write_frame"]

# Our messages are a few hundred bytes; a larger length means a desynchronised or hostile peer.
MAX_FRAME = 4096


class FramingError(Exception):
    """The byte stream does not hold a well-formed frame."""


class ConnectionClosed(FramingError):
    """The peer closed the connection cleanly between two frames."""


async def read_frame(reader: asyncio.StreamReader, *, max_size: int = MAX_FRAME) -> bytes:
    """The next message. A close between frames is ConnectionClosed; inside one, FramingError."""
    try:
        prefix = await reader.readexactly(2)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            raise ConnectionClosed("peer closed the connection") from None
        raise FramingError("connection closed inside a length prefix") from None
    length = int.from_bytes(prefix, "big")
    if length == 0:
        raise FramingError("empty frame")
    if length > max_size:
        raise FramingError(f"frame of {length} bytes exceeds the {max_size}-byte limit")
    try:
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError as exc:
        raise FramingError(f"connection closed after {len(exc.partial)} of {length} bytes") from None


def write_frame(writer: asyncio.StreamWriter, payload: bytes) -> None:
    """Queue one framed message; the caller awaits ``writer.drain()``.

    Prefix and payload go out in a single write so concurrent answers on one connection cannot
    interleave.
    """
    if not payload:
        raise FramingError("empty frame")
    if len(payload) > MAX_FRAME:
        raise FramingError(f"frame of {len(payload)} bytes exceeds the {MAX_FRAME}-byte limit")
    writer.write(len(payload).to_bytes(2, "big") + bytes(payload))
