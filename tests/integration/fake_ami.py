"""A tiny Asterisk Manager Interface server: just enough AMI for the service's health check,
the one-line switch and the callback dialer.

It speaks the wire format panoramisk expects (a greeting line, then ``Key: Value`` lines with
messages separated by a blank line, every answer echoing the action's ``ActionID``) and knows
Login, Ping, CoreStatus, CoreShowChannels (the list in ``channels``), Setvar, Getvar of a
channel's dtmf_mode (``dtmf_modes``), of the payment calls carried and their limit
(``payment_calls``) and of the CPU guard's global (``cpu_full_until``), Redirect,
MixMonitorMute, Originate
and Hangup. As on Asterisk, a connection must log in before any other action, and an unknown
action gets ``Response: Error``; so does every action named in ``failing`` (lower case), as when
Asterisk refuses it.

An asynchronous Originate is answered "successfully queued" at once; what the call then does is
up to the test's ``originate`` script, ``async (request headers) -> outcome`` (by default the
phone rings until hung up):
    "answered"            OriginateResponse Success (the script plays the call flow's part first)
    "busy", "no answer", "congestion", "unreachable"
                          a Hangup event with the Q.850 cause, then OriginateResponse Failure
    "ring"                rings until a Hangup action names its ChannelId (from any connection),
                          then Hangup + OriginateResponse Failure, reason "hung up before answer"
    "silent"              no OriginateResponse ever: a lost AMI event, or an Asterisk gone away
Hangup events go to every logged-in connection, as Asterisk's "call" event class does.

    async with FakeAmi(username="voicepay", secret="test-ami-secret") as ami:
        ...  # point the service at ami.port; ami.actions lists what it was sent, ami.wire the bytes
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from ivr import dialplan_variables as dv

Reply = dict[str, str] | list[dict[str, str]]

__all__ = ["FakeAmi", "GREETING", "OriginateScript"]

GREETING = b"Asterisk Call Manager/11.0.0\r\n"
EOL = "\r\n"

CORE_STATUS = {
    "CoreStartupDate": "2024-01-01",
    "CoreStartupTime": "12:00:00",
    "CoreReloadDate": "2024-01-01",
    "CoreReloadTime": "12:00:00",
    "CoreCurrentCalls": "0",
}


OriginateScript = Callable[[dict[str, str]], Awaitable[str]]

# outcome -> (Q.850 cause on the Hangup event, OriginateResponse Reason)
_FAILURES = {"busy": ("17", "5"), "no answer": ("19", "3"), "hung up": ("16", "1"),
             "congestion": ("34", "8"), "unreachable": ("3", "0")}


async def _ring_until_hung_up(request: dict[str, str]) -> str:
    return "ring"


def parse_message(block: str) -> dict[str, str]:
    """One AMI message (the lines before a blank line) as a dict; header names as sent."""
    headers: dict[str, str] = {}
    for line in block.split(EOL):
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip()] = value.strip()
    return headers


def format_message(headers: dict[str, str]) -> bytes:
    return (EOL.join(f"{name}: {value}" for name, value in headers.items()) + EOL + EOL).encode()


def _lookup(headers: dict[str, str], name: str) -> str:
    """AMI header names are case-insensitive."""
    return next((value for key, value in headers.items() if key.lower() == name.lower()), "")


class FakeAmi:
    def __init__(self, *, username: str, secret: str, host: str = "127.0.0.1",
                 originate: OriginateScript = _ring_until_hung_up) -> None:
        self.username = username
        self.secret = secret
        self.host = host
        self.originate = originate
        # Every action received, in order, as parsed headers (the Login secret included).
        self.actions: list[dict[str, str]] = []
        # Every byte every client sent, as it arrived (what an injection would have to get into).
        self.wire = bytearray()
        # What CoreShowChannels lists: one dict of CoreShowChannel headers per live channel.
        self.channels: list[dict[str, str]] = []
        # Lower-case action names answered with "Response: Error" (checked at each action).
        self.failing: set[str] = set()
        self._arrived = asyncio.Condition()
        self._server: asyncio.Server | None = None
        self._sessions: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._logged_in: set[asyncio.StreamWriter] = set()
        # The channels that exist (ringing, or silent forever), by ChannelId: a Hangup ends them.
        self._live: dict[str, asyncio.Event] = {}
        self._calls: set[asyncio.Task[None]] = set()
        # What Getvar PJSIP_DTMF_MODE() answers, by channel; any other: rfc4733, as our
        # endpoints key.
        self.dtmf_modes: dict[str, str] = {}
        # What Getvar of the admission group's count and of its limit answer (dialplan/
        # admission.conf): (payment calls carried, limit); None: "No such variable", as an
        # Asterisk without our dialplan would.
        self.payment_calls: tuple[int, int] | None = None
        # VOICEPAY_CPU_FULL_UNTIL, as Getvar answers it (the ivr's CPU guard sets it with Setvar).
        self.cpu_full_until = "0"
        self._handlers: dict[str, Callable[[dict[str, str], dict[str, str]], Reply]] = {
            "login": self._login,
            "ping": self._ping,
            "corestatus": self._core_status,
            "coreshowchannels": self._core_show_channels,
            "setvar": self._success,
            "getvar": self._getvar,
            "redirect": self._success,
            "mixmonitormute": self._success,
            "originate": self._originate,
            "hangup": self._hangup,
        }

    @property
    def port(self) -> int:
        assert self._server is not None and self._server.sockets, "not started"
        return int(self._server.sockets[0].getsockname()[1])

    def action_names(self) -> list[str]:
        return [_lookup(action, "Action") for action in self.actions]

    def sent(self, name: str) -> list[dict[str, str]]:
        """Every action called ``name`` received so far, in order."""
        return [action for action in self.actions if _lookup(action, "Action").lower() == name.lower()]

    async def received(self, name: str, count: int = 1) -> dict[str, str]:
        """The ``count``-th action called ``name``, waiting for it to arrive."""
        async with self._arrived:
            await self._arrived.wait_for(lambda: len(self.sent(name)) >= count)
        return self.sent(name)[count - 1]

    def originated(self) -> list[str]:
        """The ChannelId of every Originate received, in order (from every connection)."""
        return [_lookup(a, "ChannelId") for a in self.actions if _lookup(a, "Action") == "Originate"]

    def hung_up(self) -> list[str]:
        """The Channel of every Hangup action received, in order."""
        return [_lookup(a, "Channel") for a in self.actions if _lookup(a, "Action") == "Hangup"]

    async def start(self, port: int = 0) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, port)

    async def close(self) -> None:
        """Stop listening and hang up on every client, as a stopping Asterisk does."""
        if self._server is None:
            return
        self._server.close()
        for call in self._calls:
            call.cancel()
        await asyncio.gather(*self._calls, return_exceptions=True)
        for writer in self._sessions.values():
            writer.close()
        # Before Python 3.12, wait_closed() does not wait for the sessions: wait for them here.
        await asyncio.gather(*self._sessions, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> FakeAmi:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._sessions[task] = writer
        authenticated = False
        try:
            writer.write(GREETING)
            await writer.drain()
            while True:
                # One message per blank line; the client hanging up ends the session.
                raw = await reader.readuntil((EOL + EOL).encode())
                self.wire += raw
                request = parse_message(raw.decode().strip())
                if not request:
                    continue
                async with self._arrived:  # recorded before it is answered, as Asterisk acts first
                    self.actions.append(request)
                    self._arrived.notify_all()
                answer = self._answer(request, authenticated)
                answers = answer if isinstance(answer, list) else [answer]
                action = _lookup(request, "Action").lower()
                if action == "login":
                    authenticated = answers[0]["Response"] == "Success"
                    if authenticated:
                        self._logged_in.add(writer)
                writer.write(b"".join(format_message(message) for message in answers))
                await writer.drain()
                if action == "originate" and answers[0]["Response"] == "Success":
                    call = asyncio.create_task(self._call(request, writer))
                    self._calls.add(call)
                    call.add_done_callback(self._calls.discard)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._sessions.pop(task, None)
            self._logged_in.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _answer(self, request: dict[str, str], authenticated: bool) -> Reply:
        reply = {"ActionID": _lookup(request, "ActionID")}
        action = _lookup(request, "Action").lower()
        if action != "login" and not authenticated:
            return {"Response": "Error", **reply, "Message": "Authentication Required"}
        handler = self._handlers.get(action)
        if handler is None:
            return {"Response": "Error", **reply, "Message": "Invalid/unknown command"}
        if action in self.failing:
            return {"Response": "Error", **reply, "Message": "No such channel"}
        return handler(request, reply)

    def _login(self, request: dict[str, str], reply: dict[str, str]) -> dict[str, str]:
        if (_lookup(request, "Username"), _lookup(request, "Secret")) != (self.username, self.secret):
            return {"Response": "Error", **reply, "Message": "Authentication failed"}
        return {"Response": "Success", **reply, "Message": "Authentication accepted"}

    def _ping(self, request: dict[str, str], reply: dict[str, str]) -> dict[str, str]:
        return {"Response": "Success", **reply, "Ping": "Pong", "Timestamp": "1704110400.000000"}

    def _core_status(self, request: dict[str, str], reply: dict[str, str]) -> dict[str, str]:
        return {"Response": "Success", **reply, "Message": "Core Status", **CORE_STATUS}

    def _success(self, request: dict[str, str], reply: dict[str, str]) -> dict[str, str]:
        return {"Response": "Success", **reply, "Message": "Done"}

    def _getvar(self, request: dict[str, str], reply: dict[str, str]) -> dict[str, str]:
        variable = _lookup(request, "Variable")
        admission = {f"GROUP_COUNT({dv.PAYMENT_CALLS_GROUP})": 0, dv.MAX_PAYMENT_CALLS: 1}
        if variable in admission and self.payment_calls is not None:
            return {"Response": "Success", **reply, "Variable": variable,
                    "Value": str(self.payment_calls[admission[variable]])}
        if variable == dv.CPU_FULL_UNTIL and self.payment_calls is not None:
            return {"Response": "Success", **reply, "Variable": variable,
                    "Value": self.cpu_full_until}
        if variable != "PJSIP_DTMF_MODE()":
            return {"Response": "Error", **reply, "Message": "No such variable"}
        return {"Response": "Success", **reply, "Variable": "PJSIP_DTMF_MODE()",
                "Value": self.dtmf_modes.get(_lookup(request, "Channel"), "rfc4733")}

    def _core_show_channels(self, request: dict[str, str], reply: dict[str, str]) -> Reply:
        """As Asterisk answers it: a list start, one event per channel, a completion event."""
        return [
            {"Response": "Success", **reply, "EventList": "start",
             "Message": "Channels will follow"},
            *({"Event": "CoreShowChannel", **reply, **channel} for channel in self.channels),
            {"Event": "CoreShowChannelsComplete", **reply, "EventList": "Complete",
             "ListItems": str(len(self.channels))},
        ]

    def _originate(self, request: dict[str, str], reply: dict[str, str]) -> dict[str, str]:
        return {"Response": "Success", **reply, "Message": "Originate successfully queued"}

    def _hangup(self, request: dict[str, str], reply: dict[str, str]) -> dict[str, str]:
        channel = _lookup(request, "Channel")
        ringing = self._live.get(channel)
        if ringing is not None:
            ringing.set()
        elif channel not in {c.get("Channel") for c in self.channels}:
            return {"Response": "Error", **reply, "Message": "No such channel"}
        return {"Response": "Success", **reply, "Message": "Channel Hungup"}

    async def _call(self, request: dict[str, str], writer: asyncio.StreamWriter) -> None:
        """What happens to an originated call, as the test's script says; then its events."""
        channel_id = _lookup(request, "ChannelId")
        hung_up = self._live[channel_id] = asyncio.Event()  # a Hangup may come at once
        outcome = ""
        try:
            outcome = await self.originate(request)
            if outcome == "ring":
                await hung_up.wait()
                outcome = "hung up"
        finally:
            if outcome != "silent":
                self._live.pop(channel_id, None)
        if outcome == "silent":
            return
        response = {"Event": "OriginateResponse", "ActionID": _lookup(request, "ActionID"),
                    "Channel": _lookup(request, "Channel"), "Uniqueid": channel_id}
        if outcome == "answered":
            response.update(Response="Success", Reason="4")
        else:
            cause, reason = _FAILURES[outcome]
            self._broadcast({"Event": "Hangup", "Uniqueid": channel_id, "Cause": cause})
            response.update(Response="Failure", Reason=reason)
        with contextlib.suppress(ConnectionError):
            writer.write(format_message(response))

    def _broadcast(self, event: dict[str, str]) -> None:
        for writer in list(self._logged_in):
            with contextlib.suppress(ConnectionError):
                writer.write(format_message(event))
