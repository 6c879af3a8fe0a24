"""Through the real worker: a hotline request and a rider's report of one hazard end in one incident; the token
resolves once the pipeline has run; the system member never earns points nor counts as first reporter."""

import pytest

from tests.api.test_incidents import ok, post_report
from tests.jobs.conftest import run_burst
from tests.open311.conftest import BASE, GRID, HERE, both, north, point_in, post_request


@pytest.fixture
async def rider(login):
    return await login("courier", "13911110001", [GRID])


@pytest.fixture
async def member(login):
    return await login("grid_member", "13711110001", [GRID])


async def file(client, key, point=HERE, **fields) -> str:
    reply = await post_request(client, key, point=point, **fields)
    assert reply.status_code == 201, reply.text
    return reply.json()[0]["token"]


async def resolve_token(client, token: str):
    body, root = await both(client, f"tokens/{token}")
    assert root.tag == "service_requests"
    (entry,) = body
    assert list(entry) == ["service_request_id", "token"] and entry["token"] == token
    return entry["service_request_id"]


async def ledger(db) -> list[tuple[int, str, int]]:
    return [tuple(r) for r in await db.fetch("SELECT member_id, reason, amount FROM points_ledger ORDER BY id")]


async def test_a_hotline_request_merges_into_a_riders_incident(client, db, settings, clock, hotline, rider):
    report_id = await post_report(client, clock, rider, point=HERE)
    await run_burst(settings, clock)
    token = await file(client, hotline, point=north(HERE, 20))
    await run_burst(settings, clock)
    incidents = await db.fetch("SELECT id, report_count, origin_report_id FROM incidents")
    assert len(incidents) == 1
    (incident,) = incidents
    assert (incident["report_count"], incident["origin_report_id"]) == (2, report_id)
    assert await resolve_token(client, token) == incident["id"]
    assert await db.fetchval("SELECT kind FROM incident_events ORDER BY id DESC LIMIT 1") == "report_merged"


async def test_a_riders_report_merges_into_a_hotline_incident_and_the_rider_is_first_reporter(
    client, db, settings, clock, hotline, rider, member,
):
    token = await file(client, hotline)
    await run_burst(settings, clock)
    incident_id = await resolve_token(client, token)
    clock.advance(minutes=5)
    await post_report(client, clock, rider, point=north(HERE, 30))
    await run_burst(settings, clock)
    assert await db.fetchval("SELECT count(*) FROM incidents") == 1
    # The hotline's report is the origin and the earliest capture, yet the rider is the first reporter.
    await ok(client, member, incident_id, "accept")
    assert await db.fetchval("SELECT first_reporter_id FROM incidents") == rider.member_id
    rows = await ledger(db)
    assert rows == [(rider.member_id, "first_report", 8)]  # 10 × garbage_pileup's 0.8
    assert hotline.member_id not in {member_id for member_id, _, _ in rows}


async def test_a_hotline_only_incident_pays_nobody_and_has_no_first_reporter(
    client, db, settings, clock, hotline, member, street_photos,
):
    token = await file(client, hotline)
    await run_burst(settings, clock)
    incident_id = await resolve_token(client, token)
    await ok(client, member, incident_id, "accept")
    reply = await client.post(f"/api/v1/incidents/{incident_id}/resolve", headers=member.headers,
                              files=[("meta", ("meta.json", b'{"note": "done"}', "application/json")),
                                     ("photo", ("p.jpg", street_photos[0], "image/jpeg"))])
    assert reply.status_code == 200, reply.text
    assert await db.fetchval("SELECT first_reporter_id FROM incidents") is None
    assert await ledger(db) == []
    # Nor does the system member rank, or get told of its own incidents like a rider would.
    assert await db.fetchval("SELECT count(*) FROM ranking_totals") == 0
    audiences = [r["audience"] for r in await db.fetch("SELECT audience FROM notifications")]
    assert all(hotline.member_id not in (a.get("member_ids") or []) for a in audiences)


async def test_a_token_has_no_id_until_the_pipeline_has_run(client, db, settings, clock, hotline):
    token = await file(client, hotline)
    body, root = await both(client, f"tokens/{token}")
    assert body == [{"service_request_id": None, "token": token}]
    assert root.find("request/service_request_id").text is None
    await run_burst(settings, clock)
    incident_id = await resolve_token(client, token)
    assert incident_id == await db.fetchval("SELECT id FROM incidents")
    requests, _ = await both(client, f"requests/{incident_id}")
    assert requests[0]["service_request_id"] == incident_id


async def test_a_token_follows_its_report_into_a_merged_incident(client, db, settings, clock, hotline, login):
    supervisor = await login("supervisor", "13811110001", ["ZW-ZWZ-C02"])
    first = await file(client, hotline)
    second = await file(client, hotline, point=point_in("ZW-ZWZ-C02-G01"))  # too far to merge by itself
    await run_burst(settings, clock)
    a, b = await resolve_token(client, first), await resolve_token(client, second)
    assert a != b
    # The supervisor finds both are one pile of garbage after all.
    await ok(client, supervisor, b, "merge", target_incident_id=a)
    assert await resolve_token(client, second) == a


@pytest.mark.parametrize("unknown", ["AAAAAAAAAAAAAAAAAAAAAAAA", "short", "bad.token.chars!!!!!!!!!"])
async def test_unknown_tokens_are_404(client, db, unknown):
    for fmt in ("json", "xml"):
        reply = await client.get(f"{BASE}/tokens/{unknown}.{fmt}")
        assert reply.status_code == 404
