"""`gridrider bench <name>`: benchmarks that print the machine, their fixed load and their figures.

They live outside `make test` (speed goals are measured, never asserted in tests). Each one uses
the servers of DATABASE_URL / REDIS_URL when set — in a database of its own, created and dropped by
`bench_database`, never the configured one — else the embedded servers in a throw-away data dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import shutil
import tempfile
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec

from gridrider.config import Settings, load_settings

BENCHES: dict[str, Callable[[list[str]], int]] = {}
# The benches' own Redis database on a configured server (a deployment uses 0 unless told otherwise).
BENCH_REDIS_DB = 15


def bench(name: str) -> Callable[[Callable[[list[str]], int]], Callable[[list[str]], int]]:
    def register(fn: Callable[[list[str]], int]) -> Callable[[list[str]], int]:
        BENCHES[name] = fn
        return fn

    return register


def machine_line() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"machine: {model}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


class BenchRuntime(msgspec.Struct, frozen=True):
    settings: Settings
    data_dir: Path | None  # the throw-away data dir of embedded servers, None with configured URLs

    @property
    def servers(self) -> str:
        return "embedded" if self.data_dir else "configured"


@contextlib.contextmanager
def bench_runtime(*, prefix: str = "gridrider-bench-", need_redis: bool = True,
                  keep: bool = False) -> Iterator[BenchRuntime]:
    """Configured servers when DATABASE_URL (and REDIS_URL) are set, else embedded ones in a throw-away
    data dir that is removed afterwards unless `keep`."""
    from gridrider.cli import resolve_runtime, stop_embedded

    settings = load_settings()
    data_dir = None
    if settings.database_url is None or (need_redis and settings.redis_url is None):
        data_dir = Path(tempfile.mkdtemp(prefix=prefix))
        settings = load_settings(data_dir=data_dir)
    runtime = resolve_runtime(settings, allow_embedded=True, need_secrets=need_redis, need_redis=need_redis)
    try:
        yield BenchRuntime(settings=runtime.settings, data_dir=data_dir)
    finally:
        stop_embedded(runtime.embedded)
        if data_dir and not keep:
            shutil.rmtree(data_dir, ignore_errors=True)
        elif data_dir:
            print(f"kept: data dir {data_dir} (GRIDRIDER_DATA_DIR={data_dir} gridrider … starts its PostgreSQL)")


@contextlib.contextmanager
def bench_database(runtime: BenchRuntime, name: str, *, keep: bool = False,
                   reuse: bool = False) -> Iterator[Settings]:
    """Settings whose database is `name`: on a configured server, created afresh (dropped afterwards
    unless `keep`; with `reuse`, one kept by an earlier run is used as it is) so a bench never touches
    the real database; in a throw-away data dir, as is.

    On a configured Redis the bench's queues live in Redis database BENCH_REDIS_DB, so its workers never
    take a deployment's jobs (nor a deployment's workers the bench's)."""
    configured = None if runtime.data_dir else runtime.settings.database_url
    if configured is None:
        yield runtime.settings
        return
    if not (reuse and asyncio.run(_database_exists(configured, name))):
        asyncio.run(_recreate_database(configured, name))
    parts = urllib.parse.urlsplit(configured)
    redis_url = runtime.settings.redis_url
    if redis_url is not None:
        redis_url = urllib.parse.urlunsplit(urllib.parse.urlsplit(redis_url)._replace(path=f"/{BENCH_REDIS_DB}"))
    try:
        yield msgspec.structs.replace(runtime.settings, redis_url=redis_url,
                                      database_url=urllib.parse.urlunsplit(parts._replace(path="/" + name)))
    finally:
        if keep:
            print(f"kept: database {name}")
        else:
            asyncio.run(_recreate_database(configured, name, drop_only=True))


async def _database_exists(url: str, name: str) -> bool:
    from gridrider.db.pool import connect

    conn = await connect(url)
    try:
        return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
    finally:
        await conn.close()


async def _recreate_database(url: str, name: str, drop_only: bool = False) -> None:
    from gridrider.db.pool import connect

    conn = await connect(url)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        if not drop_only:
            await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def run_bench(name: str, rest: list[str]) -> int:
    from gridrider.bench import images, intake, jobs, merge, push, rankings  # noqa: F401  (registers their benches)

    if name in ("--list", "list"):
        print(" ".join(sorted(BENCHES)))
        return 0
    if name not in BENCHES:
        print(f"unknown bench {name!r}; known: {', '.join(sorted(BENCHES))}")
        return 2
    return BENCHES[name](rest)
