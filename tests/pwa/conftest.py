"""The PWA in a real headless Chromium against a real `gridrider api` process, PostgreSQL and Redis.

- Chromium is Debian's (`/usr/bin/chromium`, installed by `make install-test` when it can); Playwright's
  own browser downloads are never used. Without it these tests FAIL with the fix in the message: a CI
  that silently skipped the browser tests would pass with a broken app.
- The API runs as `python -m gridrider api` on a free port with this worker's database and Redis (the
  same URLs and secrets as the fixtures), so codes made by `issue_code` work there and the tests can
  count rows the browser caused.
- Each test gets a fresh browser context (its own IndexedDB, service worker and caches), a phone-sized
  viewport, zh-CN, and geolocation granted at a point in the Zhangwu demo area.
- Screenshots go to tests/pwa/artifacts/ (ignored by git), named by test and language.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from gridrider.clock import SystemClock
from tests.conftest import SHARED_PHOTOS, issue_code, make_settings, running_api

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).parent / "artifacts"
# A street in the Zhangwu demo town (彰武镇), inside the demo areas the riders belong to.
HERE = {"latitude": 42.3838, "longitude": 122.5372, "accuracy": 8}
PHONE_VIEWPORT = {"width": 390, "height": 844}
DESK_VIEWPORT = {"width": 1280, "height": 800}


@pytest.fixture(scope="session")
def pwa_settings(session_tmp, database_url, redis_url, vapid_pem):
    return make_settings(session_tmp / "pwa-api", database_url, redis_url, vapid_pem)


@pytest.fixture(scope="session")
def api_url(pwa_settings, session_tmp) -> Iterator[str]:
    """`gridrider api` in a process of its own, for the whole session (tests empty the tables between them)."""
    with running_api(pwa_settings, session_tmp / "pwa-api", session_tmp / "pwa-api.log") as (url, _pid):
        yield url


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        pytest.fail(f"the PWA tests need Debian's chromium at {CHROMIUM}: run `make install-test` as root, or "
                    "`apt-get install chromium` (never `playwright install`)")
    return CHROMIUM


@pytest_asyncio.fixture(scope="session")
async def playwright(chromium_path) -> AsyncIterator:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        yield pw


@pytest_asyncio.fixture(scope="session")
async def browser(playwright, chromium_path) -> AsyncIterator:
    chromium = await playwright.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS, headless=True)
    yield chromium
    await chromium.close()


class Console:
    """What the page said that a user would never see: uncaught errors and CSP / Trusted Types refusals."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def watch(self, page) -> None:
        page.on("pageerror", lambda exc: self.problems.append(f"pageerror: {exc}"))
        page.on("console", self._console)

    def _console(self, message) -> None:
        text = message.text
        if message.type in ("error", "warning") and ("Content Security Policy" in text or "Trusted" in text
                                                     or "service worker not registered" in text):
            self.problems.append(f"console: {text}")


@pytest_asyncio.fixture
async def context(browser, api_url, db, redis, demo):
    """A fresh phone: its own storage and service worker, zh-CN, location allowed and set."""
    ctx = await browser.new_context(
        base_url=api_url, viewport=PHONE_VIEWPORT, device_scale_factor=2, is_mobile=True, has_touch=True,
        locale="zh-CN", geolocation=HERE, permissions=["geolocation"], service_workers="allow",
    )
    ctx.set_default_timeout(15000)
    ctx.console = Console()
    ctx.on("page", ctx.console.watch)
    yield ctx
    await ctx.close()
    assert not ctx.console.problems, ctx.console.problems


@pytest_asyncio.fixture
async def desk_context(browser, api_url, db, redis, demo):
    """A fresh desktop browser (1280×800, zh-CN): the supervisor's screen. Downloads are kept for reading."""
    ctx = await browser.new_context(base_url=api_url, viewport=DESK_VIEWPORT, locale="zh-CN", service_workers="allow",
                                    accept_downloads=True)
    ctx.set_default_timeout(15000)
    ctx.console = Console()
    ctx.on("page", ctx.console.watch)
    yield ctx
    await ctx.close()
    assert not ctx.console.problems, ctx.console.problems


@pytest.fixture
def rider(db, pwa_settings):
    """rider(phone) → (code, phone): a courier enrolled the way an admin's CLI does it, in the demo town."""

    async def make(phone: str = "13912340001") -> tuple[str, str]:
        # The real clock: the API process judges the code's expiry by its own (system) clock, not the fixtures'.
        code = await issue_code(db, pwa_settings, SystemClock(), role="courier", phone=phone, areas=["ZW-ZWZ"],
                                platform="meituan", name="骑手 测试")
        return code, phone

    return make


@pytest.fixture(scope="session")
def photo_path() -> Path:
    folder = SHARED_PHOTOS / "street"
    photos = sorted(folder.glob("*.jpg")) if folder.is_dir() else []
    if not photos:
        pytest.fail(f"these tests need the shared real photos at {folder} (see ../shared/photos/README.md)")
    return photos[0]


@pytest.fixture
def shoot(request):
    """shoot(page, name): what the phone shows (full=True: the whole page) in tests/pwa/artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)

    async def take(page, name: str, *, full: bool = False) -> Path:
        path = ARTIFACTS / f"{name}.png"
        await page.screenshot(path=str(path), full_page=full)
        return path

    return take


async def wait_until(check, timeout_s: float = 10.0, interval_s: float = 0.1):
    """Poll an async `check` until it returns something truthy; its last value either way."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = await check()
        if value or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(interval_s)


async def open_app(context, path: str = "/"):
    page = await context.new_page()
    await page.goto(path)
    await page.wait_for_selector("body[data-ready='true']")
    return page


async def sign_in(context, code: str, phone: str):
    """Open the enrolment link as a rider would (the URL the enrolment API returns), then sign in."""
    page = await open_app(context, f"/#/enrol/{code}")
    assert await page.input_value("#code") == code
    await page.fill("#phone4", phone[-4:])
    await page.check("#accept")
    await page.click("#sign-in")
    await page.wait_for_selector("#mark")
    return page


async def stored(page, key: str):
    """A value the app keeps in its IndexedDB key-value store (session, categories, lang…)."""
    return await page.evaluate("""(key) => new Promise((resolve, reject) => {
        const open = indexedDB.open('gridrider');
        open.onsuccess = () => {
            const req = open.result.transaction('kv').objectStore('kv').get(key);
            req.onsuccess = () => { resolve(req.result ?? null); open.result.close(); };
            req.onerror = () => reject(req.error);
        };
        open.onerror = () => reject(open.error);
    })""", key)


async def ready_for_offline(page) -> None:
    """The shell precached and the categories kept: what a rider's phone has after one online start."""
    await worker_ready(page)
    await wait_until(lambda: stored(page, "categories"))


async def worker_ready(page) -> None:
    """Wait until the service worker controls the page (the shell is then precached)."""
    await page.evaluate("""async () => {
        await navigator.serviceWorker.ready;
        if (!navigator.serviceWorker.controller) {
            await new Promise((resolve) => navigator.serviceWorker.addEventListener('controllerchange', resolve));
        }
    }""")


async def mark_and_finish(page, *, category: str, photo: Path | None = None, note: str | None = None,
                          send: bool = True) -> str:
    """Tap the mark button, wait for the position, add a photo, pick a category, send. The draft's id."""
    await page.click("#mark")
    await page.wait_for_selector("#position [data-locating='done']")
    draft_id = page.url.rsplit("/", 1)[-1]
    if photo is not None:
        await page.set_input_files("#camera", str(photo))
        await page.wait_for_selector("#photos figure img")
    await page.click(f"#categories [data-code='{category}']")
    if note:
        await page.fill("#note", note)
    if send:
        await page.click("#send")
        await page.wait_for_selector("#mark")
    return draft_id


async def deliver_push(context, page, payload: dict, timeout_s: float = 10.0) -> list[dict]:
    """A push message delivered to the page's service worker through CDP (as a push service would, which
    this machine cannot reach), then the notifications the worker shows (`registration.getNotifications()`).
    Needs the notifications permission granted to the context."""
    cdp = await context.new_cdp_session(page)
    registrations: list[dict] = []
    cdp.on("ServiceWorker.workerRegistrationUpdated", lambda event: registrations.extend(event["registrations"]))
    await cdp.send("ServiceWorker.enable")

    async def registered():
        return registrations[0] if registrations else None

    registration = await wait_until(registered)
    origin = page.url.split("/#", 1)[0].rstrip("/")
    await cdp.send("ServiceWorker.deliverPushMessage", {
        "origin": origin, "registrationId": registration["registrationId"], "data": json.dumps(payload)})
    return await wait_until(lambda: page.evaluate("""async () => {
        const reg = await navigator.serviceWorker.ready;
        return (await reg.getNotifications()).map((n) => ({
            title: n.title, body: n.body, tag: n.tag, data: n.data, image: n.image,
            requireInteraction: n.requireInteraction }));
    }"""), timeout_s)
