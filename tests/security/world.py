"""The world both security suites run in: the demo town's sibling communities ZW-ZWZ-C02 ("A") and ZW-ZWZ-C03
("B"), a courier, a grid member and a supervisor signed in for A, a courier of A and one of B who own the
objects the callers look at, the demo admin, a reward, a photo with ready derivatives and an Open311 key of A.

Built once per test module (building it per case would take minutes); cases that change something make their
own objects, so the cases stay independent of their order.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import itertools
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from litestar.testing import AsyncTestClient
from shapely.geometry import shape

from gridrider.app import create_app
from gridrider.clock import ManualClock
from gridrider.config import Settings
from gridrider.db.categories import insert_missing_categories
from gridrider.db.pool import create_pool
from gridrider.demo import seed_demo
from gridrider.domain.categories import DEFAULT_CATEGORIES
from gridrider.domain.demo_geography import zhangwu_demo_areas
from gridrider.jobs.queue import PHOTOS_QUEUE, arq_redis
from gridrider.open311.keys import create_key
from tests.api.test_reports import files, meta
from tests.api.test_rewards import give_points
from tests.conftest import T0, TRUNCATE_ALL_SQL, Caller, issue_code, make_settings, sign_in
from tests.domain.conftest import make_incident
from tests.jobs.conftest import run_burst

A_COMMUNITY, A_GRID, A_GRID2 = "ZW-ZWZ-C02", "ZW-ZWZ-C02-G01", "ZW-ZWZ-C02-G02"
B_COMMUNITY, B_GRID, B_GRID2 = "ZW-ZWZ-C03", "ZW-ZWZ-C03-G01", "ZW-ZWZ-C03-G02"
# Where each role's caller is enrolled (the admin has no area: admins see everything).
CALLER_AREAS = {"courier": [A_COMMUNITY], "grid_member": [A_GRID], "supervisor": [A_COMMUNITY], "admin": []}
DEMO_ADMIN_PHONE = "13800000001"

_AREAS = {a.code: shape(a.polygon) for a in zhangwu_demo_areas()}


def point_in(code: str) -> tuple[float, float]:
    """(lat, lon) well inside an area of the demo town."""
    p = _AREAS[code].representative_point()
    return p.y, p.x


def browser_subscription() -> dict:
    """A browser's subscription to FCM: a real P-256 public point and a 16-byte secret."""
    point = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return {"endpoint": f"https://fcm.googleapis.com/fcm/send/{uuid.uuid4().hex}",
            "keys": {"p256dh": b64(point), "auth": b64(uuid.uuid4().bytes)}}


@dataclasses.dataclass
class World:
    app: Any
    client: AsyncTestClient
    pool: Any
    settings: Settings
    clock: ManualClock
    proof_photo: bytes
    callers: dict[str, Caller] = dataclasses.field(default_factory=dict)  # one per signed-in role, all of A
    neighbour: Caller | None = None  # another courier of A: owner of the "same area" objects
    outsider: Caller | None = None  # a courier of B: owner of the "other area" objects
    reward_id: int = 0
    photo_id: int = 0  # a report photo whose derivatives are ready
    open311_key: str = ""  # a city system's key for community A
    phones: itertools.count = dataclasses.field(default_factory=lambda: itertools.count(1))

    def phone(self) -> str:
        return f"1370{next(self.phones):07d}"

    async def sign_in_new(self, role: str, areas: list[str] | None = None) -> Caller:
        """A new member of `role`, enrolled and signed in through the real API."""
        phone = self.phone()
        code = await issue_code(self.pool, self.settings, self.clock, role=role, phone=phone,
                                areas=CALLER_AREAS[role] if areas is None else areas,
                                platform="meituan" if role == "courier" else None)
        return await sign_in(self.client, code, phone)

    async def area_id(self, code: str) -> int:
        return await self.pool.fetchval("SELECT id FROM areas WHERE code = $1", code)

    async def incident(self, state: str, *, foreign: bool, reporter: int | None = None, **columns: Any) -> int:
        """An incident in `state` on grid A_GRID (or B_GRID when `foreign`), first reported by `reporter`
        (default: the neighbour, or the outsider when foreign)."""
        if reporter is None:
            reporter = (self.outsider if foreign else self.neighbour).member_id
        people = {"courier": SimpleNamespace(id=reporter)}
        incident = await make_incident(self.pool, self.clock, people, state=state,
                                       area_code=B_GRID if foreign else A_GRID, **columns)
        if state == "unrouted" and foreign:
            # make_incident files every unrouted incident under community C02; move this one to its sibling.
            await self.pool.execute("UPDATE incidents SET area_id = $2 WHERE id = $1", incident,
                                    await self.area_id(B_COMMUNITY))
        return incident


@contextlib.asynccontextmanager
async def build_world(data_dir: Path, database_url: str, redis_url: str, vapid_pem: str,
                      photo: bytes) -> AsyncIterator[World]:
    settings = make_settings(data_dir, database_url, redis_url, vapid_pem)
    clock = ManualClock(T0)
    pool = await create_pool(database_url, min_size=1, max_size=10)
    try:
        async with pool.acquire() as conn:
            # The clean slate the function-scoped `db` fixture gives (tests/conftest.py).
            await conn.execute("SET session_replication_role = replica")
            await conn.execute(TRUNCATE_ALL_SQL)
            await conn.execute("RESET session_replication_role")
            await insert_missing_categories(conn, DEFAULT_CATEGORIES)
            await seed_demo(conn, settings)
        redis = arq_redis(redis_url)
        await redis.flushdb()  # rate-limit counters of earlier tests are keyed by member ids that come back now
        await redis.aclose()
        app = create_app(settings, clock=clock)
        async with AsyncTestClient(app=app) as client:
            w = World(app=app, client=client, pool=pool, settings=settings, clock=clock, proof_photo=photo)
            for role in ("courier", "grid_member", "supervisor"):
                w.callers[role] = await w.sign_in_new(role)
            # The demo's admin, signed in the way the first admin always is (tests/conftest.py `admin`).
            code = await issue_code(pool, settings, clock, role="admin", phone=DEMO_ADMIN_PHONE, areas=[])
            w.callers["admin"] = await sign_in(client, code, DEMO_ADMIN_PHONE)
            w.neighbour = await w.sign_in_new("courier", [A_COMMUNITY])
            w.outsider = await w.sign_in_new("courier", [B_COMMUNITY])
            for rider in (w.callers["courier"], w.neighbour, w.outsider):
                await give_points(pool, clock, rider.member_id, 100_000)  # enough for every redemption
            reply = await client.post("/api/v1/rewards", json={"name_zh": "保温箱", "cost": 1},
                                      headers=w.callers["supervisor"].headers)
            assert reply.status_code == 201, reply.text
            w.reward_id = reply.json()["id"]
            w.photo_id = await _ready_photo(w, photo)
            async with pool.acquire() as conn, conn.transaction():
                key = await create_key(conn, name="security-suite", area_code=A_COMMUNITY,
                                       secret=settings.session_secret, now=clock.now())
            w.open311_key = key.key
            yield w
    finally:
        await pool.close()


async def _ready_photo(w: World, photo: bytes) -> int:
    """A report photo taken through the real pipeline to its derivatives (only those are ever served)."""
    lat, lon = point_in(A_GRID)
    reply = await w.client.post("/api/v1/reports", headers=w.callers["courier"].headers,
                                files=files(meta(w.clock, lat=lat, lon=lon), [photo]))
    assert reply.status_code == 201, reply.text
    await run_burst(w.settings, w.clock, queue=PHOTOS_QUEUE)
    photo_id = await w.pool.fetchval("SELECT id FROM photos WHERE report_id = $1 AND state = 'ready'",
                                     reply.json()["id"])
    assert photo_id is not None, "the photo pipeline did not finish the test photo"
    return photo_id
