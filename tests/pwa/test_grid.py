"""The grid member's app in a real browser against a real API: alerts turned on (and renewed when the VAPID
key changes), a push shown and its tap opening the incident, the live stream filling an open inbox (and
catching up with Last-Event-ID), accept → more time → resolve with a proof photo, a refused transfer
showing the server's words, then a transfer that goes through.

Incidents are made the way they are in production: a courier's report through the API, then the jobs a
worker would run (tests/jobs' `run_burst`: the report routed into an incident of the grid, its alert
recorded and streamed, its photos made into thumbnails), since no worker runs beside the test API.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
import uuid
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from PIL import Image
from shapely.geometry import shape

from gridrider.clock import SystemClock
from gridrider.db import notifications as db_notifications
from gridrider.domain import notifications
from gridrider.domain.demo_geography import zhangwu_demo_areas
from gridrider.jobs.queue import PHOTOS_QUEUE
from tests.conftest import SHARED_PHOTOS, issue_code
from tests.jobs.conftest import run_burst
from tests.pwa.conftest import deliver_push, open_app, stored, wait_until, worker_ready

pytestmark = pytest.mark.slow  # a browser and an API process

GRID = "ZW-ZWZ-C02-G01"
MY_OTHER_GRID = "ZW-ZWZ-C02-G02"
ELSEWHERE = "ZW-ZWZ-C02-G03"
GRID_PHONE = "13912340051"
_POINT = shape(next(a for a in zhangwu_demo_areas() if a.code == GRID).polygon).representative_point()
IN_GRID = {"lat": _POINT.y, "lon": _POINT.x}
STREET = sorted((SHARED_PHOTOS / "street").glob("*.jpg"))


# ── the people and the incidents ─────────────────────────────────────────────────────────────────────

async def grid_member_page(context, db, pwa_settings):
    """A grid member of two grids, signed in by opening their enrolment link, on the inbox."""
    code = await issue_code(db, pwa_settings, SystemClock(), role="grid_member", phone=GRID_PHONE,
                            areas=[GRID, MY_OTHER_GRID], name="网格员 王芳")
    page = await open_app(context, f"/#/enrol/{code}")
    await page.fill("#phone4", GRID_PHONE[-4:])
    await page.check("#accept")
    await page.click("#sign-in")
    await page.wait_for_selector("#inbox[data-count]")
    return page


async def courier_headers(api_url, db, pwa_settings, phone: str) -> dict[str, str]:
    code = await issue_code(db, pwa_settings, SystemClock(), role="courier", phone=phone, areas=["ZW-ZWZ"],
                            platform="meituan", name="骑手")
    async with httpx.AsyncClient(base_url=api_url) as client:
        reply = await client.post("/api/v1/sessions", json={"code": code, "phone_last4": phone[-4:],
                                                            "accept_privacy": True})
    assert reply.status_code == 201, reply.text
    return {"Authorization": f"Bearer {reply.json()['token']}"}


def photo_part(photo: Path) -> tuple[str, tuple[str, bytes, str]]:
    return ("photo", (photo.name, photo.read_bytes(), "image/jpeg"))


async def report(api_url, headers, *, category: str, photo: Path, note: str, north_m: float = 0) -> int:
    """A courier's report with a real photo, in the grid (north_m apart, so two of one kind need not merge)."""
    body = {"client_id": str(uuid.uuid4()), "category": category, "lat": IN_GRID["lat"] + north_m / 111_000,
            "lon": IN_GRID["lon"], "accuracy_m": 9.0, "position_source": "gps", "note": note,
            "captured_at": (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=4)).isoformat()}
    async with httpx.AsyncClient(base_url=api_url) as client:
        reply = await client.post("/api/v1/reports", headers=headers, files=[
            ("meta", ("meta.json", json.dumps(body), "application/json")), photo_part(photo)])
    assert reply.status_code == 201, reply.text
    return reply.json()["id"]


async def settle(pwa_settings) -> None:
    """What the workers would do next: route reports, alert (push, stream), make thumbnails."""
    await run_burst(pwa_settings, SystemClock())
    await run_burst(pwa_settings, SystemClock(), queue=PHOTOS_QUEUE)


async def incident_of(db, report_id: int) -> int:
    incident_id = await db.fetchval("SELECT incident_id FROM reports WHERE id = $1", report_id)
    assert incident_id is not None
    return incident_id


async def new_incident(api_url, db, pwa_settings, *, category="garbage_pileup", photo=0, north_m=0.0,
                       phone="13912340061", note="小区门口垃圾堆了三天") -> int:
    headers = await courier_headers(api_url, db, pwa_settings, phone)
    report_id = await report(api_url, headers, category=category, photo=STREET[photo], note=note, north_m=north_m)
    await settle(pwa_settings)
    return await incident_of(db, report_id)


async def incident_row(db, incident_id: int):
    return await db.fetchrow("SELECT state, complex_state, complex_reason, area_id, transfers_this_cycle "
                             "FROM incidents WHERE id = $1", incident_id)


# ── alerts ───────────────────────────────────────────────────────────────────────────────────────────

def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def fake_push_manager() -> str:
    """An init script standing in for PushManager in the page (a headless browser here reaches no push
    service): subscriptions with an FCM-shaped endpoint and real P-256 keys, kept in localStorage like a
    browser keeps them, and every subscribe() call recorded with the key it was given."""
    public = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    keys = {"p256dh": _b64url(public), "auth": _b64url(os.urandom(16))}
    return """(() => {
      const KEYS = __KEYS__;
      const KEY = 'test.push';
      const wrap = (json) => json && {
        endpoint: json.endpoint, expirationTime: null, toJSON: () => json,
        unsubscribe: async () => { localStorage.removeItem(KEY); return true; },
      };
      PushManager.prototype.getSubscription = async function () {
        return wrap(JSON.parse(localStorage.getItem(KEY)));
      };
      PushManager.prototype.subscribe = async function (options) {
        if (localStorage.getItem(KEY)) throw new DOMException('subscribed under another key', 'InvalidStateError');
        const calls = JSON.parse(localStorage.getItem('test.subscribe') || '[]');
        calls.push(btoa(String.fromCharCode(...new Uint8Array(options.applicationServerKey))));
        localStorage.setItem('test.subscribe', JSON.stringify(calls));
        const endpoint = `https://fcm.googleapis.com/fcm/send/test-${calls.length}`;
        const json = { endpoint, expirationTime: null, keys: KEYS };
        localStorage.setItem(KEY, JSON.stringify(json));
        return wrap(json);
      };
    })();""".replace("__KEYS__", json.dumps(keys))


async def subscriptions(db):
    return await db.fetch("SELECT endpoint, vapid_key_id FROM push_subscriptions ORDER BY id")


async def test_alerts_are_turned_on_with_the_servers_key_and_renewed_when_its_key_changes(
    context, db, pwa_settings, api_url, shoot,
):
    await context.add_init_script(fake_push_manager())
    await context.grant_permissions(["geolocation", "notifications"])
    page = await grid_member_page(context, db, pwa_settings)
    card = page.locator("#push[data-state='off']")
    await card.wait_for()
    assert "隐患派到你的网格时第一时间提醒" in await card.inner_text()  # the reason, before the question
    await shoot(page, "grid-alerts-ask-zh-CN")
    await page.click("#push-on")
    await page.wait_for_selector("#push[data-state='on']", state="attached")
    assert await page.is_hidden("#push")  # once on, the inbox stops asking

    async with httpx.AsyncClient(base_url=api_url) as client:
        key = (await client.get("/api/v1/push/key", headers=await _bearer(page))).json()
    [row] = await wait_until(lambda: subscriptions(db))
    assert (row["endpoint"], row["vapid_key_id"]) == ("https://fcm.googleapis.com/fcm/send/test-1", key["key_id"])
    calls = await page.evaluate("JSON.parse(localStorage.getItem('test.subscribe'))")
    # The browser was given the server's public key (base64url from the API, the raw 65 bytes to PushManager).
    assert [base64.b64decode(c) for c in calls] == [base64.urlsafe_b64decode(key["application_server_key"] + "==")]
    assert await stored(page, "pushKeyId") == key["key_id"]

    # The server's VAPID key was rotated since (the phone kept the id it subscribed under): the next start
    # subscribes afresh with the current key, and the dead endpoint is dropped from the server.
    await _kv_set(page, "pushKeyId", "retired-key")
    await page.reload()
    await page.wait_for_selector("body[data-ready='true']")
    await page.goto("/#/alerts")
    await page.wait_for_selector("#push[data-state='on'] #push-off")
    rows = await wait_until(lambda: _endpoints_are(db, ["https://fcm.googleapis.com/fcm/send/test-2"]))
    assert rows
    assert await wait_until(lambda: _kv_is(page, "pushKeyId", key["key_id"]))
    await shoot(page, "grid-alerts-on-zh-CN")

    await page.click("#push-off")
    await page.wait_for_selector("#push[data-state='off'] #push-on")
    assert await subscriptions(db) == []


async def test_with_alerts_refused_the_member_is_told_how_to_allow_them(context, db, pwa_settings):
    # Never granted: headless Chromium answers "denied", as a phone does once the member said no.
    page = await grid_member_page(context, db, pwa_settings)
    await page.click("#push[data-state='blocked'] a")  # the inbox: one line, to the page that says how
    blocked = page.locator("#push[data-state='blocked']")
    await page.wait_for_selector("#push[data-state='blocked'] h2")
    assert "网站设置" in await blocked.inner_text() and not await page.locator("#push-on").count()


async def _bearer(page) -> dict[str, str]:
    return {"Authorization": f"Bearer {(await stored(page, 'session'))['token']}"}


async def _kv_is(page, key: str, value) -> bool:
    return await stored(page, key) == value


async def _kv_set(page, key: str, value) -> None:
    await page.evaluate("""async ([key, value]) => {
        const { kvSet } = await import('/js/idb.js');
        await kvSet(key, value);
    }""", [key, value])


async def _endpoints_are(db, expected: list[str]):
    rows = await subscriptions(db)
    return rows if [r["endpoint"] for r in rows] == expected else None


# ── a push, and its tap ─────────────────────────────────────────────────────────────────────────────

async def test_a_push_shows_a_notification_and_its_tap_opens_the_incident(context, db, pwa_settings, api_url):
    page = await grid_member_page(context, db, pwa_settings)
    await worker_ready(page)
    await context.grant_permissions(["geolocation", "notifications"])
    incident_id = await new_incident(api_url, db, pwa_settings, category="flooding", note="地下通道积水")
    # The very message the notify job sends this grid for the new incident.
    notification_id = await db.fetchval("SELECT id FROM notifications WHERE incident_id = $1 AND event = $2",
                                        incident_id, notifications.INCIDENT_REACHED_GRID)
    payload = notifications.message(await db_notifications.notification_context(db, notification_id))
    assert payload["url"] == f"/#/incidents/{incident_id}"

    shown = await deliver_push(context, page, payload)
    assert [(n["title"], n["tag"], n["data"]["url"]) for n in shown] == [
        (payload["title"], payload["tag"], f"/#/incidents/{incident_id}")]
    assert "道路积水" in shown[0]["title"]

    await page.goto("/#/alerts")  # somewhere else in the app when the member taps the notification
    [worker] = context.service_workers
    routed = await worker.evaluate(
        "(url) => self.gridrider.routeNotificationClick(self.clients, url, self.location.origin)",
        shown[0]["data"]["url"])
    assert routed["action"] == "focused"
    await page.wait_for_url(lambda url: url.endswith(f"/#/incidents/{incident_id}"))
    await page.wait_for_selector("#state[data-state='dispatched']")
    assert "道路积水" in await page.inner_text("#incident h1")
    assert await page.is_visible("#act-accept")


# ── the live stream ─────────────────────────────────────────────────────────────────────────────────

async def test_the_live_stream_brings_new_incidents_into_the_open_inbox_and_catches_up_after_a_pause(
    context, db, pwa_settings, api_url,
):
    streams: list = []
    context.on("request", lambda r: streams.append(r) if "/api/v1/events" in r.url else None)
    refused: list = []

    async def unavailable_once(route):
        # The server's answer when its Redis is down: the app must try again later, not give up.
        if refused:
            await route.continue_()
            return
        refused.append(route.request)
        await route.fulfill(status=503, content_type="application/problem+json",
                            body=json.dumps({"title": "live stream off", "status": 503}))

    await context.route("**/api/v1/events", unavailable_once)
    page = await grid_member_page(context, db, pwa_settings)
    await page.wait_for_selector("#live[data-state='waiting']")
    await page.wait_for_selector("#live[data-state='open']", timeout=15000)  # after 3–6 s of backoff
    assert await page.get_attribute("#inbox", "data-count") == "0"
    await page.evaluate("window.notReloaded = true")

    first = await new_incident(api_url, db, pwa_settings)
    await page.wait_for_selector(f"#inbox [data-incident='{first}']")

    # The app goes to the background (the stream is closed), a hazard arrives meanwhile, the app comes back:
    # the stream reconnects with Last-Event-ID and the server replays what it missed.
    await _visibility(page, "hidden")
    await page.wait_for_selector("#live[data-state='paused']")
    second = await new_incident(api_url, db, pwa_settings, category="streetlight_out", photo=1, phone="13912340062",
                                note="路灯不亮")
    await page.wait_for_timeout(500)
    assert not await page.locator(f"#inbox [data-incident='{second}']").count()
    await _visibility(page, "visible")
    await page.wait_for_selector(f"#inbox [data-incident='{second}']")
    assert await page.evaluate("window.notReloaded === true")

    missed_from = await db.fetchval("SELECT id FROM notifications WHERE incident_id = $1", first)
    assert [r.headers.get("last-event-id") for r in streams] == [None, None, str(missed_from)]
    for request in streams:
        assert request.url.endswith("/api/v1/events")  # never a token in the URL
        assert (await request.all_headers())["authorization"].startswith("Bearer ")


async def _visibility(page, state: str) -> None:
    """What the browser reports when the phone shows another app, or this one again."""
    await page.evaluate("""(state) => {
        Object.defineProperty(document, 'visibilityState', { value: state, configurable: true });
        document.dispatchEvent(new Event('visibilitychange'));
    }""", state)


async def test_server_sent_events_are_parsed_across_any_chunk_boundary(context):
    page = await open_app(context)
    parsed = await page.evaluate("""async () => {
        const { sseParser } = await import('/js/views/grid/live.js');
        const stream = 'retry: 3000\\r\\n\\r\\n: ping\\n\\nid: 7\\nevent: incident_reached_grid\\ndata: {"incident_id":'
            + ' 42}\\n\\nid: 8\\rdata: a\\rdata: b\\r\\r';
        const out = [];
        for (let size = 1; size <= stream.length; size += 1) {  // every way of cutting it into chunks
            const parse = sseParser();
            const got = [];
            for (let i = 0; i < stream.length; i += size) got.push(...parse(stream.slice(i, i + size)));
            out.push(JSON.stringify(got));
        }
        return [...new Set(out)];
    }""")
    assert len(parsed) == 1
    assert json.loads(parsed[0]) == [
        {"event": "message", "data": None, "id": None, "retry": 3000},
        {"event": "message", "data": None, "id": None, "retry": None},
        {"event": "incident_reached_grid", "data": '{"incident_id": 42}', "id": "7", "retry": None},
        {"event": "message", "data": "a\nb", "id": "8", "retry": None},
    ]


# ── working an incident ─────────────────────────────────────────────────────────────────────────────

async def test_a_grid_member_accepts_asks_for_more_time_and_resolves_with_a_proof_photo(
    context, db, pwa_settings, api_url, shoot,
):
    page = await grid_member_page(context, db, pwa_settings)
    incident_id = await new_incident(api_url, db, pwa_settings, category="flooding", photo=2,
                                     note="地下通道积水，电动车过不去")
    await new_incident(api_url, db, pwa_settings, photo=3, north_m=40, phone="13912340063")
    await new_incident(api_url, db, pwa_settings, category="streetlight_out", photo=4, north_m=-60, phone="13912340064",
                       note="3 号楼前路灯不亮")
    await page.wait_for_selector("#inbox[data-count='3']")
    cards = page.locator("#inbox [data-incident]")
    first = cards.first
    assert await first.get_attribute("data-incident") == str(incident_id)  # life-safety first
    assert await first.get_attribute("data-life") == "true"
    # 1 hour to accept a life-safety incident, counting down since it was routed a moment ago.
    assert re.fullmatch(r"受理期限 · 还剩 5\d 分钟", await first.locator(".left").inner_text())
    assert await first.locator(".left").get_attribute("data-urgency") == "ok"
    await shoot(page, "grid-inbox-zh-CN")

    await first.click()
    await page.wait_for_selector("#state[data-state='dispatched']")
    text = await page.inner_text("#incident")
    assert "地下通道积水" in text  # the rider's note
    assert "139****0061" in text and "13912340061" not in text  # a grid member sees phones masked
    assert await page.locator(".strip-photos img").count() == 1
    assert await page.get_attribute(".maplinks a", "href") == (
        f"https://uri.amap.com/marker?position={IN_GRID['lon']:.6f},{IN_GRID['lat']:.6f}&coordinate=wgs84"
        f"&name={'%E9%81%93%E8%B7%AF%E7%A7%AF%E6%B0%B4'}&callnative=1")
    await shoot(page, "grid-incident-zh-CN")
    await page.locator("#history").scroll_into_view_if_needed()
    await shoot(page, "grid-incident-reports-zh-CN")

    await page.click("#act-accept")
    await page.wait_for_selector("#state[data-state='accepted']")
    assert (await incident_row(db, incident_id))["state"] == "accepted"

    await page.click("#act-request_complex")
    await page.click("#confirm")  # no reason yet: said on the phone, nothing sent
    assert "请选择或填写原因" in await page.inner_text("[data-sheet='request_complex'] .error")
    await page.fill("#complex-reason", "需要市政排水队抽水，一周内排不完")
    await page.click("#confirm")
    await page.wait_for_selector("#complex")
    row = await incident_row(db, incident_id)
    assert (row["complex_state"], row["complex_reason"]) == ("requested", "需要市政排水队抽水，一周内排不完")
    assert not await page.locator("#act-request_complex").count()  # asked once

    await page.click("#act-resolve")
    await page.click("#confirm")
    assert "请拍一张处理后的照片" in await page.inner_text("[data-sheet='resolve'] .error")
    proof = STREET[5]
    await page.set_input_files("#proof-camera", str(proof))
    await page.wait_for_selector("#proof-photos figure img")
    assert "→" in await page.inner_text("#proof-photos figcaption")  # 已压缩 … → …
    await page.fill("#act-note", "已抽水，通道恢复通行")
    await shoot(page, "grid-resolve-zh-CN")
    await page.click("#confirm")
    await page.wait_for_selector("#state[data-state='resolved']")
    assert (await incident_row(db, incident_id))["state"] == "resolved"
    photos = await db.fetch("SELECT role, bytes, width, height FROM photos WHERE incident_id = $1 AND role = 'proof'",
                            incident_id)
    width, height = Image.open(proof).size
    # Shrunk and re-encoded on the phone (its EXIF, GPS included, never left it), not the camera's file.
    assert len(photos) == 1 and photos[0]["bytes"] != proof.stat().st_size
    assert (photos[0]["width"], photos[0]["height"]) == (width, height)
    history = [r["kind"] for r in await db.fetch(
        "SELECT kind FROM incident_events WHERE incident_id = $1 ORDER BY id", incident_id)]
    assert history == ["created", "accept", "request_complex", "resolve"]
    note = await db.fetchval("SELECT data->>'note' FROM incident_events WHERE incident_id = $1 AND kind = 'resolve'",
                             incident_id)
    assert note == "已抽水，通道恢复通行"
    assert not await page.locator("#actions button").count()  # nothing left to do

    # The same two screens in English.
    await page.click("#lang-switch")
    await page.goto("/#/")
    await page.wait_for_selector("#inbox[data-count='2']")
    assert "left" in await page.locator("#inbox .left").first.inner_text()
    await shoot(page, "grid-inbox-en")
    await page.locator("#inbox [data-incident]").first.click()
    await page.wait_for_selector("#act-accept")
    await shoot(page, "grid-incident-en")


async def test_a_refused_transfer_shows_the_servers_words_then_transfer_reject_and_merge_hand_incidents_on(
    context, db, pwa_settings, api_url,
):
    page = await grid_member_page(context, db, pwa_settings)
    moved = await new_incident(api_url, db, pwa_settings)
    rejected = await new_incident(api_url, db, pwa_settings, category="illegal_structure", photo=1,
                                  phone="13912340062", note="违章搭建的棚子")
    duplicate = await new_incident(api_url, db, pwa_settings, category="streetlight_out", photo=2, phone="13912340063",
                                   note="路灯不亮")
    # The same lamp reported again from across the road: too far apart (80 m) for the pipeline to merge them.
    kept = await new_incident(api_url, db, pwa_settings, category="streetlight_out", photo=3, north_m=80,
                              phone="13912340064", note="这盏路灯一直不亮")
    await page.wait_for_selector("#inbox[data-count='4']")

    await page.click(f"#inbox [data-incident='{moved}']")
    await page.click("#act-transfer")
    assert await page.locator(f"[data-sheet='transfer'] [data-grid='{MY_OTHER_GRID}']").count() == 1
    # The grids nearest the hazard, named, nearest first: one tap fills the code in.
    nearest = page.locator("#transfer-targets [data-grid]")
    await nearest.first.wait_for()
    assert "相距" in await nearest.first.inner_text()
    first = await nearest.first.get_attribute("data-grid")
    await nearest.first.click()
    assert await page.input_value("#grid-code") == first
    await page.fill("#grid-code", "ZW-NOWHERE-G99")
    await page.click("#confirm")
    refusal = page.locator("[data-sheet='transfer'] .error")
    await refusal.wait_for()
    assert "找不到该网格" in await refusal.inner_text()  # the server's field message, as it said it
    assert (await incident_row(db, moved))["transfers_this_cycle"] == 0
    await page.fill("#grid-code", ELSEWHERE)
    await page.fill("#act-note", "在隔壁网格的路段")
    await page.click("#confirm")
    await page.wait_for_url(lambda url: url.endswith("/#/"))  # no longer mine: back to the inbox
    await page.wait_for_selector("#inbox[data-count='3']")
    row = await incident_row(db, moved)
    assert row["state"] == "dispatched" and row["transfers_this_cycle"] == 1
    assert row["area_id"] == await db.fetchval("SELECT id FROM areas WHERE code = $1", ELSEWHERE)

    await page.click(f"#inbox [data-incident='{rejected}']")
    await page.click("#act-reject")
    await page.check("[data-sheet='reject'] input[value='out_of_scope']")
    await page.click("#confirm")
    await page.wait_for_selector("#inbox[data-count='2']")
    assert (await incident_row(db, rejected))["state"] == "rejected"
    assert await db.fetchval("SELECT reject_reason FROM incidents WHERE id = $1", rejected) == "out_of_scope"

    await page.click(f"#inbox [data-incident='{duplicate}']")
    await page.click("#act-merge")
    target = page.locator(f"#merge-targets input[value='{kept}']")
    await target.check()
    assert await page.locator("#merge-targets input").count() == 1  # only open incidents of the same kind
    await page.click("#confirm")
    await page.wait_for_selector("#inbox[data-count='1']")
    assert await db.fetchval("SELECT merged_into_id FROM incidents WHERE id = $1", duplicate) == kept
    assert await db.fetchval("SELECT report_count FROM incidents WHERE id = $1", kept) == 2
