"""The housekeeping jobs, run through the job table and a real worker (retention: test_retention.py)."""

import datetime as dt
import os

from gridrider.images.blobs import new_blob_key
from gridrider.jobs.maintenance import schedule_maintenance
from tests.factories import make_member, make_photo, make_report
from tests.jobs.conftest import run_burst


async def _maintenance_jobs(db) -> dict[str, str]:
    return {r["kind"]: r["state"] for r in await db.fetch(
        "SELECT kind, state FROM jobs WHERE kind IN ('prune_jobs', 'sweep_orphan_blobs')")}


async def test_maintenance_is_scheduled_once_per_hour_whoever_asks(services, db):
    assert await schedule_maintenance(services) == 5  # 2 hourly + 3 daily (retention, archive)
    assert await schedule_maintenance(services) == 0  # a second worker's cron in the same hour
    services.clock.advance(hours=1)
    assert await schedule_maintenance(services) == 2  # the daily ones wait for the next Shanghai day
    assert await db.fetchval("SELECT count(*) FROM jobs") == 7


async def test_retention_and_archive_are_scheduled_once_per_shanghai_day(services, db):
    # T0 is 10:00 in Shanghai: 13:30 later is 23:30 the same day, 14:30 later 00:30 the next.
    await schedule_maintenance(services)
    services.clock.advance(hours=13, minutes=30)
    await schedule_maintenance(services)
    services.clock.advance(hours=1)
    await schedule_maintenance(services)
    rows = await db.fetch("SELECT kind, count(*) AS n FROM jobs GROUP BY kind")
    assert {r["kind"]: r["n"] for r in rows} == {
        "prune_jobs": 3, "sweep_orphan_blobs": 3, "purge_photos": 2, "pseudonymise_members": 2,
        "archive_incidents": 2}


async def test_prune_jobs_removes_done_rows_older_than_seven_days(services, settings, clock, db):
    now = clock.now()
    insert = """INSERT INTO jobs (kind, state, attempts, run_after, finished_at) VALUES ($1, $2, 1, $3, $3)"""
    await db.execute(insert, "old_done", "done", now - dt.timedelta(days=8))
    await db.execute(insert, "recent_done", "done", now - dt.timedelta(days=6))
    await db.execute(insert, "old_dead", "dead", now - dt.timedelta(days=30))  # kept: admins must see it

    await schedule_maintenance(services)
    await run_burst(settings, clock)

    kinds = {r["kind"] for r in await db.fetch("SELECT kind FROM jobs")}
    assert "old_done" not in kinds
    assert {"recent_done", "old_dead"} <= kinds
    assert (await _maintenance_jobs(db)) == {"prune_jobs": "done", "sweep_orphan_blobs": "done"}


def _written_at(path, when: dt.datetime) -> None:
    os.utime(path, (when.timestamp(), when.timestamp()))


async def test_sweep_deletes_only_old_blobs_that_no_row_references(services, settings, clock, db):
    blobs = services.blobs
    referenced, orphan, fresh = (new_blob_key("orig", clock.now(), "jpg") for _ in range(3))
    for key in (referenced, orphan, fresh):
        await blobs.put(key, b"\xff\xd8\xff photo bytes")
    member = await make_member(db)
    report = await make_report(db, clock, reporter_id=member)
    await make_photo(db, report_id=report, original_key=referenced)
    root = settings.data_dir / "blobs"
    for key in (referenced, orphan):
        _written_at(root / key, clock.now() - dt.timedelta(hours=2))
    _written_at(root / fresh, clock.now() - dt.timedelta(minutes=5))
    # A stranger's file in the blob root is not ours to judge.
    (root / "README").write_text("not a blob")

    await schedule_maintenance(services)
    await run_burst(settings, clock)

    assert (root / referenced).exists()
    assert not (root / orphan).exists()
    assert (root / fresh).exists()  # a request may still be about to commit its row
    assert (root / "README").exists()
    assert (await _maintenance_jobs(db))["sweep_orphan_blobs"] == "done"
