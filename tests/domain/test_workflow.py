"""The §2b table, exhaustively: every action × every state × every role, plus the races and limits."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from gridrider.db.members import member_by_id
from gridrider.db.pool import create_pool
from gridrider.domain import incident_actions
from gridrider.domain.incident_actions import ActionBody, TransferLimitReached
from gridrider.domain.workdays import WorkCalendar
from gridrider.domain.workflow import ACTIONS, STATES_ALL, TRANSITIONS, allowed_states
from gridrider.errors import Forbidden, InvalidTransition, NotFound
from tests.domain.conftest import GRID, OTHER_GRID, ROLES, area, make_incident
from tests.factories import make_member


def body_for(action: str, target: int | None = None) -> ActionBody:
    return {
        "dispatch": ActionBody(grid_code=GRID), "transfer": ActionBody(grid_code=OTHER_GRID),
        "request_complex": ActionBody(reason="需要吊车"), "reject": ActionBody(reason="not_a_hazard"),
        "merge": ActionBody(target_incident_id=target), "dismiss_appeal": ActionBody(reason="照片里看不出隐患"),
    }.get(action, ActionBody())


def preconditions(action: str) -> dict[str, str]:
    return {"approve_complex": {"complex_state": "requested"}, "decline_complex": {"complex_state": "requested"},
            "uphold_appeal": {"appeal_state": "pending"}, "dismiss_appeal": {"appeal_state": "pending"}
            }.get(action, {})


def expected(action: str, state: str, role: str) -> str:
    capacities = allowed_states(action, role)
    if not capacities:
        return "forbidden"
    if any(state in states for states in capacities.values()):
        return "ok"
    if role == "grid_member" and state == "unrouted":
        return "not_found"  # an unrouted incident belongs to no grid: a grid member cannot see it
    return "invalid_transition"


@pytest.mark.parametrize("action", ACTIONS)
async def test_every_action_from_every_state_by_every_role(db, clock, people, action):
    calendar = WorkCalendar()
    outcomes = {}
    for state in STATES_ALL:
        for role in ROLES:
            incident = await make_incident(db, clock, people, state=state, **preconditions(action))
            target = await make_incident(db, clock, people, state="dispatched") if action == "merge" else None
            try:
                async with db.acquire() as conn, conn.transaction():
                    done = await incident_actions.act(conn, action=action, caller=people[role], incident_id=incident,
                                                      body=body_for(action, target), now=clock.now(),
                                                      calendar=calendar, proof_photo_ids=[])
                got = "ok"
                to = TRANSITIONS[action].to
                after = await db.fetchval("SELECT state FROM incidents WHERE id = $1", incident)
                assert after == (to or state), (action, state, role, after)
                assert done.incident["state"] == after
                events = await db.fetchval("SELECT count(*) FROM incident_events WHERE incident_id = $1 AND kind = $2",
                                           incident, action)
                assert events == 1, (action, state, role)
            except Forbidden:
                got = "forbidden"
            except NotFound:
                got = "not_found"
            except InvalidTransition:
                got = "invalid_transition"
            outcomes[(state, role)] = got
    wrong = {k: (v, expected(action, *k)) for k, v in outcomes.items() if v != expected(action, *k)}
    assert not wrong, wrong


async def test_a_member_of_another_grid_gets_404_for_every_action(db, clock, people):
    stranger = await member_by_id(db, await make_member(db, role="grid_member"))
    await db.execute("INSERT INTO member_areas (member_id, area_id) VALUES ($1, $2)", stranger.id,
                     await area(db, "ZW-ZWZ-C07-G08"))
    far_supervisor = await member_by_id(db, await make_member(db, role="supervisor"))
    await db.execute("INSERT INTO member_areas (member_id, area_id) VALUES ($1, $2)", far_supervisor.id,
                     await area(db, "ZW-ZWZ-C07"))
    for action in ACTIONS:
        for caller in (stranger, far_supervisor):
            if not allowed_states(action, caller.role):
                continue
            for state in ("dispatched", "accepted", "resolved", "rejected"):
                incident = await make_incident(db, clock, people, state=state, **preconditions(action))
                with pytest.raises(NotFound):
                    async with db.acquire() as conn, conn.transaction():
                        await incident_actions.act(conn, action=action, caller=caller, incident_id=incident,
                                                   body=body_for(action, incident), now=clock.now(),
                                                   calendar=WorkCalendar())
                assert await db.fetchval("SELECT state FROM incidents WHERE id = $1", incident) == state


async def test_two_accepts_at_once_one_wins(db, clock, people, database_url):
    colleague = await member_by_id(db, await make_member(db, role="grid_member"))
    await db.execute("INSERT INTO member_areas (member_id, area_id) VALUES ($1, $2)", colleague.id,
                     await area(db, GRID))
    incident = await make_incident(db, clock, people, state="dispatched")
    pool = await create_pool(database_url, min_size=2, max_size=2)
    barrier = asyncio.Barrier(2)

    async def accept(who):
        async with pool.acquire() as conn, conn.transaction():
            await barrier.wait()
            await incident_actions.act(conn, action="accept", caller=who, incident_id=incident, body=ActionBody(),
                                       now=clock.now())

    try:
        results = await asyncio.gather(accept(people["grid_member"]), accept(colleague), return_exceptions=True)
    finally:
        await pool.close()
    assert sorted(type(r).__name__ for r in results) == ["InvalidTransition", "NoneType"]
    assert await db.fetchval("SELECT count(*) FROM incident_events WHERE incident_id = $1 AND kind = 'accept'",
                             incident) == 1


async def test_grid_members_transfer_at_most_twice_per_cycle_and_the_accept_deadline_stays(db, clock, people):
    incident = await make_incident(db, clock, people, state="dispatched")
    due = await db.fetchval("SELECT accept_due_at FROM incidents WHERE id = $1", incident)
    # Members of both grids, so the incident can go back and forth.
    await db.execute("INSERT INTO member_areas (member_id, area_id) VALUES ($1, $2)", people["grid_member"].id,
                     await area(db, OTHER_GRID))
    people["grid_member"] = await member_by_id(db, people["grid_member"].id)
    for code in (OTHER_GRID, GRID):
        clock.advance(hours=1)
        async with db.acquire() as conn, conn.transaction():
            await incident_actions.act(conn, action="transfer", caller=people["grid_member"], incident_id=incident,
                                       body=ActionBody(grid_code=code), now=clock.now())
    with pytest.raises(TransferLimitReached):
        async with db.acquire() as conn, conn.transaction():
            await incident_actions.act(conn, action="transfer", caller=people["grid_member"], incident_id=incident,
                                       body=ActionBody(grid_code=OTHER_GRID), now=clock.now())
    # A supervisor may still move it.
    async with db.acquire() as conn, conn.transaction():
        await incident_actions.act(conn, action="transfer", caller=people["supervisor"], incident_id=incident,
                                   body=ActionBody(grid_code=OTHER_GRID), now=clock.now())
    row = await db.fetchrow("SELECT accept_due_at, transfers_this_cycle, area_id FROM incidents WHERE id = $1",
                            incident)
    assert row["accept_due_at"] == due and row["transfers_this_cycle"] == 3
    assert row["area_id"] == await area(db, OTHER_GRID)


async def test_unrouted_is_dispatched_by_its_supervisor_with_a_fresh_accept_deadline(db, clock, people):
    incident = await make_incident(db, clock, people, state="unrouted")
    clock.advance(hours=3)
    async with db.acquire() as conn, conn.transaction():
        done = await incident_actions.act(conn, action="dispatch", caller=people["supervisor"], incident_id=incident,
                                          body=ActionBody(grid_code=GRID), now=clock.now())
    assert done.incident["state"] == "dispatched" and done.incident["area_id"] == await area(db, GRID)
    assert done.incident["accept_due_at"] == clock.now() + dt.timedelta(hours=24)
    assert done.notifications  # the grid is alerted
    # A grid outside the supervisor's subtree is refused.
    other = await make_incident(db, clock, people, state="unrouted")
    from gridrider.errors import ValidationFailed
    with pytest.raises(ValidationFailed):
        async with db.acquire() as conn, conn.transaction():
            await incident_actions.act(conn, action="dispatch", caller=people["supervisor"], incident_id=other,
                                       body=ActionBody(grid_code="ZW-ZWZ-C07-G08"), now=clock.now())


async def test_merge_moves_reports_and_cannot_cross_categories_or_go_both_ways(db, clock, people, database_url):
    a = await make_incident(db, clock, people, state="dispatched")
    b = await make_incident(db, clock, people, state="dispatched")
    flood = await make_incident(db, clock, people, state="dispatched", category="flooding")
    from gridrider.errors import ValidationFailed
    with pytest.raises(ValidationFailed):
        async with db.acquire() as conn, conn.transaction():
            await incident_actions.act(conn, action="merge", caller=people["grid_member"], incident_id=a,
                                       body=ActionBody(target_incident_id=flood), now=clock.now())
    pool = await create_pool(database_url, min_size=2, max_size=2)

    async def merge(source, target):
        async with pool.acquire() as conn, conn.transaction():
            await incident_actions.act(conn, action="merge", caller=people["grid_member"], incident_id=source,
                                       body=ActionBody(target_incident_id=target), now=clock.now())

    try:
        results = await asyncio.gather(merge(a, b), merge(b, a), return_exceptions=True)
    finally:
        await pool.close()
    assert sum(r is None for r in results) == 1, results
    states = {r["id"]: (r["state"], r["report_count"]) for r in
              await db.fetch("SELECT id, state, report_count FROM incidents WHERE id = ANY($1)", [a, b])}
    merged = [i for i, (s, _) in states.items() if s == "merged"]
    kept = [i for i, (s, _) in states.items() if s != "merged"]
    assert len(merged) == 1 and states[kept[0]][1] == 2
    assert await db.fetchval("SELECT count(*) FROM reports WHERE incident_id = $1", kept[0]) == 2
