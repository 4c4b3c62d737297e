"""Webhooks: tell the merchant's ``notify_url`` when a payment reaches its final state.

Each delivery is a POST of ``{"payment": <payment JSON>, "event": "payment.<status>"}`` with

    X-Voicepay-Timestamp: unix seconds of this attempt
    X-Voicepay-Signature: hex HMAC-SHA256(merchant's webhook secret, timestamp + "\\n" + body)

retried with exponential back-off (``webhook_base_delay`` doubled per attempt, at most
``webhook_max_delay``) until the receiver answers 2xx or ``webhook_max_attempts`` is reached.
Redirects are not followed: a 3xx is a failed attempt.

Everything lives in Redis, so pending deliveries survive a restart, and any number of ivr
instances share them (each due delivery claimed by one, with a lease: ivr/payments/due_work.py):
    webhooks:due        sorted set: payment id by the unix time its next attempt is due
    pay:{id}:webhook    hash: event, body, url, merchant_id, attempts, state (pending|delivered|failed),
                        owner (the instance attempting it now). The id is a payment's, or a void's
                        or refund's (``rfd_``: ``{"refund": ..., "payment": ..., "event":
                        "refund.succeeded"}``, see ``enqueue_event``)
    pay:{id}:webhooks   list: one JSON record per attempt (attempt, at, http_status, error,
                        next_retry_at), shown as ``webhook_attempts`` on GET /v1/payments/{id}

One payment has one final state, so one delivery: ``enqueue`` is idempotent and can be called by
every code path that ends a payment.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from datetime import datetime, timezone
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from ivr.config import Settings
from ivr.merchant_store import MerchantStore
from ivr.merchants import UnknownMerchant
from ivr.payments.due_work import DueWork, sleep_or_wake, worker_name
from ivr.payments.store import Payment

__all__ = ["WebhookNotifier", "webhook_signature", "webhook_attempts", "DUE_KEY"]

log = logging.getLogger(__name__)

DUE_KEY = "webhooks:due"
_BATCH = 20
_IDLE_POLL = 1.0

# Creates the delivery once: a second enqueue of the same payment changes nothing.
_ENQUEUE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'event', ARGV[1], 'body', ARGV[2], 'url', ARGV[3],
           'merchant_id', ARGV[4], 'attempts', 0, 'state', 'pending')
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[6])
return 1
"""


def webhook_signature(key: bytes, timestamp: str, body: bytes) -> str:
    """hex HMAC-SHA256 over ``timestamp + "\\n" + body``: what a receiver recomputes."""
    return hmac.new(key, timestamp.encode("ascii") + b"\n" + body, hashlib.sha256).hexdigest()


async def webhook_attempts(redis: aioredis.Redis, payment_id: str) -> list[dict[str, Any]]:
    """The recorded delivery attempts of a payment's webhook, oldest first."""
    return [json.loads(raw) for raw in await redis.lrange(f"pay:{payment_id}:webhooks", 0, -1)]


def _iso(unix: float) -> str:
    return (datetime.fromtimestamp(unix, timezone.utc).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class WebhookNotifier:
    def __init__(self, redis: aioredis.Redis, registry: MerchantStore, settings: Settings) -> None:
        self._redis = redis
        self._registry = registry
        self._settings = settings
        self._enqueue = redis.register_script(_ENQUEUE_LUA)
        # A worker that dies mid-attempt leaves its claims to be retried once their lease ends.
        self._due = DueWork(redis, DUE_KEY, "pay:{}:webhook")
        self._owner = worker_name(settings.instance_id)
        self._wake = asyncio.Event()
        self._stopping = False

    def __repr__(self) -> str:
        return "WebhookNotifier()"

    async def enqueue(self, payment: Payment) -> bool:
        """Schedule the final-state webhook of ``payment``; True if this call scheduled it.

        Payments not in a final state, without a ``notify_url`` or without a known merchant
        are not notified.
        """
        if not payment.is_final:
            return False
        return await self.enqueue_event(payment.id, f"payment.{payment.status}",
                                        {"payment": payment.to_json()}, payment)

    async def enqueue_event(self, item_id: str, event: str, content: dict[str, Any],
                            payment: Payment) -> bool:
        """Schedule one final-state webhook ``event`` (``content`` plus ``"event"`` as its body)
        about ``payment``, to its ``notify_url``; ``item_id`` names the delivery: the payment's
        id, or a void's or refund's (ivr/refunds/). Once per item; True if this call scheduled it."""
        url = payment.notify_url
        merchant_id = payment.merchant_id
        if not url:
            return False
        if not await self._registry.exists(merchant_id):
            log.warning("payment %s: no webhook, merchant %r is unknown", payment.id, merchant_id)
            return False
        body = json.dumps({**content, "event": event}, ensure_ascii=False,
                          separators=(",", ":"), sort_keys=True)
        created = await self._enqueue(
            keys=[f"pay:{item_id}:webhook", DUE_KEY],
            args=[event, body, url, merchant_id, time.time(), item_id])
        if created:
            log.info("%s: webhook %s scheduled", item_id, event)
            self._wake.set()
        return bool(created)

    async def attempts(self, payment_id: str) -> list[dict[str, Any]]:
        return await webhook_attempts(self._redis, payment_id)

    async def run(self) -> None:
        """Deliver due webhooks until ``stop()`` (or cancellation).

        The loop also ends when its task has a cancellation pending: redis-py can swallow a
        CancelledError that lands inside a command, and the worker must stop all the same.
        """
        self._stopping = False
        task = asyncio.current_task()
        timeout = aiohttp.ClientTimeout(total=self._settings.webhook_timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not self._stopping and not (task is not None and task.cancelling()):
                self._wake.clear()
                try:
                    worked = await self.run_once(session)
                    if not worked:
                        await sleep_or_wake(self._wake, await self._due.seconds_to_next(_IDLE_POLL))
                except asyncio.CancelledError:
                    raise
                except Exception:  # Redis away, say: log it and keep the worker alive
                    if self._stopping or (task is not None and task.cancelling()):
                        break
                    log.exception("webhook worker: a round failed; retrying")
                    await sleep_or_wake(self._wake, _IDLE_POLL)

    def stop(self) -> None:
        """Ask ``run`` to return once the attempts in flight are done."""
        self._stopping = True
        self._wake.set()

    async def run_once(self, session: aiohttp.ClientSession) -> int:
        """One round: attempt every delivery that is due; how many were attempted."""
        now = time.time()
        lease = now + self._settings.webhook_timeout + 30
        ids = await self._due.claim(self._owner, lease, now, _BATCH)
        await asyncio.gather(*(self._attempt(session, i) for i in ids))
        return len(ids)

    async def _attempt(self, session: aiohttp.ClientSession, payment_id: str) -> None:
        key = f"pay:{payment_id}:webhook"
        delivery = {_text(k): _text(v) for k, v in (await self._redis.hgetall(key)).items()}
        if delivery.get("state") != "pending":
            await self._due.release(payment_id, self._owner, at=None)
            return
        attempt = await self._redis.hincrby(key, "attempts", 1)
        started = time.time()
        http_status: int | None = None
        error: str | None = None
        try:
            # The secret of this moment: a rotated webhook secret signs the next attempt.
            merchant = await self._registry.get(delivery["merchant_id"])
            body = delivery["body"].encode("utf-8")
            timestamp = str(int(started))
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "voicepay-webhooks/1",
                "X-Voicepay-Event": delivery["event"],
                "X-Voicepay-Timestamp": timestamp,
                "X-Voicepay-Signature": webhook_signature(merchant.webhook_secret, timestamp, body),
            }
            async with session.post(delivery["url"], data=body, headers=headers,
                                    allow_redirects=False) as response:
                http_status = response.status
        except UnknownMerchant:
            error = "merchant unknown"
        except asyncio.TimeoutError:
            error = "timeout"
        except aiohttp.ClientError as exc:
            error = type(exc).__name__
        delivered = http_status is not None and 200 <= http_status < 300
        give_up = not delivered and (attempt >= self._settings.webhook_max_attempts
                                     or error == "merchant unknown")
        next_due: float | None = None
        if not delivered and not give_up:
            delay = min(self._settings.webhook_base_delay * 2 ** (attempt - 1),
                        self._settings.webhook_max_delay)
            next_due = time.time() + delay
        record = {"attempt": attempt, "at": _iso(started), "http_status": http_status,
                  "error": error, "next_retry_at": _iso(next_due) if next_due else None}
        await self._redis.rpush(f"pay:{payment_id}:webhooks", json.dumps(record))
        if next_due is not None:
            await self._due.release(payment_id, self._owner, at=next_due)
        else:
            await self._due.release(payment_id, self._owner, at=None,
                                    state="delivered" if delivered else "failed")
        outcome = ("delivered" if delivered else "given up" if give_up
                   else f"retry in {next_due - time.time():.1f} s")  # type: ignore[operator]
        log.info("payment %s: webhook %s attempt %d: %s, %s", payment_id, delivery["event"],
                 attempt, http_status if http_status is not None else error, outcome)
