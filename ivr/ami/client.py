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
        )
        self.manager.connect()

    async def close(self) -> None:
        if self.manager is not None:
            self.manager.close()

    @property
    def connected(self) -> bool:
        return bool(self.manager and self.manager.authenticated)

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
