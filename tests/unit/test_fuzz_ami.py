"""Fuzzing the AMI reader: the text Asterisk's manager interface sends, as ``AmiClient``'s
protocol (``ivr/ami/protocol.py``) reads it, into panoramisk's dispatch, the dialer's event
handlers and the reply ``AmiClient.originate`` waits for.

Streams are messages built from the headers we use (``Event``, ``Response``, ``ActionID``,
``Uniqueid``, ``Reason``...), repeated headers, broken line ends and random text, delivered in
arbitrary pieces. Whatever comes, ``data_received`` never raises, every header a handler sees is
a ``str``, the text kept waiting for the end of a message never exceeds ``MAX_MESSAGE``, and an
originate gets its answer in words or keeps waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import given, strategies as st
from panoramisk import Manager

from ivr.ami.client import AmiClient
from ivr.ami.protocol import MAX_MESSAGE, AmiProtocol, parse_message
from ivr.callback.dialer import Dialer
from ivr.config import load_settings
from tests.fuzzing import FUZZ, chunked

SETTINGS = load_settings(ami_port=9)  # nothing listens: the manager never really connects
ACTION_ID = "orig-1"
CHANNEL_ID = "vp-pay_1-1"

KEYS = st.sampled_from(["Event", "Response", "ActionID", "Uniqueid", "Cause", "ChannelStateDesc",
                        "Reason", "Message", "EventList", "SubEvent", "Channel", "CommandID",
                        "event", "Output"])
VALUES = st.one_of(
    st.sampled_from(["OriginateResponse", "Success", "Error", "Failure", "Follows", "Hangup",
                     "Newstate", "Ringing", "Shutdown", ACTION_ID, CHANNEL_ID, "start",
                     "CoreShowChannelsComplete", "End", "Channels will follow", "5", ""]),
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=12))
HEADER = st.tuples(KEYS, st.sampled_from([": ", ":", " : "]), VALUES).map("".join)
MESSAGE = st.tuples(st.lists(HEADER, min_size=1, max_size=6).map("\r\n".join),
                    st.sampled_from(["\r\n\r\n", "\n\n", "\r\n", ""])).map("".join)
STREAMS = st.one_of(
    st.lists(MESSAGE, max_size=8).map(lambda ms: "".join(ms).encode()),
    st.binary(max_size=300),
    st.just(b"Asterisk Call Manager/9.0.0\r\n"),
).flatmap(chunked)


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as loop_runner:
        yield loop_runner


class _Manager(Manager):
    """panoramisk's Manager as the factory of one protocol we feed; it never dials out."""

    def connect(self, run_forever: bool = False) -> None:
        pass


class _Transport:
    def __init__(self) -> None:
        self.closed = False

    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        self.closed = True


class Session:
    """An AmiClient over a protocol wired as panoramisk's Manager wires it, with the dialer's
    handlers registered and an originate waiting for its reply."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.manager = _Manager(loop=loop, protocol_factory=AmiProtocol)
        self.ami = AmiClient(SETTINGS)
        self.ami.manager, self.ami._logged_in = self.manager, True
        # Its handlers only look the channel up; no payment is read or written (no store), and a
        # Redis client connects only when used.
        dialer = Dialer(self.ami, None, aioredis.Redis(), SETTINGS)  # type: ignore[arg-type]
        dialer._hangup_causes[CHANNEL_ID] = loop.create_future()
        self.ami.on_event("Hangup", dialer._on_hangup)
        self.ami.on_event("Newstate", dialer._on_newstate)
        self.events: list[Any] = []
        self.manager.register_event("*", lambda _manager, event: self.events.append(event))
        self.transport = _Transport()
        self.protocol = AmiProtocol()
        self.protocol.connection_made(self.transport)
        self.protocol.factory = self.manager
        self.protocol.encoding = "utf8"
        self.manager.protocol = self.protocol
        self.manager.responses = self.protocol.responses

    def originate(self) -> asyncio.Task:
        return asyncio.create_task(self.ami.originate(
            action_id=ACTION_ID, channel="PJSIP/x", channel_id=CHANNEL_ID, context="pay-callback",
            variables={}, timeout_ms=1000, caller_name="x", caller_number="1"))

    def feed(self, pieces: list[bytes]) -> None:
        for piece in pieces:
            if self.transport.closed:  # a closed socket delivers nothing more
                return
            self.protocol.data_received(piece)


@FUZZ
@given(pieces=STREAMS)
def test_any_stream_is_read_without_an_exception(runner: asyncio.Runner,
                                                  pieces: list[bytes]) -> None:
    async def run() -> None:
        session = Session()
        originate = session.originate()
        await asyncio.sleep(0)  # one turn of the loop: the Originate action is sent
        session.feed(pieces)
        await asyncio.sleep(0)
        for event in session.events:
            assert all(isinstance(value, str) for value in event.values()), event
        assert len(session.protocol._pending) <= MAX_MESSAGE
        if originate.done():
            assert isinstance(originate.result(), str)
        originate.cancel()

    runner.run(run())


def test_a_repeated_header_keeps_its_first_value() -> None:
    message = parse_message("Event: Hangup\r\nUniqueid: a\r\nUniqueid: b\r\nEvent: Newstate")
    assert message is not None and message["Uniqueid"] == "a" and message["Event"] == "Hangup"


def test_a_repeated_event_header_is_dispatched_not_fatal(runner: asyncio.Runner) -> None:
    """Found by the fuzz: with panoramisk's own protocol this raised inside data_received
    (``regexp.match`` of a list), and asyncio dropped the AMI connection."""
    async def run() -> list[Any]:
        session = Session()
        session.feed([b"Event: Hangup\r\nEvent: Hangup\r\nUniqueid: " + CHANNEL_ID.encode()
                      + b"\r\nUniqueid: x\r\nCause: 16\r\n\r\n"])
        return session.events

    events = runner.run(run())
    assert [e["Uniqueid"] for e in events] == [CHANNEL_ID]


def test_100_mb_without_an_end_of_message_closes_the_connection_early(
        runner: asyncio.Runner) -> None:
    async def run() -> int:
        session = Session()
        chunk, fed = b"Event: Hangup\r\nX: " + b"a" * 65536, 0
        while not session.transport.closed and fed < 100 * 1024 * 1024:
            session.feed([chunk])
            fed += len(chunk)
        assert session.transport.closed
        return fed

    assert runner.run(run()) <= MAX_MESSAGE + 2 * 65536


def test_the_client_reads_with_this_protocol(runner: asyncio.Runner) -> None:
    async def run() -> None:
        ami = AmiClient(SETTINGS)
        await ami.start()
        try:
            assert ami.manager is not None
            assert ami.manager.config["protocol_factory"] is AmiProtocol
        finally:
            await ami.close()

    runner.run(run())
