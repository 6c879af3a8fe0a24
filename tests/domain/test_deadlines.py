"""The §2c deadline pass on real PostgreSQL: closing, overdue marks, the escalation ladder.

Time only moves when the test moves the ManualClock; every pass runs in its own transaction, as the cron does.
"""

from __future__ import annotations

import asyncio
import datetime as dt

from gridrider.clock import SHANGHAI
from gridrider.db.pool import create_pool
from gridrider.domain import incident_actions
from gridrider.domain.deadlines import PassResult, run_pass
from gridrider.domain.incident_actions import ActionBody
from gridrider.domain.workdays import WorkCalendar
from gridrider.jobs.deadlines import run_deadline_pass
from tests.domain.conftest import COMMUNITY, area, make_incident

TOWN, COUNTY = "ZW-ZWZ", "ZW"
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(hours=24)
MINUTE = dt.timedelta(minutes=1)


async def run(db, clock) -> PassResult:
    async with db.acquire() as conn, conn.transaction():
        return await run_pass(conn, clock.now())


async def ladder(db, incident: int) -> list[tuple[int, str, int, str, dt.datetime]]:
    """(cycle, stage, level, area code, sent_at) of every escalation of the incident, oldest first."""
    rows = await db.fetch(
        """SELECT e.cycle, e.stage, e.level, a.code, e.sent_at FROM escalations e JOIN areas a ON a.id = e.area_id
           WHERE e.incident_id = $1 ORDER BY e.cycle, e.stage, e.level""", incident)
    return [tuple(r) for r in rows]


async def escalation_notifications(db, incident: int) -> list[dict]:
    rows = await db.fetch("SELECT id, event, audience, payload, created_at FROM notifications "
                          "WHERE incident_id = $1 AND event = 'incident_escalated' ORDER BY id", incident)
    return [dict(r) for r in rows]


async def events(db, incident: int, kind: str) -> list[dict]:
    rows = await db.fetch("SELECT cycle, actor_id, data, occurred_at FROM incident_events "
                          "WHERE incident_id = $1 AND kind = $2 ORDER BY id", incident, kind)
    return [dict(r) for r in rows]


async def due_of(db, incident: int, column: str) -> dt.datetime:
    return await db.fetchval(f"SELECT {column} FROM incidents WHERE id = $1", incident)


# ── closing ───────────────────────────────────────────────────────────────────────────────────────

async def test_a_resolved_incident_closes_exactly_seven_days_after_resolution(db, clock, people):
    incident = await make_incident(db, clock, people, state="resolved")
    resolved_at = await due_of(db, incident, "resolved_at")
    clock.set(resolved_at + dt.timedelta(days=7) - MINUTE)
    assert (await run(db, clock)).closed == 0
    assert await due_of(db, incident, "state") == "resolved"
    assert await events(db, incident, "close") == []

    clock.advance(minutes=1)
    result = await run(db, clock)
    assert result.closed == 1
    row = await db.fetchrow("SELECT state, closed_at, cycle FROM incidents WHERE id = $1", incident)
    assert row["state"] == "closed" and row["closed_at"] == clock.now()
    [close] = await events(db, incident, "close")
    assert close["cycle"] == row["cycle"] and close["actor_id"] is None and close["occurred_at"] == clock.now()

    clock.advance(hours=1)
    assert (await run(db, clock)).closed == 0
    assert len(await events(db, incident, "close")) == 1


# ── overdue marks ─────────────────────────────────────────────────────────────────────────────────

async def test_each_stage_is_marked_overdue_once(db, clock, people):
    unrouted = await make_incident(db, clock, people, state="unrouted")
    dispatched = await make_incident(db, clock, people, state="dispatched")
    accepted = await make_incident(db, clock, people, state="accepted")
    columns = {"dispatch": "dispatch_overdue_at", "accept": "accept_overdue_at", "resolve": "resolve_overdue_at"}

    async def marks() -> dict[int, tuple[str, dt.datetime] | None]:
        found = {}
        for incident in (unrouted, dispatched, accepted):
            row = await db.fetchrow(f"SELECT {', '.join(columns.values())} FROM incidents WHERE id = $1", incident)
            set_ = [(stage, row[column]) for stage, column in columns.items() if row[column] is not None]
            assert len(set_) <= 1, (incident, set_)
            found[incident] = set_[0] if set_ else None
        return found

    dispatch_due = await due_of(db, unrouted, "dispatch_due_at")
    accept_due = await due_of(db, dispatched, "accept_due_at")
    resolve_due = await due_of(db, accepted, "resolve_due_at")
    assert dispatch_due == accept_due < resolve_due

    clock.set(dispatch_due - MINUTE)
    assert (await run(db, clock)).marked == 0
    assert await marks() == {unrouted: None, dispatched: None, accepted: None}

    clock.set(dispatch_due)
    assert (await run(db, clock)).marked == 2
    expected = {unrouted: ("dispatch", dispatch_due), dispatched: ("accept", accept_due), accepted: None}
    assert await marks() == expected
    for when in (dispatch_due + MINUTE, resolve_due - MINUTE):
        clock.set(when)
        assert (await run(db, clock)).marked == 0  # a second pass adds nothing
    assert await marks() == expected

    clock.set(resolve_due)
    assert (await run(db, clock)).marked == 1
    expected[accepted] = ("resolve", resolve_due)
    assert await marks() == expected
    clock.advance(hours=5)
    assert (await run(db, clock)).marked == 0
    assert await marks() == expected

    for incident, (stage, when) in expected.items():
        [overdue] = await events(db, incident, "overdue")
        assert overdue["data"] == {"stage": stage} and overdue["occurred_at"] == when and overdue["cycle"] == 1
        assert overdue["actor_id"] is None


# ── the escalation ladder ─────────────────────────────────────────────────────────────────────────

async def test_a_normal_incident_climbs_one_level_a_day_up_to_the_county(db, clock, people):
    incident = await make_incident(db, clock, people, state="dispatched")
    due = await due_of(db, incident, "accept_due_at")
    codes = {COMMUNITY: await area(db, COMMUNITY), TOWN: await area(db, TOWN), COUNTY: await area(db, COUNTY)}

    clock.set(due - MINUTE)
    assert (await run(db, clock)).escalated == 0
    assert await ladder(db, incident) == []

    steps = [(due, 1, COMMUNITY), (due + DAY, 2, TOWN), (due + 2 * DAY, 3, COUNTY)]
    for when, level, _ in steps:
        clock.set(when - MINUTE)
        assert (await run(db, clock)).escalated == 0, level  # not a minute early
        clock.set(when)
        result = await run(db, clock)
        assert result.escalated == 1 and len(result.notifications) == 1, level
        clock.advance(minutes=1)
        assert (await run(db, clock)).escalated == 0, level  # each level once

    for later in (due + 3 * DAY, due + 30 * DAY):
        clock.set(later)
        assert (await run(db, clock)).escalated == 0

    assert await ladder(db, incident) == [(1, "accept", level, code, when) for when, level, code in steps]
    notes = await escalation_notifications(db, incident)
    assert [(n["payload"], n["audience"], n["created_at"]) for n in notes] == [
        ({"stage": "accept", "level": level}, {"area_id": codes[code], "roles": ["supervisor"]}, when)
        for when, level, code in steps]
    escalated = await events(db, incident, "escalated")
    assert [e["data"] for e in escalated] == [{"stage": "accept", "level": level, "area_code": code}
                                              for _, level, code in steps]


async def test_a_life_safety_incident_climbs_one_level_an_hour(db, clock, people):
    incident = await make_incident(db, clock, people, state="dispatched", category="missing_manhole_cover")
    # As the product sets it for life-safety: accept within 1 h of dispatch.
    await db.execute("UPDATE incidents SET accept_due_at = dispatched_at + interval '1 hour' WHERE id = $1", incident)
    due = await due_of(db, incident, "accept_due_at")
    steps = [(due, 1, COMMUNITY), (due + HOUR, 2, TOWN), (due + 2 * HOUR, 3, COUNTY)]
    clock.set(due - MINUTE)
    assert (await run(db, clock)).escalated == 0
    for when, level, _ in steps:
        clock.set(when - MINUTE)
        assert (await run(db, clock)).escalated == 0, level
        clock.set(when)
        assert (await run(db, clock)).escalated == 1, level
        assert (await run(db, clock)).escalated == 0, level
    clock.set(due + DAY)
    assert (await run(db, clock)).escalated == 0
    assert await ladder(db, incident) == [(1, "accept", level, code, when) for when, level, code in steps]
    assert len(await escalation_notifications(db, incident)) == 3


async def test_after_a_pause_only_the_highest_level_owed_is_sent(db, clock, people):
    incident = await make_incident(db, clock, people, state="dispatched")
    due = await due_of(db, incident, "accept_due_at")
    clock.set(due - HOUR)
    assert (await run(db, clock)).escalated == 0
    clock.set(due + 50 * HOUR)  # the cron missed levels 1 and 2
    result = await run(db, clock)
    assert result.escalated == 1 and len(result.notifications) == 1
    assert await ladder(db, incident) == [(1, "accept", 3, COUNTY, clock.now())]
    [note] = await escalation_notifications(db, incident)
    assert note["payload"] == {"stage": "accept", "level": 3}
    assert note["audience"] == {"area_id": await area(db, COUNTY), "roles": ["supervisor"]}
    assert (await run(db, clock)).escalated == 0
    clock.advance(hours=100)
    assert (await run(db, clock)).escalated == 0
    assert len(await ladder(db, incident)) == 1


async def test_a_pause_mid_ladder_skips_to_the_level_owed(db, clock, people):
    incident = await make_incident(db, clock, people, state="dispatched")
    due = await due_of(db, incident, "accept_due_at")
    clock.set(due)
    await run(db, clock)
    clock.set(due + 2 * DAY + HOUR)  # level 2 was missed
    assert (await run(db, clock)).escalated == 1
    assert [(level, code) for _, _, level, code, _ in await ladder(db, incident)] == [(1, COMMUNITY), (3, COUNTY)]


async def test_an_unrouted_incident_escalates_from_one_level_above_its_owners(db, clock, people):
    incident = await make_incident(db, clock, people, state="unrouted")  # owned by the community
    assert await due_of(db, incident, "area_id") == await area(db, COMMUNITY)
    due = await due_of(db, incident, "dispatch_due_at")
    steps = [(due, 1, TOWN), (due + DAY, 2, COUNTY)]
    for when, level, _ in steps:
        clock.set(when - MINUTE)
        assert (await run(db, clock)).escalated == 0, level
        clock.set(when)
        assert (await run(db, clock)).escalated == 1, level
    clock.set(due + 10 * DAY)  # the county is the top: nothing more
    assert (await run(db, clock)).escalated == 0
    assert await ladder(db, incident) == [(1, "dispatch", level, code, when) for when, level, code in steps]
    notes = await escalation_notifications(db, incident)
    assert [n["audience"] for n in notes] == [{"area_id": await area(db, TOWN), "roles": ["supervisor"]},
                                              {"area_id": await area(db, COUNTY), "roles": ["supervisor"]}]
    assert [n["payload"] for n in notes] == [{"stage": "dispatch", "level": 1}, {"stage": "dispatch", "level": 2}]


async def test_an_unrouted_incident_owned_by_a_town_goes_straight_to_the_county_then_stops(db, clock, people):
    incident = await make_incident(db, clock, people, state="unrouted", category="road_collapse")  # life-safety
    await db.execute("UPDATE incidents SET area_id = $2 WHERE id = $1", incident, await area(db, TOWN))
    due = await due_of(db, incident, "dispatch_due_at")
    clock.set(due)
    assert (await run(db, clock)).escalated == 1
    for later in (due + HOUR, due + 2 * HOUR, due + 5 * DAY):
        clock.set(later)
        assert (await run(db, clock)).escalated == 0
    assert await ladder(db, incident) == [(1, "dispatch", 1, COUNTY, due)]


async def test_each_stage_has_its_own_ladder(db, clock, people):
    incident = await make_incident(db, clock, people, state="dispatched")
    accept_due = await due_of(db, incident, "accept_due_at")
    clock.set(accept_due + DAY)
    await run(db, clock)  # accept stage: level 2 (after a pause)
    async with db.acquire() as conn, conn.transaction():
        await incident_actions.act(conn, action="accept", caller=people["grid_member"], incident_id=incident,
                                   body=ActionBody(), now=clock.now(), calendar=WorkCalendar())
    resolve_due = await due_of(db, incident, "resolve_due_at")
    assert resolve_due > clock.now()
    clock.set(resolve_due - MINUTE)
    assert (await run(db, clock)).escalated == 0
    clock.set(resolve_due)
    assert (await run(db, clock)).escalated == 1
    assert [(stage, level, code) for _, stage, level, code, _ in await ladder(db, incident)] == [
        ("accept", 2, TOWN), ("resolve", 1, COMMUNITY)]


async def test_a_new_cycle_escalates_again_from_level_one(db, clock, people):
    incident = await make_incident(db, clock, people, state="dispatched")
    due = await due_of(db, incident, "accept_due_at")
    clock.set(due + 2 * DAY)
    await run(db, clock)
    assert [(c, lv) for c, _, lv, _, _ in await ladder(db, incident)] == [(1, 3)]
    # The grid got it done (set directly: the resolve action wants a proof photo), then a supervisor reopens.
    clock.advance(hours=1)
    await db.execute("UPDATE incidents SET state = 'resolved', accepted_at = $2, resolved_at = $2 WHERE id = $1",
                     incident, clock.now())
    clock.advance(hours=1)
    async with db.acquire() as conn, conn.transaction():
        done = await incident_actions.act(conn, action="reopen", caller=people["supervisor"], incident_id=incident,
                                          body=ActionBody(), now=clock.now(), calendar=WorkCalendar())
    assert done.incident["state"] == "dispatched" and done.incident["cycle"] == 2
    new_due = done.incident["accept_due_at"]
    assert new_due == clock.now() + DAY
    clock.set(new_due - MINUTE)
    assert (await run(db, clock)).escalated == 0
    clock.set(new_due)
    assert (await run(db, clock)).escalated == 1
    clock.set(new_due + DAY)
    assert (await run(db, clock)).escalated == 1
    assert [(c, s, lv, code) for c, s, lv, code, _ in await ladder(db, incident)] == [
        (1, "accept", 3, COUNTY), (2, "accept", 1, COMMUNITY), (2, "accept", 2, TOWN)]
    # The new cycle's stage was marked overdue afresh.
    assert [e["cycle"] for e in await events(db, incident, "overdue")] == [1, 2]


# ── complex cases ─────────────────────────────────────────────────────────────────────────────────

async def test_approving_a_complex_case_after_the_due_clears_the_overdue_mark_but_not_the_history(db, clock, people):
    clock.set(dt.datetime(2026, 11, 2, 10, 0, tzinfo=SHANGHAI))  # a Monday
    incident = await make_incident(db, clock, people, state="accepted", complex_state="requested")
    assert await due_of(db, incident, "accepted_at") == clock.now()
    seven_days = await due_of(db, incident, "resolve_due_at")
    assert seven_days == clock.now() + dt.timedelta(days=7)

    clock.set(seven_days + DAY)  # the 7-day due passed before the supervisor approved
    result = await run(db, clock)
    assert result.marked == 1 and result.escalated == 1
    assert await due_of(db, incident, "resolve_overdue_at") == clock.now()
    before = await ladder(db, incident)
    assert [(s, lv) for _, s, lv, _, _ in before] == [("resolve", 2)]

    clock.advance(hours=2)
    async with db.acquire() as conn, conn.transaction():
        await incident_actions.act(conn, action="approve_complex", caller=people["supervisor"], incident_id=incident,
                                   body=ActionBody(), now=clock.now(), calendar=WorkCalendar())
    row = await db.fetchrow("SELECT complex_state, resolve_due_at, resolve_overdue_at FROM incidents WHERE id = $1",
                            incident)
    assert row["complex_state"] == "approved"
    assert row["resolve_due_at"] == dt.datetime(2026, 11, 23, 18, 0, tzinfo=SHANGHAI)  # the §2c worked example
    assert row["resolve_overdue_at"] is None
    assert await ladder(db, incident) == before  # escalations already sent stay
    assert len(await escalation_notifications(db, incident)) == 1
    assert len(await events(db, incident, "overdue")) == 1

    # No longer overdue: passes until the new due neither mark nor escalate.
    for when in (clock.now() + MINUTE, row["resolve_due_at"] - MINUTE):
        clock.set(when)
        result = await run(db, clock)
        assert (result.marked, result.escalated) == (0, 0)
        assert await due_of(db, incident, "resolve_overdue_at") is None
    # Past the new due it is overdue again.
    clock.set(row["resolve_due_at"])
    assert (await run(db, clock)).marked == 1
    assert await due_of(db, incident, "resolve_overdue_at") == row["resolve_due_at"]


# ── concurrency and the cron ──────────────────────────────────────────────────────────────────────

async def test_two_passes_at_once_escalate_once(db, clock, people, database_url):
    incidents = [await make_incident(db, clock, people, state="dispatched") for _ in range(3)]
    clock.set(await due_of(db, incidents[0], "accept_due_at") + DAY)
    pool = await create_pool(database_url, min_size=2, max_size=2)
    start, finish = asyncio.Barrier(2), asyncio.Barrier(2)

    async def one_pass() -> PassResult:
        async with pool.acquire() as conn:
            async with conn.transaction():
                await start.wait()
                result = await run_pass(conn, clock.now())
                await finish.wait()  # both passes have run while the other's transaction is still open
            return result

    try:
        results = await asyncio.wait_for(asyncio.gather(one_pass(), one_pass()), timeout=30)
    finally:
        await pool.close()
    assert sorted(r.skipped for r in results) == [False, True]
    ran = next(r for r in results if not r.skipped)
    assert ran.escalated == 3 and ran.marked == 3
    for incident in incidents:
        assert [(s, lv) for _, s, lv, _, _ in await ladder(db, incident)] == [("accept", 2)]
        assert len(await escalation_notifications(db, incident)) == 1
        assert len(await events(db, incident, "overdue")) == 1
        assert len(await events(db, incident, "escalated")) == 1


async def test_two_passes_one_after_the_other_at_the_same_minute_escalate_once(db, clock, people, database_url):
    incident = await make_incident(db, clock, people, state="dispatched")
    clock.set(await due_of(db, incident, "accept_due_at"))
    pool = await create_pool(database_url, min_size=2, max_size=2)
    try:
        results = await asyncio.gather(*(run_with(pool, clock) for _ in range(2)))
    finally:
        await pool.close()
    assert sum(r.escalated for r in results) == 1
    assert len(await ladder(db, incident)) == 1 and len(await escalation_notifications(db, incident)) == 1


async def run_with(pool, clock) -> PassResult:
    async with pool.acquire() as conn, conn.transaction():
        return await run_pass(conn, clock.now())


async def test_the_cron_enqueues_a_notify_job_for_each_escalation(services, db, clock, people):
    incident = await make_incident(db, clock, people, state="dispatched")
    clock.set(await due_of(db, incident, "accept_due_at"))
    result = await run_deadline_pass(services)
    assert result.escalated == 1 and not result.skipped
    [note] = await escalation_notifications(db, incident)
    jobs = await db.fetch("SELECT kind, payload, state FROM jobs WHERE kind = 'notify'")
    assert [(j["payload"], j["state"]) for j in jobs] == [({"notification_id": note["id"]}, "pending")]
    # A second run in the same minute writes nothing more.
    again = await run_deadline_pass(services)
    assert again.escalated == 0
    assert await db.fetchval("SELECT count(*) FROM jobs WHERE kind = 'notify'") == 1


# ── life-safety reminders (DESIGN §5: SMS 15 min after reaching a grid, supervisors 15 min later) ──

async def _reminders(db) -> list[tuple[str, dict]]:
    rows = await db.fetch("SELECT payload, audience FROM notifications WHERE event = 'life_safety_unaccepted' "
                          "ORDER BY id")
    return [(r["payload"]["to"], r["audience"]) for r in rows]


async def _life_safety_dispatched(db, clock, people) -> int:
    incident = await make_incident(db, clock, people, state="dispatched", category="missing_manhole_cover")
    await db.execute("UPDATE incidents SET reached_grid_at = $2::timestamptz, "
                     "accept_due_at = $2::timestamptz + interval '1 hour' WHERE id = $1", incident, clock.now())
    return incident


async def test_an_unaccepted_life_safety_incident_reminds_members_at_15_then_supervisors_at_30(db, clock, people):
    start = clock.now()
    await _life_safety_dispatched(db, clock, people)
    for minute, expected in ((14, []), (15, ["members"]), (16, ["members"]), (29, ["members"]),
                             (30, ["members", "supervisors"]), (45, ["members", "supervisors"])):
        clock.set(start + MINUTE * minute)
        await run(db, clock)
        assert [who for who, _ in await _reminders(db)] == expected, minute
    [(_, to_members), (_, to_supervisors)] = await _reminders(db)
    assert to_members == {"area_id": await area(db, "ZW-ZWZ-C02-G03"), "roles": ["grid_member"]}
    assert to_supervisors["roles"] == ["supervisor"]


async def test_accepted_at_minute_14_reminds_nobody(db, clock, people):
    start = clock.now()
    incident = await _life_safety_dispatched(db, clock, people)
    clock.set(start + MINUTE * 14)
    async with db.acquire() as conn, conn.transaction():
        await incident_actions.act(conn, action="accept", caller=people["grid_member"], incident_id=incident,
                                   body=ActionBody(), now=clock.now())
    for minute in (15, 30, 60):
        clock.set(start + MINUTE * minute)
        await run(db, clock)
    assert await _reminders(db) == []


async def test_a_transfer_at_minute_10_restarts_the_clock(db, clock, people):
    start = clock.now()
    incident = await _life_safety_dispatched(db, clock, people)
    clock.set(start + MINUTE * 10)
    async with db.acquire() as conn, conn.transaction():
        await incident_actions.act(conn, action="transfer", caller=people["supervisor"], incident_id=incident,
                                   body=ActionBody(grid_code="ZW-ZWZ-C02-G01"), now=clock.now())
    clock.set(start + MINUTE * 15)
    await run(db, clock)
    assert await _reminders(db) == []  # the new grid has had it for 5 minutes only
    clock.set(start + MINUTE * 25)
    await run(db, clock)
    [(who, audience)] = await _reminders(db)
    assert who == "members" and audience["area_id"] == await area(db, "ZW-ZWZ-C02-G01")
