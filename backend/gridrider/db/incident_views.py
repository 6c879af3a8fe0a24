"""SQL for reading incidents: the caller's inbox, one incident in full, and what a rider sees nearby."""

from __future__ import annotations

import datetime as dt
from typing import Any

from gridrider.db.pool import Connection, Pool
from gridrider.db.workflow import SCOPES

# The due time of the stage the incident is in (NULL when no stage runs).
STAGE_DUE = """CASE i.state WHEN 'unrouted' THEN i.dispatch_due_at WHEN 'dispatched' THEN i.accept_due_at
                            WHEN 'accepted' THEN i.resolve_due_at END"""
OVERDUE = """CASE i.state WHEN 'unrouted' THEN i.dispatch_overdue_at IS NOT NULL
                          WHEN 'dispatched' THEN i.accept_overdue_at IS NOT NULL
                          WHEN 'accepted' THEN i.resolve_overdue_at IS NOT NULL ELSE false END"""
LIST_COLUMNS = f"""
i.id, i.category, c.name_zh AS category_zh, c.name_en AS category_en, c.life_safety, i.state, i.cycle,
i.lat, i.lon, i.report_count, a.code AS area_code, a.name_zh AS area_zh, a.level AS area_level,
{STAGE_DUE} AS stage_due_at, ({OVERDUE}) AS overdue, i.complex_state, i.complex_reason, i.reject_reason,
i.appeal_state, i.created_at, i.updated_at
"""


def list_sql(capacity: str, *, filters: list[str]) -> str:
    where = " AND ".join([SCOPES[capacity], *filters])
    return f"""
SELECT {LIST_COLUMNS},
       coalesce({STAGE_DUE}, 'infinity'::timestamptz) AS sort_due
FROM incidents i JOIN categories c ON c.code = i.category LEFT JOIN areas a ON a.id = i.area_id
WHERE {where}
ORDER BY c.life_safety DESC, sort_due, i.id
LIMIT $4
"""


async def incident_page(conn: Connection | Pool, *, capacity: str, member_id: int, is_admin: bool, limit: int,
                        states: list[str] | None, category: str | None, overdue: bool | None,
                        life_safety: bool | None, area_code: str | None,
                        after: tuple[bool, dt.datetime, int] | None, appeal_state: str | None = None,
                        complex_state: str | None = None) -> list[dict[str, Any]]:
    params: list[Any] = [None, member_id, is_admin, limit]
    # $1 is unused here (the action SQL uses it for the incident id), and the grid scope does not use $3
    # (is admin): both are typed anyway, or PostgreSQL cannot determine their types.
    filters = ["$1::bigint IS NULL", "$3::boolean IS NOT NULL"]

    def add(sql: str, value: Any) -> None:
        params.append(value)
        filters.append(sql.replace("$?", f"${len(params)}"))

    if states:
        add("i.state = ANY($?::text[])", states)
    elif appeal_state is None:  # an appeal is about a rejected incident, outside the default states
        filters.append("i.state IN ('unrouted', 'dispatched', 'accepted', 'resolved')")
    if category:
        add("i.category = $?", category)
    if overdue is not None:
        add(f"({OVERDUE}) = $?", overdue)
    if life_safety is not None:
        add("c.life_safety = $?", life_safety)
    if appeal_state:  # the supervisors' appeals to decide: rejected incidents with appeal_state pending
        add("i.appeal_state = $?", appeal_state)
    if complex_state:  # complex-case requests to approve
        add("i.complex_state = $?", complex_state)
    if area_code:
        add("a.path LIKE (SELECT f.path FROM areas f WHERE f.code = $?) || '%'", area_code)
    if after is not None:
        life, due, last_id = after
        params.extend([life, due, last_id])
        n = len(params)
        filters.append(f"(NOT c.life_safety, coalesce({STAGE_DUE}, 'infinity'::timestamptz), i.id) > "
                       f"(NOT ${n - 2}::boolean, ${n - 1}::timestamptz, ${n}::bigint)")
    rows = await conn.fetch(list_sql(capacity, filters=filters), *params)
    return [dict(r) for r in rows]


DETAIL_REPORTS_SQL = """
SELECT r.id, r.reporter_id, m.pseudonym, m.phone, m.role AS reporter_role, r.category, r.lat, r.lon, r.accuracy_m,
       r.captured_at, r.received_at, r.note, r.flags
FROM reports r JOIN members m ON m.id = r.reporter_id
WHERE r.incident_id = $1 ORDER BY r.captured_at, r.received_at, r.id
"""
DETAIL_PHOTOS_SQL = """
SELECT p.id, p.report_id, p.role, p.position, p.state FROM photos p
WHERE p.report_id IN (SELECT r.id FROM reports r WHERE r.incident_id = $1) OR (p.incident_id = $1 AND p.role = 'proof')
ORDER BY p.role, p.report_id, p.position, p.id
"""
DETAIL_EVENTS_SQL = """
SELECT e.id, e.cycle, e.kind, e.data, e.occurred_at, m.pseudonym AS actor, m.role AS actor_role
FROM incident_events e LEFT JOIN members m ON m.id = e.actor_id
WHERE e.incident_id = $1 AND e.kind <> 'points_capped'  -- a rider's points are not the team's business
ORDER BY e.id
"""
DETAIL_VERIFICATIONS_SQL = """
SELECT v.cycle, v.answer, v.distance_m, v.answered_at, m.pseudonym FROM verifications v
JOIN members m ON m.id = v.member_id WHERE v.incident_id = $1 ORDER BY v.id
"""
DETAIL_INCIDENT_SQL = f"""
SELECT i.*, c.name_zh AS category_zh, c.name_en AS category_en, c.life_safety, a.code AS area_code,
       a.name_zh AS area_zh, {STAGE_DUE} AS stage_due_at
FROM incidents i JOIN categories c ON c.code = i.category LEFT JOIN areas a ON a.id = i.area_id
WHERE i.id = $1
"""


async def incident_detail(conn: Connection | Pool, incident_id: int) -> dict[str, Any] | None:
    row = await conn.fetchrow(DETAIL_INCIDENT_SQL, incident_id)
    if row is None:
        return None
    return {
        "incident": dict(row),
        "reports": [dict(r) for r in await conn.fetch(DETAIL_REPORTS_SQL, incident_id)],
        "photos": [dict(r) for r in await conn.fetch(DETAIL_PHOTOS_SQL, incident_id)],
        "events": [dict(r) for r in await conn.fetch(DETAIL_EVENTS_SQL, incident_id)],
        "verifications": [dict(r) for r in await conn.fetch(DETAIL_VERIFICATIONS_SQL, incident_id)],
    }


REPORTER_OF_SQL = "SELECT EXISTS (SELECT 1 FROM reports WHERE incident_id = $1 AND reporter_id = $2)"


async def is_reporter(conn: Connection | Pool, incident_id: int, member_id: int) -> bool:
    return await conn.fetchval(REPORTER_OF_SQL, incident_id, member_id)


# Open incidents, and those resolved in the last 7 days, in the H3 cells around the rider (indexed),
# then the exact distance in Python.
NEARBY_SQL = """
SELECT i.id, i.category, c.name_zh AS category_zh, c.name_en AS category_en, c.life_safety, i.state, i.cycle,
       i.lat, i.lon, i.resolved_at,
       (SELECT p.id FROM photos p JOIN reports r ON r.id = p.report_id
        WHERE r.incident_id = i.id AND p.state = 'ready' AND p.reused_of_photo_id IS NULL
        ORDER BY r.captured_at, p.position LIMIT 1) AS thumb_photo_id,
       EXISTS (SELECT 1 FROM verifications v
               WHERE v.incident_id = i.id AND v.cycle = i.cycle AND v.member_id = $3) AS answered
FROM incidents i JOIN categories c ON c.code = i.category
WHERE i.cell = ANY($1::bigint[])
  AND (i.state IN ('unrouted', 'dispatched', 'accepted') OR (i.state = 'resolved' AND i.resolved_at >= $2))
LIMIT 500
"""


async def nearby(conn: Connection | Pool, *, cells: list[int], resolved_since: dt.datetime,
                 member_id: int) -> list[dict[str, Any]]:
    """`answered`: whether this rider already answered in the incident's current cycle."""
    return [dict(r) for r in await conn.fetch(NEARBY_SQL, cells, resolved_since, member_id)]
