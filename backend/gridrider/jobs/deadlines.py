"""The deadline pass as an arq cron (every minute, on the default queue's workers)."""

from __future__ import annotations

from gridrider.domain import deadlines
from gridrider.jobs.notify import enqueue_notify
from gridrider.jobs.queue import transaction
from gridrider.logging import get_logger
from gridrider.services import Services

log = get_logger(__name__)


async def run_deadline_pass(services: Services) -> deadlines.PassResult:
    async with transaction(services.pool, services.clock, services.redis,
                           max_attempts=services.settings.job_max_attempts) as tx:
        result = await deadlines.run_pass(tx.conn, services.clock.now())
        for notification_id in result.notifications:
            await enqueue_notify(tx, notification_id)
    if result.closed or result.marked or result.escalated:
        log.info("deadlines.pass", closed=result.closed, overdue=result.marked, escalated=result.escalated)
    return result
