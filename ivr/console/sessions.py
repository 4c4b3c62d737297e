"""Console sessions and the login throttle, in Redis.

    console:session:{sha256(token)}   hash: agent_id, csrf; expires after the idle time
                                      (``console_session_ttl_s``), renewed by each request
    console:login:fail:{what}         counter of failed logins per agent id and per client
                                      address, expiring ``console_login_window_s`` after the first

Only a digest of the session token is a key: a Redis dump gives no cookie that would log in.
The CSRF token is random per session and must come back in a header on every write.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

import redis.asyncio as aioredis

__all__ = ["Session", "Sessions", "LoginThrottle"]


@dataclass(frozen=True, repr=False)
class Session:
    agent_id: str
    csrf: str

    def csrf_matches(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented.encode(), self.csrf.encode())

    def __repr__(self) -> str:
        return f"Session(agent_id={self.agent_id!r})"


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class Sessions:
    def __init__(self, redis: aioredis.Redis, ttl_s: int) -> None:
        self._redis = redis
        self._ttl = ttl_s

    @staticmethod
    def _key(token: str) -> str:
        return f"console:session:{_digest(token)}"

    async def open(self, agent_id: str) -> tuple[str, Session]:
        """A new session: the token for the cookie, and the session."""
        token = secrets.token_urlsafe(32)
        session = Session(agent_id, secrets.token_urlsafe(32))
        key = self._key(token)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"agent_id": session.agent_id, "csrf": session.csrf})
            pipe.expire(key, self._ttl)
            await pipe.execute()
        return token, session

    async def get(self, token: str | None) -> Session | None:
        """The live session of ``token`` (its idle time starts again), or None."""
        if not token:
            return None
        key = self._key(token)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(key)
            pipe.expire(key, self._ttl)
            raw, _ = await pipe.execute()
        if not raw:
            return None
        fields = {k.decode(): v.decode() for k, v in raw.items()}
        return Session(fields["agent_id"], fields["csrf"])

    async def close(self, token: str | None) -> None:
        if token:
            await self._redis.delete(self._key(token))


class LoginThrottle:
    """At most ``max_failures`` failed logins per agent id, and per client address, within the
    window: then every login for it is refused until the window ends, right password or not."""

    def __init__(self, redis: aioredis.Redis, max_failures: int, window_s: int) -> None:
        self._redis = redis
        self._max = max_failures
        self._window = window_s

    @staticmethod
    def _keys(agent_id: str, client: str) -> list[str]:
        # Digests: the agent id typed may be anything, and is not ours to keep in a key name.
        return [f"console:login:fail:agent:{_digest(agent_id)}",
                f"console:login:fail:client:{_digest(client)}"]

    async def blocked_for(self, agent_id: str, client: str) -> int:
        """Seconds until a login may be tried again; 0 if it may be tried now."""
        wait = 0
        for key in self._keys(agent_id, client):
            count = await self._redis.get(key)
            if count is not None and int(count) >= self._max:
                wait = max(wait, await self._redis.ttl(key))
        return max(wait, 0)

    async def failed(self, agent_id: str, client: str) -> None:
        for key in self._keys(agent_id, client):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, self._window, nx=True)
                await pipe.execute()

    async def succeeded(self, agent_id: str) -> None:
        await self._redis.delete(self._keys(agent_id, "")[0])
