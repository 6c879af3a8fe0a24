"""SMS alerts end to end: the deadline cron raises them, `notify` texts through the Alibaba Cloud stand-in."""

from __future__ import annotations

import datetime as dt

import pytest_asyncio

from gridrider.jobs.deadlines import run_deadline_pass
from gridrider.services import Services
from tests.api.test_reports import files, meta
from tests.channels.aliyun_sms_service import TEST_ACCESS_KEY_ID, TEST_ACCESS_KEY_SECRET, AliyunSmsService
from tests.conftest import make_settings
from tests.jobs.conftest import run_burst
from tests.test_scenario import GRID, HERE

MINUTE = dt.timedelta(minutes=1)


@pytest_asyncio.fixture
async def sms_service():
    service = AliyunSmsService()
    await service.start()
    yield service
    await service.stop()


def sms_settings(settings, vapid_pem, tmp_path, **overrides):
    return make_settings(tmp_path / "sms", settings.database_url, settings.redis_url, vapid_pem,
                         sms_provider="aliyun", aliyun_access_key_id=TEST_ACCESS_KEY_ID,
                         aliyun_access_key_secret=TEST_ACCESS_KEY_SECRET, aliyun_sms_sign_name="网格通",
                         aliyun_sms_templates=(("life_safety", "SMS_1001"), ("escalation", "SMS_1002")),
                         **overrides)


async def tick(settings, clock, db, redis, network) -> None:
    """One minute of the deadline cron, then the worker sends what it raised."""
    await run_deadline_pass(Services(settings=settings, clock=clock, pool=db, redis=redis, blobs=None))
    await run_burst(settings, clock, push_network=network)


async def test_life_safety_texts_members_once_at_15_then_supervisors_at_30(
    client, login, settings, clock, db, redis, sms_service, vapid_pem, tmp_path,
):
    settings = sms_settings(settings, vapid_pem, tmp_path)
    network = sms_service.network()
    member = await login("grid_member", "13700008001", [GRID])
    supervisor = await login("supervisor", "13800008001", ["ZW-ZWZ-C02"])
    rider = await login("courier", "13900008001", [GRID])
    start = clock.now()
    reply = await client.post("/api/v1/reports", headers=rider.headers,
                              files=files(meta(clock, category="missing_manhole_cover", **HERE)))
    assert reply.status_code == 201
    await run_burst(settings, clock, push_network=network)
    for minute in range(1, 35):
        clock.set(start + MINUTE * minute)
        await tick(settings, clock, db, redis, network)
        texted = [m.phone for m in sms_service.accepted]
        if minute < 15:
            assert texted == [], minute
        elif minute < 30:
            assert texted.count(member.phone) == 1 and supervisor.phone not in texted, minute
        else:
            assert texted.count(member.phone) == 1 and texted.count(supervisor.phone) == 1, minute
    first = sms_service.accepted[0]
    assert first.template_code == "SMS_1001" and first.params["minutes"] == "15"
    assert first.params["category"] == "井盖缺失或破损"


async def test_forty_life_safety_incidents_in_a_rainstorm_are_never_capped(
    client, login, settings, clock, db, redis, sms_service, vapid_pem, tmp_path,
):
    settings = sms_settings(settings, vapid_pem, tmp_path, sms_daily_cap=3)
    network = sms_service.network()
    member = await login("grid_member", "13700008002", [GRID])
    rider = await login("courier", "13900008002", [GRID])
    start = clock.now()
    for n in range(40):
        # Spread out (tens of metres) so that most are incidents of their own.
        spot = {"lat": HERE["lat"] + (n % 8) * 0.0004, "lon": HERE["lon"] + (n // 8) * 0.0005}
        reply = await client.post("/api/v1/reports", headers=rider.headers,
                                  files=files(meta(clock, category="flooding" if n % 2 else "road_collapse", **spot)))
        assert reply.status_code == 201, reply.text
    await run_burst(settings, clock, push_network=network)
    incidents = await db.fetchval("SELECT count(*) FROM incidents WHERE state = 'dispatched' AND area_id = "
                                  "(SELECT id FROM areas WHERE code = $1)", GRID)
    clock.set(start + MINUTE * 16)
    await tick(settings, clock, db, redis, network)
    assert [m.phone for m in sms_service.accepted].count(member.phone) == incidents > 3


async def test_escalation_texts_stop_at_the_daily_cap(
    client, login, settings, clock, db, redis, sms_service, vapid_pem, tmp_path,
):
    settings = sms_settings(settings, vapid_pem, tmp_path, sms_daily_cap=2)
    network = sms_service.network()
    supervisor = await login("supervisor", "13800008003", ["ZW-ZWZ-C02"])
    rider = await login("courier", "13900008003", [GRID])
    start = clock.now()
    for n, category in enumerate(("garbage_pileup", "streetlight_out", "damaged_pole")):
        spot = {"lat": HERE["lat"] + n * 0.0008, "lon": HERE["lon"]}
        assert (await client.post("/api/v1/reports", headers=rider.headers,
                                  files=files(meta(clock, category=category, **spot)))).status_code == 201
    await run_burst(settings, clock, push_network=network)
    clock.set(start + dt.timedelta(hours=24, minutes=1))  # every accept stage overdue: level 1, the community
    await tick(settings, clock, db, redis, network)
    texts = [m for m in sms_service.accepted if m.phone == supervisor.phone]
    assert len(texts) == 2 and {m.template_code for m in texts} == {"SMS_1002"}
    skipped = await db.fetchval("SELECT count(*) FROM deliveries WHERE channel = 'sms' AND state = 'skipped' "
                                "AND last_error = 'daily SMS cap reached' AND member_id = $1", supervisor.member_id)
    assert skipped == 1


async def test_a_notify_job_run_twice_texts_once(
    client, login, settings, clock, db, redis, sms_service, vapid_pem, tmp_path,
):
    from gridrider.channels.sms import sms_provider
    from gridrider.jobs.notify import notify
    from gridrider.jobs.queue import transaction
    from gridrider.jobs.runner import run_job_row

    settings = sms_settings(settings, vapid_pem, tmp_path)
    network = sms_service.network()
    member = await login("grid_member", "13700008004", [GRID])
    rider = await login("courier", "13900008004", [GRID])
    start = clock.now()
    assert (await client.post("/api/v1/reports", headers=rider.headers,
                              files=files(meta(clock, category="exposed_live_wire", **HERE)))).status_code == 201
    await run_burst(settings, clock, push_network=network)
    clock.set(start + MINUTE * 15)
    await tick(settings, clock, db, redis, network)
    assert [m.phone for m in sms_service.accepted].count(member.phone) == 1
    reminder = await db.fetchval("SELECT id FROM notifications WHERE event = 'life_safety_unaccepted'")
    sms = sms_provider(settings, network)
    services = Services(settings=settings, clock=clock, pool=db, redis=redis, blobs=None, sms=sms)
    try:
        for _ in range(2):  # the same notification's job again, as arq may deliver it
            async with transaction(db, clock, None, max_attempts=3) as tx:
                job = await tx.add_job("notify", {"notification_id": reminder})
            await run_job_row(services, job.id, notify)
    finally:
        await sms.aclose()
    assert [m.phone for m in sms_service.accepted].count(member.phone) == 1
