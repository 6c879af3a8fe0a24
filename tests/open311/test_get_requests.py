"""GET requests: the spec's fields in JSON and XML; without a key only what a stranger may know (rounded
positions, the category's name, no media, no notes, nobody's name); with a key exact positions and signed,
expiring photo links, within its area; the spec's filters, defaults and limits."""

import datetime as dt
from urllib.parse import urlsplit

import msgspec
import pytest

from gridrider.clock import SHANGHAI
from gridrider.jobs.queue import PHOTOS_QUEUE
from tests.api.test_incidents import post_report
from tests.jobs.conftest import run_burst
from tests.open311.conftest import (
    BASE,
    GRID,
    HERE,
    THERE,
    as_text,
    assert_error,
    both,
    parse_xml,
    revoke,
    xml_plain,
)

REQUEST_FIELDS = ["service_request_id", "status", "status_notes", "service_name", "service_code", "description",
                  "agency_responsible", "service_notice", "requested_datetime", "updated_datetime",
                  "expected_datetime", "address", "address_id", "zipcode", "lat", "long", "media_url"]
RIDER_NOTE = "王大爷家门口的井盖没了"
HOTLINE_NOTE = "市民张三来电：东门外堆满垃圾"


class Town(msgspec.Struct):
    rider_incident: int  # C02, with a ready photo and a rider's note
    hotline_incident: int  # C02, filed by the hotline key
    foreign_incident: int  # C07: outside the hotline key's area


@pytest.fixture
async def town(client, db, settings, clock, login, hotline, street_photos) -> Town:
    rider = await login("courier", "13911110001", [GRID])
    rider_report = await post_report(client, clock, rider, point=HERE, photos=street_photos[:1],
                                     category="missing_manhole_cover", note=RIDER_NOTE)
    foreign_report = await post_report(client, clock, rider, point=THERE)
    reply = await client.post(f"{BASE}/requests.json", data={
        "api_key": hotline.key, "service_code": "garbage_pileup", "lat": str(HERE[0]), "long": str(HERE[1]),
        "description": HOTLINE_NOTE})
    assert reply.status_code == 201, reply.text
    await run_burst(settings, clock)
    await run_burst(settings, clock, queue=PHOTOS_QUEUE)
    incident_of = {r["id"]: r["incident_id"] for r in await db.fetch("SELECT id, incident_id FROM reports")}
    hotline_incident = await db.fetchval(
        "SELECT r.incident_id FROM reports r WHERE r.position_source = 'hotline'")
    return Town(incident_of[rider_report], hotline_incident, incident_of[foreign_report])


def by_id(body: list[dict]) -> dict[int, dict]:
    return {r["service_request_id"]: r for r in body}


async def test_without_a_key_only_what_a_stranger_may_know(client, db, town):
    body, root = await both(client, "requests")
    assert root.tag == "service_requests" and {child.tag for child in root} == {"request"}
    assert all(list(r) == REQUEST_FIELDS for r in body)
    requests = by_id(body)
    assert set(requests) == {town.rider_incident, town.hotline_incident, town.foreign_incident}
    manhole = requests[town.rider_incident]
    exact = await db.fetchrow("SELECT lat, lon, created_at, accept_due_at FROM incidents WHERE id = $1",
                              town.rider_incident)
    assert (manhole["lat"], manhole["long"]) == (round(exact["lat"], 3), round(exact["lon"], 3))
    assert (manhole["lat"], manhole["long"]) != (exact["lat"], exact["lon"])
    assert manhole["description"] == manhole["service_name"] == "井盖缺失或破损"
    assert (manhole["service_code"], manhole["status"], manhole["media_url"]) == ("missing_manhole_cover", "open",
                                                                                  None)
    assert manhole["status_notes"] == "已派至网格，等待受理。"
    assert manhole["agency_responsible"] == await db.fetchval("SELECT name_zh FROM areas WHERE code = $1", GRID)
    assert manhole["requested_datetime"] == exact["created_at"].astimezone(SHANGHAI).isoformat(timespec="seconds")
    assert manhole["expected_datetime"] == exact["accept_due_at"].astimezone(SHANGHAI).isoformat(timespec="seconds")
    everything = str(body)
    for secret in (RIDER_NOTE, HOTLINE_NOTE, "open311:", "骑手", "/api/v1/photos/"):
        assert secret not in everything
    assert all(r["media_url"] is None for r in body)


async def test_with_a_key_exact_positions_notes_and_signed_photo_links_within_its_area(client, db, town, hotline):
    body, _ = await both(client, "requests", params={"api_key": hotline.key})
    requests = by_id(body)
    assert set(requests) == {town.rider_incident, town.hotline_incident}  # C07's incident is not this key's
    manhole = requests[town.rider_incident]
    exact = await db.fetchrow("SELECT lat, lon FROM incidents WHERE id = $1", town.rider_incident)
    assert (manhole["lat"], manhole["long"]) == (exact["lat"], exact["lon"])
    assert manhole["description"] == f"井盖缺失或破损：{RIDER_NOTE}"
    assert requests[town.hotline_incident]["description"] == f"垃圾堆积：{HOTLINE_NOTE}"
    assert requests[town.hotline_incident]["media_url"] is None  # no photo came with it
    link = urlsplit(manhole["media_url"])
    assert manhole["media_url"].startswith("http://127.0.0.1:8000/api/v1/photos/")
    photo = await client.get(f"{link.path}?{link.query}")
    assert photo.status_code == 200 and photo.headers["content-type"] in ("image/webp", "image/jpeg")
    # A link with its signature altered opens nothing.
    assert (await client.get(f"{link.path}?{link.query[:-1]}0")).status_code == 403


async def test_one_request_by_id_public_keyed_and_foreign(client, db, town, hotline):
    body, root = await both(client, f"requests/{town.foreign_incident}")
    assert [r["service_request_id"] for r in body] == [town.foreign_incident]
    assert root.find("request/service_request_id").text == str(town.foreign_incident)
    # The hotline's key reads its own area only: C07's incident is as absent as an unknown one.
    for path in (town.foreign_incident, 10**9, "abc", "0", "99999999999999999999999", "-1"):
        reply = await client.get(f"{BASE}/requests/{path}.xml", params={"api_key": hotline.key})
        assert_error(reply, 404)
    keyed, _ = await both(client, f"requests/{town.rider_incident}", params={"api_key": hotline.key})
    assert keyed[0]["media_url"] is not None


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_a_wrong_or_revoked_key_is_403_on_reads_too(client, db, clock, town, hotline, fmt):
    assert_error(await client.get(f"{BASE}/requests.{fmt}", params={"api_key": "gr311_nope"}), 403)
    assert_error(await client.get(f"{BASE}/requests.{fmt}", params={"api_key": "k" * 5000}), 403)
    await revoke(db, clock, hotline.name)
    assert_error(await client.get(f"{BASE}/requests.{fmt}", params={"api_key": hotline.key}), 403)
    assert_error(await client.get(f"{BASE}/requests/{town.rider_incident}.{fmt}", params={"api_key": hotline.key}),
                 403)


async def test_filters_by_ids_codes_and_status(client, db, town):
    async def ids(**params) -> set[int]:
        body, _ = await both(client, "requests", params=params)
        return {r["service_request_id"] for r in body}

    everyone = {town.rider_incident, town.hotline_incident, town.foreign_incident}
    assert await ids(service_code="missing_manhole_cover") == {town.rider_incident}
    assert await ids(service_code="missing_manhole_cover,garbage_pileup") == everyone
    assert await ids(status="open") == everyone and await ids(status="closed") == set()
    await db.execute("UPDATE incidents SET state = 'rejected', reject_reason = 'out_of_scope' WHERE id = $1",
                     town.hotline_incident)
    assert await ids(status="closed") == {town.hotline_incident}
    assert await ids(status="open,closed", service_code="") == everyone
    # service_request_id overrides every other argument, bad ones included.
    assert await ids(service_request_id=f"{town.rider_incident},{town.foreign_incident}", status="closed",
                     start_date="garbage") == {town.rider_incident, town.foreign_incident}
    body, _ = await both(client, "requests", params={"service_request_id": str(town.hotline_incident)})
    assert (body[0]["status"], body[0]["status_notes"], body[0]["expected_datetime"]) == (
        "closed", "不属于本平台处理范围。", None)


async def test_the_date_window(client, db, clock, town):
    async def count(**params) -> int:
        body, _ = await both(client, "requests", params=params)
        return len(body)

    today = clock.now().astimezone(SHANGHAI).date()
    assert await count(start_date=today.isoformat()) == 3  # a bare day: that day in Shanghai, onwards
    assert await count(end_date=(today - dt.timedelta(days=1)).isoformat()) == 0
    start = (clock.now() - dt.timedelta(hours=1)).astimezone(SHANGHAI).isoformat(timespec="seconds")
    assert await count(start_date=start, end_date=clock.now().isoformat()) == 3
    # A '+' the client forgot to encode arrives as a space.
    assert await count(start_date=start.replace("+", " ")) == 3
    assert await count(start_date=clock.now().isoformat().replace("+00:00", "Z")) == 3
    clock.advance(days=91)
    assert await count() == 0  # the default: the most recent 90 days
    assert await count(start_date=start) == 3


@pytest.mark.parametrize(("params", "fragment"), [
    ({"start_date": "2026-11-01T00:00:00+08:00", "end_date": "2027-03-01T00:00:00+08:00"}, "end_date"),
    ({"start_date": "2026-11-02", "end_date": "2026-11-01"}, "start_date"),
    ({"start_date": "2026-11-26T10:00:00"}, "start_date"),  # no time zone
    ({"start_date": "yesterday"}, "start_date"),
    ({"end_date": "2026-02-30"}, "end_date"),
    ({"end_date": "2026-W48-4"}, "end_date"),
    ({"status": "pending"}, "status"),
    ({"service_request_id": "1,x"}, "service_request_id"),
    ({"service_request_id": "0"}, "service_request_id"),
    ({"service_request_id": "99999999999999999999"}, "service_request_id"),
    ({"start_date": ["2026-11-01", "2026-11-02"]}, "start_date"),
    ({"start_date": "9999-12-31T23:59:59+00:00"}, "start_date"),  # 90 days on would overflow
    ({"end_date": "0001-01-01"}, "end_date"),
    ({"start_date": "2026-11-26T10:00:00+99:00"}, "start_date"),
    ({"start_date": "2026-11-26T10:00:00\x00+08:00"}, "start_date"),
])
async def test_bad_filters_are_400(client, db, params, fragment):
    for fmt in ("json", "xml"):
        assert_error(await client.get(f"{BASE}/requests.{fmt}", params=params), 400, fragment)


async def test_an_unknown_service_code_filter_is_404(client, db):
    assert_error(await client.get(f"{BASE}/requests.json", params={"service_code": "pothole"}), 404)
    assert_error(await client.get(f"{BASE}/requests.xml", params={"service_code": "garbage_pileup,x\x00y"}), 404)


async def test_at_most_1000_requests_newest_first(client, db, clock, demo):
    await db.execute(
        """INSERT INTO incidents (category, lat, lon, cell, state, last_captured_at, created_at, updated_at)
           SELECT 'garbage_pileup', 42.37, 122.53, 0, 'unrouted', $1::timestamptz,
                  $1::timestamptz - make_interval(secs => n), $1::timestamptz
           FROM generate_series(1, 1001) AS n""", clock.now())
    body = (await client.get(f"{BASE}/requests.json")).json()
    assert len(body) == 1000
    times = [r["requested_datetime"] for r in body]
    assert times == sorted(times, reverse=True)
    assert body[0]["agency_responsible"] is None  # nobody owns these test rows


async def test_json_and_xml_say_the_same_for_every_field(client, db, town, hotline):
    as_json = (await client.get(f"{BASE}/requests.json", params={"api_key": hotline.key})).json()
    as_xml = (await client.get(f"{BASE}/requests.xml", params={"api_key": hotline.key})).content
    parsed = xml_plain(parse_xml(as_xml))
    # The signature's expiry is the same hour in both, so even the links agree.
    assert parsed == as_text(as_json)
