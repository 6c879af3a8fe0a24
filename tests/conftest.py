"""Real PostgreSQL and Redis for every test; only third parties are stood in for.

- PostgreSQL: DATABASE_URL's server when set (each xdist worker gets its own database, built by
  the real migrations), else an embedded pgserver per worker. Tables are emptied before each test
  that asks for `db`.
- Redis: REDIS_URL's server when set, using a database index of its own per xdist worker (emptied
  before each test), else an embedded redis-server per worker. Tests that break Redis or
  PostgreSQL (flush everything, stop, kill) start their own servers (`own_redis`, `own_postgres`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec
import pytest
import pytest_asyncio
from litestar.testing import AsyncTestClient

from gridrider.app import create_app
from gridrider.clock import SHANGHAI, ManualClock
from gridrider.config import Settings, load_settings
from gridrider.db.categories import insert_missing_categories
from gridrider.db.migrate import migrate_and_seed_defaults
from gridrider.db.pool import connect, create_pool
from gridrider.demo import seed_demo
from gridrider.domain.categories import DEFAULT_CATEGORIES
from gridrider.domain.enrolment import EnrolmentRequest, enrol
from gridrider.embedded import EmbeddedPostgres, EmbeddedRedis
from gridrider.images.blobs import LocalBlobStore
from gridrider.jobs.queue import arq_redis
from gridrider.services import Services

# A fixed, recognisable instant: Thursday 2026-11-26 10:00 in Shanghai.
T0 = dt.datetime(2026, 11, 26, 10, 0, tzinfo=SHANGHAI).astimezone(dt.UTC)

TEST_SECRETS = {
    "session_secret": "s" * 48,
    "url_signing_secret": "u" * 48,
}


def _worker_index(config: pytest.Config) -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(worker.removeprefix("gw") or 0)


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def worker_index(request: pytest.FixtureRequest) -> int:
    return _worker_index(request.config)


@pytest.fixture(scope="session")
def session_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("session")


@pytest.fixture(scope="session")
def vapid_pem() -> str:
    from gridrider.embedded import generate_vapid_private_key_pem

    return generate_vapid_private_key_pem()


@pytest.fixture(scope="session")
def postgres_server_url(session_tmp: Path) -> Iterator[str]:
    """A URL of a PostgreSQL server whose databases this worker may create and drop."""
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    server = EmbeddedPostgres(session_tmp / "embedded")
    url = server.start()
    yield url
    server.stop()


@pytest.fixture(scope="session")
def database_url(postgres_server_url: str, worker_index: int) -> str:
    """This worker's own database, freshly built by the real migrations."""
    name = f"gridrider_test_{worker_index}"

    async def build() -> None:
        admin = await asyncpg.connect(_with_database(postgres_server_url, "postgres"))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        conn = await connect(_with_database(postgres_server_url, name))
        try:
            await migrate_and_seed_defaults(conn)
        finally:
            await conn.close()

    asyncio.run(build())
    return _with_database(postgres_server_url, name)


@pytest.fixture(scope="session")
def redis_url(session_tmp: Path, worker_index: int) -> Iterator[str]:
    if os.environ.get("REDIS_URL"):
        parts = urlsplit(os.environ["REDIS_URL"])
        # Database 0 is left to whoever else uses this server; workers take 1, 2, …
        yield urlunsplit(parts._replace(path=f"/{1 + worker_index % 15}"))
        return
    server = EmbeddedRedis(session_tmp / "embedded")
    yield server.start()
    server.stop()


def make_settings(data_dir: Path, database_url: str | None, redis_url: str | None, vapid_pem: str,
                  **overrides: object) -> Settings:
    return load_settings(
        {}, database_url=database_url, redis_url=redis_url, data_dir=data_dir, vapid_private_key=vapid_pem,
        job_lease_s=30, job_backoff_s=0.01, **TEST_SECRETS, **overrides,
    )


@pytest.fixture
def settings(tmp_path: Path, database_url: str, redis_url: str, vapid_pem: str) -> Settings:
    return make_settings(tmp_path / "data", database_url, redis_url, vapid_pem)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


# Emptying tables is test-only housekeeping; replica mode skips the append-only triggers for it.
TRUNCATE_ALL_SQL = """
DO $$
DECLARE names text;
BEGIN
  SELECT string_agg(format('%I.%I', schemaname, tablename), ', ') INTO names
  FROM pg_tables WHERE schemaname IN ('public', 'archive') AND tablename <> 'schema_migrations';
  EXECUTE 'TRUNCATE ' || names || ' RESTART IDENTITY CASCADE';
END $$;
"""


@pytest_asyncio.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on this worker's database, all tables emptied first and the default categories put back."""
    pool = await create_pool(database_url, min_size=1, max_size=5)
    async with pool.acquire() as conn:
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(TRUNCATE_ALL_SQL)
        await conn.execute("RESET session_replication_role")
        await insert_missing_categories(conn, DEFAULT_CATEGORIES)
    yield pool
    await pool.close()


@pytest_asyncio.fixture
async def redis(redis_url: str) -> AsyncIterator:
    client = arq_redis(redis_url)
    await client.flushdb()  # this worker's own database index only
    yield client
    await client.aclose()


@pytest_asyncio.fixture
async def services(settings: Settings, clock: ManualClock, db: asyncpg.Pool, redis) -> Services:
    return Services(settings=settings, clock=clock, pool=db, redis=redis,
                    blobs=LocalBlobStore(settings.data_dir / "blobs"))


@pytest_asyncio.fixture
async def client(settings: Settings, clock: ManualClock, db: asyncpg.Pool, redis) -> AsyncIterator[AsyncTestClient]:
    app = create_app(settings, clock=clock)
    async with AsyncTestClient(app=app) as test_client:
        yield test_client


# ── servers a test may break ─────────────────────────────────────────────────────────────────────

@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "own-redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    """A private PostgreSQL (started, migrated) that the test may stop."""
    server = EmbeddedPostgres(tmp_path / "own-pg")
    url = server.start()
    server.url = url  # type: ignore[attr-defined]

    async def build() -> None:
        conn = await connect(url)
        try:
            await migrate_and_seed_defaults(conn)
        finally:
            await conn.close()

    asyncio.run(build())
    yield server
    server.stop()
    shutil.rmtree(server.pgdata, ignore_errors=True)


# ── real photos (../shared/photos, outside the repository) ──────────────────────────────────────

SHARED_PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "photos"


@pytest.fixture(scope="session")
def street_photos() -> list[bytes]:
    """Real phone-camera JPEGs with EXIF GPS (see shared/photos/README.md)."""
    folder = SHARED_PHOTOS / "street"
    if not folder.is_dir():
        pytest.fail(f"these tests need the shared real photos at {folder} (see the project README)")
    return [p.read_bytes() for p in sorted(folder.glob("*.jpg"))]


# ── signed-in callers: the demo hierarchy, and members enrolled and signed in for real ─────────────


class Caller(msgspec.Struct):
    member_id: int
    token: str
    phone: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
async def demo(db, settings):
    """The Zhangwu demo: areas and the demo members (county/street/community supervisors, grid members…)."""
    async with db.acquire() as conn:
        await seed_demo(conn, settings)


async def issue_code(db, settings, clock, *, role: str, phone: str, areas: list[str], platform: str | None = None,
                     name: str = "测试") -> str:
    """A code made by the trusted CLI path (no caller): the way an admin's first account starts."""
    async with db.acquire() as conn, conn.transaction():
        done = await enrol(conn, caller=None, now=clock.now(), secret=settings.session_secret,
                           request=EnrolmentRequest(role=role, display_name=name, phone=phone, area_codes=areas,
                                                    platform=platform))
    return done.code


async def sign_in(client, code: str, phone: str) -> Caller:
    reply = await client.post("/api/v1/sessions", json={"code": code, "phone_last4": phone[-4:],
                                                        "accept_privacy": True})
    assert reply.status_code == 201, reply.text
    body = reply.json()
    return Caller(member_id=body["member"]["id"], token=body["token"], phone=phone)


@pytest.fixture
def login(client, db, settings, clock, demo):
    """login(role, phone, areas) → a Caller signed in through the real API."""

    async def make(role: str, phone: str, areas: list[str], platform: str | None = None) -> Caller:
        if role == "courier" and platform is None:
            platform = "meituan"
        code = await issue_code(db, settings, clock, role=role, phone=phone, areas=areas, platform=platform)
        return await sign_in(client, code, phone)

    return make


@pytest.fixture
async def admin(db, settings, clock, client, demo) -> Caller:
    """The demo admin, its code made by the server-side path (`gridrider enrol`), as in real life."""
    code = await issue_code(db, settings, clock, role="admin", phone="13800000001", areas=[])
    return await sign_in(client, code, "13800000001")


# ── a local push service (tests/push/push_service.py) and the API/worker wiring that reaches it ───

@pytest_asyncio.fixture
async def push_service():
    from tests.push.push_service import PushService

    service = PushService()
    await service.start()
    yield service
    await service.stop()


@pytest.fixture
def push_network(push_service):
    from tests.push.conftest import loopback_network

    return loopback_network(push_service)


@pytest_asyncio.fixture
async def push_client(settings, clock, db, redis, push_network) -> AsyncIterator[AsyncTestClient]:
    """The API with the test's push host allowed (the `client` fixture has production's allow-list)."""
    async with AsyncTestClient(app=create_app(settings, clock=clock, push_network=push_network)) as client:
        yield client


# ── a real `gridrider api` process ────────────────────────────────────────────────────────────────────


@contextlib.contextmanager
def running_api(settings: Settings, data_dir: Path, log: Path, **env: str) -> Iterator[tuple[str, int]]:
    """`gridrider api` in a process of its own on a free port, with `settings`' servers and secrets;
    yields (base URL, pid) once /readyz answers, and stops it afterwards. Its output goes to `log`."""
    from gridrider.cli import _stop_children, _wait_ready
    from gridrider.embedded import free_loopback_port

    port = free_loopback_port()
    url = f"http://127.0.0.1:{port}"
    environ = {**os.environ, "DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url,
               "GRIDRIDER_DATA_DIR": str(data_dir), "GRIDRIDER_PORT": str(port), "GRIDRIDER_PUBLIC_URL": url,
               "GRIDRIDER_SESSION_SECRET": settings.session_secret,
               "GRIDRIDER_URL_SIGNING_SECRET": settings.url_signing_secret,
               "GRIDRIDER_VAPID_PRIVATE_KEY": settings.vapid_private_key, "GRIDRIDER_LOG_LEVEL": "warning",
               # Each process would otherwise bind the same metrics port; tests never scrape these.
               "GRIDRIDER_METRICS_PORT": "0", **env}
    with log.open("wb") as out:
        child = subprocess.Popen([sys.executable, "-m", "gridrider", "api"], env=environ, stdout=out,
                                 stderr=subprocess.STDOUT)
    try:
        assert _wait_ready(url, [child], timeout_s=60), log.read_text()
        yield url, child.pid
    finally:
        _stop_children([child])
