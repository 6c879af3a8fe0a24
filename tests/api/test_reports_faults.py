"""Intake under faults: Redis down during a POST, and an API process killed right after COMMIT."""

import asyncio
import os
import signal
import subprocess
import sys

import httpx
import pytest

from gridrider.embedded import free_loopback_port
from gridrider.jobs.queue import DEFAULT_QUEUE, arq_redis
from gridrider.jobs.registry import JOB_KINDS, JobKind
from gridrider.jobs.relay import relay_due_jobs
from gridrider.services import Services
from tests.api.test_reports import files, meta
from tests.conftest import issue_code, make_settings
from tests.jobs.conftest import run_burst

GRID = "ZW-ZWZ-C02-G01"
pytestmark = pytest.mark.slow


async def test_with_redis_down_a_report_is_still_201_and_its_job_runs_once_redis_is_back(
    tmp_path, database_url, vapid_pem, own_redis, db, clock, monkeypatch,
):
    from litestar.testing import AsyncTestClient

    from gridrider.app import create_app
    from gridrider.demo import seed_demo
    from tests.conftest import sign_in

    settings = make_settings(tmp_path / "data", database_url, f"redis://127.0.0.1:{own_redis.port}/0", vapid_pem)
    async with db.acquire() as conn:
        await seed_demo(conn, settings)
    processed: list[int] = []

    async def stand_in_pipeline(call):  # the real process_report arrives with the pipeline issue
        processed.append(call.payload["report_id"])
        return "processed"

    monkeypatch.setitem(JOB_KINDS, "process_report", JobKind(stand_in_pipeline))
    async with AsyncTestClient(app=create_app(settings, clock=clock)) as client:
        code = await issue_code(db, settings, clock, role="courier", phone="13966660000", areas=[GRID],
                                platform="sf")
        courier = await sign_in(client, code, "13966660000")
        await asyncio.to_thread(own_redis.stop)
        reply = await client.post("/api/v1/reports", headers=courier.headers, files=files(meta(clock)))
        assert reply.status_code == 201
        report_id = reply.json()["id"]
        assert (await client.get("/readyz")).json()["status"] == "degraded"

    await asyncio.to_thread(own_redis.start)
    redis = arq_redis(settings.redis_url)
    try:
        services = Services(settings=settings, clock=clock, pool=db, redis=redis, blobs=None)
        assert await redis.zcard(DEFAULT_QUEUE) == 0
        assert await relay_due_jobs(services) == 1
        await run_burst(settings, clock)
    finally:
        await redis.aclose()
    assert processed == [report_id]
    assert await db.fetchval("SELECT state FROM jobs WHERE kind = 'process_report'") == "done"


def _api_process(settings, port: int) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url,
           "GRIDRIDER_DATA_DIR": str(settings.data_dir), "GRIDRIDER_PORT": str(port),
           "GRIDRIDER_SESSION_SECRET": settings.session_secret,
           "GRIDRIDER_URL_SIGNING_SECRET": settings.url_signing_secret,
           "GRIDRIDER_VAPID_PRIVATE_KEY": settings.vapid_private_key}
    return subprocess.Popen([sys.executable, "-m", "gridrider", "api"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


async def _wait_up(port: int) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(200):
            try:
                if (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError("API did not start")


async def test_an_api_killed_right_after_commit_loses_nothing_and_the_retry_gets_200(
    tmp_path, database_url, vapid_pem, own_redis, db, street_photos,
):
    from gridrider.clock import SystemClock
    from gridrider.demo import seed_demo

    settings = make_settings(tmp_path / "data", database_url, f"redis://127.0.0.1:{own_redis.port}/0", vapid_pem)
    clock = SystemClock()
    async with db.acquire() as conn:
        await seed_demo(conn, settings)
    code = await issue_code(db, settings, clock, role="courier", phone="13966660000", areas=[GRID], platform="sf")
    port = free_loopback_port()
    api = _api_process(settings, port)
    try:
        await _wait_up(port)
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            signed = await http.post("/api/v1/sessions", json={"code": code, "phone_last4": "0000",
                                                               "accept_privacy": True})
            headers = {"Authorization": f"Bearer {signed.json()['token']}"}
            body = meta(clock)
            # Pause Redis: the API commits, then hangs in the nudge — the moment to kill it.
            os.kill(own_redis.process.pid, signal.SIGSTOP)
            posting = asyncio.create_task(http.post("/api/v1/reports", headers=headers,
                                                    files=files(body, street_photos[:1])))
            for _ in range(200):
                if await db.fetchval("SELECT count(*) FROM reports"):
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError("the report never committed")
            api.send_signal(signal.SIGKILL)
            api.wait(10)
            with pytest.raises(httpx.TransportError):
                await posting  # the phone never heard back
            os.kill(own_redis.process.pid, signal.SIGCONT)

        api = _api_process(settings, port)
        await _wait_up(port)
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            retry = await http.post("/api/v1/reports", headers=headers, files=files(body, street_photos[:1]))
        assert retry.status_code == 200
        assert await db.fetchval("SELECT count(*) FROM reports") == 1
        assert await db.fetchval("SELECT count(*) FROM photos") == 1
        assert retry.json()["client_id"] == body["client_id"]
    finally:
        with_pid = own_redis.process
        if with_pid is not None:
            os.kill(with_pid.pid, signal.SIGCONT)
        if api.poll() is None:
            api.terminate()
            api.wait(10)
