"""GET /api/v1/incidents.geojson: the inbox's scope and filters as a GeoJSON FeatureCollection (WGS-84, [lon, lat]);
another subtree's incidents never appear."""

import pytest

from tests.api.test_incidents import post_report
from tests.jobs.conftest import run_burst
from tests.open311.conftest import FOREIGN_GRID, GRID, HERE, THERE, north, point_in

PATH = "/api/v1/incidents.geojson"


@pytest.fixture
async def scene(client, db, settings, clock, login, admin):
    rider = await login("courier", "13911110001", [GRID])
    await post_report(client, clock, rider, point=HERE)
    await post_report(client, clock, rider, point=north(HERE, 120), category="missing_manhole_cover")
    await post_report(client, clock, rider, point=point_in("ZW-ZWZ-C02-G01"))
    await post_report(client, clock, rider, point=THERE)
    await run_burst(settings, clock)
    areas = {r["id"]: r["code"] for r in await db.fetch(
        "SELECT i.id, a.code FROM incidents i JOIN areas a ON a.id = i.area_id")}
    return {
        "areas": areas, "rider": rider, "admin": admin,
        "member": await login("grid_member", "13711110001", [GRID]),
        "supervisor": await login("supervisor", "13811110001", ["ZW-ZWZ-C02"]),
        "foreign_supervisor": await login("supervisor", "13811110003", ["ZW-ZWZ-C07"]),
    }


async def geojson(client, caller, **params) -> dict:
    reply = await client.get(PATH, headers=caller.headers, params=params)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("application/geo+json")
    body = reply.json()
    assert body["type"] == "FeatureCollection"
    for feature in body["features"]:
        assert feature["type"] == "Feature" and feature["geometry"]["type"] == "Point"
        assert feature["id"] == feature["properties"]["id"]
    return body


def ids(body: dict) -> set[int]:
    return {f["id"] for f in body["features"]}


async def test_each_caller_sees_exactly_their_subtree(client, db, scene):
    areas = scene["areas"]
    in_grid = {i for i, code in areas.items() if code == GRID}
    in_c02 = {i for i, code in areas.items() if code.startswith("ZW-ZWZ-C02")}
    in_c07 = {i for i, code in areas.items() if code == FOREIGN_GRID}
    assert len(in_grid) == 2 and len(in_c02) == 3 and len(in_c07) == 1
    assert ids(await geojson(client, scene["member"])) == in_grid
    assert ids(await geojson(client, scene["supervisor"])) == in_c02
    assert ids(await geojson(client, scene["foreign_supervisor"])) == in_c07
    assert ids(await geojson(client, scene["admin"])) == set(areas)
    # Naming another subtree's area as a filter is 404, as every scope outside the caller's.
    for caller, area in ((scene["supervisor"], "ZW-ZWZ-C07"), (scene["foreign_supervisor"], "ZW-ZWZ-C02")):
        reply = await client.get("/api/v1/incidents.geojson", params={"area": area}, headers=caller.headers)
        assert (reply.status_code, reply.json()["code"]) == (404, "area_not_found")


async def test_couriers_and_strangers_are_refused(client, db, scene):
    assert (await client.get(PATH, headers=scene["rider"].headers)).status_code == 403
    assert (await client.get(PATH)).status_code == 401


async def test_points_are_wgs84_lon_lat_and_properties_are_the_inbox_items(client, db, scene):
    body = await geojson(client, scene["supervisor"])
    inbox = (await client.get("/api/v1/incidents", headers=scene["supervisor"].headers,
                              params={"limit": 50})).json()["items"]
    assert [f["properties"] for f in body["features"]] == inbox  # same order, same fields
    for feature in body["features"]:
        lat, lon = await db.fetchrow("SELECT lat, lon FROM incidents WHERE id = $1", feature["id"])
        assert feature["geometry"]["coordinates"] == [lon, lat]
    assert body["next_cursor"] is None


async def test_the_inbox_filters_apply(client, db, scene):
    supervisor = scene["supervisor"]
    manhole = await geojson(client, supervisor, category="missing_manhole_cover")
    assert [f["properties"]["category"] for f in manhole["features"]] == ["missing_manhole_cover"]
    assert ids(await geojson(client, supervisor, life_safety="true")) == ids(manhole)
    assert ids(await geojson(client, supervisor, state="accepted")) == set()
    assert len(ids(await geojson(client, supervisor, area=GRID))) == 2


async def test_pages_follow_the_inbox_cursor(client, db, scene):
    seen, cursor = [], None
    while True:
        body = await geojson(client, scene["admin"], limit=1, **({"cursor": cursor} if cursor else {}))
        seen += [f["id"] for f in body["features"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == len(scene["areas"])


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 1001}, {"state": "lost"}, {"cursor": "%%%"},
                                    {"category": "x" * 65}, {"category": "a\x00b"}, {"area": "ZW\x00"}])
async def test_bad_queries_are_4xx_problems(client, db, scene, params):
    reply = await client.get(PATH, headers=scene["admin"].headers, params=params)
    assert 400 <= reply.status_code < 500 and reply.headers["content-type"] == "application/problem+json"
