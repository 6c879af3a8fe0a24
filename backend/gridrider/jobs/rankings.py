"""The rankings' report-figures refresh as an arq cron (every minute, on the default queue's workers)."""

from __future__ import annotations

from gridrider.domain import rankings
from gridrider.jobs.queue import transaction
from gridrider.logging import get_logger
from gridrider.services import Services

log = get_logger(__name__)


async def refresh_report_figures(services: Services) -> int:
    async with transaction(services.pool, services.clock, services.redis,
                           max_attempts=services.settings.job_max_attempts) as tx:
        riders = await rankings.refresh_report_figures(tx.conn, now=services.clock.now())
    if riders:
        log.info("rankings.figures_refreshed", riders=riders)
    return riders
