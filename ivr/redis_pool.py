"""The ivr service's Redis clients: bounded pools in which a burst of commands queues for a
connection instead of failing.

Found by the load benchmark at 16 calls/s (about 700 calls at once): redis-py's default pool
fails a command once 100 connections are in use, so the risk engine failed and payments were
declined. Blocking reads (the console's event streams hold a connection for up to 15 s each) get
a pool of their own, so open consoles never take the connections the calls need.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from ivr.config import Settings

__all__ = ["REDIS_POOL_WAIT_S", "STREAM_READERS", "redis_client"]

# How long a command waits for a free connection before it fails: far longer than any burst
# measured, short enough that a wedged Redis still surfaces as an error.
REDIS_POOL_WAIT_S = 10
# Console event streams open at once (one per payment an agent watches) before the next waits.
STREAM_READERS = 1000


def redis_client(settings: Settings, name: str = "voicepay-ivr",
                 max_connections: int | None = None) -> aioredis.Redis:
    """A client on ``settings.redis_url`` with at most ``max_connections`` connections (by
    default the operator's ``redis_max_connections``), each named ``name`` in Redis's CLIENT
    LIST so an operator sees who holds them."""
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=max_connections or settings.redis_max_connections,
        timeout=REDIS_POOL_WAIT_S, client_name=name)
    return aioredis.Redis.from_pool(pool)  # the client owns the pool: aclose() closes it
