"""Anti-gaming flags (DESIGN.md §2d) on real PostgreSQL: detection of impossible travel, a wrong capture clock
and bursts; points withheld while a flag is open; clearing and confirming through the review API."""

from __future__ import annotations

import datetime as dt

import pytest

from gridrider.domain import gaming
from gridrider.jobs.pipeline import process_report
from gridrider.jobs.queue import transaction
from gridrider.jobs.runner import run_job_row
from tests.domain.test_points import accept, add_report, new_incident, rows
from tests.factories import make_member, make_report

GRID = "ZW-ZWZ-C02-G01"
COMMUNITY = "ZW-ZWZ-C02"
OTHER_COMMUNITY = "ZW-ZWZ-C03"

# Two points ~11.1 km apart along a meridian (0.1° of latitude), and one ~100 m from the first.
HERE = (42.38, 122.53)
FAR = (42.48, 122.53)
NEAR = (42.3809, 122.53)


async def report_at(conn, clock, rider: int, *, place=HERE, captured: dt.datetime | None = None,
                    received: dt.datetime | None = None, queued_for_s: int | None = None) -> int:
    """A report with explicit capture and receipt times (default: received when captured, else now)."""
    received = received or captured or clock.now()
    report_id = await make_report(conn, clock, reporter_id=rider, lat=place[0], lon=place[1],
                                  captured_at=captured or received)
    await conn.execute("UPDATE reports SET received_at = $2, queued_for_s = $3 WHERE id = $1",
                       report_id, received, queued_for_s)
    return report_id


async def detect(conn, clock, report_id: int) -> list[tuple]:
    async with conn.transaction():
        await gaming.detect(conn, report_id=report_id, now=clock.now())
    return await flags_of(conn, report_id)


async def flags_of(conn, report_id: int) -> list[tuple]:
    return [tuple(r) for r in await conn.fetch(
        "SELECT kind, member_id, report_id FROM flags WHERE report_id = $1 ORDER BY id", report_id)]


# ── detection ─────────────────────────────────────────────────────────────────────────────────────


def test_travel_speed_ignores_pairs_too_close_in_time_or_space():
    assert gaming.travel_speed_kmh(10_000, 59) is None
    assert gaming.travel_speed_kmh(499, 3600) is None
    assert gaming.travel_speed_kmh(10_000, 300) == pytest.approx(120.0)


async def test_impossible_travel_flags_a_report_too_far_from_the_previous_one_too_soon(db, clock):
    async with db.acquire() as conn:
        rider = await make_member(conn)
        t = clock.now()
        await report_at(conn, clock, rider, place=HERE, captured=t)
        fast = await report_at(conn, clock, rider, place=FAR, captured=t + dt.timedelta(minutes=4))  # ~167 km/h
        assert await detect(conn, clock, fast) == [("impossible_travel", rider, fast)]
        evidence = await conn.fetchval("SELECT evidence FROM flags WHERE report_id = $1", fast)
        assert evidence["speed_kmh"] > 120 and evidence["distance_m"] > 11_000
        assert await detect(conn, clock, fast) == [("impossible_travel", rider, fast)]  # a redelivery: once


async def test_impossible_travel_spares_plausible_speeds_and_gps_noise(db, clock):
    async with db.acquire() as conn:
        rider, other = await make_member(conn), await make_member(conn)
        t = clock.now()
        await report_at(conn, clock, rider, place=HERE, captured=t)
        slow = await report_at(conn, clock, rider, place=FAR, captured=t + dt.timedelta(minutes=6))  # ~111 km/h
        assert await detect(conn, clock, slow) == []
        # 100 m in 1 s would be 360 km/h, but a pair that close in time and space is GPS noise: ignored.
        jitter = await report_at(conn, clock, rider, place=NEAR, captured=t + dt.timedelta(minutes=6, seconds=1))
        await conn.execute("UPDATE reports SET lat = $2, lon = $3 WHERE id = $1", slow, *HERE)
        assert await detect(conn, clock, jitter) == []
        # Another rider far away at the same moment is not this rider's previous report.
        elsewhere = await report_at(conn, clock, other, place=FAR, captured=t + dt.timedelta(minutes=1))
        assert await detect(conn, clock, elsewhere) == []


async def test_capture_clock_flags_a_clock_set_ahead_and_a_backdated_unqueued_capture(db, clock):
    async with db.acquire() as conn:
        rider = await make_member(conn)
        now = clock.now()
        ahead = await report_at(conn, clock, rider, captured=now + dt.timedelta(minutes=3), received=now)
        assert await detect(conn, clock, ahead) == [("capture_clock", rider, ahead)]
        backdated = await report_at(conn, clock, rider, captured=now - dt.timedelta(minutes=11), received=now,
                                    queued_for_s=5)
        assert await detect(conn, clock, backdated) == [("capture_clock", rider, backdated)]
        rules = await conn.fetch("SELECT evidence->>'rule' FROM flags ORDER BY id")
        assert [r[0] for r in rules] == ["ahead", "not_queued"]


async def test_capture_clock_spares_small_skew_and_queued_reports(db, clock):
    async with db.acquire() as conn:
        rider = await make_member(conn)
        now = clock.now()
        slightly_ahead = await report_at(conn, clock, rider, captured=now + dt.timedelta(minutes=1, seconds=50),
                                         received=now)
        queued = await report_at(conn, clock, rider, captured=now - dt.timedelta(minutes=40), received=now,
                                 queued_for_s=2400)
        unknown_queue = await report_at(conn, clock, rider, captured=now - dt.timedelta(minutes=40), received=now)
        recent = await report_at(conn, clock, rider, captured=now - dt.timedelta(minutes=9), received=now,
                                 queued_for_s=0)
        for report in (slightly_ahead, queued, unknown_queue, recent):
            assert await detect(conn, clock, report) == []


async def test_burst_flags_the_31st_report_in_an_hour_once_per_rider_per_hour(db, clock):
    async with db.acquire() as conn:
        rider, steady = await make_member(conn), await make_member(conn)
        start = clock.now()
        reports = [await report_at(conn, clock, rider, received=start + dt.timedelta(minutes=i * 1.9))
                   for i in range(32)]
        steady_reports = [await report_at(conn, clock, steady, received=start + dt.timedelta(minutes=i * 1.9))
                          for i in range(30)]
        assert await detect(conn, clock, reports[29]) == []  # exactly 30: not more than the limit
        assert await detect(conn, clock, steady_reports[-1]) == []
        assert await detect(conn, clock, reports[30]) == [("burst", rider, reports[30])]
        assert await detect(conn, clock, reports[31]) == []  # the same hour: one flag
        evidence = await conn.fetchval("SELECT evidence FROM flags WHERE kind = 'burst'")
        assert evidence["reports_in_window"] == 31
        # Reports received more than an hour later, a burst again: a new flag.
        later = [await report_at(conn, clock, rider, received=start + dt.timedelta(hours=2, seconds=i))
                 for i in range(31)]
        assert await detect(conn, clock, later[-1]) == [("burst", rider, later[-1])]


async def test_only_courier_reports_are_checked(db, clock):
    async with db.acquire() as conn:
        staff = await make_member(conn, role="grid_member")
        now = clock.now()
        ahead = await report_at(conn, clock, staff, captured=now + dt.timedelta(minutes=30), received=now)
        assert await detect(conn, clock, ahead) == []


# ── points while a flag is open, and the decision ─────────────────────────────────────────────────


async def flagged_report(conn, clock, incident: int, rider: int) -> tuple[int, int]:
    """A report in the incident whose phone clock was set ahead: detection raises capture_clock on it."""
    report = await add_report(conn, clock, incident, rider)
    await conn.execute("UPDATE reports SET captured_at = received_at + interval '5 minutes' WHERE id = $1", report)
    assert await detect(conn, clock, report) == [("capture_clock", rider, report)]
    return report, await conn.fetchval("SELECT id FROM flags WHERE report_id = $1", report)


async def clear(conn, clock, flag_id: int, decider: int):
    async with conn.transaction():
        return await gaming.clear(conn, flag_id=flag_id, decider_id=decider, scope=None, now=clock.now())


async def confirm(conn, clock, flag_id: int, decider: int):
    async with conn.transaction():
        return await gaming.confirm(conn, flag_id=flag_id, decider_id=decider, scope=None, reason="made up",
                                    now=clock.now())


async def test_open_flag_withholds_and_clearing_pays_the_withheld_amount_once_as_flag_release(db, clock):
    async with db.acquire() as conn:
        rider, boss = await make_member(conn), await make_member(conn, role="supervisor")
        incident = await new_incident(conn, clock, category="flooding")
        _report, flag = await flagged_report(conn, clock, incident, rider)
        await accept(conn, clock, incident)
        assert await rows(conn) == []
        assert await conn.fetchval("SELECT withheld_points FROM flags WHERE id = $1", flag) == 15

        decided = await clear(conn, clock, flag, boss)
        assert (decided.state, decided.decided_by) == ("cleared", boss)
        assert await rows(conn) == [(rider, "flag_release", 15, "flag", flag, 0)]
        await accept(conn, clock, incident)  # a redelivered accept pays nothing again
        assert await rows(conn) == [(rider, "flag_release", 15, "flag", flag, 0)]


async def test_clearing_a_flag_with_nothing_withheld_lets_the_report_earn_normally(db, clock):
    async with db.acquire() as conn:
        first, other, boss = await make_member(conn), await make_member(conn), await make_member(conn, role="admin")
        incident = await new_incident(conn, clock, category="flooding")
        await add_report(conn, clock, incident, first, minutes_ago=5)
        await accept(conn, clock, incident)
        # Merged after accept and flagged before it earned: nothing recorded on the flag.
        report, flag = await flagged_report(conn, clock, incident, other)
        assert await rows(conn, other) == []
        await clear(conn, clock, flag, boss)
        assert await rows(conn, other) == [(other, "corroboration", 2, "report", report, 0)]
        await accept(conn, clock, incident)
        assert await rows(conn, other) == [(other, "corroboration", 2, "report", report, 0)]


async def test_confirming_after_payment_reverses_and_before_payment_pays_nothing(db, clock):
    async with db.acquire() as conn:
        rider, boss = await make_member(conn), await make_member(conn, role="supervisor")
        incident = await new_incident(conn, clock, category="flooding")
        report = await add_report(conn, clock, incident, rider)
        await accept(conn, clock, incident)
        paid = await conn.fetchval("SELECT id FROM points_ledger WHERE reason = 'first_report'")
        await conn.execute("UPDATE reports SET captured_at = received_at + interval '5 minutes' WHERE id = $1", report)
        await detect(conn, clock, report)
        flag = await conn.fetchval("SELECT id FROM flags WHERE report_id = $1", report)
        decided = await confirm(conn, clock, flag, boss)
        assert decided.state == "confirmed" and decided.evidence["decision"]["reversed_points"] == 15
        assert await rows(conn) == [(rider, "first_report", 15, "incident", incident, 1),
                                    (rider, "reversal", -15, "ledger", paid, 0)]

        # Confirmed before anything was paid: nothing is, now or later.
        other_incident = await new_incident(conn, clock)
        _report, other_flag = await flagged_report(conn, clock, other_incident, rider)
        await confirm(conn, clock, other_flag, boss)
        await accept(conn, clock, other_incident)
        assert len(await rows(conn)) == 2


# ── the review API ────────────────────────────────────────────────────────────────────────────────


async def rider_in(db, area_code: str) -> int:
    rider = await make_member(db)
    await db.execute("INSERT INTO member_areas (member_id, area_id) SELECT $1, id FROM areas WHERE code = $2",
                     rider, area_code)
    return rider


async def api_flag(db, clock, rider: int) -> tuple[int, int]:
    """An accepted incident whose first report (by `rider`) is flagged and its 15 points withheld."""
    async with db.acquire() as conn:
        incident = await new_incident(conn, clock, category="flooding")
        _report, flag = await flagged_report(conn, clock, incident, rider)
        await accept(conn, clock, incident)
    return incident, flag


async def test_review_lists_open_flags_in_the_callers_subtree_and_clear_pays_once(client, db, clock, login, admin):
    supervisor = await login("supervisor", "13911110001", [COMMUNITY])
    rider = await rider_in(db, GRID)
    incident, flag = await api_flag(db, clock, rider)
    clock.advance(minutes=1)
    outsider_rider = await rider_in(db, "ZW-ZWZ-C03-G01")
    _, outsider_flag = await api_flag(db, clock, outsider_rider)

    listed = (await client.get("/api/v1/review", headers=supervisor.headers)).json()
    assert [(f["id"], f["kind"], f["incident_id"], f["withheld_points"]) for f in listed] == \
        [(flag, "capture_clock", incident, 15)]
    pseudonym = await db.fetchval("SELECT pseudonym FROM members WHERE id = $1", rider)
    assert listed[0]["member_pseudonym"] == pseudonym and listed[0]["evidence"]["rule"] == "ahead"
    everything = (await client.get("/api/v1/review", headers=admin.headers)).json()
    assert [f["id"] for f in everything] == [outsider_flag, flag]  # newest first

    reply = await client.post(f"/api/v1/review/flags/{flag}/clear", headers=supervisor.headers)
    assert reply.status_code == 200, reply.text
    assert (reply.json()["state"], reply.json()["decided_by"]) == ("cleared", supervisor.member_id)
    again = await client.post(f"/api/v1/review/flags/{flag}/clear", headers=supervisor.headers)
    assert again.status_code == 409
    assert (await client.post(f"/api/v1/review/flags/{flag}/confirm", headers=supervisor.headers,
                              json={"reason": "x"})).status_code == 409
    assert await db.fetch("SELECT reason, amount FROM points_ledger WHERE member_id = $1", rider) == \
        [("flag_release", 15)]
    assert (await client.get("/api/v1/review", headers=supervisor.headers)).json() == []


async def test_review_scoping_404_and_couriers_403(client, db, clock, login):
    supervisor = await login("supervisor", "13911110001", [COMMUNITY])
    courier = await login("courier", "13922220001", [GRID])
    _, outsider_flag = await api_flag(db, clock, await rider_in(db, "ZW-ZWZ-C03-G01"))
    for action, body in (("clear", None), ("confirm", {"reason": "gaming"})):
        reply = await client.post(f"/api/v1/review/flags/{outsider_flag}/{action}", headers=supervisor.headers,
                                  json=body)
        assert reply.status_code == 404, reply.text
        reply = await client.post(f"/api/v1/review/flags/{outsider_flag}/{action}", headers=courier.headers,
                                  json=body)
        assert reply.status_code == 403, reply.text
    assert (await client.get("/api/v1/review", headers=courier.headers)).status_code == 403
    assert (await client.post("/api/v1/review/flags/999999/clear", headers=supervisor.headers)).status_code == 404
    assert await db.fetchval("SELECT state FROM flags WHERE id = $1", outsider_flag) == "open"


async def test_confirm_through_the_api_pays_nothing_and_keeps_the_reason(client, db, clock, login):
    supervisor = await login("supervisor", "13911110001", [COMMUNITY])
    rider = await rider_in(db, GRID)
    _, flag = await api_flag(db, clock, rider)
    assert (await client.post(f"/api/v1/review/flags/{flag}/confirm", headers=supervisor.headers,
                              json={"reason": "  "})).status_code == 422
    reply = await client.post(f"/api/v1/review/flags/{flag}/confirm", headers=supervisor.headers,
                              json={"reason": "clock set ahead on purpose"})
    assert reply.status_code == 200, reply.text
    assert reply.json()["state"] == "confirmed"
    assert reply.json()["evidence"]["decision"]["reason"] == "clock set ahead on purpose"
    assert await db.fetchval("SELECT count(*) FROM points_ledger WHERE member_id = $1", rider) == 0
    assert (await client.post(f"/api/v1/review/flags/{flag}/confirm", headers=supervisor.headers,
                              json={"reason": "again"})).status_code == 409


async def test_process_report_raises_the_flags_in_its_transaction(services, db, clock, demo):
    rider = await make_member(db)
    report = await make_report(db, clock, reporter_id=rider, captured_at=clock.now() + dt.timedelta(minutes=5))
    async with transaction(db, clock, None, max_attempts=5) as tx:
        job = await tx.add_job("process_report", {"report_id": report})
    assert (await run_job_row(services, job.id, process_report)).startswith("new incident")
    assert await db.fetchval("SELECT state FROM reports WHERE id = $1", report) == "processed"
    async with db.acquire() as conn:
        assert await flags_of(conn, report) == [("capture_clock", rider, report)]
