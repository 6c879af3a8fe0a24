"""The live stream through two real API processes: any process serves any member, and an app that
reconnects with Last-Event-ID gets what it missed."""

from __future__ import annotations

import asyncio
import contextlib
import json

import httpx
import pytest

from tests.api.test_reports import files, meta
from tests.conftest import running_api
from tests.jobs.conftest import run_burst
from tests.test_scenario import GRID, HERE

pytestmark = pytest.mark.slow


@pytest.fixture
def two_api_processes(settings, tmp_path, db):
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(running_api(settings, tmp_path / f"api{n}", tmp_path / f"api{n}.log"))[0]
               for n in range(2)]


class Listener:
    """An app's open stream: collects SSE messages (id, event, data) as they arrive."""

    def __init__(self, url: str, token: str, last_event_id: int | None = None) -> None:
        self.frames: list[tuple[int, str, dict]] = []
        self.comments = 0
        headers = {"Authorization": f"Bearer {token}"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        self._task = asyncio.create_task(self._read(url, headers))
        self.status: int | None = None

    async def _read(self, url: str, headers: dict) -> None:
        async with httpx.AsyncClient(timeout=None) as client, \
                client.stream("GET", f"{url}/api/v1/events", headers=headers) as reply:
            self.status = reply.status_code
            fields: dict[str, str] = {}
            async for line in reply.aiter_lines():
                if line.startswith(":"):
                    self.comments += 1
                elif not line:
                    if "id" in fields:
                        self.frames.append((int(fields["id"]), fields["event"], json.loads(fields["data"])))
                    fields = {}
                else:
                    key, _, value = line.partition(": ")
                    fields[key] = value

    async def wait_for(self, count: int, within_s: float = 15.0) -> None:
        async with asyncio.timeout(within_s):
            while len(self.frames) < count:
                if self._task.done():
                    self._task.result()
                    raise AssertionError(f"stream ended with {self.frames}")
                await asyncio.sleep(0.05)

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
            await self._task


async def _report(client, clock, rider, settings, category: str) -> None:
    reply = await client.post("/api/v1/reports", headers=rider.headers,
                              files=files(meta(clock, category=category, **HERE)))
    assert reply.status_code == 201, reply.text
    await run_burst(settings, clock)


async def test_both_processes_stream_and_a_reconnect_resumes(client, login, settings, clock, db, two_api_processes):
    member = await login("grid_member", "13700006001", [GRID])
    rider = await login("courier", "13900006001", [GRID])
    first, second = (Listener(url, member.token) for url in two_api_processes)
    try:
        await asyncio.sleep(1.0)  # both subscribed
        assert (first.status, second.status) == (200, 200)
        await _report(client, clock, rider, settings, "garbage_pileup")
        await first.wait_for(1)
        await second.wait_for(1)
        [(seen_id, event, data)] = first.frames
        assert second.frames == first.frames
        assert event == "incident_reached_grid" and data["title"].startswith("垃圾") and data["incident_id"]
        await second.close()

        # While the second app is away, another hazard is reported; it reconnects with the last id it saw.
        await _report(client, clock, rider, settings, "streetlight_out")
        await first.wait_for(2)
        back = Listener(two_api_processes[1], member.token, last_event_id=seen_id)
        try:
            await back.wait_for(1)
            assert [f[0] for f in back.frames] == [first.frames[1][0]]  # only what it missed, once
        finally:
            await back.close()
        # The rider's own stream carries nothing of the grid's work.
        assert all(f[1] == "incident_reached_grid" for f in first.frames)
    finally:
        await first.close()
        await second.close()


async def test_a_notify_job_run_twice_streams_once(client, login, settings, clock, db, two_api_processes):
    from gridrider.jobs.notify import notify
    from gridrider.jobs.queue import transaction
    from gridrider.jobs.runner import run_job_row
    from gridrider.services import Services

    member = await login("grid_member", "13700006002", [GRID])
    rider = await login("courier", "13900006002", [GRID])
    listener = Listener(two_api_processes[0], member.token)
    try:
        await asyncio.sleep(1.0)
        await _report(client, clock, rider, settings, "garbage_pileup")
        await listener.wait_for(1)
        notification = await db.fetchval("SELECT id FROM notifications")
        services = Services(settings=settings, clock=clock, pool=db, redis=None, blobs=None)
        async with transaction(db, clock, None, max_attempts=3) as tx:
            job = await tx.add_job("notify", {"notification_id": notification})
        await run_job_row(services, job.id, notify)
        await asyncio.sleep(1.0)
        assert len(listener.frames) == 1
    finally:
        await listener.close()


async def test_the_stream_needs_a_bearer_token(two_api_processes):
    async with httpx.AsyncClient(timeout=10) as client:
        reply = await client.get(f"{two_api_processes[0]}/api/v1/events")
        assert reply.status_code == 401
        reply = await client.get(f"{two_api_processes[0]}/api/v1/events?token=abc")
        assert reply.status_code == 401  # a token in the URL is never read



@pytest.mark.parametrize("last_event_id", ["abc", "\u00b2", "9" * 20, "-1", "1e9", "7 8"])
async def test_a_last_event_id_the_stream_never_sent_replays_nothing_and_is_no_500(
        login, two_api_processes, last_event_id):
    member = await login("grid_member", "13944440009", [GRID])
    # As raw bytes: '²' is a digit to str.isdigit() but not to int(), and not ASCII.
    headers = {"Authorization": f"Bearer {member.token}", "Last-Event-ID": last_event_id.encode("latin-1")}
    async with httpx.AsyncClient(timeout=10) as client, \
            client.stream("GET", f"{two_api_processes[0]}/api/v1/events", headers=headers) as reply:
        assert reply.status_code == 200  # the stream opens; nothing is replayed for an id it never sent
