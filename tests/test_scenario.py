"""One hazard's whole life through the HTTP API only, as the grid-work issue scripts it.

Run with `pytest -s tests/test_scenario.py` to read the story it prints.
"""

from __future__ import annotations

from shapely.geometry import shape

from gridrider.domain.demo_geography import zhangwu_demo_areas
from gridrider.jobs.queue import PHOTOS_QUEUE
from tests.api.test_reports import files, meta
from tests.jobs.conftest import run_burst

GRID, COMMUNITY = "ZW-ZWZ-C02-G03", "ZW-ZWZ-C02"
_POINT = shape(next(a for a in zhangwu_demo_areas() if a.code == GRID).polygon).representative_point()
HERE = {"lat": _POINT.y, "lon": _POINT.x}


async def test_a_hazard_from_report_to_upheld_appeal(push_client, push_service, push_network, login, settings,
                                                      clock, db, street_photos):
    client = push_client
    story: list[str] = []

    def say(line: str) -> None:
        story.append(line)
        print(line)

    async def workers() -> None:
        for queue in (None, PHOTOS_QUEUE, None):  # photos may award points, which may alert
            await run_burst(settings, clock, push_network=push_network, **({"queue": queue} if queue else {}))

    async def balance(caller) -> dict:
        reply = await client.get("/api/v1/me/points", headers=caller.headers)
        assert reply.status_code == 200, reply.text
        return reply.json()

    async def act(caller, incident_id: int, action: str, body: dict | None = None, status: int = 200) -> dict:
        reply = await client.post(f"/api/v1/incidents/{incident_id}/{action}", json=body or {}, headers=caller.headers)
        assert reply.status_code == status, (action, reply.text)
        return reply.json()

    member = await login("grid_member", "13700009001", [GRID])
    supervisor = await login("supervisor", "13800009001", [COMMUNITY])
    rider, second, third = [await login("courier", f"1390000900{n}", [GRID]) for n in (1, 2, 3)]
    member_phone, rider_phone = push_service.new_subscription(), push_service.new_subscription()
    for caller, browser in ((member, member_phone), (rider, rider_phone)):
        assert (await client.post("/api/v1/push/subscriptions", json=browser, headers=caller.headers)).status_code \
            == 201

    # 1. A rider reports a pile of garbage with a photo.
    reply = await client.post("/api/v1/reports", headers=rider.headers,
                              files=files(meta(clock, category="garbage_pileup", **HERE), street_photos[:1]))
    assert reply.status_code == 201, reply.text
    await workers()
    incident_id = (await client.get(f"/api/v1/reports/{reply.json()['id']}", headers=rider.headers)).json()[
        "incident_id"]
    alerts = push_service.messages_for(member_phone)
    assert len(alerts) == 1, (push_service.rejected, [dict(r) for r in await db.fetch(
        "SELECT target, state, attempts, last_status, last_error FROM deliveries WHERE channel = 'webpush'")])
    [alert] = alerts
    say(f"1. rider reported → incident {incident_id}; grid member's push: {alert.json['title']} — {alert.json['body']}")

    # 2. The grid member accepts and resolves with an after-photo.
    await act(member, incident_id, "accept")
    clock.advance(hours=3)
    reply = await client.post(f"/api/v1/incidents/{incident_id}/resolve", headers=member.headers,
                              files=[("meta", ("meta.json", b'{"note": "\xe5\xb7\xb2\xe6\xb8\x85\xe8\xbf\x90"}',
                                               "application/json")),
                                     ("photo", ("after.jpg", street_photos[1], "image/jpeg"))])
    assert reply.status_code == 200, reply.text
    await workers()
    bodies = [m.json["body"] for m in push_service.messages_for(rider_phone)]
    points = await balance(rider)
    say(f"2. accepted, resolved with a photo; rider's pushes: {bodies}; rider's balance {points['balance']}")
    assert any("+5 积分" in body for body in bodies)
    resolved_push = next(m for m in push_service.messages_for(rider_phone) if m.json["event"] == "report_resolved")
    assert resolved_push.json.get("image", "").startswith(settings.public_url)
    earned = points["balance"]
    assert earned == 8 + 5  # first report 10 × 0.8 (garbage) + resolve bonus

    # 3. Two other riders pass by and say it is not fixed: the incident reopens on its grid.
    clock.advance(hours=20)
    for other in (second, third):
        reply = await client.post(f"/api/v1/incidents/{incident_id}/verifications", headers=other.headers,
                                  json={"answer": "not_fixed", **HERE})
        assert reply.status_code == 201, reply.text
    assert reply.json()["reopened"] is True
    detail = (await client.get(f"/api/v1/incidents/{incident_id}", headers=member.headers)).json()
    say(f"3. two riders answered not_fixed → state {detail['state']}, cycle {detail['cycle']}")
    assert (detail["state"], detail["cycle"]) == ("dispatched", 2)

    # 4. This time the grid member rejects it as not a hazard: earlier awards reversed, −5.
    await act(member, incident_id, "reject", {"reason": "not_a_hazard", "note": "现场为正常堆放的建材"})
    await workers()
    points = await balance(rider)
    reasons = [(row["reason"], row["amount"]) for row in points["ledger"]]
    say(f"4. rejected not_a_hazard → rider's balance {points['balance']} (ledger, newest first: {reasons})")
    assert points["balance"] == -5

    # 5. The rider appeals; the supervisor upholds: the penalty is reversed and the grid alerted again.
    await act(rider, incident_id, "appeal", {"reason": "照片里能看到堵住了消防通道"})
    upheld = await act(supervisor, incident_id, "uphold_appeal", {"reason": "复核属实"})
    await workers()
    points = await balance(rider)
    say(f"5. appeal upheld → state {upheld['state']}, cycle {upheld['cycle']}; rider's balance {points['balance']}")
    assert points["balance"] == 0 and upheld["state"] == "dispatched"
    grid_alerts = [m.json["body"] for m in push_service.messages_for(member_phone)]
    say(f"   grid member's pushes: {grid_alerts}")
    assert len(grid_alerts) == 3  # created, reopened, appeal upheld
