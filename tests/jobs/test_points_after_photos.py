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
    await run_burst(settings, clock)  # award_points, which the photo job asked for
    assert [tuple(r) for r in await db.fetch(ledger, rider.member_id)] == [("first_report", 8)]


LEDGER = "SELECT reason, amount FROM points_ledger WHERE member_id = $1"


async def _late_report_to_an_accepted_incident(client, login, settings, clock, db, street_photos, phones):
    """An incident accepted with its first report's photo done; then another courier's report of the hazard,
    posted and not yet processed. Returns (incident id, the late report's id, its courier)."""
    first = await login("courier", phones[0], [GRID])
    second = await login("courier", phones[1], [GRID])
    member = await login("grid_member", phones[2], [GRID])
    reply = await client.post("/api/v1/reports", headers=first.headers,
                              files=files(meta(clock, category="garbage_pileup", **HERE), street_photos[:1]))
    await run_burst(settings, clock)
    await run_burst(settings, clock, queue=PHOTOS_QUEUE)
    incident = await db.fetchval("SELECT incident_id FROM reports WHERE id = $1", reply.json()["id"])
    accepted = await client.post(f"/api/v1/incidents/{incident}/accept", json={}, headers=member.headers)
    assert accepted.status_code == 200, accepted.text
    late = await client.post("/api/v1/reports", headers=second.headers,
                             files=files(meta(clock, category="garbage_pileup", **HERE), street_photos[1:2]))
    assert late.status_code == 201, late.text
    return incident, late.json()["id"], second


async def test_a_report_whose_photo_was_ready_before_it_merged_into_an_accepted_incident_earns_its_corroboration(
    client, login, settings, clock, db, street_photos,
):
    """The photo worker can run ahead of process_report (a queue backed up, a worker restarting): the photo
    job then finds no incident to pay for, so the merge into the accepted incident must pay."""
    incident, late, courier = await _late_report_to_an_accepted_incident(
        client, login, settings, clock, db, street_photos, ("13900004002", "13900004003", "13700004002"))
    await run_burst(settings, clock, queue=PHOTOS_QUEUE)  # the photo first: no incident yet, nothing to pay
    assert await db.fetch(LEDGER, courier.member_id) == []
    await run_burst(settings, clock)  # then the merge into the accepted incident, and its award_points
    assert await db.fetchval("SELECT incident_id FROM reports WHERE id = $1", late) == incident
    assert [tuple(r) for r in await db.fetch(LEDGER, courier.member_id)] == [("corroboration", 2)]


async def test_a_report_merged_into_an_accepted_incident_before_its_photo_is_done_earns_when_the_photo_is(
    client, login, settings, clock, db, street_photos,
):
    """The other order: the merge's award finds the photo pending and pays nothing; the photo's own award
    (a job of its own, not the merge's again) pays."""
    incident, late, courier = await _late_report_to_an_accepted_incident(
        client, login, settings, clock, db, street_photos, ("13900004004", "13900004005", "13700004003"))
    await run_burst(settings, clock)  # merged, and its award run: the photo is pending, nothing paid yet
    assert await db.fetchval("SELECT incident_id FROM reports WHERE id = $1", late) == incident
    assert await db.fetch(LEDGER, courier.member_id) == []
    await run_burst(settings, clock, queue=PHOTOS_QUEUE)
    await run_burst(settings, clock)
    assert [tuple(r) for r in await db.fetch(LEDGER, courier.member_id)] == [("corroboration", 2)]
