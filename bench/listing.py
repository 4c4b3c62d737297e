"""Listing payments with 1,000,000 stored: `GET /v1/payments` must not slow down as Redis fills.

Fills a private redis-server with a million payment hashes shaped like real ones (written by a
Lua loop inside Redis, so filling takes seconds, not minutes), then times the store's listing:
the newest 50, and the newest 50 in a rare state (one payment in 100).
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import tempfile
import time

import redis.asyncio as aioredis

from ivr.payments.store import RECENT_KEY, PaymentStore

__all__ = ["bench_listing"]

# ARGV: first index, count, creation time. One payment in 100 is "declined", the rest "approved".
_FILL_LUA = """
local first, count, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
for i = first, first + count - 1 do
  local id = string.format('pay_bench%014d', i)
  local status = (i % 100 == 0) and 'declined' or 'approved'
  redis.call('HSET', 'pay:' .. id, 'id', id, 'status', status, 'mode', 'callback',
             'merchant_id', 'M000001', 'merchant_order_id', 'B-' .. i, 'amount_minor', 8800,
             'currency', 'CNY', 'card_type', 'debit', 'pan_first6', '622188', 'pan_last4', '0011',
             'mobile', '13900000001', 'language', 'zh', 'created_at', '2026-11-27T00:00:00.000Z',
             'updated_at', '2026-11-27T00:00:00.000Z', 'response_code', '00', 'rrn', '000000000001')
  redis.call('ZADD', KEYS[1], now + i / 1e6, id)
  redis.call('ZADD', 'payments:status:' .. status, now + i / 1e6, id)
end
return count
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def bench_listing(report, total: int = 1_000_000, rounds: int = 200) -> None:
    with tempfile.TemporaryDirectory() as data:
        port = _free_port()
        proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                 "--dir", data, "--save", "", "--appendonly", "no"],
                                stdout=subprocess.DEVNULL)
        client = aioredis.Redis.from_url(f"redis://127.0.0.1:{port}/0")
        try:
            while True:
                try:
                    await client.ping()
                    break
                except aioredis.ConnectionError:
                    await asyncio.sleep(0.05)
            fill = client.register_script(_FILL_LUA)
            started = time.perf_counter()
            for first in range(0, total, 50_000):
                await fill(keys=[RECENT_KEY], args=[first, min(50_000, total - first), time.time()])
            filled_s = time.perf_counter() - started
            memory = (await client.info("memory"))["used_memory_human"]
            print(f"listing: {await client.zcard(RECENT_KEY):,} payments stored "
                  f"(filled in {filled_s:.1f} s, Redis uses {memory})")
            store = PaymentStore(client)
            for name, status in (("list_newest_50", None), ("list_declined_50", "declined")):
                samples = []
                for _ in range(rounds):
                    start = time.perf_counter()
                    found = await store.recent(status=status, limit=50)
                    samples.append(time.perf_counter() - start)
                    assert len(found) == 50
                report(name, samples, "ms", 1e3)
        finally:
            await client.aclose()
            proc.terminate()
            proc.wait()
