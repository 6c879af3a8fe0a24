"""The supervisor app in a real browser on a desk-sized screen against a real API: the dashboard shows what
the API answers; an unrouted incident dispatched to a grid; a redemption approved; the rider ranking;
incidents.csv downloaded with the Bearer header; complex requests and appeals listed."""

from __future__ import annotations

import datetime as dt

import pytest

from gridrider.clock import SystemClock
from gridrider.domain import redemptions
from gridrider.domain.demo_geography import zhangwu_demo_areas
from gridrider.domain.geo import cell_of
from gridrider.domain.points import local_day
from tests.conftest import issue_code
from tests.pwa.conftest import PHONE_VIEWPORT, open_app, stored, wait_until

GRID = "ZW-ZWZ-C02-G01"
COMMUNITY = "ZW-ZWZ-C02"
SUPERVISOR_PHONE = "13800000091"


def _inside(code: str) -> tuple[float, float]:
    """(lat, lon) of the mean of an area's outline vertices: inside the demo's convex grid cells."""
    ring = next(a.polygon for a in zhangwu_demo_areas() if a.code == code)["coordinates"][0][:-1]
    return sum(p[1] for p in ring) / len(ring), sum(p[0] for p in ring) / len(ring)


GRID_INSIDE = _inside(GRID)

pytestmark = pytest.mark.slow  # a browser and an API process


async def _enrol(db, settings, role: str, phone: str, areas: list[str], platform: str | None = None) -> str:
    # The real clock: the API process judges the code's expiry by its own clock, not the fixtures'.
    return await issue_code(db, settings, SystemClock(), role=role, phone=phone, areas=areas, platform=platform,
                            name=f"测试 {role}")


async def _supervisor_page(desk_context, db, pwa_settings):
    """A street supervisor of the demo town, signed in by opening the enrolment link, on the dashboard."""
    code = await _enrol(db, pwa_settings, "supervisor", SUPERVISOR_PHONE, ["ZW-ZWZ"])
    page = await open_app(desk_context, f"/#/enrol/{code}")
    await page.fill("#phone4", SUPERVISOR_PHONE[-4:])
    await page.check("#accept")
    await page.click("#sign-in")
    await page.wait_for_selector("#fig-incidents")
    return page


async def _incident(db, state: str, area: str, **columns) -> int:
    """An incident in the demo town as the pipeline and the workflow would leave it in `state`."""
    now = SystemClock().now()
    lat, lon = GRID_INSIDE
    values = {"category": "flooding", "lat": lat, "lon": lon, "cell": cell_of(lat, lon), "state": state,
              "last_captured_at": now - dt.timedelta(hours=1), "created_at": now - dt.timedelta(hours=1), **columns}
    names = list(values)
    placeholders = ", ".join(f"${n}" for n in range(1, len(names) + 1))
    return await db.fetchval(
        f"INSERT INTO incidents ({', '.join(names)}, area_id) VALUES ({placeholders}, "
        f"(SELECT id FROM areas WHERE code = ${len(names) + 1})) RETURNING id", *values.values(), area)


async def _rider_with_points(db, settings, incident_id: int, points: int) -> int:
    """A courier of the demo town with `points` earned this month as an incident's first reporter."""
    await _enrol(db, settings, "courier", "13912349901", ["ZW-ZWZ"], platform="eleme")
    member_id = await db.fetchval("SELECT id FROM members WHERE phone = '13912349901'")
    now = SystemClock().now()
    await db.execute(
        """INSERT INTO points_ledger (member_id, reason, amount, source_kind, source_id, counts_toward_cap,
                                      counts_toward_ranking, local_day, created_at)
           VALUES ($1, 'first_report', $2, 'incident', $3, true, true, $4, $5)""",
        member_id, points, incident_id, local_day(now), now)
    return member_id


async def test_a_supervisor_sees_figures_dispatches_approves_ranks_and_exports(desk_context, db, pwa_settings, shoot):
    now = SystemClock().now()
    unrouted = await _incident(db, "unrouted", COMMUNITY, dispatch_due_at=now - dt.timedelta(minutes=30))
    dispatched = await _incident(db, "dispatched", GRID, dispatched_at=now, reached_grid_at=now,
                                 accept_due_at=now + dt.timedelta(hours=20))
    complex_case = await _incident(db, "accepted", GRID, dispatched_at=now, accepted_at=now, complex_state="requested",
                                   complex_reason="需要挖开路面", resolve_due_at=now + dt.timedelta(days=2))
    appealed = await _incident(db, "rejected", GRID, reject_reason="not_a_hazard", appeal_state="pending")
    rider_id = await _rider_with_points(db, pwa_settings, dispatched, 40)
    reward_id = await db.fetchval(
        "INSERT INTO rewards (name_zh, name_en, cost, stock) VALUES ('头盔', 'Helmet', 30, 3) RETURNING id")
    async with db.acquire() as conn, conn.transaction():
        redemption_id = await redemptions.request(conn, member_id=rider_id, reward_id=reward_id, now=now)

    page = await _supervisor_page(desk_context, db, pwa_settings)

    # ── the dashboard shows the API's own figures ──
    token = (await stored(page, "session"))["token"]
    figures = await page.evaluate("""async (token) => (await fetch('/api/v1/dashboard',
        {headers: {Authorization: 'Bearer ' + token}})).json()""", token)
    assert figures["incidents"] == 4 and figures["overdue"]["count"] >= 1
    assert await page.inner_text("#fig-incidents") == str(figures["incidents"])
    assert await page.inner_text("#fig-overdue") == str(figures["overdue"]["count"])
    assert await page.inner_text("#fig-riders") == str(figures["riders"]["active"])
    for state, count in figures["by_state"].items():
        assert await page.get_attribute(f"#chart-states [data-key='{state}']", "data-value") == str(count)
    assert await page.locator(f"#overdue [data-incident='{unrouted}'] a[href='#/incidents/{unrouted}']").count() == 1
    assert await page.locator("#map circle.hot").count() == len(figures["hotspots"]) >= 1
    await shoot(page, "supervisor-dashboard-zh-CN", full=True)
    await page.click("#lang-switch")
    await page.wait_for_selector("#nav a:has-text('Overview')")
    await page.wait_for_selector("#fig-incidents")
    assert "Incidents by state" in await page.inner_text("main")
    await shoot(page, "supervisor-dashboard-en", full=True)
    await page.click("#lang-switch")
    await page.wait_for_selector("#nav a:has-text('总览')")
    await _outlines_are_drawn_from_the_areas_polygons(page, shoot)

    # ── an unrouted incident dispatched to a grid; the complex-case request is listed beside it ──
    await page.click("#nav a[href='#/incidents']")
    card = page.locator(f"#unrouted [data-incident='{unrouted}']")
    await page.locator(f"#complex [data-incident='{complex_case}']").wait_for()
    await shoot(page, "supervisor-dispatch-zh-CN", full=True)
    await card.locator("select").select_option(GRID)
    await card.locator("[data-action='dispatch']").click()
    await card.locator(".ok").wait_for()
    row = await db.fetchrow("SELECT i.state, a.code FROM incidents i JOIN areas a ON a.id = i.area_id WHERE i.id = $1",
                            unrouted)
    assert (row["state"], row["code"]) == ("dispatched", GRID)
    await card.locator(f"a[href='#/incidents/{unrouted}']").click()
    await page.wait_for_selector(".incident .chip[data-state='dispatched']")
    assert "派发" in await page.inner_text(".incident .ledger")
    await page.go_back()
    complex_card = page.locator(f"#complex [data-incident='{complex_case}']")
    await complex_card.wait_for()
    assert "需要挖开路面" in await complex_card.inner_text()

    # ── the appeal waits in the review queue; dismissing it first asks for the reason ──
    await page.click("#nav a[href='#/review']")
    await page.locator(f"#appeals [data-incident='{appealed}'] [data-action='dismiss_appeal']").click()
    await page.locator(f"#appeals [data-incident='{appealed}'] [data-reason='dismiss_appeal']").wait_for()
    await shoot(page, "supervisor-review-zh-CN", full=True)

    # ── a redemption approved: the rider's points are debited by the server ──
    await page.click("#nav a[href='#/redemptions']")
    item = page.locator(f"[data-redemption='{redemption_id}']")
    await item.locator("[data-action='approve']").click()
    await item.locator(".ok").wait_for()
    assert await db.fetchval("SELECT state FROM redemptions WHERE id = $1", redemption_id) == "approved"
    assert await db.fetchval("SELECT amount FROM points_ledger WHERE member_id = $1 AND reason = 'redemption'",
                             rider_id) == -30

    # ── the rider ranking lists the rider with their points ──
    await page.click("#nav a[href='#/rankings']")
    ranked = page.locator(f"#riders tr[data-member='{rider_id}']")
    await ranked.wait_for()
    assert "40" in await ranked.locator("td.num").first.inner_text()
    assert await ranked.locator("[data-flags]").get_attribute("data-flags") == "0"

    # ── incidents.csv, fetched with the Bearer header and saved by the browser ──
    await page.click("#nav a[href='#/exports']")
    async with page.expect_download() as info:
        await page.click("#export-incidents button[type='submit']")
    download = await info.value
    assert download.suggested_filename.startswith("incidents") and download.suggested_filename.endswith(".csv")
    data = (await download.path()).read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    header = data[3:].decode("utf-8").splitlines()[0]
    assert header.startswith("事件编号,创建时间,类别,状态"), header
    assert await wait_until(lambda: _text_has(page, "#export-incidents + div", "已下载"))

    # ── the members list, and a sign-in code for a new rider on a slip to print ──
    await page.click("#nav a[href='#/members']")
    await page.locator(f"#members tr[data-member='{rider_id}']").wait_for()
    await shoot(page, "supervisor-members-zh-CN", full=True)
    await page.click("#new-code")
    await page.fill("input[name='display_name']", "新骑手 测试")
    await page.fill("input[name='phone']", "13912349902")
    await page.select_option("select[name='platform']", "meituan")
    await page.select_option("select[name='areas']", [COMMUNITY])
    await page.click("button[name='submit']")
    code = await page.inner_text("#enrol-code")
    assert (await page.get_attribute("#enrol-link", "href")).endswith(f"/#/enrol/{code}")
    assert await page.locator("#enrol-slip svg.qr path").count() == 1  # the link's QR code, drawn here
    assert await db.fetchval("SELECT role FROM members WHERE phone = '13912349902'") == "courier"
    await shoot(page, "supervisor-enrolment-zh-CN", full=True)
    await page.emulate_media(media="print")
    assert not await page.is_visible("#print") and await page.is_visible("#enrol-code")
    await shoot(page, "supervisor-enrolment-print-zh-CN")

    # ── the same app on a phone: the menu goes to the bottom, wide tables scroll inside their box ──
    await page.emulate_media(media="screen")
    await page.set_viewport_size(PHONE_VIEWPORT)
    await page.goto("/#/rankings")
    await page.locator(f"#riders tr[data-member='{rider_id}']").wait_for()
    assert await page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    await shoot(page, "supervisor-rankings-phone-zh-CN")


async def _outlines_are_drawn_from_the_areas_polygons(page, shoot) -> None:
    """The map draws every area of the scope from GET /api/v1/areas/shapes, with the hotspots on top."""
    in_scope = [a.code for a in zhangwu_demo_areas() if a.code.startswith("ZW-ZWZ-C02") and a.polygon]
    assert await page.locator("#map path.area").count() > len(in_scope)  # the supervisor's whole street
    await page.goto("/#/?scope=ZW-ZWZ-C02")
    # The whole street's map is on the page until the scoped one replaces it (polled from here: the
    # CSP forbids the string evaluation wait_for_function would use).
    for _ in range(100):
        if await page.locator("#map path.area").count() == len(in_scope):
            break
        await page.wait_for_timeout(100)
    assert await page.locator("#map circle.hot").count() >= 1
    await shoot(page, "supervisor-map-zh-CN", full=True)


async def _text_has(page, selector: str, text: str) -> bool:
    return text in await page.inner_text(selector)
