"""Job kinds that exist only in tests, with effects a test can count (table test_job_effects)."""

from __future__ import annotations

import asyncio

from gridrider.jobs.registry import JOB_KINDS, JobKind
from gridrider.jobs.runner import JobCall

CREATE_EFFECTS_TABLE_SQL = """
CREATE TABLE IF NOT EXISTS test_job_effects (job_id bigint NOT NULL, attempt int NOT NULL, note text NOT NULL);
COMMENT ON TABLE test_job_effects IS 'Test-only: one row per effect a test job committed.';
COMMENT ON COLUMN test_job_effects.job_id IS 'Test-only: the job row.';
COMMENT ON COLUMN test_job_effects.attempt IS 'Test-only: the attempt that wrote it.';
COMMENT ON COLUMN test_job_effects.note IS 'Test-only: what happened.';
"""


async def record(call: JobCall, note: str = "ran") -> None:
    await call.tx.conn.execute(
        "INSERT INTO test_job_effects (job_id, attempt, note) VALUES ($1, $2, $3)", call.job.id, call.job.attempts, note
    )


async def probe_record(call: JobCall) -> str:
    await record(call)
    return "recorded"


async def probe_sleep_first(call: JobCall) -> str:
    """Hangs on its first attempt (long enough to be killed), finishes at once after that."""
    await record(call, "started")
    if call.job.attempts == 1:
        await call.tx.conn.execute("SELECT 1")
        await asyncio.sleep(call.payload.get("sleep_s", 60))
    return "finished"


async def probe_fail(call: JobCall) -> str:
    await record(call, "partial effect that must roll back")
    raise ValueError(f"boom on attempt {call.job.attempts}")


async def on_probe_fail_dead(services, tx, job) -> None:
    await tx.conn.execute("INSERT INTO test_job_effects (job_id, attempt, note) VALUES ($1, $2, 'dead handler')",
                          job.id, job.attempts)


TEST_KINDS = {
    "probe_record": JobKind(probe_record),
    "probe_sleep_first": JobKind(probe_sleep_first, lease_s=2),
    "probe_fail": JobKind(probe_fail, on_dead=on_probe_fail_dead),
}


def register_test_kinds() -> None:
    JOB_KINDS.update(TEST_KINDS)
