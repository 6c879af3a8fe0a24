"""Housekeeping jobs that run through the same job table as everything else."""

from __future__ import annotations

import datetime as dt

from gridrider.clock import local_day
from gridrider.db import blobs as db_blobs
from gridrider.db import jobs as db_jobs
from gridrider.jobs.queue import transaction
from gridrider.jobs.runner import JobCall
from gridrider.services import Services

SWEEP_BATCH = 1000


async def prune_jobs(call: JobCall) -> str:
    settings = call.services.settings
    cutoff = call.services.clock.now() - dt.timedelta(days=settings.done_job_retention_days)
    deleted = await db_jobs.prune_done_jobs(call.tx.conn, finished_before=cutoff)
    return f"pruned {deleted}"


async def sweep_orphan_blobs(call: JobCall) -> str:
    """Delete blobs older than the grace period that no row references.

    The grace period covers a request that stored its photo but has not committed yet; a request
    that failed after storing leaves its blob here to be swept.
    """
    services = call.services
    cutoff = services.clock.now() - dt.timedelta(seconds=services.settings.orphan_blob_age_s)
    deleted = 0
    batch: list[str] = []
    async for key in services.blobs.keys_older_than(cutoff):
        batch.append(key)
        if len(batch) >= SWEEP_BATCH:
            deleted += await _delete_unreferenced(call, batch)
            batch = []
    if batch:
        deleted += await _delete_unreferenced(call, batch)
    return f"deleted {deleted}"


async def _delete_unreferenced(call: JobCall, keys: list[str]) -> int:
    orphans = await db_blobs.unreferenced_blob_keys(call.tx.conn, keys)
    for key in orphans:
        await call.services.blobs.delete(key)
    return len(orphans)


HOURLY_KINDS = ("prune_jobs", "sweep_orphan_blobs")
# Retention (jobs/retention.py) and archiving (jobs/archive.py): once per Asia/Shanghai day, so the first
# cron after local midnight writes them and they run in the quiet hours.
DAILY_KINDS = ("purge_photos", "pseudonymise_members", "archive_incidents")


async def schedule_maintenance(services: Services) -> int:
    """Write one row of each housekeeping job per hour or day, whichever worker's cron fires first."""
    now = services.clock.now()
    hour, day = now.strftime("%Y-%m-%dT%H"), local_day(now).isoformat()
    async with transaction(
        services.pool, services.clock, services.redis, max_attempts=services.settings.job_max_attempts
    ) as tx:
        made = [await tx.add_job(kind, dedupe_key=hour) for kind in HOURLY_KINDS]
        made += [await tx.add_job(kind, dedupe_key=day) for kind in DAILY_KINDS]
    return sum(job is not None for job in made)
