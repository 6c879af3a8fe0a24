"""Request-scoped dependencies: the one transaction per request, nudged to arq after COMMIT, and the
pool of reads that may lag behind it."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from litestar.datastructures import State

from gridrider.api.ratelimit import RateLimiter
from gridrider.db.pool import Pool
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


async def provide_read_pool(state: State) -> Pool:
    """The read replica (DATABASE_REPLICA_URL), else the primary, for the dashboard, the rider and team
    rankings and the rankings export only. They are pure reads of figures over whole areas and periods,
    so seconds of replica lag change nothing anyone acts on (a ranking even says how fresh its report
    figures are: `figures_refreshed_at`), and they are the heavy queries that should not compete with
    intake on the primary. Never for a write, a read that decides a write, or a read that must show
    the caller's own last change: those use `tx` or `services.pool` (and the caller's session is
    always checked on the primary, api/auth.py)."""
    services: Services = state.services
    return services.read_pool
