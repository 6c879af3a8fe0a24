"""Write job rows inside the caller's transaction; nudge arq only after COMMIT.

A crash between COMMIT and the nudge, or a Redis outage, loses nothing: the relay (jobs/relay.py)
re-drives every due row from PostgreSQL.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Sequence

import asyncpg
from arq.connections import ArqRedis
from redis.asyncio import ConnectionPool

from gridrider.clock import Clock
from gridrider.db import jobs as db_jobs
from gridrider.db.jobs import JobRef
from gridrider.db.pool import Connection, Pool
from gridrider.logging import get_logger
from gridrider.redis_errors import REDIS_TROUBLE

log = get_logger(__name__)

DEFAULT_QUEUE = "gridrider:default"
# Photo decoding has its own queue (and workers), so a slow photo never delays an alert.
PHOTOS_QUEUE = "gridrider:photos"
QUEUES = (DEFAULT_QUEUE, PHOTOS_QUEUE)
# kind → queue; kinds not listed run on the default queue.
QUEUE_OF_KIND: dict[str, str] = {"normalise_photos": PHOTOS_QUEUE}


def queue_for(kind: str) -> str:
    return QUEUE_OF_KIND.get(kind, DEFAULT_QUEUE)


def arq_redis(url: str) -> ArqRedis:
    """An arq client that connects lazily and fails fast, so a Redis outage never stalls a request."""
    pool = ConnectionPool.from_url(url, socket_connect_timeout=1.0, socket_timeout=2.0, max_connections=32)
    return ArqRedis(connection_pool=pool)


async def nudge(redis: ArqRedis | None, jobs: Sequence[JobRef]) -> int:
    """Tell arq about committed job rows; returns how many were handed over. Never raises."""
    handed = 0
    if redis is None:
        return 0
    for job in jobs:
        try:
            queued = await redis.enqueue_job(
                job.kind, job.id, _job_id=job.arq_job_id, _queue_name=queue_for(job.kind))
            # None: arq already holds this id (queued or running); counting it would hide a stuck row.
            handed += queued is not None
        except REDIS_TROUBLE as exc:
            # The row is committed; the relay will hand it over once Redis answers again.
            log.warning("jobs.nudge_failed", kind=job.kind, job_id=job.id, error=type(exc).__name__)
            break
    return handed


class Tx:
    """One database transaction plus the job rows it wrote, to be nudged after COMMIT."""

    def __init__(self, conn: Connection, clock: Clock, *, max_attempts: int) -> None:
        self.conn = conn
        self.clock = clock
        self.max_attempts = max_attempts
        self.jobs: list[JobRef] = []
        # Jobs scheduled for later are not nudged now: the relay picks them up when due.
        self._deferred: set[int] = set()

    async def add_job(
        self, kind: str, payload: dict | None = None, *, delay_s: float = 0, dedupe_key: str | None = None,
        max_attempts: int | None = None,
    ) -> JobRef | None:
        now = self.clock.now()
        job = await db_jobs.insert_job(
            self.conn, kind=kind, payload=payload or {}, max_attempts=max_attempts or self.max_attempts,
            run_after=now + dt.timedelta(seconds=delay_s), now=now, dedupe_key=dedupe_key,
        )
        if job is not None:
            if delay_s > 0:
                self._deferred.add(job.id)
            else:
                self.jobs.append(job)
        return job


@contextlib.asynccontextmanager
async def transaction_on(
    conn: Connection, clock: Clock, redis: ArqRedis | None, *, max_attempts: int
) -> AsyncIterator[Tx]:
    """A transaction on a connection the caller already holds; its job rows are nudged after COMMIT."""
    tx = Tx(conn, clock, max_attempts=max_attempts)
    try:
        async with conn.transaction():
            yield tx
    except asyncpg.InterfaceError as exc:
        # The connection died mid-transaction, so the rollback could not even be sent: report the lost
        # connection (a 503 to a caller, a retry to a job), not the rollback's "connection is closed".
        if conn.is_closed() and isinstance(exc.__context__, Exception):
            raise exc.__context__ from None
        raise
    # Only here is the transaction committed; an exception above skipped this and rolled back.
    await nudge(redis, tx.jobs)


@contextlib.asynccontextmanager
async def transaction(
    pool: Pool, clock: Clock, redis: ArqRedis | None, *, max_attempts: int
) -> AsyncIterator[Tx]:
    async with pool.acquire() as conn, transaction_on(conn, clock, redis, max_attempts=max_attempts) as tx:
        yield tx
