"""POST requests: form-encoded per the spec, filed as a report of the key's system member; every refusal in
the spec's error format; retries with attribute[client_id] file nothing twice; media_url never fetched."""

import asyncio

import pytest

from gridrider.jobs.queue import DEFAULT_QUEUE
from tests.open311.conftest import BASE, HERE, THERE, assert_error, errors_of, parse_xml, post_request, revoke


async def counts(db) -> tuple[int, int, int]:
    return tuple([await db.fetchval(f"SELECT count(*) FROM {table}")
                  for table in ("reports", "open311_requests", "jobs")])


async def test_a_request_is_filed_as_a_hotline_report_of_the_keys_system_member(client, db, redis, hotline):
    reply = await post_request(client, hotline, address_string="东风路 12 号", email="caller@example.com",
                               first_name="张", last_name="三", phone="13000000000", jurisdiction_id="zhangwu.gov.cn",
                               media_url="https://hotline.example.com/media/1.jpg", device_id="d1", account_id="a1")
    assert reply.status_code == 201, reply.text
    (answer,) = reply.json()
    assert list(answer) == ["token", "service_notice", "account_id"]  # a token, so no service_request_id
    assert answer["account_id"] is None and len(answer["token"]) >= 16
    report = await db.fetchrow("SELECT r.*, m.role, m.pseudonym FROM reports r JOIN members m ON m.id = r.reporter_id")
    assert (report["role"], report["pseudonym"], report["reporter_id"]) == ("system", "open311:12345-hotline",
                                                                           hotline.member_id)
    assert (report["position_source"], report["accuracy_m"], report["category"]) == ("hotline", 100.0,
                                                                                       "garbage_pileup")
    assert (report["lat"], report["lon"]) == HERE
    assert report["captured_at"] == report["received_at"]
    assert report["note"] == "小区门口垃圾堆了三天\n地址：东风路 12 号"
    stored = await db.fetchrow("SELECT * FROM open311_requests")
    assert stored["token"] == answer["token"] and stored["media_url"] == "https://hotline.example.com/media/1.jpg"
    assert stored["address_string"] == "东风路 12 号"
    # The caller's personal details are dropped: nowhere in the database.
    dump = str([dict(r) for r in await db.fetch("SELECT * FROM reports")]) + str(dict(stored))
    assert "caller@example.com" not in dump and "13000000000" not in dump
    assert {r["kind"] for r in await db.fetch("SELECT kind FROM jobs")} == {"process_report"}
    assert await redis.zcard(DEFAULT_QUEUE) == 1


async def test_the_answer_comes_in_xml_too(client, db, hotline):
    reply = await post_request(client, hotline, fmt="xml")
    assert reply.status_code == 201
    root = parse_xml(reply.content)
    assert root.tag == "service_requests"
    (request,) = root
    assert request.tag == "request" and [c.tag for c in request] == ["token", "service_notice", "account_id"]
    assert request.find("account_id").text is None


async def test_three_retries_with_one_client_id_make_one_report(client, db, hotline):
    replies = [await post_request(client, hotline, **{"attribute[client_id]": "12345-2026-000123"}) for _ in range(3)]
    assert [r.status_code for r in replies] == [201, 200, 200]
    assert len({r.json()[0]["token"] for r in replies}) == 1
    assert await counts(db) == (1, 1, 1)
    assert await db.fetchval("SELECT client_ref FROM open311_requests") == "12345-2026-000123"


async def test_concurrent_retries_make_one_report(client, db, hotline):
    replies = await asyncio.gather(*(post_request(client, hotline, **{"attribute[client_id]": "same"})
                                     for _ in range(6)))
    assert sorted(r.status_code for r in replies) == [200] * 5 + [201]
    assert len({r.json()[0]["token"] for r in replies}) == 1
    assert await counts(db) == (1, 1, 1)


async def test_without_a_client_id_every_post_is_a_new_report(client, db, hotline):
    for _ in range(2):
        assert (await post_request(client, hotline)).status_code == 201
    assert await counts(db) == (2, 2, 2)


async def test_the_same_number_written_differently_is_the_same_request(client, db, hotline):
    ref = {"attribute[client_id]": "r-1"}
    assert (await post_request(client, hotline, lat=f"{HERE[0]:.6f}", **ref)).status_code == 201
    assert (await post_request(client, hotline, lat=f"{HERE[0]:.6f}000", **ref)).status_code == 200


async def test_a_client_id_reused_for_another_request_is_400(client, db, hotline):
    ref = {"attribute[client_id]": "r-1"}
    assert (await post_request(client, hotline, **ref)).status_code == 201
    assert_error(await post_request(client, hotline, description="另一件事", **ref), 400)
    assert_error(await post_request(client, hotline, service_code="flooding", **ref), 400)
    assert await counts(db) == (1, 1, 1)


async def test_two_systems_may_use_the_same_client_id(client, db, hotline, make_key):
    other = await make_key("c02-platform", "ZW-ZWZ-C02")
    ref = {"attribute[client_id]": "000001"}
    assert (await post_request(client, hotline, **ref)).status_code == 201
    assert (await post_request(client, other, **ref)).status_code == 201
    assert await counts(db) == (2, 2, 2)


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_a_missing_wrong_or_revoked_key_is_403(client, db, clock, hotline, fmt):
    assert_error(await post_request(client, None, fmt=fmt), 403, "api_key")
    reply = await client.post(f"{BASE}/requests.{fmt}", data={"api_key": hotline.key[:-1] + "x",
                                                              "service_code": "flooding", "lat": "1", "long": "1"})
    assert_error(reply, 403)
    assert_error(await client.post(f"{BASE}/requests.{fmt}", data={"api_key": "x" * 500}), 403)
    await revoke(db, clock, hotline.name)
    assert_error(await post_request(client, hotline, fmt=fmt), 403)
    assert await counts(db) == (0, 0, 0)


async def test_the_key_may_also_come_in_the_query_string(client, db, hotline):
    reply = await client.post(f"{BASE}/requests.json?api_key={hotline.key}", data={
        "service_code": "garbage_pileup", "lat": str(HERE[0]), "long": str(HERE[1])})
    assert reply.status_code == 201, reply.text


async def test_a_position_outside_the_keys_area_is_403(client, db, hotline, foreign_key):
    assert_error(await post_request(client, hotline, point=THERE), 403)
    assert_error(await post_request(client, hotline, point=(39.9, 116.4)), 403)  # Beijing: outside every polygon
    assert (await post_request(client, foreign_key, point=THERE)).status_code == 201
    assert await counts(db) == (1, 1, 1)


async def test_a_county_key_may_file_anywhere_in_its_county_but_not_beyond(client, db, make_key):
    county = await make_key("county-12345", "ZW")
    assert (await post_request(client, county, point=THERE)).status_code == 201
    assert_error(await post_request(client, county, point=(39.9, 116.4)), 403)


@pytest.mark.parametrize("code", ["pothole", "other"])
async def test_an_unknown_or_disabled_service_is_404(client, db, hotline, code):
    await db.execute("UPDATE categories SET enabled = false WHERE code = 'other'")
    assert_error(await post_request(client, hotline, service_code=code), 404)
    assert await counts(db) == (0, 0, 0)


@pytest.mark.parametrize(("fields", "fragment"), [
    ({"service_code": None}, "service_code"),
    ({"lat": None, "long": None, "address_string": "东风路 12 号"}, "lat"),
    ({"lat": "north"}, "lat"),
    ({"lat": "nan"}, "lat"),
    ({"long": "inf"}, "long"),
    ({"lat": "91"}, "lat"),
    ({"long": "-180.5"}, "long"),
    ({"description": "x" * 4001}, "description"),
    ({"description": "井盖\x00没了"}, "description"),
    ({"media_url": "javascript:alert(1)"}, "media_url"),
    ({"media_url": "file:///etc/passwd"}, "media_url"),
    ({"media_url": "http://"}, "media_url"),
    ({"media_url": "http://[::1"}, "media_url"),
    ({"photo_url": "https://x.example/1.jpg"}, "photo_url"),
    ({"attribute[client_id]": "x" * 101}, "attribute[client_id]"),
    ({"first_name": "n" * 101}, "first_name"),
    ({"service_code": "garbage\npileup"}, "service_code"),
])
async def test_bad_input_is_400_naming_the_field(client, db, hotline, fields, fragment):
    reply = await post_request(client, hotline, **fields)
    assert_error(reply, 400, fragment)
    assert await counts(db) == (0, 0, 0)


async def test_every_bad_field_is_listed(client, db, hotline):
    reply = await post_request(client, hotline, lat="x", long="999", media_url="ftp://a")
    assert reply.status_code == 400
    assert sorted(e["description"].split(":")[0] for e in errors_of(reply)) == ["lat", "long", "media_url"]


async def test_errors_speak_english_when_asked(client, db, hotline):
    reply = await client.post(f"{BASE}/requests.json", data={"service_code": "flooding"},
                              headers={"Accept-Language": "en"})
    assert_error(reply, 403, "The api_key is missing, wrong or revoked.")


async def test_a_repeated_field_a_file_or_a_json_body_is_400(client, db, hotline):
    reply = await client.post(f"{BASE}/requests.json",
                              content=f"api_key={hotline.key}&service_code=flooding&service_code=other&lat=1&long=1",
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_error(reply, 400, "service_code")
    reply = await client.post(f"{BASE}/requests.json", data={"api_key": hotline.key, "service_code": "flooding"},
                              files={"media": ("a.jpg", b"\xff\xd8\xff", "image/jpeg")})
    assert_error(reply, 400, "media")
    reply = await client.post(f"{BASE}/requests.json", json={"api_key": hotline.key, "service_code": "flooding"})
    assert_error(reply, 400)
    assert await counts(db) == (0, 0, 0)


async def test_media_url_is_recorded_and_never_fetched(client, db, settings, clock, hotline):
    from tests.jobs.conftest import run_burst

    hits: list[bytes] = []

    async def serve(reader, writer):
        hits.append(await reader.read(1024))
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        url = f"http://127.0.0.1:{port}/photo.jpg"
        assert (await post_request(client, hotline, media_url=url)).status_code == 201
        await run_burst(settings, clock)  # the whole pipeline runs: routing, merging, notifications
        await asyncio.sleep(0.2)
    finally:
        server.close()
        await server.wait_closed()
    assert hits == []
    assert await db.fetchval("SELECT media_url FROM open311_requests") == url
    assert await db.fetchval("SELECT state FROM reports") == "processed"
