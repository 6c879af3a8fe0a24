"""`calendar_overrides` on real PostgreSQL, the cached working-day calendar, and `gridrider calendar`."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sys
from pathlib import Path

import pytest

from gridrider.clock import SHANGHAI
from gridrider.db.calendar import load_overrides, save_overrides, work_calendar

D = dt.date


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=SHANGHAI)


NOW = at(2026, 11, 5, 9, 0)

# Days an admin would load for 2027 before the package knows the year (New Year's Day off, a working Saturday).
DAYS_2027 = [(D(2027, 1, 1), False, "元旦"), (D(2027, 1, 2), True, "调休上班")]


async def test_overrides_are_saved_and_replaced_by_day(db) -> None:
    async with db.acquire() as conn:
        assert await load_overrides(conn) == {}
        assert await save_overrides(conn, DAYS_2027, source="国办发明电", now=NOW) == 2
        assert await load_overrides(conn) == {D(2027, 1, 1): False, D(2027, 1, 2): True}
        # Reloading a corrected file: the day is replaced, not duplicated; the other day stays.
        later = NOW + dt.timedelta(days=1)
        assert await save_overrides(conn, [(D(2027, 1, 2), False, None)], source="admin", now=later) == 1
        assert await load_overrides(conn) == {D(2027, 1, 1): False, D(2027, 1, 2): False}
        rows = await conn.fetch("SELECT day, source, note, created_at FROM calendar_overrides ORDER BY day")
    assert [(r["source"], r["note"], r["created_at"]) for r in rows] == [
        ("国办发明电", "元旦", NOW), ("admin", None, later)]
    async with db.acquire() as conn:
        assert await save_overrides(conn, [], source="admin", now=NOW) == 0


async def test_the_calendar_is_cached_until_the_table_changes(db) -> None:
    async with db.acquire() as conn:
        first = await work_calendar(conn)
        assert await work_calendar(conn) is first  # nothing changed: not re-read
        assert first.complex_resolve_due(at(2026, 12, 15, 10, 0)) == at(2027, 1, 5, 18, 0)  # 2027 Mon–Fri
        await save_overrides(conn, DAYS_2027[:1], source="admin", now=NOW)
        loaded = await work_calendar(conn)
    assert loaded is not first and loaded.overrides == {D(2027, 1, 1): False}
    assert loaded.complex_resolve_due(at(2026, 12, 15, 10, 0)) == at(2027, 1, 6, 18, 0)
    # Another process changing a row (same count, same load time) is still seen through the version.
    async with db.acquire() as other:
        await other.execute("UPDATE calendar_overrides SET is_workday = true")
    async with db.acquire() as conn:
        changed = await work_calendar(conn)
    assert changed.overrides == {D(2027, 1, 1): True}
    async with db.acquire() as conn:
        assert await work_calendar(conn) is changed


async def test_an_override_beats_the_package_through_the_database(db) -> None:
    async with db.acquire() as conn:
        await save_overrides(conn, [(D(2026, 10, 10), False, "test: no make-up Saturday")], source="admin", now=NOW)
        calendar = await work_calendar(conn)
    assert not calendar.is_workday(D(2026, 10, 10))
    # Accepted during National Day: day 1 is Thu 10-08; without the make-up Saturday day 15 is Wed 10-28.
    assert calendar.complex_resolve_due(at(2026, 10, 3, 11, 0)) == at(2026, 10, 28, 18, 0)


async def test_the_november_warning_goes_once_2027_is_loaded(db) -> None:
    async with db.acquire() as conn:
        assert (await work_calendar(conn)).missing_year_warning(at(2026, 11, 1, 8, 0)) is not None
        assert (await work_calendar(conn)).missing_year_warning(at(2026, 10, 31, 20, 0)) is None
        await save_overrides(conn, DAYS_2027, source="admin", now=NOW)
        assert (await work_calendar(conn)).missing_year_warning(at(2026, 11, 1, 8, 0)) is None


# ── the command ──────────────────────────────────────────────────────────────────────────────────


@pytest.fixture
def cli(settings, vapid_pem, tmp_path):
    env = {**os.environ, "DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url,
           "GRIDRIDER_VAPID_PRIVATE_KEY": vapid_pem, "GRIDRIDER_DATA_DIR": str(tmp_path / "cli-data"),
           "GRIDRIDER_SESSION_SECRET": settings.session_secret,
           "GRIDRIDER_URL_SIGNING_SECRET": settings.url_signing_secret}

    async def run(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gridrider", "calendar", *args, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await process.communicate()
        return process.returncode, out.decode(), err.decode()

    return run


@pytest.mark.slow
async def test_cli_loads_a_file_and_reports_status(db, cli, tmp_path: Path) -> None:
    path = tmp_path / "2027.csv"
    path.write_text("# 国务院办公厅关于2027年部分节假日安排的通知 (excerpt)\n\n"
                    "2027-01-01,holiday,元旦\n2027-01-02,workday,调休上班\n2028-01-03,holiday\n", encoding="utf-8")
    code, out, err = await cli("load", str(path))
    assert code == 0, err
    assert "loaded 3 days (2 holidays, 1 working days) for 2027, 2028" in out
    assert await load_overrides(db) == {D(2027, 1, 1): False, D(2027, 1, 2): True, D(2028, 1, 3): False}
    assert await db.fetchval("SELECT note FROM calendar_overrides WHERE day = '2027-01-01'") == "元旦"
    code, out, err = await cli("status")
    assert code == 0, err
    this_year = dt.datetime.now(SHANGHAI).year
    lines = {line.split(":")[0]: line for line in out.splitlines()}
    assert str(this_year) in lines and str(this_year + 1) in lines
    if this_year == 2026:  # while the installed package knows 2026 and not 2027
        assert lines["2026"].startswith("2026: known (chinesecalendar")
        assert lines["2027"] == "2027: known (overrides: 2 days loaded)"
        assert "warning" not in out


@pytest.mark.slow
async def test_cli_status_names_a_year_known_by_weekdays_only(db, cli) -> None:
    code, out, err = await cli("status")
    assert code == 0, err
    this_year = dt.datetime.now(SHANGHAI).year
    if this_year == 2026:
        assert "2027: NOT known (weekdays only: Monday–Friday)" in out
        assert ("warning: 2027 年" in out) == (dt.datetime.now(SHANGHAI).month >= 11)


@pytest.mark.slow
async def test_cli_refuses_a_file_with_a_bad_line_and_loads_nothing(db, cli, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("# 2027\n2027-01-01,holiday,元旦\n\n2027-02-30,holiday,no such day\n2027-01-02,workday\n",
                    encoding="utf-8")
    code, out, err = await cli("load", str(path))
    assert code == 2
    assert out == ""
    assert err.strip().splitlines() == [
        f"gridrider: calendar file refused, nothing loaded: {path}: line 4: '2027-02-30' is not a date (YYYY-MM-DD)"]
    assert await load_overrides(db) == {}
    path.write_text("2027-01-01,holiday\n2027-01-04,off\n", encoding="utf-8")
    code, _, err = await cli("load", str(path))
    assert code == 2 and "line 2: 'off' must be 'workday' or 'holiday'" in err
    assert await load_overrides(db) == {}
