"""Retention jobs (DESIGN §8), scheduled daily by `schedule_maintenance`; each is safe to run twice.

- `purge_photos`: photos of incidents finished more than GRIDRIDER_PHOTO_RETENTION_DAYS ago lose their
  blobs (original, display, thumbnail); the rows stay, marked purged. Open incidents are never touched.
- `pseudonymise_members`: members deactivated more than GRIDRIDER_MEMBER_RETENTION_DAYS ago lose their
  name, phone, sessions and push subscriptions; their pseudonym, reports and points stay.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time

from gridrider.db import retention as db_retention
from gridrider.images.blobs import BlobStore
from gridrider.jobs.runner import JobCall
from gridrider.logging import get_logger

log = get_logger(__name__)

# Long jobs get this lease, and stop to hand over to a follow-up job after TIME_BUDGET_S, well inside it.
LONG_JOB_LEASE_S = 900
TIME_BUDGET_S = 600.0
# Incidents per transaction; their photos are marked in it and their blobs deleted after it commits.
PURGE_PAGE = 200
# Blob deletions in flight at once (an object store answers each in tens of milliseconds).
BLOB_DELETE_CONCURRENCY = 16
# Before any finished_at: where a walk over finished incidents starts.
START = (dt.datetime(1970, 1, 1, tzinfo=dt.UTC), 0)


async def delete_blobs(blobs: BlobStore, keys: list[str]) -> int:
    """Delete the blobs; how many deletions failed (logged, never raised).

    The rows are already committed as purged, so blob_references no longer lists these keys: a blob
    whose deletion failed here is removed by the hourly orphan sweep instead.
    """
    gate = asyncio.Semaphore(BLOB_DELETE_CONCURRENCY)

    async def one(key: str) -> bool:
        async with gate:
            try:
                await blobs.delete(key)
                return True
            except Exception as exc:  # any store error: the sweep retries it
                log.warning("retention.blob_delete_failed", key=key, error=type(exc).__name__)
                return False

    results = await asyncio.gather(*(one(key) for key in keys))
    return results.count(False)


async def purge_photos(call: JobCall) -> str:
    services = call.services
    now = services.clock.now()
    cutoff = now - dt.timedelta(days=services.settings.photo_retention_days)
    deadline = time.monotonic() + TIME_BUDGET_S
    photos = failed = 0
    after = START
    # Pages commit on a connection of their own (the job row's transaction only records the outcome),
    # and blobs are deleted after their page committed: no row ever points at a blob already gone.
    async with services.pool.acquire() as conn:
        while True:
            async with conn.transaction():
                page = await db_retention.finished_incidents_page(conn, finished_before=cutoff, after=after,
                                                                  limit=PURGE_PAGE)
                purged = await db_retention.purge_photos_of(conn, [i.id for i in page], now=now)
            photos += purged.photos
            failed += await delete_blobs(services.blobs, purged.keys)
            if len(page) < PURGE_PAGE:
                break
            after = (page[-1].finished_at, page[-1].id)
            if time.monotonic() > deadline:
                return await _continue(call, _outcome(photos, failed))
        # Photos archived before their retention ran out (when the archive age is the shorter one).
        while True:
            async with conn.transaction():
                purged = await db_retention.purge_archived_photos(conn, finished_before=cutoff, now=now,
                                                                  limit=PURGE_PAGE)
            if not purged.photos:
                break
            photos += purged.photos
            failed += await delete_blobs(services.blobs, purged.keys)
            if time.monotonic() > deadline:
                return await _continue(call, _outcome(photos, failed))
    if photos:
        log.info("retention.photos_purged", photos=photos, finished_before=cutoff.isoformat(), failed=failed)
    return _outcome(photos, failed)


def _outcome(photos: int, failed: int) -> str:
    return f"purged {photos} photos" + (f" ({failed} blob deletions left to the orphan sweep)" if failed else "")


async def _continue(call: JobCall, outcome: str) -> str:
    """Out of time with work left: a follow-up job of the same kind, committed with this one's outcome."""
    await call.tx.add_job(call.job.kind, dedupe_key=f"after:{call.job.id}")
    return f"{outcome}; continued in a follow-up job"


async def pseudonymise_members(call: JobCall) -> str:
    services = call.services
    cutoff = services.clock.now() - dt.timedelta(days=services.settings.member_retention_days)
    done = await db_retention.pseudonymise_members(call.tx.conn, deactivated_before=cutoff)
    if done.members:
        log.info("retention.members_pseudonymised", members=done.members, sessions=done.sessions,
                 push_subscriptions=done.push_subscriptions)
    return f"pseudonymised {done.members} members"
