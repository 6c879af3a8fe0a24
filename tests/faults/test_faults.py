"""Faults under load (issue 12): each scenario breaks one part of a running deployment while the load client
posts ~20 reports a second, then lets it settle and asks the oracle whether anything was lost or doubled.

One deployment (tests/faults/stack.py) serves the scenarios of this module in order; the oracle checks the
whole history each time, so a later scenario would also catch damage an earlier one left behind. Each prints
its figures (`pytest -s`); `make soak` runs the mixed, ten-minute version (test_soak.py).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial

import pytest
import pytest_asyncio

from gridrider.db.pool import connect
from tests.faults import faults
from tests.faults.escalations import check_escalations, run_deadline_passes
from tests.faults.oracle import Figures, check, settle
from tests.faults.stack import LoadRun, Stack

pytestmark = [pytest.mark.slow, pytest.mark.faults, pytest.mark.xdist_group("faults")]

RATE = 20.0  # reports a second, as issue 12 asks
SCENARIOS = 7
LOAD_S = 20  # seconds of load per scenario, fault included
REPORT: list[str] = []


@pytest_asyncio.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory, vapid_pem: str) -> AsyncIterator[Stack]:
    deployment = Stack(tmp_path_factory.mktemp("faults"), vapid_pem)
    try:
        await deployment.start(riders=Stack.riders_for(RATE, SCENARIOS * (LOAD_S + 10)))
        yield deployment
    finally:
        if os.environ.get("FAULTS_KEEP"):  # leave it running to look into a failure (psql to the port below)
            print(f"\nkept: {deployment.root}, PostgreSQL on port {deployment.pg.port}")
        else:
            await deployment.stop()
        if REPORT:
            print("\nfaults under load (lost and duplicated must be 0):\n  " + "\n  ".join(REPORT))


ACKED: list[dict] = []  # everything acknowledged so far in this module: the oracle checks it all every time


async def run_scenario(stack: Stack, name: str, fault: Callable[[], Awaitable[float | None]], *,
                       killer_reports: int = 0, after_s: float = 8.0) -> Figures:
    """Load → fault (returns when the broken part is back, or its own recovery moment) → more load → settle
    → oracle. Recovery is the time from the fault's end to the first report acknowledged after it."""
    n = len(list(stack.root.glob("load-*")))  # one folder per run, also after a failed one (its stop file)
    work = stack.root / f"load-{n}"
    # Each scenario has riders of its own, so none sends more in an hour than the burst rule allows.
    run = LoadRun(work, stack.load_config(
        work, rate=RATE, killer_reports=killer_reports, seed=n + 1,
        riders=slice(n * len(stack.riders) // SCENARIOS, (n + 1) * len(stack.riders) // SCENARIOS)))
    try:
        await run.wait_acks(int(RATE * 2))
        ended = await fault() or time.time()
        catching_up = asyncio.create_task(caught_up(stack, ended))
        await asyncio.sleep(after_s)
        load = await run.finish()
        caught_up_s = await catching_up
    finally:
        run.kill()  # a failed scenario must not leave its load running into the next
    ACKED.extend(load["acked"])
    assert "http_500" not in load["errors"], f"a report answered 500 under {name}: {load['errors']}"
    grid_500s = [k for k in load["accept_errors"] if k.endswith("_500")]
    assert not grid_500s, f"a grid member got a 500 under {name}: {load['accept_errors']}"
    conn = await connect(stack.database_url)
    try:
        figures = Figures(scenario=name)
        figures.settle_s = await settle(conn)
        after = [t for t in run.ack_times() if t > ended]
        figures.recover_s = (min(after) - ended) if after else None
        figures.caught_up_s = caught_up_s
        await check(conn, {**load, "acked": ACKED}, stack.push, figures)
        figures.sent, figures.acknowledged = load["sent"], len(load["acked"])
    finally:
        await conn.close()
    REPORT.append(figures.line() + (f"  errors {load['errors']}" if load["errors"] else "")
                  + (f"  accept errors {load['accept_errors']}" if load["accept_errors"] else ""))
    assert figures.recover_s is not None, f"no report was acknowledged after {name} ended"
    return figures


CAUGHT_UP_SQL = """
SELECT kind, state, attempts, run_after, lease_until, last_error FROM jobs
WHERE state IN ('pending', 'retry', 'running') AND created_at <= to_timestamp($1) ORDER BY id
"""


async def caught_up(stack: Stack, ended: float, timeout_s: float = 120) -> float:
    """Seconds from the fault's end until every job written before it — the reports, photos and alerts that
    piled up while something was broken — is finished (the load keeps coming meanwhile)."""
    conn = await connect(stack.database_url)
    try:
        while leftover := await conn.fetch(CAUGHT_UP_SQL, ended):
            assert time.time() - ended < timeout_s, \
                f"{len(leftover)} jobs from before the fault still not done, e.g. {[dict(r) for r in leftover[:5]]}"
            await asyncio.sleep(0.1)
        return time.time() - ended
    finally:
        await conn.close()


async def test_a_worker_killed_mid_job_and_a_photo_that_kills_every_decoder(stack: Stack) -> None:
    await run_scenario(stack, "worker SIGKILL + decoder killer", partial(faults.kill_workers, stack), killer_reports=2)


async def test_redis_shutdown_nosave_and_restart(stack: Stack) -> None:
    await run_scenario(stack, "Redis SHUTDOWN NOSAVE", partial(faults.redis_shutdown_nosave, stack))


async def test_postgres_stopped_immediately_and_restarted(stack: Stack) -> None:
    await run_scenario(stack, "PostgreSQL -m immediate", partial(faults.postgres_immediate, stack))


async def test_an_api_process_killed_right_after_commit(stack: Stack) -> None:
    await run_scenario(stack, "API killed after COMMIT", partial(faults.kill_api_after_commit, stack))


async def test_a_two_second_blackhole_to_redis(stack: Stack) -> None:
    await run_scenario(stack, "2 s blackhole to Redis", partial(faults.blackhole_redis, stack))


async def test_a_two_second_blackhole_to_postgres(stack: Stack) -> None:
    await run_scenario(stack, "2 s blackhole to PostgreSQL", partial(faults.blackhole_postgres, stack))


async def test_the_clock_jumping_a_day_escalates_each_overdue_incident_once_at_its_highest_level(
    stack: Stack,
) -> None:
    await run_scenario(stack, "clock jumps a day", partial(faults.clock_jump, stack))
    # The workers' own deadline cron may or may not have run yet; several passes at once (as several workers'
    # crons would), then again ten minutes later: each owed level is recorded and alerted once.
    await run_deadline_passes(stack, faults.CLOCK_JUMP_S, concurrent=3)
    first = await check_escalations(stack, faults.CLOCK_JUMP_S)
    await run_deadline_passes(stack, faults.CLOCK_JUMP_S + 600, concurrent=2)
    assert await check_escalations(stack, faults.CLOCK_JUMP_S + 600) == first
    conn = await connect(stack.database_url)
    try:
        await settle(conn)  # the escalation alerts are delivered, each once
        await check(conn, {"sent": 0, "acked": ACKED, "refused": [], "unanswered": []}, stack.push,
                    Figures(scenario="escalations"))
    finally:
        await conn.close()
    REPORT.append(f"{'':<30} escalations after the jump: {first}")
