"""From a report to a decrypted message on a grid member's phone — and every way a push service answers."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import time

from shapely.geometry import shape

from gridrider.domain.demo_geography import zhangwu_demo_areas
from gridrider.jobs.notify import notify
from gridrider.jobs.queue import transaction
from gridrider.jobs.runner import run_job_row
from gridrider.push.vapid import VapidKeyring
from tests.api.test_reports import files, meta
from tests.conftest import make_settings
from tests.jobs.conftest import run_burst
from tests.push.conftest import loopback_network

GRID = "ZW-ZWZ-C02-G03"
OTHER_GRID = "ZW-ZWZ-C07-G08"
_POINT = shape(next(a for a in zhangwu_demo_areas() if a.code == GRID).polygon).representative_point()
HERE = {"lat": _POINT.y, "lon": _POINT.x}


async def subscribe(client, caller, browser: dict) -> int:
    reply = await client.post("/api/v1/push/subscriptions", json=browser, headers=caller.headers)
    assert reply.status_code in (200, 201), reply.text
    return reply.json()["id"]


async def report(client, clock, caller, **changes) -> dict:
    reply = await client.post("/api/v1/reports", headers=caller.headers,
                              files=files(meta(clock, **{**HERE, **changes})))
    assert reply.status_code == 201, reply.text
    return reply.json()


async def deliveries(db) -> dict[int, tuple[str, int | None]]:
    """subscription id → (state, last status) of the webpush deliveries."""
    rows = await db.fetch("SELECT target, state, last_status FROM deliveries WHERE channel = 'webpush'")
    return {int(r["target"]): (r["state"], r["last_status"]) for r in rows}


async def test_a_report_reaches_every_subscribed_member_of_its_grid_and_nobody_else(
    push_client, push_service, push_network, login, settings, clock, db,
):
    near = await login("grid_member", "13700000001", [GRID])
    colleague = await login("grid_member", "13700000002", [GRID])
    elsewhere = await login("grid_member", "13700000003", [OTHER_GRID])
    rider = await login("courier", "13900000061", [GRID])
    phone, tablet = push_service.new_subscription(), push_service.new_subscription()
    theirs = push_service.new_subscription()
    silent = [push_service.new_subscription(), push_service.new_subscription()]
    await subscribe(push_client, near, phone)
    await subscribe(push_client, near, tablet)
    await subscribe(push_client, colleague, theirs)
    await subscribe(push_client, elsewhere, silent[0])
    await subscribe(push_client, rider, silent[1])

    sent = await report(push_client, clock, rider)
    await run_burst(settings, clock, push_network=push_network)

    assert len(push_service.received) == 3
    names = await db.fetchrow("SELECT name_zh, name_en FROM categories WHERE code = 'garbage_pileup'")
    for browser in (phone, tablet, theirs):
        [message] = push_service.messages_for(browser)
        body = message.json
        assert body["event"] == "incident_reached_grid" and body["title"].startswith(f"{names['name_zh']} · ")
        assert body["title"].endswith("社区") and "前受理" in body["body"]  # category · community, deadline
        assert body["en"]["title"].startswith(names["name_en"]) and "accept by" in body["en"]["body"]
        incident_id = body["incident_id"]
        assert body["tag"] == f"incident-{incident_id}" and body["url"] == f"/#/incidents/{incident_id}"
        headers = message.headers
        assert int(headers["ttl"]) > 0 and headers["urgency"] == "normal"
        assert headers["topic"] == f"incident-{incident_id}" and headers["content-encoding"] == "aes128gcm"
        assert message.claims["aud"] == push_service.origin and message.claims["sub"] == settings.vapid_subject
        assert 0 < message.claims["exp"] - time.time() <= 24 * 3600
    for browser in silent:
        assert push_service.messages_for(browser) == []
    incident = await db.fetchval("SELECT incident_id FROM reports WHERE id = $1", sent["id"])
    assert incident == incident_id
    assert sorted(s for s, _ in (await deliveries(db)).values()) == ["sent"] * 3
    mine = (await push_client.get("/api/v1/push/subscriptions", headers=near.headers)).json()
    assert all(s["last_ok_at"] is not None for s in mine)


async def test_life_safety_is_urgent_and_reaches_the_community_supervisors(
    push_client, push_service, push_network, login, settings, clock,
):
    member = await login("grid_member", "13700000011", [GRID])
    supervisor = await login("supervisor", "13800000091", ["ZW-ZWZ-C02"])
    rider = await login("courier", "13900000062", [GRID])
    member_phone, supervisor_phone = push_service.new_subscription(), push_service.new_subscription()
    await subscribe(push_client, member, member_phone)
    await subscribe(push_client, supervisor, supervisor_phone)
    await report(push_client, clock, rider, category="missing_manhole_cover")
    await run_burst(settings, clock, push_network=push_network)

    [to_member] = push_service.messages_for(member_phone)
    [to_supervisor] = push_service.messages_for(supervisor_phone)
    assert to_member.headers["urgency"] == "high" and to_member.json["urgent"] is True
    assert "危及生命安全" in to_member.json["body"]
    assert to_supervisor.json["event"] == "life_safety_created"


async def test_every_push_service_reply_is_handled(push_client, push_service, login, settings, clock, db, vapid_pem,
                                                   tmp_path):
    settings = make_settings(tmp_path / "d", settings.database_url, settings.redis_url, vapid_pem, push_timeout_s=1.0)
    network = loopback_network(push_service)
    behaviours = ["ok", "gone404", "gone410", "too_large", "rate_limited", "error500", "unauthorized401",
                  "forbidden403", "bad_request400", "redirect", "slow"]
    subscription_of: dict[str, int] = {}
    for n, behaviour in enumerate(behaviours):
        member = await login("grid_member", f"137000001{n:02d}", [GRID])
        subscription_of[behaviour] = await subscribe(push_client, member, push_service.new_subscription(behaviour))
    rider = await login("courier", "13900000063", [GRID])
    await report(push_client, clock, rider)

    await run_burst(settings, clock, push_network=network)

    outcome = await deliveries(db)
    state = {behaviour: outcome[sub] for behaviour, sub in subscription_of.items()}
    assert state["ok"] == ("sent", 201)
    assert state["gone404"] == ("gone", 404) and state["gone410"] == ("gone", 410)
    assert state["too_large"] == ("sent", 201)  # sent again, minimal
    [minimal] = [m for m in push_service.received if m.endpoint.endswith(_token(push_service, "too_large"))]
    assert "title" not in minimal.json and minimal.json["url"].startswith("/#/incidents/")
    assert state["rate_limited"] == ("pending", 429) and state["error500"] == ("pending", 500)
    for refused in ("unauthorized401", "forbidden403", "bad_request400"):
        assert state[refused] == ("failed", int(refused[-3:]))
    assert state["redirect"] == ("failed", 307) and state["slow"] == ("pending", None)

    subscriptions = {r["id"]: r for r in await db.fetch("SELECT * FROM push_subscriptions")}
    assert subscription_of["gone404"] not in subscriptions and subscription_of["gone410"] not in subscriptions
    assert all(subscriptions[subscription_of[b]]["needs_resubscribe_at"] is not None
               for b in ("unauthorized401", "forbidden403", "bad_request400"))
    assert subscriptions[subscription_of["ok"]]["needs_resubscribe_at"] is None
    assert subscriptions[subscription_of["error500"]]["failures"] == 1
    # The redirect was not followed: exactly one request reached the service for that endpoint.
    assert push_service.requests == len(behaviours) + 1  # + the minimal resend after 413
    # The job waits for Retry-After (3 s) or its backoff before sending the pending ones again.
    job = await db.fetchrow("SELECT state, run_after, last_error FROM jobs WHERE kind = 'notify'")
    assert job["state"] != "done" and job["run_after"] >= clock.now() + dt.timedelta(seconds=3)
    assert "2 pending" in job["last_error"] or "3 pending" in job["last_error"]


def _token(service, behaviour: str) -> str:
    return next(token for token, sub in service._subscriptions.items() if sub.behaviour == behaviour)


async def test_a_second_run_sends_nothing_twice(push_client, push_service, push_network, login, settings, clock, db):
    member = await login("grid_member", "13700000021", [GRID])
    browser = push_service.new_subscription()
    await subscribe(push_client, member, browser)
    await report(push_client, clock, await login("courier", "13900000064", [GRID]))
    await run_burst(settings, clock, push_network=push_network)
    assert len(push_service.messages_for(browser)) == 1

    notification_id = await db.fetchval("SELECT id FROM notifications")
    services = _services(settings, clock, db, push_network)
    try:
        for _ in range(2):  # the same notification's job run again, as arq may
            async with transaction(db, clock, None, max_attempts=5) as tx:
                job = await tx.add_job("notify", {"notification_id": notification_id})
            assert (await run_job_row(services, job.id, notify)).startswith("nothing to push")
    finally:
        await services.push.aclose()
    assert len(push_service.messages_for(browser)) == 1
    assert await db.fetchval("SELECT count(*) FROM deliveries WHERE channel = 'webpush'") == 1


def _services(settings, clock, db, network):
    from gridrider.images.blobs import LocalBlobStore
    from gridrider.push import build_push
    from gridrider.services import Services

    return Services(settings=settings, clock=clock, pool=db, redis=None, blobs=LocalBlobStore(settings.data_dir),
                    push=build_push(settings, network))


async def test_a_host_that_resolves_to_any_private_address_is_never_contacted(
    push_client, push_service, login, settings, clock, db,
):
    member = await login("grid_member", "13700000031", [GRID])
    await subscribe(push_client, member, push_service.new_subscription())
    calls = []

    async def mixed(host, port):
        calls.append(host)
        return [("142.250.72.10", 443), ("127.0.0.1", push_service.port)]  # one public, one inward

    from gridrider.push.network import is_public_address
    network = loopback_network(push_service, resolve=mixed, address_allowed=is_public_address)
    await report(push_client, clock, await login("courier", "13900000065", [GRID]))
    await run_burst(settings, clock, push_network=network)
    assert calls and push_service.requests == 0
    [(state, status)] = (await deliveries(db)).values()
    assert (state, status) == ("failed", None)
    assert "non-public" in await db.fetchval("SELECT last_error FROM deliveries WHERE channel = 'webpush'")


async def test_dns_rebinding_cannot_steer_a_send_inward(push_client, push_service, login, settings, clock, db):
    """The name resolves to a public address when checked and to the push service's loopback one
    afterwards: the sender resolves once and connects where it checked, so loopback sees nothing."""
    member = await login("grid_member", "13700000041", [GRID])
    await subscribe(push_client, member, push_service.new_subscription())
    public_stand_in = ipaddress.ip_address("192.0.2.10")  # TEST-NET-1: "public" for this test, routes nowhere
    answers = []

    async def rebinding(host, port):
        answer = [(str(public_stand_in), 443)] if not answers else [("127.0.0.1", push_service.port)]
        answers.append(answer)
        return answer

    settings = make_settings(settings.data_dir / "r", settings.database_url, settings.redis_url,
                             settings.vapid_private_key, push_timeout_s=1.0)
    network = loopback_network(push_service, resolve=rebinding, address_allowed=lambda a: a == public_stand_in)
    await report(push_client, clock, await login("courier", "13900000066", [GRID]))
    await run_burst(settings, clock, push_network=network)
    assert push_service.requests == 0
    assert all(answer[0][0] == str(public_stand_in) for answer in answers[:1])
    [(state, _)] = (await deliveries(db)).values()
    assert state == "pending"  # not delivered; retried later through the same check


async def test_production_network_refuses_a_subscription_pointing_at_loopback(
    push_client, push_service, login, settings, clock, db,
):
    """Even a stored endpoint naming a local host (as if it slipped past the API) goes nowhere through the
    production network: no setting or variable makes the sender reach the local service."""
    member = await login("grid_member", "13700000051", [GRID])
    sub_id = await subscribe(push_client, member, push_service.new_subscription())
    token = (await db.fetchval("SELECT endpoint FROM push_subscriptions WHERE id = $1", sub_id)).rsplit("/", 1)[1]
    await db.execute("UPDATE push_subscriptions SET endpoint = $2 WHERE id = $1", sub_id,
                     f"https://localhost:{push_service.port}/push/{token}")
    await report(push_client, clock, await login("courier", "13900000067", [GRID]))
    await run_burst(settings, clock)  # no push_network: the production one
    assert push_service.requests == 0
    assert "non-public" in await db.fetchval("SELECT last_error FROM deliveries WHERE channel = 'webpush'")


async def test_one_hanging_endpoint_does_not_hold_up_a_thousand_others(
    push_client, push_service, login, settings, clock, db, vapid_pem, tmp_path,
):
    settings = make_settings(tmp_path / "d", settings.database_url, settings.redis_url, vapid_pem,
                             push_timeout_s=10.0)
    network = loopback_network(push_service)
    grid_id = await db.fetchval("SELECT id FROM areas WHERE code = $1", GRID)
    key_id = VapidKeyring.from_text(vapid_pem, settings.vapid_subject).current.id
    # The hanging one first: a sender that waited for it would deliver every other message late.
    browsers = [push_service.new_subscription("slow")] + [push_service.new_subscription() for _ in range(999)]
    from gridrider.push.endpoints import check_keys
    async with db.acquire() as conn, conn.transaction():
        for n in range(100):
            member_id = await conn.fetchval(
                "INSERT INTO members (role, pseudonym, phone, status) VALUES ('grid_member', $1, $2, 'active')"
                " RETURNING id", f"gm-{n}", f"136{n:08d}")
            await conn.execute("INSERT INTO member_areas (member_id, area_id) VALUES ($1, $2)", member_id, grid_id)
            for browser in browsers[n * 10:(n + 1) * 10]:
                point, secret = check_keys(browser["keys"]["p256dh"], browser["keys"]["auth"])
                await conn.execute(
                    "INSERT INTO push_subscriptions (member_id, endpoint, p256dh, auth, vapid_key_id)"
                    " VALUES ($1, $2, $3, $4, $5)", member_id, browser["endpoint"], point, secret, key_id)
    await report(push_client, clock, await login("courier", "13900000068", [GRID]))

    timed_out_at: list[float] = []
    burst = asyncio.create_task(run_burst(settings, clock, push_network=network))
    try:
        await push_service.wait_for(999, timeout=60)
        while not burst.done():
            await asyncio.sleep(0.05)
        timed_out_at.append(time.monotonic())
    finally:
        if not burst.done():
            burst.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await burst
    states = [s for s, _ in (await deliveries(db)).values()]
    assert states.count("sent") == 999 and states.count("pending") == 1
    last_arrival = max(m.arrived_at for m in push_service.received)
    # All 999 had arrived well before the hanging request's 10 s timeout released the job.
    assert timed_out_at[0] - last_arrival > 5.0


async def test_rotated_keys_sign_each_subscription_with_its_own_key(
    push_service, login, settings, clock, db, redis, vapid_pem, tmp_path,
):
    from litestar.testing import AsyncTestClient

    from gridrider.app import create_app
    from gridrider.embedded import generate_vapid_private_key_pem

    network = loopback_network(push_service)
    new_pem = generate_vapid_private_key_pem()
    rotated = make_settings(tmp_path / "rot", settings.database_url, settings.redis_url, vapid_pem + new_pem)
    old_ring = VapidKeyring.from_text(vapid_pem, settings.vapid_subject)
    new_ring = VapidKeyring.from_text(vapid_pem + new_pem, settings.vapid_subject)
    old_browser, new_browser = push_service.new_subscription(), push_service.new_subscription()
    async with AsyncTestClient(app=create_app(settings, clock=clock, push_network=network)) as before:
        veteran = await login("grid_member", "13700000071", [GRID])
        await subscribe(before, veteran, old_browser)
    async with AsyncTestClient(app=create_app(rotated, clock=clock, push_network=network)) as after:
        newcomer = await login("grid_member", "13700000072", [GRID])
        assert (await after.get("/api/v1/push/key", headers=newcomer.headers)).json()["key_id"] == new_ring.current.id
        await subscribe(after, newcomer, new_browser)
        listed = (await after.get("/api/v1/push/subscriptions", headers=veteran.headers)).json()
        assert listed[0]["key_is_current"] is False  # the app re-subscribes when it sees this
        await report(after, clock, await login("courier", "13900000069", [GRID]))
    await run_burst(rotated, clock, push_network=network)
    [to_veteran] = push_service.messages_for(old_browser)
    [to_newcomer] = push_service.messages_for(new_browser)
    assert to_veteran.vapid_public_key == old_ring.current.application_server_key
    assert to_newcomer.vapid_public_key == new_ring.current.application_server_key


async def test_vapid_ring_cli_lists_rotates_and_retires(settings, db, vapid_pem, tmp_path) -> None:
    import os
    import sys

    from gridrider.embedded import generate_vapid_private_key_pem

    unused, current = generate_vapid_private_key_pem(), generate_vapid_private_key_pem()
    ring = VapidKeyring.from_text(vapid_pem + unused + current, settings.vapid_subject)
    oldest, spare, newest = (key.id for key in ring.keys)
    member = await db.fetchval("INSERT INTO members (role, pseudonym, phone) VALUES ('grid_member', 'k', "
                               "'13611112222') RETURNING id")
    await db.execute("INSERT INTO push_subscriptions (member_id, endpoint, p256dh, auth, vapid_key_id) VALUES "
                     "($1, 'https://fcm.googleapis.com/fcm/send/k', $2, $3, $4)", member,
                     b"\x04" + b"\x01" * 64, b"\x00" * 16, oldest)
    env = {**os.environ, "DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url,
           "GRIDRIDER_VAPID_PRIVATE_KEY": vapid_pem + unused + current, "GRIDRIDER_DATA_DIR": str(tmp_path),
           "GRIDRIDER_SESSION_SECRET": settings.session_secret,
           "GRIDRIDER_URL_SIGNING_SECRET": settings.url_signing_secret}

    async def run(action: str) -> str:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gridrider", "vapid-keys", action, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await process.communicate()
        assert process.returncode == 0, err.decode()
        return out.decode()

    listed = {line.split()[0]: line.split()[1:3] for line in (await run("list")).splitlines()}
    assert listed == {oldest: ["old", "1"], spare: ["old", "0"], newest: ["current", "0"]}
    rotated = VapidKeyring.from_text(await run("rotate"), settings.vapid_subject)
    assert [k.id for k in rotated.keys][:3] == [oldest, spare, newest] and len(rotated.keys) == 4
    retired = VapidKeyring.from_text(await run("retire"), settings.vapid_subject)
    assert [k.id for k in retired.keys] == [oldest, newest]  # the spare one went; the one in use stays


async def test_a_connection_the_push_service_closed_while_idle_is_replaced(push_service, push_network, settings):
    """Push services drop idle keep-alive connections; the next message goes out on a fresh one."""
    from gridrider.push import build_push
    from gridrider.push.endpoints import b64url, check_keys
    from gridrider.push.sender import PushTarget, SubscriptionKeys

    push = build_push(settings, push_network)
    browser = push_service.new_subscription()
    point, secret = check_keys(browser["keys"]["p256dh"], browser["keys"]["auth"])
    target = PushTarget(1, browser["endpoint"], SubscriptionKeys(b64url(point), b64url(secret)),
                        push.keyring.current.id)
    try:
        first = await push.sender.send(target, push.keyring.current, b'{"n":1}', ttl_s=60, urgency="low", topic=None)
        push_service.drop_connections()
        second = await push.sender.send(target, push.keyring.current, b'{"n":2}', ttl_s=60, urgency="low", topic=None)
    finally:
        await push.aclose()
    assert (first.status, second.status) == (201, 201), second.error
    assert [m.json["n"] for m in push_service.received] == [1, 2]


async def test_a_hanging_push_service_does_not_hold_up_another(
    push_client, push_service, login, settings, clock, db, vapid_pem, tmp_path,
):
    """Every connection to one push service hangs; the other service's messages all go out meanwhile."""
    from gridrider.push.endpoints import check_keys
    from gridrider.push.network import PushNetwork
    from tests.push.push_service import PushService

    settings = make_settings(tmp_path / "d", settings.database_url, settings.redis_url, vapid_pem,
                             push_timeout_s=3.0, push_concurrency=4)
    async with PushService("push.hanging.test") as hanging:
        services = {push_service.host_name: push_service, hanging.host_name: hanging}

        async def resolve(host: str, port: int) -> list[tuple[str, int]]:
            return [("127.0.0.1", services[host].port)]

        ssl_context = push_service.client_ssl_context()
        ssl_context.load_verify_locations(cadata=hanging.client_ssl_context().get_ca_certs(binary_form=True)[0])
        network = PushNetwork(resolve=resolve, address_allowed=lambda a: a == ipaddress.ip_address("127.0.0.1"),
                              ssl_context=ssl_context, extra_hosts=frozenset(services))
        grid_id = await db.fetchval("SELECT id FROM areas WHERE code = $1", GRID)
        key_id = VapidKeyring.from_text(vapid_pem, settings.vapid_subject).current.id
        # Twice as many hanging messages as lanes, listed first: each lane of the hanging service waits
        # out two timeouts, while the other service's hundred go out on their own lanes.
        browsers = [hanging.new_subscription("slow") for _ in range(8)] + \
                   [push_service.new_subscription() for _ in range(100)]
        async with db.acquire() as conn, conn.transaction():
            member_id = await conn.fetchval(
                "INSERT INTO members (role, pseudonym, phone, status) VALUES ('grid_member', 'gm-two', '13600000999',"
                " 'active') RETURNING id")
            await conn.execute("INSERT INTO member_areas (member_id, area_id) VALUES ($1, $2)", member_id, grid_id)
            for browser in browsers:
                point, secret = check_keys(browser["keys"]["p256dh"], browser["keys"]["auth"])
                await conn.execute(
                    "INSERT INTO push_subscriptions (member_id, endpoint, p256dh, auth, vapid_key_id)"
                    " VALUES ($1, $2, $3, $4, $5)", member_id, browser["endpoint"], point, secret, key_id)
        await report(push_client, clock, await login("courier", "13900000069", [GRID]))
        started = time.monotonic()
        await run_burst(settings, clock, push_network=network)
        finished = time.monotonic()
    states = [s for s, _ in (await deliveries(db)).values()]
    assert states.count("sent") == 100 and states.count("pending") == 8
    # The hundred were all in before the first hanging request timed out (3 s); the job took two timeouts.
    assert max(m.arrived_at for m in push_service.received) - started < 3.0 <= finished - started - 3.0
    assert hanging.requests == 8
