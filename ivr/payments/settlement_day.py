"""The settlement day: which acquirer business day a moment belongs to, by the daily cut-off.

A settlement day ends at the cut-off (default 23:00 Asia/Shanghai, ``VOICEPAY_SETTLEMENT_CUTOFF``):
a payment at 22:59 local time is that day's, one at 23:00 the next day's. A void is allowed only
within the settlement day of its purchase; settlement (T+1) will close days by the same rule.

    >>> cutoff = Cutoff.parse("23:00 Asia/Shanghai")
    >>> cutoff.day_of(datetime(2026, 11, 27, 14, 59, tzinfo=timezone.utc))
    datetime.date(2026, 11, 27)
    >>> cutoff.day_of(datetime(2026, 11, 27, 15, 0, tzinfo=timezone.utc))
    datetime.date(2026, 11, 28)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone  # noqa: F401 (doctest)
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["Cutoff"]

_CUTOFF = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9]) (\S+)")


@dataclass(frozen=True)
class Cutoff:
    at: time
    zone: ZoneInfo

    @classmethod
    def parse(cls, text: str) -> Cutoff:
        """``"HH:MM Area/City"``; ValueError naming what is wrong otherwise."""
        match = _CUTOFF.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise ValueError('a cut-off is "HH:MM Area/City", e.g. "23:00 Asia/Shanghai"')
        try:
            zone = ZoneInfo(match[3])
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {match[3]!r}") from None
        return cls(time(int(match[1]), int(match[2])), zone)

    def day_of(self, moment: datetime) -> date:
        """The settlement day ``moment`` (timezone-aware) belongs to."""
        local = moment.astimezone(self.zone)
        return local.date() + timedelta(days=1) if local.time() >= self.at else local.date()

    def __str__(self) -> str:
        return f"{self.at:%H:%M} {self.zone.key}"

