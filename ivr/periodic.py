"""One job run every so often until cancelled, a failed round logged and tried again.

The loop also ends when its task has a cancellation pending: redis-py can swallow a
CancelledError that lands inside a command (see ivr/webhooks.py), and a loop that went on would
hang the shutdown that cancelled it. (ivr/payments/retention.py's sweep loop is the same and can
use this.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

__all__ = ["run_periodically"]


async def run_periodically(job: Callable[[], Awaitable[object]], period_s: float,
                           log: logging.Logger, what: str) -> None:
    task = asyncio.current_task()
    while True:
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception:  # Redis away, say: the next round tries again
            log.exception("%s failed; retrying in %.0f s", what, period_s)
        if task is not None and task.cancelling():
            return
        await asyncio.sleep(period_s)
