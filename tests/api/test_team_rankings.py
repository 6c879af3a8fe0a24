"""Team rankings (issue 8): each grid's figures against a hand-computed fixture, and subtree scoping."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools

import pytest

from gridrider.clock import SHANGHAI
from tests.factories import make_report

COMMUNITY, GRID_A, GRID_B, OTHER_GRID = "ZW-ZWZ-C02", "ZW-ZWZ-C02-G03", "ZW-ZWZ-C02-G01", "ZW-ZWZ-C05-G01"
URL = "/api/v1/rankings/teams"
_keys = itertools.count(1)


def sh(day: str, clock: str = "12:00") -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=SHANGHAI)


HOUR = dt.timedelta(hours=1)


async def incident(db, clock, reporter: int, grid: str, *, state: str, created: dt.datetime,
                   accepted: dt.timedelta | None = None, resolved: dt.timedelta | None = None,
                   accept_overdue: bool = False) -> int:
    """An incident on `grid` created at `created`: accept due 24 h later, resolve due 7 days after acceptance."""
    clock.set(created)
    report = await make_report(db, clock, reporter_id=reporter)
    accepted_at = created + accepted if accepted else None
    return await db.fetchval(
        """INSERT INTO incidents (category, lat, lon, cell, area_id, state, origin_report_id, last_captured_at,
                                  dispatched_at, accept_due_at, accepted_at, accept_overdue_at, resolve_due_at,
                                  resolved_at, closed_at, reject_reason, merged_into_id, created_at, updated_at)
           SELECT r.category, r.lat, r.lon, r.cell, (SELECT id FROM areas WHERE code = $2), $3::text, r.id,
                  r.captured_at, $4, $4::timestamptz + interval '24 hours', $5::timestamptz, $6,
                  $5::timestamptz + interval '7 days', $7::timestamptz,
                  CASE WHEN $3::text = 'closed' THEN $7::timestamptz + interval '7 days' END,
                  CASE WHEN $3::text = 'rejected' THEN 'not_a_hazard' END, $8, $4, $4
           FROM reports r WHERE r.id = $1 RETURNING id""",
        report, grid, state, created, accepted_at,
        created + 30 * HOUR if accept_overdue else None,
        accepted_at + resolved if accepted_at and resolved else None,
        await db.fetchval("SELECT min(id) FROM incidents") if state == "merged" else None)


async def proof_photo(db, incident_id: int, reused_of: int | None = None) -> int:
    key = f"proof/{next(_keys)}"
    return await db.fetchval(
        """INSERT INTO photos (incident_id, role, original_key, upload_sha256, content_type, bytes, reused_of_photo_id)
           VALUES ($1, 'proof', $2, $3, 'image/jpeg', 1000, $4) RETURNING id""",
        incident_id, key, hashlib.sha256(key.encode()).digest(), reused_of)


async def transfer(db, incident_id: int, actor: int, when: dt.datetime) -> None:
    await db.execute("INSERT INTO incident_events (incident_id, cycle, kind, actor_id, occurred_at) "
                     "VALUES ($1, 1, 'transfer', $2, $3)", incident_id, actor, when)


@pytest.fixture
async def teams(db, clock, login):
    """November 2026 on grid A (hand count in the test), one perfect incident on grid B, one on C05."""
    supervisor = await login("supervisor", "13911110001", [COMMUNITY])
    outsider = await login("supervisor", "13911110002", ["ZW-ZWZ-C05"])
    rider = await login("courier", "13922220001", [COMMUNITY])
    member_a = await login("grid_member", "13933330001", [GRID_A])
    r = rider.member_id
    i1 = await incident(db, clock, r, GRID_A, state="resolved", created=sh("2026-11-02"), accepted=HOUR,
                        resolved=48 * HOUR)
    i2 = await incident(db, clock, r, GRID_A, state="accepted", created=sh("2026-11-20"), accepted=30 * HOUR,
                        accept_overdue=True)
    await incident(db, clock, r, GRID_A, state="rejected", created=sh("2026-11-03"))
    i4 = await incident(db, clock, r, GRID_A, state="closed", created=sh("2026-11-04"), accepted=2 * HOUR,
                        resolved=8 * 24 * HOUR)
    await incident(db, clock, r, GRID_A, state="merged", created=sh("2026-11-05"))
    await incident(db, clock, r, GRID_A, state="closed", created=sh("2026-10-31", "23:59"), accepted=HOUR,
                   resolved=HOUR)
    await incident(db, clock, r, GRID_B, state="closed", created=sh("2026-11-06"), accepted=HOUR, resolved=HOUR)
    await incident(db, clock, r, OTHER_GRID, state="closed", created=sh("2026-11-06"), accepted=HOUR,
                   resolved=HOUR)
    first = await proof_photo(db, i4)
    await proof_photo(db, i1, reused_of=first)
    await transfer(db, i2, member_a.member_id, sh("2026-11-21"))
    await transfer(db, i1, member_a.member_id, sh("2026-11-02", "13:00"))
    await transfer(db, i1, member_a.member_id, sh("2026-10-30"))  # October
    clock.set(sh("2026-11-26", "10:00"))
    return {"supervisor": supervisor, "outsider": outsider, "rider": rider}


async def test_each_grid_is_counted_as_by_hand_and_ranked(client, teams):
    reply = await client.get(URL, params={"at": "2026-11"}, headers=teams["supervisor"].headers)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["period"], body["start"], body["end"]) == ("2026-11", "2026-11-01", "2026-11-30")
    items = {i["area_code"]: i for i in body["items"]}
    b, a = items[GRID_B], items[GRID_A]
    assert (b["rank"], b["incidents"], b["completion_rate"], b["accept_on_time_rate"]) == (1, 1, 1.0, 1.0)
    # Grid A: 4 incidents (merged and October ones left out). Accept judged on 1, 2, 4 (the rejection
    # never waited past its due), on time 1 and 4; resolve judged on 1 and 4 (2 is not yet due), on
    # time 1; completed 1 and 4 of the 3 not rejected; 1 rejected of 4.
    assert a == {**a, "rank": 2, "incidents": 4, "accept_on_time_rate": 0.6667, "resolve_on_time_rate": 0.5,
                 "completion_rate": 0.6667, "rejection_rate": 0.25, "transfers": 2, "reused_proof_photos": 1}
    # Every other grid of the community: nothing to judge, sharing the last rank.
    rest = [i for i in body["items"] if i["area_code"] not in (GRID_A, GRID_B)]
    assert rest and {i["rank"] for i in rest} == {3} and all(i["completion_rate"] is None for i in rest)
    assert all(code.startswith(COMMUNITY + "-") for code in items)


async def test_a_supervisor_sees_only_their_grids(client, teams, admin):
    outsider = (await client.get(URL, params={"at": "2026-11"}, headers=teams["outsider"].headers)).json()
    assert {i["area_code"] for i in outsider["items"] if i["incidents"]} == {OTHER_GRID}
    assert all(i["area_code"].startswith("ZW-ZWZ-C05-") for i in outsider["items"])
    reply = await client.get(URL, params={"scope": COMMUNITY}, headers=teams["outsider"].headers)
    assert reply.status_code == 404 and reply.json()["code"] == "area_not_found"
    one = (await client.get(URL, params={"at": "2026-11", "scope": GRID_A}, headers=teams["supervisor"].headers))
    assert [i["area_code"] for i in one.json()["items"]] == [GRID_A]
    everyone = (await client.get(URL, params={"at": "2026-11"}, headers=admin.headers)).json()
    assert {GRID_A, GRID_B, OTHER_GRID} <= {i["area_code"] for i in everyone["items"]}


async def test_riders_and_grid_members_may_not_rank_teams(client, teams):
    reply = await client.get(URL, headers=teams["rider"].headers)
    assert reply.status_code == 403


async def test_a_quarter_holds_october_too(client, teams):
    body = (await client.get(URL, params={"period": "quarter", "at": "2026-Q4", "scope": GRID_A},
                             headers=teams["supervisor"].headers)).json()
    assert (body["items"][0]["incidents"], body["items"][0]["transfers"]) == (5, 3)
