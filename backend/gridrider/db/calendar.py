"""SQL for `calendar_overrides`, and the process-wide working-day calendar built from it."""

from __future__ import annotations

import datetime as dt

from gridrider.db.pool import Connection, Pool
from gridrider.domain.workdays import WorkCalendar

OVERRIDES_SQL = "SELECT day, is_workday FROM calendar_overrides ORDER BY day"

# Upsert by day: a reloaded file replaces what was there, and its rows take the new load time.
SAVE_OVERRIDES_SQL = """
INSERT INTO calendar_overrides (day, is_workday, note, source, created_at)
SELECT d, w, n, $4, $5 FROM unnest($1::date[], $2::boolean[], $3::text[]) AS t(d, w, n)
ON CONFLICT (day) DO UPDATE
SET is_workday = EXCLUDED.is_workday, note = EXCLUDED.note, source = EXCLUDED.source,
    created_at = EXCLUDED.created_at
"""

# Cheap enough to run per job: which database, how many rows, the latest load, how many workdays.
VERSION_SQL = """
SELECT current_database(), inet_server_addr()::text, inet_server_port(),
       count(*), max(created_at), count(*) FILTER (WHERE is_workday)
FROM calendar_overrides
"""

_cached: tuple[tuple, WorkCalendar] | None = None


async def load_overrides(conn: Connection | Pool) -> dict[dt.date, bool]:
    return {row["day"]: row["is_workday"] for row in await conn.fetch(OVERRIDES_SQL)}


async def save_overrides(conn: Connection | Pool, rows: list[tuple[dt.date, bool, str | None]], *, source: str,
                         now: dt.datetime) -> int:
    """Insert or replace overrides by day; returns how many days were written (a day given twice counts once,
    the last one wins)."""
    global _cached
    by_day = {day: (is_workday, note) for day, is_workday, note in rows}
    if not by_day:
        return 0
    days = list(by_day)
    await conn.execute(SAVE_OVERRIDES_SQL, days, [by_day[d][0] for d in days], [by_day[d][1] for d in days],
                       source, now)
    _cached = None
    return len(days)


async def work_calendar(conn: Connection | Pool) -> WorkCalendar:
    """The working-day calendar with the loaded overrides; re-read only when the table has changed."""
    global _cached
    version = tuple(await conn.fetchrow(VERSION_SQL))
    cached = _cached
    if cached is not None and cached[0] == version:
        return cached[1]
    calendar = WorkCalendar(await load_overrides(conn))
    _cached = (version, calendar)
    return calendar
