"""The ivr service's AMI connection (panoramisk), with the few actions the service uses.

panoramisk reconnects by itself after a disconnect; this wrapper adds timeouts so a dead Asterisk
makes a health check answer "down" instead of hanging.
"""

from __future__ import annotations

import asyncio
import logging

from panoramisk import Manager

from ivr.config import Settings

__all__ = ["AmiClient"]

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
            # Events are off until a feature needs them: fewer bytes, and nothing to filter.
            events="off",
            ping_delay=5,
            ping_interval=5,
            reconnect_timeout=1,
            log=logging.getLogger("ivr.ami.panoramisk"),
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
