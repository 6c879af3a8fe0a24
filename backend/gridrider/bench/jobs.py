"""`gridrider bench jobs`: commit-to-done latency and throughput of the job pipeline.

Fixed load: one job row per transaction (as a request writes it), nudged after COMMIT, at a fixed
offered rate; a worker in another process claims, runs a no-op effect and marks it done.
Latency = finished_at - created_at, both written by PostgreSQL-side clocks of this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import time

from gridrider.bench import bench, bench_database, bench_runtime, machine_line, percentile
from gridrider.clock import SystemClock
from gridrider.config import Settings
from gridrider.jobs.runner import JobCall

BENCH_KIND = "bench_noop"


async def bench_noop(call: JobCall) -> str:
    await call.tx.conn.execute("SELECT 1")  # one round trip, like the smallest real effect
    return "ok"


def _register() -> None:
    from gridrider.jobs.registry import JOB_KINDS, JobKind

    JOB_KINDS[BENCH_KIND] = JobKind(bench_noop)


def _worker_process(settings: Settings) -> None:
    from gridrider.jobs.worker import build_worker

    _register()
    build_worker(settings, with_crons=False, max_jobs=20).run()


async def _offer_load(settings: Settings, rate: float, seconds: float) -> list[int]:
    from gridrider.db.pool import create_pool
    from gridrider.jobs.queue import arq_redis, transaction

    pool = await create_pool(settings.database_url, min_size=4, max_size=8)
    redis = arq_redis(settings.redis_url)
    clock = SystemClock()
    ids: list[int] = []
    start = time.perf_counter()
    count = int(rate * seconds)
    try:
        for n in range(count):
            # Open-loop: each job is due at a fixed time, however slow the previous one was.
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            async with transaction(pool, clock, redis, max_attempts=3) as tx:
                job = await tx.add_job(BENCH_KIND)
            ids.append(job.id)
    finally:
        await redis.aclose()
        await pool.close()
    return ids


async def _wait_and_measure(settings: Settings, ids: list[int], timeout_s: float) -> list[float]:
    from gridrider.db.pool import create_pool

    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            left = await pool.fetchval("SELECT count(*) FROM jobs WHERE id = ANY($1) AND state <> 'done'", ids)
            if left == 0:
                break
            await asyncio.sleep(0.2)
        rows = await pool.fetch(
            "SELECT extract(epoch FROM finished_at - created_at) AS s FROM jobs WHERE id = ANY($1) AND state = 'done'",
            ids,
        )
        return sorted(float(r["s"]) for r in rows)
    finally:
        await pool.close()


@bench("jobs")
def bench_jobs(argv: list[str]) -> int:
    from gridrider.cli import _migrate

    parser = argparse.ArgumentParser(prog="gridrider bench jobs")
    parser.add_argument("--rate", type=float, default=200.0, help="offered jobs per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured duration")
    parser.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds, not measured")
    args = parser.parse_args(argv)

    with bench_runtime() as runtime, bench_database(runtime, "gridrider_bench_jobs") as settings:
        worker = multiprocessing.get_context("spawn").Process(target=_worker_process, args=(settings,), daemon=True)
        try:
            asyncio.run(_migrate(settings))
            worker.start()
            print(machine_line())
            print(f"load: one job per transaction, offered {args.rate:.0f}/s open-loop; warm-up {args.warmup:.0f} s, "
                  f"measured {args.seconds:.0f} s; 1 worker process, 20 concurrent jobs; "
                  f"{runtime.servers} PostgreSQL and Redis")
            asyncio.run(_offer_load(settings, args.rate, args.warmup))
            began = time.perf_counter()
            ids = asyncio.run(_offer_load(settings, args.rate, args.seconds))
            offered_for = time.perf_counter() - began
            latencies = asyncio.run(_wait_and_measure(settings, ids, timeout_s=120))
            done_within = time.perf_counter() - began
            print(f"jobs: {len(ids)} offered in {offered_for:.1f} s ({len(ids) / offered_for:.0f}/s achieved), "
                  f"{len(latencies)} done; all done {done_within:.1f} s after the first")
            print(f"commit→done latency: p50 {percentile(latencies, 0.5) * 1000:.0f} ms, "
                  f"p99 {percentile(latencies, 0.99) * 1000:.0f} ms, "
                  f"max {latencies[-1] * 1000 if latencies else 0:.0f} ms")
            return 0 if len(latencies) == len(ids) else 1
        finally:
            if worker.is_alive():
                worker.terminate()
                worker.join(10)
