"""The member list (GET /api/v1/members): scoped to the caller's subtree, filters, search, pages,
refusals — and the actions a supervisor may take on a listed member, inside their subtree only."""

from __future__ import annotations

import pytest

from tests.conftest import T0

URL = "/api/v1/members"
COMMUNITY, GRID, OTHER_GRID, SIBLING = "ZW-ZWZ-C02", "ZW-ZWZ-C02-G01", "ZW-ZWZ-C02-G03", "ZW-ZWZ-C03"
# Demo members (gridrider.demo) with an area in C02: its supervisor 赵书记 and two grid members.
DEMO_IN_COMMUNITY = {"13800000012", "13800000020", "13800000021"}


@pytest.fixture
async def town(client, db, login):
    """C02's supervisor and people, a sibling community's (C03), and one rider in both.

      supervisor  C02               13911110001
      a   courier G01, "张伟 100%"   13922220001
      b   courier C02, deactivated  13922220002
      c   courier G01 and C03       13922220003   (listed for both supervisors, managed by neither)
      g   grid member G03           13933330001
      n   courier G01, enrolled by the supervisor, never signed in   13922220004
      o   courier C03               13922220009
      outsider supervisor C03       13911110002
    """
    supervisor = await login("supervisor", "13911110001", [COMMUNITY])
    a = await login("courier", "13922220001", [GRID])
    b = await login("courier", "13922220002", [COMMUNITY])
    c = await login("courier", "13922220003", [GRID, SIBLING])
    g = await login("grid_member", "13933330001", [OTHER_GRID])
    o = await login("courier", "13922220009", [SIBLING])
    outsider = await login("supervisor", "13911110002", [SIBLING])
    enrolled = await client.post("/api/v1/enrolments", headers=supervisor.headers, json={
        "role": "courier", "display_name": "骑手 新人", "phone": "13922220004", "platform": "jd",
        "area_codes": [GRID]})
    assert enrolled.status_code == 201, enrolled.text
    await db.execute("UPDATE members SET display_name = '张伟 100%' WHERE id = $1", a.member_id)
    deactivated = await client.post(f"/api/v1/members/{b.member_id}/deactivate", headers=supervisor.headers)
    assert deactivated.status_code == 200, deactivated.text
    return {"supervisor": supervisor, "outsider": outsider, "a": a, "b": b, "c": c, "g": g, "o": o,
            "n": enrolled.json()["member_id"]}


async def listed(client, caller, **params) -> list[dict]:
    """Every member the list gives for the query, page after page (checking the pages on the way)."""
    items, cursor = [], None
    while True:
        reply = await client.get(URL, params={**params, **({"cursor": cursor} if cursor else {})},
                                 headers=caller.headers)
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert len(body["items"]) <= int(params.get("limit", 50))
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


async def phones(client, caller, **params) -> set[str]:
    return {item["phone"] for item in await listed(client, caller, **params)}


IN_COMMUNITY = DEMO_IN_COMMUNITY | {"13911110001", "13922220001", "13922220002", "13922220003", "13933330001",
                                    "13922220004"}


# ── scope ─────────────────────────────────────────────────────────────────────────────────────────


async def test_a_supervisor_lists_the_members_of_their_subtree_newest_first(client, town):
    items = await listed(client, town["supervisor"])
    assert {i["phone"] for i in items} == IN_COMMUNITY  # never the sibling community's o or its supervisor
    assert [i["id"] for i in items] == sorted((i["id"] for i in items), reverse=True)
    by_phone = {i["phone"]: i for i in items}
    a = by_phone["13922220001"]
    assert (a["id"], a["role"], a["display_name"], a["platform"], a["status"], a["area_codes"]) == (
        town["a"].member_id, "courier", "张伟 100%", "meituan", "active", [GRID])
    assert a["pseudonym"].startswith("骑手-") and a["manageable"] is True
    assert a["last_seen_at"] == T0.isoformat().replace("+00:00", "Z") and a["created_at"]
    assert by_phone["13922220004"]["last_seen_at"] is None  # enrolled, never signed in
    assert by_phone["13922220002"]["status"] == "deactivated"
    # The rider in both communities shows only the area inside this subtree, and cannot be managed here.
    c = by_phone["13922220003"]
    assert (c["area_codes"], c["manageable"]) == ([GRID], False)
    # Nor can the caller themselves or another supervisor; grid members and riders of the subtree can.
    assert not by_phone["13911110001"]["manageable"] and not by_phone["13800000012"]["manageable"]
    assert by_phone["13933330001"]["manageable"] and by_phone["13800000020"]["manageable"]


async def test_the_sibling_communitys_supervisor_sees_only_theirs(client, town):
    items = await listed(client, town["outsider"])
    assert {i["phone"] for i in items} == {"13911110002", "13922220009", "13922220003"}
    c = next(i for i in items if i["phone"] == "13922220003")
    assert (c["area_codes"], c["manageable"]) == ([SIBLING], False)


async def test_an_admin_lists_everyone_with_all_their_areas(client, db, town, admin):
    items = await listed(client, admin)
    assert len(items) == await db.fetchval("SELECT count(*) FROM members WHERE role <> 'system'")
    c = next(i for i in items if i["phone"] == "13922220003")
    assert (c["area_codes"], c["manageable"]) == ([GRID, SIBLING], True)
    assert await phones(client, admin, area=SIBLING) == {"13911110002", "13922220009", "13922220003"}
    assert await phones(client, admin, role="admin") == {"13800000001"}


async def test_an_area_narrows_the_list_and_one_outside_the_subtree_is_404(client, town):
    supervisor = town["supervisor"]
    assert await phones(client, supervisor, area=GRID) == {"13800000020", "13922220001", "13922220003",
                                                          "13922220004"}
    assert await phones(client, supervisor, area=OTHER_GRID) == {"13800000021", "13933330001"}
    for area in (SIBLING, "ZW-ZWZ-C03-G01", "ZW-ZWZ", "ZW", "NO-SUCH-AREA"):
        reply = await client.get(URL, params={"area": area}, headers=supervisor.headers)
        assert (reply.status_code, reply.json()["code"]) == (404, "area_not_found"), area


# ── filters and search ────────────────────────────────────────────────────────────────────────────


async def test_role_and_status_filter_and_combine(client, town):
    supervisor = town["supervisor"]
    assert await phones(client, supervisor, role="courier") == {"13922220001", "13922220002", "13922220003",
                                                               "13922220004"}
    assert await phones(client, supervisor, role="grid_member") == {"13800000020", "13800000021", "13933330001"}
    assert await phones(client, supervisor, status="deactivated") == {"13922220002"}
    assert await phones(client, supervisor, role="courier", status="active", area=GRID) == {
        "13922220001", "13922220003", "13922220004"}
    assert await phones(client, supervisor, role="admin") == set()


async def test_search_by_name_pseudonym_and_the_phones_last_digits(client, db, town):
    supervisor = town["supervisor"]
    # 张伟 is also a demo rider's name (骑手 张伟, on the street above): not in this subtree, not found.
    assert await phones(client, supervisor, q="张伟") == {"13922220001"}
    # % and _ are taken literally, not as wildcards.
    assert await phones(client, supervisor, q="100%") == {"13922220001"}
    assert await phones(client, supervisor, q="%") == {"13922220001"}
    assert await phones(client, supervisor, q="_") == set()
    # Pseudonyms match whatever the case.
    pseudonym = await db.fetchval("SELECT pseudonym FROM members WHERE id = $1", town["g"].member_id)
    assert await phones(client, supervisor, q=pseudonym.lower()) == {"13933330001"}
    assert await phones(client, supervisor, q=f"  {pseudonym[-4:]} ") >= {"13933330001"}
    # Four or more digits match the end of the phone; fewer are never matched against phones.
    assert await phones(client, supervisor, q="20003") == {"13922220003"}
    assert await phones(client, supervisor, q="13922220003") == {"13922220003"}
    assert "13922220003" not in await phones(client, supervisor, q="003")
    assert await phones(client, supervisor, q="22200") == set()  # in the middle of phones, at the end of none
    # The sibling community's rider is not found by their phone either.
    assert await phones(client, supervisor, q="0009") == set()
    assert await phones(client, supervisor, q="   ") == IN_COMMUNITY  # a blank search is no search


async def test_pages_walk_the_whole_list_once(client, town):
    supervisor = town["supervisor"]
    whole = [i["id"] for i in await listed(client, supervisor)]
    first = (await client.get(URL, params={"limit": 3}, headers=supervisor.headers)).json()
    assert [i["id"] for i in first["items"]] == whole[:3] and first["next_cursor"]
    paged = [i["id"] for i in await listed(client, supervisor, limit=3)]
    assert paged == whole and len(set(paged)) == len(paged) == len(IN_COMMUNITY)
    # A page ending exactly at the last member says there is no next one.
    exact = (await client.get(URL, params={"limit": len(whole)}, headers=supervisor.headers)).json()
    assert exact["next_cursor"] is None and len(exact["items"]) == len(whole)
    # Filters hold across pages.
    couriers = await listed(client, supervisor, role="courier", limit=1)
    assert {i["phone"] for i in couriers} == {"13922220001", "13922220002", "13922220003", "13922220004"}


# ── refusals ──────────────────────────────────────────────────────────────────────────────────────


async def test_couriers_and_grid_members_are_refused(client, town):
    for caller in (town["a"], town["g"]):
        reply = await client.get(URL, headers=caller.headers)
        assert (reply.status_code, reply.json()["code"]) == (403, "forbidden")
    assert (await client.get(URL)).status_code == 401


@pytest.mark.parametrize(("params", "field", "code"), [
    ({"role": "boss"}, "role", "member_role_invalid"),
    ({"role": "system"}, "role", "member_role_invalid"),
    ({"status": "gone"}, "status", "member_status_invalid"),
    ({"q": "x" * 41}, "q", "member_search_invalid"),
    ({"q": "a\x00b"}, "q", "member_search_invalid"),
    ({"q": "a\tb"}, "q", "member_search_invalid"),
    ({"cursor": "abc"}, "cursor", "cursor_invalid"),
    ({"cursor": "0"}, "cursor", "cursor_invalid"),
    ({"cursor": "9" * 19}, "cursor", "cursor_invalid"),
    ({"cursor": "-5"}, "cursor", "cursor_invalid"),
    ({"limit": "0"}, "limit", "invalid"),
    ({"limit": "101"}, "limit", "invalid"),
    ({"limit": "ten"}, "limit", "invalid"),
])
async def test_bad_parameters_are_422_with_a_code_and_both_languages(client, town, params, field, code):
    supervisor = town["supervisor"]
    reply = await client.get(URL, params=params, headers=supervisor.headers)
    assert reply.status_code == 422, reply.text
    body = reply.json()
    assert body["code"] == "validation_failed"
    assert [(e["field"], e["code"]) for e in body["errors"]] == [(field, code)]
    english = (await client.get(URL, params=params, headers={**supervisor.headers, "Accept-Language": "en"})).json()
    assert english["errors"][0]["message"] != body["errors"][0]["message"]
    assert english["errors"][0]["message"].isascii()


# ── acting on a listed member: inside the subtree yes, a sibling community's no ────────────────────


async def test_a_supervisor_deactivates_a_member_of_their_subtree_but_not_a_siblings(client, town):
    supervisor = town["supervisor"]
    done = await client.post(f"/api/v1/members/{town['a'].member_id}/deactivate", headers=supervisor.headers)
    assert (done.status_code, done.json()["status"]) == (200, "deactivated")
    assert (await client.get("/api/v1/me", headers=town["a"].headers)).status_code == 401
    for member in (town["o"], town["c"]):  # the sibling's rider, and the one straddling both communities
        refused = await client.post(f"/api/v1/members/{member.member_id}/deactivate", headers=supervisor.headers)
        assert refused.status_code == 404
        assert (await client.get("/api/v1/me", headers=member.headers)).status_code == 200


async def test_a_supervisor_re_areas_a_member_of_their_subtree_but_not_a_siblings(client, town):
    supervisor = town["supervisor"]
    moved = await client.put(f"/api/v1/members/{town['a'].member_id}/areas", headers=supervisor.headers,
                             json={"area_codes": [OTHER_GRID]})
    assert (moved.status_code, moved.json()["area_codes"]) == (200, [OTHER_GRID])
    assert await phones(client, supervisor, area=OTHER_GRID) >= {"13922220001"}
    refused = await client.put(f"/api/v1/members/{town['o'].member_id}/areas", headers=supervisor.headers,
                               json={"area_codes": [GRID]})
    assert refused.status_code == 404
    assert (await client.get("/api/v1/me", headers=town["o"].headers)).json()["area_codes"] == [SIBLING]


async def test_a_supervisor_gives_a_member_of_their_subtree_a_new_code_but_not_a_siblings(client, town):
    supervisor = town["supervisor"]
    again = await client.post("/api/v1/enrolments", headers=supervisor.headers, json={
        "role": "courier", "display_name": "骑手 新人", "phone": "13922220004", "platform": "jd",
        "area_codes": [GRID]})
    assert again.status_code == 201, again.text
    assert (again.json()["member_id"], again.json()["reactivated"]) == (town["n"], True)
    refused = await client.post("/api/v1/enrolments", headers=supervisor.headers, json={
        "role": "courier", "display_name": "takeover", "phone": "13922220009", "platform": "jd",
        "area_codes": [GRID]})
    assert refused.status_code == 404
    o = (await client.get("/api/v1/me", headers=town["o"].headers)).json()
    assert (o["area_codes"], o["display_name"]) == ([SIBLING], "测试")  # untouched, still signed in
