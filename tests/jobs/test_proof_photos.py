"""After-photos go through the photo pipeline, and one re-used for another incident is flagged."""

from __future__ import annotations

from gridrider.jobs.queue import PHOTOS_QUEUE
from tests.api.test_reports import files, meta
from tests.jobs.conftest import run_burst
from tests.test_scenario import GRID, HERE


async def _accepted_incident(client, settings, clock, db, rider, member, category: str) -> int:
    reply = await client.post("/api/v1/reports", headers=rider.headers, files=files(meta(clock, category=category,
                                                                                          **HERE)))
    assert reply.status_code == 201, reply.text
    await run_burst(settings, clock)
    incident = await db.fetchval("SELECT incident_id FROM reports WHERE id = $1", reply.json()["id"])
    assert (await client.post(f"/api/v1/incidents/{incident}/accept", json={}, headers=member.headers)
            ).status_code == 200
    return incident


async def _resolve(client, member, incident: int, photo: bytes) -> None:
    reply = await client.post(f"/api/v1/incidents/{incident}/resolve", headers=member.headers,
                              files=[("meta", ("meta.json", b"{}", "application/json")),
                                     ("photo", ("after.jpg", photo, "image/jpeg"))])
    assert reply.status_code == 200, reply.text


async def test_the_same_after_photo_for_two_incidents_is_flagged(client, login, settings, clock, db, street_photos):
    rider = await login("courier", "13900005001", [GRID])
    member = await login("grid_member", "13700005001", [GRID])
    first = await _accepted_incident(client, settings, clock, db, rider, member, "garbage_pileup")
    second = await _accepted_incident(client, settings, clock, db, rider, member, "streetlight_out")
    await _resolve(client, member, first, street_photos[2])
    await run_burst(settings, clock, queue=PHOTOS_QUEUE)
    await _resolve(client, member, second, street_photos[2])
    await run_burst(settings, clock, queue=PHOTOS_QUEUE)

    proofs = {r["incident_id"]: r for r in await db.fetch(
        "SELECT incident_id, state, reused_of_photo_id FROM photos WHERE role = 'proof'")}
    assert proofs[first]["state"] == proofs[second]["state"] == "ready"
    assert proofs[first]["reused_of_photo_id"] is None and proofs[second]["reused_of_photo_id"] is not None
    flag = await db.fetchrow("SELECT kind, incident_id, evidence FROM flags")
    assert (flag["kind"], flag["incident_id"]) == ("reused_proof_photo", second)
    assert flag["evidence"]["matched_incident_id"] == first


async def test_a_different_after_photo_is_not_flagged(client, login, settings, clock, db, street_photos):
    rider = await login("courier", "13900005002", [GRID])
    member = await login("grid_member", "13700005002", [GRID])
    first = await _accepted_incident(client, settings, clock, db, rider, member, "garbage_pileup")
    second = await _accepted_incident(client, settings, clock, db, rider, member, "streetlight_out")
    for incident, photo in ((first, street_photos[2]), (second, street_photos[3])):
        await _resolve(client, member, incident, photo)
        await run_burst(settings, clock, queue=PHOTOS_QUEUE)
    assert await db.fetchval("SELECT count(*) FROM flags") == 0
