"""process_report: route, merge race-free, recurrences, notifications — idempotent under arq's contract."""

import asyncio
import datetime as dt

import pytest
from shapely.geometry import shape

from gridrider.db.pool import create_pool
from gridrider.demo import seed_demo
from gridrider.domain.demo_geography import (
    DEMO_GAP_POINT,
    DEMO_OUTSIDE_GRIDS_POINT,
    DEMO_OVERLAP_GRIDS,
    DEMO_OVERLAP_POINT,
    zhangwu_demo_areas,
)
from gridrider.jobs.pipeline import process_report
from gridrider.jobs.queue import transaction
from gridrider.jobs.registry import JOB_KINDS, JobKind
from gridrider.jobs.relay import relay_due_jobs
from gridrider.jobs.runner import run_job_row
from gridrider.services import Services
from tests.factories import make_member, make_report
from tests.jobs.conftest import run_burst

GRID = "ZW-ZWZ-C02-G03"
POINT = shape(next(a for a in zhangwu_demo_areas() if a.code == GRID).polygon).representative_point()
HERE = (POINT.y, POINT.x)


def metres_north(lat_lon, metres):
    return lat_lon[0] + metres / 111_320, lat_lon[1]


@pytest.fixture
async def town(db, settings):
    async with db.acquire() as conn:
        await seed_demo(conn, settings)


@pytest.fixture
async def courier(db):
    return await make_member(db)


async def queue_report(db, clock, **kwargs) -> int:
    """A report as intake leaves it: the row, and its process_report job."""
    report_id = await make_report(db, clock, **kwargs)
    async with transaction(db, clock, None, max_attempts=5) as tx:
        job = await tx.add_job("process_report", {"report_id": report_id})
    return job.id


async def run(services, job_id, handler=process_report):
    return await run_job_row(services, job_id, handler)


async def incident_of(db, report_id):
    return await db.fetchrow("SELECT i.* FROM incidents i JOIN reports r ON r.incident_id = i.id WHERE r.id = $1",
                             report_id)


async def area_id(db, code):
    return await db.fetchval("SELECT id FROM areas WHERE code = $1", code)


async def report_of_job(db, job_id):
    return await db.fetchval("SELECT (payload->>'report_id')::bigint FROM jobs WHERE id = $1", job_id)


async def test_a_report_inside_a_grid_becomes_a_dispatched_incident_with_deadlines(services, db, clock, town, courier):
    job = await queue_report(db, clock, reporter_id=courier, lat=HERE[0], lon=HERE[1])
    assert (await run(services, job)).startswith("new incident")
    incident = await incident_of(db, await report_of_job(db, job))
    grid_id = await area_id(db, GRID)
    assert (incident["state"], incident["area_id"], incident["report_count"]) == ("dispatched", grid_id, 1)
    assert incident["dispatched_at"] == clock.now()
    assert incident["accept_due_at"] == clock.now() + dt.timedelta(hours=24)
    notification = await db.fetchrow("SELECT event, audience FROM notifications WHERE incident_id = $1",
                                      incident["id"])
    assert notification["event"] == "incident_reached_grid"
    assert notification["audience"] == {"area_id": await area_id(db, GRID), "roles": ["grid_member"]}


async def test_life_safety_gets_one_hour_to_accept_and_alerts_the_community(services, db, clock, town, courier):
    job = await queue_report(db, clock, reporter_id=courier, lat=HERE[0], lon=HERE[1], category="missing_manhole_cover")
    await run(services, job)
    incident = await incident_of(db, await report_of_job(db, job))
    assert incident["accept_due_at"] == clock.now() + dt.timedelta(hours=1)
    events = {r["event"]: r["audience"] for r in await db.fetch("SELECT event, audience FROM notifications")}
    assert events["life_safety_created"] == {"area_id": await area_id(db, "ZW-ZWZ-C02"), "roles": ["supervisor"]}


@pytest.mark.parametrize(("point", "expected_area", "state"), [
    (DEMO_GAP_POINT, None, "dispatched"),
    (DEMO_OVERLAP_POINT, DEMO_OVERLAP_GRIDS[0], "dispatched"),
    (DEMO_OUTSIDE_GRIDS_POINT, "ZW-ZWZ-C04", "unrouted"),
])
async def test_gap_overlap_and_outside(services, db, clock, town, courier, point, expected_area, state):
    job = await queue_report(db, clock, reporter_id=courier, lat=point[0], lon=point[1])
    await run(services, job)
    incident = await incident_of(db, await report_of_job(db, job))
    assert incident["state"] == state
    if expected_area:
        assert incident["area_id"] == await area_id(db, expected_area)
    if state == "unrouted":
        assert incident["dispatched_at"] is None and incident["dispatch_due_at"] == clock.now() + dt.timedelta(hours=24)
        event = await db.fetchval("SELECT event FROM notifications WHERE incident_id = $1", incident["id"])
        assert event == "incident_unrouted"


async def test_a_second_report_nearby_corroborates_the_first(services, db, clock, town, courier):
    first = await queue_report(db, clock, reporter_id=courier, lat=HERE[0], lon=HERE[1])
    await run(services, first)
    other = await make_member(db)
    second = await queue_report(db, clock, reporter_id=other, lat=metres_north(HERE, 40)[0], lon=HERE[1])
    assert (await run(services, second)).startswith("merged into")
    one = await incident_of(db, await report_of_job(db, first))
    two = await incident_of(db, await report_of_job(db, second))
    assert one["id"] == two["id"] and two["report_count"] == 2
    assert (two["lat"], two["lon"]) == HERE  # the incident keeps its origin's point


async def test_outside_the_radius_or_window_or_category_is_a_new_incident(services, db, clock, town, courier):
    await run(services, await queue_report(db, clock, reporter_id=courier, lat=HERE[0], lon=HERE[1]))
    far = await queue_report(db, clock, reporter_id=courier, lat=metres_north(HERE, 60)[0], lon=HERE[1])  # radius 50
    other_kind = await queue_report(db, clock, reporter_id=courier, lat=HERE[0], lon=HERE[1], category="flooding")
    late = await queue_report(db, clock, reporter_id=courier, lat=HERE[0], lon=HERE[1],
                              captured_at=clock.now() + dt.timedelta(hours=73))  # window 72 h
    for job in (far, other_kind, late):
        assert (await run(services, job)).startswith("new incident")
    assert await db.fetchval("SELECT count(*) FROM incidents") == 4


async def test_a_late_offline_report_captured_earlier_still_merges(services, db, clock, town, courier):
    await run(services, await queue_report(db, clock, reporter_id=courier, lat=HERE[0], lon=HERE[1]))
    offline = await queue_report(db, clock, reporter_id=courier, lat=HERE[0], lon=HERE[1],
                                 captured_at=clock.now() - dt.timedelta(hours=50))
    assert (await run(services, offline)).startswith("merged into")
    latest = await db.fetchval("SELECT last_captured_at FROM incidents")
    assert latest == clock.now()  # an earlier capture does not move the latest one back


async def test_with_two_candidates_the_nearest_origin_wins(services, db, clock, town, courier):
    south = await queue_report(db, clock, reporter_id=courier, lat=HERE[0], lon=HERE[1])
    north = await queue_report(db, clock, reporter_id=courier, lat=metres_north(HERE, 80)[0], lon=HERE[1])
    await run(services, south)
    await run(services, north)
    between = await queue_report(db, clock, reporter_id=courier, lat=metres_north(HERE, 45)[0], lon=HERE[1])
    await run(services, between)
    assert (await incident_of(db, await report_of_job(db, between)))["id"] == \
        (await incident_of(db, await report_of_job(db, north)))["id"]


async def test_a_hazard_back_within_seven_days_of_resolution_is_linked_as_a_recurrence(
    services, db, clock, town, courier,
):
    first = await queue_report(db, clock, reporter_id=courier, lat=HERE[0], lon=HERE[1])
    await run(services, first)
    old = await incident_of(db, await report_of_job(db, first))
    await db.execute("UPDATE incidents SET state = 'resolved', accepted_at = $2, resolved_at = $2 WHERE id = $1",
                     old["id"], clock.now())
    clock.advance(days=3)
    again = await queue_report(db, clock, reporter_id=courier, lat=HERE[0], lon=HERE[1])
    await run(services, again)
    new = await incident_of(db, await report_of_job(db, again))
    assert new["id"] != old["id"] and new["recurrence_of_id"] == old["id"]


async def test_running_the_job_twice_gives_the_same_single_result(services, db, clock, town, courier):
    job = await queue_report(db, clock, reporter_id=courier, lat=HERE[0], lon=HERE[1])
    report_id = await report_of_job(db, job)
    async with db.acquire() as conn, conn.transaction():
        from gridrider.domain.incidents import process_report as process
        from gridrider.jobs.pipeline import AREA_INDEX

        index = await AREA_INDEX.current(conn)
        first = await process(conn, report_id=report_id, index=index, now=clock.now())
    async with db.acquire() as conn, conn.transaction():
        second = await process(conn, report_id=report_id, index=index, now=clock.now())
    assert first is not None and second is None
    assert await db.fetchval("SELECT count(*) FROM incidents") == 1
    assert await db.fetchval("SELECT count(*) FROM notifications") == 1
    assert await db.fetchval("SELECT count(*) FROM incident_events") == 1


async def test_twenty_concurrent_reports_of_one_hazard_make_one_incident(settings, clock, db, town, redis):
    pool = await create_pool(settings.database_url, min_size=20, max_size=22)
    try:
        services = Services(settings=settings, clock=clock, pool=pool, redis=None, blobs=None)
        jobs = []
        for n in range(20):
            member = await make_member(db)
            # Spread over ~40 m, across H3 cell borders, in random order of arrival.
            lat, lon = metres_north(HERE, (n % 5) * 10)[0], HERE[1] + (n // 5) * 0.0001
            jobs.append(await queue_report(db, clock, reporter_id=member, lat=lat, lon=lon))
        outcomes = await asyncio.gather(*(run(services, job) for job in jobs))
    finally:
        await pool.close()
    assert sum(o.startswith("new incident") for o in outcomes) == 1
    assert await db.fetchval("SELECT count(*) FROM incidents") == 1
    assert await db.fetchval("SELECT report_count FROM incidents") == 20
    assert await db.fetchval("SELECT count(*) FROM reports WHERE state = 'processed'") == 20


async def test_a_process_report_that_keeps_failing_is_routed_minimally(settings, clock, db, town, courier, redis,
                                                                       monkeypatch):
    async def always_fails(call):
        raise RuntimeError("merge is broken")

    spec = JOB_KINDS["process_report"]
    monkeypatch.setitem(JOB_KINDS, "process_report", JobKind(always_fails, on_dead=spec.on_dead))
    services = Services(settings=settings, clock=clock, pool=db, redis=redis, blobs=None)
    report_id = await make_report(db, clock, reporter_id=courier, lat=HERE[0], lon=HERE[1])
    async with transaction(db, clock, redis, max_attempts=3) as tx:
        await tx.add_job("process_report", {"report_id": report_id}, max_attempts=3)
    for _ in range(3):
        await run_burst(settings, clock)
        clock.advance(hours=2)
        await relay_due_jobs(services)
    await run_burst(settings, clock)
    states = {r["kind"]: r["state"] for r in await db.fetch("SELECT kind, state FROM jobs")}
    # …and the incident it made is announced like any other.
    assert states == {"process_report": "dead", "route_report_minimal": "done", "notify": "done"}
    incident = await incident_of(db, report_id)
    assert incident["state"] == "dispatched" and incident["report_count"] == 1
