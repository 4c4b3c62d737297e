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
from dataclasses import dataclass

from panoramisk.utils import parse_agi_result

__all__ = [
    "AgiChannel",
    "AgiError",
    "AgiHangup",
    "AgiInvalidCommand",
    "AgiUsageError",
    "AgiDeadChannel",
    "AgiAppError",
    "DigitEntry",
    "quote_agi_argument",
    "read_agi_headers",
]

log = logging.getLogger(__name__)

# A header block larger than this is not Asterisk talking to us.
_MAX_HEADER_BYTES = 16 * 1024


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


@dataclass(frozen=True)
class DigitEntry:
    """What GET DATA returned. ``digits`` may be secret: callers must not log it."""

    digits: str
    timed_out: bool

    def __repr__(self) -> str:  # digits never reach a repr, a log or a traceback
        return f"DigitEntry(<{len(self.digits)} digits>, timed_out={self.timed_out})"


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
        reply = await self.command(f'STREAM FILE {prompt} "{escape_digits}"')
        code = int(reply["result"][0] or 0)
        return chr(code) if code > 0 else ""

    async def play(self, *prompts: str) -> None:
        for prompt in prompts:
            await self.stream(prompt)

    async def get_data(self, prompt: str, timeout_ms: int, max_digits: int) -> DigitEntry:
        """Play ``prompt`` and collect up to ``max_digits`` digits, ended early by ``#``.

        The digits are collected inside Asterisk and come back only over this socket; Asterisk's
        inter-digit timeout is the channel's TIMEOUT(digit), set with :meth:`set_digit_timeout`.
        """
        reply = await self.command(f"GET DATA {prompt} {timeout_ms} {max_digits}")
        value, data = reply["result"]
        return DigitEntry(digits=value, timed_out=(data == "timeout"))

    async def get_secret_digits(self, prompt: str, timeout_ms: int, max_digits: int, *,
                                allowed: bytes = b"0123456789") -> bytearray:
        """GET DATA for a PIN or CVV2: the digits come back in a bytearray the caller wipes.

        The raw reply line is read here rather than through ``parse_agi_result`` so the digits are
        copied into exactly one mutable buffer, never a ``str``. (CPython still briefly holds the
        raw reply line as an immutable ``bytes`` until it is collected; that is as far as Python
        lets us go.) ``allowed`` are the keys kept (the ID step-up also takes ``*``); the first
        other character ends the digits.
        """
        verb = "GET DATA"
        line = await self._exchange(verb, f"GET DATA {prompt} {timeout_ms} {max_digits}")
        prefix = b"200 result="
        if not line.startswith(prefix):
            raise AgiError(verb, "unexpected reply")
        digits = bytearray()
        for byte in line[len(prefix):]:
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
