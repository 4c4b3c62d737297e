"""FastAGI takes sessions only from the allowed networks (loopback unless configured), over real
sockets: a stranger's connection is closed before a byte of it is read, and no flow runs."""

from __future__ import annotations

import asyncio
import logging

import pytest

from ivr.agi.channel import AgiChannel
from ivr.agi.server import FastAgiServer, _peer_allowed, parse_networks
from ivr.config import LOOPBACK_NETWORKS, load_settings

HEADERS = b"agi_network: yes\nagi_network_script: probe\nagi_uniqueid: 1715000000.1\n\n"


async def _session(allowed: str | None) -> tuple[list[str], bytes]:
    """One session from 127.0.0.1 to a server allowing ``allowed`` (None: the default); the
    flows that ran and every byte the server sent back."""
    ran: list[str] = []

    async def probe(channel: AgiChannel) -> None:
        ran.append(channel.uniqueid)
        await channel.verbose("hello")

    kwargs = {} if allowed is None else {"allowed_peers": parse_networks(allowed)}
    server = FastAgiServer({"probe": probe}, **kwargs)
    await server.start("127.0.0.1", 0)
    port = server._server.sockets[0].getsockname()[1]  # noqa: SLF001
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(HEADERS)
        await writer.drain()
        try:
            answer = await asyncio.wait_for(reader.readline(), 5)
        except ConnectionResetError:  # closed with our headers unread: the kernel resets
            answer = b""
        if answer:  # the flow's VERBOSE: answer it, as Asterisk would, and read to the close
            writer.write(b"200 result=1\n")
            await writer.drain()
            answer += await asyncio.wait_for(reader.read(), 5)
        writer.close()
        return ran, answer
    finally:
        await server.stop()


async def test_loopback_is_allowed_by_default() -> None:
    """The control: the same session from loopback reaches its flow."""
    ran, answer = await _session(None)
    assert ran == ["1715000000.1"]
    assert answer.startswith(b'VERBOSE "hello"')


async def test_a_peer_outside_the_allowed_networks_is_closed_unread(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "ivr.agi.server")
    ran, answer = await _session("10.9.8.7/32, 192.0.2.0/24")
    assert ran == [] and answer == b""
    assert "FastAGI: connection from 127.0.0.1 refused" in caplog.text


def test_the_default_is_loopback_and_bad_entries_are_named() -> None:
    assert load_settings().agi_allowed_peers == LOOPBACK_NETWORKS
    assert load_settings().agi_host == "127.0.0.1"
    loopback = parse_networks(LOOPBACK_NETWORKS)
    assert _peer_allowed(("127.0.0.1", 4573), loopback)
    assert _peer_allowed(("::1", 4573, 0, 0), loopback)
    assert _peer_allowed(("::ffff:127.0.0.1", 4573, 0, 0), loopback)  # IPv4 on a dual socket
    assert not _peer_allowed(("192.0.2.10", 4573), loopback)
    assert not _peer_allowed(("::ffff:192.0.2.10", 4573, 0, 0), loopback)
    assert not _peer_allowed(None, loopback)
    with pytest.raises(ValueError, match="'asterisk.example'"):
        parse_networks("127.0.0.1, asterisk.example")
