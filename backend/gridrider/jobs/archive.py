"""The archive job: finished incidents past GRIDRIDER_ARCHIVE_AFTER_DAYS leave the hot tables (DESIGN §3, §9).

Each batch of incidents (with the incidents merged into them and every row hanging off them, see
db/archive.py) is copied into the `archive` schema and deleted in ONE transaction, so a crash or a
second run leaves every incident either hot or archived, never half; a run picks up where the rows
are. One run at a time across all workers: a session advisory lock, held for the run.

An incident stays hot, and is reported as skipped, while a hot row still needs it: an incident not
being archived points at it (recurrence_of_id, merged_into_id, origin_report_id), a hot photo is
marked as a reuse of one of its photos, a flag about it is still open, or its audit events are younger
than GRIDRIDER_AUDIT_RETENTION_DAYS. A later run takes it once that no longer holds.
"""

from __future__ import annotations

import datetime as dt
import time

import msgspec

from gridrider.config import Settings
from gridrider.db import archive as db_archive
from gridrider.db.pool import Connection, Pool
from gridrider.jobs.retention import START, TIME_BUDGET_S
from gridrider.jobs.runner import JobCall
from gridrider.logging import get_logger

log = get_logger(__name__)

ARCHIVE_BATCH = 500  # root incidents per transaction

WHY = {
    "recurrence_of": "a hot incident is a recurrence of it",
    "merged_into": "a hot incident was merged into it",
    "origin_report": "a hot incident was created by one of its reports",
    "reused_photo": "a hot photo is marked as a reuse of one of its photos",
    "recent_audit_events": "its audit events are younger than GRIDRIDER_AUDIT_RETENTION_DAYS",
    "open_flag": "a flag about it is still open",
    "flag_shared_with_hot_rows": "a flag about it also concerns hot rows",
}


class ArchiveRun(msgspec.Struct, kw_only=True):
    dry_run: bool
    finished_before: dt.datetime
    audit_before: dt.datetime
    incidents: list[int] = msgspec.field(default_factory=list)  # moved (or would move), merged ones included
    rows: dict[str, int] = msgspec.field(default_factory=lambda: dict.fromkeys(db_archive.ARCHIVED_TABLES, 0))
    skipped: dict[int, str] = msgspec.field(default_factory=dict)  # root incident → reason (a WHY key)
    more: bool = False  # stopped by the time budget with incidents left to look at


class ArchiveBusy(Exception):
    """Another process holds the archive lock."""


def cutoffs(settings: Settings, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """(finished before, audit events before): what may be archived now."""
    return (now - dt.timedelta(days=settings.archive_after_days),
            now - dt.timedelta(days=settings.audit_retention_days))


async def archive_incidents_now(pool: Pool, settings: Settings, now: dt.datetime, *, dry_run: bool = False,
                                batch: int = ARCHIVE_BATCH, budget_s: float | None = None) -> ArchiveRun:
    """Archive (or, dry, only count) every archivable incident, batch by batch, within `budget_s` seconds."""
    finished_before, audit_before = cutoffs(settings, now)
    run = ArchiveRun(dry_run=dry_run, finished_before=finished_before, audit_before=audit_before)
    deadline = None if budget_s is None else time.monotonic() + budget_s
    async with pool.acquire() as conn:
        # A dry run only reads, so it neither needs nor waits for the lock.
        if not dry_run and not await db_archive.try_lock(conn):
            raise ArchiveBusy()
        try:
            await db_archive.check_archive_tables(conn)
            after = START
            while True:
                async with conn.transaction():
                    roots = await db_archive.roots_page(conn, finished_before=finished_before, after=after,
                                                        limit=batch, lock=not dry_run)
                    if roots:
                        await _batch(conn, run, [r.id for r in roots])
                if len(roots) < batch:
                    break
                after = (roots[-1].finished_at, roots[-1].id)
                if deadline is not None and time.monotonic() > deadline:
                    run.more = True
                    break
        finally:
            if not dry_run:
                await db_archive.unlock(conn)
    return run


async def _batch(conn: Connection, run: ArchiveRun, root_ids: list[int]) -> None:
    root_of = await db_archive.groups(conn, root_ids)
    if not run.dry_run:
        # Merged incidents too: nothing may attach a row to any of them until the batch commits.
        await db_archive.lock_incidents(conn, sorted(root_of))
    # Keeping one group hot can make another one's rows referenced from outside the set: repeat until
    # nothing in the set is needed by a row outside it.
    while root_of:
        blocked = await db_archive.blocked(conn, sorted(root_of), audit_cutoff=run.audit_before)
        staying = {root_of[b.incident_id] for b in blocked if b.incident_id in root_of}
        if not staying:
            break
        for b in blocked:
            if b.incident_id in root_of:
                run.skipped.setdefault(root_of[b.incident_id], b.why)
        root_of = {incident: root for incident, root in root_of.items() if root not in staying}
    if not root_of:
        return
    ids = sorted(root_of)
    rows = await (db_archive.count_rows(conn, ids) if run.dry_run else db_archive.move(conn, ids))
    run.incidents.extend(ids)
    for table, count in rows.items():
        run.rows[table] += count
    if not run.dry_run:
        log.info("archive.batch", incidents=len(ids), rows=sum(rows.values()))


async def archive_incidents(call: JobCall) -> str:
    services = call.services
    try:
        run = await archive_incidents_now(services.pool, services.settings, services.clock.now(),
                                          batch=ARCHIVE_BATCH, budget_s=TIME_BUDGET_S)
    except ArchiveBusy:
        return "another worker is archiving"
    outcome = f"archived {len(run.incidents)} incidents ({sum(run.rows.values())} rows), {len(run.skipped)} kept hot"
    if run.more:
        # Out of time with incidents left: a follow-up job, committed with this one's outcome.
        await call.tx.add_job(call.job.kind, dedupe_key=f"after:{call.job.id}")
        outcome += "; continued in a follow-up job"
    return outcome


def report_lines(run: ArchiveRun, listed: int = 20) -> list[str]:
    """What a run moved (or, dry, would move) and what it kept hot, for a person at a terminal."""
    verb = "would move" if run.dry_run else "moved"
    out = [f"archive{' (dry run: nothing written)' if run.dry_run else ''}: incidents finished before "
           f"{run.finished_before:%Y-%m-%d %H:%M} UTC whose audit events are older than "
           f"{run.audit_before:%Y-%m-%d %H:%M} UTC",
           f"  {verb} {len(run.incidents)} incident(s) (merged ones included) to the archive schema:"]
    width = max(len(table) for table in run.rows)
    out += [f"    {table:<{width}}  {count:>9}" for table, count in run.rows.items()]
    if run.incidents:
        shown = ", ".join(str(i) for i in run.incidents[:listed])
        out.append(f"  incidents: {shown}{' …' if len(run.incidents) > listed else ''}")
    out.append(f"  kept hot: {len(run.skipped)} incident(s)")
    for incident, why in list(run.skipped.items())[:listed]:
        out.append(f"    {incident}: {WHY.get(why, why)}")
    if len(run.skipped) > listed:
        out.append(f"    … and {len(run.skipped) - listed} more")
    out.append("  stays: points_ledger and report_keys (they name archived rows by id)")
    if run.more:
        out.append("  stopped at the time budget; more incidents are left for the next run")
    return out
