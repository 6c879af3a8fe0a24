"""The one clock every time-dependent rule reads, so tests move time instead of sleeping.

Rules take a `Clock` and call `now()`; SQL never decides a deadline or a window with `now()`.
Days, weeks and months are Asia/Shanghai wherever a person or a boundary is involved.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """The current time, timezone-aware (UTC)."""
        ...


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


class ManualClock:
    """A clock that only moves when told to; for tests and simulations."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        start = start or dt.datetime.now(dt.UTC)
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start time")
        self._now = start

    def now(self) -> dt.datetime:
        return self._now

    def advance(self, **delta: float) -> dt.datetime:
        self._now += dt.timedelta(**delta)
        return self._now

    def set(self, when: dt.datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("ManualClock needs timezone-aware times")
        self._now = when


def local_day(when: dt.datetime) -> dt.date:
    """The Asia/Shanghai calendar day of an instant (ledger days, daily caps, rankings)."""
    return when.astimezone(SHANGHAI).date()


def local_day_start(day: dt.date) -> dt.datetime:
    """00:00 Asia/Shanghai of a day, as an aware datetime."""
    return dt.datetime.combine(day, dt.time(0), tzinfo=SHANGHAI)


def month_bounds(year: int, month: int) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a calendar month in Asia/Shanghai."""
    start = dt.datetime(year, month, 1, tzinfo=SHANGHAI)
    end = dt.datetime(year + month // 12, month % 12 + 1, 1, tzinfo=SHANGHAI)
    return start, end


def format_local(when: dt.datetime, lang: str = "zh-CN") -> str:
    """How a time is shown to a person: 11月26日 14:05 (zh) or 26 Nov 14:05 (en), Asia/Shanghai."""
    local = when.astimezone(SHANGHAI)
    if lang.startswith("zh"):
        return f"{local.month}月{local.day}日 {local:%H:%M}"
    return f"{local.day} {local:%b %H:%M}"
