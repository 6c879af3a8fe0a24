"""rankings.csv (api/exports.py): the ranking page's riders as a spreadsheet — content against a hand
count, ranks and figures equal to the API's for the same query (ties across its pages too), phones by
role, formula neutralisation, scoping, refusals, BOM and file names."""

from __future__ import annotations

import csv
import datetime as dt
import io

import httpx
import pytest

from gridrider.api import exports as api_exports
from gridrider.domain.csv_export import BOM
from gridrider.domain.rankings import refresh_report_figures
from tests.api.test_rankings import incident_for, ledger, report_at, sh

URL = "/api/v1/exports/rankings.csv"
API = "/api/v1/rankings/riders"
COMMUNITY, GRID, OTHER_COMMUNITY, CROWD = "ZW-ZWZ-C02", "ZW-ZWZ-C02-G03", "ZW-ZWZ-C05", "ZW-ZWZ-C07"

ZH_HEADER = ["名次", "排名前(%)", "成员编号", "化名", "姓名", "手机号", "平台", "积分", "上报数", "被受理上报数",
             "首报数", "佐证数", "受理率(%)", "重复率(%)", "上报到受理中位时长(秒)", "待处理标记"]
EN_HEADER = ["Rank", "Top (%)", "Member ID", "Pseudonym", "Name", "Phone", "Platform", "Points", "Reports",
             "Accepted reports", "First discoveries", "Corroborations", "Acceptance rate (%)", "Duplicate rate (%)",
             "Median report to acceptance (s)", "Open flags"]
RANK, TOP, MEMBER, PSEUDONYM, NAME, PHONE, PLATFORM, POINTS = range(8)


@pytest.fixture
async def riders(db, login, clock):
    """Riders of community C02 in November 2026 (Shanghai), with a hand count of every column:

                             points  reports accepted first corr.  acc.%  dup.%  median  open flags
      A  G03, meituan 张三      17        3        1     1     1   33.3   33.3   600 s       1
      C  C02, eleme   王五      17        0        0     1     0      —      —       —       0
      B  C02, meituan 李四      10        1        0     1     0    0.0    0.0       —       0
      F  C02, jd  "=HYPER…"/"-2+3"  4     0        0     0     0      —      —       —       0
      G  C02, sf      赵六      −5        0        0     0     0      —      —       —       0

    A: 10 first + 2 corroboration + 5 resolve bonus; reports: one accepted 10 minutes after receipt, one
    that joined B's incident (a duplicate), one rejected (with the open flag); one in October.
    C: 10 first + 7 adjustment on the 30th at 23:30 (its +3 on 1 December 00:10 is December's).
    B: 15 first − 5 not_a_hazard (a redemption of 50 does not count). G: only a −5.
    Not ranked in C02: D (C05, 50 points, ranked for an admin), E (C02, 100 points, deactivated).
    """
    supervisor = await login("supervisor", "13911110001", [COMMUNITY])
    outsider = await login("supervisor", "13911110002", [OTHER_COMMUNITY])
    people = {
        "a": await login("courier", "13922220001", [GRID], platform="meituan"),
        "b": await login("courier", "13922220002", [COMMUNITY], platform="meituan"),
        "c": await login("courier", "13922220003", [COMMUNITY], platform="eleme"),
        "d": await login("courier", "13922220004", [OTHER_COMMUNITY], platform="meituan"),
        "e": await login("courier", "13922220005", [COMMUNITY], platform="meituan"),
        "f": await login("courier", "13922220006", [COMMUNITY], platform="jd"),
        "g": await login("courier", "13922220007", [COMMUNITY], platform="sf"),
    }
    ids = {key: caller.member_id for key, caller in people.items()}
    for key, name in (("a", "张三"), ("b", "李四"), ("c", "王五"), ("f", "-2+3"), ("g", "赵六")):
        await db.execute("UPDATE members SET display_name = $2 WHERE id = $1", ids[key], name)
    await db.execute("UPDATE members SET pseudonym = $2 WHERE id = $1", ids["f"], '=HYPERLINK("http://evil")')

    await ledger(db, ids["a"], "first_report", 10, sh("2026-11-03"))
    await ledger(db, ids["a"], "corroboration", 2, sh("2026-11-10"))
    await ledger(db, ids["a"], "resolve_bonus", 5, sh("2026-11-20"))
    await ledger(db, ids["c"], "first_report", 10, sh("2026-11-02"))
    await ledger(db, ids["c"], "adjustment", 7, sh("2026-11-30", "23:30"))
    await ledger(db, ids["c"], "adjustment", 3, sh("2026-12-01", "00:10"))
    await ledger(db, ids["b"], "first_report", 15, sh("2026-11-05"))
    await ledger(db, ids["b"], "not_a_hazard", -5, sh("2026-11-06"))
    await ledger(db, ids["b"], "redemption", -50, sh("2026-11-07"))
    await ledger(db, ids["f"], "adjustment", 4, sh("2026-11-08"))
    await ledger(db, ids["g"], "not_a_hazard", -5, sh("2026-11-08"))
    await ledger(db, ids["d"], "adjustment", 50, sh("2026-11-08"))
    await ledger(db, ids["e"], "adjustment", 100, sh("2026-11-09"))
    await db.execute("UPDATE members SET status = 'deactivated', deactivated_at = now() WHERE id = $1", ids["e"])

    r1 = await report_at(db, clock, ids["a"], sh("2026-11-03", "09:00"))
    await incident_for(db, r1, state="accepted", received=sh("2026-11-03", "09:00"),
                       accepted_after=dt.timedelta(minutes=10))
    origin = await report_at(db, clock, ids["b"], sh("2026-11-04", "08:00"))
    shared = await incident_for(db, origin, state="dispatched", received=sh("2026-11-04", "08:00"))
    r2 = await report_at(db, clock, ids["a"], sh("2026-11-04", "08:30"))
    await db.execute("UPDATE reports SET incident_id = $1, state = 'processed', processed_at = received_at "
                     "WHERE id = $2", shared, r2)
    r3 = await report_at(db, clock, ids["a"], sh("2026-11-05", "10:00"))
    await incident_for(db, r3, state="rejected", received=sh("2026-11-05", "10:00"))
    old = await report_at(db, clock, ids["a"], sh("2026-10-20", "10:00"))
    await incident_for(db, old, state="accepted", received=sh("2026-10-20", "10:00"),
                       accepted_after=dt.timedelta(hours=5))
    await db.execute("INSERT INTO flags (kind, member_id, report_id) VALUES ('burst', $1, $2)", ids["a"], r3)
    await db.execute("INSERT INTO flags (kind, member_id, report_id, state, decided_at) "
                     "VALUES ('burst', $1, $2, 'cleared', now())", ids["a"], r2)
    clock.set(sh("2026-11-26", "10:00"))
    async with db.acquire() as conn, conn.transaction():
        await refresh_report_figures(conn, now=clock.now())
    pseudonyms = {key: await db.fetchval("SELECT pseudonym FROM members WHERE id = $1", member_id)
                  for key, member_id in ids.items()}
    return {"supervisor": supervisor, "outsider": outsider, "ids": ids, "pseudonyms": pseudonyms, **people}


def rows_of(reply: httpx.Response) -> list[list[str]]:
    assert reply.status_code == 200, reply.text
    text = reply.content.decode("utf-8")
    assert text.startswith(BOM)
    return list(csv.reader(io.StringIO(text.removeprefix(BOM))))


async def export(client, caller, headers: dict[str, str] | None = None, **params) -> list[list[str]]:
    return rows_of(await client.get(URL, params=params, headers={**caller.headers, **(headers or {})}))


async def api_items(client, caller, **params) -> list[dict]:
    """Every row the ranking API gives for the query, page after page."""
    items, cursor = [], None
    while True:
        reply = await client.get(API, params={**params, **({"cursor": cursor} if cursor else {})},
                                 headers=caller.headers)
        assert reply.status_code == 200, reply.text
        body = reply.json()
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


def percent(share: float | None) -> str:
    return "" if share is None else f"{100 * share:.1f}"


def ids_of(rows: list[list[str]]) -> list[int]:
    return [int(row[MEMBER]) for row in rows[1:]]


# ── content ───────────────────────────────────────────────────────────────────────────────────────


async def test_a_supervisor_gets_every_rider_of_the_month_with_the_hand_counted_figures(client, riders):
    reply = await client.get(URL, params={"period": "month", "at": "2026-11"}, headers=riders["supervisor"].headers)

    assert reply.headers["content-type"] == "text/csv; charset=utf-8"
    assert reply.headers["content-disposition"] == f'attachment; filename="rankings-{COMMUNITY}-2026-11.csv"'
    assert reply.headers["cache-control"] == "no-store"
    assert reply.headers["content-language"] == "zh-CN"
    assert reply.content.startswith(b"\xef\xbb\xbf")
    header, *rows = rows_of(reply)
    ids, names = riders["ids"], riders["pseudonyms"]
    assert header == ZH_HEADER
    assert rows == [
        ["1", "20", str(ids["a"]), names["a"], "张三", "13922220001", "美团", "17", "3", "1", "1", "1",
         "33.3", "33.3", "600", "1"],
        ["1", "20", str(ids["c"]), names["c"], "王五", "13922220003", "饿了么", "17", "0", "0", "1", "0",
         "", "", "", "0"],
        ["3", "60", str(ids["b"]), names["b"], "李四", "13922220002", "美团", "10", "1", "0", "1", "0",
         "0.0", "0.0", "", "0"],
        # Text that would run as a formula is neutralised; a negative number the export wrote is not text.
        ["4", "80", str(ids["f"]), "'=HYPERLINK(\"http://evil\")", "'-2+3", "13922220006", "京东", "4", "0", "0",
         "0", "0", "", "", "", "0"],
        ["5", "100", str(ids["g"]), names["g"], "赵六", "13922220007", "顺丰", "-5", "0", "0", "0", "0",
         "", "", "", "0"],
    ]


async def test_english_by_the_lang_parameter_or_accept_language(client, riders):
    supervisor = riders["supervisor"]
    for params, headers in (({"lang": "en"}, {}), ({}, {"Accept-Language": "en-GB,en;q=0.9"})):
        reply = await client.get(URL, params={"at": "2026-11", **params}, headers={**supervisor.headers, **headers})
        assert reply.headers["content-language"] == "en"
        header, *rows = rows_of(reply)
        assert header == EN_HEADER
        assert [row[PLATFORM] for row in rows] == ["Meituan", "Ele.me", "Meituan", "JD", "SF Express"]
    # The parameter wins over the header.
    header, first, *_rest = await export(client, supervisor, {"Accept-Language": "en"}, at="2026-11", lang="zh")
    assert header == ZH_HEADER and first[PLATFORM] == "美团"


async def test_quarter_and_year_count_their_months_and_the_default_is_this_month(client, riders):
    ids = riders["ids"]
    quarter = await export(client, riders["supervisor"], period="quarter", at="2026-Q4")
    # C's December +3 now counts: C 20 passes A 17 (A's October points came with no ledger row here).
    assert [(int(r[MEMBER]), r[POINTS], r[RANK]) for r in quarter[1:]] == [
        (ids["c"], "20", "1"), (ids["a"], "17", "2"), (ids["b"], "10", "3"), (ids["f"], "4", "4"),
        (ids["g"], "-5", "5")]
    # A's October report (accepted after 5 hours) joins its figures: 2 of 4 accepted, median of 600 s and 18,000 s.
    a = quarter[2]
    assert a[8:16] == ["4", "2", "1", "1", "50.0", "25.0", "9300", "1"]
    assert await export(client, riders["supervisor"], period="year", at="2026") == quarter
    assert await export(client, riders["supervisor"]) == await export(client, riders["supervisor"], at="2026-11")


async def test_an_empty_ranking_is_the_bom_and_the_header(client, riders):
    reply = await client.get(URL, params={"at": "2025-01", "lang": "en"}, headers=riders["supervisor"].headers)
    assert reply.status_code == 200
    assert reply.content == (BOM + ",".join(EN_HEADER) + "\r\n").encode()
    assert reply.headers["content-disposition"] == f'attachment; filename="rankings-{COMMUNITY}-2025-01.csv"'


# ── the same ranking as the API ───────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("params", [
    {"at": "2026-11"}, {"at": "2026-11", "scope": GRID}, {"at": "2026-11", "platform": "meituan"},
    {"period": "quarter", "at": "2026-11"}, {"period": "year", "at": "2026"},
])
async def test_ranks_and_figures_equal_the_apis_for_the_same_query(client, riders, admin, params):
    # The outsider's subtree (C05) does not hold the grid: that scope is a 404 for them (tested below).
    callers = (riders["supervisor"], admin) if "scope" in params else (riders["supervisor"], admin, riders["outsider"])
    for caller in callers:
        items = await api_items(client, caller, **params)
        rows = (await export(client, caller, **params))[1:]
        assert [(int(r[MEMBER]), int(r[RANK]), int(r[TOP]), int(r[POINTS]), r[PSEUDONYM].removeprefix("'"))
                for r in rows] == [(i["member_id"], i["rank"], i["top_percent"], i["points"], i["pseudonym"])
                                   for i in items]
        assert [[int(v) for v in r[8:12]] + [int(r[15])] for r in rows] == [
            [i["reports"], i["accepted_reports"], i["first_discoveries"], i["corroborations"], i["open_flags"]]
            for i in items]
        # Rates are the API's shares as percentages; the median is its seconds.
        assert [r[12:15] for r in rows] == [
            [percent(i["acceptance_rate"]), percent(i["duplicate_rate"]),
             "" if i["median_accept_s"] is None else str(i["median_accept_s"])] for i in items]


async def test_admin_ranks_everyone_active_the_outsider_only_their_own(client, riders, admin):
    ids = riders["ids"]
    everyone = await export(client, admin, at="2026-11")
    assert [(int(r[MEMBER]), r[RANK], r[TOP]) for r in everyone[1:]] == [
        (ids["d"], "1", "17"), (ids["a"], "2", "34"), (ids["c"], "2", "34"), (ids["b"], "4", "67"),
        (ids["f"], "5", "84"), (ids["g"], "6", "100")]  # not E, deactivated
    assert ids_of(await export(client, riders["outsider"], at="2026-11")) == [ids["d"]]
    assert ids_of(await export(client, riders["supervisor"], at="2026-11", scope=GRID)) == [ids["a"]]
    assert ids_of(await export(client, riders["supervisor"], at="2026-11", platform="eleme")) == [ids["c"]]


async def test_every_rider_of_a_big_ranking_with_ties_across_the_apis_pages(client, db, login, admin):
    """1,200 riders in threes of equal points: 24 API pages, ties straddling page ends; one export."""
    supervisor = await login("supervisor", "13911110009", [CROWD])
    crowd = await db.fetchval("SELECT id FROM areas WHERE code = $1", CROWD)
    async with db.acquire() as conn, conn.transaction():
        riders = [r["id"] for r in await conn.fetch(
            """INSERT INTO members (role, display_name, pseudonym, phone, platform)
               SELECT 'courier', 'crowd ' || g, 'crowd-' || g, '137' || lpad(g::text, 8, '0'), 'meituan'
               FROM generate_series(1, 1200) AS g ORDER BY g RETURNING id""")]
        await conn.execute("INSERT INTO member_areas (member_id, area_id) SELECT unnest($1::bigint[]), $2",
                           riders, crowd)
        await conn.execute(
            """INSERT INTO points_ledger (member_id, reason, amount, source_kind, source_id, cycle, counts_toward_cap,
                                          counts_toward_ranking, local_day, created_at)
               SELECT r.id, 'adjustment', 1000 - (r.n - 1) / 3, 'decision', r.id, 1, false, true, $2::date, $3
               FROM unnest($1::bigint[]) WITH ORDINALITY AS r (id, n)""",
            riders, dt.date(2026, 11, 10), sh("2026-11-10"))

    rows = (await export(client, supervisor, at="2026-11"))[1:]
    items = await api_items(client, supervisor, at="2026-11")

    assert len(rows) == len(items) == 1200
    assert [(int(r[MEMBER]), int(r[RANK]), int(r[TOP]), int(r[POINTS])) for r in rows] == [
        (i["member_id"], i["rank"], i["top_percent"], i["points"]) for i in items]
    assert [int(r[RANK]) for r in rows[:7]] == [1, 1, 1, 4, 4, 4, 7]
    assert [int(r[RANK]) for r in rows[48:52]] == [49, 49, 49, 52]  # the API's first page ends inside a tie
    assert sorted(int(r[MEMBER]) for r in rows) == sorted(riders)


# ── who sees what ─────────────────────────────────────────────────────────────────────────────────


async def test_phones_are_whole_for_supervisors_and_masked_for_admins(client, riders, admin):
    by_supervisor = await export(client, riders["supervisor"], at="2026-11")
    by_admin = await export(client, admin, at="2026-11", scope=COMMUNITY)
    assert [r[PHONE] for r in by_supervisor[1:3]] == ["13922220001", "13922220003"]
    # DESIGN.md §8: "exports mask phones except for supervisors" — an admin is not a supervisor.
    assert [r[PHONE] for r in by_admin[1:3]] == ["139****0001", "139****0003"]
    assert [r[:PHONE] + r[PHONE + 1:] for r in by_admin] == [r[:PHONE] + r[PHONE + 1:] for r in by_supervisor]


async def test_a_scope_outside_the_callers_subtree_is_404(client, riders):
    for scope in (COMMUNITY, GRID, "ZW-ZWZ", "NO-SUCH-AREA"):
        reply = await client.get(URL, params={"scope": scope}, headers=riders["outsider"].headers)
        assert reply.status_code == 404, scope
        assert reply.json()["code"] == "area_not_found"


async def test_couriers_and_grid_members_are_refused(client, riders, login):
    grid_member = await login("grid_member", "13933330001", [GRID])
    for caller in (riders["a"], grid_member):
        reply = await client.get(URL, headers=caller.headers)
        assert (reply.status_code, reply.json()["code"]) == (403, "forbidden")
    assert (await client.get(URL)).status_code == 401


@pytest.mark.parametrize(("params", "field", "code"), [
    ({"period": "week"}, "period", "invalid"),
    ({"period": "MONTH"}, "period", "invalid"),
    ({"at": "2026-13"}, "at", "invalid"),
    ({"at": "26-11"}, "at", "invalid"),
    ({"period": "month", "at": "2026"}, "at", "invalid"),
    ({"period": "month", "at": "2026-Q4"}, "at", "invalid"),
    ({"at": "1999-01"}, "at", "invalid"),
    ({"platform": "taxi"}, "platform", "invalid"),
    ({"lang": "fr"}, "lang", "export_lang_unsupported"),
])
async def test_bad_parameters_are_422_with_the_field_named(client, riders, params, field, code):
    supervisor = riders["supervisor"]
    reply = await client.get(URL, params=params, headers=supervisor.headers)
    assert reply.status_code == 422, reply.text
    assert reply.headers["content-type"].startswith("application/problem+json")
    body = reply.json()
    assert body["code"] == "validation_failed"
    assert [(e["field"], e["code"]) for e in body["errors"]] == [(field, code)]
    english = await client.get(URL, params=params, headers={**supervisor.headers, "Accept-Language": "en"})
    assert english.json()["errors"][0]["message"] != body["errors"][0]["message"]
    assert english.json()["errors"][0]["message"].isascii()


async def test_file_names_name_the_scope_the_period_and_the_platform(client, riders, admin):
    async def filename(caller, **params) -> str:
        reply = await client.get(URL, params=params, headers=caller.headers)
        assert reply.status_code == 200, reply.text
        return reply.headers["content-disposition"]

    assert await filename(riders["supervisor"], period="quarter", at="2026-11", scope=GRID, platform="meituan") == \
        f'attachment; filename="rankings-{GRID}-2026-Q4-meituan.csv"'
    assert await filename(admin, period="year", at="2026") == 'attachment; filename="rankings-all-2026.csv"'


async def test_exports_share_the_slots_and_a_finished_one_frees_its_slot(client, riders, monkeypatch):
    assert (await client.get(URL, headers=riders["supervisor"].headers)).status_code == 200
    assert api_exports.EXPORT_SLOTS.open == 0
    monkeypatch.setattr(api_exports.EXPORT_SLOTS, "limit", 0)
    reply = await client.get(URL, headers=riders["supervisor"].headers)
    assert (reply.status_code, reply.json()["code"]) == (429, "rate_limited")
    assert int(reply.headers["retry-after"]) > 0
