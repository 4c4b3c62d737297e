"""Fuzzing the host link's readers, both sides: the 2-byte length framing, the ISO 8583 decoder
the IVR reads answers with, and the acquirer simulator reading requests.

Inputs are random bytes and, to get past the first checks, our own well-formed messages with a
few bytes changed, inserted, deleted, repeated or cut off. Whatever arrives, a reader returns a
message or raises its one documented error (``Iso8583Error``, ``FramingError``), whose text never
holds the card number; the simulator answers a well-formed message or nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from hypothesis import given, strategies as st

from ivr.hostlink.framing import MAX_FRAME, ConnectionClosed, FramingError, read_frame
from ivr.hostlink.messages import Iso8583Error, Message, decode_message
from simulators.acquirer.settings import load_acquirer_settings
from tests.fuzzing import FUZZ, mutations_of, reader_of
from tests.unit.test_acquirer_simulator import Harness
from tests.unit.test_iso8583 import PAN, all_messages

SEEDS = [message.encode() for message in all_messages()]  # type: ignore[attr-defined]
MESSAGES = st.one_of(st.binary(max_size=600), mutations_of(SEEDS))
MESSAGE_TYPES = sorted({type(m) for m in all_messages()}, key=lambda t: t.__name__)


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    """One event loop for every example: the simulator keeps futures across requests."""
    with asyncio.Runner() as loop_runner:
        yield loop_runner


@FUZZ
@given(raw=MESSAGES)
def test_the_decoder_returns_a_message_or_its_own_error(raw: bytes) -> None:
    for decode in [decode_message, *(kind.decode for kind in MESSAGE_TYPES)]:
        try:
            assert isinstance(decode(raw), Message)
        except Iso8583Error as exc:
            assert PAN not in str(exc)


def _frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(2, "big") + payload


def _reference_frames(data: bytes) -> tuple[list[bytes], bool]:
    """The frames in ``data`` by the framing's definition, and whether it ends cleanly."""
    frames, at = [], 0
    while at < len(data):
        if at + 2 > len(data):
            return frames, False
        length = int.from_bytes(data[at:at + 2], "big")
        if not 0 < length <= MAX_FRAME or at + 2 + length > len(data):
            return frames, False
        frames.append(data[at + 2:at + 2 + length])
        at += 2 + length
    return frames, True


STREAMS = st.one_of(
    st.binary(max_size=300),
    st.lists(st.one_of(mutations_of(SEEDS), st.binary(max_size=40)), max_size=4).map(
        lambda payloads: b"".join(_frame(p) for p in payloads)),
    mutations_of([b"".join(_frame(s) for s in SEEDS[:3])]),
    st.integers(MAX_FRAME + 1, 0xFFFF).map(lambda n: n.to_bytes(2, "big") + b"x" * 64),
)


@FUZZ
@given(data=STREAMS)
def test_framing_reads_what_is_there_then_stops(runner: asyncio.Runner, data: bytes) -> None:
    async def read_all() -> tuple[list[bytes], bool, int]:
        reader, frames = reader_of(data), []
        while True:
            try:
                frames.append(await read_frame(reader))
            except ConnectionClosed:
                return frames, True, reader.reads
            except FramingError:
                return frames, False, reader.reads

    frames, clean, reads = runner.run(read_all())
    assert (frames, clean) == _reference_frames(data)
    # Two reads a frame (prefix, payload) and one to find the end: never a spin.
    assert reads <= 2 * len(frames) + 2


@pytest.fixture(scope="module")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Harness:
    return Harness(load_acquirer_settings(var_dir=tmp_path_factory.mktemp("acquirer"),
                                          issuer_delay=0))


@FUZZ
@given(raw=MESSAGES)
def test_the_simulator_answers_a_well_formed_message_or_nothing(
        runner: asyncio.Runner, simulator: Harness, raw: bytes) -> None:
    answer = runner.run(simulator.sim.handle(raw))
    if answer is not None:
        assert isinstance(decode_message(answer), Message)
        assert PAN.encode() not in answer  # a response never echoes the card number
