"""The settlement run of a day and its reconciliation: built whole, committed in one step.

Keys:
    settlement:{day}                  hash: merchant id -> its record (JSON, statement.py)
    settlement:{day}:state            hash: state "settled", when, how many merchants
    settlement:{day}:reconciliation   string: the latest reconciliation report (JSON)
    settlement:days                   sorted set: settled days, by their date

Crash-safe and idempotent: the run reads the day's money and builds every merchant's record in
memory, then one Lua script writes them all with the state key, unless the state key is there
already. A process killed before that script leaves nothing of the day; after it, everything. A
second run (another instance, the next round, an operator) finds the state key and changes
nothing: it answers with what was committed.

The run waits while money of the day is in flight (ledger.DayNotReady). It runs on its own once
the day's cut-off has passed (``run_due``, every recovery period) and on demand (admin API, CLI);
an open day only when asked to close it early (``early``, for drills and the e2e test): what the
day receives after that is in no run, which the reconciliation then shows.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from ivr.payments.settlement_day import Cutoff
from ivr.payments.store import PaymentStore
from ivr.refunds.store import RefundStore
from ivr.settlement.fees import FeeTable
from ivr.settlement.ledger import DayNotReady, day_items
from ivr.settlement.reconcile import reconcile
from ivr.settlement.statement import MerchantSettlement, build_settlements
from ivr.settlement.zm_file import ZmFile, ZmFileError, file_name

__all__ = ["SettlementService", "SettlementRefused", "DayNotClosed", "NotSettled",
           "NoAcquirerFile", "SettledDay", "DayNotReady"]

log = logging.getLogger(__name__)

# KEYS: records, state, days. ARGV: day ordinal, day, committed at, merchant count, then pairs of
# merchant id and record JSON. 0 if the day was settled already (nothing written), 1 if now.
_COMMIT_LUA = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[2], 'state', 'settled', 'at', ARGV[3], 'merchants', ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[1], ARGV[2])
return 1
"""

DAYS_KEY = "settlement:days"
# How many closed days back the automatic run looks for one not settled (a service down over a
# weekend catches up).
_CATCH_UP_DAYS = 7


class SettlementRefused(Exception):
    """A run or a read the service will not do; the message says why (no card data)."""


class DayNotClosed(SettlementRefused):
    """The day's cut-off has not passed (and no early close was asked for), or it is to come."""


class NotSettled(SettlementRefused):
    """No run committed for the day (or no record of this merchant in it)."""


class NoAcquirerFile(SettlementRefused):
    """The acquirer's file of the day is not there (yet), or is not readable."""


@dataclass(frozen=True)
class SettledDay:
    day: date
    committed_at: str
    records: dict[str, MerchantSettlement]
    committed_now: bool = False  # this call committed it (False: it was settled already)

    def to_json(self) -> dict[str, Any]:
        return {"day": self.day.isoformat(), "state": "settled", "committed_at": self.committed_at,
                "payout_date": (self.day + timedelta(days=1)).isoformat(),
                "merchants": [r.to_json() for r in self.records.values()]}


def _key(day: date) -> str:
    return f"settlement:{day.isoformat()}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class SettlementService:
    def __init__(self, redis: aioredis.Redis, payments: PaymentStore, refunds: RefundStore, *,
                 cutoff: Cutoff, fees: FeeTable, acquirer_files: Path,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 before_commit: Callable[[date], Awaitable[None]] | None = None) -> None:
        self._redis = redis
        self._payments = payments
        self._refunds = refunds
        self._cutoff = cutoff
        self._fees = fees
        self._acquirer_files = Path(acquirer_files)
        self._clock = clock
        # Called between building and committing: tests crash a run there.
        self._before_commit = before_commit
        self._commit = redis.register_script(_COMMIT_LUA)

    def __repr__(self) -> str:
        return f"SettlementService(cutoff={self._cutoff}, files={str(self._acquirer_files)!r})"

    def last_closed_day(self) -> date:
        return self._cutoff.day_of(self._clock()) - timedelta(days=1)

    async def run(self, day: date, *, early: bool = False) -> SettledDay:
        """Settle ``day`` (or answer with its settlement if it was settled already)."""
        settled = await self.get(day)
        if settled is not None:
            return settled
        open_day = self._cutoff.day_of(self._clock())
        if day > open_day or (day == open_day and not early):
            raise DayNotClosed(f"{day} is not closed: its cut-off ({self._cutoff}) has not passed")
        records = build_settlements(day, await day_items(self._payments, self._refunds,
                                                         self._cutoff, day), self._fees)
        if self._before_commit is not None:
            await self._before_commit(day)
        now = self._clock().isoformat(timespec="seconds")
        pairs = [v for mid, r in records.items() for v in (mid, json.dumps(r.to_json()))]
        committed = await self._commit(keys=[_key(day), f"{_key(day)}:state", DAYS_KEY],
                                       args=[day.toordinal(), day.isoformat(), now, len(records), *pairs])
        settled = await self.get(day)
        assert settled is not None
        if committed:
            log.info("settlement %s: %d merchants settled%s", day, len(records),
                     " (closed early)" if day == open_day else "")
        return SettledDay(settled.day, settled.committed_at, settled.records, bool(committed))

    async def get(self, day: date) -> SettledDay | None:
        state = await self._redis.hgetall(f"{_key(day)}:state")
        if not state:
            return None
        raw = await self._redis.hgetall(_key(day))
        records = {_text(k): MerchantSettlement.from_json(json.loads(v)) for k, v in
                   sorted(raw.items())}
        return SettledDay(day, _text(state[b"at"]), records)

    async def statement(self, day: date, merchant_id: str) -> MerchantSettlement:
        """One merchant's record of a settled day; NotSettled if none."""
        raw = await self._redis.hget(_key(day), merchant_id)
        if raw is None:
            raise NotSettled(f"no settlement of {day} for this merchant")
        return MerchantSettlement.from_json(json.loads(raw))

    async def reconcile(self, day: date) -> dict[str, Any]:
        """Compare the acquirer's file of a settled day with the platform's money; the report
        (stored, replacing an earlier one: a corrected file can be reconciled again)."""
        if await self.get(day) is None:
            raise NotSettled(f"{day} is not settled: settle it before reconciling it")
        path = self._acquirer_files / file_name(day)
        try:
            file = ZmFile.decode(path.read_bytes())
        except FileNotFoundError:
            raise NoAcquirerFile(f"the acquirer's file of {day} ({path.name}) is not there") from None
        except ZmFileError as exc:
            raise NoAcquirerFile(f"the acquirer's file of {day} is unreadable: {exc}") from None
        if file.day != day:
            raise NoAcquirerFile(f"{path.name} is the file of {file.day}, not of {day}")
        report = reconcile(day, await day_items(self._payments, self._refunds, self._cutoff, day),
                           file).to_json()
        report["acquirer_file"] = path.name
        report["reconciled_at"] = self._clock().isoformat(timespec="seconds")
        await self._redis.set(f"{_key(day)}:reconciliation", json.dumps(report))
        log.info("reconciliation %s: %s", day, "clean" if report["clean"] else report["counts"])
        return report

    async def reconciliation(self, day: date) -> dict[str, Any] | None:
        raw = await self._redis.get(f"{_key(day)}:reconciliation")
        return None if raw is None else json.loads(raw)

    async def run_due(self) -> None:
        """The automatic round: settle each recently closed day not settled yet, then reconcile
        it once the acquirer's file is there."""
        last = self.last_closed_day()
        for back in range(_CATCH_UP_DAYS - 1, -1, -1):
            day = last - timedelta(days=back)
            try:
                await self.run(day)
                if await self.reconciliation(day) is None:
                    await self.reconcile(day)
            except DayNotReady as exc:
                log.info("settlement %s waits: %s", day, exc)
            except NoAcquirerFile as exc:
                log.info("reconciliation %s waits: %s", day, exc)
