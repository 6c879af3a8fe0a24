"""Every alertable event, recorded for its audience, reaches exactly that audience's phones, decrypted.

Real PostgreSQL, a real arq worker (one burst per test) and the local push service. Each test makes one
incident the way a courier does (a report through the API, routed by the real `process_report`) and
records its own notifications about it with `record` + `enqueue_notify`, as the product's actions do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gridrider.domain import notifications
from gridrider.domain.notifications import (
    EVENTS,
    REPORTER_EVENTS,
    grid_audience,
    members_audience,
    supervisors_audience,
)
from gridrider.jobs.notify import enqueue_notify
from gridrider.jobs.pipeline import process_report
from gridrider.jobs.queue import transaction
from gridrider.jobs.runner import run_job_row
from tests.conftest import Caller
from tests.jobs.conftest import run_burst
from tests.push.test_delivery import report, subscribe

COUNTY = "ZW"
TOWN = "ZW-ZWZ"
COMMUNITY = "ZW-ZWZ-C02"  # has a demo supervisor of its own (13800000012)
GRID = "ZW-ZWZ-C02-G03"  # where the test reports are made
OTHER_COMMUNITY = "ZW-ZWZ-C07"
OTHER_GRID = "ZW-ZWZ-C07-G08"
BARE_COMMUNITY = "ZW-ZWZ-C05"  # no supervisor of its own in the demo
BARE_GRID = "ZW-ZWZ-C05-G04"


@dataclass(eq=False)  # compared by identity, kept in sets
class Person:
    caller: Caller
    browsers: list[dict] = field(default_factory=list)

    @property
    def id(self) -> int:
        return self.caller.member_id

    @property
    def endpoints(self) -> set[str]:
        return {b["endpoint"] for b in self.browsers}


class World:
    """Members signed in through the API, each with subscribed browsers."""

    def __init__(self, push_client, push_service, login, db) -> None:
        self.client, self.service, self.login, self.db = push_client, push_service, login, db
        self.people: list[Person] = []

    async def person(self, role: str, phone: str, areas: list[str], browsers: int = 1) -> Person:
        person = Person(await self.login(role, phone, areas))
        for _ in range(browsers):
            browser = self.service.new_subscription()
            await subscribe(self.client, person.caller, browser)
            person.browsers.append(browser)
        self.people.append(person)
        return person

    async def area(self, code: str) -> int:
        return await self.db.fetchval("SELECT id FROM areas WHERE code = $1", code)

    def reached(self, notification_id: int) -> set[str]:
        """The endpoints a notification's message arrived at (decrypted by the push service)."""
        return {m.endpoint for m in self.service.received if m.json["notification_id"] == notification_id}

    def messages(self, notification_id: int) -> list:
        return [m for m in self.service.received if m.json["notification_id"] == notification_id]

    def everything_to(self, person: Person) -> list:
        return [m for m in self.service.received if m.endpoint in person.endpoints]


async def new_incident(world: World, services, clock, rider: Person) -> int:
    """A courier's report, routed into a new incident by the real job (its own grid alert is enqueued)."""
    sent = await report(world.client, clock, rider.caller)
    job_id = await world.db.fetchval(
        "SELECT id FROM jobs WHERE kind = 'process_report' AND (payload->>'report_id')::bigint = $1", sent["id"])
    assert (await run_job_row(services, job_id, process_report)).startswith("new incident")
    return await world.db.fetchval("SELECT incident_id FROM reports WHERE id = $1", sent["id"])


async def announce(db, clock, redis, event: str, incident_id: int | None, audience: dict, payload: dict | None = None,
                   dedupe_key: str | None = None) -> int | None:
    async with transaction(db, clock, redis, max_attempts=5) as tx:
        notification_id = await notifications.record(tx.conn, event=event, incident_id=incident_id,
                                                     audience=audience, payload=payload or {},
                                                     dedupe_key=dedupe_key, now=clock.now())
        if notification_id is not None:
            await enqueue_notify(tx, notification_id)
    return notification_id


def endpoints(*people: Person) -> set[str]:
    return set().union(*(p.endpoints for p in people))


async def deactivate(db, person: Person) -> None:
    await db.execute("UPDATE members SET status = 'deactivated', deactivated_at = now() WHERE id = $1", person.id)


async def test_every_event_reaches_exactly_its_audience(
    push_client, push_service, push_network, login, services, settings, clock, db, redis,
):
    world = World(push_client, push_service, login, db)
    member = await world.person("grid_member", "13710000001", [GRID], browsers=2)
    colleague = await world.person("grid_member", "13710000002", [GRID])
    community_supervisor = await world.person("supervisor", "13710000003", [COMMUNITY])
    town_supervisor = await world.person("supervisor", "13710000004", [TOWN])
    rider = await world.person("courier", "13710000005", [GRID])
    # Bystanders: none of them is in any audience below.
    elsewhere = await world.person("grid_member", "13710000006", [OTHER_GRID])
    other_rider = await world.person("courier", "13710000007", [GRID])
    other_supervisor = await world.person("supervisor", "13710000008", [OTHER_COMMUNITY])

    incident = await new_incident(world, services, clock, rider)
    grid, community, town = await world.area(GRID), await world.area(COMMUNITY), await world.area(TOWN)
    reporters = members_audience([rider.id])
    # event → (audience, payload, who must hear, a piece of the zh body, a piece of the en body)
    plan = {
        "incident_reached_grid": (grid_audience(grid), {"reason": "transferred"}, {member, colleague},
                                  "转派：新隐患，请在", "Transferred: New hazard; accept by"),
        "incident_unrouted": (supervisors_audience(community), {"routed": False}, {community_supervisor},
                              "请指派网格", "please assign a grid"),
        "life_safety_created": (supervisors_audience(community), {"routed": True}, {community_supervisor},
                                "已派往 ", "sent to "),
        "report_accepted": (reporters, {}, {rider}, "你上报的隐患已受理", "Your report was accepted"),
        "report_resolved": (reporters, {"points": 12, "photo_id": 987}, {rider}, "+12 积分", "+12 points"),
        "report_rejected": (reporters, {"reason": "cannot_locate", "note": "地址不详"}, {rider},
                            "未采纳：现场找不到；地址不详", "Not accepted: could not be found on site; 地址不详"),
        "report_merged": (reporters, {}, {rider}, "已与同一隐患合并", "Merged with the same hazard"),
        "incident_escalated": (supervisors_audience(town), {"stage": "accept"}, {town_supervisor},
                               "超时未受理，请督办", "not accepted in time"),
        "life_safety_unaccepted": (grid_audience(grid), {"minutes": 15, "to": "members"}, {member, colleague},
                                   "15 分钟仍未受理", "not accepted after 15 minutes"),
    }
    assert set(plan) == set(EVENTS)
    recorded: dict[str, int] = {}
    for event, (audience, payload, _, _, _) in plan.items():
        recorded[event] = await announce(db, clock, redis, event, incident, audience, payload,
                                         dedupe_key=f"test:{incident}:{event}")
    assert all(recorded.values())

    await run_burst(settings, clock, push_network=push_network)

    names = await db.fetchrow("SELECT name_zh, name_en FROM categories WHERE code = 'garbage_pileup'")
    grid_name = await db.fetchval("SELECT name_zh FROM areas WHERE id = $1", grid)
    for event, (_, _, told, zh, en) in plan.items():
        notification_id = recorded[event]
        assert world.reached(notification_id) == endpoints(*told), event
        messages = world.messages(notification_id)
        assert len(messages) == len(endpoints(*told)), f"{event}: one message per subscription"
        for received in messages:
            body = received.json
            assert body["event"] == event and body["incident_id"] == incident, event
            assert body["title"].startswith(f"{names['name_zh']} · ") and body["title"].endswith("社区"), event
            assert body["en"]["title"].startswith(f"{names['name_en']} · "), event
            assert zh in body["body"] and en in body["en"]["body"], (event, body["body"], body["en"]["body"])
            assert body["tag"] == f"incident-{incident}" and body["url"] == f"/#/incidents/{incident}"
            headers = received.headers
            assert int(headers["ttl"]) > 0 and headers["topic"] == f"incident-{incident}", event
            assert headers["urgency"] == ("low" if event in REPORTER_EVENTS else "normal"), event
    [resolved] = world.messages(recorded["report_resolved"])
    assert resolved.json["image"].startswith(settings.public_url) and "987" in resolved.json["image"]
    [life] = world.messages(recorded["life_safety_created"])
    assert life.json["body"].endswith(grid_name)

    # Nothing else reached anyone: the bystanders heard nothing, the town supervisor only the escalation,
    # and the only other message is the incident's own creation alert to its grid.
    for bystander in (elsewhere, other_rider, other_supervisor):
        assert world.everything_to(bystander) == [], bystander.caller.phone
    ours = set(recorded.values())
    others = [m for m in push_service.received if m.json["notification_id"] not in ours]
    assert {m.json["event"] for m in others} == {"incident_reached_grid"}
    assert {m.endpoint for m in others} == endpoints(member, colleague) and len(others) == 3
    assert await db.fetchval("SELECT count(*) FROM deliveries WHERE state <> 'sent'") == 0


async def test_supervisors_of_an_area_are_its_own_else_the_nearest_ancestors(
    push_client, push_service, push_network, login, services, settings, clock, db, redis,
):
    world = World(push_client, push_service, login, db)
    community_supervisor = await world.person("supervisor", "13710000011", [COMMUNITY])
    town_supervisor = await world.person("supervisor", "13710000012", [TOWN], browsers=2)
    county_supervisor = await world.person("supervisor", "13710000013", [COUNTY])
    other_supervisor = await world.person("supervisor", "13710000014", [OTHER_COMMUNITY])
    grid_member = await world.person("grid_member", "13710000015", [BARE_GRID])
    rider = await world.person("courier", "13710000016", [GRID])
    incident = await new_incident(world, services, clock, rider)

    # area → who must hear of an escalation there
    expected = {
        COMMUNITY: {community_supervisor},  # its own supervisors only, not the town's
        GRID: {community_supervisor},  # a grid has none: its community's
        BARE_COMMUNITY: {town_supervisor},  # no supervisor of its own: the town's, not the county's
        BARE_GRID: {town_supervisor},  # grid → community (none) → town; never the grid member
        OTHER_COMMUNITY: {other_supervisor},
        TOWN: {town_supervisor},
        COUNTY: {county_supervisor},
    }
    recorded = {}
    for code in expected:
        recorded[code] = await announce(db, clock, redis, "incident_escalated", incident,
                                        supervisors_audience(await world.area(code)), {"stage": "dispatch"},
                                        dedupe_key=f"test:{incident}:escalated:{code}")

    await run_burst(settings, clock, push_network=push_network)

    for code, told in expected.items():
        assert world.reached(recorded[code]) == endpoints(*told), code
        assert len(world.messages(recorded[code])) == len(endpoints(*told)), code
        assert all(m.json["body"] == "超时未派发，请督办" for m in world.messages(recorded[code]))
    assert world.everything_to(grid_member) == [] and world.everything_to(rider) == []


async def test_deactivated_members_are_not_told(
    push_client, push_service, push_network, login, services, settings, clock, db, redis,
):
    world = World(push_client, push_service, login, db)
    active = await world.person("grid_member", "13710000021", [GRID])
    gone = await world.person("grid_member", "13710000022", [GRID])
    rider = await world.person("courier", "13710000023", [GRID])
    gone_rider = await world.person("courier", "13710000024", [GRID])
    town_supervisor = await world.person("supervisor", "13710000025", [TOWN])
    gone_supervisor = await world.person("supervisor", "13710000026", [BARE_COMMUNITY])
    community_supervisor = await world.person("supervisor", "13710000027", [COMMUNITY])
    gone_community_supervisor = await world.person("supervisor", "13710000028", [COMMUNITY])
    for person in (gone, gone_rider, gone_supervisor, gone_community_supervisor):
        await deactivate(db, person)

    incident = await new_incident(world, services, clock, rider)
    to_grid = await announce(db, clock, redis, "incident_reached_grid", incident, grid_audience(await world.area(GRID)),
                             {"reason": "reopened"}, dedupe_key="test:reopened")
    to_reporters = await announce(db, clock, redis, "report_merged", incident,
                                  members_audience([rider.id, gone_rider.id]), dedupe_key="test:merged")
    # The only supervisor of the bare community left: its alerts go up to the town.
    to_bare = await announce(db, clock, redis, "incident_escalated", incident,
                             supervisors_audience(await world.area(BARE_COMMUNITY)), {"stage": "close"},
                             dedupe_key="test:escalated:bare")
    # One of two left: the one still active hears, the town does not.
    to_community = await announce(db, clock, redis, "incident_unrouted", incident,
                                  supervisors_audience(await world.area(COMMUNITY)), dedupe_key="test:unrouted")

    await run_burst(settings, clock, push_network=push_network)

    assert world.reached(to_grid) == active.endpoints
    assert world.reached(to_reporters) == rider.endpoints
    assert world.reached(to_bare) == town_supervisor.endpoints
    assert world.reached(to_community) == community_supervisor.endpoints
    for person in (gone, gone_rider, gone_supervisor, gone_community_supervisor):
        assert world.everything_to(person) == [], person.caller.phone  # not even the creation alert
    planned = {r["member_id"] for r in await db.fetch("SELECT member_id FROM deliveries")}
    assert not planned & {gone.id, gone_rider.id, gone_supervisor.id, gone_community_supervisor.id}


async def test_a_notification_recorded_twice_is_sent_once(
    push_client, push_service, push_network, login, services, settings, clock, db, redis,
):
    world = World(push_client, push_service, login, db)
    rider = await world.person("courier", "13710000031", [GRID], browsers=2)
    incident = await new_incident(world, services, clock, rider)
    audience = members_audience([rider.id, rider.id])  # a reporter named twice is one reporter

    first = await announce(db, clock, redis, "report_accepted", incident, audience, dedupe_key=f"accepted:{incident}")
    again = await announce(db, clock, redis, "report_accepted", incident, audience, dedupe_key=f"accepted:{incident}")
    assert first is not None and again is None
    async with transaction(db, clock, redis, max_attempts=5) as tx:  # its job enqueued again: one job
        await enqueue_notify(tx, first)
    assert await db.fetchval("SELECT count(*) FROM jobs WHERE kind = 'notify' AND payload->>'notification_id' = $1",
                             str(first)) == 1

    await run_burst(settings, clock, push_network=push_network)

    assert await db.fetchval("SELECT count(*) FROM notifications WHERE event = 'report_accepted'") == 1
    for browser in rider.browsers:
        [received] = push_service.messages_for(browser)
        assert received.json["notification_id"] == first and received.json["body"] == "你上报的隐患已受理"
    assert len(push_service.received) == 2
    assert await db.fetchval("SELECT count(*) FROM deliveries WHERE notification_id = $1 AND channel = 'webpush'",
                             first) == 2
