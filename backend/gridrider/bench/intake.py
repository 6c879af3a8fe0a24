"""`gridrider bench intake`: latency and throughput of report intake, `POST /api/v1/reports`.

Fixed load: a courier's upload as the phone sends it (a `meta` JSON part and 0-3 photo parts of a
realistic ~300 KB phone JPEG), a new client_id per request, spread round-robin over signed-in
couriers, offered open-loop at a fixed rate by httpx in another process, against one real API
process (`python -m gridrider api`). No worker runs: each report's jobs stay pending rows.
The same load then goes to a bare Litestar route that only parses the multipart body, so the
figures can be read against what uvicorn, Litestar and the multipart parser cost on their own.
Latency = from the request's scheduled send time to its full answer (a late send counts).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import datetime as dt
import io
import math
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
from litestar import Litestar, Request, get, post

from gridrider.api.reports import MAX_REPORT_BODY, REPORT_INTAKE
from gridrider.bench import BenchRuntime, bench, bench_database, bench_runtime, machine_line, percentile
from gridrider.config import Settings

STREET_PHOTOS = Path("/work/shared/photos/street")
PHOTO_SOURCE = "DSCN0010.jpg"
PHOTO_SIZE = (1600, 1200)
PHOTO_TARGET_BYTES = 300 * 1024
COURIER_PHONE_BASE = 50_000  # 139 0005 xxxx: clear of the demo members' 139 0000 000x
CLIENTS = 32  # httpx clients in the load process, requests spread round-robin
CONNECTIONS_PER_CLIENT = 8
BOUNDARY = "gridriderbench7MA4YWxkTrZu0gW"


# ── the bare route: same body limit, multipart parsed, nothing else ─────────────────────────────

@post("/api/v1/reports", status_code=201, request_max_body_size=MAX_REPORT_BODY)
async def bare_report(request: Request[Any, Any, Any]) -> None:
    await request.form()


@get("/readyz")
async def bare_ready() -> str:
    return "ok"


bare_app = Litestar(route_handlers=[bare_report, bare_ready], debug=False, logging_config=None)


# ── the photo ───────────────────────────────────────────────────────────────────────────────────

def _phone_photo() -> tuple[bytes, str]:
    """A 1600×1200 JPEG near 300 KB: a real street photo upscaled, or noise when the photos are missing."""
    from PIL import Image

    source = STREET_PHOTOS / PHOTO_SOURCE
    if source.is_file():
        with Image.open(source) as original:
            image = original.convert("RGB").resize(PHOTO_SIZE, Image.Resampling.LANCZOS)
        what = f"{PHOTO_SOURCE} upscaled"
    else:
        # Smooth gradients plus mild noise compress about like a photo; pure noise would not.
        rng = random.Random(7)
        small = Image.frombytes("RGB", (160, 120), bytes(rng.randrange(256) for _ in range(160 * 120 * 3)))
        image = small.resize(PHOTO_SIZE, Image.Resampling.BICUBIC)
        image = Image.blend(image, Image.effect_noise(PHOTO_SIZE, 24).convert("RGB"), 0.15)
        what = f"generated noisy image ({source} missing)"

    def encode(quality: int) -> bytes:
        out = io.BytesIO()
        image.save(out, "JPEG", quality=quality, optimize=False)
        return out.getvalue()

    low, high, best = 5, 95, encode(75)
    best_quality = 75
    while low <= high:  # the quality whose size lands closest to the target
        quality = (low + high) // 2
        data = encode(quality)
        if abs(len(data) - PHOTO_TARGET_BYTES) < abs(len(best) - PHOTO_TARGET_BYTES):
            best, best_quality = data, quality
        if len(data) < PHOTO_TARGET_BYTES:
            low = quality + 1
        else:
            high = quality - 1
    return best, f"{what}, {PHOTO_SIZE[0]}×{PHOTO_SIZE[1]}, JPEG quality {best_quality}, {len(best) / 1024:.0f} KB"


def _size(n: int) -> str:
    return f"{n / 1024:.0f} KB" if n >= 10 * 1024 else f"{n} bytes"


def _multipart(meta: dict[str, Any], photo: bytes, photos: int) -> bytes:
    b = BOUNDARY.encode()
    parts = [b"--", b, b'\r\nContent-Disposition: form-data; name="meta"; filename="meta.json"\r\n',
             b"Content-Type: application/json\r\n\r\n", msgspec.json.encode(meta), b"\r\n"]
    for i in range(photos):
        parts += [b"--", b, f'\r\nContent-Disposition: form-data; name="photo"; filename="p{i}.jpg"\r\n'.encode(),
                  b"Content-Type: image/jpeg\r\n\r\n", photo, b"\r\n"]
    parts += [b"--", b, b"--\r\n"]
    return b"".join(parts)


def _meta() -> dict[str, Any]:
    captured = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=3)
    return {
        "client_id": str(uuid.uuid4()), "category": "garbage_pileup",
        "lat": round(42.3712 + random.uniform(-0.004, 0.004), 6),
        "lon": round(122.5301 + random.uniform(-0.004, 0.004), 6),
        "accuracy_m": 12.0, "position_source": "gps", "captured_at": captured.isoformat(),
        "note": "小区门口垃圾堆了三天",
    }


# ── the load generator (its own process) ───────────────────────────────────────────────────────

class Sample(msgspec.Struct, array_like=True):
    due: float  # scheduled send, seconds after the measured start
    sent: float
    done: float
    status: str


async def _offer(url: str, tokens: list[str], photo: bytes, photos: int, rate: float, seconds: float,
                 warmup: float) -> list[Sample]:
    import httpx

    content_type = f"multipart/form-data; boundary={BOUNDARY}"
    headers = [{"authorization": f"Bearer {t}", "content-type": content_type} for t in tokens]
    headers = headers or [{"content-type": content_type}]
    samples: list[Sample] = []
    warm = int(rate * warmup)
    total = warm + int(rate * seconds)
    # Many small pools, each entered through a semaphore: httpcore scans its queue against all its
    # connections on every event, which in one big pool with a backlog costs more CPU than the
    # requests (the generator, not the server, then sets the pace). Waiting here is free and still
    # counts in the latency, which runs from the scheduled send time.
    limits = httpx.Limits(max_connections=CONNECTIONS_PER_CLIENT, max_keepalive_connections=CONNECTIONS_PER_CLIENT)
    clients = [httpx.AsyncClient(base_url=url, limits=limits, timeout=30.0) for _ in range(CLIENTS)]
    gates = [asyncio.Semaphore(CONNECTIONS_PER_CLIENT) for _ in range(CLIENTS)]
    try:
        start = time.perf_counter() + 0.05
        measured_start = start + warm / rate

        async def one(n: int, due: float) -> None:
            sent = time.perf_counter()  # the generator's own lag ends here; a wait for a connection is the server's
            body = _multipart(_meta(), photo, photos)
            async with gates[n % CLIENTS]:
                try:
                    reply = await clients[n % CLIENTS].post("/api/v1/reports", content=body,
                                                            headers=headers[n % len(headers)])
                    status = str(reply.status_code)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
            if n >= warm:
                samples.append(Sample(due - measured_start, sent - measured_start,
                                      time.perf_counter() - measured_start, status))

        tasks = []
        for n in range(total):
            # Open-loop: each request is due at a fixed time, however slow the previous ones are.
            due = start + n / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(n, due)))
        await asyncio.gather(*tasks)
    finally:
        for client in clients:
            await client.aclose()
    return samples


def _load_process(url: str, tokens: list[str], photo: bytes, photos: int, rate: float, seconds: float,
                  warmup: float) -> bytes:
    return msgspec.msgpack.encode(asyncio.run(_offer(url, tokens, photo, photos, rate, seconds, warmup)))


def _run_load(url: str, tokens: list[str], photo: bytes, args: argparse.Namespace) -> list[Sample]:
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        raw = pool.submit(_load_process, url, tokens, photo, args.photos, args.rate, args.seconds, args.warmup)
        return msgspec.msgpack.decode(raw.result(), type=list[Sample])


def _summary(label: str, samples: list[Sample]) -> tuple[list[str], float, bool]:
    statuses = Counter(s.status for s in samples)
    created = statuses.get("201", 0)
    latencies = sorted(s.done - s.due for s in samples)
    lags = sorted(s.sent - s.due for s in samples)
    sent_span = max(s.sent for s in samples) - min(s.sent for s in samples) if len(samples) > 1 else 0.0
    achieved = (len(samples) - 1) / sent_span if sent_span > 0 else float("nan")
    busy = max(s.done for s in samples) - min(s.due for s in samples) if samples else float("nan")

    def ms(values: list[float], fraction: float) -> str:
        return f"{percentile(values, fraction) * 1000:.0f} ms"

    lines = [
        f"{label}: {len(samples)} offered, {achieved:.1f}/s achieved (send lag p99 {ms(lags, 0.99)}); "
        f"{created} answered 201 = {created / busy:.1f}/s over the {busy:.1f} s from first send to last answer",
        f"  statuses: {', '.join(f'{k} ×{v}' for k, v in sorted(statuses.items()))}",
        f"  latency (scheduled send → answer): p50 {ms(latencies, 0.5)}, p90 {ms(latencies, 0.9)}, "
        f"p99 {ms(latencies, 0.99)}, max {ms(latencies, 1.0)}",
    ]
    return lines, percentile(latencies, 0.5), created == len(samples)


# ── setup: migrate, demo, couriers, the API process ─────────────────────────────────────────────

async def _enrol_couriers(settings: Settings, count: int) -> tuple[bool, list[tuple[str, str]]]:
    from gridrider.clock import SystemClock
    from gridrider.db.pool import connect
    from gridrider.demo import seed_demo
    from gridrider.domain.enrolment import EnrolmentRequest, enrol

    conn = await connect(settings.database_url)
    try:
        seeded = (await seed_demo(conn, settings)).startswith("demo: seeded")
        codes: list[tuple[str, str]] = []
        now = SystemClock().now()
        async with conn.transaction():
            for n in range(COURIER_PHONE_BASE, COURIER_PHONE_BASE + count):
                phone = f"139{n:08d}"
                done = await enrol(conn, caller=None, now=now, secret=settings.session_secret,
                                   request=EnrolmentRequest(role="courier", display_name=f"压测骑手 {n}", phone=phone,
                                                            area_codes=["ZW-ZWZ"], platform="meituan"))
                codes.append((done.code, phone[-4:]))
        return seeded, codes
    finally:
        await conn.close()


def _sign_in(url: str, codes: list[tuple[str, str]]) -> list[str]:
    """Each courier signs in from its own address (198.18.0.0/15, forwarded by the loopback "proxy"
    uvicorn trusts), as riders do from their phones: the per-address sign-in limit is not the one measured."""
    import httpx

    tokens = []
    with httpx.Client(base_url=url, timeout=30.0) as client:
        for n, (code, last4) in enumerate(codes):
            reply = client.post("/api/v1/sessions", json={"code": code, "phone_last4": last4, "accept_privacy": True},
                                headers={"x-forwarded-for": f"198.{18 + n // 65536}.{n // 256 % 256}.{n % 256}"})
            reply.raise_for_status()
            tokens.append(reply.json()["token"])
    return tokens


def child_env(settings: Settings, port: int, **extra: str) -> dict[str, str]:
    """The environment of an API or worker process a bench starts on the bench's servers and secrets."""
    return {**os.environ, "DATABASE_URL": settings.database_url or "", "REDIS_URL": settings.redis_url or "",
            "GRIDRIDER_DATA_DIR": str(settings.data_dir), "GRIDRIDER_HOST": "127.0.0.1",
            "GRIDRIDER_PORT": str(port), "GRIDRIDER_SESSION_SECRET": settings.session_secret,
            "GRIDRIDER_URL_SIGNING_SECRET": settings.url_signing_secret,
            "GRIDRIDER_VAPID_PRIVATE_KEY": settings.vapid_private_key, **extra}


def start_api(env: dict[str, str], logs: Path, children: list[subprocess.Popen]) -> subprocess.Popen | None:
    """`gridrider api` on env's port, waited for until ready; None (its log printed) if it never is."""
    from gridrider.cli import _wait_ready

    api = _start([sys.executable, "-m", "gridrider", "api"], env, logs / "api.log")
    children.append(api)
    if not _wait_ready(f"http://127.0.0.1:{env['GRIDRIDER_PORT']}", [api], timeout_s=120):
        print(f"the API did not become ready; its log:\n{_log_tail(logs / 'api.log')}")
        return None
    return api


def _start(command: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    with log_path.open("ab") as log:
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603


def _log_tail(log_path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@bench("intake")
def bench_intake(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gridrider bench intake")
    parser.add_argument("--rate", type=float, default=100.0, help="offered reports per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured duration")
    parser.add_argument("--warmup", type=float, default=5.0, help="warm-up seconds, not measured")
    parser.add_argument("--couriers", type=int, default=50, help="signed-in couriers the reports are spread over")
    parser.add_argument("--photos", type=int, default=1, choices=range(4), help="photo parts per report (0-3)")
    args = parser.parse_args(argv)
    if args.rate * args.seconds < 2 or args.warmup < 0 or args.couriers < 1:
        parser.error("--rate × --seconds must make at least 2 requests, --couriers at least 1, --warmup not negative")

    photo, photo_what = _phone_photo()
    body_bytes = len(_multipart(_meta(), photo, args.photos))
    with bench_runtime() as runtime, bench_database(runtime, "gridrider_bench_intake") as settings:
        return _run_intake(args, runtime, settings, photo, photo_what, body_bytes)


def _run_intake(args, runtime: BenchRuntime, settings: Settings, photo: bytes, photo_what: str,
                body_bytes: int) -> int:
    from gridrider.cli import _migrate, _stop_children, _wait_ready
    from gridrider.embedded import free_loopback_port

    data_dir = runtime.data_dir
    logs = Path(tempfile.mkdtemp(prefix="gridrider-bench-logs-"))
    children: list[subprocess.Popen] = []
    try:
        print(machine_line())
        photo_part = f"{args.photos} × photo ({photo_what})" if args.photos else "no photo"
        print(f"load: POST /api/v1/reports, multipart meta + {photo_part}, {_size(body_bytes)} a request, "
              f"new client_id each; offered {args.rate:.0f}/s open-loop from one httpx process "
              f"({CLIENTS} clients × {CONNECTIONS_PER_CLIENT} connections); "
              f"warm-up {args.warmup:.0f} s, measured {args.seconds:.0f} s; "
              f"{args.couriers} couriers round-robin; one uvicorn process; "
              f"{'embedded' if data_dir else 'configured'} PostgreSQL and Redis; no worker (jobs stay pending rows)")
        per_courier = math.ceil(args.rate * (args.warmup + args.seconds) / args.couriers)
        if per_courier > REPORT_INTAKE.limit:
            print(f"warning: {per_courier} reports per courier exceed the intake limit of {REPORT_INTAKE.limit} "
                  f"per {REPORT_INTAKE.window_s // 3600} h: expect 429s (raise --couriers to at least "
                  f"{math.ceil(args.rate * (args.warmup + args.seconds) / REPORT_INTAKE.limit)})")
        if not data_dir:
            print(f"note: the configured Redis keeps each courier's intake count for {REPORT_INTAKE.window_s} s; "
                  f"runs within that time add up ({per_courier} per courier per run)")
        began = time.perf_counter()
        asyncio.run(_migrate(settings))
        seeded, codes = asyncio.run(_enrol_couriers(settings, args.couriers))

        port = free_loopback_port()
        env = child_env(settings, port)
        url = f"http://127.0.0.1:{port}"
        api = start_api(env, logs, children)
        if api is None:
            return 1
        tokens = _sign_in(url, codes)
        print(f"setup: migrated; demo {'seeded' if seeded else 'already there (not seeded)'}; {len(tokens)} couriers "
              f"enrolled and signed in; API pid {api.pid} ready ({time.perf_counter() - began:.1f} s)", flush=True)
        api_lines, api_p50, api_ok = _summary("api", _run_load(url, tokens, photo, args))
        _stop_children([api])
        for line in api_lines:
            print(line, flush=True)

        bare_port = free_loopback_port()
        bare_url = f"http://127.0.0.1:{bare_port}"
        bare = _start([sys.executable, "-m", "uvicorn", "gridrider.bench.intake:bare_app", "--host", "127.0.0.1",
                       "--port", str(bare_port), "--log-level", "warning", "--no-access-log", "--no-server-header"],
                      env, logs / "bare.log")
        children.append(bare)
        if not _wait_ready(bare_url, [bare], timeout_s=60):
            print(f"the bare app did not become ready; its log:\n{_log_tail(logs / 'bare.log')}")
            return 1
        bare_samples = _run_load(bare_url, [], photo, args)
        _stop_children([bare])
        bare_lines, bare_p50, bare_ok = _summary("bare Litestar route (await request.form(), 201)", bare_samples)
        for line in bare_lines:
            print(line)
        print(f"p50 ratio api / bare: {api_p50 / bare_p50:.1f}×")
        if "Traceback" in (logs / "api.log").read_text(errors="replace"):
            print(f"the API logged errors; its last lines:\n{_log_tail(logs / 'api.log')}")
        return 0 if api_ok and bare_ok else 1
    finally:
        _stop_children(children)
        shutil.rmtree(logs, ignore_errors=True)
