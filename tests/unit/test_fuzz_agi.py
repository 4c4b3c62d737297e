"""Fuzzing the FastAGI reader: the header block that opens a session, and Asterisk's replies to
every command our flows send (``ivr/agi/channel.py``).

Replies are lines built from what Asterisk really says (``200 result=``, ``HANGUP``, ``100
Trying``, ``510``, ``511``, ``520-`` usage blocks), with random data after them, random line
ends, lines cut off, and raw bytes. Whatever comes, a command returns or raises an ``AgiError``
(the flows' one way out of a call), and the reader takes one line per read: it never spins, and
a header block stops being read at its limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from hypothesis import given, strategies as st

from ivr.agi.channel import _MAX_HEADER_BYTES, AgiChannel, AgiError, read_agi_headers
from tests.fuzzing import FUZZ, mutations_of, reader_of

HEADERS = (b"agi_network: yes\nagi_network_script: selfservice\nagi_request: agi://127.0.0.1/x\n"
           b"agi_channel: PJSIP/6001-00000001\nagi_uniqueid: 1700000000.1\n"
           b"agi_callerid: 6001\n\n")
STATUSES = [b"200 result=", b"200 result=0", b"200 result=1", b"200 result=-1", b"200 result=35",
            b"200 result=1 (hangup)", b"200 result=0 (timeout)", b"200 result=1 (value)",
            b"100 result=0 Trying...", b"HANGUP", b"510 Invalid or unknown command",
            b"511 Command Not Permitted on a dead channel or intercept routine",
            b"520-Invalid command syntax.  Proper usage follows:", b" Usage: GET DATA",
            b"520 End of proper usage.", b"", b"2000 result=1", b"200 result=abc",
            b"200 result=99999999999999999999", b"200result=1", b"200 result=\xff\xfe"]
LINES = st.tuples(st.sampled_from(STATUSES),
                  st.one_of(st.just(b""), st.binary(max_size=12),
                            st.text(alphabet="0123456789*#-() =ab", max_size=12).map(str.encode)),
                  st.sampled_from([b"\n", b"\r\n", b"\r", b""])).map(b"".join)
REPLIES = st.one_of(
    st.lists(LINES, max_size=12).map(b"".join),
    st.binary(max_size=200),
    mutations_of([b"200 result=1\n200 result=0\n200 result=49\n200 result=1234\n",
                  b"HANGUP\n200 result=-1\n", b"520-Invalid\n Usage\n520 End of proper usage.\n"]),
)


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as loop_runner:
        yield loop_runner


class _Writer:
    """The commands' side of the socket: taken and forgotten."""

    def write(self, data: bytes) -> None:
        pass

    async def drain(self) -> None:
        pass


async def _every_command(channel: AgiChannel) -> None:
    await channel.answer()
    await channel.stream("welcome", "12")
    await channel.play("a", "b")
    (await channel.ask(["lead_in", "question"], 5000, 4))[:] = b""
    (await channel.get_secret_digits("enter_pin", 5000, 12))[:] = b""
    await channel.get_variable("PAY_ID")
    await channel.set_variable("PAY_RESULT", "ok")
    await channel.set_digit_timeout(3000)
    await channel.verbose("hello")
    await channel.hangup()


@FUZZ
@given(replies=REPLIES)
def test_every_command_returns_or_raises_an_agi_error(runner: asyncio.Runner,
                                                     replies: bytes) -> None:
    async def session() -> int:
        reader = reader_of(replies)
        channel = AgiChannel({}, reader, _Writer())  # type: ignore[arg-type]
        try:
            await _every_command(channel)
        except AgiError:
            pass
        return reader.reads

    reads = runner.run(session())
    # One read a line, and one more to find the end: never a spin.
    assert reads <= replies.count(b"\n") + 1


@FUZZ
@given(data=st.one_of(st.binary(max_size=300), mutations_of([HEADERS])))
def test_the_header_reader_returns_headers_or_refuses(runner: asyncio.Runner,
                                                      data: bytes) -> None:
    async def read() -> tuple[dict[str, str] | None, int]:
        reader = reader_of(data)
        try:
            return await read_agi_headers(reader), reader.reads
        except (ConnectionError, ValueError):
            return None, reader.reads

    headers, reads = runner.run(read())
    # One read a line, the last maybe cut short by the end, and one more to find the end.
    assert reads <= data.count(b"\n") + 2
    if headers is not None:
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())


@FUZZ
@given(line=st.integers(1, 4096), lines=st.integers(1, 400))
def test_a_huge_header_block_is_refused_at_its_limit(runner: asyncio.Runner, line: int,
                                                    lines: int) -> None:
    data = (b"agi_x: " + b"a" * line + b"\n") * lines  # up to 1.6 MB, no blank line
    reader = reader_of(data)

    async def read() -> None:
        with pytest.raises((ValueError, ConnectionError)):
            await read_agi_headers(reader)

    runner.run(read())
    assert reader.consumed <= _MAX_HEADER_BYTES + len(b"agi_x: \n") + line


@pytest.mark.parametrize("reply", [b"200 result=abc\n", b"200 result=\x00\n",
                                   b"200 result=99999999999999999999\n", b"200 result=256\n"])
def test_a_key_code_that_is_no_key_is_an_agi_error(runner: asyncio.Runner, reply: bytes) -> None:
    """Found by the fuzz: ``int()``/``chr()`` of such a code raised ValueError/OverflowError
    out of the flow instead of the AgiError that ends a call cleanly."""
    async def play_and_ask() -> None:
        with pytest.raises(AgiError):
            await AgiChannel({}, reader_of(reply), _Writer()).stream("welcome", "1")  # type: ignore[arg-type]
        with pytest.raises(AgiError):
            await AgiChannel({}, reader_of(reply), _Writer()).ask(["a", "b"], 1000, 4)  # type: ignore[arg-type]

    runner.run(play_and_ask())


async def _fed_until_done(work, reader: asyncio.StreamReader, chunk: bytes) -> int:
    """Feed ``reader`` ``chunk`` after ``chunk`` (up to 100 MB, never EOF) while ``work`` runs;
    how many bytes it took for ``work`` to finish."""
    task, fed = asyncio.ensure_future(work), 0
    while not task.done() and fed < 100 * 1024 * 1024:
        reader.feed_data(chunk)
        fed += len(chunk)
        await asyncio.sleep(0)  # one turn of the loop: the reader takes what was fed
    await task
    return fed


LIMIT = 2 ** 16  # asyncio.start_server's default line limit, which the FastAGI server uses
CHUNK = b"a" * 8192


def test_a_100_mb_reply_line_ends_the_call_at_the_line_limit(runner: asyncio.Runner) -> None:
    async def run() -> int:
        reader = asyncio.StreamReader(limit=LIMIT)
        channel = AgiChannel({}, reader, _Writer())  # type: ignore[arg-type]

        async def ask() -> None:
            with pytest.raises(AgiError):
                await channel.get_secret_digits("enter_pin", 5000, 12)

        return await _fed_until_done(ask(), reader, b"200 result=" + CHUNK)

    assert runner.run(run()) <= LIMIT + 2 * len(CHUNK) + 16


def test_a_100_mb_header_line_is_refused_at_the_line_limit(runner: asyncio.Runner) -> None:
    async def run() -> int:
        reader = asyncio.StreamReader(limit=LIMIT)

        async def read() -> None:
            with pytest.raises(ValueError):
                await read_agi_headers(reader)

        return await _fed_until_done(read(), reader, CHUNK)

    assert runner.run(run()) <= LIMIT + 2 * len(CHUNK)
