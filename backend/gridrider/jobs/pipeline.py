"""Jobs that turn a received report into an incident: process_report, and route_report_minimal."""

from __future__ import annotations

import asyncio

from gridrider.db import incidents as db_incidents
from gridrider.db.jobs import ClaimedJob
from gridrider.db.pool import Connection
from gridrider.domain import gaming, incidents
from gridrider.domain.photo_reuse import flag_reused_report_photos
from gridrider.domain.routing import AreaIndex
from gridrider.jobs.awards import enqueue_award
from gridrider.jobs.notify import enqueue_notify
from gridrider.jobs.queue import Tx
from gridrider.jobs.runner import JobCall
from gridrider.logging import get_logger
from gridrider.metrics import INCIDENTS_ROUTED
from gridrider.services import Services

log = get_logger(__name__)


class AreaIndexCache:
    """The process's routing index, rebuilt whenever the areas table changed (in any process)."""

    def __init__(self) -> None:
        self._index: AreaIndex | None = None
        self._lock = asyncio.Lock()

    async def current(self, conn: Connection) -> AreaIndex:
        version = await db_incidents.areas_version(conn)
        if self._index is not None and self._index.version == version:
            return self._index
        async with self._lock:
            if self._index is None or self._index.version != version:
                shapes = await db_incidents.area_shapes(conn)
                self._index = await asyncio.to_thread(AreaIndex, shapes, version)
                log.info("routing.index_built", areas=len(shapes))
        return self._index


AREA_INDEX = AreaIndexCache()


async def _route(call: JobCall, *, merge: bool) -> str:
    conn = call.tx.conn
    index = await AREA_INDEX.current(conn)
    report_id = call.payload["report_id"]
    outcome = await incidents.process_report(conn, report_id=report_id, index=index,
                                             now=call.services.clock.now(), merge=merge)
    if outcome is None:
        return "already processed"
    for notification_id in outcome.notification_ids:
        await enqueue_notify(call.tx, notification_id)
    # If the photos were hashed first, their reuse check was waiting for the incident.
    await flag_reused_report_photos(conn, report_id=report_id, now=call.services.clock.now())
    # Anti-gaming checks (impossible travel, capture clock, bursts): flags withhold the report's points.
    await gaming.detect(conn, report_id=report_id, now=call.services.clock.now())
    if outcome.merged:
        # Merged into an incident already accepted, with photos that finished before this job ran (their job
        # found no incident to pay for): the corroboration is due now, and nobody else would pay it. The fault
        # suite found this when a Redis restart let the photo worker run ahead of process_report.
        await enqueue_award(call.tx, incident_id=outcome.incident_id, report_id=report_id, after="merged")
    # Counted just before the job's commit (the runner's): a commit that then fails is counted again on retry,
    # a rare over-count accepted for not threading an after-commit hook through every job.
    INCIDENTS_ROUTED.labels("merged" if outcome.merged else "created").inc()
    if outcome.merged:
        return f"merged into incident {outcome.incident_id}"
    return f"new incident {outcome.incident_id} ({outcome.route})"


async def process_report(call: JobCall) -> str:
    return await _route(call, merge=True)


async def route_report_minimal(call: JobCall) -> str:
    return await _route(call, merge=False)


async def on_process_report_dead(services: Services, tx: Tx, job: ClaimedJob) -> None:
    """A hazard is never dropped: route it into a new incident without the merge that kept failing."""
    await tx.add_job("route_report_minimal", {"report_id": job.payload["report_id"]},
                     dedupe_key=f"report:{job.payload['report_id']}")
