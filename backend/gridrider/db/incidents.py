"""SQL for the report pipeline: reports to process, merge candidates, incidents, events."""

from __future__ import annotations

import datetime as dt

import msgspec

from gridrider.db.pool import Connection, Pool
from gridrider.domain.routing import AreaShape


class ReportToProcess(msgspec.Struct, frozen=True):
    id: int
    reporter_id: int
    category: str
    lat: float
    lon: float
    cell: int
    captured_at: dt.datetime
    state: str
    incident_id: int | None
    merge_radius_m: int
    merge_window: dt.timedelta
    life_safety: bool


class Candidate(msgspec.Struct, frozen=True):
    id: int
    lat: float
    lon: float
    state: str
    cycle: int


AREAS_VERSION_SQL = "SELECT count(*) AS n, max(updated_at) AS changed FROM areas"
AREA_SHAPES_SQL = "SELECT id, code, level, polygon, area_m2 FROM areas"

# Locked so two runs of the same job (arq may run one twice) cannot both process it.
REPORT_FOR_PROCESSING_SQL = """
SELECT r.id, r.reporter_id, r.category, r.lat, r.lon, r.cell, r.captured_at, r.state, r.incident_id,
       c.merge_radius_m, c.merge_window, c.life_safety
FROM reports r JOIN categories c ON c.code = r.category
WHERE r.id = $1
FOR UPDATE OF r
"""

# One lock per (category, H3 cell) the merge radius touches, taken in key order (no deadlock between
# two reports that share some cells), held until the transaction ends. Reports of other categories
# can never merge, so they do not wait for each other; a key collision only costs a little waiting.
LOCK_CELLS_SQL = """
SELECT pg_advisory_xact_lock(k)
FROM (SELECT hashtextextended($2, 0) # c AS k FROM unnest($1::bigint[]) AS c) AS keys
ORDER BY k
"""

MERGE_CANDIDATES_SQL = """
SELECT id, lat, lon, state, cycle FROM incidents
WHERE category = $1 AND cell = ANY($2::bigint[])
  AND state IN ('unrouted', 'dispatched', 'accepted')
  AND last_captured_at BETWEEN $3::timestamptz - $4::interval AND $3::timestamptz + $4::interval
"""
RECURRENCE_CANDIDATES_SQL = """
SELECT id, lat, lon, state, cycle FROM incidents
WHERE category = $1 AND cell = ANY($2::bigint[])
  AND state IN ('resolved', 'closed') AND resolved_at >= $3
"""

INCIDENT_ABSORB_SQL = """
UPDATE incidents SET report_count = report_count + 1, last_captured_at = greatest(last_captured_at, $2),
                     updated_at = $3
WHERE id = $1 AND state IN ('unrouted', 'dispatched', 'accepted')
RETURNING cycle
"""
INCIDENT_INSERT_SQL = """
INSERT INTO incidents (category, lat, lon, cell, area_id, state, origin_report_id, recurrence_of_id,
                       last_captured_at, dispatch_due_at, dispatched_at, accept_due_at, reached_grid_at,
                       created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)
RETURNING id
"""
REPORT_MARK_PROCESSED_SQL = """
UPDATE reports SET state = 'processed', incident_id = $2, processed_at = $3 WHERE id = $1
"""
EVENT_INSERT_SQL = """
INSERT INTO incident_events (incident_id, cycle, kind, actor_id, data, occurred_at) VALUES ($1, $2, $3, $4, $5, $6)
"""
COMMUNITY_OF_AREA_SQL = """
SELECT a.id FROM areas a JOIN areas g ON g.path LIKE a.path || '%'
WHERE g.id = $1 AND a.level = 'community'
"""


async def areas_version(conn: Connection | Pool) -> tuple[int, dt.datetime | None]:
    row = await conn.fetchrow(AREAS_VERSION_SQL)
    return row["n"], row["changed"]


async def area_shapes(conn: Connection | Pool) -> list[AreaShape]:
    return [AreaShape(**r) for r in await conn.fetch(AREA_SHAPES_SQL)]


async def report_for_processing(conn: Connection, report_id: int) -> ReportToProcess | None:
    row = await conn.fetchrow(REPORT_FOR_PROCESSING_SQL, report_id)
    return ReportToProcess(**row) if row else None


async def lock_cells(conn: Connection, cells: list[int], category: str) -> None:
    await conn.execute(LOCK_CELLS_SQL, cells, category)


async def merge_candidates(conn: Connection, *, category: str, cells: list[int], captured_at: dt.datetime,
                           window: dt.timedelta) -> list[Candidate]:
    return [Candidate(**r) for r in await conn.fetch(MERGE_CANDIDATES_SQL, category, cells, captured_at, window)]


async def recurrence_candidates(conn: Connection, *, category: str, cells: list[int],
                                resolved_since: dt.datetime) -> list[Candidate]:
    return [Candidate(**r) for r in await conn.fetch(RECURRENCE_CANDIDATES_SQL, category, cells, resolved_since)]


async def absorb_report(conn: Connection, incident_id: int, *, captured_at: dt.datetime,
                        now: dt.datetime) -> int | None:
    """The incident's cycle, or None when it closed since it was chosen as a candidate."""
    return await conn.fetchval(INCIDENT_ABSORB_SQL, incident_id, captured_at, now)


async def insert_incident(
    conn: Connection, *, category: str, lat: float, lon: float, cell: int, area_id: int | None, state: str,
    origin_report_id: int, recurrence_of_id: int | None, last_captured_at: dt.datetime,
    dispatch_due_at: dt.datetime, dispatched_at: dt.datetime | None, accept_due_at: dt.datetime | None,
    reached_grid_at: dt.datetime | None, now: dt.datetime,
) -> int:
    return await conn.fetchval(
        INCIDENT_INSERT_SQL, category, lat, lon, cell, area_id, state, origin_report_id, recurrence_of_id,
        last_captured_at, dispatch_due_at, dispatched_at, accept_due_at, reached_grid_at, now,
    )


async def mark_report_processed(conn: Connection, report_id: int, incident_id: int, now: dt.datetime) -> None:
    await conn.execute(REPORT_MARK_PROCESSED_SQL, report_id, incident_id, now)


async def insert_event(conn: Connection, *, incident_id: int, cycle: int, kind: str, actor_id: int | None,
                       data: dict, now: dt.datetime) -> None:
    await conn.execute(EVENT_INSERT_SQL, incident_id, cycle, kind, actor_id, data, now)


async def community_of(conn: Connection, area_id: int) -> int | None:
    return await conn.fetchval(COMMUNITY_OF_AREA_SQL, area_id)
