"""Block, allow and review lists of cards, mobiles, ID numbers, merchants and sources.

One Redis hash per list and kind (``risk:list:<list>:<kind>``): field = the value's keyed digest
(``subjects.py``), value = JSON with its masked label, a note and when it was added. No clear value
is ever stored, so an entry is removed by its digest (the listing shows it). Every change is
appended to the lists audit stream. Rules see hits as ``"<list>:<kind>"`` in the ``lists`` fact.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from ivr.risk.audit import LISTS, RiskAudit
from ivr.risk.facts import LIST_NAMES
from ivr.risk.subjects import KINDS, Subject, SubjectDigester, check_subject

__all__ = ["ListEntry", "RiskLists", "UnknownList"]


class UnknownList(ValueError):
    """Not one of the lists or kinds; the message says which exist."""


@dataclass(frozen=True)
class ListEntry:
    digest: str
    label: str
    note: str
    added_at: float

    def to_json(self) -> dict[str, object]:
        return {"digest": self.digest, "label": self.label, "note": self.note,
                "added_at": self.added_at}


def _key(name: str, kind: str) -> str:
    if name not in LIST_NAMES:
        raise UnknownList(f"no list {name!r}: one of {', '.join(LIST_NAMES)}")
    if kind not in KINDS:
        raise UnknownList(f"no kind {kind!r}: one of {', '.join(KINDS)}")
    return f"risk:list:{name}:{kind}"


class RiskLists:
    def __init__(self, redis: aioredis.Redis, digester: SubjectDigester, audit: RiskAudit) -> None:
        self._redis = redis
        self._digester = digester
        self._audit = audit

    @property
    def digester(self) -> SubjectDigester:
        """The engine must digest payments exactly as the lists digest their entries."""
        return self._digester

    async def add(self, name: str, kind: str, value: str, note: str = "") -> ListEntry:
        """``value`` checked as a ``kind`` first (ValidationError: never stored, never echoed)."""
        _key(name, kind)
        return await self.add_subject(name, self._digester.subject(kind, check_subject(kind, value)),
                                      note)

    async def add_subject(self, name: str, subject: Subject, note: str = "") -> ListEntry:
        """An already digested subject (``add`` checks a clear value first)."""
        entry = ListEntry(subject.digest, subject.label, note, time.time())
        await self._redis.hset(_key(name, subject.kind), subject.digest, json.dumps(
            {"label": entry.label, "note": note, "added_at": entry.added_at}, ensure_ascii=False))
        await self._audit.append(LISTS, {"change": "add", "list": name, "kind": subject.kind,
                                         "digest": entry.digest, "label": entry.label,
                                         "note": note})
        return entry

    async def remove(self, name: str, kind: str, digest: str) -> bool:
        """False if the list held no such entry."""
        removed = bool(await self._redis.hdel(_key(name, kind), digest))
        if removed:
            await self._audit.append(LISTS, {"change": "remove", "list": name, "kind": kind,
                                             "digest": digest})
        return removed

    async def entries(self, name: str, kind: str) -> list[ListEntry]:
        raw = await self._redis.hgetall(_key(name, kind))
        entries = []
        for digest, value in raw.items():
            data = json.loads(value)
            entries.append(ListEntry(digest.decode() if isinstance(digest, bytes) else digest,
                                     data["label"], data["note"], data["added_at"]))
        return sorted(entries, key=lambda e: e.added_at)

    async def hits(self, subjects: dict[str, Subject]) -> set[str]:
        """``{"block:card", ...}``: every list each of the payment's subjects is on, looked up
        under the current and the older readable cardholder keys (an entry added before a
        rotation still counts until its key is retired)."""
        asked = [(name, subject, digest) for name in LIST_NAMES for subject in subjects.values()
                 for digest in subject.digests]
        async with self._redis.pipeline(transaction=False) as pipe:
            for name, subject, digest in asked:
                pipe.hexists(_key(name, subject.kind), digest)
            found = await pipe.execute()
        return {f"{name}:{subject.kind}" for (name, subject, _), hit in zip(asked, found) if hit}
