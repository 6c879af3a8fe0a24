"""`pair_collusion` (DESIGN.md §2d) on real PostgreSQL: one grid member accepting ≥60 % of one rider's ≥10
reports of the last 30 days, a median ≤2 minutes after receipt. Judged at each accept, in its transaction;
the accepted incident's points for that rider are withheld on the flag, the accept itself always goes
through, and the existing review (clear → flag_release, confirm → nothing) decides it.

Each scenario is a labelled timeline: one letter per report by the rider, in receipt order, 10 minutes
apart, saying who accepts it — M (the grid member under suspicion), O (a colleague on the same grid) or
`-` (nobody yet) — `after_s` seconds after its receipt.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from types import SimpleNamespace

import pytest

from gridrider.config import Settings, SettingsError, load_settings
from gridrider.db.members import member_by_id
from gridrider.domain import gaming, incident_actions, points
from gridrider.domain.incident_actions import ActionBody
from tests.conftest import T0
from tests.domain.conftest import COMMUNITY, GRID, area, make_incident
from tests.domain.test_points import add_report, rows
from tests.factories import make_member

GAP = dt.timedelta(minutes=10)  # between two reports of the rider

# M accepts 7 of 10 (70 %), O the other 3; the 10th accept is M's, and only there are there 10 reports.
SEVEN_OF_TEN = "MMOMMOMMOM"
# Exactly at the thresholds on the 10th accept: 6 of 10 is 60 %.
SIX_OF_TEN_LAST = "OOOOMMMMMM"
# M and O take half each: together 100 %, each of them 50 %.
HALF_EACH = "MOMOMOMOMO"


@pytest.fixture
async def cast(db, people):
    """M = the `people` grid member on GRID, O = a second member of that grid, R = the rider, B = another rider."""
    colleague = await make_member(db, role="grid_member")
    await db.execute("INSERT INTO member_areas (member_id, area_id) VALUES ($1, $2)", colleague, await area(db, GRID))
    rider, bystander = await make_member(db), await make_member(db)
    return SimpleNamespace(M=people["grid_member"], O=await member_by_id(db, colleague), R=rider, B=bystander,
                           supervisor=people["supervisor"])


async def file_report(db, clock, rider: int) -> int:
    """A dispatched incident on GRID whose only report is the rider's, received now; the incident's id."""
    return await make_incident(db, clock, {"courier": SimpleNamespace(id=rider)}, state="dispatched")


async def accept(db, clock, member, incident: int, **rule) -> incident_actions.Done:
    async with db.acquire() as conn, conn.transaction():
        return await incident_actions.act(conn, action="accept", caller=member, incident_id=incident,
                                          body=ActionBody(), now=clock.now(), **rule)


async def pair_flags(db, rider: int) -> list[dict]:
    return [dict(r) for r in await db.fetch(
        """SELECT id, member_id, report_id, incident_id, state, withheld_points, evidence
           FROM flags WHERE kind = 'pair_collusion' AND member_id = $1 ORDER BY id""", rider)]


async def play(db, clock, cast, timeline: str, *, after_s: float | list[float] = 30, rider: int | None = None,
               **rule) -> list[tuple[int, list[int]]]:
    """Play the timeline; per report, (its incident, the ids of pair_collusion flags its accept raised)."""
    rider = cast.R if rider is None else rider
    delays = after_s if isinstance(after_s, list) else [after_s] * len(timeline)
    steps = []
    for who, delay in zip(timeline, delays, strict=True):
        # The clock only moves forward: each report comes GAP after the previous step, accepted or not.
        clock.advance(seconds=GAP.total_seconds())
        incident = await file_report(db, clock, rider)
        raised: list[int] = []
        if who != "-":
            before = {f["id"] for f in await pair_flags(db, rider)}
            clock.advance(seconds=delay)
            done = await accept(db, clock, getattr(cast, who), incident, **rule)
            assert done.incident["state"] == "accepted"
            raised = [f["id"] for f in await pair_flags(db, rider) if f["id"] not in before]
        steps.append((incident, raised))
    return steps


def raised_at(steps: list[tuple[int, list[int]]]) -> list[int]:
    """The 1-based positions in the timeline whose accept raised a flag."""
    return [n for n, (_incident, raised) in enumerate(steps, start=1) if raised]


async def first_report_points(db, incident: int) -> int:
    weight = await db.fetchval("SELECT c.weight FROM incidents i JOIN categories c ON c.code = i.category "
                               "WHERE i.id = $1", incident)
    return points.first_report_points(weight)


# ── raising ───────────────────────────────────────────────────────────────────────────────────────


async def test_seven_of_ten_accepted_fast_by_one_member_flags_on_the_tenth_accept(db, clock, cast):
    steps = await play(db, clock, cast, SEVEN_OF_TEN, after_s=30)
    assert raised_at(steps) == [10]  # not before: until the 10th report there are fewer than 10
    tenth, _ = steps[-1]
    [flag] = await pair_flags(db, cast.R)
    report = await db.fetchval("SELECT id FROM reports WHERE incident_id = $1", tenth)
    pseudonym = await db.fetchval("SELECT pseudonym FROM members WHERE id = $1", cast.M.id)
    assert (flag["member_id"], flag["report_id"], flag["incident_id"], flag["state"]) == \
        (cast.R, report, tenth, "open")
    now = clock.now()  # the 10th accept's time
    assert flag["evidence"] == {
        "grid_member_id": cast.M.id, "grid_member_pseudonym": pseudonym, "reports_in_window": 10,
        "accepted_by_member": 7, "share": 0.7, "median_s": 30.0, "window_days": 30.0,
        "window_start": (now - dt.timedelta(days=30)).isoformat(), "window_end": now.isoformat(),
        "min_share": 0.6, "min_reports": 10, "max_median_s": 120}


async def test_exactly_at_the_thresholds_is_suspect_one_second_slower_is_not(db, clock, cast):
    at_limit = await play(db, clock, cast, SIX_OF_TEN_LAST, after_s=120)  # 60 %, median 120 s
    assert raised_at(at_limit) == [10]
    [flag] = await pair_flags(db, cast.R)
    assert (flag["evidence"]["share"], flag["evidence"]["median_s"]) == (0.6, 120.0)

    slower = await play(db, clock, cast, SIX_OF_TEN_LAST, after_s=121, rider=cast.B)
    assert raised_at(slower) == []


async def test_it_is_the_median_not_the_mean(db, clock, cast):
    # M's 7 accepts: 6 within 30 s and one an hour late (mean 540 s, median 30 s).
    delays = [30, 30, 30, 30, 30, 30, 30, 3600, 30, 30]
    assert raised_at(await play(db, clock, cast, SEVEN_OF_TEN, after_s=delays)) == [10]
    [flag] = await pair_flags(db, cast.R)
    assert flag["evidence"]["median_s"] == 30.0


# ── not raising ───────────────────────────────────────────────────────────────────────────────────


async def test_nine_reports_are_too_few_even_all_accepted_at_once_by_one_member(db, clock, cast):
    assert raised_at(await play(db, clock, cast, "MMMMMMMMM", after_s=5)) == []


async def test_a_member_who_takes_most_but_takes_minutes_is_not_suspect(db, clock, cast):
    assert raised_at(await play(db, clock, cast, SEVEN_OF_TEN, after_s=300)) == []  # 70 %, median 5 min


async def test_a_share_spread_over_two_members_is_not_suspect(db, clock, cast):
    steps = await play(db, clock, cast, HALF_EACH + "MO", after_s=10)  # each 50 %, together 100 %
    assert raised_at(steps) == []


async def test_reports_not_yet_accepted_count_against_the_share(db, clock, cast):
    # M took 5 of R's 10 reports within seconds; the other 5 are still waiting: 50 %.
    assert raised_at(await play(db, clock, cast, "-M-M-M-M-M", after_s=10)) == []


async def test_reports_received_more_than_30_days_ago_do_not_count(db, clock, cast):
    clock.set(T0 - dt.timedelta(days=40))
    old = await play(db, clock, cast, "MMMM", after_s=10)
    clock.set(T0)
    recent = await play(db, clock, cast, "MMMMMM", after_s=10)
    # All 10 of R's reports were M's within seconds, but only 6 were received in the last 30 days.
    assert raised_at(old + recent) == []
    more = await play(db, clock, cast, "MMMM", after_s=10)
    assert raised_at(more) == [4]  # the 10th report inside the window
    [flag] = await pair_flags(db, cast.R)
    assert (flag["evidence"]["reports_in_window"], flag["evidence"]["accepted_by_member"]) == (10, 10)


async def test_a_report_merged_into_an_incident_accepted_before_it_arrived_was_not_accepted_by_anyone(
        db, clock, cast):
    # R's 10th report joins an incident M had accepted an hour earlier: that accept did not answer it.
    steps = await play(db, clock, cast, "MMMMMMMMM", after_s=10)
    clock.advance(hours=1)
    early = await file_report(db, clock, cast.B)
    await accept(db, clock, cast.M, early)
    clock.advance(hours=1)
    await add_report(db, clock, early, cast.R)
    assert raised_at(steps) == []
    # R's 11th report: 10 of 11 answered by M (91 %) — now suspect, counted over 11 reports, not 10 of 10.
    eleventh = await play(db, clock, cast, "M", after_s=10)
    assert raised_at(eleventh) == [1]
    [flag] = await pair_flags(db, cast.R)
    assert (flag["evidence"]["reports_in_window"], flag["evidence"]["accepted_by_member"]) == (11, 10)


async def test_one_open_flag_per_pair_and_a_new_one_only_after_the_decision(db, clock, cast):
    await play(db, clock, cast, SEVEN_OF_TEN, after_s=30)
    [first] = await pair_flags(db, cast.R)
    again = await play(db, clock, cast, "MM", after_s=30)  # still suspect, but the pair is under review
    assert raised_at(again) == []
    # While the flag is open, later accepts pay the rider as usual: only the flagged accept is held back.
    assert [r[4] for r in await rows(db, cast.R) if r[1] == "first_report"][-2:] == [i for i, _ in again]

    async with db.acquire() as conn, conn.transaction():
        await gaming.clear(conn, flag_id=first["id"], decider_id=cast.supervisor.id, scope=None, now=clock.now())
    after = await play(db, clock, cast, "M", after_s=30)
    assert raised_at(after) == [1]
    assert [f["state"] for f in await pair_flags(db, cast.R)] == ["cleared", "open"]


async def test_two_accepts_at_once_for_the_same_pair_raise_one_flag(db, clock, cast):
    await play(db, clock, cast, "MMMMMMMM", after_s=30)
    clock.advance(minutes=10)
    ninth, tenth = await file_report(db, clock, cast.R), await file_report(db, clock, cast.R)
    clock.advance(seconds=30)

    async def accept_on(conn, incident: int) -> incident_actions.Done:
        return await incident_actions.act(conn, action="accept", caller=cast.M, incident_id=incident,
                                          body=ActionBody(), now=clock.now())

    # Each accept sees 10 reports, 9 of them M's (its own and the 8 before): both suspect. The first has
    # raised its flag and not committed when the second starts; the second must wait for it, then see it.
    async with db.acquire() as one, db.acquire() as two:
        first = one.transaction()
        await first.start()
        await accept_on(one, ninth)

        async def second_accept() -> incident_actions.Done:
            async with two.transaction():
                return await accept_on(two, tenth)

        second = asyncio.create_task(second_accept())
        pid = two.get_server_pid()
        for _ in range(500):  # until the second transaction waits on a lock (or, wrongly, has finished)
            if second.done() or await db.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = $1 AND NOT granted)", pid):
                break
            await asyncio.sleep(0.01)
        await first.commit()
        done = await second
    assert done.incident["state"] == "accepted"
    assert await db.fetchval("SELECT count(*) FROM incidents WHERE id = ANY($1) AND state = 'accepted'",
                             [ninth, tenth]) == 2
    assert len(await pair_flags(db, cast.R)) == 1


async def test_the_thresholds_come_from_the_settings(db, clock, cast):
    assert (Settings().pair_collusion_min_share, Settings().pair_collusion_min_reports,
            Settings().pair_collusion_window_days, Settings().pair_collusion_max_median_s) == (0.6, 10, 30, 120)
    settings = load_settings({"GRIDRIDER_PAIR_COLLUSION_MIN_SHARE": "0.75",
                              "GRIDRIDER_PAIR_COLLUSION_MIN_REPORTS": "3",
                              "GRIDRIDER_PAIR_COLLUSION_WINDOW_DAYS": "7",
                              "GRIDRIDER_PAIR_COLLUSION_MAX_MEDIAN_S": "60"})
    rule = gaming.PairCollusionRule.of(settings)
    assert rule == gaming.PairCollusionRule(min_share=0.75, min_reports=3, window=dt.timedelta(days=7),
                                            max_median_s=60)
    # 3 reports are enough under this rule; 2 of 3 (67 %) is not enough share, 3 of 4 (75 %) is.
    assert raised_at(await play(db, clock, cast, "MOMM", after_s=30, pair_collusion=rule)) == [4]
    for raw in ("0", "1.5", "nan", "lots"):
        with pytest.raises(SettingsError, match="GRIDRIDER_PAIR_COLLUSION_MIN_SHARE"):
            load_settings({"GRIDRIDER_PAIR_COLLUSION_MIN_SHARE": raw})
    with pytest.raises(SettingsError, match="GRIDRIDER_PAIR_COLLUSION_WINDOW_DAYS"):
        load_settings({"GRIDRIDER_PAIR_COLLUSION_WINDOW_DAYS": "0"})


# ── the accept, the points, the decision ──────────────────────────────────────────────────────────


async def test_the_flagged_accept_goes_through_and_its_points_are_withheld_until_cleared(db, clock, cast):
    steps = await play(db, clock, cast, SEVEN_OF_TEN, after_s=30)
    tenth, [flag_id] = steps[-1]
    # The hazard is handled: accepted, its audit event and the reporters' notification are there.
    assert await db.fetchval("SELECT state FROM incidents WHERE id = $1", tenth) == "accepted"
    assert await db.fetchval("SELECT actor_id FROM incident_events WHERE incident_id = $1 AND kind = 'accept'",
                             tenth) == cast.M.id
    assert await db.fetchval("SELECT count(*) FROM notifications WHERE incident_id = $1 AND event = $2", tenth,
                             "report_accepted") == 1
    # The nine accepts before paid R; the tenth paid nothing and the amount waits on the flag.
    amount = await first_report_points(db, tenth)
    paid = [r for r in await rows(db, cast.R) if r[1] == "first_report"]
    assert [r[4] for r in paid] == [incident for incident, _ in steps[:9]]
    [flag] = await pair_flags(db, cast.R)
    assert flag["withheld_points"] == amount

    async with db.acquire() as conn, conn.transaction():
        cleared = await gaming.clear(conn, flag_id=flag_id, decider_id=cast.supervisor.id, scope=None,
                                     now=clock.now())
    assert cleared.state == "cleared"
    assert (await rows(db, cast.R))[-1] == (cast.R, "flag_release", amount, "flag", flag_id, 0)
    async with db.acquire() as conn, conn.transaction():  # a redelivered award pays nothing twice
        await points.award_ready_reports(conn, incident_id=tenth, now=clock.now())
    assert len(await rows(db, cast.R)) == 10


async def test_confirming_pays_nothing_for_the_flagged_accept(db, clock, cast):
    steps = await play(db, clock, cast, SEVEN_OF_TEN, after_s=30)
    tenth, [flag_id] = steps[-1]
    async with db.acquire() as conn, conn.transaction():
        confirmed = await gaming.confirm(conn, flag_id=flag_id, decider_id=cast.supervisor.id, scope=None,
                                         reason="always the same pair, always within a minute", now=clock.now())
    assert confirmed.state == "confirmed" and confirmed.evidence["decision"]["reversed_points"] == 0
    async with db.acquire() as conn, conn.transaction():
        await points.award_ready_reports(conn, incident_id=tenth, now=clock.now())
    assert [r[4] for r in await rows(db, cast.R)] == [incident for incident, _ in steps[:9]]


@pytest.mark.parametrize("r_is", ["first reporter", "corroborator"])
async def test_only_the_suspect_riders_award_in_the_incident_is_withheld(db, clock, cast, r_is):
    steps = await play(db, clock, cast, SEVEN_OF_TEN[:9], after_s=30)
    clock.advance(minutes=10)
    if r_is == "first reporter":
        tenth = await file_report(db, clock, cast.R)
        await add_report(db, clock, tenth, cast.B)
        r_amount, b_reason, b_amount = await first_report_points(db, tenth), "corroboration", 2
    else:
        tenth = await file_report(db, clock, cast.B)
        await add_report(db, clock, tenth, cast.R)
        r_amount, b_reason, b_amount = 2, "first_report", await first_report_points(db, tenth)
    clock.advance(seconds=30)
    await accept(db, clock, cast.M, tenth)
    [flag] = await pair_flags(db, cast.R)
    r_report = await db.fetchval("SELECT id FROM reports WHERE incident_id = $1 AND reporter_id = $2", tenth, cast.R)
    assert (flag["report_id"], flag["withheld_points"]) == (r_report, r_amount)
    assert await pair_flags(db, cast.B) == []  # B's only report: too few to judge
    assert [(r[1], r[2]) for r in await rows(db, cast.B)] == [(b_reason, b_amount)]
    assert len(await rows(db, cast.R)) == len(steps)  # the 9 earlier first reports, nothing for the 10th


# ── the review API works for the new kind ─────────────────────────────────────────────────────────


async def api_scenario(client, db, clock, login):
    """R (an area on GRID) files 10 reports; a signed-in grid member accepts each through the API within 30 s."""
    member = await login("grid_member", "13933330001", [GRID])
    supervisor = await login("supervisor", "13911110001", [COMMUNITY])
    rider = await make_member(db)
    await db.execute("INSERT INTO member_areas (member_id, area_id) VALUES ($1, $2)", rider, await area(db, GRID))
    incidents = []
    for _ in range(10):
        clock.advance(minutes=10)
        incidents.append(await file_report(db, clock, rider))
        clock.advance(seconds=30)
        reply = await client.post(f"/api/v1/incidents/{incidents[-1]}/accept", headers=member.headers, json={})
        assert reply.status_code == 200 and reply.json()["state"] == "accepted", reply.text
    return member, supervisor, rider, incidents


async def test_review_api_lists_clears_and_confirms_pair_collusion(client, db, clock, login):
    member, supervisor, rider, incidents = await api_scenario(client, db, clock, login)
    listed = (await client.get("/api/v1/review", headers=supervisor.headers)).json()
    assert [(f["kind"], f["member_id"], f["incident_id"]) for f in listed] == \
        [("pair_collusion", rider, incidents[-1])]
    amount = await first_report_points(db, incidents[-1])
    evidence = listed[0]["evidence"]
    assert listed[0]["withheld_points"] == amount
    assert (evidence["grid_member_id"], evidence["accepted_by_member"], evidence["reports_in_window"],
            evidence["median_s"]) == (member.member_id, 10, 10, 30.0)
    assert evidence["grid_member_pseudonym"] == await db.fetchval("SELECT pseudonym FROM members WHERE id = $1",
                                                                  member.member_id)

    reply = await client.post(f"/api/v1/review/flags/{listed[0]['id']}/clear", headers=supervisor.headers)
    assert reply.status_code == 200 and reply.json()["state"] == "cleared", reply.text
    assert await db.fetchval("SELECT amount FROM points_ledger WHERE member_id = $1 AND reason = 'flag_release'",
                             rider) == amount

    # Still suspect at the next accept: a new flag, and this time the supervisor confirms it.
    clock.advance(minutes=10)
    eleventh = await file_report(db, clock, rider)
    clock.advance(seconds=30)
    assert (await client.post(f"/api/v1/incidents/{eleventh}/accept", headers=member.headers,
                              json={})).status_code == 200
    [again] = (await client.get("/api/v1/review", headers=supervisor.headers)).json()
    assert (again["kind"], again["incident_id"]) == ("pair_collusion", eleventh)
    reply = await client.post(f"/api/v1/review/flags/{again['id']}/confirm", headers=supervisor.headers,
                              json={"reason": "accepts only this rider, within a minute"})
    assert reply.status_code == 200 and reply.json()["state"] == "confirmed", reply.text
    assert await db.fetchval("""SELECT count(*) FROM points_ledger
                                WHERE member_id = $1 AND source_kind = 'incident' AND source_id = $2""",
                             rider, eleventh) == 0
