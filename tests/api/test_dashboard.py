"""The supervisors' dashboard: every figure checked against a hand-computed world in two streets.

The world (times Asia/Shanghai, the clock at Thu 2026-11-26 10:00):

street ZW-ZWZ (the demo town)                                               cell
  A1  garbage  C02-G01  created 11-02 09:00 routed, accepted 12:00, resolved 11-05 12:00  resolved   X
  A2  garbage  C02-G01  created 11-03 09:00 routed, accepted 11-05 09:00 (late, marked),
                        resolved 11-10 09:00, closed 11-17                                 closed     X
  A3  flooding C02-G03  created 11-10 08:00 unrouted, dispatched 11-11 09:00 (late, marked),
                        accepted 09:30 (1 h rule: on time), resolve due 11-18 09:30      accepted   Y
  A4  garbage  C02      created 11-25 23:30 (last day of the range), not due yet         unrouted   Z
  A5  garbage  C02-G01  created 11-26 00:10 (the day after the range)                    dispatched X
  A6  fire lane C03-G01 created 11-15 10:00 routed, accept due 11-16 10:00 (marked)      dispatched W
  A7  other    C03-G01  created 11-12 10:00 routed, rejected before accepting            rejected   W
  A8  garbage  C02-G01  created 11-12 10:00 routed, merged into A1                       merged     X
  A9  garbage  C02-G01  created 11-20 10:00 routed, accepted 11:00, a recurrence of A1   accepted   X
  A10 garbage  C02      created 10-31 23:59 (the day before the range), never dispatched unrouted   Z
street ZW-XQ (added here)
  B1  garbage  XQ-C01-G01 created 11-05 10:00 routed, accept due 11-06 10:00 (no mark:
                          late all the same, whether or not the cron got to it)          dispatched V
  B2  garbage  XQ-C01-G01 created 11-06 10:00 routed, accepted 11:00, resolved 11-07     resolved   V
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import uuid

import h3
import pytest

from gridrider.clock import SHANGHAI
from gridrider.domain.geo import cell_of, haversine_m

STREET, OTHER_STREET = "ZW-ZWZ", "ZW-XQ"
C02, C03 = "ZW-ZWZ-C02", "ZW-ZWZ-C03"
XQ_GRID = "ZW-XQ-C01-G01"
X, W, Y, Z, V = (42.380, 122.530), (42.385, 122.540), (42.375, 122.520), (42.370, 122.545), (42.390, 122.525)
RANGE = {"from": "2026-11-01", "to": "2026-11-25"}
STATES = ("unrouted", "dispatched", "accepted", "resolved", "closed", "rejected", "merged")

_phones = itertools.count(13955550001)


def sh(month: int, day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI)


def hex_cell(point: tuple[float, float]) -> str:
    return h3.int_to_str(cell_of(*point))


def states(**counts: int) -> dict[str, int]:
    return {state: counts.get(state, 0) for state in STATES}


async def add_incident(db, *, area: str, created: dt.datetime, state: str, point: tuple[float, float],
                       category: str = "garbage_pileup", dispatched: dt.datetime | None = None,
                       accepted: dt.datetime | None = None, resolved: dt.datetime | None = None,
                       closed: dt.datetime | None = None, accept_within: dt.timedelta = dt.timedelta(hours=24),
                       dispatch_overdue: dt.datetime | None = None, accept_overdue: dt.datetime | None = None,
                       resolve_overdue: dt.datetime | None = None, recurrence_of: int | None = None,
                       merged_into: int | None = None) -> int:
    """An incident with the due times DESIGN §2c gives it: 24 h to dispatch, `accept_within` after
    dispatch to accept, 7 days after acceptance to resolve."""
    return await db.fetchval(
        """INSERT INTO incidents (category, lat, lon, cell, area_id, state, last_captured_at,
               dispatch_due_at, dispatched_at, dispatch_overdue_at, accept_due_at, accepted_at, accept_overdue_at,
               resolve_due_at, resolved_at, resolve_overdue_at, closed_at, reject_reason, merged_into_id,
               recurrence_of_id, created_at, updated_at)
           VALUES ($1, $2, $3, $4, (SELECT id FROM areas WHERE code = $5), $6, $7, $8, $9, $10, $11, $12, $13,
                   $14, $15, $16, $17, $18, $19, $20, $7, $7)
           RETURNING id""",
        category, point[0], point[1], cell_of(*point), area, state, created,
        created + dt.timedelta(hours=24), dispatched, dispatch_overdue,
        dispatched + accept_within if dispatched else None, accepted, accept_overdue,
        accepted + dt.timedelta(days=7) if accepted else None, resolved, resolve_overdue, closed,
        "not_a_hazard" if state == "rejected" else None, merged_into, recurrence_of)


async def add_member(db, role: str, platform: str | None = None) -> int:
    suffix = uuid.uuid4().hex[:8]
    return await db.fetchval(
        "INSERT INTO members (role, display_name, pseudonym, phone, platform) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        role, f"dash {suffix}", f"d-{suffix}", str(next(_phones)), platform)


async def add_report(db, *, reporter: int, received: dt.datetime, incident: int | None) -> int:
    return await db.fetchval(
        """INSERT INTO reports (reporter_id, client_id, category, lat, lon, position_source, cell, captured_at,
                                received_at, body_fingerprint, state, incident_id, processed_at)
           VALUES ($1, $2, 'garbage_pileup', $3, $4, 'gps', $5, $6, $6, $7, $8, $9, $10) RETURNING id""",
        reporter, uuid.uuid4(), X[0], X[1], cell_of(*X), received, hashlib.sha256(uuid.uuid4().bytes).digest(),
        "processed" if incident else "received", incident, received if incident else None)


async def add_notification(db, *, incident: int | None, created: dt.datetime,
                           deliveries: list[tuple[str, str]]) -> None:
    notification = await db.fetchval(
        "INSERT INTO notifications (event, incident_id, audience, created_at) VALUES ('incident_reached_grid', $1, "
        "'{}'::jsonb, $2) RETURNING id", incident, created)
    for target, (channel, state) in enumerate(deliveries, start=1):
        await db.execute(
            "INSERT INTO deliveries (notification_id, channel, target, state, created_at) VALUES ($1, $2, $3, $4, $5)",
            notification, channel, str(target), state, created)


@pytest.fixture
async def world(db, demo):
    """The incidents of the module docstring, with reports and alert deliveries; returns their ids."""
    county = await db.fetchval("SELECT id FROM areas WHERE code = 'ZW'")
    street = await db.fetchval("INSERT INTO areas (code, level, parent_id, name_zh) VALUES ($1, 'street', $2, '西区') "
                               "RETURNING id", OTHER_STREET, county)
    community = await db.fetchval("INSERT INTO areas (code, level, parent_id, name_zh) VALUES ('ZW-XQ-C01', "
                                  "'community', $1, '西区一社区') RETURNING id", street)
    await db.execute("INSERT INTO areas (code, level, parent_id, name_zh) VALUES ($1, 'grid', $2, '西区一网格')",
                     XQ_GRID, community)

    g01, g03, c03g = f"{C02}-G01", f"{C02}-G03", f"{C03}-G01"
    ids: dict[str, int] = {}
    ids["A1"] = await add_incident(db, area=g01, created=sh(11, 2, 9), state="resolved", point=X,
                                   dispatched=sh(11, 2, 9), accepted=sh(11, 2, 12), resolved=sh(11, 5, 12))
    ids["A2"] = await add_incident(db, area=g01, created=sh(11, 3, 9), state="closed", point=X,
                                   dispatched=sh(11, 3, 9), accepted=sh(11, 5, 9), accept_overdue=sh(11, 4, 9, 1),
                                   resolved=sh(11, 10, 9), closed=sh(11, 17, 9))
    ids["A3"] = await add_incident(db, area=g03, created=sh(11, 10, 8), state="accepted", point=Y, category="flooding",
                                   dispatched=sh(11, 11, 9), dispatch_overdue=sh(11, 11, 8, 1),
                                   accept_within=dt.timedelta(hours=1), accepted=sh(11, 11, 9, 30),
                                   resolve_overdue=sh(11, 18, 9, 31))
    ids["A4"] = await add_incident(db, area=C02, created=sh(11, 25, 23, 30), state="unrouted", point=Z)
    ids["A5"] = await add_incident(db, area=g01, created=sh(11, 26, 0, 10), state="dispatched", point=X,
                                   dispatched=sh(11, 26, 0, 10))
    ids["A6"] = await add_incident(db, area=c03g, created=sh(11, 15, 10), state="dispatched", point=W,
                                   category="blocked_fire_lane", dispatched=sh(11, 15, 10),
                                   accept_overdue=sh(11, 16, 10, 1))
    ids["A7"] = await add_incident(db, area=c03g, created=sh(11, 12, 10), state="rejected", point=W, category="other",
                                   dispatched=sh(11, 12, 10))
    ids["A8"] = await add_incident(db, area=g01, created=sh(11, 12, 10), state="merged", point=X,
                                   dispatched=sh(11, 12, 10), merged_into=ids["A1"])
    ids["A9"] = await add_incident(db, area=g01, created=sh(11, 20, 10), state="accepted", point=X,
                                   dispatched=sh(11, 20, 10), accepted=sh(11, 20, 11), recurrence_of=ids["A1"])
    ids["A10"] = await add_incident(db, area=C02, created=sh(10, 31, 23, 59), state="unrouted", point=Z,
                                    dispatch_overdue=sh(11, 2, 0))
    ids["B1"] = await add_incident(db, area=XQ_GRID, created=sh(11, 5, 10), state="dispatched", point=V,
                                   dispatched=sh(11, 5, 10))
    ids["B2"] = await add_incident(db, area=XQ_GRID, created=sh(11, 6, 10), state="resolved", point=V,
                                   dispatched=sh(11, 6, 10), accepted=sh(11, 6, 11), resolved=sh(11, 7, 11))

    r1, r2, r3 = (await add_member(db, "courier", "meituan"), await add_member(db, "courier", "eleme"),
                  await add_member(db, "courier", "meituan"))
    system = await add_member(db, "system")
    await add_report(db, reporter=r1, received=sh(11, 2, 8, 59), incident=ids["A1"])
    await add_report(db, reporter=r1, received=sh(11, 3, 8, 59), incident=ids["A2"])
    await add_report(db, reporter=r2, received=sh(11, 10, 7, 59), incident=ids["A3"])
    await add_report(db, reporter=r2, received=sh(11, 26, 0, 9), incident=ids["A5"])  # the day after the range
    await add_report(db, reporter=r2, received=sh(10, 31, 23, 50), incident=ids["A9"])  # the day before it
    # 07:00 in Shanghai is still 10-31 in UTC: inside the range all the same.
    await add_report(db, reporter=r3, received=sh(11, 1, 7), incident=ids["A9"])
    await add_report(db, reporter=r3, received=sh(11, 5, 9, 59), incident=ids["B1"])
    await add_report(db, reporter=system, received=sh(11, 15, 10), incident=ids["A6"])  # Open311: not a rider
    await add_report(db, reporter=r2, received=sh(11, 20, 8), incident=None)  # not processed yet: no area

    await add_notification(db, incident=ids["A1"], created=sh(11, 2, 9), deliveries=[
        ("webpush", "sent"), ("webpush", "failed"), ("sms", "sent"), ("stream", "pending")])
    await add_notification(db, incident=ids["A10"], created=sh(10, 31, 23, 59), deliveries=[("sms", "failed")])
    await add_notification(db, incident=ids["B1"], created=sh(11, 5, 10), deliveries=[("wecom", "sent")])
    await add_notification(db, incident=None, created=sh(11, 10, 12), deliveries=[("stream", "skipped")])
    return ids


@pytest.fixture
def callers(login, admin, world):
    async def make():
        return {
            "street": await login("supervisor", "13911120001", [STREET]),
            "other_street": await login("supervisor", "13911120002", [OTHER_STREET]),
            "community": await login("supervisor", "13911120003", [C03]),
            "admin": admin,
        }

    return make


async def dashboard(client, caller, expect: int = 200, **params: str) -> dict:
    reply = await client.get("/api/v1/dashboard", headers=caller.headers, params=params)
    assert reply.status_code == expect, reply.text
    return reply.json()


def alerts(**per_channel: dict[str, int]) -> list[dict]:
    """The alerts figure: every channel in order, the given counts, zeros elsewhere."""
    zero = {"sent": 0, "failed": 0, "pending": 0, "gone": 0, "skipped": 0}
    return [{"channel": c, **zero, **per_channel.get(c, {})} for c in ("webpush", "wecom", "sms", "stream")]


# ── every figure, by hand ────────────────────────────────────────────────────────────────────────


async def test_a_street_supervisor_sees_every_figure_of_their_street(client, callers, world):
    me = (await callers())["street"]
    body = await dashboard(client, me, **RANGE)

    assert (body["scope"], body["from"], body["to"]) == (None, "2026-11-01", "2026-11-25")
    # A1–A4 and A6–A9: A5 was created at 00:10 the next day, A10 at 23:59 the day before.
    assert body["incidents"] == 8
    assert body["by_state"] == states(unrouted=1, dispatched=1, accepted=2, resolved=1, closed=1, rejected=1,
                                      merged=1)
    assert body["by_category"] == {"garbage_pileup": 5, "blocked_fire_lane": 1, "flooding": 1, "other": 1}

    # dispatch: all but A4 (not due yet) judged; A3 dispatched an hour late.
    # accept: A1, A3, A9 on time; A2 late; A6 still waiting past due; A7 and A8 left before accepting.
    # resolve: A1, A2 on time; A3 waiting past due; A9 not due yet.
    assert body["on_time"] == {
        "dispatch": {"judged": 7, "on_time": 6, "rate": 0.8571},
        "accept": {"judged": 5, "on_time": 3, "rate": 0.6},
        "resolve": {"judged": 3, "on_time": 2, "rate": 0.6667},
    }
    # resolved A1 + closed A2, out of the 8 less merged A8 and rejected A7.
    assert body["completion"] == {"completed": 2, "eligible": 6, "rate": 0.3333}
    assert body["durations"] == {
        # six routed at creation (0 s) and A3 after 25 h
        "creation_to_dispatch": {"median_s": 0.0, "n": 7},
        # A3 30 min, A9 1 h, A1 3 h, A2 48 h
        "dispatch_to_accept": {"median_s": 7200.0, "n": 4},
        # A1 3 days, A2 5 days
        "accept_to_resolve": {"median_s": 345600.0, "n": 2},
    }

    # Overdue now, whatever the range: A10 (from before it) included, A4 and A5 not due yet.
    assert body["overdue"] == {"count": 3, "incidents": [
        {"id": world["A10"], "category": "garbage_pileup", "area_code": C02, "stage": "dispatch",
         "due_at": "2026-11-01T15:59:00Z", "overdue_s": 24 * 86400 + 10 * 3600 + 60},
        {"id": world["A6"], "category": "blocked_fire_lane", "area_code": f"{C03}-G01", "stage": "accept",
         "due_at": "2026-11-16T02:00:00Z", "overdue_s": 10 * 86400},
        {"id": world["A3"], "category": "flooding", "area_code": f"{C02}-G03", "stage": "resolve",
         "due_at": "2026-11-18T01:30:00Z", "overdue_s": 8 * 86400 + 1800},
    ]}

    hotspots = body["hotspots"]
    assert [(c["cell"], c["incidents"], c["recurrences"]) for c in hotspots[:2]] == [
        (hex_cell(X), 3, 1), (hex_cell(W), 2, 0)]  # merged A8 and next-day A5 not counted in X
    assert {(c["cell"], c["incidents"]) for c in hotspots[2:]} == {(hex_cell(Y), 1), (hex_cell(Z), 1)}
    for cell, point in zip(hotspots, (X, W), strict=False):
        assert cell["cell"] == h3.latlng_to_cell(*point, 9)
        # the centre of a resolution-9 cell is within its ~200 m circumradius of any point in it
        assert haversine_m(cell["lat"], cell["lon"], *point) < 200
    assert [(c["cell"], c["recurrences"]) for c in body["recurrences"]] == [(hex_cell(X), 1)]

    # r1 twice and r3 once (meituan), r2 once (eleme); reports outside the range, the system account's
    # and the one not processed into an incident yet are not this street's.
    assert body["riders"] == {"active": 3, "by_platform": [
        {"platform": "meituan", "riders": 2, "reports": 3},
        {"platform": "eleme", "riders": 1, "reports": 1},
    ]}
    assert body["alerts"] == alerts(webpush={"sent": 1, "failed": 1}, sms={"sent": 1}, stream={"pending": 1})


async def test_the_other_street_sees_only_its_own_numbers(client, callers, world):
    me = (await callers())["other_street"]
    body = await dashboard(client, me, **RANGE)
    assert body["incidents"] == 2
    assert body["by_state"] == states(dispatched=1, resolved=1)
    assert body["by_category"] == {"garbage_pileup": 2}
    assert body["on_time"] == {
        "dispatch": {"judged": 2, "on_time": 2, "rate": 1.0},
        "accept": {"judged": 2, "on_time": 1, "rate": 0.5},
        "resolve": {"judged": 1, "on_time": 1, "rate": 1.0},
    }
    assert body["completion"] == {"completed": 1, "eligible": 2, "rate": 0.5}
    assert body["durations"] == {
        "creation_to_dispatch": {"median_s": 0.0, "n": 2},
        "dispatch_to_accept": {"median_s": 3600.0, "n": 1},
        "accept_to_resolve": {"median_s": 86400.0, "n": 1},
    }
    assert body["overdue"] == {"count": 1, "incidents": [
        {"id": world["B1"], "category": "garbage_pileup", "area_code": XQ_GRID, "stage": "accept",
         "due_at": "2026-11-06T02:00:00Z", "overdue_s": 20 * 86400}]}
    assert [(c["cell"], c["incidents"]) for c in body["hotspots"]] == [(hex_cell(V), 2)]
    assert body["recurrences"] == []
    assert body["riders"] == {"active": 1, "by_platform": [{"platform": "meituan", "riders": 1, "reports": 1}]}
    assert body["alerts"] == alerts(wecom={"sent": 1})


async def test_an_admin_sees_everything(client, callers, world):
    me = (await callers())["admin"]
    body = await dashboard(client, me, **RANGE)
    assert body["incidents"] == 10
    assert body["by_state"] == states(unrouted=1, dispatched=2, accepted=2, resolved=2, closed=1, rejected=1,
                                      merged=1)
    assert body["on_time"]["accept"] == {"judged": 7, "on_time": 4, "rate": 0.5714}
    assert body["completion"] == {"completed": 3, "eligible": 8, "rate": 0.375}
    assert body["overdue"]["count"] == 4
    assert [i["id"] for i in body["overdue"]["incidents"]] == [world["A10"], world["B1"], world["A6"], world["A3"]]
    # The unscoped view also has the report not processed yet (r2, eleme) and the notification about no incident.
    assert body["riders"] == {"active": 3, "by_platform": [
        {"platform": "meituan", "riders": 2, "reports": 4},
        {"platform": "eleme", "riders": 1, "reports": 2},
    ]}
    assert body["alerts"] == alerts(webpush={"sent": 1, "failed": 1}, wecom={"sent": 1}, sms={"sent": 1},
                                    stream={"pending": 1, "skipped": 1})


# ── scope ────────────────────────────────────────────────────────────────────────────────────────


async def test_scope_narrows_to_a_sub_area(client, callers, world):
    people = await callers()
    body = await dashboard(client, people["street"], scope=C03, **RANGE)
    assert body["scope"] == C03
    assert body["incidents"] == 2
    assert body["by_state"] == states(dispatched=1, rejected=1)
    assert [i["id"] for i in body["overdue"]["incidents"]] == [world["A6"]]
    assert body["riders"]["active"] == 0  # only the system account reported on A6
    # A community supervisor sees the same through their own subtree.
    own = await dashboard(client, people["community"], **RANGE)
    assert {k: v for k, v in own.items() if k != "scope"} == {k: v for k, v in body.items() if k != "scope"}


async def test_an_admin_may_scope_anywhere(client, callers):
    people = await callers()
    admin = await dashboard(client, people["admin"], scope=OTHER_STREET, **RANGE)
    own = await dashboard(client, people["other_street"], **RANGE)
    assert {k: v for k, v in admin.items() if k != "scope"} == {k: v for k, v in own.items() if k != "scope"}


@pytest.mark.parametrize(("who", "scope"), [
    ("street", OTHER_STREET),  # the other street
    ("street", XQ_GRID),  # a grid of the other street
    ("community", STREET),  # above the caller's own area
    ("community", C02),  # a sibling community
    ("street", "ZW-NOPE"),  # no such area
    ("admin", "ZW-NOPE"),
])
async def test_a_scope_outside_the_callers_subtree_is_404_like_an_unknown_one(client, callers, who, scope):
    people = await callers()
    problem = await dashboard(client, people[who], expect=404, scope=scope, **RANGE)
    assert problem["code"] == "area_not_found"


async def test_a_supervisor_without_areas_sees_zeros(client, db, login, world):
    lonely = await login("supervisor", "13911120009", [C03])
    await db.execute("DELETE FROM member_areas WHERE member_id = $1", lonely.member_id)
    body = await dashboard(client, lonely, **RANGE)
    assert body["incidents"] == 0
    assert body["overdue"] == {"count": 0, "incidents": []}
    assert body["on_time"]["dispatch"] == {"judged": 0, "on_time": 0, "rate": None}
    assert body["completion"]["rate"] is None
    assert body["durations"]["dispatch_to_accept"] == {"median_s": None, "n": 0}
    assert body["riders"] == {"active": 0, "by_platform": []}


# ── roles ────────────────────────────────────────────────────────────────────────────────────────


async def test_couriers_and_grid_members_are_403_and_strangers_401(client, login, world):
    courier = await login("courier", "13911120011", [STREET])
    grid_member = await login("grid_member", "13911120012", [f"{C02}-G01"])
    for caller in (courier, grid_member):
        assert (await client.get("/api/v1/dashboard", headers=caller.headers)).status_code == 403
    assert (await client.get("/api/v1/dashboard")).status_code == 401


# ── days are Asia/Shanghai days ──────────────────────────────────────────────────────────────────


async def test_days_are_shanghai_days(client, callers, world):
    me = (await callers())["street"]
    last_day = await dashboard(client, me, **{"from": "2026-11-25", "to": "2026-11-25"})
    assert last_day["by_state"] == states(unrouted=1)  # A4 at 23:30; A5 at 00:10 the next day is not in it
    next_day = await dashboard(client, me, **{"from": "2026-11-26", "to": "2026-11-26"})
    assert next_day["by_state"] == states(dispatched=1)  # A5
    # A10 at 23:59 on 10-31 belongs to October (in UTC it is 15:59 the same day: no surprise there), and the
    # report r3 sent at 07:00 on 11-01 (still 10-31 in UTC) to November.
    october = await dashboard(client, me, to="2026-10-31")
    assert (october["from"], october["incidents"]) == ("2026-10-01", 1)
    assert october["riders"]["active"] == 1  # r2's report at 23:50 on 10-31
    first_day = await dashboard(client, me, **{"from": "2026-11-01", "to": "2026-11-01"})
    assert first_day["riders"] == {"active": 1, "by_platform": [{"platform": "meituan", "riders": 1, "reports": 1}]}


async def test_the_default_range_is_this_shanghai_month_up_to_today(client, callers, clock, world):
    me = (await callers())["street"]
    body = await dashboard(client, me)
    assert (body["from"], body["to"]) == ("2026-11-01", "2026-11-26")
    assert body["incidents"] == 9  # A1–A9
    # At 23:00 on 11-30 UTC it is already December 1st in Shanghai.
    clock.set(dt.datetime(2026, 11, 30, 23, 0, tzinfo=dt.UTC))
    body = await dashboard(client, me)
    assert (body["from"], body["to"], body["incidents"]) == ("2026-12-01", "2026-12-01", 0)


# ── bad input ────────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(("params", "code", "field"), [
    ({"from": "2026-11-31"}, "date_invalid", "from"),
    ({"from": "2026-13-01"}, "date_invalid", "from"),
    ({"from": "20261101"}, "date_invalid", "from"),
    ({"to": "2026-1-5"}, "date_invalid", "to"),
    ({"to": "2026-11-05T00:00"}, "date_invalid", "to"),
    ({"from": "２０２６-11-01"}, "date_invalid", "from"),  # full-width digits
    ({"from": ""}, "date_invalid", "from"),
    ({"from": "2026-11-10", "to": "2026-11-09"}, "date_range_reversed", "from"),
    ({"from": "9999-12-31", "to": "9999-12-31"}, "date_out_of_range", "from"),  # the day after would overflow
    ({"from": "0001-01-01", "to": "0001-01-01"}, "date_out_of_range", "from"),
    ({"to": "9999-12-31"}, "date_out_of_range", "to"),
    ({"from": "2026-12-01"}, "date_range_reversed", "from"),  # after today, the default end
    ({"from": "2025-11-01", "to": "2026-11-02"}, "date_range_too_long", "to"),  # 367 days
])
async def test_bad_dates_are_422_with_a_code(client, callers, params, code, field):
    me = (await callers())["street"]
    problem = await dashboard(client, me, expect=422, **params)
    assert problem["code"] == code
    assert [(e["field"], e["code"]) for e in problem["errors"]] == [(field, code)]


async def test_366_days_are_allowed(client, callers):
    me = (await callers())["street"]
    body = await dashboard(client, me, **{"from": "2025-11-01", "to": "2026-11-01"})
    assert (body["from"], body["to"]) == ("2025-11-01", "2026-11-01")


async def test_date_errors_speak_the_callers_language(client, callers):
    me = (await callers())["street"]
    params = {"from": "2026-11-10", "to": "2026-11-09"}
    english = await client.get("/api/v1/dashboard", params=params, headers={**me.headers, "Accept-Language": "en"})
    assert english.json()["title"] == "The start date is after the end date."
    assert english.json()["errors"][0]["message"] == "The start date is after the end date."
    chinese = await client.get("/api/v1/dashboard", params=params, headers=me.headers)
    assert chinese.json()["errors"][0]["message"] == "开始日期不能晚于结束日期。"
