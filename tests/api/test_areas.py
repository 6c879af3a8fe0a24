"""An admin imports the city's area GeoJSON over HTTP; supervisors list their subtree; routing follows the import."""

from __future__ import annotations

import copy
import datetime as dt

import msgspec
import pytest

from gridrider.api.areas import MAX_IMPORT_BODY
from gridrider.jobs.pipeline import AREA_INDEX
from tests.api.test_reports import files, meta
from tests.domain.test_area_import import by_code, rect, town
from tests.jobs.conftest import run_burst

URL = "/api/v1/areas"
IMPORT = f"{URL}/import"
DEMO_GRID = "ZW-ZWZ-C02-G03"
G1, G2 = "NT-S-C1-G1", "NT-S-C1-G2"


def collection(features: list[dict]) -> dict:
    return {"type": "FeatureCollection", "features": features}


def new_town() -> list[dict]:
    """A street with one community and two grids, under the demo's county (which the file does not carry)."""
    return town(county="ZW")


def at(x: float, y: float) -> dict:
    """lat/lon of a point given in metres inside the test town (see tests/domain/test_area_import.rect)."""
    lon, lat = rect(x, y, x + 1, y + 1)["coordinates"][0][0]
    return {"lat": lat, "lon": lon}


async def post_import(client, caller, features: list[dict], query: str = "", **kwargs):
    return await client.post(f"{IMPORT}{query}", headers={**caller.headers, **kwargs.pop("headers", {})},
                             content=msgspec.json.encode(collection(features)), **kwargs)


async def snapshot(db) -> list[tuple]:
    return [tuple(r) for r in await db.fetch("SELECT * FROM areas ORDER BY id")]


async def area_row(db, code: str) -> dict:
    return dict(await db.fetchrow(
        "SELECT a.*, p.code AS parent_code FROM areas a LEFT JOIN areas p ON p.id = a.parent_id WHERE a.code = $1",
        code))


@pytest.fixture
def ahead_of_the_demo(clock):
    """The demo seed stamps areas with the database's now(); put the test clock after it."""
    clock.set(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    return clock


# ── import ───────────────────────────────────────────────────────────────────────────────────────


async def test_an_admin_imports_a_file_and_every_area_is_stored_in_the_tree(client, admin, db, ahead_of_the_demo):
    clock = ahead_of_the_demo
    reply = await post_import(client, admin, new_town(), headers={"Content-Type": "application/geo+json"})
    assert reply.status_code == 201, reply.text
    report = reply.json()
    assert {k: report[k] for k in ("applied", "refused", "dry_run", "created", "updated", "unchanged",
                                   "untouched", "errors", "warnings")} == {
        "applied": True, "refused": False, "dry_run": False, "created": 4, "updated": 0, "unchanged": 0,
        "untouched": 154, "errors": 0, "warnings": 0}
    assert [(a["code"], a["action"]) for a in report["areas"]] == [
        ("NT-S", "created"), ("NT-S-C1", "created"), (G1, "created"), (G2, "created")]

    grid = await area_row(db, G1)
    assert (grid["level"], grid["parent_code"], grid["path"]) == ("grid", "NT-S-C1", "ZW/NT-S/NT-S-C1/NT-S-C1-G1/")
    assert grid["polygon"] == by_code(new_town(), G1)["geometry"]
    assert grid["area_m2"] == pytest.approx(100 * 100, rel=1e-3)
    ring = grid["polygon"]["coordinates"][0]
    assert grid["bbox"] == [min(p[0] for p in ring), min(p[1] for p in ring), max(p[0] for p in ring),
                            max(p[1] for p in ring)]
    assert grid["created_at"] == grid["updated_at"] == clock.now()
    street = await area_row(db, "NT-S")
    assert (street["polygon"], street["bbox"], street["area_m2"], street["name_en"]) == (None, None, None, None)


async def test_a_dry_run_reports_and_changes_nothing(client, admin, db):
    before = await snapshot(db)
    reply = await post_import(client, admin, new_town(), "?dry_run=true")
    assert reply.status_code == 200, reply.text
    assert (reply.json()["applied"], reply.json()["dry_run"], reply.json()["created"]) == (False, True, 4)
    assert await snapshot(db) == before


async def test_a_refused_import_changes_nothing_and_says_why_in_the_callers_language(client, admin, db):
    features = new_town()
    by_code(features, G2)["geometry"]["coordinates"][0].pop()  # unclosed ring
    by_code(features, "NT-S")["properties"]["parent"] = "XX"  # orphan
    before = await snapshot(db)
    for query in ("", "?dry_run=true"):
        reply = await post_import(client, admin, features, query, headers={"Accept-Language": "en"})
        assert reply.status_code == 422, reply.text
        assert reply.headers["content-type"].startswith("application/problem+json")
        body = reply.json()
        assert (body["code"], body["title"]) == (
            "areas_import_invalid", "The areas file did not pass the checks; nothing was imported.")
        assert [(e["field"], e["code"]) for e in body["errors"]] == [
            ("features[0].properties.parent", "area_parent_unknown"),
            ("features[3].geometry.coordinates[0]", "area_ring_not_closed")]
        assert body["errors"][1]["message"].startswith("A polygon ring is not closed")
        report = body["report"]
        assert (report["refused"], report["applied"], report["errors"]) == (True, False, 2)
        assert report["issues"][0]["related_code"] == "XX"
    assert await snapshot(db) == before

    chinese = await post_import(client, admin, features)
    assert chinese.json()["title"] == "区域文件未通过校验，未导入任何内容。"
    assert chinese.json()["report"]["issues"][1]["message"].startswith("多边形的环没有闭合")


async def test_gaps_and_overlaps_are_warnings_unless_strict(client, admin, db):
    features = new_town()
    by_code(features, G1)["geometry"] = rect(0, 0, 110, 60)  # into G2, and short of the community's north edge
    before = await snapshot(db)
    strict = await post_import(client, admin, features, "?strict=true")
    assert strict.status_code == 422, strict.text
    assert sorted(e["code"] for e in strict.json()["errors"]) == ["area_gap", "area_overlap"]
    assert await snapshot(db) == before

    lenient = await post_import(client, admin, features)
    assert lenient.status_code == 201, lenient.text
    issues = {i["code"]: i for i in lenient.json()["issues"]}
    assert issues["area_gap"]["area_m2"] == pytest.approx(4000, rel=0.01)
    assert issues["area_overlap"]["related_code"] == G2
    assert await db.fetchval("SELECT count(*) FROM areas WHERE code LIKE 'NT-%'") == 4


async def test_a_re_import_updates_in_place(client, admin, db, ahead_of_the_demo):
    clock = ahead_of_the_demo
    assert (await post_import(client, admin, new_town())).status_code == 201
    first = {code: await area_row(db, code) for code in ("NT-S", "NT-S-C1", G1, G2)}

    clock.advance(hours=1)
    again = new_town()
    by_code(again, "NT-S-C1")["properties"]["name_en"] = "Riverside"
    by_code(again, G1)["geometry"] = rect(0, 0, 150, 100)
    by_code(again, G2)["geometry"] = rect(150, 0, 200, 100)
    reply = await post_import(client, admin, again)
    assert reply.status_code == 200, reply.text
    assert (reply.json()["created"], reply.json()["updated"], reply.json()["unchanged"]) == (0, 3, 1)

    now = {code: await area_row(db, code) for code in first}
    assert all(now[code]["id"] == first[code]["id"] for code in first)
    assert now["NT-S"] == first["NT-S"]
    assert now["NT-S-C1"]["name_en"] == "Riverside"
    assert (now[G1]["area_m2"], now[G2]["area_m2"]) == (pytest.approx(15_000, rel=1e-3), pytest.approx(5_000, rel=1e-3))
    assert now[G1]["bbox"][2] > first[G1]["bbox"][2]
    for code in ("NT-S-C1", G1, G2):
        assert now[code]["updated_at"] == clock.now() and now[code]["created_at"] == first[code]["created_at"]

    # The same file once more changes nothing at all.
    same = await post_import(client, admin, again)
    assert (same.status_code, same.json()["unchanged"]) == (200, 4)
    assert {code: await area_row(db, code) for code in first} == now


async def test_an_area_with_children_cannot_move_but_a_childless_grid_can(client, admin, db):
    assert (await post_import(client, admin, new_town())).status_code == 201
    moved = new_town()
    by_code(moved, "NT-S-C1")["properties"]["parent"] = "ZW-ZWZ"
    before = await snapshot(db)
    reply = await post_import(client, admin, moved)
    assert reply.status_code == 422, reply.text
    assert [e["code"] for e in reply.json()["errors"]] == ["area_moved_with_children"]
    assert await snapshot(db) == before

    grid_only = [by_code(new_town(), G2)]
    grid_only[0]["properties"]["parent"] = "ZW-ZWZ-C02"
    reply = await post_import(client, admin, grid_only)
    assert reply.status_code == 200, reply.text
    assert reply.json()["areas"] == [{"code": G2, "level": "grid", "action": "updated", "changed": ["parent"]}]
    row = await area_row(db, G2)
    assert (row["parent_code"], row["path"]) == ("ZW-ZWZ-C02", "ZW/ZW-ZWZ/ZW-ZWZ-C02/NT-S-C1-G2/")


async def test_an_existing_area_keeps_its_level(client, admin, db):
    features = [copy.deepcopy(by_code(new_town(), G1))]
    features[0]["properties"].update(code=DEMO_GRID, level="community", parent="ZW-ZWZ")
    reply = await post_import(client, admin, features)
    assert (reply.status_code, [e["code"] for e in reply.json()["errors"]]) == (422, ["area_level_changed"])


@pytest.mark.parametrize(("role", "phone", "areas"), [("supervisor", "13955550001", ["ZW"]),
                                                ("grid_member", "13755550001", [DEMO_GRID]),
                                                ("courier", "13955550002", [DEMO_GRID])])
async def test_only_an_admin_may_import(client, login, db, role, phone, areas):
    caller = await login(role, phone, areas)
    before = await snapshot(db)
    reply = await post_import(client, caller, new_town())
    assert (reply.status_code, reply.json()["code"]) == (403, "forbidden")
    anonymous = await client.post(IMPORT, json=collection(new_town()))
    assert (anonymous.status_code, anonymous.json()["code"]) == (401, "unauthorized")
    assert await snapshot(db) == before


@pytest.mark.parametrize(("body", "field"), [
    (b"{\"type\": \"FeatureCollection\", ", "body"),
    (b"\xff\xfe not utf-8", "body"),
    (b"", "body"),
    (b'{"type": "Feature", "properties": {}, "geometry": null}', "type"),
    (b'{"type": "FeatureCollection", "features": []}', "features"),
])
async def test_a_body_that_is_not_a_feature_collection_is_a_422(client, admin, db, body, field):
    reply = await client.post(IMPORT, headers={**admin.headers, "Accept-Language": "en"}, content=body)
    assert reply.status_code == 422, reply.text
    problem = reply.json()
    assert (problem["code"], problem["title"]) == (
        "areas_file_invalid", "The areas file is not a valid GeoJSON FeatureCollection.")
    assert [e["field"] for e in problem["errors"]] == [field]


async def test_a_body_over_the_limit_is_a_413(client, admin, db):
    reply = await client.post(IMPORT, headers=admin.headers, content=b" " * (MAX_IMPORT_BODY + 1))
    assert (reply.status_code, reply.json()["code"]) == (413, "body_too_large")


async def test_a_bad_query_flag_is_a_4xx_with_a_code(client, admin):
    reply = await post_import(client, admin, new_town(), "?strict=perhaps")
    assert reply.status_code in (400, 422) and reply.json()["code"] in ("validation_failed", "malformed_body")


# ── listing ──────────────────────────────────────────────────────────────────────────────────────


async def test_a_supervisor_lists_only_their_subtree_and_an_admin_everything(client, admin, login, db):
    community = await login("supervisor", "13955550010", ["ZW-ZWZ-C02"])
    reply = await client.get(URL, headers=community.headers)
    assert reply.status_code == 200, reply.text
    listed = reply.json()
    names = await db.fetchrow("SELECT name_zh, name_en FROM areas WHERE code = 'ZW-ZWZ-C02'")
    assert listed[0] == {"code": "ZW-ZWZ-C02", "level": "community", "parent_code": "ZW-ZWZ", **names,
                         "has_polygon": True}
    assert {a["code"] for a in listed[1:]} == {f"ZW-ZWZ-C02-G{n:02d}" for n in range(1, len(listed))}
    assert all(a["parent_code"] == "ZW-ZWZ-C02" and a["level"] == "grid" for a in listed[1:])

    assert (await post_import(client, admin, new_town())).status_code == 201
    everything = (await client.get(URL, headers=admin.headers)).json()
    assert len(everything) == 158 and everything[0]["code"] == "ZW"
    new_street = next(a for a in everything if a["code"] == "NT-S")
    assert (new_street["parent_code"], new_street["has_polygon"]) == ("ZW", False)
    # The community supervisor's list did not grow with the new street.
    assert (await client.get(URL, headers=community.headers)).json() == listed


async def test_a_supervisor_without_areas_sees_none_and_others_may_not_list(client, login, db):
    nowhere = await login("supervisor", "13955550011", ["ZW-ZWZ-C05"])
    await db.execute("DELETE FROM member_areas WHERE member_id = $1", nowhere.member_id)
    assert (await client.get(URL, headers=nowhere.headers)).json() == []
    courier = await login("courier", "13955550012", [DEMO_GRID])
    assert (await client.get(URL, headers=courier.headers)).status_code == 403
    assert (await client.get(URL)).status_code == 401


# ── routing follows the import ───────────────────────────────────────────────────────────────────


async def test_routing_picks_up_new_and_moved_polygons(client, admin, db, clock):
    inside_g1, east_of_150 = at(50, 50), at(125, 50)
    async with db.acquire() as conn:
        index = await AREA_INDEX.current(conn)
        assert index.route(**inside_g1).grid_id is None  # open country before the import

        assert (await post_import(client, admin, new_town())).status_code == 201
        ids = {code: await conn.fetchval("SELECT id FROM areas WHERE code = $1", code) for code in (G1, G2)}
        index = await AREA_INDEX.current(conn)
        assert (index.route(**inside_g1).grid_id, index.route(**inside_g1).how) == (ids[G1], "inside")
        assert index.route(**east_of_150).grid_id == ids[G2]

        # Same number of areas, and the test clock is *behind* the demo seed's stamps: the import still
        # moves the version routing watches, so the moved boundary is seen.
        assert clock.now() < await conn.fetchval("SELECT max(updated_at) FROM areas")
        moved = new_town()
        by_code(moved, G1)["geometry"] = rect(0, 0, 150, 100)
        by_code(moved, G2)["geometry"] = rect(150, 0, 200, 100)
        assert (await post_import(client, admin, moved)).status_code == 200
        index = await AREA_INDEX.current(conn)
        assert index.route(**east_of_150).grid_id == ids[G1]


async def test_a_report_in_an_imported_grid_goes_to_that_grid(client, admin, login, db, clock, settings):
    assert (await post_import(client, admin, new_town())).status_code == 201
    courier = await login("courier", "13955550020", [DEMO_GRID])
    reply = await client.post("/api/v1/reports", headers=courier.headers, files=files(meta(clock, **at(150, 30))))
    assert reply.status_code == 201, reply.text
    await run_burst(settings, clock)
    incident = await db.fetchrow("SELECT i.state, a.code FROM incidents i JOIN areas a ON a.id = i.area_id")
    assert (incident["state"], incident["code"]) == ("dispatched", G2)


async def test_both_routes_are_in_the_openapi_schema(client):
    reply = await client.get("/schema/openapi.json")
    assert reply.status_code == 200
    operations = {op["operationId"]: op for path in reply.json()["paths"].values() for op in path.values()}
    assert {"listAreas", "importAreas"} <= operations.keys()
    assert {"201", "422"} <= operations["importAreas"]["responses"].keys()


async def test_a_write_the_database_refuses_after_all_is_a_409_and_nothing_is_kept(client, admin, db, monkeypatch):
    """Defence in depth: should the checks ever miss what the path trigger enforces, no 500 and no half import."""
    from gridrider.domain import area_import

    assert (await post_import(client, admin, new_town())).status_code == 201
    real_plan = area_import.plan_import

    def plan_blind_to_children(features, existing, **kwargs):
        return real_plan(features, [msgspec.structs.replace(a, has_children=False) for a in existing], **kwargs)

    monkeypatch.setattr(area_import, "plan_import", plan_blind_to_children)
    moved = new_town()
    moved.append(feature_under("NT-S-C2", "NT-S"))
    by_code(moved, "NT-S-C1")["properties"]["parent"] = "ZW-ZWZ"
    before = await snapshot(db)
    reply = await post_import(client, admin, moved)
    assert (reply.status_code, reply.json()["code"]) == (409, "areas_import_conflict")
    assert await snapshot(db) == before


def feature_under(code: str, parent: str) -> dict:
    return {"type": "Feature", "geometry": None,
            "properties": {"code": code, "level": "community", "parent": parent, "name_zh": code}}



async def test_the_map_gets_the_polygons_of_the_callers_subtree_only(client, login, admin):
    supervisor = await login("supervisor", "13911117777", ["ZW-ZWZ-C02"])
    reply = await client.get("/api/v1/areas/shapes", params={"level": "grid"}, headers=supervisor.headers)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    codes = [f["properties"]["code"] for f in body["features"]]
    assert body["type"] == "FeatureCollection" and codes and all(c.startswith("ZW-ZWZ-C02-G") for c in codes)
    assert body["features"][0]["geometry"]["type"] in ("Polygon", "MultiPolygon")
    everything = (await client.get("/api/v1/areas/shapes", headers=admin.headers)).json()
    assert {"county", "community", "grid"} <= {f["properties"]["level"] for f in everything["features"]}
    outside = await client.get("/api/v1/areas/shapes", params={"scope": "ZW-ZWZ-C03"}, headers=supervisor.headers)
    assert outside.status_code == 404
    bad = await client.get("/api/v1/areas/shapes", params={"level": "planet"}, headers=supervisor.headers)
    assert bad.status_code == 422
