"""The FastAGI server: accepts Asterisk's connections and hands each call to its flow.

Routes are an explicit table (script name -> handler), built once by the service, so what the
dialplan can reach is visible in one place. A script not in the table is refused, and so is a
connection from an address outside the allowed networks (loopback unless configured): whoever can
open a FastAGI session drives a call, so only Asterisk may.

Overload: with ``max_sessions``, a session that would make more flows run at once than that is
given its route's ``busy`` handler instead (the self-service line's "all lines are busy", then the
dialplan hangs up), so a new caller is told at once and the flows in progress keep their share of
the service. A route without a busy handler is always taken: its call is a payment already under
way (a callback the cardholder answered, a one-line caller an agent switched over).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping

from ivr import dialplan_variables as dv
from ivr.agi.channel import AgiChannel, AgiError, read_agi_headers
from ivr.config import LOOPBACK_NETWORKS

__all__ = ["FastAgiServer", "Handler", "parse_networks"]

log = logging.getLogger(__name__)

Handler = Callable[[AgiChannel], Awaitable[None]]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str) -> tuple[Network, ...]:
    """``"127.0.0.0/8, 10.1.2.3"`` as networks; a ValueError names the entry that is not one."""
    networks = []
    for entry in (e.strip() for e in text.split(",")):
        if entry:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(f"not an address or network: {entry!r}") from None
    return tuple(networks)


def _peer_allowed(peer: object, networks: Iterable[Network]) -> bool:
    try:
        address = ipaddress.ip_address(peer[0])  # type: ignore[index]
    except (TypeError, IndexError, ValueError):
        return False  # not an IP peer at all
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


class FastAgiServer:
    def __init__(self, routes: Mapping[str, Handler], *,
                 allowed_peers: Iterable[Network] = parse_networks(LOOPBACK_NETWORKS),
                 max_sessions: int | None = None, busy: Mapping[str, Handler] | None = None) -> None:
        self._routes = dict(routes)
        self._allowed_peers = tuple(allowed_peers)
        self._server: asyncio.base_events.Server | None = None
        self._sessions: set[asyncio.Task] = set()
        self._max_sessions = max_sessions
        self._busy = dict(busy or {})
        self._flows = 0  # sessions running a route's handler now (busy answers not counted)

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._handle, host, port)
        log.info("FastAGI listening on %s:%d, routes: %s", host, port, ", ".join(sorted(self._routes)))

    async def stop(self, drain_seconds: float = 0.0) -> None:
        """Take no new calls; give the calls in progress up to ``drain_seconds`` to end, then cut
        them off.

        With the listener closed, Asterisk's ``AGI()`` fails at once and its dialplan sends the
        caller to the failure context, so no caller waits on a service that is going away. A call
        cut off with an authorization in flight still records its answer (``ivr.paying``).
        """
        if self._server is not None:
            self._server.close()
        unfinished = set(self._sessions)
        if unfinished and drain_seconds > 0:
            log.info("FastAGI: no new calls; waiting up to %gs for %d in progress", drain_seconds,
                     len(unfinished))
            _, unfinished = await asyncio.wait(unfinished, timeout=drain_seconds)
        if unfinished:
            log.warning("FastAGI: cutting off %d calls still in progress", len(unfinished))
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        try:
            peer = writer.get_extra_info("peername")
            if not _peer_allowed(peer, self._allowed_peers):
                # Closed before a byte is read: nothing a stranger sends reaches a flow.
                log.warning("FastAGI: connection from %s refused (not in VOICEPAY_AGI_ALLOWED_PEERS)",
                            peer[0] if isinstance(peer, tuple) and peer else "an unknown peer")
                return
            try:
                headers = await asyncio.wait_for(read_agi_headers(reader), timeout=10)
            except (ConnectionError, ValueError, asyncio.TimeoutError) as exc:
                log.warning("FastAGI session refused: %s", exc)
                return
            channel = AgiChannel(headers, reader, writer)
            # agi_network_script is the path of agi://host:port/<script>; arguments are not routed on.
            script = channel.script.split("?", 1)[0].strip("/")
            handler = self._routes.get(script)
            if handler is None:
                log.error("FastAGI: no route for script %r (call %s)", script, channel.uniqueid)
                await _report_failure(channel)
                return
            busy = self._full() and script in self._busy
            if busy:
                log.warning("call %s: %d flows running, the most VOICEPAY_AGI_MAX_SESSIONS allows: "
                            "%s answered busy", channel.uniqueid, self._flows, script)
                handler = self._busy[script]
            else:
                self._flows += 1
            try:
                await handler(channel)
            except AgiError as exc:
                log.info("call %s: AGI session ended: %s", channel.uniqueid, exc)
            except asyncio.CancelledError:
                # Only stop() cancels a session, and it is ended here: re-raised, asyncio's stream
                # callback would log the cancellation as an "unhandled exception".
                log.warning("call %s: cut off, the service is stopping", channel.uniqueid)
            except Exception:
                # Tracebacks of our own code are safe to log: no exception type carries card data.
                log.exception("call %s: flow %s failed", channel.uniqueid, script)
                await _report_failure(channel)
            finally:
                if not busy:
                    self._flows -= 1
        finally:
            self._sessions.discard(task)
            writer.close()
            try:
                await writer.wait_closed()
            except ConnectionError:
                pass

    def _full(self) -> bool:
        return self._max_sessions is not None and self._flows >= self._max_sessions


async def _report_failure(channel: AgiChannel) -> None:
    """Tell the dialplan the flow failed, so it routes the caller to the apology context."""
    try:
        await channel.set_variable(dv.RESULT, "failure")
    except AgiError:
        pass
