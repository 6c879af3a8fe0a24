"""The shell every role shares, in a real browser: installable, served under a strict CSP, the WeChat
banner, a push shown by the service worker and a tapped notification routed to an open window, and the
outbox's decision table."""

from __future__ import annotations

import asyncio
import json
import re
import shutil

import httpx
import pytest
import pytest_asyncio

from gridrider import pwa_assets
from gridrider.clock import SystemClock
from gridrider.embedded import free_loopback_port
from tests.conftest import issue_code
from tests.pwa.conftest import CHROMIUM_ARGS, HERE, open_app, sign_in, wait_until, worker_ready

pytestmark = pytest.mark.slow  # a browser and an API process


async def test_the_app_is_installable(playwright, chromium_path, api_url, tmp_path, db, redis):
    # A profile on disk: Chromium never offers to install from an incognito-like context (Playwright's default).
    context = await playwright.chromium.launch_persistent_context(
        str(tmp_path / "profile"), executable_path=str(chromium_path), args=CHROMIUM_ARGS, headless=True,
        base_url=api_url, locale="zh-CN")
    try:
        page = await open_app(context)
        await worker_ready(page)
        cdp = await context.new_cdp_session(page)
        manifest = await cdp.send("Page.getAppManifest")
        assert manifest["errors"] == [], manifest["errors"]
        assert manifest["url"] == f"{api_url}/manifest.webmanifest"
        # Chromium's own verdict: manifest, icons (fetched and decoded), service worker, secure context.
        installability = await cdp.send("Page.getInstallabilityErrors")
        assert installability["installabilityErrors"] == []
    finally:
        await context.close()


async def test_pwa_files_carry_a_strict_csp_and_api_answers_do_not(api_url):
    async with httpx.AsyncClient(base_url=api_url) as client:
        index = await client.get("/")
        worker = await client.get("/sw.js")
        manifest = await client.get("/manifest.webmanifest")
        api = await client.get("/api/v1/privacy-notice")
    csp = index.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "require-trusted-types-for 'script'" in csp and "object-src 'none'" in csp
    for reply in (index, worker, manifest):
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert reply.headers["referrer-policy"] == "no-referrer"
        assert reply.headers["cache-control"] == "no-cache"
    assert worker.headers["content-type"].startswith("text/javascript")
    assert manifest.headers["content-type"].startswith("application/manifest+json")
    assert "content-security-policy" not in api.headers  # the API is untouched: JSON is never rendered


async def test_inside_wechat_the_rider_is_told_how_to_open_the_browser(browser, api_url, db, redis, shoot):
    wechat_ua = ("Mozilla/5.0 (Linux; Android 13; V2148A) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/116.0 "
                 "Mobile Safari/537.36 XWEB/1160065 MMWEBSDK/20231202 MicroMessenger/8.0.47.2560(0x28002F30) "
                 "WeChat/arm64 Weixin NetType/4G Language/zh_CN ABI/arm64")
    context = await browser.new_context(base_url=api_url, user_agent=wechat_ua, viewport={"width": 390, "height": 844},
                                        device_scale_factor=2, is_mobile=True, locale="zh-CN")
    try:
        page = await open_app(context, "/#/enrol/ABCD-EFGH-JKLM")
        banner = page.locator("#wechat")
        await banner.wait_for()
        assert "在浏览器打开" in await banner.inner_text()
        await shoot(page, "wechat-banner-zh-CN")
    finally:
        await context.close()


async def test_a_push_is_shown_and_a_tap_opens_the_incident_in_the_open_window(context, rider, api_url, shoot):
    code, phone = await rider()
    page = await sign_in(context, code, phone)
    await worker_ready(page)
    await context.grant_permissions(["geolocation", "notifications"])
    cdp = await context.new_cdp_session(page)
    registrations: list[dict] = []
    cdp.on("ServiceWorker.workerRegistrationUpdated", lambda event: registrations.extend(event["registrations"]))
    await cdp.send("ServiceWorker.enable")
    registration = await wait_until(lambda: _first(registrations))
    # The payload as domain/notifications.py makes it (the image an absolute URL on our public origin).
    payload = {"v": 1, "event": "incident_accepted", "incident_id": 42, "notification_id": 7,
               "title": "井盖缺失或破损 · 城南社区", "body": "已受理", "en": {"title": "Missing manhole cover",
                                                                      "body": "Accepted"},
               "tag": "incident-42", "url": "/#/incidents/42", "urgent": True,
               "image": f"{api_url}/api/v1/photos/1/thumb?exp=1&sig=x"}
    await cdp.send("ServiceWorker.deliverPushMessage", {
        "origin": api_url, "registrationId": registration["registrationId"], "data": json.dumps(payload)})
    shown = await wait_until(lambda: page.evaluate("""async () => {
        const reg = await navigator.serviceWorker.ready;
        return (await reg.getNotifications()).map((n) => ({title: n.title, body: n.body, tag: n.tag, data: n.data,
                                                           image: n.image, requireInteraction: n.requireInteraction}));
    }"""))
    assert shown == [{"title": "井盖缺失或破损 · 城南社区", "body": "已受理", "tag": "incident-42",
                      "data": {"url": "/#/incidents/42", "incident_id": 42},
                      "image": f"{api_url}/api/v1/photos/1/thumb?exp=1&sig=x", "requireInteraction": True}]

    # A headless browser cannot tap a system notification: call the worker's click routing directly.
    [worker] = context.service_workers
    routed = await worker.evaluate(
        "self.gridrider.routeNotificationClick(self.clients, '/#/incidents/42', self.location.origin)")
    assert routed["action"] == "focused" and routed["url"] == f"{api_url}/#/incidents/42"
    await page.wait_for_function("location.hash === '#/incidents/42'")
    # Not a place to be sent elsewhere: a foreign URL in a payload becomes the app's home.
    routed = await worker.evaluate(
        "self.gridrider.routeNotificationClick(self.clients, 'https://evil.example/#/x', self.location.origin)")
    assert routed["url"] == f"{api_url}/"


async def _first(items):
    return items[0] if items else None


async def test_the_outbox_decides_by_the_servers_answer(context):
    page = await open_app(context)
    decided = await page.evaluate("""async () => {
        const { decide } = await import('/js/outbox.js');
        const { retryAfterSeconds } = await import('/js/api.js');
        const at = 1_000_000;
        const d = (status, extra = {}) => decide({ status, code: 'x', message: 'm', errors: [], ...extra }, 0, at);
        return {
            ok: decide(null, 0, at),
            rate: d(429, { retryAfter: 7 }),
            timeout: d(408, { retryAfter: 2 }),
            unavailable: d(503, { retryAfter: 3 }),
            auth: d(401),
            refused: d(422),
            conflict: d(409),
            server: d(500),
            network: d(0),
            date: retryAfterSeconds(new Date(at + 30_000).toUTCString(), at),
        };
    }""")
    at = 1_000_000
    assert decided["ok"] == {"state": "sent"}
    assert decided["rate"] == {"state": "queued", "wait": "busy", "next_ms": at + 7000, "stop": True}
    assert decided["timeout"]["next_ms"] == at + 2000 and decided["unavailable"]["next_ms"] == at + 3000
    assert decided["auth"] == {"state": "queued", "wait": "auth", "stop": True}
    for refused in ("refused", "conflict"):
        assert decided[refused]["state"] == "failed" and decided[refused]["error"]["message"] == "m"
    for retried in ("server", "network"):
        assert decided[retried]["state"] == "queued" and decided[retried]["stop"] is True
        assert at + 1000 <= decided[retried]["next_ms"] <= at + 2000  # the first backoff, with jitter
    assert decided["server"]["wait"] == "server" and decided["network"]["wait"] == "network"
    assert decided["date"] == 30


@pytest_asyncio.fixture
async def deployable(pwa_settings, tmp_path, db, redis, demo):
    """The API in this process, serving a copy of pwa/ that the test may redeploy (a changed sw.js)."""
    import uvicorn

    from gridrider.app import create_app

    shell = tmp_path / "pwa"
    shutil.copytree(pwa_assets.PWA_DIR, shell)
    port = free_loopback_port()
    app = create_app(pwa_settings, pwa_dir=shell)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    yield f"http://127.0.0.1:{port}", shell
    server.should_exit = True
    await task


async def test_a_new_version_waits_for_the_riders_tap_then_replaces_the_old_cache(browser, deployable, rider):
    url, shell = deployable
    context = await browser.new_context(base_url=url, viewport={"width": 390, "height": 844}, locale="zh-CN",
                                        geolocation=HERE, permissions=["geolocation"])
    try:
        code, phone = await rider()
        page = await sign_in(context, code, phone)
        await worker_ready(page)
        [old] = await page.evaluate("caches.keys()")
        assert old.startswith("gridrider-shell-")

        # The next deploy: the shell changed, so its version did (as `python -m gridrider.pwa_assets` writes it).
        worker = shell / "sw.js"
        worker.write_text(re.sub(r"const VERSION = '[^']*';", "const VERSION = 'next';", worker.read_text()))
        await page.evaluate("navigator.serviceWorker.getRegistration().then((r) => r.update())")
        await page.wait_for_selector("#update-now")
        # Installed and waiting, not taking over: the rider may be in the middle of a report.
        assert await page.evaluate("navigator.serviceWorker.getRegistration().then((r) => Boolean(r.waiting))")
        assert sorted(await page.evaluate("caches.keys()")) == sorted([old, "gridrider-shell-next"])

        async with page.expect_event("load"):
            await page.click("#update-now")  # SKIP_WAITING → the new worker takes over → the page reloads
        await page.wait_for_selector("body[data-ready='true']")
        assert await wait_until(lambda: _equals(page.evaluate("caches.keys()"), ["gridrider-shell-next"]))
        assert await page.is_visible("#mark")  # still signed in, on the new version
    finally:
        await context.close()


async def _equals(awaitable, expected):
    return await awaitable == expected


async def test_each_role_reaches_its_own_home(context, db, pwa_settings):
    for role, phone, areas in (("grid_member", "13912340021", ["ZW-ZWZ-C02-G01"]),
                               ("supervisor", "13912340031", ["ZW-ZWZ-C02"])):
        code = await issue_code(db, pwa_settings, SystemClock(), role=role, phone=phone, areas=areas, name="测试")
        page = await open_app(context, f"/#/enrol/{code}")
        await page.fill("#phone4", phone[-4:])
        await page.check("#accept")
        await page.click("#sign-in")
        await page.wait_for_selector(f"body[data-role='{role}'] h1")
        assert await page.inner_text("main h1") == {"grid_member": "网格员", "supervisor": "总览"}[role]
        assert not await page.is_visible("#mark")  # the courier's app is the courier's
        await page.click("#header a.account")
        await page.click("#sign-out")
        await page.wait_for_selector("#sign-in")
        await page.close()
