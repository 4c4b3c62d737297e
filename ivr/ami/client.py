"""The ivr service's AMI connection (panoramisk), with the few actions the service uses.

panoramisk reconnects by itself after a disconnect; this wrapper adds timeouts so a dead Asterisk
makes a health check answer "down" instead of hanging.

Nothing reaches the wire that could inject: panoramisk writes ``Name: value`` lines as given, so
a CR/LF in a value would be a header of our choosing, and Asterisk splits an Originate's
``Variable`` on commas and later expands channel variables inside application arguments. Every
value is therefore checked against what it may be (a channel name, an id, a caller id) before
it is sent, and a channel is only ever sent into one of the fixed dialplan contexts below; an
``Application`` is never originated. A refused value raises ``UnsafeAmiValue`` naming the field,
never the value.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import NamedTuple

from panoramisk import Manager

from ivr import dialplan_variables as dv
from ivr.ami.protocol import AmiProtocol
from ivr.asterisk_secrets import AsteriskSecretsError, ami_secret
from ivr.config import Settings

__all__ = ["AmiClient", "PaymentLines", "ORIGINATE_REASONS", "ORIGINATE_CONTEXTS",
           "REDIRECT_CONTEXTS", "UnsafeAmiValue"]

# The only dialplan contexts the service sends channels into (dialplan/*.conf): a call placed to
# a cardholder starts in the callback flow; a one-line payment moves the caller into the payment
# IVR and the agent aside (or, talk-through, to listen and talk to the caller), and back.
ORIGINATE_CONTEXTS = frozenset({"pay-callback"})
REDIRECT_CONTEXTS = frozenset({"pay-oneline", "agent-wait", "agent-talkthrough",
                               "agent-talkthrough-prompts", "agent-released"})

# What each kind of value may be. None admits CR/LF, "&", ",", "|", "$", "{", quotes, spaces or
# parentheses (a function call), and each is bounded in length.
_CHANNEL = re.compile(r"[A-Za-z][A-Za-z0-9]{0,15}/[A-Za-z0-9_.@+;-]{1,100}")  # PJSIP/7101-0000001a
_TOKEN = re.compile(r"[A-Za-z0-9_.@+;-]{1,100}")  # ids, unique ids, a payment id as a value
_VARIABLE_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,63}")  # a plain variable, never FUNCTION(...)
_PRIORITY = re.compile(r"[0-9]{1,5}|[A-Za-z][A-Za-z0-9_-]{0,40}")  # a number or a label
_CALLER_NAME = re.compile(r"[\w .-]{0,40}")  # inside the quotes we put around it
_CALLER_NUMBER = re.compile(r"\+?[0-9]{1,20}")


class UnsafeAmiValue(ValueError):
    """A value was refused before anything was sent to Asterisk; the message names its field."""

    def __init__(self, field: str) -> None:
        super().__init__(f"AMI {field} refused: not a value that field may hold")
        self.field = field


class PaymentLines(NamedTuple):
    """Asterisk's admission as it stands (dialplan/admission.conf)."""

    carried: int    # payment calls up now
    limit: int      # VOICEPAY_MAX_PAYMENT_CALLS
    cpu_full: bool  # VOICEPAY_CPU_FULL_UNTIL ahead: the machine's CPUs refuse new payment calls

    def room_for(self, ringing: int) -> bool:
        """Room for one more payment call, counting ``ringing`` ones placed but not yet up."""
        return not self.cpu_full and self.carried + ringing < self.limit


def _checked(field: str, value: str, pattern: re.Pattern[str]) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise UnsafeAmiValue(field)
    return value


def _context(field: str, value: str, allowed: frozenset[str]) -> str:
    if value not in allowed:
        raise UnsafeAmiValue(field)
    return value


def _id_or_channel(field: str, value: str) -> str:
    """An id or a channel name: a channel variable's value (a payment id, or the agent's channel
    for the caller's leg), or the channel a Hangup names (its name, or the ChannelId we chose)."""
    if isinstance(value, str) and (_TOKEN.fullmatch(value) or _CHANNEL.fullmatch(value)):
        return value
    raise UnsafeAmiValue(field)

# OriginateResponse "Reason" values (Asterisk's AST_CONTROL_* codes) in words.
ORIGINATE_REASONS = {
    "0": "unreachable",
    "1": "hung up before answer",
    "3": "no answer",
    "5": "busy",
    "8": "congestion",
}

log = logging.getLogger(__name__)


class AmiClient:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.manager: Manager | None = None
        # panoramisk never clears `authenticated` when the connection drops, so we keep our own
        # flag from its login/disconnect callbacks: a dead Asterisk then reads "down" at once.
        self._logged_in = False

    async def start(self) -> None:
        try:
            secret = ami_secret(self._settings)
        except AsteriskSecretsError as exc:
            # Started anyway: the health check says AMI is down, and why is in the log.
            log.error("AMI: no secret to log in with: %s", exc)
            secret = ""
        self.manager = Manager(
            loop=asyncio.get_running_loop(),
            host=self._settings.ami_host,
            port=self._settings.ami_port,
            username=self._settings.ami_user,
            secret=secret,
            # Only the "call" class: the dialer needs OriginateResponse. manager.conf narrows it
            # further to a whitelist of event names.
            events="call",
            ping_delay=5,
            ping_interval=5,
            reconnect_timeout=1,
            log=logging.getLogger("ivr.ami.panoramisk"),
            protocol_factory=AmiProtocol,  # bounded, linear, one string per header
            on_login=self._on_login,
            on_disconnect=self._on_disconnect,
        )
        self.manager.connect()

    async def close(self) -> None:
        if self.manager is not None:
            self.manager.close()

    def _on_login(self, manager: Manager) -> None:
        self._logged_in = True
        log.info("AMI: logged in to %s:%d", self._settings.ami_host, self._settings.ami_port)

    def _on_disconnect(self, manager: Manager, exc: Exception | None) -> None:
        self._logged_in = False
        log.warning("AMI: connection lost; panoramisk reconnects")

    @property
    def connected(self) -> bool:
        return self._logged_in

    async def action(self, action: dict[str, str], timeout: float = 3.0):
        # The last line of defence for actions without a stricter check: no header of our own.
        for name, value in action.items():
            if any(c in f"{name}{value}" for c in "\r\n\0"):
                raise UnsafeAmiValue(name)
        if not self.connected:
            raise ConnectionError("AMI not connected")
        assert self.manager is not None
        return await asyncio.wait_for(self.manager.send_action(action), timeout)

    def on_event(self, name: str, callback) -> None:
        """Call ``callback(event)`` for every AMI event called ``name``."""
        assert self.manager is not None, "start() first"
        self.manager.register_event(name, lambda _manager, event: callback(event))

    async def originate(self, *, action_id: str, channel: str, channel_id: str, context: str,
                        variables: dict[str, str], timeout_ms: int, caller_name: str,
                        caller_number: str) -> str:
        """Place a call and wait until it is answered or fails; returns the outcome in words.

        An asynchronous Originate is answered twice: "successfully queued" at once, then an
        OriginateResponse event when the call is answered or fails. panoramisk collects both into
        one reply. ``channel_id`` becomes the channel's unique id, so the call can be hung up by it
        (cancel) before anyone knows its channel name. Returns "answered", a failure reason from
        ORIGINATE_REASONS, or "AMI unavailable" / "no response"; "not placed: ..." when Asterisk
        refused it, or when a value was refused here (``context`` not one of
        ORIGINATE_CONTEXTS, a value that could inject) and nothing was sent.
        """
        try:
            action = self._originate_action(action_id, channel, channel_id, context, variables,
                                            timeout_ms, caller_name, caller_number)
        except UnsafeAmiValue as exc:
            log.error("Originate not sent: %s", exc)
            return f"not placed: {exc}"
        try:
            reply = await self.action(action, timeout=timeout_ms / 1000 + 10)
        except ConnectionError:
            return "AMI unavailable"
        except asyncio.TimeoutError:
            return "no response"
        messages = reply if isinstance(reply, list) else [reply]
        for message in messages:
            if message.get("Event") == "OriginateResponse":
                if message.get("Response") == "Success":
                    return "answered"
                reason = message.get("Reason", "0")
                return ORIGINATE_REASONS.get(reason, f"failed (reason {reason})")
        return "not placed: " + str(messages[0].get("Message", "refused by Asterisk"))

    @staticmethod
    def _originate_action(action_id: str, channel: str, channel_id: str, context: str,
                          variables: dict[str, str], timeout_ms: int, caller_name: str,
                          caller_number: str) -> dict[str, str]:
        return {
            "Action": "Originate",
            "ActionID": _checked("ActionID", action_id, _TOKEN),
            "Channel": _checked("Channel", channel, _CHANNEL),
            "ChannelId": _checked("ChannelId", channel_id, _TOKEN),
            "Context": _context("Context", context, ORIGINATE_CONTEXTS),
            "Exten": "s",
            "Priority": "1",
            "Timeout": str(int(timeout_ms)),
            "CallerID": f'"{_checked("CallerID name", caller_name, _CALLER_NAME)}" '
                        f'<{_checked("CallerID number", caller_number, _CALLER_NUMBER)}>',
            "Async": "true",
            "Variable": ",".join(f"{_checked('Variable name', k, _VARIABLE_NAME)}="
                                 f"{_checked('Variable ' + k, v, _TOKEN)}"
                                 for k, v in variables.items()),
        }

    async def channels(self) -> list[dict[str, str]]:
        """Every live channel (CoreShowChannels): name, unique id, bridge id, state..."""
        reply = await self.action({"Action": "CoreShowChannels"}, timeout=5)
        messages = reply if isinstance(reply, list) else [reply]
        return [dict(m) for m in messages if m.get("Event") == "CoreShowChannel"]

    async def setvar(self, channel: str, name: str, value: str) -> bool:
        reply = await self.action({"Action": "Setvar", "Channel": _checked("Channel", channel, _CHANNEL),
                                   "Variable": _checked("Variable", name, _VARIABLE_NAME),
                                   "Value": _id_or_channel("Value", value)})
        return bool(getattr(reply, "success", False))

    async def redirect(self, channel: str, context: str, *, priority: str = "1",
                       extra_channel: str | None = None, extra_context: str | None = None) -> bool:
        """Send a channel (and optionally a second one, atomically, to its s,1) to ``context``,s,
        ``priority`` (a number or a dialplan label). Contexts must be in REDIRECT_CONTEXTS."""
        action = {"Action": "Redirect", "Channel": _checked("Channel", channel, _CHANNEL),
                  "Context": _context("Context", context, REDIRECT_CONTEXTS), "Exten": "s",
                  "Priority": _checked("Priority", priority, _PRIORITY)}
        if extra_channel:
            action.update(ExtraChannel=_checked("ExtraChannel", extra_channel, _CHANNEL),
                          ExtraContext=_context("ExtraContext", extra_context or context,
                                                REDIRECT_CONTEXTS),
                          ExtraExten="s", ExtraPriority="1")
        reply = await self.action(action)
        return bool(getattr(reply, "success", False))

    async def mute_recording(self, channel: str, muted: bool) -> bool:
        """Mute (silence written in its place) or unmute both directions of the MixMonitor
        recording on ``channel``. False if Asterisk refused: no such channel, or no recording."""
        reply = await self.action({"Action": "MixMonitorMute",
                                   "Channel": _checked("Channel", channel, _CHANNEL),
                                   "Direction": "both", "State": "1" if muted else "0"})
        return bool(getattr(reply, "success", False))

    async def dtmf_mode(self, channel: str) -> str | None:
        """How the phone on ``channel`` sends its keys, as its PJSIP endpoint says (``rfc4733``,
        ``inband``, ``info``, ``auto``...); None if Asterisk did not say."""
        reply = await self.action({"Action": "Getvar",
                                   "Channel": _checked("Channel", channel, _CHANNEL),
                                   "Variable": "PJSIP_DTMF_MODE()"})
        if not getattr(reply, "success", False):
            return None
        return reply.get("Value") or None

    async def payment_calls(self) -> PaymentLines | None:
        """The payment calls Asterisk carries now, the most it admits, and whether the machine's
        CPUs refuse more (dialplan/admission.conf); None if Asterisk did not say."""
        try:
            carried = await self.action({"Action": "Getvar",
                                         "Variable": f"GROUP_COUNT({dv.PAYMENT_CALLS_GROUP})"})
            limit = await self.action({"Action": "Getvar", "Variable": dv.MAX_PAYMENT_CALLS})
            cpu_full = await self.action({"Action": "Getvar", "Variable": dv.CPU_FULL_UNTIL})
        except (ConnectionError, asyncio.TimeoutError):
            return None
        try:
            return PaymentLines(int(carried.get("Value") or ""), int(limit.get("Value") or ""),
                                int(cpu_full.get("Value") or "0") > time.time())
        except (AttributeError, ValueError):
            return None

    async def set_global(self, name: str, value: str) -> bool:
        """Set one of our dialplan globals (dialplan_variables.py) to a token; False if Asterisk
        did not take it (refused, or AMI down: the caller tries again later)."""
        try:
            reply = await self.action({"Action": "Setvar",
                                       "Variable": _checked("Variable", name, _VARIABLE_NAME),
                                       "Value": _checked("Value", value, _TOKEN)})
        except (ConnectionError, asyncio.TimeoutError):
            return False
        return bool(getattr(reply, "success", False))

    async def mute_audio_to(self, channel: str, muted: bool) -> bool:
        """Silence, or stop silencing, all audio Asterisk sends to ``channel`` (MUTEAUDIO(out):
        each frame is dropped, so the phone gets no RTP at all). False if Asterisk refused."""
        return await self._set_function(channel, "MUTEAUDIO(out)", "on" if muted else "off")

    async def pass_keys_from(self, channel: str) -> bool:
        """Stop dropping the keys ``channel``'s phone sends (the FRAME_DROP(RX) set before a
        talk-through agent's ChanSpy, dialplan/oneline.conf): a FRAME_DROP replaces the one
        before it, and one naming no frame type drops nothing. False if Asterisk refused."""
        return await self._set_function(channel, "FRAME_DROP(RX)", "")

    async def _set_function(self, channel: str, function: str, value: str) -> bool:
        """Setvar of one of our own dialplan functions and values (never a caller's input, so
        not put through setvar's checks, which refuse a function name and an empty value)."""
        reply = await self.action({"Action": "Setvar",
                                   "Channel": _checked("Channel", channel, _CHANNEL),
                                   "Variable": function, "Value": value})
        return bool(getattr(reply, "success", False))

    async def hangup(self, channel: str) -> bool:
        try:
            reply = await self.action({"Action": "Hangup",
                                       "Channel": _id_or_channel("Channel", channel)})
        except (ConnectionError, asyncio.TimeoutError, UnsafeAmiValue):
            return False
        return bool(getattr(reply, "success", False))

    async def ping(self) -> bool:
        try:
            reply = await self.action({"Action": "Ping"})
        except (ConnectionError, asyncio.TimeoutError):
            return False
        return bool(getattr(reply, "success", False))

    async def asterisk_status(self) -> dict[str, str] | None:
        """CoreStatus: proves Asterisk itself (not just its AMI socket) answers."""
        try:
            reply = await self.action({"Action": "CoreStatus"})
        except (ConnectionError, asyncio.TimeoutError):
            return None
        if not getattr(reply, "success", False):
            return None
        return {"startup": f"{reply.get('CoreStartupDate', '')} {reply.get('CoreStartupTime', '')}",
                "current_calls": reply.get("CoreCurrentCalls", "")}
