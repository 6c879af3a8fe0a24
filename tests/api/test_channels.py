"""Admins see each channel's outcomes per day."""

from __future__ import annotations

from tests.api.test_reports import files, meta
from tests.jobs.conftest import run_burst
from tests.test_scenario import GRID, HERE


async def test_channel_figures_per_day(push_client, push_service, push_network, login, admin, settings, clock):
    member = await login("grid_member", "13700007001", [GRID])
    rider = await login("courier", "13900007001", [GRID])
    ok, gone = push_service.new_subscription(), push_service.new_subscription("gone410")
    for browser in (ok, gone):
        assert (await push_client.post("/api/v1/push/subscriptions", json=browser, headers=member.headers)
                ).status_code == 201
    reply = await push_client.post("/api/v1/reports", headers=rider.headers, files=files(meta(clock, **HERE)))
    assert reply.status_code == 201
    await run_burst(settings, clock, push_network=push_network)
    figures = (await push_client.get("/api/v1/admin/channels", headers=admin.headers)).json()
    by_channel = {row["channel"]: row for row in figures}
    assert by_channel["webpush"]["day"] == "2026-11-26"
    assert (by_channel["webpush"]["sent"], by_channel["webpush"]["gone"]) == (1, 1)
    assert by_channel["webpush"]["median_latency_s"] == 0.0  # raised and sent at one instant of the test clock
    assert by_channel["stream"]["sent"] >= 1
    assert (await push_client.get("/api/v1/admin/channels", headers=member.headers)).status_code == 403
    assert (await push_client.get("/api/v1/admin/channels?days=0", headers=admin.headers)).status_code == 422
