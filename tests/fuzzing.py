"""What the property-based fuzz tests share: one bounded, repeatable Hypothesis profile, byte
mutations of known-good input, and a stream reader fed in arbitrary pieces that counts its reads.

Bounded: every fuzz test ends its input with EOF (or a size limit) and counts the reads a parser
makes, so "never hangs or spins" is asserted as a number of steps, not a clock. Repeatable:
``derandomize`` (the same examples on every run) and no example database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from hypothesis import HealthCheck, settings, strategies as st

__all__ = ["FUZZ", "mutations_of", "chunked", "CountingReader", "reader_of"]

FUZZ = settings(max_examples=400, derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@st.composite
def mutations_of(draw: st.DrawFn, seeds: Sequence[bytes], max_edits: int = 4) -> bytes:
    """One of ``seeds`` with up to ``max_edits`` byte edits: changed, inserted, deleted,
    duplicated runs, or cut short. Random bytes alone rarely get past a parser's first check."""
    data = bytearray(draw(st.sampled_from(list(seeds))))
    for _ in range(draw(st.integers(0, max_edits))):
        at = draw(st.integers(0, len(data)))
        edit = draw(st.sampled_from(["set", "insert", "delete", "repeat", "cut"]))
        if edit == "set" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif edit == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif edit == "delete":
            del data[at:at + draw(st.integers(1, 8))]
        elif edit == "repeat":
            data[at:at] = data[at:at + draw(st.integers(1, 32))] * draw(st.integers(1, 4))
        elif edit == "cut":
            del data[at:]
    return bytes(data)


@st.composite
def chunked(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """``data`` in the pieces a socket might deliver it in."""
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(data) - 1)), max_size=6)))
    bounds = [0, *[c for c in cuts if c < len(data)], len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


class CountingReader(asyncio.StreamReader):
    """A stream reader that counts the reads made of it and the bytes they returned, to bound
    a parser's steps and what it takes in."""

    def __init__(self, limit: int = 2 ** 16) -> None:
        super().__init__(limit=limit)
        self.reads = 0
        self.consumed = 0

    async def readline(self) -> bytes:
        self.reads += 1
        line = await super().readline()
        self.consumed += len(line)
        return line

    async def readexactly(self, n: int) -> bytes:
        self.reads += 1
        data = await super().readexactly(n)
        self.consumed += len(data)
        return data


def reader_of(data: bytes, limit: int = 2 ** 16) -> CountingReader:
    """A reader holding ``data`` and then EOF: nothing a parser reads can block forever.
    Call it inside the running event loop."""
    reader = CountingReader(limit)
    reader.feed_data(data)
    reader.feed_eof()
    return reader
