"""SQL for incident actions: scoped, state-checked transitions in one statement, and what they touch."""

from __future__ import annotations

import datetime as dt
from typing import Any

from gridrider.db.pool import Connection, Pool
from gridrider.domain.geo import M_PER_DEG_LAT

# Who the caller is to an incident, as SQL over `i` (the incident) with $2 = caller id, $3 = caller is admin.
SCOPES = {
    "grid": "i.area_id IN (SELECT ma.area_id FROM member_areas ma WHERE ma.member_id = $2)",
    "supervisor": """($3 OR EXISTS (
        SELECT 1 FROM member_areas ma JOIN areas s ON s.id = ma.area_id JOIN areas ia ON ia.id = i.area_id
        WHERE ma.member_id = $2 AND ia.path LIKE s.path || '%'))""",
    "first_reporter": "i.first_reporter_id = $2",
}
INCIDENT_COLUMNS = "i.*"
LIFE_SAFETY_OF = "(SELECT c.life_safety FROM categories c WHERE c.code = i.category)"
ACCEPT_DUE = f"($4::timestamptz + CASE WHEN {LIFE_SAFETY_OF} THEN interval '1 hour' ELSE interval '24 hours' END)"
# A new cycle on the same grid with fresh deadlines (reopen, upheld appeal).
NEW_CYCLE_SETS = f"""
    state = CASE WHEN (SELECT a.level FROM areas a WHERE a.id = i.area_id) = 'grid' THEN 'dispatched'
                 ELSE 'unrouted' END,
    cycle = i.cycle + 1, dispatched_at = $4, reached_grid_at = $4,
    dispatch_due_at = $4::timestamptz + interval '24 hours',
    accept_due_at = {ACCEPT_DUE}, accepted_at = NULL, resolved_at = NULL, closed_at = NULL, resolve_due_at = NULL,
    dispatch_overdue_at = NULL, accept_overdue_at = NULL, resolve_overdue_at = NULL, complex_state = 'none',
    complex_reason = NULL, transfers_this_cycle = 0, appeal_state = 'none', reject_reason = NULL"""


def scoped_update_sql(sets: str, capacity_conditions: dict[str, str], *, first_free: int) -> tuple[str, int]:
    """UPDATE … WHERE id = $1 AND (capacity A's states and scope OR capacity B's …) RETURNING the row.

    `capacity_conditions` maps a capacity to extra SQL for it; each capacity gets a text[] parameter
    of allowed states, numbered from `first_free`; returns the SQL and the next free parameter number.
    """
    clauses = []
    n = first_free
    for capacity, extra in capacity_conditions.items():
        clauses.append(f"(i.state = ANY(${n}::text[]) AND {SCOPES[capacity]}{' AND ' + extra if extra else ''})")
        n += 1
    sql = (f"UPDATE incidents i SET {sets}, updated_at = $4::timestamptz "
           f"WHERE i.id = $1 AND $2::bigint IS NOT NULL AND $3::boolean IS NOT NULL AND ({' OR '.join(clauses)}) "
           f"RETURNING {INCIDENT_COLUMNS}")
    return sql, n


def visible_sql(capacities: list[str]) -> str:
    scopes = " OR ".join(SCOPES[c] for c in capacities) or "false"
    # $2 and $3 are typed even when the scopes use neither (PostgreSQL needs every parameter's type).
    return (f"SELECT {INCIDENT_COLUMNS} FROM incidents i "
            f"WHERE i.id = $1 AND $2::bigint IS NOT NULL AND $3::boolean IS NOT NULL AND ({scopes})")


async def visible_incident(conn: Connection | Pool, incident_id: int, *, member_id: int, is_admin: bool,
                           capacities: list[str]) -> dict[str, Any] | None:
    row = await conn.fetchrow(visible_sql(capacities), incident_id, member_id, is_admin)
    return dict(row) if row else None


# Area `a` lies in the subtree of one of the member's areas (the member given as a query parameter).
def _in_subtree_of(member_param: str) -> str:
    return (f"EXISTS (SELECT 1 FROM member_areas ma JOIN areas s ON s.id = ma.area_id "
            f"WHERE ma.member_id = {member_param} AND a.path LIKE s.path || '%')")


GRID_IN_SCOPE_SQL = f"""
SELECT a.id FROM areas a
WHERE a.code = $1 AND a.level = 'grid' AND ($3 OR {_in_subtree_of('$2')})
"""
ANY_GRID_SQL = "SELECT id FROM areas WHERE code = $1 AND level = 'grid'"


# The grids an incident may be handed to, nearest first: metres from the incident to each grid's bounding box
# (0 inside it), so a grid member picks one instead of typing its code. $2: the caller may hand over to any
# grid; else only within their subtree — the same rule the transfer itself applies (domain/incident_actions).
TRANSFER_TARGETS_SQL = f"""
SELECT a.code, a.name_zh, a.name_en,
       round(sqrt(power(greatest(a.bbox[1] - i.lon, 0, i.lon - a.bbox[3]) * {M_PER_DEG_LAT} * cos(radians(i.lat)), 2)
                  + power(greatest(a.bbox[2] - i.lat, 0, i.lat - a.bbox[4]) * {M_PER_DEG_LAT}, 2)))::int AS distance_m
FROM incidents i JOIN areas a ON a.level = 'grid' AND a.bbox IS NOT NULL AND a.id IS DISTINCT FROM i.area_id
WHERE i.id = $1 AND ($2 OR {_in_subtree_of('$3')})
ORDER BY distance_m, a.code
LIMIT $4
"""


async def transfer_targets(conn: Connection | Pool, incident_id: int, *, member_id: int, anywhere: bool,
                           limit: int) -> list[dict]:
    return [dict(r) for r in await conn.fetch(TRANSFER_TARGETS_SQL, incident_id, anywhere, member_id, limit)]


async def grid_id_for(conn: Connection, code: str, *, member_id: int, is_admin: bool, within_scope: bool) -> int | None:
    if within_scope:
        return await conn.fetchval(GRID_IN_SCOPE_SQL, code, member_id, is_admin)
    return await conn.fetchval(ANY_GRID_SQL, code)


LOCK_IN_ID_ORDER_SQL = "SELECT id FROM incidents WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE"
MOVE_REPORTS_SQL = "UPDATE reports SET incident_id = $2 WHERE incident_id = $1"
ADD_REPORT_COUNT_SQL = """
UPDATE incidents SET report_count = report_count + $2,
       last_captured_at = greatest(last_captured_at, $3), updated_at = $4
WHERE id = $1
"""
COURIER_REPORTERS_SQL = """
SELECT DISTINCT r.reporter_id FROM reports r JOIN members m ON m.id = r.reporter_id
WHERE r.incident_id = $1 AND m.role = 'courier'
"""
INSERT_EVENT_SQL = """
INSERT INTO incident_events (incident_id, cycle, kind, actor_id, data, occurred_at) VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id
"""


async def lock_in_id_order(conn: Connection, ids: list[int]) -> list[int]:
    return [r["id"] for r in await conn.fetch(LOCK_IN_ID_ORDER_SQL, sorted(set(ids)))]


async def courier_reporters(conn: Connection, incident_id: int) -> list[int]:
    return [r["reporter_id"] for r in await conn.fetch(COURIER_REPORTERS_SQL, incident_id)]


async def insert_event(conn: Connection, *, incident_id: int, cycle: int, kind: str, actor_id: int | None,
                       data: dict[str, Any], now: dt.datetime) -> int:
    return await conn.fetchval(INSERT_EVENT_SQL, incident_id, cycle, kind, actor_id, data, now)
