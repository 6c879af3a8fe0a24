"""SQL for rankings: riders from `ranking_totals` (migration 0008), teams from `incidents`.

Scopes are lists of area paths ('CTY/ST1/'); None means everything (an admin without a scope).
A rider is in a scope when one of their areas lies in it: `ranking_totals.scope_keys` holds the
period joined to every ancestor path of the rider's areas, so that is an array overlap with
`scope_keys(period, scope)`.
"""

from __future__ import annotations

import datetime as dt

import msgspec

from gridrider.db.dashboard import STAGES, judged_sql, on_time_sql
from gridrider.db.pool import Connection, Pool

# Always walked along the points-order index (period, points DESC, member_id), whose INCLUDE columns
# answer the scope and platform checks without the table: the first page of any scope stops after a
# few hundred entries, and counting the riders above someone reads only those. The overlap is wrapped
# in coalesce() so the planner cannot choose a bitmap over a scope's every row instead (gridrider
# bench rankings: a community's page took 35 ms that way, 2 ms along the index).
RIDER_FILTER = """
t.period = $1 AND t.ranked
AND ($2::text[] IS NULL OR coalesce(t.scope_keys && $2::text[], false))
AND ($3::text IS NULL OR t.platform = $3)
"""


def scope_keys(period: str, scope: list[str] | None) -> list[str] | None:
    """What `ranking_totals.scope_keys` holds for riders of `scope` in `period` (None: everyone)."""
    return None if scope is None else [f"{period}:{path}" for path in scope]


class RiderTotal(msgspec.Struct, frozen=True):
    member_id: int
    points: int
    first_reports: int
    corroborations: int
    pseudonym: str
    display_name: str | None
    platform: str | None


# Keyset page in (points DESC, member_id) order; $4/$5 = the last row of the previous page.
# (The page is cut before members are joined: 50 lookups, not one per rider in the scope.)
RIDER_PAGE_SQL = f"""
SELECT t.member_id, t.points, t.first_reports, t.corroborations, m.pseudonym, m.display_name, t.platform
FROM (SELECT t.* FROM ranking_totals t
      WHERE {RIDER_FILTER}
        AND ($4::bigint IS NULL OR t.points < $4 OR (t.points = $4 AND t.member_id > $5))
      ORDER BY t.points DESC, t.member_id
      LIMIT $6) t
JOIN members m ON m.id = t.member_id
ORDER BY t.points DESC, t.member_id
"""

RIDER_ONE_SQL = f"""
SELECT t.member_id, t.points, t.first_reports, t.corroborations, m.pseudonym, m.display_name, t.platform
FROM ranking_totals t JOIN members m ON m.id = t.member_id
WHERE {RIDER_FILTER} AND t.member_id = $4
"""

# Riders with more points than `$4` in the scope: a range of the points-order index (or of the
# scope's GIN entries for a small scope), so the cost follows the rank, not the scope's size.
ABOVE_SQL = f"""
SELECT count(*) FROM ranking_totals t WHERE {RIDER_FILTER} AND t.points > $4
"""
# How many rank in a one-path scope (or everywhere): kept by triggers (migration 0012).
RANKED_SQL = "SELECT coalesce(sum(riders), 0) FROM ranking_counts WHERE key = $1"
# Several subtrees (a supervisor of two streets): a rider in both must count once, so count rows.
RANKED_SCAN_SQL = f"SELECT count(*) FROM ranking_totals t WHERE {RIDER_FILTER}"


def count_key(period: str, scope: list[str] | None, platform: str | None) -> str | None:
    """The ranking_counts key of a scope of at most one path; None when the scope has several."""
    if scope is not None and len(scope) != 1:
        return None
    return f"{period}:{scope[0] if scope else ''}|{platform or '*'}"


async def rider_page(conn: Connection | Pool, *, period: str, scope: list[str] | None, platform: str | None,
                     after: tuple[int, int] | None, limit: int) -> list[RiderTotal]:
    points, member = after if after else (None, None)
    rows = await conn.fetch(RIDER_PAGE_SQL, period, scope_keys(period, scope), platform, points, member, limit)
    return [RiderTotal(**r) for r in rows]


async def rider_total(conn: Connection | Pool, *, period: str, scope: list[str] | None, platform: str | None,
                      member_id: int) -> RiderTotal | None:
    row = await conn.fetchrow(RIDER_ONE_SQL, period, scope_keys(period, scope), platform, member_id)
    return RiderTotal(**row) if row else None


async def ranked_riders(conn: Connection | Pool, *, period: str, scope: list[str] | None,
                        platform: str | None) -> int:
    key = count_key(period, scope, platform)
    if key is not None:
        return int(await conn.fetchval(RANKED_SQL, key))
    return int(await conn.fetchval(RANKED_SCAN_SQL, period, scope_keys(period, scope), platform))


async def riders_above(conn: Connection | Pool, *, period: str, scope: list[str] | None, platform: str | None,
                       points: int) -> int:
    return int(await conn.fetchval(ABOVE_SQL, period, scope_keys(period, scope), platform, points))


class RiderFigures(msgspec.Struct, frozen=True):
    member_id: int
    reports: int = 0
    accepted_reports: int = 0
    duplicates: int = 0
    median_accept_s: float | None = None
    open_flags: int = 0


# Report figures as of the last refresh (rider_report_stats); open flags live (any date).
RIDER_FIGURES_SQL = """
SELECT m.id AS member_id, coalesce(s.reports, 0) AS reports, coalesce(s.accepted_reports, 0) AS accepted_reports,
       coalesce(s.duplicates, 0) AS duplicates, s.median_accept_s,
       (SELECT count(*) FROM flags f WHERE f.member_id = m.id AND f.state = 'open') AS open_flags
FROM unnest($1::bigint[]) AS m(id)
-- LATERAL … LIMIT 1: one key lookup per listed rider, never a pass over the period's rows.
LEFT JOIN LATERAL (SELECT * FROM rider_report_stats s WHERE s.period = $2 AND s.member_id = m.id LIMIT 1) s ON true
"""


async def rider_figures(conn: Connection | Pool, member_ids: list[int], period: str) -> dict[int, RiderFigures]:
    rows = await conn.fetch(RIDER_FIGURES_SQL, member_ids, period)
    return {r["member_id"]: RiderFigures(**r) for r in rows}


# ── the report-figures refresh ───────────────────────────────────────────────────────────────────

REFRESH_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtextextended('rankings:rider_report_stats', 0))"
# The migration writes the one row; re-created here if a table reset (tests, a restore) emptied it.
WATERMARK_ROW_SQL = "INSERT INTO rider_report_stats_watermark DEFAULT VALUES ON CONFLICT DO NOTHING"
WATERMARK_SQL = "SELECT last_report_id, last_incident_change FROM rider_report_stats_watermark FOR UPDATE"
# Reporters whose figures may have changed: a report new since the watermark, or a report in an
# incident changed since it. Both look back a margin (see refresh_report_stats) and may list a
# rider twice over two passes; recomputing is idempotent.
CHANGED_RIDERS_SQL = """
SELECT reporter_id FROM reports WHERE id > $1
UNION
SELECT r.reporter_id FROM incidents i JOIN reports r ON r.incident_id = i.id WHERE i.updated_at > $2
"""
# Each (period, rider) of the given riders recomputed from all their reports.
RECOMPUTE_SQL = """
WITH gone AS (DELETE FROM rider_report_stats WHERE member_id = ANY($1::bigint[]))
INSERT INTO rider_report_stats (period, member_id, reports, accepted_reports, duplicates, median_accept_s,
                                refreshed_at)
SELECT p.period, r.reporter_id, count(*),
       count(*) FILTER (WHERE i.state IN ('accepted', 'resolved', 'closed')),
       count(*) FILTER (WHERE i.id IS NOT NULL AND i.origin_report_id IS DISTINCT FROM r.id),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM i.accepted_at - r.received_at))
           FILTER (WHERE i.accepted_at >= r.received_at),
       $2
FROM (SELECT id, reporter_id, received_at, incident_id FROM reports WHERE reporter_id = ANY($1::bigint[])
      UNION ALL
      SELECT id, reporter_id, received_at, incident_id FROM archive.reports WHERE reporter_id = ANY($1::bigint[])
     ) r
-- Archived reports and incidents (jobs/archive.py) still count: a period's figures must not shrink
-- when its old incidents leave the hot tables.
LEFT JOIN (SELECT id, state, origin_report_id, accepted_at FROM incidents
           UNION ALL
           SELECT id, state, origin_report_id, accepted_at FROM archive.incidents) i ON i.id = r.incident_id
CROSS JOIN LATERAL (VALUES (to_char(r.received_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM')),
                           (to_char(r.received_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-"Q"Q')),
                           (to_char(r.received_at AT TIME ZONE 'Asia/Shanghai', 'YYYY'))) AS p (period)
GROUP BY p.period, r.reporter_id
ON CONFLICT (period, member_id) DO UPDATE
    SET reports = excluded.reports, accepted_reports = excluded.accepted_reports,
        duplicates = excluded.duplicates, median_accept_s = excluded.median_accept_s,
        refreshed_at = excluded.refreshed_at
"""
# The newest report received before `settled` (a backward walk of the primary key, a few rows).
SETTLED_REPORT_SQL = "SELECT coalesce(max(id), 0) FROM reports WHERE received_at < $1"
LAST_CHANGE_SQL = "SELECT max(updated_at) FROM incidents WHERE updated_at > $1"
ADVANCE_SQL = """
UPDATE rider_report_stats_watermark
SET last_report_id = greatest(last_report_id, $1), last_incident_change = greatest(last_incident_change, $2),
    refreshed_at = $3
"""


async def refresh_report_stats(conn: Connection, *, now: dt.datetime, margin: dt.timedelta,
                               batch: int = 2000) -> int:
    """Recompute the report figures of riders whose reports or incidents changed; returns how many.

    Rows commit in their own transactions with ids and times taken before they commit, so the
    watermarks stay `margin` behind: a report or incident change is seen by every pass until it is
    older than that. Runs in the caller's transaction, one pass at a time (advisory lock).
    """
    await conn.execute(REFRESH_LOCK_SQL)
    await conn.execute(WATERMARK_ROW_SQL)
    mark = await conn.fetchrow(WATERMARK_SQL)
    changed_since = mark["last_incident_change"]
    riders = [r["reporter_id"] for r in await conn.fetch(CHANGED_RIDERS_SQL, mark["last_report_id"], changed_since)]
    for start in range(0, len(riders), batch):
        await conn.execute(RECOMPUTE_SQL, riders[start:start + batch], now)
    settled_report = await conn.fetchval(SETTLED_REPORT_SQL, now - margin)
    last_change = await conn.fetchval(LAST_CHANGE_SQL, changed_since)
    settled_change = min(last_change, now - margin) if last_change is not None else changed_since
    await conn.execute(ADVANCE_SQL, settled_report, settled_change, now)
    return len(riders)


async def report_stats_refreshed_at(conn: Connection | Pool) -> dt.datetime | None:
    return await conn.fetchval("SELECT refreshed_at FROM rider_report_stats_watermark")


# ── teams ─────────────────────────────────────────────────────────────────────────────────────────


class TeamRow(msgspec.Struct, frozen=True):
    area_id: int
    code: str
    name_zh: str
    name_en: str | None
    incidents: int
    accept_judged: int
    accept_on_time: int
    resolve_judged: int
    resolve_on_time: int
    completed: int
    eligible: int
    rejected: int
    transfers: int
    reused_proof_photos: int


def _team_stage_columns() -> str:
    columns = []
    for stage in ("accept", "resolve"):
        due, done, mark, waiting = STAGES[stage]
        columns.append(f"count(*) FILTER (WHERE {judged_sql(due, done, mark, waiting)}) AS {stage}_judged")
        columns.append(f"count(*) FILTER (WHERE {on_time_sql(due, done, mark)}) AS {stage}_on_time")
    return ",\n           ".join(columns)


# Every grid in the scope ($1 subtree paths, NULL: all), with the incidents routed to it and created
# in [$2, $3) — merged ones left out (they live on in the incident they joined). On time per stage
# as the dashboard judges it ($4 = now). Transfers: those its own grid members made in the period
# (a transfer moves the incident away, so the grid that let it go is the actor's). Reused proof
# photos: resolutions of its incidents whose proof matched an earlier photo (DESIGN §2d).
TEAMS_SQL = f"""
WITH grids AS (
    SELECT a.id, a.code, a.name_zh, a.name_en FROM areas a
    WHERE a.level = 'grid'
      AND ($1::text[] IS NULL OR a.path LIKE ANY (SELECT p || '%' FROM unnest($1::text[]) AS p))
),
cohort AS (
    SELECT i.* FROM incidents i
    WHERE i.area_id IN (SELECT id FROM grids) AND i.created_at >= $2 AND i.created_at < $3
      AND i.state <> 'merged'
),
work AS (
    SELECT i.area_id, count(*) AS incidents,
           {_team_stage_columns()},
           count(*) FILTER (WHERE i.state IN ('resolved', 'closed')) AS completed,
           count(*) FILTER (WHERE i.state <> 'rejected') AS eligible,
           count(*) FILTER (WHERE i.state = 'rejected') AS rejected
    FROM cohort i GROUP BY i.area_id
),
transfers AS (
    SELECT ma.area_id, count(*) AS transfers
    FROM incident_events e
    JOIN members m ON m.id = e.actor_id AND m.role = 'grid_member'
    JOIN member_areas ma ON ma.member_id = e.actor_id AND ma.area_id IN (SELECT id FROM grids)
    WHERE e.kind = 'transfer' AND e.occurred_at >= $2 AND e.occurred_at < $3
    GROUP BY ma.area_id
),
reused AS (
    SELECT c.area_id, count(*) AS reused_proof_photos
    FROM photos p JOIN cohort c ON c.id = p.incident_id
    WHERE p.role = 'proof' AND p.reused_of_photo_id IS NOT NULL
    GROUP BY c.area_id
)
SELECT g.id AS area_id, g.code, g.name_zh, g.name_en,
       coalesce(w.incidents, 0) AS incidents,
       coalesce(w.accept_judged, 0) AS accept_judged, coalesce(w.accept_on_time, 0) AS accept_on_time,
       coalesce(w.resolve_judged, 0) AS resolve_judged, coalesce(w.resolve_on_time, 0) AS resolve_on_time,
       coalesce(w.completed, 0) AS completed, coalesce(w.eligible, 0) AS eligible,
       coalesce(w.rejected, 0) AS rejected, coalesce(t.transfers, 0) AS transfers,
       coalesce(r.reused_proof_photos, 0) AS reused_proof_photos
FROM grids g
LEFT JOIN work w ON w.area_id = g.id
LEFT JOIN transfers t ON t.area_id = g.id
LEFT JOIN reused r ON r.area_id = g.id
WHERE $4::timestamptz IS NOT NULL
"""


async def team_rows(conn: Connection | Pool, *, scope: list[str] | None, start: dt.datetime, end: dt.datetime,
                    now: dt.datetime) -> list[TeamRow]:
    return [TeamRow(**r) for r in await conn.fetch(TEAMS_SQL, scope, start, end, now)]
