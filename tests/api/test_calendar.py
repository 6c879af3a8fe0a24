"""Admins see which years the working-day calendar knows, and from November the warning to load the next."""

from __future__ import annotations

import datetime as dt

from gridrider.clock import SHANGHAI
from gridrider.db.calendar import save_overrides


async def test_status_warns_in_november_until_next_year_is_loaded(client, admin, db, clock):
    reply = await client.get("/api/v1/calendar/status", headers=admin.headers)
    assert reply.status_code == 200
    body = reply.json()
    assert body["years"] == [{"year": 2026, "basis": "package"}, {"year": 2027, "basis": "weekdays"}]
    assert "2027" in body["warning"] and "gridrider calendar load" in body["warning"]

    async with db.acquire() as conn:
        await save_overrides(conn, [(dt.date(2027, 1, 1), False, "元旦")], source="admin", now=clock.now())
    body = (await client.get("/api/v1/calendar/status", headers=admin.headers)).json()
    assert body["years"][1] == {"year": 2027, "basis": "overrides"} and body["warning"] is None


async def test_no_warning_before_november(client, admin, clock):
    clock.set(dt.datetime(2026, 10, 31, 23, 0, tzinfo=SHANGHAI))
    assert (await client.get("/api/v1/calendar/status", headers=admin.headers)).json()["warning"] is None


async def test_riders_cannot_read_it(client, login):
    rider = await login("courier", "13900000777", ["ZW-ZWZ-C02-G03"])
    assert (await client.get("/api/v1/calendar/status", headers=rider.headers)).status_code == 403
