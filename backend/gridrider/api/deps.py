"""Request-scoped dependencies: the one transaction per request, nudged to arq after COMMIT."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from litestar.datastructures import State

from gridrider.api.ratelimit import RateLimiter
from gridrider.jobs.queue import Tx, transaction
from gridrider.services import Services


async def provide_limiter(state: State) -> RateLimiter:
    return state.limiter


async def provide_services(state: State) -> Services:
    return state.services


async def provide_tx(state: State) -> AsyncGenerator[Tx, None]:
    # A handler exception is thrown in here, rolls back, and no job leaves; success commits, then nudges.
    services: Services = state.services
    async with transaction(
        services.pool, services.clock, services.redis, max_attempts=services.settings.job_max_attempts
    ) as tx:
        yield tx
