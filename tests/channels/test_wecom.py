"""The WeCom group robot: cards, sending through the injected network to a local stand-in, WeCom's answers,
20 messages a minute per robot across processes, the webhook stored encrypted, and its API."""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import uuid

import pytest
import pytest_asyncio
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from gridrider.api.webhooks import WebhookController
from gridrider.channels import wecom
from gridrider.channels.wecom import (
    CardItem,
    RobotRateLimiter,
    WeComResult,
    WeComRobot,
    WeComWebhookInvalid,
    batch_card,
    check_webhook_url,
    incident_card,
    result_of,
)
from gridrider.clock import ManualClock
from gridrider.db import webhooks as db_webhooks
from gridrider.db.webhooks import WebhookUnreadable
from gridrider.errors import MESSAGES
from gridrider.logging import KeyValueFormatter
from gridrider.push.network import PUBLIC_INTERNET, PushNetwork
from tests.channels.wecom_service import WeComService
from tests.conftest import T0
from tests.push.conftest import loopback_network

PUBLIC_URL = "https://gridrider.example"
KEY = "693a91f6-7000-4bc4-97a0-0ec25f1a5aaa"
GOOD_URL = f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={KEY}"


@pytest_asyncio.fixture
async def wecom_service():
    async with WeComService() as service:
        yield service


@pytest.fixture
def wecom_network(wecom_service) -> PushNetwork:
    return loopback_network(wecom_service)


@pytest_asyncio.fixture
async def robot(wecom_network):
    async with WeComRobot(wecom_network, timeout_s=2.0) as sender:
        yield sender


def _log_text(caplog: pytest.LogCaptureFixture) -> str:
    formatter = KeyValueFormatter()
    return "\n".join(formatter.format(record) for record in caplog.records)


# ── the webhook URL ──────────────────────────────────────────────────────────────────────────────

def test_a_wecom_webhook_url_is_accepted_and_rebuilt():
    assert uuid.UUID(KEY)
    checked = check_webhook_url(GOOD_URL)
    assert (checked.url, checked.key, checked.key_hint) == (GOOD_URL, KEY, KEY[-4:])
    spelled = f"https://QYAPI.weixin.qq.com:443/cgi-bin/webhook/send?key={KEY}"
    assert check_webhook_url(spelled).url == GOOD_URL


BAD_URLS = {
    "http": (f"http://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={KEY}", "wecom_webhook_not_https"),
    "other host": (f"https://api.weixin.qq.com/cgi-bin/webhook/send?key={KEY}", "wecom_webhook_host"),
    "look-alike host": (f"https://qyapi.weixin.qq.com.evil.example/cgi-bin/webhook/send?key={KEY}",
                        "wecom_webhook_host"),
    "trailing dot": (f"https://qyapi.weixin.qq.com./cgi-bin/webhook/send?key={KEY}", "wecom_webhook_host"),
    "ip literal": (f"https://127.0.0.1/cgi-bin/webhook/send?key={KEY}", "wecom_webhook_host"),
    "userinfo": (f"https://qyapi.weixin.qq.com@evil.example/cgi-bin/webhook/send?key={KEY}",
                 "wecom_webhook_userinfo"),
    "userinfo before host": (f"https://u:p@qyapi.weixin.qq.com/cgi-bin/webhook/send?key={KEY}",
                             "wecom_webhook_userinfo"),
    "port": (f"https://qyapi.weixin.qq.com:8443/cgi-bin/webhook/send?key={KEY}", "wecom_webhook_port"),
    "empty port": (f"https://qyapi.weixin.qq.com:/cgi-bin/webhook/send?key={KEY}", "wecom_webhook_port"),
    "other path": (f"https://qyapi.weixin.qq.com/cgi-bin/webhook/upload_media?key={KEY}", "wecom_webhook_path"),
    "dot segments": (f"https://qyapi.weixin.qq.com/cgi-bin/x/../webhook/send?key={KEY}", "wecom_webhook_path"),
    "extra param": (f"{GOOD_URL}&debug=1", "wecom_webhook_query"),
    "two keys": (f"{GOOD_URL}&key={KEY}", "wecom_webhook_query"),
    "no key": ("https://qyapi.weixin.qq.com/cgi-bin/webhook/send", "wecom_webhook_query"),
    "other param name": (f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?Key={KEY}", "wecom_webhook_query"),
    "not a uuid": ("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc", "wecom_webhook_key"),
    "uuid without hyphens": (f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={KEY.replace('-', '')}",
                             "wecom_webhook_key"),
    "encoded key": (f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={KEY[:-1]}%61", "wecom_webhook_key"),
    "fragment": (f"{GOOD_URL}#x", "wecom_webhook_malformed"),
    "whitespace": (f" {GOOD_URL}", "wecom_webhook_malformed"),
    "backslash": (f"https://qyapi.weixin.qq.com\\@evil.example/cgi-bin/webhook/send?key={KEY}",
                  "wecom_webhook_malformed"),
    "no scheme": (f"qyapi.weixin.qq.com/cgi-bin/webhook/send?key={KEY}", "wecom_webhook_malformed"),
    "too long": (GOOD_URL + "0" * 300, "wecom_webhook_malformed"),
    "empty": ("", "wecom_webhook_malformed"),
}


@pytest.mark.parametrize("name", sorted(BAD_URLS))
def test_anything_but_exactly_a_wecom_webhook_is_refused(name):
    url, reason = BAD_URLS[name]
    with pytest.raises(WeComWebhookInvalid) as raised:
        check_webhook_url(url)
    assert raised.value.reason == reason
    assert raised.value.code == "wecom_webhook_invalid" and raised.value.status == 422
    assert KEY not in str(raised.value)


# ── cards ────────────────────────────────────────────────────────────────────────────────────────

def _item(incident_id: int = 42, **overrides) -> CardItem:
    fields = {"incident_id": incident_id, "category": "井盖缺失", "place": "解放路 12 号", "life_safety": False,
              "report_count": 3, "accept_due_at": T0 + dt.timedelta(hours=1, minutes=20)}
    return CardItem(**{**fields, **overrides})


def test_an_incident_card_shows_category_place_time_left_reports_and_link():
    card = incident_card(_item(), public_url=PUBLIC_URL + "/", now=T0)
    assert card.startswith("### 井盖缺失 · 解放路 12 号\n")
    assert "剩余 1 小时 20 分钟" in card and "11月26日 11:20 前" in card
    assert "上报人数：3 人" in card
    assert f"({PUBLIC_URL}/#/incidents/42)" in card
    assert "warning" not in card and "危及生命安全" not in card


def test_a_life_safety_card_is_marked_in_warning_colour_and_overdue_shows():
    card = incident_card(_item(life_safety=True, accept_due_at=T0 - dt.timedelta(minutes=5)), public_url=PUBLIC_URL,
                         now=T0)
    assert card.startswith('### <font color="warning">【危及生命安全】</font>井盖缺失 · 解放路 12 号')
    assert '<font color="warning">已超时 5 分钟</font>' in card


def test_user_text_cannot_inject_markdown_into_a_card():
    card = incident_card(_item(place='[点我](https://evil.example) <font color="info">x</font>\n### 假标题'),
                         public_url=PUBLIC_URL, now=T0)
    assert "evil.example)" not in card and "](https://evil" not in card
    assert '<font color="info">x' not in card
    assert card.count("\n### ") == 0 and card.count("### ") == 1
    assert card.count("](") == 1  # only our own link


def test_a_batch_card_lists_several_incidents_life_safety_first():
    items = [_item(1, place="甲路"), _item(2, place="乙路", life_safety=True),
             _item(3, place="丙路", accept_due_at=None)]
    card = batch_card(items, public_url=PUBLIC_URL, now=T0)
    assert card.startswith("### 新隐患 3 条待受理（<font color=\"warning\">其中 1 条危及生命安全</font>）")
    lines = card.splitlines()[1:]
    assert [line.split("](")[1].split(")")[0] for line in lines] == [
        f"{PUBLIC_URL}/#/incidents/{n}" for n in (2, 1, 3)]
    assert "乙路" in lines[0] and "【危及生命安全】" in lines[0]
    assert "剩余 1 小时 20 分钟 · 3 人上报" in lines[1]


def test_a_long_batch_fits_4096_bytes_and_says_how_many_are_left_out():
    items = [_item(n, place="很长的地址" * 10) for n in range(1, 201)]
    card = batch_card(items, public_url=PUBLIC_URL, now=T0)
    assert len(card.encode()) <= wecom.MAX_CONTENT_BYTES
    listed = sum(1 for line in card.splitlines() if line.startswith("- "))
    assert 5 < listed < 200
    assert f"另有 {200 - listed} 条未列出" in card.splitlines()[-1]


def test_content_is_cut_to_4096_bytes_with_an_ellipsis():
    text = "危" * 2000  # 6000 bytes
    fitted = wecom.fit_bytes(text)
    assert len(fitted.encode()) <= 4096 and fitted.endswith("…") and fitted[:-1] == "危" * len(fitted[:-1])
    assert wecom.fit_bytes("短") == "短"


# ── sending ──────────────────────────────────────────────────────────────────────────────────────

async def test_a_card_is_sent_through_the_injected_network_to_the_stand_in(robot, wecom_service, caplog):
    caplog.set_level(logging.DEBUG)
    url = wecom_service.new_robot()
    card = incident_card(_item(), public_url=PUBLIC_URL, now=T0)
    result = await robot.send_markdown(url, card)
    assert result == WeComResult(ok=True, errcode=0, errmsg="ok", retryable=False, retry_after_s=None)
    [message] = wecom_service.messages_for(url)
    assert message.body == {"msgtype": "markdown", "markdown": {"content": card}}
    assert message.headers["host"] == "qyapi.weixin.qq.com"
    logged = _log_text(caplog)
    assert "key=<redacted>" in logged  # httpx logged the request, with the key taken out
    assert wecom_service.key_of(url) not in logged


async def test_an_oversized_card_is_truncated_and_accepted(robot, wecom_service):
    url = wecom_service.new_robot()
    assert (await robot.send_markdown(url, "隐" * 5000)).ok
    [message] = wecom_service.messages_for(url)
    assert len(message.content.encode()) <= 4096 and message.content.endswith("…")


async def test_a_removed_robot_is_gone_and_not_retried(robot, wecom_service, caplog):
    caplog.set_level(logging.DEBUG)
    url = wecom_service.new_robot()
    wecom_service.remove_robot(url)
    result = await robot.send_markdown(url, "x")
    assert (result.ok, result.errcode, result.retryable, result.gone) == (False, 93000, False, True)
    assert wecom_service.key_of(url) not in _log_text(caplog)


async def test_http_errors_and_timeouts_are_retryable(wecom_network, wecom_service):
    async with WeComRobot(wecom_network, timeout_s=0.5) as sender:
        failing, slow = wecom_service.new_robot("error500"), wecom_service.new_robot("slow")
        result = await sender.send_markdown(failing, "x")
        assert (result.ok, result.errcode, result.retryable, result.errmsg) == (False, None, True, "HTTP 500")
        result = await sender.send_markdown(slow, "x")
        assert (result.ok, result.retryable, result.errmsg) == (False, True, "timeout")
        assert result.retry_after_s and result.retry_after_s > 0


async def test_a_redirect_is_never_followed(robot, wecom_service):
    url = wecom_service.new_robot("redirect")
    result = await robot.send_markdown(url, "x")
    assert (result.ok, result.retryable, result.errmsg) == (False, False, "HTTP 302")
    assert wecom_service.requests == 1


async def test_the_21st_message_in_a_minute_is_refused_by_wecom_and_retryable(robot, wecom_service):
    url = wecom_service.new_robot()
    results = [await robot.send_markdown(url, f"第 {n} 条") for n in range(1, 22)]
    assert all(r.ok for r in results[:20])
    last = results[20]
    assert (last.ok, last.errcode, last.retryable, last.retry_after_s, last.gone) == (False, 45009, True, 60, False)
    assert len(wecom_service.messages_for(url)) == 20
    # Another robot has its own budget.
    assert (await robot.send_markdown(wecom_service.new_robot(), "x")).ok


async def test_a_url_that_is_not_wecom_is_never_posted_to(robot, wecom_service):
    result = await robot.send_markdown(f"https://127.0.0.1:{wecom_service.port}/cgi-bin/webhook/send?key={KEY}", "x")
    assert (result.ok, result.retryable) == (False, False)
    assert wecom_service.connections == 0


@pytest.mark.parametrize(("status", "body", "expected"), [
    (200, b'{"errcode":0,"errmsg":"ok"}', (True, 0, False, None)),
    (200, b'{"errcode":45009,"errmsg":"api freq out of limit"}', (False, 45009, True, 60)),
    (200, b'{"errcode":93000,"errmsg":"invalid webhook url"}', (False, 93000, False, None)),
    (200, b'{"errcode":93004,"errmsg":"robot disabled"}', (False, 93004, False, None)),
    (200, b'{"errcode":93008,"errmsg":"robot not in chat"}', (False, 93008, False, None)),
    (200, b'{"errcode":40008,"errmsg":"invalid message type"}', (False, 40008, False, None)),
    (200, b'{"errcode":-1,"errmsg":"system busy"}', (False, -1, True, 30)),
    (200, b"<html>proxy</html>", (False, None, True, 30)),
    (200, b'{"errcode":"0"}', (False, None, True, 30)),
    (502, b"", (False, None, True, 30)),
    (429, b"", (False, None, True, 60)),
    (403, b"", (False, None, False, None)),
])
def test_wecom_answers_are_mapped(status, body, expected):
    result = result_of(status, body)
    assert (result.ok, result.errcode, result.retryable, result.retry_after_s) == expected
    assert result.gone == (result.errcode in (93000, 93004, 93008))


# ── the production network never reaches the stand-in ───────────────────────────────────────────

async def test_the_production_network_never_reaches_the_stand_in(wecom_service):
    url = wecom_service.new_robot()
    stand_in = loopback_network(wecom_service)
    # Even when DNS itself points the WeCom name at the stand-in, production's address policy refuses it …
    async with WeComRobot(PushNetwork(resolve=stand_in.resolve)) as sender:
        result = await sender.send_markdown(url, "x")
    assert (result.ok, result.retryable, result.errmsg) == (False, True, "address refused")
    assert wecom_service.connections == 0
    # … and with loopback allowed, production's trusted CAs do not trust the stand-in's certificate.
    async with WeComRobot(PushNetwork(resolve=stand_in.resolve,
                                      address_allowed=lambda a: a == ipaddress.ip_address("127.0.0.1"))) as sender:
        result = await sender.send_markdown(url, "x")
    assert (result.ok, result.retryable) == (False, True)
    assert wecom_service.requests == 0 and wecom_service.messages_for(url) == []
    assert WeComRobot()._network is PUBLIC_INTERNET


# ── 20 a minute per robot, across processes ──────────────────────────────────────────────────────

async def test_the_robot_budget_is_shared_by_processes_and_returns_after_the_window(redis):
    clock = ManualClock(T0)
    one, two = RobotRateLimiter(redis, clock), RobotRateLimiter(redis, clock)
    taken = [await (one if n % 2 else two).take(KEY) for n in range(20)]
    assert all(taken)
    assert await one.take(KEY) is False and await two.take(KEY) is False
    decision = await one.acquire(KEY)
    assert (decision.allowed, decision.retry_after_s) == (False, 60)
    assert await two.take(str(uuid.uuid4()))  # another robot
    clock.advance(seconds=59.9)
    assert await one.take(KEY) is False
    clock.advance(seconds=0.2)
    assert await two.take(KEY) is True
    assert KEY not in str(await redis.keys("*"))  # Redis holds a hash of the key, never the key


async def test_the_robot_budget_is_exact_in_a_sliding_minute(redis):
    clock = ManualClock(T0)
    limiter = RobotRateLimiter(redis, clock)
    for _ in range(10):
        assert await limiter.take(KEY)
    clock.advance(seconds=50)
    for _ in range(10):
        assert await limiter.take(KEY)
    clock.advance(seconds=15)  # the first ten left the window; the last ten are still in it
    assert [await limiter.take(KEY) for _ in range(11)] == [True] * 10 + [False]


async def test_the_robot_budget_fails_open_without_redis():
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    try:
        limiter = RobotRateLimiter(dead, ManualClock(T0))
        assert all([await limiter.take(KEY) for _ in range(25)])
    finally:
        await dead.aclose()
    assert await RobotRateLimiter(None, ManualClock(T0)).take(KEY)


# ── storage ──────────────────────────────────────────────────────────────────────────────────────

async def _area_id(db, code: str) -> int:
    return await db.fetchval("SELECT id FROM areas WHERE code = $1", code)


async def test_the_webhook_is_stored_encrypted_and_bound_to_its_area(db, demo, settings, clock):
    secret = settings.session_secret
    grid, other = await _area_id(db, "ZW-ZWZ-C02-G01"), await _area_id(db, "ZW-ZWZ-C02-G02")
    actor = await db.fetchval("SELECT id FROM members WHERE role = 'admin'")
    async with db.acquire() as conn:
        info = await db_webhooks.set_webhook(conn, area_id=grid, url=GOOD_URL.replace("https", "HTTPS"),
                                             secret=secret, actor_id=actor, now=clock.now())
        assert (info.area_code, info.channel, info.key_hint, info.updated_by) == ("ZW-ZWZ-C02-G01", "wecom",
                                                                                  KEY[-4:], actor)
        assert await db_webhooks.webhook_for(conn, grid, secret) == GOOD_URL
        assert await db_webhooks.webhook_for(conn, other, secret) is None

        raw = await conn.fetchrow("SELECT * FROM area_webhooks WHERE area_id = $1", grid)
        stored = b"".join(bytes(v) if isinstance(v, bytes) else str(v).encode() for v in raw.values())
        for secret_part in (KEY, KEY.replace("-", ""), KEY[:8], "qyapi", "webhook/send"):
            assert secret_part.encode() not in stored
        assert raw["key_hint"] == KEY[-4:]

        # Same URL again: a fresh nonce, a different ciphertext.
        await db_webhooks.set_webhook(conn, area_id=grid, url=GOOD_URL, secret=secret, actor_id=actor,
                                      now=clock.now())
        assert await conn.fetchval("SELECT ciphertext FROM area_webhooks WHERE area_id = $1", grid) != \
            raw["ciphertext"]

        # A ciphertext copied to another area's row does not decrypt there.
        await conn.execute("INSERT INTO area_webhooks (area_id, channel, ciphertext, key_hint, updated_at) "
                           "SELECT $2, channel, ciphertext, key_hint, updated_at FROM area_webhooks WHERE area_id = $1",
                           grid, other)
        with pytest.raises(WebhookUnreadable):
            await db_webhooks.webhook_for(conn, other, secret)
        with pytest.raises(WebhookUnreadable):
            await db_webhooks.webhook_for(conn, grid, "another secret " * 3)

        listed = await db_webhooks.areas_with_webhooks(conn)
        assert [w.area_code for w in listed] == ["ZW-ZWZ-C02-G01", "ZW-ZWZ-C02-G02"]
        assert KEY not in repr(listed)

        assert await db_webhooks.delete_webhook(conn, area_id=grid) is True
        assert await db_webhooks.delete_webhook(conn, area_id=grid) is False
        assert await db_webhooks.webhook_for(conn, grid, secret) is None


async def test_storing_refuses_anything_but_a_wecom_webhook(db, demo, settings, clock):
    grid = await _area_id(db, "ZW-ZWZ-C02-G01")
    async with db.acquire() as conn:
        with pytest.raises(WeComWebhookInvalid):
            await db_webhooks.set_webhook(conn, area_id=grid, url="https://evil.example/x?key=1",
                                          secret=settings.session_secret, actor_id=None, now=clock.now())
    assert await db.fetchval("SELECT count(*) FROM area_webhooks") == 0


# ── the API ──────────────────────────────────────────────────────────────────────────────────────

@pytest_asyncio.fixture
async def api(settings, clock, db, redis, monkeypatch):
    """The app with WebhookController mounted (until app.py lists it in API_CONTROLLERS)."""
    import gridrider.app as app_module

    if WebhookController not in app_module.API_CONTROLLERS:
        monkeypatch.setattr(app_module, "API_CONTROLLERS", [*app_module.API_CONTROLLERS, WebhookController])
    async with AsyncTestClient(app=app_module.create_app(settings, clock=clock)) as client:
        yield client


GRID = "ZW-ZWZ-C02-G01"


async def test_an_admin_sets_reads_and_removes_a_grid_robot(api, admin, caplog):
    caplog.set_level(logging.DEBUG)
    path = f"/api/v1/areas/{GRID}/wecom"
    reply = await api.get(path, headers=admin.headers)
    assert reply.status_code == 200 and reply.json() == {"area_code": GRID, "channel": "wecom", "configured": False,
                                                          "key_hint": None, "updated_by": None, "updated_at": None}
    reply = await api.put(path, headers=admin.headers, json={"webhook_url": GOOD_URL})
    assert reply.status_code == 200, reply.text
    assert KEY not in reply.text and "qyapi" not in reply.text
    body = reply.json()
    assert (body["configured"], body["key_hint"], body["updated_by"]) == (True, KEY[-4:], admin.member_id)

    reply = await api.get(path, headers=admin.headers)
    assert reply.json()["configured"] is True and KEY not in reply.text and "qyapi" not in reply.text

    assert (await api.delete(path, headers=admin.headers)).status_code == 204
    assert (await api.get(path, headers=admin.headers)).json()["configured"] is False
    assert (await api.delete(path, headers=admin.headers)).status_code == 404
    assert KEY not in _log_text(caplog)


async def test_a_supervisor_manages_robots_of_their_subtree_only(api, login, db):
    community = await login("supervisor", "13911110000", ["ZW-ZWZ-C02"])
    reply = await api.put(f"/api/v1/areas/{GRID}/wecom", headers=community.headers, json={"webhook_url": GOOD_URL})
    assert reply.status_code == 200, reply.text
    assert (await api.put("/api/v1/areas/ZW-ZWZ-C02/wecom", headers=community.headers,
                          json={"webhook_url": GOOD_URL})).status_code == 200
    for foreign in ("ZW-ZWZ-C07-G08", "ZW-ZWZ", "ZW", "NO-SUCH-AREA"):
        for method in ("get", "delete"):
            reply = await getattr(api, method)(f"/api/v1/areas/{foreign}/wecom", headers=community.headers)
            assert reply.status_code == 404, (foreign, method)
        reply = await api.put(f"/api/v1/areas/{foreign}/wecom", headers=community.headers,
                              json={"webhook_url": GOOD_URL})
        assert reply.status_code == 404, foreign
    assert await db.fetchval("SELECT count(*) FROM area_webhooks") == 2


@pytest.mark.parametrize("role", ["courier", "grid_member"])
async def test_couriers_and_grid_members_are_forbidden(api, login, role):
    caller = await login(role, "13922220000", [GRID])
    path = f"/api/v1/areas/{GRID}/wecom"
    assert (await api.get(path, headers=caller.headers)).status_code == 403
    assert (await api.put(path, headers=caller.headers, json={"webhook_url": GOOD_URL})).status_code == 403
    assert (await api.get(path)).status_code == 401


@pytest.mark.parametrize("name", ["http", "other host", "look-alike host", "extra param", "not a uuid", "userinfo",
                                  "port", "ip literal", "fragment"])
async def test_bad_webhook_urls_are_a_422_with_a_clear_code(api, admin, db, name):
    url, reason = BAD_URLS[name]
    reply = await api.put(f"/api/v1/areas/{GRID}/wecom", headers={**admin.headers, "Accept-Language": "en"},
                          json={"webhook_url": url})
    assert reply.status_code == 422, reply.text
    problem = reply.json()
    assert problem["code"] == "wecom_webhook_invalid"
    assert problem["title"] == "This is not a WeCom group robot webhook URL."
    assert problem["errors"] == [{"field": "webhook_url", "code": reason, "message": MESSAGES[reason][1]}]
    assert KEY not in reply.text
    assert await db.fetchval("SELECT count(*) FROM area_webhooks") == 0


async def test_unknown_fields_and_odd_area_codes_are_refused(api, admin):
    reply = await api.put(f"/api/v1/areas/{GRID}/wecom", headers=admin.headers,
                          json={"webhook_url": GOOD_URL, "secret": "x"})
    assert reply.status_code == 422 and reply.json()["code"] == "validation_failed"
    reply = await api.put(f"/api/v1/areas/{GRID}/wecom", headers=admin.headers, json={"webhook_url": 7})
    assert reply.status_code == 422
    reply = await api.get("/api/v1/areas/ZW%00/wecom", headers=admin.headers)
    assert reply.status_code in (400, 404, 422)
