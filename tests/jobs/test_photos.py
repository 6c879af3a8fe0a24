"""normalise_photos end to end: intake → photos queue → signed URLs; failures stay alone; reuse is flagged."""

import io

import pytest
from PIL import Image

from gridrider.jobs.queue import PHOTOS_QUEUE
from tests.api.test_reports import files, meta
from tests.jobs.conftest import run_burst

GRID = "ZW-ZWZ-C02-G03"


@pytest.fixture
async def courier(login):
    return await login("courier", "13966660000", [GRID])


async def report_with(client, clock, caller, photos, **changes):
    reply = await client.post("/api/v1/reports", headers=caller.headers, files=files(meta(clock, **changes), photos))
    assert reply.status_code == 201, reply.text
    return reply.json()


async def settle(settings, clock, *, photos_first: bool = False):
    """Run both queues' workers until empty, in the chosen order."""
    order = [PHOTOS_QUEUE, None] if photos_first else [None, PHOTOS_QUEUE]
    for queue in order:
        await run_burst(settings, clock, **({"queue": queue} if queue else {}))


async def test_photos_become_ready_and_are_served_by_signed_url_without_metadata(
    client, settings, clock, db, courier, street_photos,
):
    report = await report_with(client, clock, courier, street_photos[:2])
    await settle(settings, clock)
    fresh = (await client.get(f"/api/v1/reports/{report['id']}", headers=courier.headers)).json()
    assert fresh["state"] == "processed" and fresh["incident_state"] == "dispatched"
    assert [p["state"] for p in fresh["photos"]] == ["ready", "ready"]
    for photo in fresh["photos"]:
        for variant, limit in (("thumb_url", 320), ("display_url", 1600)):
            served = await client.get(photo[variant])  # no Bearer header: the signature is the permission
            assert served.status_code == 200
            assert served.headers["x-content-type-options"] == "nosniff"
            assert served.headers["cache-control"].startswith("private, max-age=")
            assert served.headers["content-type"] in ("image/jpeg", "image/webp")
            body = served.content
            assert b"Exif" not in body and b"GPS" not in body and b"http://ns.adobe.com/xap" not in body
            assert max(Image.open(io.BytesIO(body)).size) <= limit


async def test_a_photo_that_cannot_be_decoded_fails_alone(client, settings, clock, db, courier, street_photos):
    truncated = street_photos[1][: len(street_photos[1]) // 3]  # the header passes at the door; decoding fails
    report = await report_with(client, clock, courier, [street_photos[0], truncated])
    await settle(settings, clock)
    rows = await db.fetch("SELECT state, failure_reason FROM photos ORDER BY position")
    assert [r["state"] for r in rows] == ["ready", "failed"]
    assert rows[1]["failure_reason"]
    fresh = (await client.get(f"/api/v1/reports/{report['id']}", headers=courier.headers)).json()
    assert fresh["state"] == "processed"  # the hazard went on
    assert fresh["photos"][1]["thumb_url"] is None


async def test_signed_urls_cannot_be_forged_or_extended(client, settings, clock, courier, street_photos):
    report = await report_with(client, clock, courier, street_photos[:2])
    await settle(settings, clock)
    fresh = (await client.get(f"/api/v1/reports/{report['id']}", headers=courier.headers)).json()
    url = fresh["photos"][0]["thumb_url"]
    other_id = fresh["photos"][1]["id"]
    path, query = url.split("?")
    params = dict(p.split("=") for p in query.split("&"))
    forged = [
        f"{path}?exp={params['exp']}&sig={'0' * 32}",
        f"{path}?exp={int(params['exp']) + 86400}&sig={params['sig']}",
        f"/api/v1/photos/{other_id}/thumb?{query}",
        f"{path.replace('/thumb', '/display')}?{query}",
        f"{path.replace('/thumb', '/original')}?{query}",
        path,
    ]
    for attempt in forged:
        reply = await client.get(attempt)
        assert (reply.status_code, reply.json()["code"]) == (403, "photo_link_invalid"), attempt
    clock.advance(hours=2)
    expired = await client.get(url)
    assert expired.status_code == 403


@pytest.mark.parametrize("photos_first", [False, True])
async def test_the_same_picture_in_another_incident_is_flagged_but_corroboration_is_not(
    client, settings, clock, db, courier, login, street_photos, photos_first,
):
    other = await login("courier", "13977770000", [GRID])
    picture = street_photos[2]
    recompressed = io.BytesIO()
    Image.open(io.BytesIO(picture)).save(recompressed, "JPEG", quality=60)

    await report_with(client, clock, courier, [picture])
    await settle(settings, clock, photos_first=photos_first)
    # The same hazard, photographed again by another rider on the spot: corroboration, not reuse.
    await report_with(client, clock, other, [picture])
    await settle(settings, clock, photos_first=photos_first)
    assert await db.fetchval("SELECT count(*) FROM incidents") == 1
    assert await db.fetchval("SELECT count(*) FROM flags") == 0
    # The same picture passed off as a different hazard 2 km away.
    await report_with(client, clock, other, [recompressed.getvalue()], lat=42.39, category="blocked_fire_lane")
    await settle(settings, clock, photos_first=photos_first)
    assert await db.fetchval("SELECT count(*) FROM incidents") == 2
    flag = await db.fetchrow("SELECT kind, member_id, evidence FROM flags")
    assert flag["kind"] == "reused_photo" and flag["member_id"] == other.member_id
    assert flag["evidence"]["distance"] <= 12


async def test_similar_streets_are_not_reuse(client, settings, clock, db, courier, login, street_photos):
    other = await login("courier", "13977770000", [GRID])
    for index, photo in enumerate(street_photos):
        caller = courier if index % 2 else other
        # Each photo a separate hazard: far apart, so every one is its own incident.
        await report_with(client, clock, caller, [photo], lat=42.36 + index * 0.004)
    await settle(settings, clock)
    assert await db.fetchval("SELECT count(*) FROM incidents") == len(street_photos)
    assert await db.fetchval("SELECT count(*) FROM photos WHERE state = 'ready'") == len(street_photos)
    assert await db.fetchval("SELECT count(*) FROM flags") == 0


async def test_a_decoder_crash_fails_the_photo_and_the_worker_and_report_carry_on(
    client, settings, clock, db, courier, street_photos, monkeypatch,
):
    from gridrider.images import sandbox as sandbox_module

    calls = {"n": 0}

    async def crash_on_first_photo(self, data: bytes):
        calls["n"] += 1
        if calls["n"] == 1:  # a hostile file that kills the decoder process
            return await self.run(sandbox_module._crash_for_tests, data)
        return await self.run(sandbox_module.pipeline.normalise, data)

    monkeypatch.setattr(sandbox_module.PhotoSandbox, "normalise", crash_on_first_photo)
    report = await report_with(client, clock, courier, street_photos[:2])
    await settle(settings, clock)
    rows = await db.fetch("SELECT state, failure_reason FROM photos ORDER BY position")
    assert [(r["state"], r["failure_reason"]) for r in rows] == [("failed", "decoder_crashed"), ("ready", None)]
    fresh = (await client.get(f"/api/v1/reports/{report['id']}", headers=courier.headers)).json()
    assert fresh["state"] == "processed"


async def test_normalising_twice_changes_nothing(client, settings, clock, db, redis, courier, street_photos):
    await report_with(client, clock, courier, street_photos[:1])
    await settle(settings, clock)
    before = await db.fetch("SELECT id, display_key, thumb_key, dhash FROM photos")
    await db.execute("UPDATE jobs SET state = 'pending', attempts = 0 WHERE kind = 'normalise_photos'")
    from gridrider.jobs.relay import relay_due_jobs
    from gridrider.services import Services

    await relay_due_jobs(Services(settings=settings, clock=clock, pool=db, redis=redis, blobs=None))
    await settle(settings, clock)
    assert await db.fetch("SELECT id, display_key, thumb_key, dhash FROM photos") == before
    assert await db.fetchval("SELECT count(*) FROM flags") == 0
