"""Incidents in any state, and one member of each role around them, for the workflow, deadline and points tests."""

from __future__ import annotations

import pytest

from gridrider.db.members import member_by_id
from tests.factories import make_member, make_report

GRID, OTHER_GRID, COMMUNITY = "ZW-ZWZ-C02-G03", "ZW-ZWZ-C02-G01", "ZW-ZWZ-C02"
ROLES = ("courier", "grid_member", "supervisor", "admin")


async def area(db, code: str) -> int:
    return await db.fetchval("SELECT id FROM areas WHERE code = $1", code)


@pytest.fixture
async def people(db, demo):
    """One member of each role: the grid member on GRID, the supervisor on its community, the courier
    who is every test incident's first reporter."""
    ids = {}
    for role in ROLES:
        ids[role] = await make_member(db, role=role)
    await db.execute("INSERT INTO member_areas (member_id, area_id) VALUES ($1, $2)", ids["grid_member"],
                     await area(db, GRID))
    await db.execute("INSERT INTO member_areas (member_id, area_id) VALUES ($1, $2)", ids["supervisor"],
                     await area(db, COMMUNITY))
    return {role: await member_by_id(db, member_id) for role, member_id in ids.items()}


async def make_incident(db, clock, people, *, state: str, area_code: str = GRID, category: str = "garbage_pileup",
                        complex_state: str = "none", appeal_state: str = "none") -> int:
    now = clock.now()
    report = await make_report(db, clock, reporter_id=people["courier"].id, category=category)
    target = None
    if state == "merged":
        target = await make_incident(db, clock, people, state="dispatched")
    incident = await db.fetchval(
        """INSERT INTO incidents (category, lat, lon, cell, area_id, state, origin_report_id, last_captured_at,
               first_reporter_id, dispatch_due_at, dispatched_at, accept_due_at, accepted_at, resolve_due_at,
               resolved_at, closed_at, reject_reason, merged_into_id, complex_state, complex_reason, appeal_state,
               created_at, updated_at)
           SELECT $1, r.lat, r.lon, r.cell, (SELECT id FROM areas WHERE code = $2), $3::text, r.id, r.captured_at, $4,
                  $5::timestamptz + interval '24 hours',
                  CASE WHEN $3::text <> 'unrouted' THEN $5::timestamptz END, $5::timestamptz + interval '24 hours',
                  CASE WHEN $3::text IN ('accepted', 'resolved', 'closed') THEN $5::timestamptz END,
                  $5::timestamptz + interval '7 days',
                  CASE WHEN $3::text IN ('resolved', 'closed') THEN $5::timestamptz END,
                  CASE WHEN $3::text = 'closed' THEN $5::timestamptz END,
                  CASE WHEN $3::text = 'rejected' THEN 'not_a_hazard' END, $6, $7::text,
                  CASE WHEN $7::text <> 'none' THEN 'needs a crane' END, $8, $5::timestamptz, $5::timestamptz
           FROM reports r WHERE r.id = $9 RETURNING id""",
        category, COMMUNITY if state == "unrouted" else area_code, state, people["courier"].id, now, target,
        complex_state, appeal_state, report)
    await db.execute("UPDATE reports SET incident_id = $1, state = 'processed', processed_at = $3 WHERE id = $2",
                     incident, report, now)
    return incident
