"""A whole gridrider deployment on servers the test owns: PostgreSQL and Redis (each behind a proxy that can
blackhole), two API processes, two default-queue workers, a photo worker, the local push service — and
riders, grid members and supervisors signed in through the API, the staff subscribed to push.

Processes read the servers through the proxies, so a blackhole between them and the servers is a network
fault, while the test (and its oracle) reads PostgreSQL directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import shapely

from gridrider.db.migrate import migrate_and_seed_defaults
from gridrider.db.pool import connect
from gridrider.demo import seed_demo
from gridrider.domain.demo_geography import zhangwu_demo_areas
from gridrider.domain.enrolment import EnrolmentRequest, enrol
from gridrider.embedded import free_loopback_port
from tests.conftest import SHARED_PHOTOS, TEST_SECRETS, make_settings
from tests.faults.servers import BlackholeProxy, PostgresServer, RedisServer
from tests.push.push_service import PushService

REPO = Path(__file__).resolve().parents[2]
# Riders post from spots inside these grids; each grid has a grid member who takes its incidents.
GRIDS = ("ZW-ZWZ-C02-G01", "ZW-ZWZ-C02-G02", "ZW-ZWZ-C02-G03", "ZW-ZWZ-C07-G08", "ZW-ZWZ-C07-G09",
         "ZW-ZWZ-C12-G02")
# Reports a rider sends per hour stay under the burst rule (30 an hour) so the load raises no gaming flags.
REPORTS_PER_RIDER = 25
PROCESSES = ("api0", "api1", "default0", "default1", "photos0")


@dataclass
class Member:
    member_id: int
    token: str
    phone: str
    lat: float = 0.0
    lon: float = 0.0


@dataclass
class Stack:
    root: Path
    vapid_pem: str
    pg: PostgresServer = field(init=False)
    redis: RedisServer = field(init=False)
    pg_proxy: BlackholeProxy = field(init=False)
    redis_proxy: BlackholeProxy = field(init=False)
    push: PushService = field(init=False)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    riders: list[Member] = field(default_factory=list)
    grid_members: list[Member] = field(default_factory=list)
    staff_subscriptions: dict[int, list[str]] = field(default_factory=dict)  # member → endpoints
    spread_riders: bool = False

    @property
    def database_url(self) -> str:
        """Straight to PostgreSQL: the test's and the oracle's view, never blackholed."""
        return self.pg.url("gridrider")

    @property
    def clock_file(self) -> Path:
        return self.root / "clock-offset-s"

    @property
    def api_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{self.ports[name]}" for name in ("api0", "api1")]

    # ── servers ────────────────────────────────────────────────────────────────────────────────────

    async def start(self, *, riders: int) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.clock_file.write_text("0")
        self.pg = PostgresServer()
        await asyncio.to_thread(self.pg.init)
        admin = await asyncpg.connect(self.pg.admin_url)
        await admin.execute("CREATE DATABASE gridrider")
        await admin.close()
        conn = await connect(self.database_url)
        try:
            await migrate_and_seed_defaults(conn)
            await seed_demo(conn, make_settings(self.root / "data", self.database_url, None, self.vapid_pem))
        finally:
            await conn.close()
        self.redis = RedisServer(self.root / "redis")
        await asyncio.to_thread(self.redis.start)
        self.pg_proxy = BlackholeProxy(self.pg.port)
        self.redis_proxy = BlackholeProxy(self.redis.port)
        self.pg_proxy.start()
        self.redis_proxy.start()
        self.push = PushService()
        await self.push.start()
        (self.root / "push-ca.pem").write_bytes(self.push._ca_pem or b"")
        for name in PROCESSES:
            self.ports[name] = free_loopback_port()
            self.spawn(name)
        await self.wait_ready()
        await self._members(riders)

    async def stop(self) -> None:
        for name in list(self.processes):
            self.terminate(name)
        with contextlib.suppress(Exception):
            await self.push.stop()
        for closer in (self.pg_proxy.close, self.redis_proxy.close, self.redis.stop, self.pg.close):
            with contextlib.suppress(Exception):
                closer()

    # ── processes ──────────────────────────────────────────────────────────────────────────────────

    def env(self, name: str) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{self.pg_proxy.port}/gridrider",
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_proxy.port}/0",
            "GRIDRIDER_DATA_DIR": str(self.root / "data"), "GRIDRIDER_PORT": str(self.ports[name]),
            "GRIDRIDER_PUBLIC_URL": f"http://127.0.0.1:{self.ports[name]}",
            "GRIDRIDER_SESSION_SECRET": TEST_SECRETS["session_secret"],
            "GRIDRIDER_URL_SIGNING_SECRET": TEST_SECRETS["url_signing_secret"],
            "GRIDRIDER_VAPID_PRIVATE_KEY": self.vapid_pem,
            "GRIDRIDER_LOG_LEVEL": "warning", "GRIDRIDER_METRICS_PORT": "0",
            # Faults should cost seconds, not the production minute: short leases, quick retries, a relay
            # every second.
            "GRIDRIDER_JOB_LEASE_S": "8", "GRIDRIDER_JOB_BACKOFF_S": "0.5", "GRIDRIDER_RELAY_EVERY_S": "1",
            "GRIDRIDER_JOB_MAX_ATTEMPTS": "12",
            # Grid members here take incidents within seconds of a handful of riders, which the pair-collusion
            # rule is right to find suspicious in real life; this load is not what that rule is tested on.
            "GRIDRIDER_PAIR_COLLUSION_MIN_REPORTS": "10000",
            "FAULTS_CLOCK_FILE": str(self.clock_file), "FAULTS_PUSH_HOST": self.push.host_name,
            "FAULTS_PUSH_PORT": str(self.push.port), "FAULTS_PUSH_CA": str(self.root / "push-ca.pem"),
            "PYTHONPATH": str(REPO),
        }

    def spawn(self, name: str) -> None:
        role = "api" if name.startswith("api") else name.rstrip("0123456789")
        log = (self.root / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen([sys.executable, "-m", "tests.faults.run_process", role],
                                                env=self.env(name), stdout=log, stderr=subprocess.STDOUT,
                                                cwd=REPO, start_new_session=True)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """SIGKILL the process and everything it started (a worker's decoder children die with it, as in a
        container whose main process dies)."""
        process = self.processes[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        process.wait(30)

    def terminate(self, name: str) -> None:
        process = self.processes.pop(name)
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    async def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=2) as http:
            for url in self.api_urls:
                while True:
                    with contextlib.suppress(httpx.HTTPError):
                        if (await http.get(f"{url}/readyz")).status_code == 200:
                            break
                    dead = [n for n, p in self.processes.items() if p.poll() is not None]
                    assert not dead and time.monotonic() < deadline, f"not ready: {dead} {self.log_tail()}"
                    await asyncio.sleep(0.1)

    def log_tail(self, lines: int = 15) -> str:
        out = []
        for name in PROCESSES:
            path = self.root / f"{name}.log"
            if path.exists():
                out.append(f"── {name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(out)

    # ── people ─────────────────────────────────────────────────────────────────────────────────────

    async def _members(self, riders: int) -> None:
        """Enrol through the server-side path, sign in through the API (each from an address of its own,
        as phones are), and subscribe every staff member's phone to the push service."""
        shapes = {a.code: shapely.geometry.shape(a.polygon) for a in zhangwu_demo_areas()}
        # Riders ride the grids that have members (so their incidents are taken), or with `spread_riders`
        # every grid of the town, as a city's hazards are spread (the saturation run: no artificial hot spot).
        grids = sorted(c for c in shapes if "-G" in c) if self.spread_riders else GRIDS
        spots = [shapes[g].representative_point() for g in grids]
        plan: list[tuple[str, str, list[str], str | None]] = []
        for n in range(riders):
            plan.append(("courier", f"1391{n:07d}", ["ZW-ZWZ"], "meituan"))
        for n, grid in enumerate(GRIDS):
            plan.append(("grid_member", f"1372{n:07d}", [grid], None))
        communities = sorted({g.rsplit("-", 1)[0] for g in GRIDS})
        for n, area in enumerate([*communities, "ZW-ZWZ", "ZW"]):
            plan.append(("supervisor", f"1373{n:07d}", [area], None))
        conn = await connect(self.database_url)
        try:
            async with conn.transaction():
                codes = [(role, phone, (await enrol(
                    conn, caller=None, now=_utc_now(), secret=TEST_SECRETS["session_secret"],
                    request=EnrolmentRequest(role=role, display_name=f"故障测试 {phone[-4:]}", phone=phone,
                                             area_codes=areas, platform=platform))).code)
                         for role, phone, areas, platform in plan]
        finally:
            await conn.close()
        async with httpx.AsyncClient(base_url=self.api_urls[0], timeout=30) as http:
            for n, (role, phone, code) in enumerate(codes):
                signed = await http.post("/api/v1/sessions", json={"code": code, "phone_last4": phone[-4:],
                                                                   "accept_privacy": True},
                                         headers={"x-forwarded-for": f"198.18.{n // 256}.{n % 256}"})
                assert signed.status_code == 201, signed.text
                body = signed.json()
                member = Member(body["member"]["id"], body["token"], phone)
                if role == "courier":
                    spot = spots[n % len(spots)]
                    member.lat, member.lon = spot.y, spot.x
                    self.riders.append(member)
                    continue
                if role == "grid_member":
                    self.grid_members.append(member)
                subscription = self.push.new_subscription()
                reply = await http.post("/api/v1/push/subscriptions", json=subscription,
                                        headers={"Authorization": f"Bearer {member.token}"})
                assert reply.status_code == 201, reply.text
                self.staff_subscriptions.setdefault(member.member_id, []).append(subscription["endpoint"])

    # ── load ───────────────────────────────────────────────────────────────────────────────────────

    def load_config(self, work: Path, *, rate: float, killer_reports: int = 0, seed: int = 1,
                    riders: slice | None = None) -> dict[str, Any]:
        chosen = self.riders[riders] if riders else self.riders
        return {
            "api_urls": self.api_urls, "rate": rate, "photos_dir": str(SHARED_PHOTOS),
            "riders": [{"member_id": r.member_id, "token": r.token, "lat": r.lat, "lon": r.lon} for r in chosen],
            "grid_members": [{"member_id": m.member_id, "token": m.token} for m in self.grid_members],
            "stop_file": str(work / "stop"), "resend_for_s": 60, "out": str(work / "result.json"),
            "progress": str(work / "acks.txt"), "killer_reports": killer_reports, "seed": seed,
        }

    @staticmethod
    def riders_for(rate: float, seconds: float) -> int:
        return max(20, math.ceil(rate * seconds / REPORTS_PER_RIDER))


class LoadRun:
    """The load client's process: start, stop sending, collect what it was promised."""

    def __init__(self, work: Path, config: dict[str, Any]) -> None:
        work.mkdir(parents=True, exist_ok=True)
        self.work = work
        (work / "config.json").write_text(json.dumps(config))
        self.log = (work / "load.log").open("ab")
        self.process = subprocess.Popen([sys.executable, "-m", "tests.faults.load_client", str(work / "config.json")],
                                        cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT,
                                        env={**os.environ, "PYTHONPATH": str(REPO)})

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def ack_times(self) -> list[float]:
        path = self.work / "acks.txt"
        return [float(line.split()[0]) for line in path.read_text().splitlines() if line] if path.exists() else []

    def ack_waits(self) -> list[tuple[float, float]]:
        """(time acknowledged, seconds the rider waited, resends included) of every report so far."""
        path = self.work / "acks.txt"
        lines = path.read_text().splitlines() if path.exists() else []
        return [(float(a), float(b)) for a, b in (line.split() for line in lines if line)]

    async def wait_acks(self, count: int, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.ack_times()) < count:
            assert self.process.poll() is None, (self.work / "load.log").read_text()
            assert time.monotonic() < deadline, f"the load got only {len(self.ack_times())} answers"
            await asyncio.sleep(0.1)

    async def finish(self, timeout_s: float = 150) -> dict[str, Any]:
        (self.work / "stop").touch()
        deadline = time.monotonic() + timeout_s
        while self.process.poll() is None:
            assert time.monotonic() < deadline, "the load client did not finish"
            await asyncio.sleep(0.2)
        assert self.process.returncode == 0, (self.work / "load.log").read_text()
        return json.loads((self.work / "result.json").read_text())


def _utc_now():
    import datetime as dt

    return dt.datetime.now(dt.UTC)
