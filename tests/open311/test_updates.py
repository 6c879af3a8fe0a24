"""servicerequestupdates (mySociety's extension): status changes since a time, oldest first, from fixed texts;
with a key, within its area and with the proof photo of a resolution."""

import datetime as dt
from urllib.parse import urlsplit

import pytest

from gridrider.clock import SHANGHAI
from gridrider.jobs.queue import PHOTOS_QUEUE
from tests.api.test_incidents import ok, post_report, resolve
from tests.jobs.conftest import run_burst
from tests.open311.conftest import BASE, GRID, HERE, THERE, assert_error, both, point_in

UPDATE_FIELDS = ["update_id", "service_request_id", "status", "updated_datetime", "description", "media_url"]


@pytest.fixture
async def history(client, db, settings, clock, login, hotline, street_photos) -> dict[str, int]:
    """A hotline incident accepted then resolved with a proof photo; a rider's one rejected; a foreign one."""
    member = await login("grid_member", "13711110001", [GRID])
    rider = await login("courier", "13911110001", [GRID])
    reply = await client.post(f"{BASE}/requests.json", data={
        "api_key": hotline.key, "service_code": "garbage_pileup", "lat": str(HERE[0]), "long": str(HERE[1])})
    assert reply.status_code == 201
    await post_report(client, clock, rider, point=point_in(GRID), category="illegal_structure")
    await post_report(client, clock, rider, point=THERE)
    await run_burst(settings, clock)
    ids = {r["category"]: r["id"] for r in await db.fetch("SELECT id, category FROM incidents")}
    foreign = await db.fetchval("SELECT i.id FROM incidents i JOIN areas a ON a.id = i.area_id "
                                "WHERE a.code NOT LIKE 'ZW-ZWZ-C02%'")
    hotline_incident = await db.fetchval("SELECT incident_id FROM reports WHERE position_source = 'hotline'")
    clock.advance(minutes=10)
    await ok(client, member, hotline_incident, "accept")
    await ok(client, member, ids["illegal_structure"], "transfer", grid_code="ZW-ZWZ-C02-G01")  # not a status
    clock.advance(minutes=10)
    assert (await resolve(client, member, hotline_incident, street_photos[:1])).status_code == 200
    await run_burst(settings, clock, queue=PHOTOS_QUEUE)
    supervisor = await login("supervisor", "13811110001", ["ZW-ZWZ-C02"])
    await ok(client, supervisor, ids["illegal_structure"], "reject", reason="out_of_scope", note="归城管")
    return {"hotline": hotline_incident, "rejected": ids["illegal_structure"], "foreign": foreign}


async def test_status_changes_oldest_first_in_both_formats(client, db, clock, history):
    body, root = await both(client, "servicerequestupdates")
    assert root.tag == "service_request_updates" and {c.tag for c in root} == {"request_update"}
    assert all(list(u) == UPDATE_FIELDS for u in body)
    times = [u["updated_datetime"] for u in body]
    assert times == sorted(times)
    by_request: dict[int, list[str]] = {}
    for u in body:
        by_request.setdefault(u["service_request_id"], []).append(u["status"])
    assert by_request[history["hotline"]] == ["ACTION_SCHEDULED", "IN_PROGRESS", "FIXED"]
    assert by_request[history["rejected"]] == ["ACTION_SCHEDULED", "NOT_COUNCILS_RESPONSIBILITY"]
    assert by_request[history["foreign"]] == ["ACTION_SCHEDULED"]
    rejected = [u for u in body if u["service_request_id"] == history["rejected"]][-1]
    assert rejected["description"] == "不属于本平台处理范围。"  # a fixed text: the team's note stays inside
    assert "归城管" not in str(body) and all(u["media_url"] is None for u in body)
    update_ids = await db.fetch("SELECT id FROM incident_events WHERE kind IN ('accept', 'resolve') ORDER BY id")
    assert {r["id"] for r in update_ids} <= {u["update_id"] for u in body}


async def test_a_key_reads_its_area_with_the_proof_photo(client, db, history, hotline):
    body, _ = await both(client, "servicerequestupdates", params={"api_key": hotline.key})
    assert history["foreign"] not in {u["service_request_id"] for u in body}
    fixed = next(u for u in body if u["status"] == "FIXED")
    link = urlsplit(fixed["media_url"])
    photo = await client.get(f"{link.path}?{link.query}")
    assert photo.status_code == 200 and photo.headers["content-type"].startswith("image/")
    assert all(u["media_url"] is None for u in body if u["status"] != "FIXED")


async def test_updates_since_a_time(client, db, clock, history):
    accepted_at = await db.fetchval("SELECT occurred_at FROM incident_events WHERE kind = 'accept'")
    since = accepted_at.astimezone(SHANGHAI).isoformat(timespec="seconds")
    body, _ = await both(client, "servicerequestupdates", params={"start_date": since})
    assert [u["status"] for u in body] == ["IN_PROGRESS", "FIXED", "NOT_COUNCILS_RESPONSIBILITY"]
    before = (accepted_at - dt.timedelta(seconds=1)).isoformat()
    body, _ = await both(client, "servicerequestupdates", params={"end_date": before})
    assert {u["status"] for u in body} == {"ACTION_SCHEDULED"}
    clock.advance(days=91)
    assert (await both(client, "servicerequestupdates"))[0] == []


@pytest.mark.parametrize("params", [{"start_date": "soon"}, {"start_date": "2026-01-01", "end_date": "2026-12-31"},
                                    {"api_key": "gr311_wrong"}])
async def test_bad_update_queries_are_refused(client, db, params):
    status = 403 if "api_key" in params else 400
    for fmt in ("json", "xml"):
        assert_error(await client.get(f"{BASE}/servicerequestupdates.{fmt}", params=params), status)
