"""WeCom cards end to end: a new incident's card reaches its grid's robot; a robot at its minute limit
gets the waiting cards as one batch message a minute later; an area without a robot is skipped."""

from __future__ import annotations

import pytest_asyncio

from gridrider.channels.wecom import RobotRateLimiter, check_webhook_url
from gridrider.jobs.relay import relay_due_jobs
from gridrider.services import Services
from tests.api.test_reports import files, meta
from tests.channels.wecom_service import WeComService
from tests.jobs.conftest import run_burst
from tests.push.conftest import loopback_network
from tests.test_scenario import GRID, HERE


@pytest_asyncio.fixture
async def robots(clock):
    service = WeComService(now=lambda: clock.now().timestamp())  # its 20-a-minute limit on the test clock
    await service.start()
    yield service
    await service.stop()


async def _robot_for_grid(client, admin, robots) -> str:
    url = robots.new_robot()
    reply = await client.put(f"/api/v1/areas/{GRID}/wecom", json={"webhook_url": url}, headers=admin.headers)
    assert reply.status_code == 200, reply.text
    return url


async def _report(client, clock, rider, category: str) -> None:
    reply = await client.post("/api/v1/reports", headers=rider.headers,
                              files=files(meta(clock, category=category, **HERE)))
    assert reply.status_code == 201, reply.text


async def test_a_new_incident_posts_a_card_to_its_grid_robot(client, admin, login, settings, clock, db, robots):
    url = await _robot_for_grid(client, admin, robots)
    rider = await login("courier", "13900009101", [GRID])
    await _report(client, clock, rider, "garbage_pileup")
    await run_burst(settings, clock, push_network=loopback_network(robots))
    [card] = robots.messages_for(url)
    assert card.body["msgtype"] == "markdown" and "垃圾堆积" in card.content and "/#/incidents/" in card.content
    assert await db.fetchval("SELECT state FROM deliveries WHERE channel = 'wecom'") == "sent"


async def test_a_robot_at_its_limit_gets_one_batch_a_minute_later(
    client, admin, login, settings, clock, db, redis, robots,
):
    url = await _robot_for_grid(client, admin, robots)
    limiter = RobotRateLimiter(redis, clock)
    for _ in range(19):  # the group's robot has sent 19 cards this minute already
        assert await limiter.take(check_webhook_url(url).key)
    rider = await login("courier", "13900009102", [GRID])
    for category in ("garbage_pileup", "streetlight_out", "damaged_pole"):
        await _report(client, clock, rider, category)
    network = loopback_network(robots)
    await run_burst(settings, clock, push_network=network)
    assert len(robots.messages_for(url)) == 1  # the 20th of the minute; two cards wait
    states = sorted(r["state"] for r in await db.fetch("SELECT state FROM deliveries WHERE channel = 'wecom'"))
    assert states == ["pending", "pending", "sent"]

    clock.advance(seconds=61)
    await relay_due_jobs(Services(settings=settings, clock=clock, pool=db, redis=redis, blobs=None))
    await run_burst(settings, clock, push_network=network)
    messages = robots.messages_for(url)
    assert len(messages) == 2  # ONE more message for the two waiting cards
    first, batch = messages[0].content, messages[1].content
    assert batch.count("\n- ") == 2  # two incidents listed in one message
    for name in ("垃圾堆积", "路灯不亮", "电线杆损坏"):  # every incident reached the group exactly once
        assert (name in first) + (name in batch) == 1, name
    assert {r["state"] for r in await db.fetch("SELECT state FROM deliveries WHERE channel = 'wecom'")} == {"sent"}


async def test_an_area_without_a_robot_is_skipped(client, login, settings, clock, db, robots):
    rider = await login("courier", "13900009103", [GRID])
    await _report(client, clock, rider, "garbage_pileup")
    await run_burst(settings, clock, push_network=loopback_network(robots))
    assert robots.requests == 0
    assert await db.fetchval("SELECT count(*) FROM deliveries WHERE channel = 'wecom'") == 0


async def test_a_notify_job_run_twice_posts_one_card(client, admin, login, settings, clock, db, redis, robots):
    from gridrider.channels.wecom import WeComRobot
    from gridrider.jobs.notify import notify
    from gridrider.jobs.queue import transaction
    from gridrider.jobs.runner import run_job_row

    url = await _robot_for_grid(client, admin, robots)
    rider = await login("courier", "13900009104", [GRID])
    await _report(client, clock, rider, "garbage_pileup")
    network = loopback_network(robots)
    await run_burst(settings, clock, push_network=network)
    notification = await db.fetchval("SELECT id FROM notifications WHERE event = 'incident_reached_grid'")
    robot = WeComRobot(network)
    services = Services(settings=settings, clock=clock, pool=db, redis=redis, blobs=None, wecom=robot)
    try:
        for _ in range(2):
            async with transaction(db, clock, None, max_attempts=3) as tx:
                job = await tx.add_job("notify", {"notification_id": notification})
            await run_job_row(services, job.id, notify)
    finally:
        await robot.aclose()
    assert len(robots.messages_for(url)) == 1
