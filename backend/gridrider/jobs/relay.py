"""The one retry mechanism: re-enqueue job rows that are due, and running rows whose lease expired."""

from __future__ import annotations

from gridrider.db import jobs as db_jobs
from gridrider.jobs.queue import nudge
from gridrider.logging import get_logger
from gridrider.services import Services

log = get_logger(__name__)


async def relay_due_jobs(services: Services, *, limit: int = 500) -> int:
    """Hand due rows to arq again; arq drops ids it already holds, so re-nudging is harmless."""
    due = await db_jobs.jobs_due(services.pool, now=services.clock.now(), limit=limit)
    handed = await nudge(services.redis, due)
    if due:
        log.debug("jobs.relayed", due=len(due), handed=handed)
    return handed
