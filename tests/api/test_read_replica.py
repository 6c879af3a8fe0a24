"""Read scaling (issue 11): with DATABASE_REPLICA_URL set, the dashboard, the rider and team rankings and
rankings.csv read the replica; signing in, the caller's session and every write stay on the primary.

The "replica" is a PostgreSQL server of its own (`own_postgres`), not a streaming standby, so it can hold
other figures than the primary: every answer shows which database it came from. Both hold the Zhangwu
demo (the areas and members the figures join with); then, in November 2026 (Shanghai):

              incidents                                     rider points (ranking)
  primary     1 unrouted in community C02                   张伟 10
  replica     3 on grid C02-G03 (2 dispatched, 1 resolved)  王芳 30, 张伟 5

The supervisor who signs in exists only on the primary, and so does their session.
"""

from __future__ import annotations

import asyncio
import csv
import io

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from gridrider.app import create_app
from gridrider.db.pool import create_pool
from gridrider.demo import seed_demo
from gridrider.domain.csv_export import BOM
from tests.api.test_dashboard import X, add_incident, sh
from tests.api.test_rankings import ledger
from tests.conftest import Caller, issue_code, make_settings, sign_in

COMMUNITY, GRID = "ZW-ZWZ-C02", "ZW-ZWZ-C02-G03"
RIDER_ZHANG, RIDER_WANG = "13900000001", "13900000002"  # demo couriers 骑手 张伟 and 骑手 王芳
NOVEMBER = {"from": "2026-11-01", "to": "2026-11-26"}


async def member_id(db, phone: str) -> int:
    # Looked up in each database: the two number their members independently.
    return await db.fetchval("SELECT id FROM members WHERE phone = $1", phone)


async def seed_figures(db, *, incidents: list[dict], points: dict[str, int]) -> None:
    for incident in incidents:
        await add_incident(db, point=X, **incident)
    for phone, amount in points.items():
        await ledger(db, await member_id(db, phone), "adjustment", amount, sh(11, 20, 12))


@pytest.fixture
async def primary(db, demo) -> asyncpg.Pool:
    await seed_figures(db, incidents=[dict(area=COMMUNITY, created=sh(11, 20, 9), state="unrouted")],
                       points={RIDER_ZHANG: 10})
    return db


@pytest.fixture
async def replica(own_postgres, settings):
    """The other server, seeded with other figures; yields its URL."""
    pool = await create_pool(own_postgres.url, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            await seed_demo(conn, settings)
        await seed_figures(pool, incidents=[
            dict(area=GRID, created=sh(11, 10, 9), state="dispatched", dispatched=sh(11, 10, 9)),
            dict(area=GRID, created=sh(11, 12, 9), state="dispatched", dispatched=sh(11, 12, 9)),
            dict(area=GRID, created=sh(11, 14, 9), state="resolved", dispatched=sh(11, 14, 9),
                 accepted=sh(11, 14, 10), resolved=sh(11, 15, 10)),
        ], points={RIDER_WANG: 30, RIDER_ZHANG: 5})
    finally:
        await pool.close()
    return own_postgres.url


async def sign_in_supervisor(client, db, settings, clock) -> Caller:
    code = await issue_code(db, settings, clock, role="supervisor", phone="13911190001", areas=["ZW"])
    return await sign_in(client, code, "13911190001")


async def figures(client, caller: Caller) -> dict:
    """What each read-scaled endpoint answers, reduced to what tells the two databases apart."""
    dashboard = await client.get("/api/v1/dashboard", headers=caller.headers, params=NOVEMBER)
    riders = await client.get("/api/v1/rankings/riders", headers=caller.headers)
    teams = await client.get("/api/v1/rankings/teams", headers=caller.headers, params={"scope": COMMUNITY})
    export = await client.get("/api/v1/exports/rankings.csv", headers=caller.headers, params={"lang": "en"})
    for reply in (dashboard, riders, teams, export):
        assert reply.status_code == 200, reply.text
    rows = list(csv.DictReader(io.StringIO(export.content.decode().removeprefix(BOM))))
    return {
        "dashboard": {state: n for state, n in dashboard.json()["by_state"].items() if n},
        "riders": [(r["display_name"], r["points"]) for r in riders.json()["items"]],
        "team": next(t["incidents"] for t in teams.json()["items"] if t["area_code"] == GRID),
        "export": [(r["Name"], int(r["Points"])) for r in rows],
    }


REPLICA_FIGURES = {
    "dashboard": {"dispatched": 2, "resolved": 1},
    "riders": [("骑手 王芳", 30), ("骑手 张伟", 5)],
    "team": 3,
    "export": [("骑手 王芳", 30), ("骑手 张伟", 5)],
}
PRIMARY_FIGURES = {
    "dashboard": {"unrouted": 1},
    "riders": [("骑手 张伟", 10)],
    "team": 0,
    "export": [("骑手 张伟", 10)],
}


async def gridrider_connections(url: str) -> int:
    """Connections the API holds on a server (its pools name themselves `gridrider`; this probe does not)."""
    probe = await asyncpg.connect(url, server_settings={"application_name": "test-probe"})
    try:
        return await probe.fetchval("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'gridrider'")
    finally:
        await probe.close()


async def test_figures_come_from_the_replica_while_sign_in_and_writes_stay_on_the_primary(
        tmp_path, primary, replica, redis_url, vapid_pem, settings, clock):
    with_replica = make_settings(tmp_path / "data", settings.database_url, redis_url, vapid_pem,
                                 database_replica_url=replica)
    async with AsyncTestClient(app=create_app(with_replica, clock=clock)) as client:
        # The session is written to and checked on the primary: the replica has never heard of this supervisor.
        supervisor = await sign_in_supervisor(client, primary, settings, clock)
        assert await primary.fetchval("SELECT count(*) FROM sessions WHERE member_id = $1", supervisor.member_id) == 1

        assert await figures(client, supervisor) == REPLICA_FIGURES

        # A write lands on the primary (the incident exists only there) and leaves the replica as it was.
        incident = await primary.fetchval("SELECT id FROM incidents WHERE state = 'unrouted'")
        reply = await client.post(f"/api/v1/incidents/{incident}/dispatch", headers=supervisor.headers,
                                  json={"grid_code": GRID})
        assert reply.status_code == 200, reply.text
        assert await primary.fetchval("SELECT state FROM incidents WHERE id = $1", incident) == "dispatched"
        # …so the figures still show the replica's world, which nothing wrote to.
        assert await figures(client, supervisor) == REPLICA_FIGURES
        assert await gridrider_connections(replica) >= 1

    # Shutting the API down closes the replica's pool too.
    for _ in range(50):
        if await gridrider_connections(replica) == 0:
            break
        await asyncio.sleep(0.1)
    assert await gridrider_connections(replica) == 0


async def test_without_a_replica_the_figures_come_from_the_primary(client, primary, settings, clock):
    supervisor = await sign_in_supervisor(client, primary, settings, clock)
    assert await figures(client, supervisor) == PRIMARY_FIGURES


async def test_a_replica_that_is_down_does_not_stop_the_api(tmp_path, primary, own_postgres, redis_url, vapid_pem,
                                                            settings, clock):
    """The API starts, is ready and takes sign-ins and writes without it (readiness is the primary's,
    DESIGN §9); only the figures that read it fail (503, try again), rather than quietly loading the primary."""
    await asyncio.to_thread(own_postgres.stop)
    with_replica = make_settings(tmp_path / "data", settings.database_url, redis_url, vapid_pem,
                                 database_replica_url=own_postgres.url)
    async with AsyncTestClient(app=create_app(with_replica, clock=clock)) as client:
        assert (await client.get("/readyz")).status_code == 200
        supervisor = await sign_in_supervisor(client, primary, settings, clock)
        incident = await primary.fetchval("SELECT id FROM incidents WHERE state = 'unrouted'")
        reply = await client.post(f"/api/v1/incidents/{incident}/dispatch", headers=supervisor.headers,
                                  json={"grid_code": GRID})
        assert reply.status_code == 200, reply.text
        reply = await client.get("/api/v1/dashboard", headers=supervisor.headers, params=NOVEMBER)
        assert reply.status_code == 503, reply.text
        assert reply.json()["code"] == "service_unavailable" and reply.headers["retry-after"] == "2"
