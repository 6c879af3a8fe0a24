"""SQL for the `jobs` table, the record of pending work (DESIGN.md §7)."""

from __future__ import annotations

import datetime as dt

import msgspec

from gridrider.db.pool import Connection, Pool


class JobRef(msgspec.Struct, frozen=True):
    """Enough to nudge arq: its job id is `{kind}:{id}:{attempt}`, or `…:{attempt}.{n}` once it is overdue."""

    id: int
    kind: str
    attempts: int
    # Whole minutes a due row has waited past its run_after (0 when the API or a job first nudges it).
    overdue_min: int = 0

    @property
    def arq_job_id(self) -> str:
        # The attempt this nudge is for: arq drops an id it still holds, so the relay's nudges of a row that
        # is queued or running are harmless. But a row can wait under an id arq holds and will never run —
        # its job key left behind by a connection cut mid-enqueue (seen in the fault suite's Redis blackhole:
        # an award_points row stayed pending for minutes) — so each minute overdue gets a fresh id. Two
        # arq jobs for one row are safe: the claim in the database lets one of them run it.
        base = f"{self.kind}:{self.id}:{self.attempts + 1}"
        return f"{base}.{self.overdue_min}" if self.overdue_min > 0 else base


class ClaimedJob(msgspec.Struct, frozen=True):
    id: int
    kind: str
    payload: dict
    attempts: int
    max_attempts: int


JOB_INSERT_SQL = """
INSERT INTO jobs (kind, payload, max_attempts, run_after, dedupe_key, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $6)
ON CONFLICT (kind, dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING
RETURNING id, kind, attempts
"""

# Pending rows, retry rows whose backoff has passed, and running rows whose lease expired (their
# worker died or hung). A retry row delivered early (an arq redelivery) waits for its backoff.
JOB_CLAIM_SQL = """
UPDATE jobs
SET state = 'running', attempts = attempts + 1, lease_until = $3, updated_at = $2
WHERE id = $1
  AND (state = 'pending'
       OR (state = 'retry' AND run_after <= $2)
       OR (state = 'running' AND lease_until < $2))
RETURNING id, kind, payload, attempts, max_attempts
"""

# Only the holder of this attempt may finish it: a worker whose lease was taken over loses.
JOB_MARK_DONE_SQL = """
UPDATE jobs
SET state = 'done', lease_until = NULL, last_error = NULL, finished_at = $3, updated_at = $3
WHERE id = $1 AND attempts = $2 AND state = 'running'
"""

JOB_MARK_FAILED_SQL = """
UPDATE jobs
SET state = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'retry' END,
    run_after = $3, last_error = $4, lease_until = NULL, updated_at = $5::timestamptz,
    finished_at = CASE WHEN attempts >= max_attempts THEN $5::timestamptz END
WHERE id = $1 AND attempts = $2 AND state = 'running'
RETURNING state
"""

JOBS_DUE_SQL = """
SELECT id, kind, attempts, floor(extract(epoch FROM $1 - run_after) / 60)::int AS overdue_min FROM jobs
WHERE (state IN ('pending', 'retry') AND run_after <= $1)
UNION ALL
SELECT id, kind, attempts, floor(extract(epoch FROM $1 - lease_until) / 60)::int AS overdue_min FROM jobs
WHERE state = 'running' AND lease_until < $1
ORDER BY id
LIMIT $2
"""

DONE_JOBS_PRUNE_SQL = """
DELETE FROM jobs WHERE id IN (
    SELECT id FROM jobs WHERE state = 'done' AND finished_at < $1 ORDER BY id LIMIT $2
)
"""

JOB_STATE_COUNTS_SQL = "SELECT state, count(*) AS n FROM jobs GROUP BY state"


async def insert_job(
    conn: Connection, *, kind: str, payload: dict, max_attempts: int, run_after: dt.datetime,
    now: dt.datetime, dedupe_key: str | None = None,
) -> JobRef | None:
    """None when a job with the same (kind, dedupe_key) already exists."""
    row = await conn.fetchrow(JOB_INSERT_SQL, kind, payload, max_attempts, run_after, dedupe_key, now)
    return JobRef(**row) if row else None


async def claim_job(pool: Pool, job_id: int, *, now: dt.datetime, lease_until: dt.datetime) -> ClaimedJob | None:
    row = await pool.fetchrow(JOB_CLAIM_SQL, job_id, now, lease_until)
    return ClaimedJob(**row) if row else None


async def mark_job_done(conn: Connection, job: ClaimedJob, *, now: dt.datetime) -> bool:
    return await conn.execute(JOB_MARK_DONE_SQL, job.id, job.attempts, now) == "UPDATE 1"


async def mark_job_failed(
    conn: Connection | Pool, job: ClaimedJob, *, error: str, retry_at: dt.datetime, now: dt.datetime
) -> str | None:
    """'retry' or 'dead'; None when this attempt no longer holds the row."""
    return await conn.fetchval(JOB_MARK_FAILED_SQL, job.id, job.attempts, retry_at, error, now)


async def jobs_due(conn: Connection | Pool, *, now: dt.datetime, limit: int = 500) -> list[JobRef]:
    return [JobRef(**r) for r in await conn.fetch(JOBS_DUE_SQL, now, limit)]


async def prune_done_jobs(conn: Connection, *, finished_before: dt.datetime, batch: int = 5000) -> int:
    deleted = 0
    while True:
        status = await conn.execute(DONE_JOBS_PRUNE_SQL, finished_before, batch)
        count = int(status.split()[-1])
        deleted += count
        if count < batch:
            return deleted


async def job_state_counts(conn: Connection | Pool) -> dict[str, int]:
    return {r["state"]: r["n"] for r in await conn.fetch(JOB_STATE_COUNTS_SQL)}
