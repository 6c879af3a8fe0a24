"""Report intake: lossless, idempotent, and every bad input a clear 4xx with nothing stored."""

import asyncio
import datetime as dt
import io
import uuid

import msgspec
import pytest
from PIL import Image

from gridrider.jobs.queue import DEFAULT_QUEUE, PHOTOS_QUEUE
from tests.conftest import Caller

GRID = "ZW-ZWZ-C02-G01"


@pytest.fixture
async def courier(login) -> Caller:
    return await login("courier", "13966660000", [GRID])


def meta(clock, **changes) -> dict:
    body = {
        "client_id": str(uuid.uuid4()), "category": "garbage_pileup", "lat": 42.3712, "lon": 122.5301,
        "accuracy_m": 12.0, "position_source": "gps",
        "captured_at": (clock.now() - dt.timedelta(minutes=3)).isoformat(), "note": "小区门口垃圾堆了三天",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


def files(body: dict, photos: list[bytes] = (), *, meta_bytes: bytes | None = None) -> list:
    parts = [("meta", ("meta.json", meta_bytes if meta_bytes is not None else msgspec.json.encode(body),
                       "application/json"))]
    parts += [("photo", (f"p{i}.jpg", photo, "image/jpeg")) for i, photo in enumerate(photos)]
    return parts


async def post_report(client, caller: Caller, body: dict, photos: list[bytes] = (), **kwargs):
    return await client.post("/api/v1/reports", headers=caller.headers, files=files(body, photos, **kwargs))


async def stored(db) -> tuple[int, int, int]:
    return (await db.fetchval("SELECT count(*) FROM reports"), await db.fetchval("SELECT count(*) FROM photos"),
            await db.fetchval("SELECT count(*) FROM jobs"))


async def test_a_report_with_photos_is_stored_with_its_jobs_in_one_go(client, db, redis, clock, courier,
                                                                        street_photos, settings):
    body = meta(clock)
    reply = await post_report(client, courier, body, street_photos[:2])
    assert reply.status_code == 201, reply.text
    report = reply.json()
    assert report["state"] == "received"
    assert report["client_id"] == body["client_id"]
    assert (report["category"], report["lat"], report["flags"]) == ("garbage_pileup", 42.3712, [])
    assert [(p["position"], p["state"]) for p in report["photos"]] == [(0, "pending"), (1, "pending")]
    assert await stored(db) == (1, 2, 2)
    kinds = {r["kind"] for r in await db.fetch("SELECT kind FROM jobs")}
    assert kinds == {"process_report", "normalise_photos"}
    assert await redis.zcard(DEFAULT_QUEUE) == 1 and await redis.zcard(PHOTOS_QUEUE) == 1
    # The original bytes are kept exactly (private), under a server-made key.
    key = await db.fetchval("SELECT original_key FROM photos WHERE position = 0")
    assert (settings.data_dir / "blobs" / key).read_bytes() == street_photos[0]
    assert await db.fetchval("SELECT count(*) FROM report_keys") == 1


async def test_a_report_without_photos_is_fine(client, db, clock, courier):
    reply = await post_report(client, courier, meta(clock, note=...))
    assert reply.status_code == 201
    assert reply.json()["photos"] == [] and reply.json()["note"] is None
    assert {r["kind"] for r in await db.fetch("SELECT kind FROM jobs")} == {"process_report"}


async def test_ten_concurrent_identical_requests_make_one_report(client, db, clock, courier, street_photos):
    body = meta(clock)
    replies = await asyncio.gather(*(post_report(client, courier, body, street_photos[:1]) for _ in range(10)))
    assert sorted(r.status_code for r in replies) == [200] * 9 + [201]
    assert len({r.json()["id"] for r in replies}) == 1
    assert await stored(db) == (1, 1, 2)


async def test_a_replay_answers_200_with_the_current_state_even_after_things_changed(
    client, db, clock, courier, street_photos,
):
    body = meta(clock)
    first = await post_report(client, courier, body, street_photos[:1])
    assert first.status_code == 201
    await db.execute("UPDATE categories SET enabled = false WHERE code = 'garbage_pileup'")
    clock.advance(days=8)
    replay = await post_report(client, courier, {**body, "queued_for_s": 8 * 86400}, street_photos[:1])
    assert replay.status_code == 200
    assert replay.json()["id"] == first.json()["id"]
    assert await stored(db) == (1, 1, 2)


async def test_the_same_instant_written_differently_is_the_same_report(client, clock, courier):
    body = meta(clock, captured_at="2026-11-26T09:55:00+08:00", lat=42.3712)
    assert (await post_report(client, courier, body)).status_code == 201
    same = {**body, "captured_at": "2026-11-26T01:55:00Z", "lat": 42.37120}
    assert (await post_report(client, courier, same)).status_code == 200


@pytest.mark.parametrize("change", [
    {"category": "flooding"}, {"lat": 42.3713}, {"note": "另一条"}, {"accuracy_m": 13.0},
    {"captured_at": "2026-11-26T01:54:00Z"}, {"position_source": "network"},
])
async def test_the_same_client_id_with_a_different_body_is_refused(client, db, clock, courier, change):
    body = meta(clock, captured_at="2026-11-26T01:55:00Z")
    assert (await post_report(client, courier, body)).status_code == 201
    reply = await post_report(client, courier, {**body, **change})
    assert (reply.status_code, reply.json()["code"]) == (422, "client_id_reused")
    assert await stored(db) == (1, 0, 1)


async def test_the_same_client_id_with_another_photo_is_refused(client, db, clock, courier, street_photos):
    body = meta(clock)
    assert (await post_report(client, courier, body, street_photos[:1])).status_code == 201
    reply = await post_report(client, courier, body, street_photos[1:2])
    assert (reply.status_code, reply.json()["code"]) == (422, "client_id_reused")
    reordered = await post_report(client, courier, body, [street_photos[0], street_photos[1]])
    assert reordered.json()["code"] == "client_id_reused"


async def test_two_couriers_may_use_the_same_client_id(client, db, clock, courier, login):
    other = await login("courier", "13977770000", [GRID])
    body = meta(clock)
    assert (await post_report(client, courier, body)).status_code == 201
    assert (await post_report(client, other, body)).status_code == 201


async def test_doubtful_but_real_reports_are_accepted_and_flagged(client, clock, courier):
    coarse = await post_report(client, courier, meta(clock, accuracy_m=850.0))
    assert (coarse.status_code, coarse.json()["flags"]) == (201, ["coarse_position"])
    old = await post_report(client, courier, meta(clock, captured_at=(clock.now() - dt.timedelta(days=9)).isoformat()))
    assert (old.status_code, old.json()["flags"]) == (201, ["old_capture"])
    unknown_accuracy = await post_report(client, courier, meta(clock, accuracy_m=...))
    assert unknown_accuracy.json()["flags"] == ["coarse_position"]


def _png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), "grey").save(out, "PNG")
    return out.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
            + struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND")))


BAD_META = [
    ({"lat": 95.0}, "lat", "out_of_range"),
    ({"lon": -181.0}, "lon", "out_of_range"),
    ({"accuracy_m": 2500.0}, "accuracy_m", "out_of_range"),
    ({"captured_at": "2026-11-26T10:05:00+08:00"}, "captured_at", "in_the_future"),
    ({"captured_at": "2026-10-20T10:00:00+08:00"}, "captured_at", "too_old"),
    ({"captured_at": "2026-11-26T10:00:00"}, "captured_at", "timezone_required"),
    ({"category": "alien_invasion"}, "category", "unknown_category"),
    ({"note": "长" * 501}, "note", "too_long"),
    ({"position_source": "psychic"}, "position_source", "invalid"),
    ({"lat": "north"}, "lat", "invalid"),
    ({"lat": ...}, "lat", "required"),
    ({"extra": 1}, "extra", "unknown_field"),
    ({"client_id": "not-a-uuid"}, "client_id", "invalid"),
    ({"client_id": ...}, "client_id", "required"),
    ({"queued_for_s": -5}, "queued_for_s", "out_of_range"),
]


@pytest.mark.parametrize(("change", "field", "code"), BAD_META)
async def test_bad_metadata_is_a_422_naming_the_field_and_nothing_is_stored(client, db, clock, courier, change,
                                                                            field, code):
    reply = await post_report(client, courier, meta(clock, **change))
    assert reply.status_code == 422, reply.text
    assert reply.headers["content-type"].startswith("application/problem+json")
    assert {(e["field"], e["code"]) for e in reply.json()["errors"]} == {(field, code)}
    assert await stored(db) == (0, 0, 0)


async def test_nan_coordinates_are_refused(client, db, clock, courier):
    raw = msgspec.json.encode(meta(clock)).replace(b'"lat":42.3712', b'"lat":NaN')
    reply = await post_report(client, courier, {}, meta_bytes=raw)
    assert reply.status_code == 422
    assert await stored(db) == (0, 0, 0)


@pytest.mark.parametrize(("raw_change", "field"), [
    (b'"lat":1' + b"0" * 400, "lat"),
    (b'"category":"garbage\\u0000pileup"', "category"),
    (b'"note":"bad\\u0000byte"', "note"),
])
async def test_hostile_values_are_4xx_not_500(client, db, clock, courier, raw_change, field):
    raw = msgspec.json.encode(meta(clock))
    key = raw_change.split(b":")[0]
    start = raw.index(key)
    end = min(i for i in (raw.find(b',"', start), raw.rindex(b"}")) if i > 0)
    reply = await post_report(client, courier, {}, meta_bytes=raw[:start] + raw_change + raw[end:])
    assert reply.status_code == 422, reply.text
    assert reply.json()["errors"][0]["field"] == field
    assert await stored(db) == (0, 0, 0)


async def test_duplicate_meta_parts_are_refused(client, db, clock, courier):
    body = msgspec.json.encode(meta(clock))
    reply = await client.post("/api/v1/reports", headers=courier.headers, files=[
        ("meta", ("a", body, "application/json")), ("meta", ("b", body, "application/json"))])
    assert (reply.status_code, reply.json()["errors"][0]["code"]) == (422, "duplicate")


async def test_a_disabled_category_is_refused_for_new_reports(client, db, clock, courier):
    await db.execute("UPDATE categories SET enabled = false WHERE code = 'garbage_pileup'")
    reply = await post_report(client, courier, meta(clock))
    assert reply.json()["errors"][0]["code"] == "category_disabled"


@pytest.mark.parametrize(("photo", "status", "code"), [
    (b"GIF89a" + b"\x00" * 100, 415, "photo_type_not_allowed"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'/>", 415, "photo_type_not_allowed"),
    (b"\xff\xd8\xff\xe0" + b"\x00" * 40, 422, "photo_unreadable"),
    (_png_claiming(10000, 10000), 422, "photo_too_many_pixels"),
    (b"\xff\xd8\xff\xe0" + b"\x00" * (12 * 1024 * 1024), 413, "photo_too_large"),
])
async def test_bad_photos_get_their_status_and_nothing_is_stored(client, db, clock, courier, street_photos,
                                                                  photo, status, code, settings):
    reply = await post_report(client, courier, meta(clock), [street_photos[0], photo])
    assert (reply.status_code, reply.json()["code"]) == (status, code)
    assert reply.json()["errors"][0]["field"] == "photo[1]"
    assert await stored(db) == (0, 0, 0)
    assert not (settings.data_dir / "blobs").exists()  # refused before any byte was stored


async def test_more_than_three_photos_is_refused(client, db, clock, courier):
    reply = await post_report(client, courier, meta(clock), [_png(10, 10)] * 4)
    assert (reply.status_code, reply.json()["code"]) == (422, "too_many_photos")
    assert await stored(db) == (0, 0, 0)


async def test_png_and_webp_photos_are_accepted_by_their_bytes(client, clock, courier):
    webp = io.BytesIO()
    Image.new("RGB", (64, 48), "red").save(webp, "WEBP")
    reply = await client.post("/api/v1/reports", headers=courier.headers, files=[
        ("meta", ("m", msgspec.json.encode(meta(clock)), "application/json")),
        ("photo", ("x.jpg", _png(32, 16), "image/jpeg")),  # the declared type is ignored
        ("photo", ("y", webp.getvalue(), "application/octet-stream")),
    ])
    assert reply.status_code == 201


async def test_malformed_uploads_are_4xx(client, db, clock, courier):
    not_multipart = await client.post("/api/v1/reports", headers=courier.headers, json=meta(clock))
    assert (not_multipart.status_code, not_multipart.json()["code"]) == (415, "unsupported_media_type")
    broken = await client.post("/api/v1/reports", headers={
        **courier.headers, "content-type": "multipart/form-data; boundary=xyz"}, content=b"--xyz\r\ngarbage")
    assert broken.status_code in (400, 422)
    no_meta = await client.post("/api/v1/reports", headers=courier.headers,
                                files=[("photo", ("a.png", _png(4, 4), "image/png"))])
    assert (no_meta.status_code, no_meta.json()["errors"][0]["field"]) == (422, "meta")
    bad_json = await post_report(client, courier, {}, meta_bytes=b"{not json")
    assert (bad_json.status_code, bad_json.json()["errors"][0]["code"]) == (422, "invalid_json")
    stranger = await client.post("/api/v1/reports", headers=courier.headers, files=[
        *files(meta(clock)), ("script", ("x.js", b"alert(1)", "text/javascript"))])
    assert stranger.json()["errors"][0]["code"] == "unknown_field"
    assert await stored(db) == (0, 0, 0)


async def test_a_body_over_the_limit_is_413_before_it_is_read(client, courier):
    from gridrider.api.reports import MAX_REPORT_BODY

    reply = await client.post("/api/v1/reports", headers={
        **courier.headers, "content-type": "multipart/form-data; boundary=xyz",
        "content-length": str(MAX_REPORT_BODY + 1)}, content=b"--xyz--")
    assert (reply.status_code, reply.json()["code"]) == (413, "body_too_large")


async def test_only_couriers_report_and_only_signed_in(client, clock, login):
    grid_member = await login("grid_member", "13977770000", [GRID])
    assert (await post_report(client, grid_member, meta(clock))).status_code == 403
    anonymous = await client.post("/api/v1/reports", files=files(meta(clock)))
    assert anonymous.status_code == 401


async def test_another_couriers_report_is_not_found(client, clock, courier, login):
    report = (await post_report(client, courier, meta(clock))).json()
    other = await login("courier", "13977770000", [GRID])
    assert (await client.get(f"/api/v1/reports/{report['id']}", headers=other.headers)).status_code == 404
    assert (await client.get(f"/api/v1/reports/{report['id']}", headers=courier.headers)).json()["id"] == report["id"]
    assert (await client.get("/api/v1/me/reports", headers=other.headers)).json()["items"] == []


async def test_my_reports_are_paged_newest_first(client, clock, courier):
    ids = [(await post_report(client, courier, meta(clock))).json()["id"] for _ in range(5)]
    first = (await client.get("/api/v1/me/reports?limit=2", headers=courier.headers)).json()
    assert [r["id"] for r in first["items"]] == ids[::-1][:2]
    second = (await client.get(f"/api/v1/me/reports?limit=2&cursor={first['next_cursor']}",
                               headers=courier.headers)).json()
    assert [r["id"] for r in second["items"]] == ids[::-1][2:4]
    for cursor in ("DROP%20TABLE", "%C2%B2", "-1", "9" * 30):
        bad = await client.get(f"/api/v1/me/reports?cursor={cursor}", headers=courier.headers)
        assert bad.status_code == 422, cursor


async def test_intake_is_rate_limited_per_member_but_never_for_life_safety(client, clock, courier, monkeypatch):
    from gridrider.api import reports
    from gridrider.api.ratelimit import Limit

    monkeypatch.setattr(reports, "REPORT_INTAKE", Limit(name="report_intake", limit=3, window_s=3600))
    for _ in range(3):
        assert (await post_report(client, courier, meta(clock))).status_code == 201
    refused = await post_report(client, courier, meta(clock))
    assert (refused.status_code, refused.json()["code"]) == (429, "rate_limited")
    assert int(refused.headers["retry-after"]) >= 1
    manhole = await post_report(client, courier, meta(clock, category="missing_manhole_cover"))
    assert manhole.status_code == 201
    # A replay is answered before the limit: the phone learns its report arrived.
    body = meta(clock)
    clock.advance(hours=2)
    assert (await post_report(client, courier, body)).status_code == 201
    for _ in range(3):
        await post_report(client, courier, meta(clock))
    assert (await post_report(client, courier, body)).status_code == 200


async def test_the_categories_list_puts_life_safety_first(client, courier):
    categories = (await client.get("/api/v1/categories", headers=courier.headers)).json()
    assert len(categories) == 13
    assert [c["life_safety"] for c in categories[:4]] == [True] * 4
    assert {"code": "flying_wire_charging", "name_zh": "飞线充电"}.items() <= categories[4].items()


async def test_a_text_part_in_an_unknown_charset_is_400_not_500(client, db, courier):
    body = (b"--xyz\r\nContent-Disposition: form-data; name=\"meta\"\r\n"
            b"Content-Type: text/plain; charset=klingon-8\r\n\r\n\xff\xfe{}\r\n--xyz--\r\n")
    reply = await client.post("/api/v1/reports", headers={
        **courier.headers, "content-type": "multipart/form-data; boundary=xyz"}, content=body)
    assert reply.status_code in (400, 422), reply.text
    assert await stored(db) == (0, 0, 0)


@pytest.mark.parametrize("path", [
    "/api/v1/reports/99999999999999999999999",
    "/api/v1/reports/0",
    "/api/v1/me/reports?limit=99999999999999999999999",
    "/api/v1/me/reports?cursor=999999999999999999",
])
async def test_out_of_range_numbers_in_urls_are_4xx_not_500(client, courier, path):
    reply = await client.get(path, headers=courier.headers)
    assert reply.status_code in (200, 400, 404, 422), reply.text


async def test_field_messages_follow_the_callers_language(client, clock, courier):
    english = await client.post("/api/v1/reports", headers={**courier.headers, "Accept-Language": "en"},
                                files=files(meta(clock, lat=95.0)))
    assert english.json()["errors"] == [{"field": "lat", "code": "out_of_range", "message": "lat is out of range."}]
    chinese = await client.post("/api/v1/reports", headers=courier.headers,
                                files=files(meta(clock), [b"GIF89a" + b"\x00" * 50]))
    assert chinese.json()["errors"][0]["message"] == "只支持 JPEG、PNG 或 WebP 照片。"


async def test_my_reports_show_the_points_each_report_earned_and_expects(client, db, clock, courier):
    """Provisional while the incident is open, final once the ledger pays, net of a reversal."""
    from gridrider.domain.points import first_report_points

    body = meta(clock)
    assert (await post_report(client, courier, body)).status_code == 201
    report = await db.fetchval("SELECT id FROM reports WHERE reporter_id = $1", courier.member_id)
    incident = await db.fetchval(
        """INSERT INTO incidents (category, lat, lon, cell, area_id, state, origin_report_id, last_captured_at,
                                  dispatched_at, created_at, updated_at)
           SELECT category, lat, lon, cell, (SELECT id FROM areas WHERE code = $2), 'dispatched', id, captured_at,
                  $3, $3, $3 FROM reports WHERE id = $1 RETURNING id""", report, GRID, clock.now())
    await db.execute("UPDATE reports SET incident_id = $1, state = 'processed', processed_at = $2 WHERE id = $3",
                     incident, clock.now(), report)
    expected = first_report_points(await db.fetchval("SELECT weight FROM categories WHERE code = $1",
                                                      body["category"]))

    async def mine() -> tuple[int, int]:
        item = (await client.get("/api/v1/me/reports", headers=courier.headers)).json()["items"][0]
        single = (await client.get(f"/api/v1/reports/{report}", headers=courier.headers)).json()
        assert (single["points_final"], single["points_provisional"]) == (item["points_final"],
                                                                          item["points_provisional"])
        return item["points_final"], item["points_provisional"]

    assert await mine() == (0, expected)
    paid = await db.fetchval(
        """INSERT INTO points_ledger (member_id, reason, amount, source_kind, source_id, cycle, counts_toward_cap,
                                      counts_toward_ranking, local_day, created_at)
           VALUES ($1, 'first_report', $2, 'incident', $3, 1, true, true, $4, $5) RETURNING id""",
        courier.member_id, expected, incident, clock.now().date(), clock.now())
    assert await mine() == (expected, 0)
    await db.execute(
        """INSERT INTO points_ledger (member_id, reason, amount, source_kind, source_id, cycle, counts_toward_cap,
                                      counts_toward_ranking, local_day, created_at)
           VALUES ($1, 'reversal', $2, 'ledger', $3, 0, false, true, $4, $5)""",
        courier.member_id, -expected, paid, clock.now().date(), clock.now())
    assert (await mine())[0] == 0
