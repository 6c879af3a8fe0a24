"""CSV exports (api/exports.py, domain/csv_export.py): content in both languages, phones by role,
formula neutralisation, scoping, refusals, and a million rows streamed through a real server."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import threading
import time
from pathlib import Path

import httpx
import pytest

from gridrider.api import exports as api_exports
from gridrider.clock import SHANGHAI
from gridrider.domain import csv_export
from gridrider.domain.csv_export import BOM, CsvChunks, encode_csv, neutralise
from gridrider.domain.geo import cell_of
from tests.conftest import running_api
from tests.factories import make_report

URL = "/api/v1/exports/incidents.csv"
GRID = "ZW-ZWZ-C02-G01"
COMMUNITY = "ZW-ZWZ-C02"
OTHER_GRID = "ZW-ZWZ-C03-G01"
OTHER_COMMUNITY = "ZW-ZWZ-C03"
RIDER_PHONE = "13922220001"
DAY = "2026-11-26"  # the day of the test clock (conftest.T0, 10:00 in Shanghai)

ZH_HEADER = ["事件编号", "创建时间", "类别", "状态", "区域编码", "区域名称", "纬度", "经度", "上报数", "首报人",
             "首报人电话", "派发时间", "受理时间", "处理时间", "办结时间", "超时环节", "退回原因", "首报备注"]
EN_HEADER = ["Incident ID", "Created", "Category", "State", "Area code", "Area name", "Latitude", "Longitude",
             "Reports", "First reporter", "First reporter phone", "Dispatched", "Accepted", "Resolved", "Closed",
             "Overdue stages", "Reject reason", "Origin report note"]


def shanghai(day: str, clock_time: str) -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T{clock_time}").replace(tzinfo=SHANGHAI)


async def incident(db, clock, *, grid: str, reporter_id: int, created: dt.datetime, state: str = "accepted",
                   category: str = "garbage_pileup", lat: float = 42.38, lon: float = 122.53, note: str | None = None,
                   accept_overdue: bool = False, reject_reason: str | None = None) -> int:
    """An incident with its origin report; dispatched at creation, accepted 30 minutes later when it got there."""
    report_id = await make_report(db, clock, reporter_id=reporter_id, category=category, lat=lat, lon=lon,
                                  captured_at=created)
    if note is not None:
        await db.execute("UPDATE reports SET note = $1 WHERE id = $2", note, report_id)
    reached = {"dispatched": 1, "accepted": 2, "resolved": 3, "closed": 4, "rejected": 2}.get(state, 0)
    at = {1: created, 2: created + dt.timedelta(minutes=30), 3: created + dt.timedelta(days=1),
          4: created + dt.timedelta(days=8)}
    return await db.fetchval(
        """INSERT INTO incidents (category, lat, lon, cell, area_id, state, origin_report_id, last_captured_at,
                                  dispatched_at, accepted_at, resolved_at, closed_at, accept_overdue_at, reject_reason,
                                  created_at, updated_at)
           VALUES ($1, $2, $3, $4, (SELECT id FROM areas WHERE code = $5), $6, $7, $8, $9, $10, $11, $12, $13, $14,
                   $8, $8)
           RETURNING id""",
        category, lat, lon, cell_of(lat, lon), grid, state, report_id, created,
        at[1] if reached >= 1 else None, at[2] if reached >= 2 else None, at[3] if reached >= 3 else None,
        at[4] if reached >= 4 else None, created + dt.timedelta(hours=25) if accept_overdue else None,
        reject_reason if state == "rejected" else None)


async def insert_incidents(db, count: int, *, grid: str, first_reporter_id: int, newest: dt.datetime) -> None:
    """`count` incidents in one statement, one a second back from `newest`, through the states in turn
    (each with the times and reason its CHECKs ask for), first reporter fixed."""
    async with db.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL synchronous_commit = off")  # test data; nothing to lose on a crash
        # Every reference below is valid by construction: skipping the foreign-key triggers halves the time.
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(
            """INSERT INTO incidents (category, lat, lon, cell, area_id, state, report_count, last_captured_at,
                                      first_reporter_id, reject_reason, dispatched_at, accepted_at, resolved_at,
                                      closed_at, created_at, updated_at)
               SELECT (ARRAY['garbage_pileup', 'flooding', 'streetlight_out', 'blocked_fire_lane'])[1 + g % 4],
                      42.38 + (g % 1000) * 1e-5, 122.53 - (g % 997) * 1e-5, $1, $2, s.state, 1 + g % 5, s.t, $3,
                      CASE WHEN s.state = 'rejected' THEN 'cannot_locate' END,
                      CASE WHEN s.state <> 'unrouted' THEN s.t END,
                      CASE WHEN s.state IN ('accepted', 'resolved', 'closed') THEN s.t + interval '30 minutes' END,
                      CASE WHEN s.state IN ('resolved', 'closed') THEN s.t + interval '1 day' END,
                      CASE WHEN s.state = 'closed' THEN s.t + interval '8 days' END,
                      s.t, s.t
               FROM generate_series(1, $4::int) AS g,
                    LATERAL (SELECT (ARRAY['unrouted', 'dispatched', 'accepted', 'resolved', 'closed',
                                           'rejected'])[1 + g % 6] AS state,
                                    $5::timestamptz - g * interval '1 second' AS t) AS s""",
            cell_of(42.38, 122.53), await conn.fetchval("SELECT id FROM areas WHERE code = $1", grid),
            first_reporter_id, count, newest)
        await conn.execute("ANALYZE incidents")


def rows_of(reply: httpx.Response) -> list[list[str]]:
    text = reply.content.decode("utf-8")
    assert text.startswith(BOM)
    return list(csv.reader(io.StringIO(text.removeprefix(BOM))))


@pytest.fixture
def people(login, db):
    async def make():
        supervisor = await login("supervisor", "13911110001", [COMMUNITY])
        rider = await login("courier", RIDER_PHONE, [GRID])
        pseudonym = await db.fetchval("SELECT pseudonym FROM members WHERE id = $1", rider.member_id)
        return supervisor, rider, pseudonym

    return make


async def area_name(db, code: str, column: str = "name_zh") -> str:
    return await db.fetchval(f"SELECT {column} FROM areas WHERE code = $1", code)


# ── content ───────────────────────────────────────────────────────────────────────────────────────


async def test_a_supervisor_gets_chinese_csv_with_bom_local_times_and_whole_phones(client, db, clock, people):
    supervisor, rider, pseudonym = await people()
    incident_id = await incident(db, clock, grid=GRID, reporter_id=rider.member_id,
                                 created=shanghai(DAY, "09:00:00"), accept_overdue=True, note="路口堆了三天")

    reply = await client.get(URL, headers=supervisor.headers, params={"from": DAY, "to": DAY})

    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "text/csv; charset=utf-8"
    assert reply.headers["content-disposition"] == f'attachment; filename="incidents-{COMMUNITY}-{DAY}-{DAY}.csv"'
    assert reply.headers["cache-control"] == "no-store"
    assert reply.headers["content-language"] == "zh-CN"
    assert reply.content.startswith(b"\xef\xbb\xbf")
    header, *rows = rows_of(reply)
    assert header == ZH_HEADER
    assert rows == [[
        str(incident_id), "2026-11-26 09:00:00", "垃圾堆积", "已受理", GRID, await area_name(db, GRID),
        "42.38", "122.53", "1", pseudonym, RIDER_PHONE, "2026-11-26 09:00:00", "2026-11-26 09:30:00", "", "",
        "受理", "", "路口堆了三天",
    ]]


async def test_english_by_the_lang_parameter_or_accept_language(client, db, clock, people):
    supervisor, rider, _pseudonym = await people()
    await incident(db, clock, grid=GRID, reporter_id=rider.member_id, created=shanghai(DAY, "08:15:00"),
                   state="rejected", reject_reason="not_a_hazard", accept_overdue=True)
    english = {"from": DAY, "to": DAY, "lang": "en"}

    for params, headers in ((english, {}), ({"from": DAY, "to": DAY}, {"Accept-Language": "en-GB,en;q=0.9"})):
        reply = await client.get(URL, headers={**supervisor.headers, **headers}, params=params)
        assert reply.status_code == 200, reply.text
        assert reply.headers["content-language"] == "en"
        header, row = rows_of(reply)
        assert header == EN_HEADER
        assert row[2:6] == ["piled garbage", "rejected", GRID, await area_name(db, GRID, "name_en")]
        assert row[15:17] == ["accept", "not a hazard"]

    # The parameter wins over the header, both ways.
    reply = await client.get(URL, headers={**supervisor.headers, "Accept-Language": "en"},
                             params={"from": DAY, "to": DAY, "lang": "zh"})
    header, row = rows_of(reply)
    assert header == ZH_HEADER and row[2:4] == ["垃圾堆积", "未采纳"] and row[15:17] == ["受理", "不属于隐患"]


async def test_phones_are_whole_for_supervisors_and_masked_for_admins(client, db, clock, people, admin):
    supervisor, rider, _pseudonym = await people()
    await incident(db, clock, grid=GRID, reporter_id=rider.member_id, created=shanghai(DAY, "09:00:00"))
    phone_column = ZH_HEADER.index("首报人电话")

    by_supervisor = rows_of(await client.get(URL, headers=supervisor.headers, params={"from": DAY, "to": DAY}))
    by_admin = rows_of(await client.get(URL, headers=admin.headers, params={"from": DAY, "to": DAY}))

    assert by_supervisor[1][phone_column] == RIDER_PHONE
    # DESIGN.md §8: "exports mask phones except for supervisors" — an admin is not a supervisor.
    assert by_admin[1][phone_column] == "139****0001"
    assert by_admin[0] == ZH_HEADER and len(by_admin) == 2


async def test_text_that_would_run_as_a_formula_is_neutralised_and_numbers_stay_numbers(client, db, clock, people):
    supervisor, rider, _pseudonym = await people()
    await db.execute("UPDATE categories SET name_zh = '=HYPERLINK(\"http://evil\",\"点我\")' "
                     "WHERE code = 'garbage_pileup'")
    await db.execute("UPDATE areas SET name_zh = '@SUM(1+1)*cmd' WHERE code = $1", GRID)
    await db.execute("UPDATE members SET pseudonym = '+骑手' WHERE id = $1", rider.member_id)
    await incident(db, clock, grid=GRID, reporter_id=rider.member_id, created=shanghai(DAY, "09:00:00"),
                   lat=-33.8568, lon=-70.25, note="-2+3")
    await incident(db, clock, grid=GRID, reporter_id=rider.member_id, created=shanghai(DAY, "09:01:00"),
                   note="\t=1+1")

    reply = await client.get(URL, headers=supervisor.headers, params={"from": DAY, "to": DAY})

    _header, first, second = rows_of(reply)
    assert first[2] == '\'=HYPERLINK("http://evil","点我")'
    assert first[5] == "'@SUM(1+1)*cmd"
    assert first[9] == "'+骑手"
    assert first[17] == "'-2+3"
    assert second[17] == "'\t=1+1"
    # Coordinates the export writes itself are numbers: a negative one is not text to neutralise.
    assert (first[6], first[7]) == ("-33.8568", "-70.25")
    assert '"\'=HYPERLINK(""http://evil"",""点我"")"' in reply.content.decode()  # quoted as CSV asks


async def test_an_empty_export_is_the_bom_and_the_header(client, people):
    supervisor, _rider, _pseudonym = await people()
    reply = await client.get(URL, headers=supervisor.headers, params={"from": DAY, "to": DAY, "lang": "en"})
    assert reply.status_code == 200
    assert reply.content == (BOM + ",".join(EN_HEADER) + "\r\n").encode()


# ── dates ─────────────────────────────────────────────────────────────────────────────────────────


async def test_days_are_shanghai_days_both_included_and_default_to_this_month(client, db, clock, people):
    supervisor, rider, _pseudonym = await people()
    made = {}
    for name, when in (("last_month", shanghai("2026-10-31", "23:59:59")),
                       ("month_start", shanghai("2026-11-01", "00:00:00")),
                       ("yesterday_late", shanghai("2026-11-25", "23:59:59")),
                       ("today", shanghai(DAY, "09:59:59"))):
        made[name] = await incident(db, clock, grid=GRID, reporter_id=rider.member_id, created=when)

    reply = await client.get(URL, headers=supervisor.headers)

    assert reply.headers["content-disposition"] == \
        f'attachment; filename="incidents-{COMMUNITY}-2026-11-01-{DAY}.csv"'
    assert [int(row[0]) for row in rows_of(reply)[1:]] == [made["month_start"], made["yesterday_late"],
                                                           made["today"]]
    one_day = rows_of(await client.get(URL, headers=supervisor.headers,
                                       params={"from": "2026-11-25", "to": "2026-11-25"}))
    assert [int(row[0]) for row in one_day[1:]] == [made["yesterday_late"]]
    from_only = rows_of(await client.get(URL, headers=supervisor.headers, params={"from": "2026-10-31"}))
    assert len(from_only) == 1 + 4  # `to` defaults to today
    to_only = rows_of(await client.get(URL, headers=supervisor.headers, params={"to": "2026-10-31"}))
    assert [int(row[0]) for row in to_only[1:]] == [made["last_month"]]  # from the first of `to`'s month


@pytest.mark.parametrize(("params", "field", "code"), [
    ({"from": "2026-13-01"}, "from", "date_invalid"),
    ({"to": "2026-02-30"}, "to", "date_invalid"),
    ({"from": "20261126"}, "from", "date_invalid"),
    ({"from": "2026-W48-1"}, "from", "date_invalid"),
    ({"to": "yesterday"}, "to", "date_invalid"),
    ({"from": "1999-12-31"}, "from", "date_out_of_range"),
    ({"to": "9999-12-31"}, "to", "date_out_of_range"),
    ({"from": "2026-11-27", "to": "2026-11-26"}, "from", "date_range_reversed"),
    ({"from": "2025-01-01", "to": "2026-11-26"}, "to", "date_range_too_long"),
    ({"lang": "fr"}, "lang", "export_lang_unsupported"),
])
async def test_bad_dates_and_languages_are_422_with_a_code(client, people, params, field, code):
    supervisor, _rider, _pseudonym = await people()
    reply = await client.get(URL, headers=supervisor.headers, params=params)
    assert reply.status_code == 422, reply.text
    assert reply.headers["content-type"].startswith("application/problem+json")
    body = reply.json()
    # A bad range is named by its rule (api/day_range.py); any other bad field is validation_failed.
    assert body["code"] == (code if code.startswith("date_") else "validation_failed")
    assert [(e["field"], e["code"]) for e in body["errors"]] == [(field, code)]

    english = await client.get(URL, headers={**supervisor.headers, "Accept-Language": "en"}, params=params)
    assert english.json()["errors"][0]["message"] != body["errors"][0]["message"]
    assert english.json()["errors"][0]["message"].isascii()


# ── who sees what ─────────────────────────────────────────────────────────────────────────────────


async def test_rows_stay_inside_the_callers_subtree_and_a_foreign_scope_is_404(client, db, clock, people, admin,
                                                                                login):
    supervisor, rider, _pseudonym = await people()
    street = await login("supervisor", "13911110003", ["ZW-ZWZ"])
    mine = await incident(db, clock, grid=GRID, reporter_id=rider.member_id, created=shanghai(DAY, "09:00:00"))
    other = await incident(db, clock, grid=OTHER_GRID, reporter_id=rider.member_id,
                           created=shanghai(DAY, "09:05:00"))

    async def ids(caller, **params) -> list[int]:
        reply = await client.get(URL, headers=caller.headers, params={"from": DAY, "to": DAY, **params})
        assert reply.status_code == 200, reply.text
        return [int(row[0]) for row in rows_of(reply)[1:]]

    assert await ids(supervisor) == [mine]
    assert await ids(supervisor, scope=GRID) == [mine]
    assert await ids(supervisor, scope="ZW-ZWZ-C02-G02") == []
    assert await ids(street) == [mine, other]
    assert await ids(street, scope=OTHER_COMMUNITY) == [other]
    assert await ids(admin) == [mine, other]
    assert await ids(admin, scope=OTHER_GRID) == [other]

    for scope in (OTHER_COMMUNITY, OTHER_GRID, "ZW-ZWZ", "ZW", "NO-SUCH-AREA"):
        reply = await client.get(URL, headers=supervisor.headers, params={"scope": scope})
        assert reply.status_code == 404, scope
        assert reply.json()["code"] == "area_not_found"

    reply = await client.get(URL, headers=admin.headers, params={"scope": GRID, "from": DAY, "to": DAY})
    assert reply.headers["content-disposition"] == f'attachment; filename="incidents-{GRID}-{DAY}-{DAY}.csv"'
    reply = await client.get(URL, headers=admin.headers, params={"from": DAY, "to": DAY})
    assert reply.headers["content-disposition"] == f'attachment; filename="incidents-all-{DAY}-{DAY}.csv"'


async def test_couriers_and_grid_members_are_refused(client, people, login):
    _supervisor, rider, _pseudonym = await people()
    grid_member = await login("grid_member", "13933330001", [GRID])
    for caller in (rider, grid_member):
        reply = await client.get(URL, headers=caller.headers)
        assert reply.status_code == 403
        assert reply.json()["code"] == "forbidden"
    assert (await client.get(URL)).status_code == 401


async def test_too_many_exports_at_once_are_429_and_a_finished_export_frees_its_slot(client, people, monkeypatch):
    supervisor, _rider, _pseudonym = await people()
    assert (await client.get(URL, headers=supervisor.headers)).status_code == 200
    assert api_exports.EXPORT_SLOTS.open == 0

    monkeypatch.setattr(api_exports.EXPORT_SLOTS, "limit", 0)
    reply = await client.get(URL, headers=supervisor.headers)
    assert reply.status_code == 429
    assert reply.json()["code"] == "rate_limited" and int(reply.headers["retry-after"]) > 0


# ── the shared CSV pieces ─────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(("text", "expected"), [
    ("=1+1", "'=1+1"), ("+86", "'+86"), ("-x", "'-x"), ("@A1", "'@A1"), ("\tx", "'\tx"), ("\rx", "'\rx"),
    ("", ""), ("a=b", "a=b"), ("'=quoted", "'=quoted"), ("垃圾", "垃圾"), (" =1", " =1"),
])
def test_neutralise(text, expected):
    assert neutralise(text) == expected


def test_chunks_hold_whole_rows_and_only_the_first_carries_the_bom():
    chunks = CsvChunks(["id", "name"], rows_per_chunk=2)
    out = [chunks.row([1, "=a"]), chunks.row([-2.5, None]), chunks.row([3, "c,d"])]
    assert out[0] is None
    assert out[1] == (BOM + "id,name\r\n1,'=a\r\n-2.5,\r\n").encode()
    assert out[2] is None
    assert chunks.flush() == b'3,"c,d"\r\n'
    assert chunks.flush() == b""
    assert chunks.rows == 3


async def test_encode_csv_sends_the_header_at_once_then_chunks_of_rows():
    async def rows():
        for n in range(5):
            yield [n, f"r{n}"]

    chunks = [chunk async for chunk in encode_csv(["n", "v"], rows(), rows_per_chunk=2, bom=False)]
    assert [chunk.count(b"\n") for chunk in chunks] == [1, 2, 2, 1]  # the header alone first
    assert b"".join(chunks).decode() == "n,v\r\n" + "".join(f"{n},r{n}\r\n" for n in range(5))


def test_attachment_file_names_are_ascii_safe():
    headers = csv_export.attachment_headers('incidents-城南 "x"/../a.csv')
    assert headers["Content-Disposition"] == 'attachment; filename="incidents-_x_.._a.csv"'


# ── through a real server: a million rows, and a client that leaves ───────────────────────────────


@pytest.fixture
def api_server(settings, tmp_path, db):
    """`gridrider api` in a process of its own, so its memory is its own to measure."""
    log = tmp_path / "api.log"
    with running_api(settings, tmp_path / "api", log) as (url, pid):
        yield url, pid, log


def _reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # the kernel sets VmHWM back to VmRSS


def _kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


class RssSampler:
    """Samples a process's resident memory every few milliseconds from a thread; keeps the peak."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_kib, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, _kib(self.pid, "VmRSS"))
            self._stop.wait(0.01)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def _stream_lines(url: str, headers: dict[str, str], params: dict[str, str]) -> tuple[int, bytes]:
    """Reads an export to its end, counting lines, keeping only its first bytes."""
    lines, head = 0, b""
    async with httpx.AsyncClient(timeout=120) as http, http.stream("GET", url, headers=headers,
                                                                   params=params) as reply:
        assert reply.status_code == 200, await reply.aread()
        async for chunk in reply.aiter_raw():
            lines += chunk.count(b"\n")
            if len(head) < 4096:
                head += chunk[:4096]
    return lines, head


MILLION = 1_000_000


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_a_million_rows_stream_through_a_real_server_in_constant_memory(api_server, db, clock, people):
    url, pid, log = api_server
    supervisor, rider, _pseudonym = await people()
    began = time.perf_counter()
    await insert_incidents(db, MILLION, grid=GRID, first_reporter_id=rider.member_id, newest=clock.now())
    inserted = time.perf_counter()

    # Warm up the server's code paths and connection (about 36,000 rows on the clock's day) …
    warm_lines, _head = await _stream_lines(url + URL, supervisor.headers, {"from": DAY, "to": DAY})
    assert warm_lines == 1 + 36_000
    baseline_kib = _kib(pid, "VmRSS")
    _reset_peak(pid)
    # … then the whole million (the rows span the 12 days before the clock).
    with RssSampler(pid) as sampler:
        lines, head = await _stream_lines(url + URL, supervisor.headers, {"from": "2026-11-01", "to": DAY})
    streamed = time.perf_counter()
    peak_kib = max(_kib(pid, "VmHWM"), sampler.peak_kib)

    assert lines == MILLION + 1
    assert head.startswith(BOM.encode() + ",".join(ZH_HEADER).encode() + b"\r\n")
    growth_mb = (peak_kib - baseline_kib) / 1024
    print(f"\nexport of {MILLION:,} rows: insert {inserted - began:.1f} s, stream {streamed - inserted:.1f} s "
          f"(incl. {warm_lines - 1:,}-row warm-up); server RSS {baseline_kib / 1024:.1f} MB before, "
          f"peak {peak_kib / 1024:.1f} MB, growth {growth_mb:.1f} MB")
    assert growth_mb < 50, f"the server grew by {growth_mb:.1f} MB"
    assert "Traceback" not in log.read_text()


# Open transactions of clients of this worker's database other than the asking one: between tests
# that is only ever an export's cursor (the test's own pool and the server's other connections idle).
OPEN_TRANSACTIONS_SQL = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
  AND xact_start IS NOT NULL
"""


async def wait_for_open_transactions(db, count: int, within_s: float = 30.0) -> None:
    # 30 s, not 10: on a machine whose two cores were shared with a benchmark, 10 s once ran out.
    async with asyncio.timeout(within_s):
        while await db.fetchval(OPEN_TRANSACTIONS_SQL) != count:
            await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_a_client_that_leaves_mid_stream_gives_the_connection_back(api_server, db, clock, people):
    url, _pid, log = api_server
    supervisor, rider, _pseudonym = await people()
    await insert_incidents(db, 200_000, grid=GRID, first_reporter_id=rider.member_id, newest=clock.now())
    params = {"from": "2026-11-01", "to": DAY}

    async with httpx.AsyncClient(timeout=30) as http, \
            http.stream("GET", url + URL, headers=supervisor.headers, params=params) as reply:
        assert reply.status_code == 200
        async for _chunk in reply.aiter_raw():
            break
        # The server is mid-stream: its cursor's transaction is open while this client does not read.
        await wait_for_open_transactions(db, 1)
    # Leaving the block without reading the rest closed the connection; the server gives its back.
    await wait_for_open_transactions(db, 0)

    # The server is fine and exports again in full.
    lines, _head = await _stream_lines(url + URL, supervisor.headers, params)
    assert lines == 200_000 + 1
    assert await db.fetchval(OPEN_TRANSACTIONS_SQL) == 0
    assert "Traceback" not in log.read_text()
