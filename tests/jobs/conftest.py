import asyncio
import contextlib
import time

import pytest

from gridrider.jobs.registry import JOB_KINDS
from tests.jobs.kinds import CREATE_EFFECTS_TABLE_SQL, TEST_KINDS


@pytest.fixture
async def test_kinds(db, monkeypatch):
    for kind, spec in TEST_KINDS.items():
        monkeypatch.setitem(JOB_KINDS, kind, spec)
    await db.execute(CREATE_EFFECTS_TABLE_SQL)
    await db.execute("TRUNCATE test_job_effects")
    yield
    await db.execute("DROP TABLE test_job_effects")


async def run_burst(settings, clock, **kwargs) -> None:
    """Run a real arq worker until its queue is empty (no crons: tests drive the relay themselves)."""
    from gridrider.jobs.worker import build_worker

    worker = build_worker(settings, clock=clock, burst=True, handle_signals=False, with_crons=False, **kwargs)
    try:
        await worker.main()
    finally:
        await worker.close()


async def effects(db) -> list[tuple[int, int, str]]:
    return [tuple(r) for r in await db.fetch("SELECT job_id, attempt, note FROM test_job_effects ORDER BY 1, 2, 3")]


async def job_row(db, job_id: int) -> dict:
    return dict(await db.fetchrow("SELECT * FROM jobs WHERE id = $1", job_id))


async def run_worker_until(settings, clock, done, *, timeout_s: float = 20.0) -> None:
    """Run a real arq worker until `await done()` is true (bounded), for queues a burst would wait on."""
    from gridrider.jobs.worker import build_worker

    worker = build_worker(settings, clock=clock, handle_signals=False, with_crons=False)
    task = asyncio.create_task(worker.main())
    deadline = time.monotonic() + timeout_s
    try:
        async with asyncio.timeout(timeout_s):
            while not await done():
                # Also by the clock: a cancellation swallowed on the way would leave asyncio.timeout spent.
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the worker did not finish within {timeout_s} s")
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # arq's close waits for the jobs it is running. One stuck job (a CI run once hung here for pytest's
        # 300 s, and the worker, left running in the session's loop, then took later tests' jobs) must end
        # this test, not every test after it: its tasks are cancelled, and shown if they do not stop.
        for job_task in list(worker.tasks.values()):
            job_task.cancel()
        try:
            await asyncio.wait_for(worker.close(), 10)
        except TimeoutError:
            stacks = [f"{t.get_name()}: {t.get_stack(limit=8)}" for t in worker.tasks.values() if not t.done()]
            raise AssertionError(f"the worker's jobs did not stop: {stacks}") from None
