"""Readiness depends on PostgreSQL only; a Redis outage degrades, it does not stop intake."""

import asyncio

from litestar.testing import AsyncTestClient

from gridrider.app import create_app
from tests.conftest import make_settings


async def _ready(client) -> tuple[int, dict]:
    reply = await client.get("/readyz")
    return reply.status_code, reply.json()


async def _eventually(client, status: int, body_status: str) -> dict:
    # A pool notices a restarted server on its next connection; allow a few polls.
    for _ in range(50):
        code, body = await _ready(client)
        if code == status and body["status"] == body_status:
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"readyz never became {status} {body_status}: last {code} {body}")


async def test_healthz_answers_while_the_process_lives(client):
    reply = await client.get("/healthz")
    assert reply.status_code == 200
    assert reply.json() == {"status": "alive"}


async def test_ready_when_database_and_redis_answer(client):
    assert await _ready(client) == (200, {"status": "ok", "database": "ok", "redis": "ok"})


async def test_postgres_down_is_503_and_back_is_200(tmp_path, own_postgres, redis_url, vapid_pem):
    settings = make_settings(tmp_path / "data", own_postgres.url, redis_url, vapid_pem)
    async with AsyncTestClient(app=create_app(settings)) as client:
        assert (await _ready(client))[0] == 200
        await asyncio.to_thread(own_postgres.stop)
        body = await _eventually(client, 503, "unavailable")
        assert body["database"] == "unreachable"
        await asyncio.to_thread(own_postgres.start)
        await _eventually(client, 200, "ok")


async def test_redis_down_is_200_degraded_and_back_is_ok(tmp_path, database_url, own_redis, vapid_pem, db):
    settings = make_settings(tmp_path / "data", database_url, f"redis://127.0.0.1:{own_redis.port}/0", vapid_pem)
    async with AsyncTestClient(app=create_app(settings)) as client:
        assert (await _ready(client))[0] == 200
        await asyncio.to_thread(own_redis.stop)
        body = await _eventually(client, 200, "degraded")
        assert body == {"status": "degraded", "database": "ok", "redis": "unreachable"}
        await asyncio.to_thread(own_redis.start)
        await _eventually(client, 200, "ok")


async def test_pending_migrations_make_the_api_not_ready(client, db):
    await db.execute("DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM schema_migrations)")
    try:
        status, body = await _ready(client)
        assert (status, body["database"]) == (503, "migrations_pending")
    finally:
        from gridrider.db.migrate import available_migrations

        latest = available_migrations()[-1]
        await db.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                         latest.version, latest.name, latest.checksum)


async def test_the_api_holds_at_most_its_pool_size_of_connections_and_queues_the_rest(
        tmp_path, database_url, redis_url, vapid_pem):
    settings = make_settings(tmp_path / "data", database_url, redis_url, vapid_pem, api_db_pool_size=2)
    app = create_app(settings)
    async with AsyncTestClient(app=app) as client:
        assert app.state.services.pool.get_max_size() == 2
        replies = await asyncio.gather(*(_ready(client) for _ in range(12)))
        assert [code for code, _ in replies] == [200] * 12  # twelve at once through two connections
