"""The ivr service's Redis client under a burst: found by the load benchmark at 16 calls/s
(about 700 calls at once), where redis-py's default pool (at most 100 connections, and the 101st
command at once fails with MaxConnectionsError) made the risk engine fail and payments decline."""

from __future__ import annotations

import asyncio
import dataclasses

from ivr.config import load_settings
from ivr.redis_pool import redis_client

BURST = 300  # more commands in flight at once than redis-py's default pool of 100 allows


async def test_a_burst_larger_than_the_pool_waits_for_connections_and_every_command_succeeds(
        redis_server):
    settings = dataclasses.replace(load_settings(), redis_url=redis_server, redis_max_connections=8)
    client = redis_client(settings, name="burst-under-test")
    try:
        # Each script holds its connection for a moment, so the commands overlap.
        results = await asyncio.gather(*(
            client.eval("redis.call('SET', KEYS[1], ARGV[1]) return tonumber(ARGV[1])",
                        1, f"burst:{n}", n) for n in range(BURST)))
        assert results == list(range(BURST))
        ours = [c for c in await client.client_list() if c["name"] == "burst-under-test"]
        assert 0 < len(ours) <= settings.redis_max_connections
    finally:
        await client.aclose()


async def test_closing_the_client_closes_its_pools_connections(redis_server):
    settings = dataclasses.replace(load_settings(), redis_url=redis_server)
    client = redis_client(settings, name="closed-under-test")
    await asyncio.gather(*(client.ping() for _ in range(5)))
    await client.aclose()
    watcher = redis_client(settings, name="watcher")
    try:
        names = [c["name"] for c in await watcher.client_list()]
        assert "closed-under-test" not in names and "watcher" in names
    finally:
        await watcher.aclose()
