"""SQL of the CSV exports (incidents.csv, rankings.csv), read through a server-side cursor on a connection
held for the whole download.

A streamed response body is produced after its handler has returned, so it cannot use the request's
transaction: `streamed_rows` acquires a connection of its own when the body starts, and gives it back
however the body ends — finished, failed, or cancelled because the client went away.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import anyio
import asyncpg
import msgspec

from gridrider.clock import SHANGHAI
from gridrider.db.pool import Pool

# The ranking page's own rider filter ($1 period, $2 scope keys, $3 platform): the export must rank
# exactly the riders the page ranks, so it shares the text rather than restating it.
from gridrider.db.rankings import RIDER_FILTER, scope_keys

PREFETCH = 1000  # rows per cursor round trip: ~1 MB of records held at a time, few round trips

# Times are formatted by PostgreSQL: five timestamps in each of a million rows cost seconds in
# Python (astimezone + strftime), next to nothing in to_char. $1 is the time zone name.
_LOCAL = "to_char({column} AT TIME ZONE $1, 'YYYY-MM-DD HH24:MI:SS')"

# One row per incident created in [$3, $4), oldest first (ids follow creation). The first reporter is
# the credited one once fixed (at accept or rejection); before that, the reporter of the origin report.
# $2 is the language of names ('en' or anything else for Chinese); $5 the exported subtrees as LIKE
# patterns (NULL: everything, an admin without a scope) — the caller's own, or the chosen area checked
# to lie inside them (api/auth.scope_paths). Area codes hold no LIKE wildcards (a CHECK on areas.code).
# ORDER BY keeps exports predictable; the price is a sort before the first row (a million rows: ~5 s,
# spilled to temporary files within work_mem, so memory stays bounded in PostgreSQL too). Without an
# index on created_at every export scans the table; one would pay off once incidents grow large.
INCIDENTS_EXPORT_SQL = f"""
SELECT i.id,
       {_LOCAL.format(column="i.created_at")} AS created,
       CASE WHEN $2::text = 'en' THEN c.name_en ELSE c.name_zh END AS category_name,
       i.state,
       a.code AS area_code,
       CASE WHEN $2::text = 'en' THEN coalesce(a.name_en, a.name_zh) ELSE a.name_zh END AS area_name,
       i.lat, i.lon, i.report_count,
       m.pseudonym AS reporter_pseudonym,
       m.phone AS reporter_phone,
       {_LOCAL.format(column="i.dispatched_at")} AS dispatched,
       {_LOCAL.format(column="i.accepted_at")} AS accepted,
       {_LOCAL.format(column="i.resolved_at")} AS resolved,
       {_LOCAL.format(column="i.closed_at")} AS closed,
       i.dispatch_overdue_at IS NOT NULL AS dispatch_overdue,
       i.accept_overdue_at IS NOT NULL AS accept_overdue,
       i.resolve_overdue_at IS NOT NULL AS resolve_overdue,
       i.reject_reason,
       o.note
FROM incidents i
JOIN categories c ON c.code = i.category
LEFT JOIN areas a ON a.id = i.area_id
LEFT JOIN reports o ON o.id = i.origin_report_id
LEFT JOIN members m ON m.id = coalesce(i.first_reporter_id, o.reporter_id)
WHERE i.created_at >= $3 AND i.created_at < $4
  AND ($5::text[] IS NULL OR a.path LIKE ANY ($5::text[]))
ORDER BY i.id
"""


# Every rider of one ranking (period $1, scope keys $2, platform $3) in the page's order, points first.
# - `rank()` is competition ranking — 1 + the riders with strictly more points — which is how the page
#   counts (domain/rankings.py); ties share a rank.
# - `ranked` (the riders in the ranking, for "top N%") is an uncorrelated subquery, evaluated once, in
#   the same statement and so the same snapshot as the rows: a ledger row arriving mid-download cannot
#   make a rank exceed the count. A `count(*) OVER ()` would hold every row back until the last was read.
# - Report figures as the page shows them: rider_report_stats as of its last refresh (one key lookup per
#   rider), open flags live. Rates are percentages with one decimal (a supervisor reads 33.3 under
#   "(%)" more easily than 0.3333); NULL when the rider sent no report in the period.
# A county-wide scope is a hash join and a sort before the first row (50,000 riders: ~0.5 s), the sort
# spilling to temporary files past work_mem: memory stays bounded in PostgreSQL too.
RIDERS_EXPORT_SQL = f"""
SELECT rank() OVER (ORDER BY t.points DESC) AS rank,
       n.ranked,
       t.member_id, m.pseudonym, m.display_name, m.phone, t.platform, t.points,
       coalesce(s.reports, 0) AS reports,
       coalesce(s.accepted_reports, 0) AS accepted_reports,
       t.first_reports, t.corroborations,
       round(100.0 * s.accepted_reports / nullif(s.reports, 0), 1) AS acceptance_pct,
       round(100.0 * s.duplicates / nullif(s.reports, 0), 1) AS duplicate_pct,
       s.median_accept_s,
       (SELECT count(*) FROM flags f WHERE f.member_id = t.member_id AND f.state = 'open') AS open_flags
FROM ranking_totals t
JOIN members m ON m.id = t.member_id
CROSS JOIN (SELECT count(*) AS ranked FROM ranking_totals t WHERE {RIDER_FILTER}) n
LEFT JOIN rider_report_stats s ON s.period = t.period AND s.member_id = t.member_id
WHERE {RIDER_FILTER}
ORDER BY t.points DESC, t.member_id
"""


class IncidentExportQuery(msgspec.Struct, frozen=True):
    start: dt.datetime  # inclusive
    end: dt.datetime  # exclusive
    lang: str  # 'en' or 'zh-CN'
    subtree_paths: list[str] | None  # the subtrees exported (api.auth.scope_paths); None: everything


@contextlib.asynccontextmanager
async def streamed_rows(pool: Pool, sql: str, *args: Any, prefetch: int = PREFETCH,
                        ) -> AsyncIterator[AsyncIterator[asyncpg.Record]]:
    """The rows of `sql` as they come, on a connection of their own inside a read-only transaction.

    Rows stay asyncpg Records (no Struct per row): a million of them is the case this exists for.
    """
    conn = await pool.acquire()
    # A cursor only lives inside a transaction; a read-only one takes no locks that block writers.
    transaction = conn.transaction(readonly=True)
    started = False
    try:
        await transaction.start()
        started = True
        yield conn.cursor(sql, *args, prefetch=prefetch)
    finally:
        # Litestar cancels the response task when the client disconnects, and anyio re-delivers that
        # cancellation at every await in the cancelled scope. Unshielded, the rollback is cancelled and
        # asyncpg finishes the release on its own later, warning of a reset with an open transaction;
        # shielded, the connection is back in the pool within milliseconds, before the task ends.
        with anyio.CancelScope(shield=True):
            try:
                if started:
                    await transaction.rollback()  # nothing to commit; this also closes the cursor
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                pass  # a broken connection: release() closes it instead of pooling it
            finally:
                await pool.release(conn)


def incident_rows(pool: Pool, query: IncidentExportQuery, *, prefetch: int = PREFETCH,
                  ) -> contextlib.AbstractAsyncContextManager[AsyncIterator[asyncpg.Record]]:
    """The incidents of an export, in the column order of INCIDENTS_EXPORT_SQL."""
    return streamed_rows(
        pool, INCIDENTS_EXPORT_SQL, str(SHANGHAI), "en" if query.lang == "en" else "zh",
        query.start, query.end,
        None if query.subtree_paths is None else [path + "%" for path in query.subtree_paths],
        prefetch=prefetch,
    )


class RankingExportQuery(msgspec.Struct, frozen=True):
    period: str  # ranking_totals.period: 2026-11, 2026-Q4, 2026
    subtree_paths: list[str] | None  # the ranking's scope (api.auth.scope_paths); None: everyone
    platform: str | None


def ranking_rows(pool: Pool, query: RankingExportQuery, *, prefetch: int = PREFETCH,
                 ) -> contextlib.AbstractAsyncContextManager[AsyncIterator[asyncpg.Record]]:
    """Every ranked rider of a ranking, in the column order of RIDERS_EXPORT_SQL."""
    return streamed_rows(
        pool, RIDERS_EXPORT_SQL, query.period, scope_keys(query.period, query.subtree_paths), query.platform,
        prefetch=prefetch,
    )
