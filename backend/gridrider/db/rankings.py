"""SQL for rankings: riders from `ranking_totals` (migration 0008), teams from `incidents`.

Scopes are lists of area paths ('CTY/ST1/'); None means everything (an admin without a scope).
A rider is in a scope when one of their areas lies in it: `ranking_totals.area_prefixes` holds
every ancestor path of the rider's areas, so that is an array overlap.
"""

from __future__ import annotations

import datetime as dt

import msgspec

from gridrider.db.pool import Connection, Pool

_RIDER_FILTER = """
t.period = $1 AND t.ranked
AND ($2::text[] IS NULL OR t.area_prefixes && $2::text[])
AND ($3::text IS NULL OR t.platform = $3)
"""


class RiderTotal(msgspec.Struct, frozen=True):
    member_id: int
    points: int
    pseudonym: str
    display_name: str | None
    platform: str | None


# Keyset page in (points DESC, member_id) order; $4/$5 = the last row of the previous page.
RIDER_PAGE_SQL = f"""
SELECT t.member_id, t.points, m.pseudonym, m.display_name, t.platform
FROM ranking_totals t JOIN members m ON m.id = t.member_id
WHERE {_RIDER_FILTER}
  AND ($4::bigint IS NULL OR t.points < $4 OR (t.points = $4 AND t.member_id > $5))
ORDER BY t.points DESC, t.member_id
LIMIT $6
"""

RIDER_ONE_SQL = f"""
SELECT t.member_id, t.points, m.pseudonym, m.display_name, t.platform
FROM ranking_totals t JOIN members m ON m.id = t.member_id
WHERE {_RIDER_FILTER} AND t.member_id = $4
"""

# One pass over the scope's rows: how many rank, and how many are above the given points values.
RIDER_COUNTS_SQL = f"""
SELECT count(*) AS ranked,
       count(*) FILTER (WHERE t.points > $4) AS above_first,
       count(*) FILTER (WHERE t.points >= $4) AS at_or_above_first,
       count(*) FILTER (WHERE t.points > $5) AS above_mine
FROM ranking_totals t
WHERE {_RIDER_FILTER}
"""


async def rider_page(conn: Connection | Pool, *, period: str, scope: list[str] | None, platform: str | None,
                     after: tuple[int, int] | None, limit: int) -> list[RiderTotal]:
    points, member = after if after else (None, None)
    rows = await conn.fetch(RIDER_PAGE_SQL, period, scope, platform, points, member, limit)
    return [RiderTotal(**r) for r in rows]


async def rider_total(conn: Connection | Pool, *, period: str, scope: list[str] | None, platform: str | None,
                      member_id: int) -> RiderTotal | None:
    row = await conn.fetchrow(RIDER_ONE_SQL, period, scope, platform, member_id)
    return RiderTotal(**row) if row else None


class RiderCounts(msgspec.Struct, frozen=True):
    ranked: int
    above_first: int
    at_or_above_first: int
    above_mine: int


async def rider_counts(conn: Connection | Pool, *, period: str, scope: list[str] | None, platform: str | None,
                       first_points: int | None, my_points: int | None) -> RiderCounts:
    row = await conn.fetchrow(RIDER_COUNTS_SQL, period, scope, platform, first_points, my_points)
    return RiderCounts(**row)


class RiderFigures(msgspec.Struct, frozen=True):
    member_id: int
    reports: int = 0
    accepted_reports: int = 0
    duplicates: int = 0
    median_accept_s: float | None = None
    first_discoveries: int = 0
    corroborations: int = 0
    open_flags: int = 0


# A rider's reports received in the period:
# - accepted: its incident was accepted (and is in work, resolved or closed);
# - duplicate: it joined an incident another report started (not the incident's origin);
# - report → accept: from receipt to acceptance, for reports that were waiting when it was accepted.
# First discoveries and corroborations are the ledger's awards dated in the period, less the ones
# reversed in it. Open flags are the rider's flags still waiting for review (any date).
RIDER_FIGURES_SQL = """
WITH report_figures AS (
    SELECT r.reporter_id AS member_id,
           count(*) AS reports,
           count(*) FILTER (WHERE i.state IN ('accepted', 'resolved', 'closed')) AS accepted_reports,
           count(*) FILTER (WHERE i.origin_report_id IS DISTINCT FROM r.id AND i.id IS NOT NULL) AS duplicates,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM i.accepted_at - r.received_at))
               FILTER (WHERE i.accepted_at >= r.received_at) AS median_accept_s
    FROM reports r LEFT JOIN incidents i ON i.id = r.incident_id
    WHERE r.reporter_id = ANY($1::bigint[]) AND r.received_at >= $2 AND r.received_at < $3
    GROUP BY r.reporter_id
),
ledger_figures AS (
    SELECT l.member_id,
           count(*) FILTER (WHERE l.reason = 'first_report')
             - count(*) FILTER (WHERE l.reason = 'reversal' AND o.reason = 'first_report') AS first_discoveries,
           count(*) FILTER (WHERE l.reason = 'corroboration')
             - count(*) FILTER (WHERE l.reason = 'reversal' AND o.reason = 'corroboration') AS corroborations
    FROM points_ledger l
    LEFT JOIN points_ledger o ON l.reason = 'reversal' AND o.id = l.source_id
    WHERE l.member_id = ANY($1::bigint[]) AND l.local_day >= $4 AND l.local_day < $5
      AND l.reason IN ('first_report', 'corroboration', 'reversal')
    GROUP BY l.member_id
),
flag_figures AS (
    SELECT f.member_id, count(*) AS open_flags
    FROM flags f WHERE f.member_id = ANY($1::bigint[]) AND f.state = 'open'
    GROUP BY f.member_id
)
SELECT m.id AS member_id,
       coalesce(rf.reports, 0) AS reports, coalesce(rf.accepted_reports, 0) AS accepted_reports,
       coalesce(rf.duplicates, 0) AS duplicates, rf.median_accept_s,
       coalesce(lf.first_discoveries, 0) AS first_discoveries, coalesce(lf.corroborations, 0) AS corroborations,
       coalesce(ff.open_flags, 0) AS open_flags
FROM unnest($1::bigint[]) AS m(id)
LEFT JOIN report_figures rf ON rf.member_id = m.id
LEFT JOIN ledger_figures lf ON lf.member_id = m.id
LEFT JOIN flag_figures ff ON ff.member_id = m.id
"""


async def rider_figures(conn: Connection | Pool, member_ids: list[int], *, start: dt.datetime, end: dt.datetime,
                        start_day: dt.date, end_day: dt.date) -> dict[int, RiderFigures]:
    rows = await conn.fetch(RIDER_FIGURES_SQL, member_ids, start, end, start_day, end_day)
    return {r["member_id"]: RiderFigures(**r) for r in rows}
