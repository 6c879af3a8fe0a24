"""arq workers: one per queue, every job kind registered by name, crons for the relay and housekeeping."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from typing import Any

import asyncpg
from arq.cron import cron
from arq.worker import Function, Worker, func
from redis.exceptions import RedisError

from gridrider.channels.sms import sms_provider
from gridrider.channels.wecom import WeComRobot
from gridrider.clock import Clock, SystemClock
from gridrider.config import Settings
from gridrider.db.pool import create_pool
from gridrider.images.blobs import BlobStore, build_blob_store
from gridrider.jobs.deadlines import run_deadline_pass
from gridrider.jobs.maintenance import schedule_maintenance
from gridrider.jobs.photos import SANDBOX
from gridrider.jobs.queue import DEFAULT_QUEUE, PHOTOS_QUEUE, arq_redis, queue_for
from gridrider.jobs.rankings import refresh_report_figures
from gridrider.jobs.registry import JOB_KINDS, JobKind
from gridrider.jobs.relay import relay_due_jobs
from gridrider.jobs.runner import run_job_row
from gridrider.logging import get_logger
from gridrider.push import build_push
from gridrider.push.network import PUBLIC_INTERNET, PushNetwork
from gridrider.services import Services

log = get_logger(__name__)
# What ends arq's loop when a server goes away (Redis restarted, PostgreSQL unreachable at startup).
SERVER_LOST = (RedisError, OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError)

def _arq_function(kind: str, spec: JobKind, settings: Settings) -> Function:
    async def run(ctx: dict[str, Any], job_id: int) -> str:
        return await run_job_row(ctx["services"], job_id, spec.handler, on_dead=spec.on_dead, lease_s=spec.lease_s)

    run.__qualname__ = kind
    # arq must never retry on its own: the relay is the one retry mechanism (DESIGN.md §7).
    # keep_result=0: a failed claim (database blip) must not leave a result that makes arq drop the
    # relay's next nudge of the same id for an hour; the claim is atomic, so a re-run is harmless.
    return func(run, name=kind, max_tries=1, timeout=(spec.lease_s or settings.job_lease_s), keep_result=0)


async def _relay(ctx: dict[str, Any]) -> int:
    return await relay_due_jobs(ctx["services"])


async def _deadlines(ctx: dict[str, Any]) -> int:
    return (await run_deadline_pass(ctx["services"])).escalated


async def _rider_figures(ctx: dict[str, Any]) -> int:
    return await refresh_report_figures(ctx["services"])


async def _schedule_maintenance(ctx: dict[str, Any]) -> int:
    return await schedule_maintenance(ctx["services"])


def freeze_startup_heap() -> None:
    """Take what the worker process holds once started (modules, settings: ~100,000 objects that live
    as long as it does) out of the garbage collector's view. Each full collection walked all of it,
    ~50 ms, twice per 20,000-message fan-out (`gridrider bench push`); objects made later are
    collected as before. Once per process, by `run_worker` (tests build many workers in one process)."""
    gc.collect()
    gc.freeze()


def build_worker(
    settings: Settings, *, queue: str = DEFAULT_QUEUE, clock: Clock | None = None,
    blobs: BlobStore | None = None, burst: bool = False, handle_signals: bool = True, max_jobs: int = 10,
    with_crons: bool = True, push_network: PushNetwork | None = None,
) -> Worker:
    """An arq worker for one queue. `push_network` exists for tests only (their local push service)."""
    assert settings.database_url and settings.redis_url, "resolve the embedded URLs before building a worker"
    redis = arq_redis(settings.redis_url)
    push = build_push(settings, push_network)  # before startup: a bad VAPID key fails the command at once
    # The same injected outbound network (tests only) reaches the SMS stand-in; None when SMS is off.
    sms = sms_provider(settings, push_network)
    robot = WeComRobot(push_network or PUBLIC_INTERNET)

    async def startup(ctx: dict[str, Any]) -> None:
        pool = await create_pool(settings.database_url, min_size=1, max_size=max_jobs + 2)
        ctx["services"] = Services(
            settings=settings, clock=clock or SystemClock(), pool=pool, redis=redis,
            blobs=blobs or build_blob_store(settings), push=push, sms=sms, wecom=robot,
        )
        if queue == PHOTOS_QUEUE:
            await SANDBOX.warm_up()

    async def shutdown(ctx: dict[str, Any]) -> None:
        services: Services | None = ctx.get("services")
        if services is not None:
            await services.pool.close()
        await push.aclose()
        if sms is not None:
            await sms.aclose()
        await robot.aclose()
        await SANDBOX.close()

    functions = [_arq_function(kind, spec, settings) for kind, spec in JOB_KINDS.items() if queue_for(kind) == queue]
    crons = []
    if queue == DEFAULT_QUEUE and with_crons:
        every = settings.relay_every_s
        crons = [
            cron(_relay, name="relay", second=set(range(0, 60, every)) if every < 60 else {0},
                 run_at_startup=True, timeout=60),
            cron(_schedule_maintenance, name="schedule_maintenance", minute={17}, second={0}, timeout=60),
            # Every minute (DESIGN §2c); the pass takes an advisory lock, so several workers run it once.
            cron(_deadlines, name="deadlines", second={30}, timeout=55),
            # Rankings' report figures (accepted, duplicates, time to accept); an advisory lock again.
            cron(_rider_figures, name="rider_figures", second={45}, timeout=55),
        ]
    return Worker(
        functions=functions, cron_jobs=crons, queue_name=queue, redis_pool=redis, burst=burst,
        on_startup=startup, on_shutdown=shutdown, handle_signals=handle_signals, max_jobs=max_jobs,
        # On SIGTERM/SIGINT, let jobs in flight finish (up to their lease) instead of cancelling them:
        # a cancelled job rolls back and waits for its lease to expire before the relay runs it again.
        job_completion_wait=settings.job_lease_s,
        # 50 ms polling: `gridrider bench jobs` measured p50 commit→done 163 ms at 200 ms polling, 56 ms at 50 ms.
        job_timeout=settings.job_lease_s, poll_delay=0.05,
        # No result keys at all (the job table holds outcomes). arq writes one with the worker's keep_result
        # when it gives up on an id it already tried — a job a killed worker had taken before its claim
        # committed — and while that key lives, arq refuses the relay's nudges of the same id: the row sat
        # pending for the key's hour (found by the fault suite). An id still queued or running is refused
        # by its job key anyway, so nothing runs twice at once.
        keep_result=0, max_tries=1,
    )




def run_worker(settings: Settings, *, queue: str = DEFAULT_QUEUE, restart_delay_s: float = 0.5,
               **options: Any) -> None:
    """Run a worker until a signal stops it, starting a fresh one whenever a lost server ends the last.

    arq's loop does not survive its Redis going away: the first failed poll ends `Worker.run` with a
    ConnectionError (the fault suite found this: a Redis restart left every worker process dead). Nothing is
    lost when it ends — the job table holds the work and the relay re-drives it — so the process waits a
    moment and starts again with a new event loop, new pools and new connections, backing off to 10 s while
    the server stays away.
    """
    delay = restart_delay_s
    freeze_startup_heap()
    while True:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        worker = build_worker(settings, queue=queue, **options)
        started = time.monotonic()
        try:
            worker.run()
            return  # a signal asked it to stop
        except SERVER_LOST as exc:
            log.warning("worker.server_lost", queue=queue, error=type(exc).__name__, restart_in_s=delay)
        finally:
            _abandon(loop, worker)
        time.sleep(delay)
        delay = restart_delay_s if time.monotonic() - started > 60 else min(10.0, delay * 2)


def _abandon(loop: asyncio.AbstractEventLoop, worker: Worker) -> None:
    """Cancel what the dead worker left running (its jobs roll back; their leases expire and the relay
    runs them again), and close its pools, which its own shutdown could not reach."""
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    with contextlib.suppress(BaseException):
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    if worker.on_shutdown is not None and "services" in worker.ctx:
        with contextlib.suppress(BaseException):
            loop.run_until_complete(asyncio.wait_for(worker.on_shutdown(worker.ctx), 10))
    loop.close()
