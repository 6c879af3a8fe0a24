"""An admin edits and adds hazard categories (DESIGN.md §2a); intake and the merge pipeline follow the edits."""

import datetime as dt
import logging

import pytest

from tests.api.test_reports import files, meta
from tests.jobs.conftest import run_burst
from tests.test_scenario import HERE

GRID, STREET = "ZW-ZWZ-C02-G03", "ZW-ZWZ"
URL = "/api/v1/categories"


@pytest.fixture
async def courier(login):
    return await login("courier", "13966661000", [GRID])


async def listed(client, caller, query: str = "") -> dict[str, dict]:
    reply = await client.get(f"{URL}{query}", headers=caller.headers)
    assert reply.status_code == 200, reply.text
    return {c["code"]: c for c in reply.json()}


async def report(client, caller, clock, **changes):
    return await client.post("/api/v1/reports", headers=caller.headers, files=files(meta(clock, **changes)))


def metres_north(point: dict, metres: float) -> dict:
    return {"lat": point["lat"] + metres / 111_320, "lon": point["lon"]}


async def test_an_admin_edits_a_category_and_everyone_sees_it(client, admin, courier, clock, caplog):
    caplog.set_level(logging.INFO, logger="gridrider.api.categories")
    clock.advance(hours=2)
    change = {"name_zh": " 垃圾乱堆 ", "name_en": "garbage heap", "merge_radius_m": 80, "merge_window_hours": 96,
              "weight": 1.25}
    reply = await client.patch(f"{URL}/garbage_pileup", headers=admin.headers, json=change)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert {**change, "name_zh": "垃圾乱堆", "code": "garbage_pileup", "severity": "low"}.items() <= body.items()
    assert dt.datetime.fromisoformat(body["updated_at"]) == clock.now()
    for caller in (admin, courier):
        assert (await listed(client, caller))["garbage_pileup"] == body
    # Recorded: who and which fields, never the values or anyone's personal data.
    [record] = [r for r in caplog.records if r.getMessage() == "categories.updated"]
    assert record.gridrider_context == {
        "code": "garbage_pileup", "actor_id": admin.member_id,
        "fields": ["merge_radius_m", "merge_window_hours", "name_en", "name_zh", "weight"],
    }


async def test_a_patch_that_changes_nothing_writes_nothing(client, admin, clock, caplog):
    caplog.set_level(logging.INFO, logger="gridrider.api.categories")
    before = (await listed(client, admin))["other"]
    clock.advance(hours=1)
    reply = await client.patch(f"{URL}/other", headers=admin.headers, json={"merge_radius_m": 30, "weight": 0.5})
    assert reply.status_code == 200 and reply.json() == before
    assert not [r for r in caplog.records if r.getMessage() == "categories.updated"]


@pytest.mark.parametrize(("role", "phone", "areas"), [("courier", "13966661001", [GRID]),
                                                ("supervisor", "13911111001", [STREET]),
                                                ("grid_member", "13700001001", [GRID])])
async def test_only_an_admin_may_edit_or_add(client, login, db, role, phone, areas):
    caller = await login(role, phone, areas)
    patched = await client.patch(f"{URL}/garbage_pileup", headers=caller.headers, json={"weight": 3.0})
    added = await client.post(URL, headers=caller.headers, json=new_category())
    assert (patched.status_code, added.status_code) == (403, 403)
    assert patched.json()["code"] == "forbidden"
    assert await db.fetchval("SELECT weight::float8 FROM categories WHERE code = 'garbage_pileup'") == 0.8
    assert await db.fetchval("SELECT count(*) FROM categories") == 13
    # Asking for all categories gets a non-admin only the enabled ones.
    await db.execute("UPDATE categories SET enabled = false WHERE code = 'other'")
    assert "other" not in await listed(client, caller, "?all=true")


async def test_nobody_signed_in_may_edit(client, admin):
    assert (await client.patch(f"{URL}/garbage_pileup", json={"weight": 3.0})).status_code == 401


@pytest.mark.parametrize(("change", "field"), [
    ({"merge_radius_m": 4}, "merge_radius_m"),
    ({"merge_radius_m": 501}, "merge_radius_m"),
    ({"merge_radius_m": 50.5}, "merge_radius_m"),
    ({"merge_window_hours": 0}, "merge_window_hours"),
    ({"merge_window_hours": 2161}, "merge_window_hours"),
    ({"weight": 0.09}, "weight"),
    ({"weight": 5.01}, "weight"),
    ({"weight": 1.234}, "weight"),
    ({"weight": "heavy"}, "weight"),
    ({"name_zh": ""}, "name_zh"),
    ({"name_zh": "   "}, "name_zh"),
    ({"name_en": "x" * 41}, "name_en"),
    ({"name_en": None}, "name_en"),
    ({"severity": "urgent"}, "severity"),
    ({"life_safety": "yes"}, "life_safety"),
    ({"enabled": None}, "enabled"),
    ({"colour": "red"}, "colour"),
])
async def test_bad_values_are_refused_with_the_field_named(client, admin, db, change, field):
    reply = await client.patch(f"{URL}/garbage_pileup", headers=admin.headers, json=change)
    assert reply.status_code == 422, reply.text
    assert reply.json()["code"] == "validation_failed"
    assert field in [e["field"] for e in reply.json()["errors"]]
    row = await db.fetchrow("SELECT name_zh, name_en, merge_radius_m, weight::float8 AS w FROM categories "
                            "WHERE code = 'garbage_pileup'")
    assert tuple(row) == ("垃圾堆积", "piled garbage", 50, 0.8)


async def test_the_edges_of_each_range_are_accepted(client, admin):
    for change in ({"merge_radius_m": 5, "merge_window_hours": 1, "weight": 0.1, "name_en": "x"},
                   {"merge_radius_m": 500, "merge_window_hours": 2160, "weight": 5, "name_en": "x" * 40}):
        reply = await client.patch(f"{URL}/garbage_pileup", headers=admin.headers, json=change)
        assert reply.status_code == 200, reply.text
        assert change.items() <= reply.json().items()


async def test_an_unknown_category_is_a_404(client, admin):
    for code in ("no_such_thing", "Not-A-Code", "x" * 64):
        reply = await client.patch(f"{URL}/{code}", headers=admin.headers, json={"weight": 1.0})
        assert (reply.status_code, reply.json()["code"]) == (404, "not_found")


async def test_a_disabled_category_is_refused_at_intake_but_its_reports_stay_readable(client, admin, courier,
                                                                                        clock, db):
    old = await report(client, courier, clock, **HERE)
    assert old.status_code == 201, old.text
    reply = await client.patch(f"{URL}/garbage_pileup", headers=admin.headers, json={"enabled": False})
    assert reply.status_code == 200 and reply.json()["enabled"] is False

    refused = await report(client, courier, clock, **HERE)
    assert refused.status_code == 422
    assert [(e["field"], e["code"]) for e in refused.json()["errors"]] == [("category", "category_disabled")]
    assert await db.fetchval("SELECT count(*) FROM reports") == 1
    mine = await client.get(f"/api/v1/reports/{old.json()['id']}", headers=courier.headers)
    assert (mine.status_code, mine.json()["category"]) == (200, "garbage_pileup")

    # Hidden from riders and from the admin's default list; the admin sees it when asking for all.
    assert "garbage_pileup" not in await listed(client, courier)
    assert "garbage_pileup" not in await listed(client, courier, "?all=true")
    assert "garbage_pileup" not in await listed(client, admin)
    assert (await listed(client, admin, "?all=true"))["garbage_pileup"]["enabled"] is False

    assert (await client.patch(f"{URL}/garbage_pileup", headers=admin.headers, json={"enabled": True})).is_success
    assert (await report(client, courier, clock, **HERE)).status_code == 201


@pytest.mark.parametrize(("radius", "merged"), [(60, True), (30, False)])
async def test_the_pipeline_merges_by_the_edited_radius(client, admin, courier, clock, settings, db, radius, merged):
    reply = await client.patch(f"{URL}/garbage_pileup", headers=admin.headers, json={"merge_radius_m": radius})
    assert reply.status_code == 200, reply.text
    first = await report(client, courier, clock, **HERE)
    await run_burst(settings, clock)
    clock.advance(minutes=5)
    second = await report(client, courier, clock, **metres_north(HERE, 40))
    await run_burst(settings, clock)
    assert (first.status_code, second.status_code) == (201, 201)
    incidents = await db.fetch("SELECT id, incident_id, state FROM reports ORDER BY id")
    assert [r["state"] for r in incidents] == ["processed", "processed"]
    assert (incidents[0]["incident_id"] == incidents[1]["incident_id"]) is merged
    assert await db.fetchval("SELECT count(*) FROM incidents") == (1 if merged else 2)


def new_category(**changes) -> dict:
    body = {"code": "pothole", "name_zh": "路面坑洼", "name_en": "pothole", "severity": "medium",
            "life_safety": False, "merge_radius_m": 40, "merge_window_hours": 168, "weight": 1.1}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


async def test_an_admin_adds_a_category_and_riders_can_report_it(client, admin, courier, clock, db, settings):
    reply = await client.post(URL, headers=admin.headers, json=new_category())
    assert reply.status_code == 201, reply.text
    added = reply.json()
    assert {**new_category(), "enabled": True, "icon": "other"}.items() <= added.items()
    assert added["sort_order"] == 140  # after the last default (130)
    assert dt.datetime.fromisoformat(added["updated_at"]) == clock.now()
    assert (await listed(client, courier))["pothole"] == added

    filed = await report(client, courier, clock, category="pothole", **HERE)
    assert filed.status_code == 201, filed.text
    await run_burst(settings, clock)
    assert await db.fetchval("SELECT category FROM incidents") == "pothole"

    again = await client.post(URL, headers=admin.headers, json=new_category(name_en="another"))
    assert (again.status_code, again.json()["code"]) == (409, "conflict")
    assert await db.fetchval("SELECT name_en FROM categories WHERE code = 'pothole'") == "pothole"


async def test_a_category_can_be_added_disabled_and_in_a_chosen_place(client, admin, courier):
    reply = await client.post(URL, headers=admin.headers,
                              json=new_category(code="sinkhole2", enabled=False, sort_order=5, icon="road-collapse"))
    assert reply.status_code == 201, reply.text
    assert (reply.json()["enabled"], reply.json()["sort_order"], reply.json()["icon"]) == (False, 5, "road-collapse")
    assert "sinkhole2" not in await listed(client, courier)
    assert "sinkhole2" in await listed(client, admin, "?all=true")


@pytest.mark.parametrize(("body", "field"), [
    (new_category(code="Pothole"), "code"),
    (new_category(code="p"), "code"),
    (new_category(code="pot-hole"), "code"),
    (new_category(code="p" * 41), "code"),
    (new_category(severity=...), "severity"),
    (new_category(life_safety=...), "life_safety"),
    (new_category(merge_radius_m=...), "merge_radius_m"),
    (new_category(merge_window_hours=...), "merge_window_hours"),
    (new_category(weight=...), "weight"),
    (new_category(name_zh=...), "name_zh"),
    (new_category(weight=7), "weight"),
    (new_category(icon="<svg>"), "icon"),
    (new_category(extra=1), "extra"),
])
async def test_a_bad_new_category_is_refused_with_the_field_named(client, admin, db, body, field):
    reply = await client.post(URL, headers=admin.headers, json=body)
    assert reply.status_code == 422, reply.text
    assert field in [e["field"] for e in reply.json()["errors"]]
    assert await db.fetchval("SELECT count(*) FROM categories") == 13
