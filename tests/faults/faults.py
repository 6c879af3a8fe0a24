"""The faults, each an action on a running Stack that returns when the broken part is back (the moment
recovery is measured from). Used one at a time by test_faults.py and mixed by test_soak.py."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable

from gridrider.db.pool import connect
from tests.faults.stack import Stack

Fault = Callable[[Stack], Awaitable[float]]
CLOCK_JUMP_S = 26 * 3600  # past every accept deadline, and two hours into life-safety escalation


async def restart(stack: Stack, *names: str) -> None:
    for name in names:
        stack.spawn(name)
    await stack.wait_ready()


async def kill_workers(stack: Stack) -> float:
    for name in ("default0", "photos0"):
        stack.kill(name)  # mid-job: at 20 reports/s a worker is always in the middle of something
    await asyncio.sleep(1.0)  # what a supervisor (Kubernetes, compose) takes to start it again
    await restart(stack, "default0", "photos0")
    return time.time()


async def redis_shutdown_nosave(stack: Stack) -> float:
    await asyncio.to_thread(stack.redis.shutdown_nosave)  # the queue and every counter are gone
    await asyncio.sleep(2.0)
    await asyncio.to_thread(stack.redis.start)
    return time.time()


async def postgres_immediate(stack: Stack) -> float:
    await asyncio.to_thread(stack.pg.stop, "immediate")  # no checkpoint: crash recovery on start
    await asyncio.sleep(2.0)
    await asyncio.to_thread(stack.pg.start)
    return time.time()


async def kill_api_after_commit(stack: Stack) -> float:
    conn = await connect(stack.database_url)
    try:
        before = await conn.fetchval("SELECT count(*) FROM reports")
        # Freeze Redis: the APIs commit each report, then wait on the queue nudge after the COMMIT — the moment
        # to kill one. Its callers never hear back; their outbox resends to the other API.
        assert stack.redis.process is not None
        os.kill(stack.redis.process.pid, signal.SIGSTOP)
        try:
            for _ in range(100):
                if await conn.fetchval("SELECT count(*) FROM reports") >= before + 5:
                    break
                await asyncio.sleep(0.02)
            stack.kill("api0")
        finally:
            os.kill(stack.redis.process.pid, signal.SIGCONT)
    finally:
        await conn.close()
    await restart(stack, "api0")
    return time.time()


async def blackhole_redis(stack: Stack) -> float:
    stack.redis_proxy.blackhole(2.0)
    await asyncio.sleep(2.0)
    return time.time()


async def blackhole_postgres(stack: Stack) -> float:
    stack.pg_proxy.blackhole(2.0)
    await asyncio.sleep(2.0)
    return time.time()


async def clock_jump(stack: Stack) -> float:
    stack.clock_file.write_text(str(CLOCK_JUMP_S))
    await asyncio.sleep(1.0)  # every process re-reads the offset within 0.2 s
    return time.time()


# The mix `make soak` draws from; the clock jump is not in it (a day can only be jumped once per run).
MIXED: dict[str, Fault] = {
    "worker SIGKILL": kill_workers, "Redis SHUTDOWN NOSAVE": redis_shutdown_nosave,
    "PostgreSQL -m immediate": postgres_immediate, "API killed after COMMIT": kill_api_after_commit,
    "2 s blackhole to Redis": blackhole_redis, "2 s blackhole to PostgreSQL": blackhole_postgres,
}
