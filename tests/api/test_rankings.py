"""Rider rankings (issue 8): every figure against a hand-computed fixture, periods in Asia/Shanghai,
ties, pages, scoping, and the ranking totals the database keeps in step with the ledger."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from gridrider.clock import SHANGHAI
from gridrider.domain.rankings import PageCursor, page_ranks, period_of, refresh_report_figures, top_percent
from gridrider.errors import ValidationFailed
from gridrider.jobs import rankings as rankings_job
from tests.factories import make_report

COMMUNITY, GRID, OTHER_COMMUNITY, CROWD = "ZW-ZWZ-C02", "ZW-ZWZ-C02-G03", "ZW-ZWZ-C05", "ZW-ZWZ-C07"
URL = "/api/v1/rankings/riders"

_sources = itertools.count(1_000)


def sh(day: str, clock: str = "12:00") -> dt.datetime:
    """An instant given as Asia/Shanghai wall time."""
    return dt.datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=SHANGHAI)


async def ledger(db, member_id: int, reason: str, amount: int, when: dt.datetime, *, source_id: int | None = None,
                 source_kind: str | None = None) -> int:
    kind = source_kind or {"first_report": "incident", "resolve_bonus": "incident", "not_a_hazard": "incident",
                           "corroboration": "report", "reversal": "ledger", "redemption": "redemption",
                           "adjustment": "decision", "flag_release": "flag"}[reason]
    return await db.fetchval(
        """INSERT INTO points_ledger (member_id, reason, amount, source_kind, source_id, cycle, counts_toward_cap,
                                      counts_toward_ranking, local_day, created_at)
           VALUES ($1, $2, $3, $4, $5, 1, false, $6, ($7::timestamptz AT TIME ZONE 'Asia/Shanghai')::date, $7)
           RETURNING id""",
        member_id, reason, amount, kind, source_id or next(_sources), reason != "redemption", when)


async def incident_for(db, report_id: int, *, state: str, received: dt.datetime,
                       accepted_after: dt.timedelta | None = None) -> int:
    """An incident started by `report_id`, in `state`."""
    accepted = received + accepted_after if accepted_after else None
    incident = await db.fetchval(
        """INSERT INTO incidents (category, lat, lon, cell, area_id, state, origin_report_id, last_captured_at,
                                  dispatched_at, accepted_at, reject_reason, created_at, updated_at)
           SELECT r.category, r.lat, r.lon, r.cell, (SELECT id FROM areas WHERE code = $2), $3::text, r.id,
                  r.captured_at, r.received_at, $4, CASE WHEN $3::text = 'rejected' THEN 'not_a_hazard' END,
                  r.received_at, coalesce($4, r.received_at)
           FROM reports r WHERE r.id = $1 RETURNING id""",
        report_id, GRID, state, accepted)
    await db.execute("UPDATE reports SET incident_id = $1, state = 'processed', processed_at = received_at "
                     "WHERE id = $2", incident, report_id)
    return incident


async def report_at(db, clock, member_id: int, when: dt.datetime) -> int:
    clock.set(when)
    return await make_report(db, clock, reporter_id=member_id)


@pytest.fixture
async def town(db, login, clock):
    """Riders of community C02 (A on one of its grids), D in C05, E deactivated, and their ledgers.

    November 2026 (Shanghai):           points  first  corrob.
      A  10 first + 2 + 2 corr. − 2 reversed + 5 bonus   17      1      1
      C  10 first + 7 adjustment (30th, 23:30)           17      1      0
      B  15 first − 5 not_a_hazard (redemption −50 ignored) 10   1      0
      D  (C05) 50 adjustment                             50
      E  (deactivated) 100 adjustment                    —
    Outside November: A +20 in October; C +3 on 1 December 00:10 (Shanghai).
    """
    supervisor = await login("supervisor", "13911110001", [COMMUNITY])
    outsider = await login("supervisor", "13911110002", [OTHER_COMMUNITY])
    a = await login("courier", "13922220001", [GRID], platform="meituan")
    b = await login("courier", "13922220002", [COMMUNITY], platform="meituan")
    c = await login("courier", "13922220003", [COMMUNITY], platform="eleme")
    d = await login("courier", "13922220004", [OTHER_COMMUNITY], platform="meituan")
    e = await login("courier", "13922220005", [COMMUNITY], platform="meituan")

    await ledger(db, a.member_id, "first_report", 10, sh("2026-11-03"))
    await ledger(db, a.member_id, "corroboration", 2, sh("2026-11-10"))
    reversed_row = await ledger(db, a.member_id, "corroboration", 2, sh("2026-11-11"))
    await ledger(db, a.member_id, "reversal", -2, sh("2026-11-12"), source_id=reversed_row)
    await ledger(db, a.member_id, "resolve_bonus", 5, sh("2026-11-20"))
    await ledger(db, a.member_id, "first_report", 20, sh("2026-10-15"))
    await ledger(db, c.member_id, "first_report", 10, sh("2026-11-02"))
    await ledger(db, c.member_id, "adjustment", 7, sh("2026-11-30", "23:30"))
    await ledger(db, c.member_id, "adjustment", 3, sh("2026-12-01", "00:10"))
    await ledger(db, b.member_id, "first_report", 15, sh("2026-11-05"))
    await ledger(db, b.member_id, "not_a_hazard", -5, sh("2026-11-06"))
    await ledger(db, b.member_id, "redemption", -50, sh("2026-11-07"))
    await ledger(db, d.member_id, "adjustment", 50, sh("2026-11-08"))
    await ledger(db, e.member_id, "adjustment", 100, sh("2026-11-09"))
    await db.execute("UPDATE members SET status = 'deactivated', deactivated_at = now() WHERE id = $1", e.member_id)

    # A's November reports: one accepted 10 minutes after receipt, one that joined B's incident (a
    # duplicate), one rejected; one in October that November does not count.
    r1 = await report_at(db, clock, a.member_id, sh("2026-11-03", "09:00"))
    await incident_for(db, r1, state="accepted", received=sh("2026-11-03", "09:00"),
                       accepted_after=dt.timedelta(minutes=10))
    origin = await report_at(db, clock, b.member_id, sh("2026-11-04", "08:00"))
    shared = await incident_for(db, origin, state="dispatched", received=sh("2026-11-04", "08:00"))
    r2 = await report_at(db, clock, a.member_id, sh("2026-11-04", "08:30"))
    await db.execute("UPDATE reports SET incident_id = $1, state = 'processed', processed_at = received_at "
                     "WHERE id = $2", shared, r2)
    r3 = await report_at(db, clock, a.member_id, sh("2026-11-05", "10:00"))
    await incident_for(db, r3, state="rejected", received=sh("2026-11-05", "10:00"))
    old = await report_at(db, clock, a.member_id, sh("2026-10-20", "10:00"))
    await incident_for(db, old, state="accepted", received=sh("2026-10-20", "10:00"),
                       accepted_after=dt.timedelta(hours=5))
    await db.execute("INSERT INTO flags (kind, member_id, report_id) VALUES ('burst', $1, $2)", a.member_id, r3)
    await db.execute("INSERT INTO flags (kind, member_id, report_id, state, decided_at) "
                     "VALUES ('burst', $1, $2, 'cleared', now())", a.member_id, r2)
    clock.set(sh("2026-11-26", "10:00"))
    async with db.acquire() as conn, conn.transaction():
        await refresh_report_figures(conn, now=clock.now())
    return {"supervisor": supervisor, "outsider": outsider, "a": a, "b": b, "c": c, "d": d, "e": e}


async def ranking(client, caller, **params) -> dict:
    reply = await client.get(URL, params=params, headers=caller.headers)
    assert reply.status_code == 200, reply.text
    return reply.json()


def by_name(body: dict, town: dict) -> list[tuple[str, int, int]]:
    names = {town[k].member_id: k for k in "abcde"}
    return [(names[i["member_id"]], i["points"], i["rank"]) for i in body["items"]]


async def test_supervisor_sees_the_month_of_their_subtree_with_ties_sharing_a_rank(client, town):
    body = await ranking(client, town["supervisor"], period="month", at="2026-11")
    assert (body["period"], body["start"], body["end"], body["ranked"]) == ("2026-11", "2026-11-01", "2026-11-30", 3)
    # A and C tie at 17 (C's 23:30 on the 30th counts, its 00:10 on 1 December does not); B 15 − 5.
    assert by_name(body, town) == [("a", 17, 1), ("c", 17, 1), ("b", 10, 3)]
    assert [i["top_percent"] for i in body["items"]] == [34, 34, 100]
    assert body["me"] is None and body["next_cursor"] is None


async def test_each_riders_figures_match_the_hand_count(client, town):
    body = await ranking(client, town["supervisor"], at="2026-11")
    a = body["items"][0]
    assert a["member_id"] == town["a"].member_id
    assert (a["reports"], a["accepted_reports"], a["first_discoveries"], a["corroborations"]) == (3, 1, 1, 1)
    assert (a["acceptance_rate"], a["duplicate_rate"], a["median_accept_s"], a["open_flags"]) == (
        0.3333, 0.3333, 600, 1)
    b = body["items"][2]
    assert (b["reports"], b["accepted_reports"], b["acceptance_rate"], b["duplicate_rate"]) == (1, 0, 0.0, 0.0)
    assert b["median_accept_s"] is None and b["first_discoveries"] == 1
    c = body["items"][1]
    assert (c["reports"], c["acceptance_rate"], c["first_discoveries"]) == (0, None, 1)


async def test_report_figures_follow_incidents_at_the_next_refresh(client, db, clock, services, town):
    """B's incident, which A's second report joined, is accepted: A's figures change at the cron's next pass."""
    shared = await db.fetchval("SELECT incident_id FROM reports WHERE reporter_id = $1 AND received_at = $2",
                               town["a"].member_id, sh("2026-11-04", "08:30"))
    clock.advance(minutes=1)
    await db.execute("UPDATE incidents SET state = 'accepted', accepted_at = $2, updated_at = $3 WHERE id = $1",
                     shared, sh("2026-11-04", "08:50"), clock.now())
    before = (await ranking(client, town["supervisor"], at="2026-11"))["items"][0]
    assert (before["accepted_reports"], before["median_accept_s"]) == (1, 600)  # as of the last refresh
    assert await rankings_job.refresh_report_figures(services) == 2  # A and B, whose reports it holds
    body = await ranking(client, town["supervisor"], at="2026-11")
    a = body["items"][0]
    # 09:00 → 09:10 (600 s) and 08:30 → 08:50 (1,200 s): the median of two is their mean.
    assert (a["accepted_reports"], a["acceptance_rate"], a["median_accept_s"]) == (2, 0.6667, 900)
    assert body["figures_refreshed_at"] is not None
    # The change is looked at again until it is older than the margin (a late commit is not missed),
    # then no more: with nothing new, a pass recomputes nobody.
    clock.advance(minutes=10)
    assert await rankings_job.refresh_report_figures(services) == 2
    assert await rankings_job.refresh_report_figures(services) == 0


async def test_quarter_and_year_add_up_their_months(client, town):
    quarter = await ranking(client, town["supervisor"], period="quarter", at="2026-Q4")
    assert by_name(quarter, town) == [("a", 37, 1), ("c", 20, 2), ("b", 10, 3)]
    assert (await ranking(client, town["supervisor"], period="quarter", at="2026-11"))["period"] == "2026-Q4"
    year = await ranking(client, town["supervisor"], period="year", at="2026")
    assert by_name(year, town) == [("a", 37, 1), ("c", 20, 2), ("b", 10, 3)]
    october = await ranking(client, town["supervisor"], period="month", at="2026-10")
    assert by_name(october, town) == [("a", 20, 1)]
    # Without `at`: the clock's month (26 November 2026).
    assert (await ranking(client, town["supervisor"]))["period"] == "2026-11"


async def test_admin_sees_everyone_active_and_the_scope_and_platform_narrow_it(client, town, admin):
    everyone = await ranking(client, admin, at="2026-11")
    assert by_name(everyone, town) == [("d", 50, 1), ("a", 17, 2), ("c", 17, 2), ("b", 10, 4)]  # not E
    grid = await ranking(client, town["supervisor"], at="2026-11", scope=GRID)
    assert by_name(grid, town) == [("a", 17, 1)] and grid["ranked"] == 1
    eleme = await ranking(client, town["supervisor"], at="2026-11", platform="eleme")
    assert by_name(eleme, town) == [("c", 17, 1)]


async def test_a_supervisor_never_sees_another_subtree(client, town):
    outsider = await ranking(client, town["outsider"], at="2026-11")
    assert by_name(outsider, town) == [("d", 50, 1)]
    for scope in (COMMUNITY, GRID, "NO-SUCH-AREA"):
        reply = await client.get(URL, params={"scope": scope}, headers=town["outsider"].headers)
        assert reply.status_code == 404, reply.text


async def test_a_rider_sees_pseudonyms_and_their_own_row(client, town):
    body = await ranking(client, town["b"], at="2026-11")
    assert [i["pseudonym"] for i in body["items"]] and all("member_id" not in i for i in body["items"])
    assert all("display_name" not in i and "open_flags" not in i for i in body["items"])
    assert [i["points"] for i in body["items"]] == [17, 17, 10]
    assert (body["me"]["points"], body["me"]["rank"], body["me"]["top_percent"]) == (10, 3, 100)
    # A rider on one grid ranks among that grid's riders.
    own = await ranking(client, town["a"], at="2026-11")
    assert [i["points"] for i in own["items"]] == [17] and own["me"]["rank"] == 1
    reply = await client.get(URL, params={"scope": OTHER_COMMUNITY}, headers=town["a"].headers)
    assert reply.status_code == 404


async def test_moving_or_deactivating_a_rider_moves_their_rows(client, db, town, admin):
    reply = await client.put(f"/api/v1/members/{town['c'].member_id}/areas", json={"area_codes": [OTHER_COMMUNITY]},
                             headers=admin.headers)
    assert reply.status_code == 200, reply.text
    assert by_name(await ranking(client, town["supervisor"], at="2026-11"), town) == [("a", 17, 1), ("b", 10, 2)]
    assert by_name(await ranking(client, town["outsider"], at="2026-11"), town) == [("d", 50, 1), ("c", 17, 2)]
    await db.execute("UPDATE members SET platform = 'jd' WHERE id = $1", town["d"].member_id)
    assert by_name(await ranking(client, town["outsider"], at="2026-11", platform="jd"), town) == [("d", 50, 1)]
    await db.execute("UPDATE members SET status = 'deactivated', deactivated_at = now() WHERE id = $1",
                     town["d"].member_id)
    assert by_name(await ranking(client, town["outsider"], at="2026-11"), town) == [("c", 17, 1)]


async def test_pages_continue_ranks_across_a_tie_on_the_page_boundary(client, db, login, admin):
    supervisor = await login("supervisor", "13911110009", [CROWD])
    riders = [await login("courier", f"1393333{i:04d}", [CROWD]) for i in range(55)]
    # Rider i has 100 − ⌈i/2⌉ points: 100, 99, 99, 98, 98, …; riders 49 and 50 tie at 75 across pages.
    for i, rider in enumerate(riders):
        await ledger(db, rider.member_id, "adjustment", 100 - (i + 1) // 2, sh("2026-11-10"))
    first = await ranking(client, supervisor, at="2026-11")
    assert first["ranked"] == 55 and len(first["items"]) == 50 and first["next_cursor"]
    assert [i["rank"] for i in first["items"][:5]] == [1, 2, 2, 4, 4]
    assert (first["items"][49]["points"], first["items"][49]["rank"]) == (75, 50)
    second = await ranking(client, supervisor, at="2026-11", cursor=first["next_cursor"])
    assert [(i["points"], i["rank"]) for i in second["items"]] == [(75, 50), (74, 52), (74, 52), (73, 54), (73, 54)]
    assert second["next_cursor"] is None
    seen = [i["member_id"] for i in first["items"] + second["items"]]
    assert sorted(seen) == sorted(r.member_id for r in riders)


@pytest.mark.parametrize(("params", "field"), [
    ({"period": "week"}, "period"), ({"at": "2026-13"}, "at"), ({"at": "26-11"}, "at"),
    ({"period": "month", "at": "2026"}, "at"), ({"period": "month", "at": "2026-Q4"}, "at"),
    ({"platform": "taxi"}, "platform"), ({"cursor": "not-a-cursor"}, "cursor"),
    ({"cursor": "WzEsMiwzXQ"}, "cursor"),  # [1,2,3]: three numbers, not four
    ({"cursor": "WzFlOTksMSwxLDFd"}, "cursor"),  # [1e99,1,1,1]
    ({"cursor": "WzEwLDEsNSwyXQ"}, "cursor"),  # [10,1,5,2]: rank 5 after only 2 rows
])
async def test_bad_parameters_are_422_with_the_field_named(client, town, params, field):
    reply = await client.get(URL, params=params, headers=town["supervisor"].headers)
    assert reply.status_code == 422, reply.text
    assert reply.json()["errors"][0]["field"] == field


async def test_the_ranking_table_agrees_with_the_ledger(db, town):
    """ranking_totals is kept by triggers; recomputing every period from the ledger gives the same rows."""
    drift = await db.fetch(
        """WITH fresh AS (
               SELECT p.period, l.member_id, sum(l.amount) AS points
               FROM points_ledger l JOIN members m ON m.id = l.member_id AND m.role = 'courier'
               CROSS JOIN LATERAL (VALUES (to_char(l.local_day, 'YYYY-MM')), (to_char(l.local_day, 'YYYY-"Q"Q')),
                                          (to_char(l.local_day, 'YYYY'))) AS p (period)
               WHERE l.counts_toward_ranking AND l.reason <> 'redemption'
               GROUP BY 1, 2)
           SELECT * FROM fresh f FULL JOIN ranking_totals t USING (period, member_id)
           WHERE f.points IS DISTINCT FROM t.points""")
    assert drift == []
    assert await db.fetchval("SELECT count(*) FROM ranking_totals") > 0


async def test_the_ranked_counts_agree_with_the_rows_after_moves_and_deactivations(client, db, town, admin):
    """ranking_counts (migration 0012) is kept by triggers; counting the rows again gives the same."""
    await client.put(f"/api/v1/members/{town['c'].member_id}/areas", json={"area_codes": [OTHER_COMMUNITY]},
                     headers=admin.headers)
    await db.execute("UPDATE members SET platform = 'jd' WHERE id = $1", town["d"].member_id)
    await db.execute("UPDATE members SET status = 'deactivated', deactivated_at = now() WHERE id = $1",
                     town["b"].member_id)
    drift = await db.fetch(
        """WITH fresh AS (
               SELECT key, count(*) AS riders
               FROM ranking_totals t, unnest(ranking_count_keys(t.period, t.scope_keys, t.platform, t.ranked)) AS key
               GROUP BY key)
           SELECT * FROM fresh f FULL JOIN (SELECT * FROM ranking_counts WHERE riders > 0) c USING (key)
           WHERE f.riders IS DISTINCT FROM c.riders""")
    assert drift == []
    outsider = await ranking(client, town["outsider"], at="2026-11")
    assert outsider["ranked"] == 2  # D and, moved in, C


def test_periods_and_percentages():
    now = sh("2026-01-01", "00:30")  # 31 December 2025 16:30 UTC: already January in Shanghai
    assert period_of("month", None, now).key == "2026-01"
    assert period_of("quarter", "2026-12", now).key == "2026-Q4"
    quarter = period_of("quarter", "2026-Q1", now)
    assert (quarter.start, quarter.end) == (dt.date(2026, 1, 1), dt.date(2026, 4, 1))
    assert period_of("year", "2026-07", now).end == dt.date(2027, 1, 1)
    with pytest.raises(ValidationFailed):
        period_of("month", "2026-00", now)
    assert (top_percent(1, 200), top_percent(3, 200), top_percent(200, 200), top_percent(1, 1)) == (1, 2, 100, 100)
    assert page_ranks([9, 9, 7, 7, 7, 5], None) == [1, 1, 3, 3, 3, 6]
    # Continuing a tie from the previous page (its last row ranked 4th of the 5 seen), then new ranks.
    assert page_ranks([9, 9, 7, 5], PageCursor(points=9, member_id=3, rank=4, seen=5)) == [4, 4, 8, 9]
    assert page_ranks([8, 7], PageCursor(points=9, member_id=3, rank=4, seen=5)) == [6, 7]
