"""Load a whole deployment until something saturates, for docs/capacity.md (issue 11).

    .venv/bin/python -m tests.faults.saturate [--rates 10,20,40,60,80] [--step-s 40]

Starts the fault suite's deployment (tests/faults/stack.py: two API processes, two default-queue workers,
one photo worker, PostgreSQL, Redis, the local push service) and runs the load client at each rate in turn:
riders posting one ~1024×768 photo per report, grid members taking incidents. Every second it samples the
CPU of each process (children included: the photo worker's decoder), PostgreSQL's and Redis's, and the job
backlog. Per step it prints the rate offered and acknowledged, the riders' wait (p50/p95, resends included),
the jobs still waiting at the end and how old the oldest is, and each component's CPU in cores. The first
component to sit at one core (a Python process has one) or the backlog that grows without bound is the
bottleneck. Not part of `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from pathlib import Path

import psutil

from gridrider.db.pool import connect
from gridrider.embedded import generate_vapid_private_key_pem
from tests.faults.stack import PROCESSES, LoadRun, Stack

# Rows inserted, updated and deleted so far (statistics lag ~0.5 s: fine over a step of tens of seconds).
WRITES_SQL = "SELECT sum(n_tup_ins + n_tup_upd + n_tup_del)::bigint FROM pg_stat_user_tables"
WAL_SQL = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint"
SIZES_SQL = """
SELECT relname, n_live_tup AS rows, pg_total_relation_size(relid) AS bytes
FROM pg_stat_user_tables WHERE n_live_tup > 0 ORDER BY bytes DESC LIMIT 12
"""


def _tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its children so far."""
    try:
        process = psutil.Process(pid)
        total = sum(process.cpu_times()[:2])
        for child in process.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += sum(child.cpu_times()[:2])
        return total
    except psutil.Error:
        return 0.0


def _servers_cpu(stack: Stack) -> dict[str, float]:
    totals = {"postgres": 0.0, "redis": 0.0}
    for process in psutil.process_iter(["name", "cmdline"]):
        try:
            cmdline = " ".join(process.info["cmdline"] or [])
            if process.info["name"] == "postgres" and (
                    str(stack.pg.pgdata) in cmdline or process.ppid() in _postmaster(stack)):
                totals["postgres"] += sum(process.cpu_times()[:2])
            elif "redis-server" in cmdline and f":{stack.redis.port}" in cmdline:
                totals["redis"] += sum(process.cpu_times()[:2])
        except psutil.Error:
            continue
    return totals


def _postmaster(stack: Stack) -> set[int]:
    pid_file = stack.pg.pgdata / "postmaster.pid"
    try:
        return {int(pid_file.read_text().split()[0])}
    except (OSError, ValueError, IndexError):
        return set()


def _sample(stack: Stack, load: LoadRun) -> dict[str, float]:
    cpu = {name: _tree_cpu(stack.processes[name].pid) for name in PROCESSES}
    cpu |= _servers_cpu(stack)
    cpu["load client"] = _tree_cpu(load.process.pid)
    cpu["push service (this process)"] = sum(psutil.Process().cpu_times()[:2])
    return cpu


async def _step(stack: Stack, root: Path, rate: float, seconds: float, n: int) -> list[str]:
    work = root / f"step-{n}"
    load = LoadRun(work, stack.load_config(work, rate=rate, seed=n + 1) | {"photo_pool": 200})
    conn = await connect(stack.database_url)
    try:
        await asyncio.sleep(8)  # the load client's start-up (its photos made) is not part of the step
        before, began = _sample(stack, load), time.monotonic()
        writes_before, wal_before = await conn.fetchval(WRITES_SQL), await conn.fetchval(WAL_SQL)
        await asyncio.sleep(seconds)
        after, took = _sample(stack, load), time.monotonic() - began
        writes = (await conn.fetchval(WRITES_SQL) - writes_before) / took
        wal = (await conn.fetchval(WAL_SQL) - wal_before) / took
        backlog = await conn.fetchrow(
            "SELECT count(*) AS jobs, extract(epoch FROM now() - min(created_at)) AS oldest_s FROM jobs "
            "WHERE state IN ('pending', 'retry', 'running')")
        by_kind = await conn.fetch(
            "SELECT kind, count(*) AS n FROM jobs WHERE state IN ('pending', 'retry', 'running') "
            "GROUP BY kind ORDER BY n DESC")
        waits = [w for t, w in load.ack_waits() if t >= time.time() - seconds]
        await load.finish(timeout_s=300)
    finally:
        load.kill()
        await conn.close()
    cores = {name: (after[name] - before[name]) / took for name in after}
    p50 = statistics.median(waits) if waits else float("nan")
    p95 = statistics.quantiles(waits, n=20)[18] if len(waits) >= 20 else float("nan")
    lines = [f"offered {rate:>5.0f}/s  acknowledged {len(waits) / seconds:>6.1f}/s  "
             f"rider wait p50 {p50 * 1000:>5.0f} ms p95 {p95 * 1000:>6.0f} ms  "
             f"jobs waiting {backlog['jobs']:>5} (oldest {backlog['oldest_s'] or 0:.0f} s"
             + "".join(f"; {r['kind']} {r['n']}" for r in by_kind) + ")"]
    per_report = len(waits) / seconds or 1
    lines.append(f"    PostgreSQL: {writes:.0f} row writes/s ({writes / per_report:.1f} per report), "
                 f"WAL {wal / 1024:.0f} KiB/s ({wal / per_report / 1024:.1f} KiB per report)")
    lines.append("    CPU cores: " + ", ".join(f"{name} {value:.2f}" for name, value in
                                               sorted(cores.items(), key=lambda kv: -kv[1])))
    return lines


async def main(rates: list[float], step_s: float) -> None:
    root = Path(tempfile.mkdtemp(prefix="gridrider-saturate-"))
    stack = Stack(root, generate_vapid_private_key_pem(), spread_riders=True)
    try:
        await stack.start(riders=Stack.riders_for(sum(rates), step_s + 10))
        print(f"deployment up in {root}: {len(stack.riders)} riders, {psutil.cpu_count()} cores", flush=True)
        for n, rate in enumerate(rates):
            for line in await _step(stack, root, rate, step_s, n):
                print(line, flush=True)
            conn = await connect(stack.database_url)
            try:  # let the backlog drain between steps, so each step starts level
                for _ in range(240):
                    if not await conn.fetchval("SELECT count(*) FROM jobs WHERE state IN ('pending', 'retry')"):
                        break
                    await asyncio.sleep(0.5)
            finally:
                await conn.close()
        conn = await connect(stack.database_url)
        try:
            print("table sizes at the end (rows, bytes per row with indexes):", flush=True)
            for row in await conn.fetch(SIZES_SQL):
                per_row = row["bytes"] / row["rows"]
                print(f"    {row['relname']:<24} {row['rows']:>8}  {per_row:>7.0f} B/row", flush=True)
            blobs = sum(f.stat().st_size for f in (root / "data" / "blobs").rglob("*") if f.is_file())
            photos = await conn.fetchval("SELECT count(*) FROM photos")
            print(f"    blobs: {blobs / 2**20:.0f} MiB for {photos} photos ({blobs / max(photos, 1) / 1024:.0f} KiB "
                  "per photo: original + display + thumbnail)", flush=True)
        finally:
            await conn.close()
    finally:
        await stack.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="10,20,40,60,80")
    parser.add_argument("--step-s", type=float, default=40.0)
    args = parser.parse_args()
    asyncio.run(main([float(r) for r in args.rates.split(",")], args.step_s))
