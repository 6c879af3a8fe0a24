"""Liveness and readiness: readiness depends on PostgreSQL only; Redis down means degraded, not down."""

from __future__ import annotations

import asyncio

import msgspec
from litestar import Controller, Response, get
from litestar.di import NamedDependency

from gridrider.db.migrate import schema_is_current
from gridrider.redis_errors import REDIS_TROUBLE
from gridrider.services import Services

PUBLIC = {"access": "public"}


class Health(msgspec.Struct):
    status: str  # ok | degraded | unavailable
    database: str  # ok | unreachable | migrations_pending
    redis: str  # ok | unreachable


class HealthController(Controller):
    @get("/healthz", operation_id="getHealthz", opt=PUBLIC, include_in_schema=False)
    async def healthz(self) -> dict[str, str]:
        return {"status": "alive"}

    @get("/readyz", operation_id="getReadyz", opt=PUBLIC, include_in_schema=False, cache_control=None)
    async def readyz(self, services: NamedDependency[Services]) -> Response[Health]:
        database, redis = await asyncio.gather(_database_state(services), _redis_state(services))
        if database != "ok":
            return Response(Health("unavailable", database, redis), status_code=503)
        return Response(Health("ok" if redis == "ok" else "degraded", database, redis), status_code=200)


async def _database_state(services: Services) -> str:
    try:
        async with asyncio.timeout(2):
            async with services.pool.acquire() as conn:
                return "ok" if await schema_is_current(conn) else "migrations_pending"
    except (OSError, TimeoutError, Exception):  # any failure to answer is "unreachable" to a load balancer
        return "unreachable"


async def _redis_state(services: Services) -> str:
    if services.redis is None:
        return "unreachable"
    try:
        async with asyncio.timeout(1):
            await services.redis.ping()
        return "ok"
    except REDIS_TROUBLE:
        return "unreachable"
