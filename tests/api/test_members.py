"""Enrolment, sign-in, sessions and what supervisors may do to members — including the attacks."""

import asyncio

import pytest

from gridrider.db import areas as db_areas
from gridrider.domain.members import mask_phone, normalise_phone
from tests.conftest import issue_code, sign_in

STREET = "ZW-ZWZ"
GRID = "ZW-ZWZ-C02-G01"


async def _other_county(db) -> None:
    """A second county (Fuxin's Qinghemen) with one street, for cross-county attacks."""
    async with db.acquire() as conn:
        county = await db_areas.insert_area(conn, code="QHM", level="county", parent_id=None, name_zh="清河门区",
                                            name_en="Qinghemen", polygon=None, bbox=None, area_m2=None)
        await db_areas.insert_area(conn, code="QHM-S1", level="street", parent_id=county, name_zh="清河街道",
                                   name_en="Qinghe", polygon=None, bbox=None, area_m2=None)


async def test_admin_enrols_a_supervisor_who_signs_in_and_sees_themselves(client, admin):
    reply = await client.post("/api/v1/enrolments", headers=admin.headers, json={
        "role": "supervisor", "display_name": "街道 王站长", "phone": "+86 139-1234-5678", "area_codes": [STREET]})
    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert body["url"].endswith(f"/#/enrol/{body['code']}")
    # The link's QR code: a square of modules the app draws (a version-2+ code is at least 25 across).
    qr = body["qr"]
    assert len(qr) >= 25 and all(len(row) == len(qr) and set(row) <= {"0", "1"} for row in qr)
    assert qr[0].startswith("1111111")  # a finder pattern in the corner
    supervisor = await sign_in(client, body["code"], "13912345678")
    me = (await client.get("/api/v1/me", headers=supervisor.headers)).json()
    assert (me["role"], me["area_codes"], me["phone"], me["privacy_accepted"]) == (
        "supervisor", [STREET], "13912345678", True)


async def test_a_supervisor_enrols_a_courier_inside_their_subtree(client, login):
    street = await login("supervisor", "13911110000", [STREET])
    reply = await client.post("/api/v1/enrolments", headers=street.headers, json={
        "role": "courier", "display_name": "骑手 小王", "phone": "13922220000", "platform": "eleme",
        "area_codes": [GRID]})
    assert reply.status_code == 201
    courier = await sign_in(client, reply.json()["code"], "13922220000")
    me = (await client.get("/api/v1/me", headers=courier.headers)).json()
    assert (me["role"], me["platform"]) == ("courier", "eleme")
    assert me["pseudonym"].startswith("骑手-")


@pytest.mark.parametrize("role", ["supervisor", "admin"])
async def test_a_supervisor_cannot_enrol_their_own_or_a_higher_role(client, login, role):
    street = await login("supervisor", "13911110000", [STREET])
    reply = await client.post("/api/v1/enrolments", headers=street.headers, json={
        "role": role, "display_name": "x", "phone": "13933330000", "area_codes": [STREET]})
    assert reply.status_code == 404


async def test_a_supervisor_cannot_enrol_into_another_county(client, db, login):
    await _other_county(db)
    outsider = await login("supervisor", "13944440000", ["QHM-S1"])
    reply = await client.post("/api/v1/enrolments", headers=outsider.headers, json={
        "role": "courier", "display_name": "x", "phone": "13955550000", "platform": "sf", "area_codes": [GRID]})
    assert reply.status_code == 404
    assert reply.json()["code"] == "not_found"


async def test_re_enrolling_the_phone_of_another_countys_member_is_a_404(client, db, login):
    await _other_county(db)
    ours = await login("courier", "13966660000", [GRID])
    outsider = await login("supervisor", "13944440000", ["QHM-S1"])
    reply = await client.post("/api/v1/enrolments", headers=outsider.headers, json={
        "role": "courier", "display_name": "takeover", "phone": "13966660000", "platform": "sf",
        "area_codes": ["QHM-S1"]})
    assert reply.status_code == 404
    me = (await client.get("/api/v1/me", headers=ours.headers)).json()
    assert me["area_codes"] == [GRID] and me["display_name"] == "测试"  # untouched


async def test_re_enrolling_an_admins_phone_is_a_404(client, admin, login):
    street = await login("supervisor", "13911110000", [STREET])
    reply = await client.post("/api/v1/enrolments", headers=street.headers, json={
        "role": "courier", "display_name": "takeover", "phone": "13800000001", "platform": "sf",
        "area_codes": [GRID]})
    assert reply.status_code == 404


async def test_a_lost_phone_gets_a_new_code_for_the_same_member(client, db, settings, clock, login):
    street = await login("supervisor", "13911110000", [STREET])
    first = await client.post("/api/v1/enrolments", headers=street.headers, json={
        "role": "courier", "display_name": "骑手 小李", "phone": "13977770000", "platform": "jd", "area_codes": [GRID]})
    second = await client.post("/api/v1/enrolments", headers=street.headers, json={
        "role": "courier", "display_name": "骑手 小李", "phone": "13977770000", "platform": "jd", "area_codes": [GRID]})
    assert second.json()["member_id"] == first.json()["member_id"]
    assert second.json()["reactivated"] is True
    # The printout of the first code is useless now.
    stale = await client.post("/api/v1/sessions", json={"code": first.json()["code"], "phone_last4": "0000",
                                                        "accept_privacy": True})
    assert (stale.status_code, stale.json()["code"]) == (410, "enrolment_expired")
    courier = await sign_in(client, second.json()["code"], "13977770000")
    assert courier.member_id == first.json()["member_id"]


async def test_unknown_code_and_wrong_digits_get_the_same_answer(client, db, settings, clock, demo):
    code = await issue_code(db, settings, clock, role="courier", phone="13988880000", areas=[GRID], platform="sf")
    unknown = await client.post("/api/v1/sessions", json={"code": "ZZZZ-ZZZZ-ZZZZ", "phone_last4": "0000"})
    wrong = await client.post("/api/v1/sessions", json={"code": code, "phone_last4": "1234"})
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json()


async def test_a_code_locks_after_five_wrong_tries(client, db, settings, clock, demo):
    code = await issue_code(db, settings, clock, role="courier", phone="13988880000", areas=[GRID], platform="sf")
    for _ in range(5):
        assert (await client.post("/api/v1/sessions", json={"code": code, "phone_last4": "1111"})).status_code == 401
    right = await client.post("/api/v1/sessions", json={"code": code, "phone_last4": "0000", "accept_privacy": True})
    assert (right.status_code, right.json()["code"]) == (423, "enrolment_locked")


async def test_a_code_works_once_and_expires(client, db, settings, clock, demo):
    code = await issue_code(db, settings, clock, role="courier", phone="13988880000", areas=[GRID], platform="sf")
    await sign_in(client, code, "13988880000")
    again = await client.post("/api/v1/sessions", json={"code": code, "phone_last4": "0000"})
    assert (again.status_code, again.json()["code"]) == (410, "enrolment_used")
    late = await issue_code(db, settings, clock, role="courier", phone="13988881111", areas=[GRID], platform="sf")
    clock.advance(days=15)
    expired = await client.post("/api/v1/sessions", json={"code": late, "phone_last4": "1111"})
    assert (expired.status_code, expired.json()["code"]) == (410, "enrolment_expired")


async def test_the_privacy_notice_is_accepted_on_first_sign_in(client, db, settings, clock, demo):
    code = await issue_code(db, settings, clock, role="courier", phone="13988880000", areas=[GRID], platform="sf")
    first = await client.post("/api/v1/sessions", json={"code": code, "phone_last4": "0000"})
    assert (first.status_code, first.json()["code"]) == (409, "privacy_notice_required")
    notice = (await client.get("/api/v1/privacy-notice")).json()
    assert "轨迹" in notice["text_zh"]
    accepted = await client.post("/api/v1/sessions", json={"code": code, "phone_last4": "0000",
                                                           "accept_privacy": True})
    assert accepted.status_code == 201
    assert accepted.json()["member"]["privacy_accepted"] is True


async def test_concurrent_wrong_guesses_cannot_get_past_the_lock(client, db, settings, clock, demo):
    code = await issue_code(db, settings, clock, role="courier", phone="13988880000", areas=[GRID], platform="sf")
    guesses = await asyncio.gather(*(
        client.post("/api/v1/sessions", json={"code": code, "phone_last4": f"{n:04d}"}) for n in range(1, 31)))
    assert sorted(g.status_code for g in guesses) == [401] * 5 + [423] * 25
    assert await db.fetchval("SELECT failed_attempts FROM enrolments") == 5


async def test_sign_in_failures_are_rate_limited_per_address_but_successes_are_not(
    client, db, settings, clock, demo,
):
    for n in range(40):  # a depot signing in together behind one carrier NAT address
        code = await issue_code(db, settings, clock, role="courier", phone=f"139880{n:05d}", areas=[GRID],
                                platform="sf")
        await sign_in(client, code, f"139880{n:05d}")
    for _ in range(30):
        await client.post("/api/v1/sessions", json={"code": "ZZZZ-ZZZZ-ZZZZ", "phone_last4": "0000"})
    blocked = await client.post("/api/v1/sessions", json={"code": "ZZZZ-ZZZZ-ZZZZ", "phone_last4": "0000"})
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) >= 1
    assert blocked.json()["code"] == "rate_limited"


async def test_sign_out_ends_the_session(client, login):
    courier = await login("courier", "13966660000", [GRID])
    assert (await client.delete("/api/v1/sessions/current", headers=courier.headers)).status_code == 204
    assert (await client.get("/api/v1/me", headers=courier.headers)).status_code == 401


async def test_sessions_slide_for_90_days_of_use_and_end_after_90_idle_days(client, clock, login):
    courier = await login("courier", "13966660000", [GRID])
    for _ in range(3):
        clock.advance(days=80)
        assert (await client.get("/api/v1/me", headers=courier.headers)).status_code == 200
    clock.advance(days=91)
    assert (await client.get("/api/v1/me", headers=courier.headers)).status_code == 401


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer nope", "Basic dXNlcjpwYXNz", "Bearer " + "x" * 5000])
async def test_bad_credentials_are_401(client, demo, header):
    reply = await client.get("/api/v1/me", headers={"Authorization": header} if header else {})
    assert (reply.status_code, reply.json()["code"]) == (401, "unauthorized")


async def test_a_courier_cannot_enrol_anyone(client, login):
    courier = await login("courier", "13966660000", [GRID])
    reply = await client.post("/api/v1/enrolments", headers=courier.headers, json={
        "role": "courier", "display_name": "x", "phone": "13955550000", "platform": "sf", "area_codes": [GRID]})
    assert (reply.status_code, reply.json()["code"]) == (403, "forbidden")


async def test_a_supervisor_revokes_deactivates_and_re_areas_their_member(client, login):
    street = await login("supervisor", "13911110000", [STREET])
    courier = await login("courier", "13966660000", [GRID])
    moved = await client.put(f"/api/v1/members/{courier.member_id}/areas", headers=street.headers,
                             json={"area_codes": ["ZW-ZWZ-C03"]})
    assert moved.json()["area_codes"] == ["ZW-ZWZ-C03"]
    revoked = await client.post(f"/api/v1/members/{courier.member_id}/revoke-sessions", headers=street.headers)
    assert revoked.json() == {"revoked": 1}
    assert (await client.get("/api/v1/me", headers=courier.headers)).status_code == 401
    gone = await client.post(f"/api/v1/members/{courier.member_id}/deactivate", headers=street.headers)
    assert gone.json()["status"] == "deactivated"


async def test_a_supervisor_cannot_touch_another_countys_member(client, db, login):
    await _other_county(db)
    courier = await login("courier", "13966660000", [GRID])
    outsider = await login("supervisor", "13944440000", ["QHM-S1"])
    for method, path in [("get", ""), ("post", "/revoke-sessions"), ("post", "/deactivate")]:
        reply = await getattr(client, method)(f"/api/v1/members/{courier.member_id}{path}", headers=outsider.headers)
        assert reply.status_code == 404, path
    moved = await client.put(f"/api/v1/members/{courier.member_id}/areas", headers=outsider.headers,
                             json={"area_codes": ["QHM-S1"]})
    assert moved.status_code == 404
    assert (await client.get("/api/v1/me", headers=courier.headers)).status_code == 200


async def test_enrolment_input_is_validated(client, admin):
    reply = await client.post("/api/v1/enrolments", headers=admin.headers, json={
        "role": "courier", "display_name": "", "phone": "12345", "platform": "uber", "area_codes": [GRID]})
    assert reply.status_code == 422
    assert {e["field"] for e in reply.json()["errors"]} == {"phone", "display_name", "platform"}
    wrong_level = await client.post("/api/v1/enrolments", headers=admin.headers, json={
        "role": "grid_member", "display_name": "x", "phone": "13955550000", "area_codes": [STREET]})
    assert wrong_level.json()["errors"][0]["code"] == "wrong_area_level"


def test_phones_are_normalised_and_masked():
    assert normalise_phone("+86 138-0013-8000") == "13800138000"
    assert normalise_phone("0086 13800138000") == "13800138000"
    assert normalise_phone("23800138000") is None
    assert mask_phone("13812345678") == "138****5678"


def test_every_route_declares_who_may_call_it(settings, tmp_path):
    from gridrider.app import create_app

    app = create_app(settings)
    undeclared = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if set(getattr(handler, "http_methods", ())) == {"OPTIONS"}:
                continue  # Litestar's automatic OPTIONS answer; the guard refuses it like any undeclared route
            opt = handler.opt
            if opt.get("access") != "public" and not opt.get("roles"):
                undeclared.append(f"{route.path} {sorted(getattr(handler, 'http_methods', []))}")
    assert undeclared == []


async def test_a_session_token_is_stored_only_as_a_hash(db, login):
    courier = await login("courier", "13966660000", [GRID])
    stored = [r["token_hash"] for r in await db.fetch("SELECT token_hash FROM sessions")]
    assert stored and all(len(h) == 32 and courier.token.encode() not in h for h in stored)


async def test_an_out_of_range_member_id_is_4xx_not_500(client, admin):
    reply = await client.get("/api/v1/members/99999999999999999999", headers=admin.headers)
    assert reply.status_code in (400, 404, 422), reply.text
