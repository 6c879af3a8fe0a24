"""Incidents through HTTP: the inbox (scope, order, filters, pages), one incident in full, every action,
resolving with a proof photo, what a rider sees nearby, and riders' verifications.

Incidents are made the real way: couriers post reports, a worker burst runs process_report."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import math

import msgspec
import pytest
from shapely.geometry import Point, shape

from gridrider.domain.demo_geography import DEMO_OUTSIDE_GRIDS_POINT, zhangwu_demo_areas
from gridrider.domain.workflow import ACTIONS, allowed_states
from gridrider.jobs.deadlines import run_deadline_pass
from gridrider.jobs.queue import PHOTOS_QUEUE
from tests.api.test_reports import files, meta
from tests.conftest import Caller
from tests.jobs.conftest import run_burst

GRID = "ZW-ZWZ-C02-G03"
OTHER_GRID = "ZW-ZWZ-C07-G08"
C04_GRID = "ZW-ZWZ-C04-G01"
_AREAS = {a.code: shape(a.polygon) for a in zhangwu_demo_areas()}
_P = _AREAS[GRID].representative_point()
HERE = (_P.y, _P.x)
_O = _AREAS[OTHER_GRID].representative_point()
THERE = (_O.y, _O.x)
LAKE = DEMO_OUTSIDE_GRIDS_POINT  # no grid: unrouted, owned by community ZW-ZWZ-C04


def north(point: tuple[float, float], metres: float) -> tuple[float, float]:
    return point[0] + metres / 111_320, point[1]


def east(point: tuple[float, float], metres: float) -> tuple[float, float]:
    return point[0], point[1] + metres / (111_320 * math.cos(math.radians(point[0])))


def at(point: tuple[float, float]) -> dict:
    return {"lat": point[0], "lon": point[1]}


def when(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


# ── helpers: reports, the worker, actions ──────────────────────────────────────────────────────────

async def post_report(client, clock, caller: Caller, point=HERE, photos=(), **changes) -> int:
    reply = await client.post("/api/v1/reports", headers=caller.headers,
                              files=files(meta(clock, **at(point), **changes), list(photos)))
    assert reply.status_code == 201, reply.text
    return reply.json()["id"]


async def incident_of(client, caller: Caller, report_id: int) -> int:
    reply = await client.get(f"/api/v1/reports/{report_id}", headers=caller.headers)
    assert reply.status_code == 200, reply.text
    assert reply.json()["incident_id"] is not None, reply.text
    return reply.json()["incident_id"]


async def make_incidents(client, settings, clock, caller: Caller, *specs: dict, photos_too: bool = False) -> list[int]:
    """One report per spec, then one worker burst (so they are created at the same instant)."""
    reports = [await post_report(client, clock, caller, **spec) for spec in specs]
    await run_burst(settings, clock)
    if photos_too:
        await run_burst(settings, clock, queue=PHOTOS_QUEUE)
    return [await incident_of(client, caller, r) for r in reports]


async def act(client, caller: Caller, incident_id: int, action: str, **body):
    return await client.post(f"/api/v1/incidents/{incident_id}/{action}", headers=caller.headers, json=body)


async def ok(client, caller: Caller, incident_id: int, action: str, **body) -> dict:
    reply = await act(client, caller, incident_id, action, **body)
    assert reply.status_code == 200, (action, reply.text)
    return reply.json()


def proof_parts(photos: list[bytes], note: dict | bytes | None = None, *, content_type="image/jpeg") -> list:
    raw = note if isinstance(note, bytes) else msgspec.json.encode(note if note is not None else {"note": "已清理"})
    parts = [("meta", ("meta.json", raw, "application/json"))]
    return parts + [("photo", (f"proof{i}.jpg", p, content_type)) for i, p in enumerate(photos)]


async def resolve(client, caller: Caller, incident_id: int, photos: list[bytes], note=None, **kwargs):
    return await client.post(f"/api/v1/incidents/{incident_id}/resolve", headers=caller.headers,
                             files=proof_parts(photos, note, **kwargs))


async def detail(client, caller: Caller, incident_id: int) -> dict:
    reply = await client.get(f"/api/v1/incidents/{incident_id}", headers=caller.headers)
    assert reply.status_code == 200, reply.text
    return reply.json()


async def inbox(client, caller: Caller, **params) -> list[dict]:
    """Every page of the caller's inbox, following next_cursor; checks each page's size."""
    limit = params.get("limit", 50)
    items, cursor, pages = [], None, 0
    while True:
        reply = await client.get("/api/v1/incidents", headers=caller.headers,
                                 params={**params, **({"cursor": cursor} if cursor else {})})
        assert reply.status_code == 200, reply.text
        page = reply.json()
        pages += 1
        assert pages < 100, "the cursor does not advance"
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            assert len(page["items"]) <= limit
            return items
        assert len(page["items"]) == limit


async def inbox_ids(client, caller: Caller, **params) -> list[int]:
    return [i["id"] for i in await inbox(client, caller, **params)]


# ── the cast ───────────────────────────────────────────────────────────────────────────────────────

class Cast(msgspec.Struct):
    member: Caller  # grid member of GRID
    colleague: Caller  # another member of GRID
    foreign_member: Caller  # grid member of OTHER_GRID
    c04_member: Caller  # grid member of C04_GRID
    supervisor: Caller  # community ZW-ZWZ-C02 (GRID's)
    c04_supervisor: Caller  # community ZW-ZWZ-C04 (owns the lake)
    foreign_supervisor: Caller  # community ZW-ZWZ-C07 (OTHER_GRID's)
    street_supervisor: Caller  # ZW-ZWZ: the whole town
    rider: Caller
    rider2: Caller
    rider3: Caller
    stranger: Caller  # a courier with nothing to do with anything here


@pytest.fixture
async def cast(login) -> Cast:
    return Cast(
        member=await login("grid_member", "13711110001", [GRID]),
        colleague=await login("grid_member", "13711110002", [GRID]),
        foreign_member=await login("grid_member", "13711110003", [OTHER_GRID]),
        c04_member=await login("grid_member", "13711110004", [C04_GRID]),
        supervisor=await login("supervisor", "13811110001", ["ZW-ZWZ-C02"]),
        c04_supervisor=await login("supervisor", "13811110002", ["ZW-ZWZ-C04"]),
        foreign_supervisor=await login("supervisor", "13811110003", ["ZW-ZWZ-C07"]),
        street_supervisor=await login("supervisor", "13811110004", ["ZW-ZWZ"]),
        rider=await login("courier", "13911110001", [GRID]),
        rider2=await login("courier", "13911110002", [GRID]),
        rider3=await login("courier", "13911110003", [GRID]),
        stranger=await login("courier", "13911110004", [OTHER_GRID]),
    )


def test_the_probe_points_lie_where_the_tests_need_them():
    assert _AREAS[GRID].contains(Point(HERE[1], HERE[0]))
    assert _AREAS[GRID].contains(Point(north(HERE, 40)[1], north(HERE, 40)[0]))
    assert _AREAS[OTHER_GRID].contains(Point(THERE[1], THERE[0]))
    assert not any(_AREAS[c].contains(Point(LAKE[1], LAKE[0])) for c in _AREAS if len(c) == len(GRID))
    assert _AREAS["ZW-ZWZ-C04"].contains(Point(LAKE[1], LAKE[0]))


# ── the inbox ──────────────────────────────────────────────────────────────────────────────────────

@pytest.fixture
async def town(client, settings, clock, cast, street_photos) -> dict[str, int]:
    """Incidents of every kind in GRID, one in OTHER_GRID, one unrouted in the lake (owned by C04).

    Accept deadlines: created at T0 → T0+24h (three of them, a tie); flooding at T0+10m → T0+1h10m
    (life-safety); pole and manhole at T0+20m → T0+24h20m and T0+1h20m.
    """
    t0 = clock.now()
    ids: dict[str, int] = {}
    first = await make_incidents(client, settings, clock, cast.rider, {"category": "garbage_pileup"},
                                 {"category": "streetlight_out"}, {"category": "damaged_charging_pile"},
                                 {"category": "garbage_pileup", "point": THERE},
                                 {"category": "garbage_pileup", "point": LAKE})
    ids.update(zip(["garbage", "streetlight", "charging_pile", "other_grid", "lake"], first, strict=True))
    clock.advance(minutes=10)
    [ids["flooding"]] = await make_incidents(client, settings, clock, cast.rider2, {"category": "flooding"})
    clock.advance(minutes=10)
    ids["pole"], ids["manhole"] = await make_incidents(client, settings, clock, cast.rider3,
                                                       {"category": "damaged_pole"},
                                                       {"category": "missing_manhole_cover"})
    clock.advance(minutes=10)
    ids["rejected"], ids["resolved_a"], ids["resolved_b"] = await make_incidents(
        client, settings, clock, cast.rider, {"category": "other"}, {"category": "illegal_structure"},
        {"category": "falling_object_risk"})
    assert len(set(ids.values())) == len(ids), "every report made its own incident"
    await ok(client, cast.member, ids["garbage"], "accept")  # resolve due T0+30m+7d
    assert (await ok(client, cast.member, ids["rejected"], "reject", reason="out_of_scope"))["state"] == "rejected"
    for name in ("resolved_a", "resolved_b"):
        await ok(client, cast.member, ids[name], "accept")
        assert (await resolve(client, cast.member, ids[name], street_photos[:1])).status_code == 200
    assert clock.now() == t0 + dt.timedelta(minutes=30)
    return ids


# The member's inbox: life-safety first, then the nearest deadline; ties by id; no deadline (resolved) last.
# (Incident ids follow the worker's order, so the tied ones are sorted here.)
GROUPS = [["flooding"], ["manhole"], ["streetlight", "charging_pile"], ["pole"], ["garbage"],
          ["resolved_a", "resolved_b"]]
ORDER = [name for group in GROUPS for name in group]


def ordered(town: dict[str, int], names: list[str] = ORDER) -> list[int]:
    """The expected inbox order of `names`."""
    return [town[n] for group in GROUPS for n in sorted(group, key=town.get) if n in names]


async def test_a_grid_member_sees_only_their_grid_life_safety_first_then_the_nearest_deadline(
    client, clock, cast, town,
):
    items = await inbox(client, cast.member)
    assert [i["id"] for i in items] == ordered(town)
    by_id = {i["id"]: i for i in items}
    assert by_id[town["flooding"]]["life_safety"] and by_id[town["manhole"]]["life_safety"]
    assert not any(by_id[town[n]]["life_safety"] for n in ORDER[2:])
    assert by_id[town["flooding"]]["stage_due_at"] == "2026-11-26T03:10:00Z"  # T0+10m (02:10 UTC) + 1 h
    assert by_id[town["garbage"]]["state"] == "accepted"
    assert when(by_id[town["garbage"]]["stage_due_at"]) == clock.now() + dt.timedelta(days=7)
    for item in items:
        if item["stage_due_at"] is None:
            assert item["state"] == "resolved" and item["seconds_left"] is None
        else:
            assert item["seconds_left"] == (when(item["stage_due_at"]) - clock.now()).total_seconds()
        assert item["area_code"] == GRID and item["overdue"] is False and item["report_count"] == 1
    # A colleague in the same grid sees the same; the other grid's member only theirs; C04's nothing routed.
    assert await inbox_ids(client, cast.colleague) == ordered(town)
    assert await inbox_ids(client, cast.foreign_member) == [town["other_grid"]]
    assert await inbox_ids(client, cast.c04_member) == []
    # A courier has no inbox.
    assert (await client.get("/api/v1/incidents", headers=cast.rider.headers)).status_code == 403


async def test_supervisors_see_their_subtree_with_its_unrouted_incidents_and_nothing_else(client, cast, town, admin):
    mine = ordered(town)
    assert await inbox_ids(client, cast.supervisor) == mine
    assert await inbox_ids(client, cast.c04_supervisor) == [town["lake"]]
    [lake] = await inbox(client, cast.c04_supervisor)
    assert (lake["state"], lake["area_code"]) == ("unrouted", "ZW-ZWZ-C04")
    assert await inbox_ids(client, cast.foreign_supervisor) == [town["other_grid"]]
    everything = await inbox_ids(client, cast.street_supervisor)
    assert sorted(everything) == sorted([*mine, town["lake"], town["other_grid"]])
    assert await inbox_ids(client, admin) == everything
    # area narrows within the caller's scope and never widens it
    assert await inbox_ids(client, cast.street_supervisor, area="ZW-ZWZ-C04") == [town["lake"]]
    assert await inbox_ids(client, cast.street_supervisor, area="ZW-ZWZ-C07") == [town["other_grid"]]
    assert await inbox_ids(client, cast.street_supervisor, area=GRID) == mine
    # an area outside the caller's own (a sibling, an ancestor, an unknown code) is 404, as every scope
    for caller, area in ((cast.supervisor, "ZW-ZWZ-C07"), (cast.supervisor, "ZW-ZWZ"), (cast.member, OTHER_GRID),
                         (cast.member, "NO-SUCH-AREA")):
        reply = await client.get("/api/v1/incidents", params={"area": area}, headers=caller.headers)
        assert (reply.status_code, reply.json()["code"]) == (404, "area_not_found"), area
    # the unrouted one is in the supervisors' dispatch stage; a grid member never sees it
    assert town["lake"] not in await inbox_ids(client, cast.member, state="unrouted")
    assert await inbox_ids(client, cast.street_supervisor, state="unrouted") == [town["lake"]]


async def test_inbox_filters(client, settings, clock, services, cast, town):
    def ids(*names: str) -> list[int]:
        return ordered(town, list(names)) if set(names) <= set(ORDER) else [town[n] for n in names]

    m = cast.member
    assert await inbox_ids(client, m, state="rejected") == ids("rejected")
    assert await inbox_ids(client, m, state="resolved") == ids("resolved_a", "resolved_b")
    assert await inbox_ids(client, m, state=["dispatched", "accepted"]) == ids(*ORDER[:6])
    assert await inbox_ids(client, m, state=["accepted", "rejected"]) == ids("garbage", "rejected")
    assert await inbox_ids(client, m, category="flooding") == ids("flooding")
    assert await inbox_ids(client, m, category="garbage_pileup", state="accepted") == ids("garbage")
    assert await inbox_ids(client, m, category="garbage_pileup", state="dispatched") == []
    assert await inbox_ids(client, m, category="no_such_category") == []
    assert await inbox_ids(client, m, life_safety="true") == ids("flooding", "manhole")
    assert await inbox_ids(client, m, life_safety="false") == ids(*ORDER[2:])
    assert await inbox_ids(client, m, area=GRID, life_safety="true") == ids("flooding", "manhole")
    assert await inbox_ids(client, m, overdue="true") == []
    assert await inbox_ids(client, m, overdue="false") == ids(*ORDER)

    # Two hours on, the life-safety accept deadlines (T0+1h10m, T0+1h20m) have passed; the deadline pass
    # (the worker's cron) marks them.
    clock.advance(hours=2)
    await run_deadline_pass(services)
    assert await inbox_ids(client, m, overdue="true") == ids("flooding", "manhole")
    assert await inbox_ids(client, m, overdue="false") == ids(*ORDER[2:])
    assert await inbox_ids(client, m, overdue="true", life_safety="false") == []
    flooding = (await inbox(client, m, category="flooding"))[0]
    assert flooding["overdue"] is True and flooding["seconds_left"] == -80 * 60  # due T0+1h10m, now T0+2h30m
    assert await inbox_ids(client, cast.supervisor, overdue="true", state="dispatched") == ids("flooding", "manhole")

    reply = await client.get("/api/v1/incidents", headers=m.headers, params={"state": "lost"})
    assert reply.status_code == 422 and reply.json()["errors"][0]["field"] == "state"


@pytest.mark.parametrize("limit", [1, 2, 3])
async def test_pages_follow_one_another_without_gaps_or_repeats(client, cast, town, limit):
    whole = await inbox_ids(client, cast.street_supervisor)
    assert len(whole) == 10
    paged = await inbox_ids(client, cast.street_supervisor, limit=limit)
    assert paged == whole
    assert await inbox_ids(client, cast.member, limit=limit) == ordered(town)
    # Pages over rows without any deadline (rejected, resolved: the same sort key) too.
    assert await inbox_ids(client, cast.member, limit=limit, state=["resolved", "rejected"]) == sorted(
        [town["rejected"], town["resolved_a"], town["resolved_b"]])


async def test_three_pages_of_an_inbox(client, cast, town):
    pages, cursor = [], None
    while True:
        reply = await client.get("/api/v1/incidents", headers=cast.member.headers,
                                 params={"limit": 3, **({"cursor": cursor} if cursor else {})})
        assert reply.status_code == 200
        pages.append([i["id"] for i in reply.json()["items"]])
        cursor = reply.json()["next_cursor"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [3, 3, 2]
    flat = [i for p in pages for i in p]
    assert flat == ordered(town) and len(set(flat)) == len(flat)


def _b64(value) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(value)).decode().rstrip("=")


@pytest.mark.parametrize("params", [
    {"limit": 0}, {"limit": 1000}, {"limit": -1}, {"limit": "many"}, {"cursor": "garbage"},
    {"cursor": "%%%"}, {"cursor": "x" * 500}, {"cursor": _b64([True])}, {"cursor": _b64({"a": 1})},
    {"cursor": _b64([True, 5, 1])}, {"cursor": _b64([True, "not a time", 1])},
    {"cursor": _b64([True, "2026-11-26T02:00:00+00:00", 10**30])},
    {"cursor": _b64([True, "2026-11-26T02:00:00+00:00", "x"])},
    {"cursor": _b64([True, "2026-11-26T02:00:00", 1])},  # no time zone
    {"overdue": "maybe"}, {"life_safety": "2"}, {"state": ["dispatched"] * 9}, {"area": "x" * 200},
])
async def test_malformed_inbox_queries_are_4xx(client, cast, params):
    reply = await client.get("/api/v1/incidents", headers=cast.member.headers, params=params)
    assert 400 <= reply.status_code < 500 or reply.status_code == 200, reply.text
    assert reply.status_code != 200 or reply.json()["items"] == []
    assert reply.headers["content-type"].startswith("application/problem+json") or reply.status_code == 200


@pytest.mark.parametrize("params", [
    {"lat": 999, "lon": 122.5}, {"lat": 42.39, "lon": 999}, {"lat": "nan", "lon": 122.5},
    {"lat": 42.39, "lon": "inf"}, {"lat": "north", "lon": 122.5}, {"lat": 42.39}, {},
])
async def test_malformed_nearby_queries_are_4xx(client, cast, params):
    reply = await client.get("/api/v1/incidents/nearby", headers=cast.rider.headers, params=params)
    assert 400 <= reply.status_code < 500, reply.text


@pytest.mark.parametrize("path", ["/api/v1/incidents/0", "/api/v1/incidents/-1", "/api/v1/incidents/abc",
                                  f"/api/v1/incidents/{2**63}", f"/api/v1/incidents/{10**30}"])
async def test_malformed_incident_ids_are_4xx(client, cast, path):
    reply = await client.get(path, headers=cast.member.headers)
    assert 400 <= reply.status_code < 500, reply.text
    reply = await client.post(f"{path}/accept", headers=cast.member.headers, json={})
    assert 400 <= reply.status_code < 500, reply.text


# ── one incident in full ───────────────────────────────────────────────────────────────────────────

async def test_detail_shows_pseudonyms_masked_or_whole_phones_photos_stages_and_events(
    client, settings, clock, cast, street_photos,
):
    first = await post_report(client, clock, cast.rider, photos=street_photos[:1], note="井边垃圾")
    await run_burst(settings, clock)
    clock.advance(minutes=5)
    second = await post_report(client, clock, cast.rider2, point=north(HERE, 20), photos=street_photos[1:2])
    await run_burst(settings, clock)
    await run_burst(settings, clock, queue=PHOTOS_QUEUE)
    incident_id = await incident_of(client, cast.rider, first)
    assert await incident_of(client, cast.rider2, second) == incident_id  # corroborated, not a new incident

    seen = await detail(client, cast.member, incident_id)
    assert (seen["state"], seen["cycle"], seen["report_count"], seen["area_code"]) == ("dispatched", 1, 2, GRID)
    assert [r["id"] for r in seen["reports"]] == [first, second]
    for report, rider in zip(seen["reports"], [cast.rider, cast.rider2], strict=True):
        assert report["reporter"].startswith("骑手-")
        assert report["reporter_phone"] == rider.phone[:3] + "****" + rider.phone[-4:]
    assert seen["reports"][0]["reporter"] != seen["reports"][1]["reporter"]
    text = str(seen)
    assert cast.rider.phone not in text and cast.rider2.phone not in text and "骑手 " not in text
    # photos: one per report, ready, behind signed URLs that work without a Bearer header
    assert [(p["role"], p["report_id"], p["state"]) for p in seen["photos"]] == [
        ("report", first, "ready"), ("report", second, "ready")]
    for photo in seen["photos"]:
        for variant in ("thumb_url", "display_url"):
            url = photo[variant]
            assert url.startswith(f"/api/v1/photos/{photo['id']}/") and "sig=" in url and "exp=" in url
            image = await client.get(url)
            assert image.status_code == 200 and image.headers["content-type"].startswith("image/")
            assert image.headers["x-content-type-options"] == "nosniff"
        tampered = await client.get(photo["thumb_url"].replace("sig=", "sig=0"))
        assert tampered.status_code in (403, 404)
    # stages and time left: created at T0 (routed, so dispatch was met at creation), accept due T0+24h
    stages = {s["stage"]: s for s in seen["stages"]}
    t0 = clock.now() - dt.timedelta(minutes=5)
    assert when(stages["dispatch"]["done_at"]) == t0
    assert when(stages["accept"]["due_at"]) == t0 + dt.timedelta(hours=24) and stages["accept"]["done_at"] is None
    assert stages["resolve"]["due_at"] is None
    assert when(seen["stage_due_at"]) == t0 + dt.timedelta(hours=24)
    assert seen["seconds_left"] == 24 * 3600 - 5 * 60
    assert seen["events"][0]["kind"] == "created"

    # The supervisor sees the whole phone; after an accept the stages move on and the events grow.
    assert [r["reporter_phone"] for r in (await detail(client, cast.supervisor, incident_id))["reports"]] == [
        cast.rider.phone, cast.rider2.phone]
    assert [r["reporter_phone"] for r in (await detail(client, cast.street_supervisor, incident_id))["reports"]] \
        == [cast.rider.phone, cast.rider2.phone]
    clock.advance(hours=1)
    await ok(client, cast.member, incident_id, "accept")
    seen = await detail(client, cast.colleague, incident_id)
    stages = {s["stage"]: s for s in seen["stages"]}
    assert when(stages["accept"]["done_at"]) == clock.now()
    assert when(stages["resolve"]["due_at"]) == clock.now() + dt.timedelta(days=7)
    assert seen["seconds_left"] == 7 * 86400 and seen["state"] == "accepted"
    assert [e["kind"] for e in seen["events"]][-1] == "accept"
    assert seen["events"][-1]["actor"].startswith("网格员-")
    # an unknown incident is 404
    missing = await client.get("/api/v1/incidents/999999", headers=cast.supervisor.headers)
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")


async def test_a_courier_sees_their_own_incident_but_not_other_riders(client, settings, clock, cast, street_photos):
    first = await post_report(client, clock, cast.rider, photos=street_photos[:1])
    second = await post_report(client, clock, cast.rider2, point=north(HERE, 20), photos=street_photos[1:2],
                               note="我也看到了")
    await run_burst(settings, clock)
    await run_burst(settings, clock, queue=PHOTOS_QUEUE)
    incident_id = await incident_of(client, cast.rider, first)
    await ok(client, cast.member, incident_id, "accept")

    mine = await detail(client, cast.rider, incident_id)
    assert mine["report_count"] == 2 and mine["state"] == "accepted"
    assert [r["id"] for r in mine["reports"]] == [first]
    assert [p["report_id"] for p in mine["photos"]] == [first]
    assert mine["events"] == [] and mine["verifications"] == []
    assert cast.rider2.phone[-4:] not in str(mine) and "我也看到了" not in str(mine)
    theirs = await detail(client, cast.rider2, incident_id)
    assert [r["id"] for r in theirs["reports"]] == [second]
    assert [p["report_id"] for p in theirs["photos"]] == [second]
    # a courier who reported nothing here: 404, even though they could verify it nearby
    reply = await client.get(f"/api/v1/incidents/{incident_id}", headers=cast.rider3.headers)
    assert reply.status_code == 404


# ── scope: a foreign object answers 404 ────────────────────────────────────────────────────────────

def _body_for(action: str, target: int) -> dict:
    return {"reason": "not_a_hazard", "note": "x", "grid_code": OTHER_GRID, "target_incident_id": target}


async def test_foreign_callers_get_404_for_detail_and_every_action(client, settings, clock, cast, street_photos):
    incident_id, target = await make_incidents(client, settings, clock, cast.rider, {"category": "garbage_pileup"},
                                               {"category": "garbage_pileup", "point": north(HERE, 200)})
    missing = 10**6
    for caller, role in [(cast.foreign_member, "grid_member"), (cast.c04_member, "grid_member"),
                         (cast.foreign_supervisor, "supervisor"), (cast.c04_supervisor, "supervisor"),
                         (cast.stranger, "courier"), (cast.rider2, "courier")]:
        for path in (incident_id, missing):
            reply = await client.get(f"/api/v1/incidents/{path}", headers=caller.headers)
            assert reply.status_code == 404, reply.text
        for action in ACTIONS:
            if action == "resolve":
                continue
            expected = 404 if allowed_states(action, role) else 403
            for path in (incident_id, missing):  # the same answer whether the incident exists or not
                reply = await act(client, caller, path, action, **_body_for(action, target))
                assert reply.status_code == expected, (role, action, reply.text)
        reply = await resolve(client, caller, incident_id, street_photos[:1])
        assert reply.status_code == (404 if role == "grid_member" else 403), reply.text
    # nothing changed
    seen = await detail(client, cast.member, incident_id)
    assert (seen["state"], seen["area_code"], seen["photos"]) == ("dispatched", GRID, [])
    assert [e["kind"] for e in seen["events"]] == ["created"]


async def test_resolving_an_incident_that_does_not_exist_is_404(client, settings, clock, cast, street_photos):
    reply = await resolve(client, cast.member, 10**6, street_photos[:1])
    assert reply.status_code == 404, reply.text


async def test_a_foreign_grid_member_cannot_resolve_even_an_accepted_incident(
    client, settings, clock, cast, street_photos,
):
    [incident_id] = await make_incidents(client, settings, clock, cast.rider, {})
    await ok(client, cast.member, incident_id, "accept")
    reply = await resolve(client, cast.foreign_member, incident_id, street_photos[:1])
    assert reply.status_code == 404, reply.text
    await run_burst(settings, clock, queue=PHOTOS_QUEUE)
    seen = await detail(client, cast.member, incident_id)
    assert seen["state"] == "accepted" and seen["photos"] == []


# ── actions ────────────────────────────────────────────────────────────────────────────────────────

def _field(reply) -> str:
    return reply.json()["errors"][0]["field"]


async def test_every_action_answers_with_the_new_state(client, settings, clock, cast, street_photos):
    [a] = await make_incidents(client, settings, clock, cast.rider, {"category": "garbage_pileup"})
    m, sup = cast.member, cast.supervisor

    # who may not, what does not exist, what cannot happen now
    reply = await act(client, cast.rider, a, "accept")
    assert (reply.status_code, reply.json()["code"]) == (403, "forbidden")
    reply = await act(client, m, a, "dispatch", grid_code=GRID)
    assert (reply.status_code, reply.json()["code"]) == (403, "forbidden")
    assert (await act(client, m, a, "frobnicate")).status_code == 404
    assert (await act(client, m, a, "close")).status_code == 404  # automatic only
    for action, body in [("request_complex", {"reason": "太大"}), ("reopen", {}), ("dismiss_appeal", {"reason": "x"})]:
        reply = await act(client, m if action == "request_complex" else sup, a, action, **body)
        assert (reply.status_code, reply.json()["code"]) == (409, "invalid_transition"), (action, reply.text)
    reply = await act(client, m, a, "reject", reason="because")
    assert (reply.status_code, _field(reply)) == (422, "reason")
    reply = await act(client, m, a, "reject")
    assert (reply.status_code, _field(reply)) == (422, "reason")
    reply = await act(client, m, a, "transfer", grid_code="ZW-NOWHERE")
    assert (reply.status_code, _field(reply)) == (422, "grid_code")
    reply = await act(client, m, a, "transfer")
    assert (reply.status_code, _field(reply)) == (422, "grid_code")
    reply = await act(client, m, a, "transfer", grid_code="ZW-ZWZ-C02")  # a community, not a grid
    assert (reply.status_code, _field(reply)) == (422, "grid_code")
    reply = await act(client, m, a, "accept", colour="red")  # unknown field
    assert reply.status_code == 422, reply.text
    reply = await client.post(f"/api/v1/incidents/{a}/accept", headers=m.headers, content=b"{not json")
    assert 400 <= reply.status_code < 500, reply.text
    reply = await act(client, m, a, "merge", target_incident_id=a)
    assert (reply.status_code, _field(reply)) == (422, "target_incident_id")

    # the happy path through every state
    done = await ok(client, m, a, "accept")
    assert (done["id"], done["state"], done["cycle"]) == (a, "accepted", 1)
    reply = await act(client, cast.colleague, a, "accept")
    assert (reply.status_code, reply.json()["code"]) == (409, "invalid_transition")
    reply = await act(client, m, a, "transfer", grid_code=OTHER_GRID)  # only before accepting
    assert (reply.status_code, reply.json()["code"]) == (409, "invalid_transition")
    reply = await act(client, m, a, "request_complex")
    assert (reply.status_code, _field(reply)) == (422, "reason")
    assert (await ok(client, m, a, "request_complex", reason="需要施工队"))["complex_state"] == "requested"
    assert (await ok(client, sup, a, "decline_complex", reason="先处理"))["complex_state"] == "declined"
    assert (await ok(client, m, a, "request_complex", reason="确实需要"))["complex_state"] == "requested"
    done = await ok(client, sup, a, "approve_complex")
    assert (done["state"], done["complex_state"]) == ("accepted", "approved")
    seen = await detail(client, m, a)
    # accepted Thu 2026-11-26 → day 1 Fri 11-27 → 15th working day Thu 12-17, 18:00 Shanghai
    assert seen["stage_due_at"] == "2026-12-17T10:00:00Z" and seen["complex_reason"] == "确实需要"
    reply = await act(client, sup, a, "approve_complex")
    assert (reply.status_code, reply.json()["code"]) == (409, "invalid_transition")

    reply = await resolve(client, m, a, street_photos[2:3])
    assert reply.status_code == 200, reply.text
    assert (reply.json()["state"], reply.json()["cycle"]) == ("resolved", 1)
    reply = await resolve(client, m, a, street_photos[2:3])
    assert (reply.status_code, reply.json()["code"]) == (409, "invalid_transition")
    done = await ok(client, sup, a, "reopen", note="没修好")
    assert (done["state"], done["cycle"], done["complex_state"]) == ("dispatched", 2, "none")
    done = await ok(client, m, a, "reject", reason="not_a_hazard", note="不是隐患")
    assert done["state"] == "rejected"
    reply = await act(client, cast.rider2, a, "appeal", reason="是隐患")  # not the first reporter
    assert reply.status_code == 404
    done = await ok(client, cast.rider, a, "appeal", reason="确实有垃圾")
    assert (done["state"], done["appeal_state"]) == ("rejected", "pending")
    reply = await act(client, cast.rider, a, "appeal", reason="再申诉")
    assert (reply.status_code, reply.json()["code"]) == (409, "invalid_transition")
    done = await ok(client, sup, a, "uphold_appeal", reason="核实属实")
    assert (done["state"], done["cycle"], done["appeal_state"]) == ("dispatched", 3, "none")
    done = await ok(client, sup, a, "reject", reason="cannot_locate")
    assert done["state"] == "rejected"
    await ok(client, cast.rider, a, "appeal")
    reply = await act(client, sup, a, "dismiss_appeal")
    assert (reply.status_code, _field(reply)) == (422, "reason")
    done = await ok(client, sup, a, "dismiss_appeal", reason="位置无法核实")
    assert (done["state"], done["appeal_state"]) == ("rejected", "dismissed")
    kinds = [e["kind"] for e in (await detail(client, sup, a))["events"]]
    assert kinds == ["created", "accept", "request_complex", "decline_complex", "request_complex", "approve_complex",
                     "resolve", "reopen", "reject", "appeal", "uphold_appeal", "reject", "appeal", "dismiss_appeal"]


async def test_transfer_dispatch_and_merge(client, settings, clock, cast):
    a, b, c, lake = await make_incidents(
        client, settings, clock, cast.rider, {"category": "streetlight_out"},
        {"category": "streetlight_out", "point": north(HERE, 40)}, {"category": "flooding", "point": north(HERE, 40)},
        {"category": "streetlight_out", "point": LAKE})
    assert len({a, b, c, lake}) == 4

    # merge: into another open incident of the same category the caller can see
    reply = await act(client, cast.member, a, "merge", target_incident_id=c)  # another category
    assert (reply.status_code, _field(reply)) == (422, "target_incident_id")
    reply = await act(client, cast.member, a, "merge", target_incident_id=lake)  # not theirs to see
    assert (reply.status_code, _field(reply)) == (422, "target_incident_id")
    reply = await act(client, cast.member, a, "merge", target_incident_id=10**6)
    assert (reply.status_code, _field(reply)) == (422, "target_incident_id")
    reply = await act(client, cast.member, a, "merge")
    assert (reply.status_code, _field(reply)) == (422, "target_incident_id")
    done = await ok(client, cast.member, a, "merge", target_incident_id=b)
    assert done["state"] == "merged"
    seen = await detail(client, cast.member, a)
    assert (seen["state"], seen["merged_into_id"]) == ("merged", b)
    into = await detail(client, cast.member, b)
    assert into["report_count"] == 2 and len(into["reports"]) == 2
    reply = await act(client, cast.member, b, "merge", target_incident_id=a)  # a is no longer open
    assert (reply.status_code, _field(reply)) == (422, "target_incident_id")
    # the rider now finds their report in b
    assert [r["id"] for r in (await detail(client, cast.rider, b))["reports"]] != []

    # transfer: a grid member hands over to any grid; it leaves their inbox and reaches the other grid
    done = await ok(client, cast.member, c, "transfer", grid_code=OTHER_GRID, note="不归我们")
    assert done["state"] == "dispatched"
    assert (await client.get(f"/api/v1/incidents/{c}", headers=cast.member.headers)).status_code == 404
    assert c in await inbox_ids(client, cast.foreign_member)
    assert (await detail(client, cast.foreign_supervisor, c))["area_code"] == OTHER_GRID
    # the supervisor of the street transfers it back (within their subtree); C02's supervisor no longer sees it
    assert (await act(client, cast.supervisor, c, "transfer", grid_code=GRID)).status_code == 404
    done = await ok(client, cast.street_supervisor, c, "transfer", grid_code=GRID)
    assert done["state"] == "dispatched"
    assert (await detail(client, cast.member, c))["area_code"] == GRID

    # dispatch: the unrouted incident, by its supervisors, to a grid in their subtree
    reply = await act(client, cast.c04_supervisor, lake, "dispatch", grid_code=GRID)  # outside C04
    assert (reply.status_code, _field(reply)) == (422, "grid_code")
    reply = await act(client, cast.c04_supervisor, lake, "dispatch")
    assert (reply.status_code, _field(reply)) == (422, "grid_code")
    reply = await act(client, cast.supervisor, lake, "dispatch", grid_code=GRID)
    assert reply.status_code == 404
    done = await ok(client, cast.c04_supervisor, lake, "dispatch", grid_code=C04_GRID)
    assert done["state"] == "dispatched"
    assert await inbox_ids(client, cast.c04_member) == [lake]
    reply = await act(client, cast.c04_supervisor, lake, "dispatch", grid_code=C04_GRID)
    assert (reply.status_code, reply.json()["code"]) == (409, "invalid_transition")


async def test_transfer_targets_are_the_nearest_grids_the_caller_may_hand_to(client, settings, clock, cast):
    (a,) = await make_incidents(client, settings, clock, cast.rider, {"category": "streetlight_out"})
    seen = await detail(client, cast.member, a)

    def targets_of(caller: Caller):
        return client.get(f"/api/v1/incidents/{a}/transfer-targets", headers=caller.headers)

    reply = await targets_of(cast.member)
    assert reply.status_code == 200
    targets = reply.json()
    # The twelve nearest grids by distance to their bounding boxes, worked out here from the demo polygons,
    # never the grid that has it now, each with its names.
    def metres(area) -> float:
        min_lon, min_lat, max_lon, max_lat = shape(area.polygon).bounds
        dx = max(min_lon - seen["lon"], 0, seen["lon"] - max_lon) * 111_320 * math.cos(math.radians(seen["lat"]))
        dy = max(min_lat - seen["lat"], 0, seen["lat"] - max_lat) * 111_320
        return math.hypot(dx, dy)
    grids = sorted((round(metres(area)), area.code) for area in zhangwu_demo_areas()
                   if area.level == "grid" and area.code != GRID)
    assert [(t["distance_m"], t["code"]) for t in targets] == grids[:12]
    assert all(t["name_zh"] and t["name_en"] for t in targets)
    # A community's supervisor is offered only grids of their subtree, as the transfer itself allows.
    offered = [t["code"] for t in (await targets_of(cast.supervisor)).json()]
    assert offered and all(code.startswith("ZW-ZWZ-C02-") for code in offered)
    # Another grid's member, a rider, an incident that does not exist.
    assert (await targets_of(cast.foreign_member)).status_code == 404
    assert (await targets_of(cast.rider)).status_code == 403
    missing = await client.get("/api/v1/incidents/999999999/transfer-targets", headers=cast.member.headers)
    assert missing.status_code == 404
    # What is offered is accepted.
    done = await ok(client, cast.member, a, "transfer", grid_code=targets[0]["code"])
    assert done["state"] == "dispatched"


# ── resolve with a proof photo ─────────────────────────────────────────────────────────────────────

async def test_resolving_with_a_real_proof_photo(client, settings, clock, cast, street_photos):
    [a] = await make_incidents(client, settings, clock, cast.rider, {}, photos_too=True)
    reply = await resolve(client, cast.member, a, street_photos[3:4])  # not accepted yet
    assert (reply.status_code, reply.json()["code"]) == (409, "invalid_transition")
    await ok(client, cast.member, a, "accept")

    reply = await resolve(client, cast.member, a, [])
    assert (reply.status_code, _field(reply)) == (422, "photo")
    reply = await resolve(client, cast.member, a, street_photos[:4])
    assert reply.status_code == 422
    reply = await resolve(client, cast.member, a, [b"%PDF-1.4 not a photo at all"])
    assert 400 <= reply.status_code < 500, reply.text
    reply = await resolve(client, cast.member, a, [b"<svg xmlns='http://www.w3.org/2000/svg'/>"],
                          content_type="image/svg+xml")
    assert 400 <= reply.status_code < 500, reply.text
    reply = await resolve(client, cast.member, a, [street_photos[0][:200]])  # not even a readable JPEG header
    assert 400 <= reply.status_code < 500, reply.text
    for bad_meta in ({"note": 5}, {"colour": "red"}, b"[1, 2]", b"{not json", {"note": "x" * 501}):
        reply = await resolve(client, cast.member, a, street_photos[3:4], note=bad_meta)
        assert 400 <= reply.status_code < 500, (bad_meta, reply.text)
    reply = await client.post(f"/api/v1/incidents/{a}/resolve", headers=cast.member.headers,
                              json={"note": "no multipart"})
    assert 400 <= reply.status_code < 500
    assert (await detail(client, cast.member, a))["state"] == "accepted"

    reply = await resolve(client, cast.member, a, street_photos[3:5], note={"note": "已清理干净"})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["state"], body["cycle"], len(body["proof_photo_ids"])) == ("resolved", 1, 2)
    await run_burst(settings, clock)
    await run_burst(settings, clock, queue=PHOTOS_QUEUE)
    seen = await detail(client, cast.member, a)
    assert seen["state"] == "resolved"
    proofs = [p for p in seen["photos"] if p["role"] == "proof"]
    assert [p["id"] for p in proofs] == body["proof_photo_ids"]
    assert all(p["state"] == "ready" and p["report_id"] is None for p in proofs)
    image = await client.get(proofs[0]["display_url"])
    assert image.status_code == 200 and image.headers["content-type"].startswith("image/")
    resolve_event = next(e for e in seen["events"] if e["kind"] == "resolve")
    assert resolve_event["data"]["note"] == "已清理干净"
    # the rider sees the after-photo too
    assert [p["id"] for p in (await detail(client, cast.rider, a))["photos"] if p["role"] == "proof"] == \
        body["proof_photo_ids"]
    stages = {s["stage"]: s for s in seen["stages"]}
    assert when(stages["resolve"]["done_at"]) == clock.now()


async def test_a_proof_photo_that_cannot_be_decoded_fails_alone(client, settings, clock, cast, street_photos):
    # Decodability is not checked at the door (DESIGN §2): the header reads, the pixels do not.
    [a] = await make_incidents(client, settings, clock, cast.rider, {})
    await ok(client, cast.member, a, "accept")
    reply = await resolve(client, cast.member, a, [street_photos[0][:20000]])
    assert reply.status_code == 200, reply.text
    await run_burst(settings, clock, queue=PHOTOS_QUEUE)
    seen = await detail(client, cast.member, a)
    assert seen["state"] == "resolved"
    assert [(p["role"], p["state"], p["display_url"]) for p in seen["photos"]] == [("proof", "failed", None)]


async def test_two_members_accepting_at_once_one_wins(client, settings, clock, cast):
    [a] = await make_incidents(client, settings, clock, cast.rider, {})
    replies = await asyncio.gather(act(client, cast.member, a, "accept"), act(client, cast.colleague, a, "accept"))
    assert sorted(r.status_code for r in replies) == [200, 409]
    assert [e["kind"] for e in (await detail(client, cast.member, a))["events"]].count("accept") == 1


# ── nearby and verification ────────────────────────────────────────────────────────────────────────

async def nearby(client, caller: Caller, point) -> list[dict]:
    reply = await client.get("/api/v1/incidents/nearby", headers=caller.headers, params=at(point))
    assert reply.status_code == 200, reply.text
    return reply.json()


async def verify(client, caller: Caller, incident_id: int, answer: str, point):
    return await client.post(f"/api/v1/incidents/{incident_id}/verifications", headers=caller.headers,
                             json={"answer": answer, **at(point)})


async def test_nearby_shows_open_incidents_within_300_m(client, settings, clock, cast, street_photos):
    [a] = await make_incidents(client, settings, clock, cast.rider, {"photos": street_photos[:1]}, photos_too=True)
    [item] = await nearby(client, cast.stranger, north(HERE, 250))
    assert item["id"] == a and item["state"] == "dispatched" and item["answers"] == ["still_there", "gone"]
    assert 245 <= item["distance_m"] <= 255
    assert (item["lat"], item["lon"]) == pytest.approx(HERE, abs=1e-5)  # for the map link
    assert item["thumb_url"].startswith("/api/v1/photos/") and "sig=" in item["thumb_url"]
    assert set(item) >= {"category", "category_zh", "life_safety"} and "reports" not in item
    assert await nearby(client, cast.stranger, north(HERE, 400)) == []
    assert await nearby(client, cast.stranger, east(HERE, 400)) == []
    assert [i["id"] for i in await nearby(client, cast.stranger, east(HERE, 290))] == [a]
    # grid members and supervisors use the inbox
    reply = await client.get("/api/v1/incidents/nearby", headers=cast.member.headers, params=at(HERE))
    assert reply.status_code == 403
    # a rejected incident is no longer listed
    await ok(client, cast.member, a, "reject", reason="out_of_scope")
    assert await nearby(client, cast.stranger, HERE) == []


async def test_verification_distance_once_per_cycle_and_reopen_on_two_not_fixed(
    client, settings, clock, cast, street_photos,
):
    [a] = await make_incidents(client, settings, clock, cast.rider, {})
    reply = await verify(client, cast.stranger, a, "still_there", north(HERE, 350))
    assert (reply.status_code, reply.json()["code"]) == (422, "too_far_away")
    assert reply.json()["errors"][0]["code"] == "too_far_away"
    reply = await verify(client, cast.stranger, a, "still_there", north(HERE, 100))
    assert reply.status_code == 201, reply.text
    assert reply.json()["reopened"] is False and 95 <= reply.json()["distance_m"] <= 105
    reply = await verify(client, cast.stranger, a, "gone", north(HERE, 10))
    assert (reply.status_code, reply.json()["code"]) == (409, "already_answered")
    reply = await verify(client, cast.rider2, a, "fixed", HERE)  # not resolved yet
    assert (reply.status_code, reply.json()["code"]) == (409, "invalid_transition")
    reply = await verify(client, cast.rider2, a, "not_fixed", HERE)
    assert reply.status_code == 409
    reply = await verify(client, cast.rider2, a, "probably", HERE)
    assert (reply.status_code, _field(reply)) == (422, "answer")
    for bad in ({"answer": "gone", "lat": 999, "lon": 1}, {"answer": "gone", "lat": "x", "lon": 1},
                {"answer": "gone", "lat": 42.0}, {"answer": "gone", "lat": 42.0, "lon": 122.0, "x": 1}):
        reply = await client.post(f"/api/v1/incidents/{a}/verifications", headers=cast.rider2.headers, json=bad)
        assert 400 <= reply.status_code < 500, (bad, reply.text)
    reply = await verify(client, cast.member, a, "gone", HERE)  # only couriers verify
    assert reply.status_code == 403
    reply = await verify(client, cast.rider2, 10**6, "gone", HERE)
    assert reply.status_code == 404
    # nearby offers the answers a rider may still give: none once they answered in this cycle
    assert [(i["id"], i["answers"]) for i in await nearby(client, cast.stranger, HERE)] == [(a, [])]
    assert [(i["id"], i["answers"]) for i in await nearby(client, cast.rider2, HERE)] == [
        (a, ["still_there", "gone"])]

    await ok(client, cast.member, a, "accept")
    assert (await resolve(client, cast.member, a, street_photos[:1])).status_code == 200
    [item] = await nearby(client, cast.rider2, north(HERE, 50))
    assert (item["state"], item["answers"]) == ("resolved", ["fixed", "not_fixed"])
    reply = await verify(client, cast.rider2, a, "still_there", HERE)  # an open-state answer after resolution
    assert (reply.status_code, reply.json()["code"]) == (409, "invalid_transition")
    reply = await verify(client, cast.stranger, a, "not_fixed", HERE)  # already answered in this cycle
    assert (reply.status_code, reply.json()["code"]) == (409, "already_answered")
    reply = await verify(client, cast.rider2, a, "not_fixed", north(HERE, 30))
    assert reply.status_code == 201 and reply.json()["reopened"] is False
    assert (await detail(client, cast.member, a))["state"] == "resolved"
    reply = await verify(client, cast.rider3, a, "not_fixed", east(HERE, 30))
    assert reply.status_code == 201 and reply.json()["reopened"] is True

    seen = await detail(client, cast.member, a)
    assert (seen["state"], seen["cycle"]) == ("dispatched", 2)
    assert when(seen["stage_due_at"]) == clock.now() + dt.timedelta(hours=24)
    assert [(v["cycle"], v["answer"]) for v in seen["verifications"]] == [
        (1, "still_there"), (1, "not_fixed"), (1, "not_fixed")]
    assert all(v["by"].startswith("骑手-") for v in seen["verifications"])
    assert [e["kind"] for e in seen["events"]][-1] == "reopen"
    assert a in await inbox_ids(client, cast.member, state="dispatched")
    # a new cycle: each rider may answer once more
    [item] = await nearby(client, cast.rider3, HERE)
    assert item["answers"] == ["still_there", "gone"]
    reply = await verify(client, cast.stranger, a, "still_there", HERE)
    assert reply.status_code == 201, reply.text
    # the reopened incident reached its grid again: a notify job ran without trouble
    await run_burst(settings, clock)


async def test_fixed_answers_close_no_door_and_the_window_ends_after_7_days(
    client, settings, clock, cast, street_photos,
):
    [a] = await make_incidents(client, settings, clock, cast.rider, {})
    await ok(client, cast.member, a, "accept")
    assert (await resolve(client, cast.member, a, street_photos[:1])).status_code == 200
    reply = await verify(client, cast.rider2, a, "fixed", HERE)
    assert reply.status_code == 201 and reply.json()["reopened"] is False
    clock.advance(days=7, minutes=1)
    assert await nearby(client, cast.rider3, HERE) == []
    reply = await verify(client, cast.rider3, a, "not_fixed", HERE)
    assert reply.status_code == 409


@pytest.mark.parametrize("params", [{"category": "garbage\x00"}, {"area": "ZW\x00"}, {"category": "GARBAGE"},
                                    {"area": "ZW/%"}])
async def test_inbox_filters_outside_the_codes_alphabet_are_422_not_500(client, params, login):
    supervisor = await login("supervisor", "13911119999", ["ZW-ZWZ-C02"])
    reply = await client.get("/api/v1/incidents", params=params, headers=supervisor.headers)
    assert reply.status_code == 422, reply.text
    assert reply.json()["errors"][0]["field"] in params


async def test_the_supervisors_queues_list_pending_appeals_and_complex_requests(client, db, clock, login):
    from tests.domain.conftest import make_incident
    from tests.factories import make_member

    supervisor = await login("supervisor", "13911118888", ["ZW-ZWZ-C02"])
    courier = await make_member(db)
    people = {"courier": type("M", (), {"id": courier})()}
    appealed = await make_incident(db, clock, people, state="rejected", appeal_state="pending")
    await make_incident(db, clock, people, state="rejected")
    complex_case = await make_incident(db, clock, people, state="accepted", complex_state="requested")
    await make_incident(db, clock, people, state="accepted")

    async def ids(**params) -> list[int]:
        reply = await client.get("/api/v1/incidents", params=params, headers=supervisor.headers)
        assert reply.status_code == 200, reply.text
        return [i["id"] for i in reply.json()["items"]]

    assert await ids(appeal="pending") == [appealed]
    assert await ids(complex="requested") == [complex_case]
    reply = await client.get("/api/v1/incidents", params={"complex": "requested"}, headers=supervisor.headers)
    item = reply.json()["items"][0]
    assert (item["complex_state"], item["complex_reason"], item["appeal_state"]) == ("requested", "needs a crane",
                                                                                     "none")
    assert (await client.get("/api/v1/incidents", params={"appeal": "maybe"},
                             headers=supervisor.headers)).status_code == 422
