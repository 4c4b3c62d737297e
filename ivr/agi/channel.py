"""One FastAGI session: the call as our flows see it.

One reader (``AgiChannel._exchange``) takes every reply off the socket, raw; panoramisk's
``parse_agi_result`` then reads ordinary replies, and the secret GET DATA copies its digits
straight into a bytearray. Every failure becomes a distinct exception, so a flow reads top to
bottom and a hang-up at any step (or the connection dropping, even half-way through a reply)
unwinds it to one place.

Three things panoramisk's ``Request`` gets wrong for us, and why this class exists:
- its reply loop spins forever, never yielding to the event loop, if the peer closes early;
- when the caller hangs up, Asterisk writes ``HANGUP`` *and then* the reply of the running command;
  treating ``HANGUP`` as the reply leaves that line in the buffer and every later reply is off by one;
- it logs nothing itself, but its result dicts carry the keyed digits, so they must never reach a
  log line here either: ``AgiError`` messages name the command verb only, never its reply.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from panoramisk.utils import parse_agi_result

__all__ = [
    "AgiChannel",
    "AgiError",
    "AgiHangup",
    "AgiInvalidCommand",
    "AgiUsageError",
    "AgiDeadChannel",
    "AgiAppError",
    "ANY_KEY",
    "quote_agi_argument",
    "read_agi_headers",
]

log = logging.getLogger(__name__)

# A header block larger than this is not Asterisk talking to us.
_MAX_HEADER_BYTES = 16 * 1024

# Every key of a phone's keypad. A prompt that leads to a question is played with all of them as
# escape digits: a prompt without them discards whatever is keyed while it plays.
ANY_KEY = "0123456789*#"
_REPLY_PREFIX = b"200 result="


class AgiError(Exception):
    """Base of every FastAGI failure. Carries the command verb, never the reply data."""

    def __init__(self, verb: str, detail: str = "") -> None:
        super().__init__(f"{verb}: {detail}" if detail else verb)
        self.verb = verb


class AgiHangup(AgiError):
    """The caller hung up (or the channel went away) while the flow was running."""


class AgiInvalidCommand(AgiError):
    """510: Asterisk does not know the command."""


class AgiUsageError(AgiError):
    """520: the command's arguments are wrong."""


class AgiDeadChannel(AgiHangup):
    """511: the channel is already dead: a hang-up Asterisk reported without a HANGUP line."""


class AgiAppError(AgiError):
    """200 result=-1: the command failed on a live channel (e.g. a missing sound file)."""


def quote_agi_argument(value: str) -> str:
    """``value`` as one argument of an AGI command line, read back unchanged by Asterisk.

    Asterisk's ``parse_args`` (res/res_agi.c) splits on spaces and tabs, groups words in double
    quotes and takes a backslash as "the next character is literal", inside quotes or out. A line
    break cannot be quoted at all: it ends the command, and what follows would be read as a second
    one, so it is refused.
    """
    if any(c in value for c in "\r\n\0"):
        raise ValueError("an AGI argument cannot hold a line break or a NUL")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _key_code(verb: str, code: bytes) -> int:
    """The key in a STREAM FILE ``result=``: its character code, or 0 for none.

    Asterisk sends a key's ASCII code in decimal; anything else (not digits, over 255) is a reply
    we cannot read, an ``AgiError`` that ends the call cleanly rather than a ``ValueError``.
    """
    code = code.strip()
    if not code:
        return 0
    if not (code.isdigit() and len(code) <= 3 and int(code) <= 255):
        raise AgiError(verb, "unexpected reply")
    return int(code)


async def read_agi_headers(reader: asyncio.StreamReader) -> dict[str, str]:
    """Read the ``agi_*`` header block that opens a FastAGI session.

    Raises ``ConnectionError`` if the peer closes before the blank line (panoramisk 1.4 spins
    forever in that case) and ``ValueError`` on an oversized header block.
    """
    headers: dict[str, str] = {}
    total = 0
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("FastAGI peer closed before the end of the headers")
        total += len(line)
        if total > _MAX_HEADER_BYTES:
            raise ValueError("FastAGI header block too large")
        text = line.decode("utf-8", errors="replace").rstrip("\r\n")
        if not text:
            return headers
        key, sep, value = text.partition(": ")
        if sep:
            headers[key] = value


class AgiChannel:
    """Commands on one call. Every method raises ``AgiHangup`` once the caller is gone."""

    def __init__(self, headers: dict[str, str], reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.headers = headers
        self._reader = reader
        self._writer = writer
        self.hung_up = False

    @property
    def uniqueid(self) -> str:
        return self.headers.get("agi_uniqueid", "")

    @property
    def channel_name(self) -> str:
        return self.headers.get("agi_channel", "")

    @property
    def caller_id(self) -> str:
        return self.headers.get("agi_callerid", "")

    @property
    def script(self) -> str:
        return self.headers.get("agi_network_script", "")

    async def command(self, command: str) -> dict:
        """Send one command and return panoramisk's parsed reply, or raise a typed error."""
        verb = " ".join(command.split()[:2])
        line = await self._exchange(verb, command)
        reply = parse_agi_result(line.decode("utf-8", errors="replace").rstrip("\r\n"))
        error = reply.get("error")
        if error == "AGIResultHangup":
            self.hung_up = True
            raise AgiHangup(verb)
        if error == "AGIAppError":
            raise AgiAppError(verb, "result=-1")
        return reply

    async def _exchange(self, verb: str, command: str) -> bytes:
        """Send ``command`` and return its ``200`` reply line, raw (it may carry secret digits).

        The one reader of AGI replies: every way the session can end (a HANGUP line, a 511, the
        connection reset, closed, or closed half-way through a line) raises ``AgiHangup`` here.
        """
        if self.hung_up:
            raise AgiHangup(verb, "channel already hung up")
        self._writer.write(command.encode("utf-8") + b"\n")
        try:
            await self._writer.drain()
        except ConnectionError as exc:
            self.hung_up = True
            raise AgiHangup(verb, "connection lost") from exc
        while True:
            line = await self._read_line(verb)
            if line in (b"HANGUP\n", b"HANGUP\r\n"):  # compared, not stripped: no copy of a reply
                # The reply of the running command still follows; read it, then report the hang-up.
                self.hung_up = True
                continue
            if line.startswith(b"100"):  # "100 result=0 Trying..."; the real reply follows
                continue
            if line.startswith(b"520-"):
                # Usage text follows, up to "520 End of proper usage."; a bare "520 ..." has none.
                while not (await self._read_line(verb)).startswith(b"520 "):
                    pass
            break
        if self.hung_up:
            raise AgiHangup(verb)
        status = line[:3]
        if status == b"200":
            return line
        if status == b"511":
            self.hung_up = True
            raise AgiDeadChannel(verb)
        if status == b"510":
            raise AgiInvalidCommand(verb)
        if status == b"520":
            raise AgiUsageError(verb)
        raise AgiError(verb, f"status {status.decode()}" if status.isdigit()
                       else "unexpected reply")

    async def _read_line(self, verb: str) -> bytes:
        """One line from Asterisk, newline included; a line cut short means the peer is gone.

        ``readline()`` at end of stream returns at once without yielding to the event loop, so any
        loop over it must leave on ``b""``: this is the only place that reads the socket.
        """
        try:
            line = await self._reader.readline()
        except (ConnectionError, ValueError) as exc:  # ValueError: a line over the stream's limit
            self.hung_up = True
            raise AgiHangup(verb, "connection lost") from exc
        if not line.endswith(b"\n"):  # b"" or half a line: the connection closed
            self.hung_up = True
            raise AgiHangup(verb, "connection closed")
        return line

    async def answer(self) -> None:
        await self.command("ANSWER")

    async def stream(self, prompt: str, escape_digits: str = "") -> str:
        """Play a prompt; returns the digit that interrupted it, or "" if it played to the end."""
        verb = "STREAM FILE"
        reply = await self.command(f'{verb} {prompt} "{escape_digits}"')
        code = _key_code(verb, reply["result"][0].encode())
        return chr(code) if code > 0 else ""

    async def play(self, *prompts: str) -> None:
        """Play prompts one after another, listening to no key, in one command: Playback's list
        (``a&b&c``), not a round trip a prompt. A reference number read out is 12 prompts, and
        every round trip costs the ivr service's event loop and Asterisk's AGI loop alike.

        Playback answers ``-1`` only when the channel hangs up (a missing file is a warning in
        Asterisk's log, and the rest plays); a file name cannot hold the list's ``&`` or the
        application's ``,``.
        """
        if not prompts:
            return
        if any(c in prompt for prompt in prompts for c in "&,"):
            raise ValueError("a prompt played in a list cannot hold '&' or ','")
        try:
            await self.command(f"EXEC Playback {quote_agi_argument('&'.join(prompts))}")
        except AgiAppError:
            self.hung_up = True
            raise AgiHangup("EXEC Playback", "result=-1") from None

    async def ask(self, prompts: Sequence[str], timeout_ms: int, max_digits: int) -> bytearray:
        """Ask one question and return the answer in a bytearray the caller wipes (it may be a PIN).

        ``prompts`` are every sound that leads to the question, the question itself last, and
        they all listen: a key during any of them is the first key of the answer, the prompts
        still to come are skipped, and the rest of the answer is collected as if it had been
        keyed during the question itself. Up to ``max_digits`` digits, ended early by ``#``; a
        ``#`` alone, or silence, is an empty answer. ``timeout_ms`` is Asterisk's wait for the
        first digit and, GET DATA being what it is, between digits too.

        Between the prompts there is no pause the caller can hear: one command follows the
        other at once. Keys that arrive while no command listens (between two questions, or
        during a prompt played with :meth:`stream`) are discarded by Asterisk's AGI loop.
        """
        *lead_in, question = prompts
        for prompt in lead_in:
            key = await self._key_during(prompt)
            if key:
                return await self.answer_begun_with(key, timeout_ms, max_digits)
        return await self.get_secret_digits(question, timeout_ms, max_digits)

    async def _key_during(self, prompt: str) -> int:
        """Play ``prompt`` listening to every key; the key that cut it short (a byte), or 0.

        Read from the raw reply, like GET DATA's secret digits: this key may be a PIN's first.
        """
        verb = "STREAM FILE"
        line = await self._exchange(verb, f"STREAM FILE {prompt} {quote_agi_argument(ANY_KEY)}")
        if not line.startswith(_REPLY_PREFIX):
            raise AgiError(verb, "unexpected reply")
        code = line[len(_REPLY_PREFIX):].split(b" ", 1)[0].strip()
        if code.startswith(b"-"):  # -1: the file could not be played (or the channel is gone)
            raise AgiAppError(verb, "result=-1")
        key = _key_code(verb, code)
        return key if key and chr(key) in ANY_KEY else 0

    async def answer_begun_with(self, key: int, timeout_ms: int, max_digits: int) -> bytearray:
        """The answer whose first key (a byte) the caller pressed before it was asked for:
        that key, then the rest collected with ``GET DATA`` and no prompt."""
        answer = bytearray()
        if key == ord("#"):  # "#" before any digit: an empty answer, as GET DATA reports it
            return answer
        answer.append(key)
        if max_digits > 1:
            try:
                rest = await self.get_secret_digits("", timeout_ms, max_digits - 1)
            except BaseException:
                answer[:] = b"\0" * len(answer)
                raise
            answer += rest
            rest[:] = b"\0" * len(rest)
        return answer

    async def get_secret_digits(self, prompt: str, timeout_ms: int, max_digits: int, *,
                                allowed: bytes = b"0123456789*") -> bytearray:
        """GET DATA (``prompt`` may be "": no prompt, only listening), the keys in a bytearray
        the caller wipes: ``allowed`` keys (digits and ``*``), up to the ``#`` that ended the entry.

        The raw reply line is read here rather than through ``parse_agi_result`` so the digits are
        copied into exactly one mutable buffer, never a ``str``. (CPython still briefly holds the
        raw reply line as an immutable ``bytes`` until it is collected; that is as far as Python
        lets us go.) ``allowed`` are the keys kept (the ID step-up also takes ``*``); the first
        other character ends the digits.
        """
        verb = "GET DATA"
        line = await self._exchange(
            verb, f"GET DATA {quote_agi_argument(prompt)} {timeout_ms} {max_digits}")
        if not line.startswith(_REPLY_PREFIX):
            raise AgiError(verb, "unexpected reply")
        digits = bytearray()
        for byte in line[len(_REPLY_PREFIX):]:
            if byte in allowed:
                digits.append(byte)
            elif byte == ord("-"):
                self.hung_up = True
                raise AgiHangup(verb, "result=-1")
            else:
                break
        return digits

    async def set_variable(self, name: str, value: str) -> None:
        # Names are ours (dialplan_variables.py, TIMEOUT(digit)) and go bare; values are quoted.
        if not name or any(c in name for c in ' \t"\\\r\n\0'):
            raise ValueError(f"not a dialplan variable name: {name!r}")
        await self.command(f"SET VARIABLE {name} {quote_agi_argument(value)}")

    async def get_variable(self, name: str) -> str | None:
        reply = await self.command(f"GET VARIABLE {name}")
        value, data = reply["result"]
        return data if value == "1" else None

    async def set_digit_timeout(self, timeout_ms: int) -> None:
        await self.set_variable("TIMEOUT(digit)", str(timeout_ms / 1000))

    async def verbose(self, message: str, level: int = 3) -> None:
        await self.command(f"VERBOSE {quote_agi_argument(message)} {level}")

    async def hangup(self) -> None:
        if not self.hung_up:
            try:
                await self.command("HANGUP")
            except AgiError:
                pass
