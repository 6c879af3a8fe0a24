"""A report whose photo is still being decoded when its incident is accepted earns its points when the
photo is done (DESIGN.md §2d: awards wait for photos to be ready or failed)."""

from __future__ import annotations

from gridrider.jobs.queue import PHOTOS_QUEUE
from tests.api.test_reports import files, meta
from tests.jobs.conftest import run_burst
from tests.test_scenario import GRID, HERE


async def test_first_report_points_wait_for_the_photo_then_arrive(client, login, settings, clock, db, street_photos):
    rider = await login("courier", "13900004001", [GRID])
    member = await login("grid_member", "13700004001", [GRID])
    reply = await client.post("/api/v1/reports", headers=rider.headers,
                              files=files(meta(clock, category="garbage_pileup", **HERE), street_photos[:1]))
    assert reply.status_code == 201, reply.text
    await run_burst(settings, clock)  # process_report only: the photo is still pending
    incident = await db.fetchval("SELECT incident_id FROM reports WHERE id = $1", reply.json()["id"])
    accepted = await client.post(f"/api/v1/incidents/{incident}/accept", json={}, headers=member.headers)
    assert accepted.status_code == 200, accepted.text
    ledger = "SELECT reason, amount FROM points_ledger WHERE member_id = $1"
    assert await db.fetch(ledger, rider.member_id) == []  # waiting for the photo

    await run_burst(settings, clock, queue=PHOTOS_QUEUE)
    assert [tuple(r) for r in await db.fetch(ledger, rider.member_id)] == [("first_report", 8)]
