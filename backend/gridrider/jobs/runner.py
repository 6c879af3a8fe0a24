"""Run one job row: claim it, run its handler with `done` in the same transaction, record failures."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from collections.abc import Awaitable, Callable
from typing import Any

from gridrider.db import jobs as db_jobs
from gridrider.db.jobs import ClaimedJob
from gridrider.jobs.queue import Tx, transaction
from gridrider.logging import get_logger
from gridrider.metrics import JOB_FAILURES
from gridrider.services import Services

log = get_logger(__name__)


@dataclasses.dataclass(frozen=True)
class JobCall:
    services: Services
    tx: Tx
    job: ClaimedJob

    @property
    def payload(self) -> dict[str, Any]:
        return self.job.payload


Handler = Callable[[JobCall], Awaitable[str | None]]
# Called (in its own transaction) when a job of that kind turns dead: a hazard is never dropped.
DeadHandler = Callable[[Services, Tx, ClaimedJob], Awaitable[None]]


class JobExhausted(Exception):
    """The attempts ran out without any of them finishing or failing cleanly."""


class RetryAfter(Exception):
    """Try again, but not before `delay_s` (a remote service said when, e.g. HTTP 429 Retry-After)."""

    def __init__(self, message: str, delay_s: float) -> None:
        super().__init__(message)
        self.delay_s = delay_s


class LeaseLost(Exception):
    """Another worker took this row over after our lease expired; our effects are rolled back."""


def retry_delay_s(attempt: int, base_s: float) -> float:
    # Exponential backoff with jitter so a burst of failures does not come back as one burst.
    return min(base_s * 2 ** (attempt - 1), 3600.0) * random.uniform(0.8, 1.2)


async def run_job_row(
    services: Services, job_id: int, handler: Handler, *, on_dead: DeadHandler | None = None,
    lease_s: int | None = None,
) -> str:
    clock, settings = services.clock, services.settings
    now = clock.now()
    lease = dt.timedelta(seconds=lease_s or settings.job_lease_s)
    job = await db_jobs.claim_job(services.pool, job_id, now=now, lease_until=now + lease)
    if job is None:
        return "nothing to claim"
    if job.attempts > job.max_attempts:
        # Every earlier attempt died or hung past its lease without recording a failure.
        return await _record_failure(services, job, JobExhausted(f"{job.attempts - 1} attempts ran out of lease"),
                                     on_dead)
    try:
        async with transaction(services.pool, clock, services.redis, max_attempts=settings.job_max_attempts) as tx:
            outcome = await handler(JobCall(services, tx, job))
            if not await db_jobs.mark_job_done(tx.conn, job, now=clock.now()):
                raise LeaseLost(f"job {job.id} attempt {job.attempts} lost its lease")
    except Exception as exc:  # the job's failure is data; the worker lives on
        return await _record_failure(services, job, exc, on_dead)
    log.info("jobs.done", kind=job.kind, job_id=job.id, attempt=job.attempts, outcome=outcome)
    return outcome or "done"


async def _record_failure(services: Services, job: ClaimedJob, exc: Exception, on_dead: DeadHandler | None) -> str:
    clock = services.clock
    if isinstance(exc, LeaseLost):
        log.warning("jobs.lease_lost", kind=job.kind, job_id=job.id, attempt=job.attempts)
        return "lease lost"
    error = f"{type(exc).__name__}: {exc}"[:2000]
    now = clock.now()
    delay_s = retry_delay_s(job.attempts, services.settings.job_backoff_s)
    if isinstance(exc, RetryAfter):
        delay_s = max(delay_s, min(exc.delay_s, 3600.0))
    retry_at = now + dt.timedelta(seconds=delay_s)
    # Dead and its fallback commit together: a hazard is never left dead without its way out.
    async with transaction(
        services.pool, clock, services.redis, max_attempts=services.settings.job_max_attempts
    ) as tx:
        state = await db_jobs.mark_job_failed(tx.conn, job, error=error, retry_at=retry_at, now=now)
        if state == "dead" and on_dead is not None:
            await on_dead(services, tx, job)
    if state is not None:  # after the commit: the retry/dead mark is recorded (None: the row moved on)
        JOB_FAILURES.labels(job.kind, state).inc()
    if state == "dead":
        log.error("jobs.dead", kind=job.kind, job_id=job.id, attempts=job.attempts, error=error)
    else:
        log.warning("jobs.retry", kind=job.kind, job_id=job.id, attempt=job.attempts, error=error,
                    retry_at=retry_at.isoformat())
    return f"failed ({state}): {error}"
