"""`gridrider bench push`: Web Push fan-out throughput and report → push latency.

Part 1 — the sender: one notification to N subscriptions, sent by the `notify` job in this process to a
push-service stand-in in a separate process that only counts (bench/push_sink.py), over TLS with
keep-alive as real push services are reached. Prints deliveries/s and this process's CPU µs per
delivery (the encryption, VAPID header, HTTP and the delivery bookkeeping in PostgreSQL).

Part 2 — end to end: an API process and a worker process; reports posted at a steady rate to random
places in the demo town, each grid member of every grid subscribed once; the latency from the API's
201 to the message's arrival at the sink (matched by the Topic header, one per incident).

The sink's address reaches the sender only through the PushNetwork this benchmark builds in code (as
the tests do): nothing a deployment configures can point a sender at a local address.

The sink, PostgreSQL and this process share the machine's cores, so the load average is printed with
the figures: on a machine others are using, deliveries/s falls with it, CPU µs per delivery far less.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import multiprocessing
import os
import random
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from gridrider.bench import BenchRuntime, bench, bench_database, bench_runtime, machine_line, percentile
from gridrider.config import Settings

SINK_HOST = "push.bench.invalid"
BENCH_DATABASE = "gridrider_bench_push"


def _load_average() -> str:
    try:
        return "/".join(f"{value:.1f}" for value in os.getloadavg())  # 1, 5 and 15 minutes
    except OSError:
        return "unknown"


@contextlib.contextmanager
def _gc_time() -> Iterator[list[float]]:
    """Seconds the garbage collector ran inside the block (in [0] once it ends)."""
    spent, started = [0.0], [0.0]

    def measure(phase: str, _info: dict) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            spent[0] += time.perf_counter() - started[0]

    gc.callbacks.append(measure)
    try:
        yield spent
    finally:
        gc.callbacks.remove(measure)


def _ecdh_speed() -> str:
    """How fast this machine is right now, in the unit a delivery spends most on: one P-256 ECDH.

    On a shared (virtual) machine the same code's figures move with its neighbours; this line lets two
    runs be compared. It was 47 µs when docs/capacity.md's push figures were taken, 60 µs an hour later
    on the same machine, when the fan-out gave 2,750–3,200/s instead of 3,290–3,630/s.
    """
    import timeit

    from cryptography.hazmat.primitives.asymmetric import ec

    mine, theirs = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1()).public_key()
    seconds = min(timeit.repeat(lambda: mine.exchange(ec.ECDH(), theirs), number=2000, repeat=3)) / 2000
    return f"one P-256 ECDH takes {seconds * 1e6:.0f} µs on this machine now"


def _sink_network(port: int, ca_path: Path):
    import ipaddress

    from gridrider.push.network import PushNetwork

    async def resolve(host: str, _port: int) -> list[tuple[str, int]]:
        if host != SINK_HOST:
            raise OSError(f"{host}: not the benchmark's sink")
        return [("127.0.0.1", port)]

    return PushNetwork(resolve=resolve, address_allowed=lambda a: a == ipaddress.ip_address("127.0.0.1"),
                       ssl_context=ssl.create_default_context(cafile=str(ca_path)), extra_hosts=frozenset({SINK_HOST}))


def _start_sink(work: Path) -> tuple[subprocess.Popen, int, Path]:
    port_file = work / "sink.port"
    sink = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "gridrider.bench.push_sink", "--port-file", str(port_file), "--cert-dir",
         str(work / "certs"), "--host-name", SINK_HOST], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not port_file.exists():
        if sink.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the push sink did not start")
        time.sleep(0.05)
    return sink, int(port_file.read_text()), work / "certs" / "ca.pem"


def _sink_stats(port: int, ca_path: Path, *, reset: bool = False) -> dict:
    import httpx

    with httpx.Client(verify=ssl.create_default_context(cafile=str(ca_path)), timeout=30) as client:
        reply = client.get(f"https://127.0.0.1:{port}/stats" + ("?reset=1" if reset else ""),
                           headers={"Host": SINK_HOST}, extensions={"sni_hostname": SINK_HOST})
        reply.raise_for_status()
        return reply.json()


def _browser_key() -> tuple[bytes, bytes]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    point = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return point, os.urandom(16)


async def _subscribe_grid_members(conn, settings: Settings, *, per_grid: dict[int, int]) -> int:
    """A grid member for each grid given, with that many subscriptions on the sink; returns how many."""
    from gridrider.push.vapid import VapidKeyring

    key_id = VapidKeyring.from_text(settings.vapid_private_key, settings.vapid_subject).current.id
    point, auth = _browser_key()  # one browser key: encryption costs the same for any key
    rows = []
    async with conn.transaction():
        for grid_id, count in per_grid.items():
            member = await conn.fetchval(
                "INSERT INTO members (role, pseudonym, phone) VALUES ('grid_member', $1, $2) RETURNING id",
                f"bench-{uuid.uuid4().hex[:12]}", f"135{random.randrange(10**8):08d}")
            await conn.execute("INSERT INTO member_areas (member_id, area_id) VALUES ($1, $2)", member, grid_id)
            rows += [(member, f"https://{SINK_HOST}/push/{uuid.uuid4().hex}", point, auth, key_id)
                     for _ in range(count)]
        await conn.copy_records_to_table("push_subscriptions", records=rows,
                                         columns=["member_id", "endpoint", "p256dh", "auth", "vapid_key_id"])
    return len(rows)


async def _fan_out(settings: Settings, network, sink_port: int, ca_path: Path, subscriptions: int) -> list[str]:
    from gridrider.clock import SystemClock
    from gridrider.db.pool import create_pool
    from gridrider.domain import notifications
    from gridrider.images.blobs import LocalBlobStore
    from gridrider.jobs.notify import enqueue_notify, notify
    from gridrider.jobs.queue import transaction
    from gridrider.jobs.runner import run_job_row
    from gridrider.jobs.worker import freeze_startup_heap
    from gridrider.push import build_push
    from gridrider.services import Services

    pool = await create_pool(settings.database_url, min_size=2, max_size=4)
    clock = SystemClock()
    services = Services(settings=settings, clock=clock, pool=pool, redis=None,
                        blobs=LocalBlobStore(settings.data_dir / "blobs"), push=build_push(settings, network))
    lines = []
    try:
        grid_id = await pool.fetchval("SELECT id FROM areas WHERE level = 'grid' ORDER BY id LIMIT 1")
        incident = await pool.fetchval("SELECT id FROM incidents ORDER BY id LIMIT 1")
        async with pool.acquire() as conn:
            await conn.execute("DELETE FROM push_subscriptions")
            await _subscribe_grid_members(conn, settings, per_grid={grid_id: subscriptions})

        async def one_notification(label: str) -> tuple[float, float, int]:
            async with transaction(pool, clock, None, max_attempts=3) as tx:
                notification = await notifications.record(
                    tx.conn, event=notifications.INCIDENT_REACHED_GRID, incident_id=incident,
                    audience=notifications.grid_audience(grid_id), payload={"reason": "created", "routed": True},
                    dedupe_key=f"bench:{uuid.uuid4()}", now=clock.now())
                await enqueue_notify(tx, notification)
            job_id = await pool.fetchval("SELECT id FROM jobs WHERE dedupe_key = $1", f"notification:{notification}")
            _sink_stats(sink_port, ca_path, reset=True)
            with _gc_time() as collecting:
                wall, cpu = time.perf_counter(), time.process_time()
                outcome = await run_job_row(services, job_id, notify)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            received = _sink_stats(sink_port, ca_path)["count"]
            if not outcome.startswith("web push"):
                raise RuntimeError(f"{label}: notify did not send: {outcome}")
            return wall, cpu, received, collecting[0]

        await one_notification("warm-up")  # TLS handshakes, JWT signing, first queries
        freeze_startup_heap()  # as the worker does once started
        runs = [await one_notification(f"run {n}") for n in range(3)]
        for n, (wall, cpu, received, collecting) in enumerate(runs, 1):
            lines.append(f"fan-out run {n}: {subscriptions} subscriptions → {received} received by the sink in "
                         f"{wall:.2f} s = {received / wall:,.0f} deliveries/s; CPU {cpu / subscriptions * 1e6:.0f} µs "
                         f"per delivery (this process), of which {collecting / subscriptions * 1e6:.1f} µs "
                         "garbage collection")
        best = max(received / wall for wall, _, received, _ in runs)
        lines.append(f"fan-out best: {best:,.0f} deliveries/s per worker process (goal ≥3,000); "
                     f"load average {_load_average()}; {_ecdh_speed()}")
    finally:
        await services.push.aclose()
        await pool.close()
    return lines


def _worker_process(settings: Settings, sink_port: int, ca_path: str) -> None:
    from gridrider.cli import use_uvloop
    from gridrider.jobs.worker import build_worker
    from gridrider.logging import configure_logging

    configure_logging("warning", "text")
    use_uvloop()  # as `gridrider worker` runs
    worker = build_worker(settings, push_network=_sink_network(sink_port, Path(ca_path)), handle_signals=True)
    worker.run()


async def _post_reports(url: str, tokens: list[str], points: list[tuple[float, float]], categories: list[str],
                        rate: float, seconds: float) -> dict[int, float]:
    import datetime as dt

    import httpx

    answered: dict[int, float] = {}
    async with httpx.AsyncClient(base_url=url, timeout=30.0,
                                 limits=httpx.Limits(max_connections=16, max_keepalive_connections=16)) as client:
        async def one(n: int) -> None:
            lat, lon = random.choice(points)
            meta = {"client_id": str(uuid.uuid4()), "category": random.choice(categories),
                    "lat": lat + random.uniform(-0.0004, 0.0004), "lon": lon + random.uniform(-0.0004, 0.0004),
                    "accuracy_m": 10.0, "position_source": "gps",
                    "captured_at": (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=30)).isoformat()}
            reply = await client.post("/api/v1/reports", headers={"authorization": f"Bearer {tokens[n % len(tokens)]}"},
                                      files=[("meta", ("meta.json", json.dumps(meta).encode(), "application/json"))])
            if reply.status_code == 201:
                answered[reply.json()["id"]] = time.time()

        start, tasks = time.perf_counter(), []
        for n in range(int(rate * seconds)):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(n)))
        await asyncio.gather(*tasks)
    return answered


async def _latency_setup(settings: Settings) -> tuple[list[tuple[float, float]], list[str]]:
    from shapely.geometry import shape

    from gridrider.db.pool import connect
    from gridrider.domain.demo_geography import zhangwu_demo_areas

    conn = await connect(settings.database_url)
    try:
        await conn.execute("DELETE FROM push_subscriptions")
        grids = {r["code"]: r["id"] for r in await conn.fetch("SELECT id, code FROM areas WHERE level = 'grid'")}
        await _subscribe_grid_members(conn, settings, per_grid=dict.fromkeys(grids.values(), 1))
        categories = [r["code"] for r in await conn.fetch("SELECT code FROM categories WHERE enabled")]
    finally:
        await conn.close()
    points = []
    for area in zhangwu_demo_areas():
        if area.code in grids:
            point = shape(area.polygon).representative_point()
            points.append((point.y, point.x))
    return points, categories


async def _latencies(settings: Settings, answered: dict[int, float], arrivals: list[list]) -> tuple[list[float], int]:
    from gridrider.db.pool import connect

    first_arrival: dict[str, float] = {}
    for topic, at in arrivals:
        if topic and topic not in first_arrival:
            first_arrival[topic] = at
    conn = await connect(settings.database_url)
    try:
        rows = await conn.fetch("SELECT id, origin_report_id FROM incidents WHERE origin_report_id = ANY($1::bigint[])",
                                list(answered))
    finally:
        await conn.close()
    latencies = sorted(first_arrival[f"incident-{r['id']}"] - answered[r["origin_report_id"]]
                       for r in rows if f"incident-{r['id']}" in first_arrival)
    return latencies, len(rows)


@bench("push")
def bench_push(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gridrider bench push")
    parser.add_argument("--subscriptions", type=int, default=20_000, help="fan-out size of part 1")
    parser.add_argument("--rate", type=float, default=20.0, help="reports per second in part 2")
    parser.add_argument("--seconds", type=float, default=60.0, help="duration of part 2")
    parser.add_argument("--couriers", type=int, default=50)
    args = parser.parse_args(argv)
    with bench_runtime() as runtime, bench_database(runtime, BENCH_DATABASE) as settings:
        return _run(args, runtime, settings)


def _run(args: argparse.Namespace, runtime: BenchRuntime, settings: Settings) -> int:
    from gridrider.bench.intake import _enrol_couriers, _sign_in, child_env, start_api
    from gridrider.cli import _migrate, _stop_children, use_uvloop
    from gridrider.embedded import free_loopback_port

    work = Path(tempfile.mkdtemp(prefix="gridrider-bench-push-"))
    children: list = []
    try:
        print(machine_line())
        print(f"servers: {runtime.servers} PostgreSQL and Redis; sink: separate process, TLS (P-256), counts only")
        asyncio.run(_migrate(settings))
        _, codes = asyncio.run(_enrol_couriers(settings, args.couriers))
        sink, sink_port, ca_path = _start_sink(work)
        children.append(sink)
        network = _sink_network(sink_port, ca_path)

        # Part 1 needs an incident for the notification to name; part 2 makes plenty.
        port = free_loopback_port()
        url = f"http://127.0.0.1:{port}"
        if start_api(child_env(settings, port, GRIDRIDER_LOG_LEVEL="warning"), work, children) is None:
            return 1
        tokens = _sign_in(url, codes)
        worker = multiprocessing.get_context("spawn").Process(
            target=_worker_process, args=(settings, sink_port, str(ca_path)), daemon=True)
        worker.start()

        points, categories = asyncio.run(_latency_setup(settings))
        print(f"part 2 load: {args.rate:.0f} reports/s for {args.seconds:.0f} s, no photo, random places near the "
              f"{len(points)} demo grids' centres, {len(categories)} categories; one grid member subscribed per grid; "
              f"one API process (uvicorn), one worker process (arq, default queue)", flush=True)
        _sink_stats(sink_port, ca_path, reset=True)
        answered = asyncio.run(_post_reports(url, tokens, points, categories, args.rate, args.seconds))
        time.sleep(5)  # the last reports' pushes
        arrivals = _sink_stats(sink_port, ca_path)["arrivals"]
        latencies, incidents = asyncio.run(_latencies(settings, answered, arrivals))
        worker.terminate()
        worker.join(10)
        print(f"part 2: {len(answered)} reports answered 201 → {incidents} new incidents (the rest merged) → "
              f"{len(latencies)} pushes matched at the sink; load average {_load_average()}")
        if latencies:
            print(f"report 201 → push received: p50 {percentile(latencies, 0.5) * 1000:.0f} ms, "
                  f"p95 {percentile(latencies, 0.95) * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms "
                  "(goal p95 ≤500 ms)")

        print(f"part 1 load: one notification to {args.subscriptions:,} subscriptions (one grid), sent by the "
              f"notify job in this process ({settings.push_concurrency} connections), after one warm-up run",
              flush=True)
        use_uvloop()  # the loop `gridrider worker` runs on
        for line in asyncio.run(_fan_out(settings, network, sink_port, ca_path, args.subscriptions)):
            print(line, flush=True)
        return 0
    finally:
        _stop_children([c for c in children if isinstance(c, subprocess.Popen)])
        shutil.rmtree(work, ignore_errors=True)
