"""A scripted stand-in for Asterisk's end of a FastAGI session, over real TCP.

It connects to the FastAGI server the way Asterisk's ``AGI(agi://host:port/<script>)`` does, sends
the ``agi_*`` header block, then answers each command the IVR sends by consulting a script of
expected steps, like an actor in a SIPp scenario:

    caller = FakeAsterisk([
        plays("topup_welcome"),
        asks("enter_mobile", keys="13800000001"),
        asks("amount_menu", keys="1"),
        asks("enter_card", keys=card.pan),
        asks("enter_pin", hang_up=True),         # the caller hangs up while asked for the PIN
    ])
    await caller.call("127.0.0.1", port)
    assert caller.prompts == ["topup_welcome", "enter_mobile", ...]

Keys are modelled as Asterisk handles them. A key during ``STREAM FILE`` cuts the prompt short
and comes back as its result only if it is one of the command's escape digits; otherwise Asterisk
reads it and throws it away, and so does this caller (``discarded_keys`` lists them). A key
during a prompt that listens is the first of an answer: the IVR collects the rest with ``GET
DATA`` and no prompt, scripted as ``keys_on("...")``. Keys pressed between two commands are
read and thrown away by Asterisk's AGI loop: ``keyed_between("...")`` is such a moment, between
the previous command and the next, and those keys are discarded too.

Only prompts are scripted (``STREAM FILE`` and ``GET DATA``; each file of an ``EXEC Playback``
list is one ``plays`` step); housekeeping commands (``SET
VARIABLE``, ``ANSWER``, ``VERBOSE``, ``HANGUP``...) get Asterisk's usual reply wherever they come,
unless a step names them. A prompt the script did not expect makes the caller hang up, and
:meth:`FakeAsterisk.call` then fails with the whole conversation so far.

Replies are what Asterisk sends: ``STREAM FILE`` -> ``200 result=0 endpos=N``; ``GET DATA`` ->
``200 result=<digits>``, ``200 result=<digits> (timeout)`` or ``200 result= (timeout)``; a hang-up
during a command -> ``HANGUP`` then ``200 result=-1``, and the connection closes (with
``agi_sighup=False``, Asterisk's ``AGISIGHUP=no``: no ``HANGUP`` line, and the session stays open
in dead-AGI mode); any command on a channel already hung up -> ``511``.

Two more things a step can do: ``reset=True``, the connection is reset (a TCP RST, as when
Asterisk or the network drops it) instead of an answer; ``pause=Pause()``, the answer waits until
the test releases it, so a test can act (stop the service, cancel the session) while the IVR waits
on that step.

A channel can also be hung up from outside, as an AMI ``Hangup`` does: ``hang_up_now()`` ends the
call at the command the IVR is waiting on (a paused step is released) or at its next one, and the
rest of the script is dropped (nobody is left to hear it).

Channel variables set before the AGI starts (the dialer's Originate, the one-line switch's Setvar)
are given as ``variables={...}``.

Nothing here logs: the replies carry keyed card numbers and PINs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import fnmatch
import itertools
import shlex
import socket
import struct
from dataclasses import dataclass, field

__all__ = [
    "DEAD_CHANNEL",
    "Command",
    "Expect",
    "FakeAsterisk",
    "Pause",
    "ScriptMismatch",
    "asks",
    "keyed_between",
    "keys_on",
    "plays",
    "reset_connection",
    "send_partial_headers",
]

DEAD_CHANNEL = "511 Command Not Permitted on a dead channel or intercept routine"
_INVALID_COMMAND = "510 Invalid or unknown command"

# Longest first, so "GET DATA" is not read as an unknown "GET".
_VERBS = sorted(
    ["ANSWER", "CHANNEL STATUS", "EXEC", "GET DATA", "GET FULL VARIABLE", "GET VARIABLE", "HANGUP",
     "NOOP", "SAY DIGITS", "SET VARIABLE", "STREAM FILE", "VERBOSE", "WAIT FOR DIGIT"],
    key=len, reverse=True)
# Commands with a sound file as first argument: the ones a script is written with.
_PROMPT_VERBS = {"STREAM FILE", "GET DATA"}
_DEFAULT_REPLIES = {
    "ANSWER": "200 result=0",
    "SET VARIABLE": "200 result=1",
    "VERBOSE": "200 result=1",
    "NOOP": "200 result=0",
    "CHANNEL STATUS": "200 result=6",
    "HANGUP": "200 result=1",
}

_call_numbers = itertools.count(1)


@dataclass(frozen=True)
class Command:
    """One command line the IVR sent, split as Asterisk would read it."""

    line: str
    verb: str
    args: tuple[str, ...]

    @classmethod
    def parse(cls, raw: bytes) -> Command:
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        verb = next((v for v in _VERBS if line == v or line.startswith(v + " ")),
                    line.split(" ", 1)[0])
        try:
            args = tuple(shlex.split(line[len(verb):]))
        except ValueError:  # unbalanced quotes: Asterisk would answer 520; keep the raw text
            args = (line[len(verb):].strip(),)
        return cls(line, verb, args)

    @property
    def prompt(self) -> str | None:
        """The prompt's name (the sound file without its directory) for STREAM FILE / GET DATA."""
        if self.verb in _PROMPT_VERBS and self.args:
            return self.args[0].rsplit("/", 1)[-1]
        return None

    @property
    def playlist(self) -> list[str]:
        """The prompts of ``EXEC Playback a&b&c`` (names, as ``prompt``), in order; else []."""
        if self.verb == "EXEC" and len(self.args) >= 2 and self.args[0].lower() == "playback":
            return [path.rsplit("/", 1)[-1] for path in self.args[1].split(",")[0].split("&")]
        return []

    @property
    def heard(self) -> list[str]:
        return [self.prompt] if self.prompt else self.playlist

    def __str__(self) -> str:
        if self.playlist:
            return f"EXEC Playback {'&'.join(self.playlist)}"
        return f"{self.verb} {self.prompt}" if self.prompt else self.line


@dataclass(eq=False)
class Pause:
    """Holds one step's answer: ``reached`` is set when the IVR sends that command, and the
    answer goes out once the test sets ``release``."""

    reached: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True)
class Expect:
    """One step of the script: the command expected next and how the caller answers it.

    ``prompt`` is matched against the prompt's name with shell wildcards (``digit_?``).
    ``hang_up``: the caller hangs up while this command runs (``reply`` is then not sent).
    ``reset``: the connection is reset instead (no reply, no HANGUP line).
    ``pause``: the reply (or hang-up, or reset) waits until the test releases it.
    ``optional``: the call may end before this step (a race the test does not decide).
    """

    command: str
    prompt: str | None = None
    reply: str = "200 result=0"
    hang_up: bool = False
    reset: bool = False
    pause: Pause | None = None
    optional: bool = False
    # The key pressed while a STREAM FILE plays; keys pressed before the command (between two).
    key: str = ""
    keys_before: str = ""

    def matches(self, command: Command) -> bool:
        if command.verb != self.command:
            return False
        return self.prompt is None or fnmatch.fnmatchcase(command.prompt or "", self.prompt)

    def __str__(self) -> str:
        what = f"{self.command} {self.prompt}" if self.prompt else self.command
        if self.reset:
            return f"{what} (connection reset)"
        return f"{what} (caller hangs up)" if self.hang_up else what


def plays(prompt: str, *, interrupted_by: str = "", hang_up: bool = False, reset: bool = False,
          pause: Pause | None = None) -> Expect:
    """The IVR plays ``prompt``; it plays to the end unless a key interrupts it."""
    return Expect("STREAM FILE", prompt, "200 result=0 endpos=8000", hang_up, reset, pause,
                  key=interrupted_by)


def keys_on(keys: str, *, timeout: bool = False) -> Expect:
    """The caller keys on: the rest of an answer whose first key cut a prompt short, collected
    with ``GET DATA`` and no prompt. ``keys`` then #, or ``timeout=True``: no #."""
    return dataclasses.replace(asks("", keys, timeout=timeout), prompt="")


def keyed_between(keys: str, step: Expect) -> Expect:
    """``keys`` pressed after the previous command answered and before ``step``'s command came."""
    return dataclasses.replace(step, keys_before=keys)


def asks(prompt: str, keys: str = "", *, timeout: bool = False, hang_up: bool = False,
         reset: bool = False, pause: Pause | None = None) -> Expect:
    """The IVR plays ``prompt`` and collects digits: the caller keys ``keys`` (then #).

    No keys is silence, which Asterisk reports as ``200 result= (timeout)``; ``timeout=True``
    is digits keyed without the # before the inter-digit timeout.
    """
    reply = f"200 result={keys}"
    if timeout or not keys:
        reply += " (timeout)"
    return Expect("GET DATA", prompt, reply, hang_up, reset, pause)


class ScriptMismatch(AssertionError):
    """The IVR did not say what the script expected."""


@dataclass
class FakeAsterisk:
    """One call: the headers Asterisk sends, and the script of what the caller hears and keys."""

    script: list[Expect]
    agi_script: str = "selfservice"
    language: str = "en"
    caller_id: str = "13800000001"
    uniqueid: str = field(default_factory=lambda: f"1715000000.{next(_call_numbers)}")
    # Asterisk's AGISIGHUP: when "no", a hang-up sends no HANGUP line and the session stays open
    # in dead-AGI mode, answering 511 to every later command until the IVR closes it.
    agi_sighup: bool = True

    commands: list[Command] = field(default_factory=list, init=False)
    # What GET VARIABLE answers: the variables given, plus whatever the IVR sets.
    variables: dict[str, str] = field(default_factory=dict)
    # Who ended the call: "caller" (a scripted hang-up or a mismatch), "ivr" (HANGUP command), or
    # None if the IVR just closed the connection.
    hung_up_by: str | None = field(default=None, init=False)
    errors: list[str] = field(default_factory=list, init=False)
    # Keys Asterisk threw away: pressed during a prompt that did not listen, or between commands.
    discarded_keys: str = field(default="", init=False)

    def __post_init__(self) -> None:
        self._steps = list(self.script)
        self._dead = False
        self._hang_up_requested = False
        self._held: Pause | None = None

    def hang_up_now(self) -> None:
        """The channel is hung up from outside (an AMI Hangup): see the module's docstring."""
        self._hang_up_requested = True
        self._steps.clear()
        if self._held is not None:
            self._held.release.set()

    @property
    def prompts(self) -> list[str]:
        """Every prompt played or asked, in order: what the caller heard."""
        return [name for c in self.commands for name in c.heard]

    def headers(self, port: int) -> dict[str, str]:
        return {
            "agi_network": "yes",
            "agi_network_script": self.agi_script,
            "agi_request": f"agi://127.0.0.1:{port}/{self.agi_script}",
            "agi_channel": f"PJSIP/cardholder-{self.uniqueid.rsplit('.', 1)[-1]:0>8}",
            "agi_language": self.language,
            "agi_type": "PJSIP",
            "agi_uniqueid": self.uniqueid,
            "agi_version": "20.5.0",
            "agi_callerid": self.caller_id,
            "agi_calleridname": "Cardholder",
            "agi_callingpres": "0",
            "agi_dnid": "8000",
            "agi_rdnis": "unknown",
            "agi_context": "from-cardholder",
            "agi_extension": "8000",
            "agi_priority": "3",
            "agi_enhanced": "0.0",
            "agi_accountcode": "",
            "agi_threadid": "140245567891200",
        }

    async def call(self, host: str, port: int, *, timeout: float = 10.0) -> None:
        """Place the call; returns once either side has ended it, or raises ScriptMismatch."""
        reader, writer = await asyncio.open_connection(host, port)
        try:
            block = "".join(f"{k}: {v}\n" for k, v in self.headers(port).items()) + "\n"
            writer.write(block.encode())
            await writer.drain()
            await asyncio.wait_for(self._converse(reader, writer), timeout)
        except TimeoutError:
            self.errors.append(f"the call was still going after {timeout}s")
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except ConnectionError:
                pass
        if any(not step.optional for step in self._steps) and not self.errors:
            self.errors.append(f"the IVR ended the call before step {self._step_number()}: "
                               f"{self._steps[0]}")
        if self.errors:
            raise ScriptMismatch("; ".join(self.errors) + "\nconversation:\n  "
                                 + "\n  ".join(map(str, self.commands)))

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            line = await reader.readline()
            if not line:
                return  # the IVR closed the session
            command = Command.parse(line)
            self.commands.append(command)
            if self._dead:
                await _send(writer, DEAD_CHANNEL)
                continue
            if self._hang_up_requested:
                await self._hang_up(writer, command)
                if self.agi_sighup:
                    return
                continue
            if command.playlist:
                if not await self._play_list(writer, command):
                    return
                continue
            step = self._steps[0] if self._steps else None
            if step is not None and step.matches(command):
                acted = await self._act(step, writer, command)
                if acted == "gone":
                    return
                if not acted:
                    await self._answer(writer, command, self._reply(step, command))
            elif command.verb in _PROMPT_VERBS:
                expected = f"step {self._step_number()}: {step}" if step else "the script's end"
                self.errors.append(f"expected {expected}, the IVR sent {command}")
                await self._hang_up(writer, command)
                return
            else:
                await self._answer(writer, command, self._default_reply(command))

    async def _play_list(self, writer: asyncio.StreamWriter, command: Command) -> bool:
        """``EXEC Playback a&b&c``: each file is one ``plays`` step of the script, heard in turn;
        a key during them is lost (Playback does not listen). False when the call ended."""
        for name in command.playlist:
            step = self._steps[0] if self._steps else None
            if step is None or not step.matches(Command(command.line, "STREAM FILE", (name,))):
                expected = f"step {self._step_number()}: {step}" if step else "the script's end"
                self.errors.append(f"expected {expected}, the IVR played {name} in {command}")
                await self._hang_up(writer, command)
                return False
            self.discarded_keys += step.key
            acted = await self._act(step, writer, command)
            if acted:
                return acted != "gone"
        await self._answer(writer, command, "200 result=0")
        return True

    async def _act(self, step: Expect, writer: asyncio.StreamWriter, command: Command) -> str:
        """What the caller does at ``step`` before any answer: waits out its pause, then hangs
        up or resets the connection. "gone": the session is over; "dead": hung up, the session
        stays open (AGISIGHUP=no); "": nothing, the command is to be answered."""
        self._steps.pop(0)
        self.discarded_keys += step.keys_before
        if step.pause is not None:
            self._held = step.pause
            step.pause.reached.set()
            await step.pause.release.wait()
            self._held = None
        if step.hang_up or self._hang_up_requested:
            await self._hang_up(writer, command)
            return "gone" if self.agi_sighup else "dead"
        if step.reset:
            self.hung_up_by = "caller"
            reset_connection(writer)
            return "gone"
        return ""

    def _step_number(self) -> int:
        return len(self.script) - len(self._steps) + 1

    def _reply(self, step: Expect, command: Command) -> str:
        """A key during STREAM FILE ends it only if it is an escape digit; else it is lost."""
        if not step.key:
            return step.reply
        escape_digits = command.args[1] if len(command.args) > 1 else ""
        if step.key in escape_digits:
            return f"200 result={ord(step.key)} endpos=4000"
        self.discarded_keys += step.key
        return step.reply

    def _default_reply(self, command: Command) -> str:
        if command.verb in ("GET VARIABLE", "GET FULL VARIABLE"):
            name = command.args[0] if command.args else ""
            if name not in self.variables:
                return "200 result=0"
            return f"200 result=1 ({self.variables[name]})"
        return _DEFAULT_REPLIES.get(command.verb, _INVALID_COMMAND)

    async def _answer(self, writer: asyncio.StreamWriter, command: Command, reply: str) -> None:
        if command.verb == "SET VARIABLE" and len(command.args) >= 2:
            self.variables[command.args[0]] = command.args[1]
        if command.verb == "HANGUP":
            # The IVR hung up the channel: from now on every command meets a dead channel.
            self.hung_up_by = "ivr"
            self._dead = True
        await _send(writer, reply)

    async def _hang_up(self, writer: asyncio.StreamWriter, command: Command) -> None:
        """The caller hangs up while ``command`` runs: HANGUP, the command's -1 (then close)."""
        self.hung_up_by = "caller"
        self._dead = True
        endpos = " endpos=1600" if command.verb == "STREAM FILE" else ""
        lines = [f"200 result=-1{endpos}"]
        await _send(writer, *(["HANGUP"] + lines if self.agi_sighup else lines))


async def _send(writer: asyncio.StreamWriter, *lines: str) -> None:
    writer.write("".join(f"{line}\n" for line in lines).encode())
    try:
        await writer.drain()
    except ConnectionError:
        pass


def reset_connection(writer: asyncio.StreamWriter) -> None:
    """Drop the connection with a TCP RST: a zero linger time makes close() send one."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def send_partial_headers(host: str, port: int, headers: dict[str, str]) -> None:
    """Open a FastAGI session, send part of the header block (no blank line), and close."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write("".join(f"{k}: {v}\n" for k, v in headers.items()).encode())
    await writer.drain()
    writer.close()
    await writer.wait_closed()
