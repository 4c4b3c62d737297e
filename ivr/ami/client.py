"""The ivr service's AMI connection (panoramisk), with the few actions the service uses.

panoramisk reconnects by itself after a disconnect; this wrapper adds timeouts so a dead Asterisk
makes a health check answer "down" instead of hanging.
"""

from __future__ import annotations

import asyncio
import logging

from panoramisk import Manager

from ivr.ami.protocol import AmiProtocol
from ivr.config import Settings

__all__ = ["AmiClient", "ORIGINATE_REASONS"]

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
        self.manager = Manager(
            loop=asyncio.get_running_loop(),
            host=self._settings.ami_host,
            port=self._settings.ami_port,
            username=self._settings.ami_user,
            secret=self._settings.ami_secret,
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
        if not self.connected:
            raise ConnectionError("AMI not connected")
        assert self.manager is not None
        return await asyncio.wait_for(self.manager.send_action(action), timeout)

    def on_event(self, name: str, callback) -> None:
        """Call ``callback(event)`` for every AMI event called ``name``."""
        assert self.manager is not None, "start() first"
        self.manager.register_event(name, lambda _manager, event: callback(event))

    async def originate(self, *, action_id: str, channel: str, channel_id: str, context: str,
                        variables: dict[str, str], timeout_ms: int, caller_id: str) -> str:
        """Place a call and wait until it is answered or fails; returns the outcome in words.

        An asynchronous Originate is answered twice: "successfully queued" at once, then an
        OriginateResponse event when the call is answered or fails. panoramisk collects both into
        one reply. ``channel_id`` becomes the channel's unique id, so the call can be hung up by it
        (cancel) before anyone knows its channel name. Returns "answered", a failure reason from
        ORIGINATE_REASONS, or "AMI unavailable" / "no response".
        """
        action = {
            "Action": "Originate",
            "ActionID": action_id,
            "Channel": channel,
            "ChannelId": channel_id,
            "Context": context,
            "Exten": "s",
            "Priority": "1",
            "Timeout": str(timeout_ms),
            "CallerID": caller_id,
            "Async": "true",
            "Variable": ",".join(f"{k}={v}" for k, v in variables.items()),
        }
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

    async def channels(self) -> list[dict[str, str]]:
        """Every live channel (CoreShowChannels): name, unique id, bridge id, state..."""
        reply = await self.action({"Action": "CoreShowChannels"}, timeout=5)
        messages = reply if isinstance(reply, list) else [reply]
        return [dict(m) for m in messages if m.get("Event") == "CoreShowChannel"]

    async def setvar(self, channel: str, name: str, value: str) -> bool:
        reply = await self.action({"Action": "Setvar", "Channel": channel, "Variable": name,
                                   "Value": value})
        return bool(getattr(reply, "success", False))

    async def redirect(self, channel: str, context: str, *, priority: str = "1",
                       extra_channel: str | None = None, extra_context: str | None = None) -> bool:
        """Send a channel (and optionally a second one, atomically, to its s,1) to ``context``,s,
        ``priority`` (a number or a dialplan label)."""
        action = {"Action": "Redirect", "Channel": channel, "Context": context, "Exten": "s",
                  "Priority": priority}
        if extra_channel:
            action.update(ExtraChannel=extra_channel, ExtraContext=extra_context or context,
                          ExtraExten="s", ExtraPriority="1")
        reply = await self.action(action)
        return bool(getattr(reply, "success", False))

    async def mute_recording(self, channel: str, muted: bool) -> bool:
        """Mute (silence written in its place) or unmute both directions of the MixMonitor
        recording on ``channel``. False if Asterisk refused: no such channel, or no recording."""
        reply = await self.action({"Action": "MixMonitorMute", "Channel": channel,
                                   "Direction": "both", "State": "1" if muted else "0"})
        return bool(getattr(reply, "success", False))

    async def hangup(self, channel: str) -> bool:
        try:
            reply = await self.action({"Action": "Hangup", "Channel": channel})
        except (ConnectionError, asyncio.TimeoutError):
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
