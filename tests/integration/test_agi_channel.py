"""AgiChannel against raw TCP peers that misbehave the way a real connection can.

Each peer answers the IVR's commands with bytes given verbatim, so a test says exactly what came
down the wire: a usage error and then nothing, half a reply line, a reset. A peer that closes at a
bad moment must end the session with ``AgiHangup`` (the flows abandon the payment on it) and leave
the event loop running; the cases that froze the loop are run in a child process that a watchdog
kills, so a regression fails this test instead of hanging the suite.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from ivr.agi.channel import (
    AgiChannel,
    AgiDeadChannel,
    AgiHangup,
    AgiUsageError,
    quote_agi_argument,
)
from ivr.config import REPO_ROOT
from tests.integration import test_selfservice_fastagi as selfservice_harness
from tests.integration.fake_asterisk import DEAD_CHANNEL, asks, reset_connection
from tests.integration.test_selfservice_fastagi import APPROVE, Ivr, order

ivr = selfservice_harness.ivr  # the self-service FastAGI fixture, for the one flow-level test

USAGE_FOLLOWS = b"520-Invalid command syntax.  Proper usage follows:\n"
USAGE_TEXT = b" Usage: SET VARIABLE <variablename> <value>\n"
END_OF_USAGE = b"520 End of proper usage.\n"
# Long enough for a child Python to start; only a frozen loop ever reaches it.
WATCHDOG_SECONDS = 20
# A healthy channel answers at once; this only bounds a test that would otherwise wait forever.
REPLY_WAIT = 5


class RawPeer:
    """Asterisk's end in raw bytes: the n-th command gets ``answers[n]``; then it closes."""

    def __init__(self, answers: tuple[bytes, ...]) -> None:
        self.answers = answers
        self.received: list[bytes] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for answer in self.answers:
            self.received.append(await reader.readline())
            writer.write(answer)
            await writer.drain()
        writer.close()


@asynccontextmanager
async def channel_to(*answers: bytes) -> AsyncIterator[tuple[AgiChannel, RawPeer]]:
    peer = RawPeer(answers)
    server = await asyncio.start_server(peer.serve, "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname()[:2])
    try:
        yield AgiChannel({"agi_uniqueid": "1715000000.1"}, reader, writer), peer
    finally:
        writer.close()
        server.close()


# --- the peer closes at a bad moment --------------------------------------------------------


async def peer_closes_after(answer: bytes) -> str:
    """Send one command to a peer that answers ``answer`` and closes; say how the channel ended.

    Run in a child process by the watchdog below (the old reader spun here without yielding).
    """
    async with channel_to(answer) as (channel, _):
        try:
            await asyncio.wait_for(channel.set_variable("X", "1"), REPLY_WAIT)
        except AgiHangup:
            # Once gone, gone: the next command fails at once, without touching the socket.
            with pytest.raises(AgiHangup, match="already hung up"):
                await channel.verbose("still there?")
            return f"AgiHangup hung_up={channel.hung_up}"
        return "no error"


def _in_watchdogged_process(answer: bytes) -> str:
    code = ("import asyncio, tests.integration.test_agi_channel as t; "
            f"print(asyncio.run(t.peer_closes_after({answer!r})))")
    try:
        done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=WATCHDOG_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the event loop froze: no answer in {WATCHDOG_SECONDS}s (child killed)")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize("answer", [
    pytest.param(USAGE_FOLLOWS, id="usage-error-then-close"),
    pytest.param(USAGE_FOLLOWS + USAGE_TEXT[:12], id="close-mid-usage-text"),
])
def test_peer_closing_during_a_usage_error_is_a_hang_up_and_the_loop_lives(answer: bytes) -> None:
    assert _in_watchdogged_process(answer) == "AgiHangup hung_up=True"


@pytest.mark.parametrize("answer", [
    pytest.param(b"200 resu", id="half-a-reply-line"),
    pytest.param(b"", id="no-reply"),
    pytest.param(b"HANGUP\n", id="hangup-then-close"),
])
async def test_peer_closing_mid_reply_is_a_hang_up(answer: bytes) -> None:
    assert await peer_closes_after(answer) == "AgiHangup hung_up=True"


async def test_reset_during_get_data_for_a_pin_is_a_hang_up() -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        reset_connection(writer)

    server = await asyncio.start_server(reset, "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname()[:2])
    channel = AgiChannel({}, reader, writer)
    try:
        with pytest.raises(AgiHangup, match="connection lost"):
            await asyncio.wait_for(channel.get_secret_digits("enter_pin", 10000, 12), REPLY_WAIT)
        assert channel.hung_up
    finally:
        writer.close()
        server.close()


class _BrokenWriter:
    """A writer whose connection is gone: what drain() does once Asterisk reset the socket."""

    def write(self, data: bytes) -> None:
        pass

    async def drain(self) -> None:
        raise ConnectionResetError("Connection reset by peer")


@pytest.mark.parametrize("send", [
    pytest.param(lambda channel: channel.get_secret_digits("enter_pin", 10000, 12), id="pin"),
    pytest.param(lambda channel: channel.ask(["topup_welcome", "enter_card"], 10000, 20),
                 id="question"),
])
async def test_a_failed_drain_is_a_hang_up(send) -> None:
    channel = AgiChannel({}, asyncio.StreamReader(), _BrokenWriter())  # type: ignore[arg-type]

    with pytest.raises(AgiHangup, match="connection lost"):
        await send(channel)
    assert channel.hung_up


# --- replies that go on: the next reply is the next command's --------------------------------


async def test_usage_error_with_its_text_leaves_the_next_reply_in_step() -> None:
    async with channel_to(USAGE_FOLLOWS + USAGE_TEXT + END_OF_USAGE,
                          b"200 result=1 (13800000001)\n") as (channel, _):
        with pytest.raises(AgiUsageError):
            await asyncio.wait_for(channel.command("SET VARIABLE"), REPLY_WAIT)
        assert await asyncio.wait_for(channel.get_variable("MOBILE"), REPLY_WAIT) == "13800000001"


async def test_usage_error_without_usage_text_is_one_line() -> None:
    # Asterisk's answer for a command with no usage text: no "520-", nothing follows.
    async with channel_to(b"520 Invalid command syntax.  Proper usage not available.\n",
                          b"200 result=1 (13800000001)\n") as (channel, _):
        with pytest.raises(AgiUsageError):
            await asyncio.wait_for(channel.command("SET VARIABLE"), REPLY_WAIT)
        assert await asyncio.wait_for(channel.get_variable("MOBILE"), REPLY_WAIT) == "13800000001"


# --- secret digits --------------------------------------------------------------------------


@pytest.mark.parametrize(("answer", "digits"), [
    (b"200 result=1234\n", b"1234"),
    (b"200 result=123456 (timeout)\n", b"123456"),
    (b"200 result= (timeout)\n", b""),
    (b"100 result=0 Trying...\n200 result=4321\n", b"4321"),
])
async def test_secret_digits_come_back_in_a_bytearray(answer: bytes, digits: bytes) -> None:
    async with channel_to(answer) as (channel, peer):
        entered = await asyncio.wait_for(channel.get_secret_digits("enter_pin", 10000, 12),
                                         REPLY_WAIT)
    assert type(entered) is bytearray and entered == digits
    assert peer.received == [b'GET DATA "enter_pin" 10000 12\n']


@pytest.mark.parametrize(("answer", "error"), [
    (b"HANGUP\n200 result=-1\n", AgiHangup),
    (b"200 result=-1\n", AgiHangup),
    (f"{DEAD_CHANNEL}\n".encode(), AgiDeadChannel),
])
async def test_secret_digits_after_a_hang_up(answer: bytes, error: type[AgiHangup]) -> None:
    async with channel_to(answer) as (channel, _):
        with pytest.raises(error):
            await asyncio.wait_for(channel.get_secret_digits("enter_pin", 10000, 12), REPLY_WAIT)
        assert channel.hung_up


# --- arguments as Asterisk reads them -------------------------------------------------------


def asterisk_parse_args(line: str) -> list[str]:
    """Asterisk's ``parse_args`` (res/res_agi.c), transliterated: how it splits a command line.

    Outside quotes, spaces and tabs separate words; a double quote toggles quoting (and starts a
    word when it opens after a space); a backslash makes the next character literal.
    """
    argv: list[str] = []
    quoted = escaped = False
    whitespace = True
    for char in line:
        if char == '"' and not escaped:
            quoted = not quoted
            if quoted and whitespace:
                argv.append("")
                whitespace = False
            continue
        if char in " \t" and not quoted and not escaped:
            whitespace = True
            continue
        if char == "\\" and not escaped:
            escaped = True
            continue
        if whitespace:
            argv.append("")
            whitespace = False
        argv[-1] += char
        escaped = False
    return argv


AWKWARD_VALUES = ['say "hello"', "C:\\temp\\", 'ends with a backslash \\', 'a\\"b', "", "  ",
                  "tab\there", "payment 7f3a-01"]


def test_the_transliterated_parser_reads_asterisks_own_examples() -> None:
    # Control: the lines Asterisk's documentation and our own code have always sent.
    assert asterisk_parse_args('STREAM FILE welcome "#"') == ["STREAM", "FILE", "welcome", "#"]
    assert asterisk_parse_args('SET VARIABLE RESULT "success"') == ["SET", "VARIABLE", "RESULT",
                                                                     "success"]
    assert asterisk_parse_args('VERBOSE "a\\"b" 3') == ["VERBOSE", 'a"b', "3"]


@pytest.mark.parametrize("value", AWKWARD_VALUES)
async def test_set_variable_value_reaches_asterisk_unchanged(value: str) -> None:
    async with channel_to(b"200 result=1\n") as (channel, peer):
        await asyncio.wait_for(channel.set_variable("VOICEPAY_NOTE", value), REPLY_WAIT)
    [line] = peer.received
    assert asterisk_parse_args(line.decode().rstrip("\n")) == ["SET", "VARIABLE", "VOICEPAY_NOTE",
                                                               value]


@pytest.mark.parametrize("value", AWKWARD_VALUES)
async def test_verbose_message_reaches_asterisk_unchanged(value: str) -> None:
    async with channel_to(b"200 result=1\n") as (channel, peer):
        await asyncio.wait_for(channel.verbose(value, 2), REPLY_WAIT)
    [line] = peer.received
    assert asterisk_parse_args(line.decode().rstrip("\n")) == ["VERBOSE", value, "2"]


@pytest.mark.parametrize("value", ['x"\nHANGUP', "two\nlines", "cr\r", "nul\0"])
async def test_a_line_break_is_refused_before_anything_is_sent(value: str) -> None:
    async with channel_to(b"200 result=1\n") as (channel, peer):
        with pytest.raises(ValueError, match="line break"):
            await channel.set_variable("VOICEPAY_NOTE", value)
        with pytest.raises(ValueError, match="line break"):
            await channel.verbose(value)
        await asyncio.wait_for(channel.set_variable("VOICEPAY_NOTE", "ok"), REPLY_WAIT)
    assert peer.received == [b'SET VARIABLE VOICEPAY_NOTE "ok"\n']


@pytest.mark.parametrize("name", ["TWO WORDS", 'Q"', "LINE\nBREAK", ""])
async def test_a_variable_name_that_needs_quoting_is_refused(name: str) -> None:
    async with channel_to() as (channel, peer):
        with pytest.raises(ValueError, match="not a dialplan variable name"):
            await channel.set_variable(name, "1")
    assert peer.received == []


def test_quote_agi_argument_examples() -> None:
    assert quote_agi_argument('a"b\\c') == '"a\\"b\\\\c"'
    assert quote_agi_argument("") == '""'


# --- the flow: a reset at the PIN prompt abandons the payment --------------------------------


async def test_connection_reset_at_the_pin_prompt_abandons_the_payment(ivr: Ivr) -> None:
    caller = await ivr.call(*order(APPROVE), asks("enter_pin", reset=True))

    assert caller.prompts[-1] == "enter_pin" and caller.hung_up_by == "caller"
    payment = await ivr.the_payment()
    assert payment.status == "abandoned"
    assert await ivr.states(payment) == ["created", "pin_entry", "abandoned"]
    assert await ivr.store.pan_token(payment.id) is None
    assert ivr.journal() == []
    assert ivr.flows.endings == ["AgiHangup"]


# --- a question: keys during every prompt that leads to it ---------------------------------

LISTENS = b' "0123456789*#"\n'


async def test_a_key_during_a_lead_in_starts_the_answer() -> None:
    async with channel_to(b"200 result=0 endpos=8000\n", b"200 result=52 endpos=100\n",
                          b"200 result=321\n") as (channel, peer):
        entered = await asyncio.wait_for(channel.ask(["intro", "amount", "enter_pin"], 10000, 12),
                                         REPLY_WAIT)
    assert type(entered) is bytearray and entered == b"4321"
    # Every lead-in listens; the rest of the answer is collected with no prompt, one digit fewer.
    assert peer.received == [b"STREAM FILE intro" + LISTENS, b"STREAM FILE amount" + LISTENS,
                             b'GET DATA "" 10000 11\n']


@pytest.mark.parametrize(("key", "max_digits", "answer"), [
    (b"35", 12, b""),  # "#" before any digit: an empty answer, nothing more collected
    (b"49", 1, b"1"),  # a one-key menu is answered by the key itself
])
async def test_a_lead_in_key_that_completes_the_answer(key: bytes, max_digits: int,
                                                       answer: bytes) -> None:
    async with channel_to(b"200 result=" + key + b" endpos=100\n") as (channel, peer):
        entered = await asyncio.wait_for(channel.ask(["intro", "menu"], 10000, max_digits),
                                         REPLY_WAIT)
    assert entered == answer and peer.received == [b"STREAM FILE intro" + LISTENS]


async def test_no_key_during_the_lead_in_then_the_question_is_asked() -> None:
    async with channel_to(b"200 result=0 endpos=8000\n", b"200 result= (timeout)\n") as (channel,
                                                                                      peer):
        entered = await asyncio.wait_for(channel.ask(["no_input", "enter_pin"], 10000, 12),
                                         REPLY_WAIT)
    assert entered == b""
    assert peer.received == [b"STREAM FILE no_input" + LISTENS, b'GET DATA "enter_pin" 10000 12\n']


async def test_hanging_up_while_the_answer_goes_on_is_a_hang_up() -> None:
    async with channel_to(b"200 result=55 endpos=100\n", b"HANGUP\n200 result=-1\n") as (channel,
                                                                                        _):
        with pytest.raises(AgiHangup):
            await asyncio.wait_for(channel.ask(["incorrect_pin", "enter_pin"], 10000, 12),
                                   REPLY_WAIT)
        assert channel.hung_up


# --- play: prompts in one Playback list ---------------------------------------------------------


async def test_prompts_played_together_are_one_playback_command() -> None:
    prompts = ["/var/lib/voicepay/sounds/zh/approved", *(f"/sounds/zh/digit_{d}" for d in "042")]
    async with channel_to(b"200 result=0\n") as (channel, peer):
        await asyncio.wait_for(channel.play(*prompts), REPLY_WAIT)
    [line] = peer.received
    assert asterisk_parse_args(line.decode().rstrip("\n")) == ["EXEC", "Playback", "&".join(prompts)]


@pytest.mark.parametrize("answer", [b"HANGUP\n200 result=-1\n", b"200 result=-1\n"],
                         ids=["hangup-line", "no-hangup-line"])
async def test_a_hang_up_during_a_playback_list_is_a_hang_up(answer: bytes) -> None:
    async with channel_to(answer) as (channel, _):
        with pytest.raises(AgiHangup):
            await asyncio.wait_for(channel.play("digit_1", "digit_2"), REPLY_WAIT)
        assert channel.hung_up


@pytest.mark.parametrize("prompt", ["a&b", "a,noanswer"])
async def test_a_prompt_that_would_split_the_list_is_refused(prompt: str) -> None:
    async with channel_to() as (channel, peer):
        with pytest.raises(ValueError, match="cannot hold"):
            await channel.play("digit_1", prompt)
        await channel.play()  # nothing to play: nothing sent
    assert peer.received == []
