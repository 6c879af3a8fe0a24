"""What the system promised, checked after a fault once it has settled (issue 12's oracle).

- Every report the load client got a 2xx for exists exactly once, under the id it was told, and reached its
  final state (processed into an incident; every photo ready or failed).
- Every incident's report_count is the number of reports in it.
- Points: every courier's ranking totals equal the sum of their ledger rows, and the ledger equals a model of
  what should have been awarded, written here from DESIGN §2d without the product's code.
- Web Push: every subscribed member of a notification's audience has a delivery row that was sent, and the
  push service received that notification on that subscription at least once and never more than once,
  except a resend after a crash, which carries the same Topic so the push service keeps only one.
- No job is left running past its lease, and none is dead.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import asyncpg

from tests.push.push_service import PushService

DAILY_CAP = 100
CORROBORATION = 2
MAX_CORROBORATIONS = 5


@dataclass
class Figures:
    scenario: str
    sent: int = 0
    acknowledged: int = 0
    lost: int = 0
    duplicated: int = 0
    refused: int = 0
    unanswered: int = 0
    recover_s: float | None = None  # fault's end → the first report acknowledged after it
    caught_up_s: float | None = None  # fault's end → every job written before it finished
    settle_s: float = 0.0
    incidents: int = 0
    pushes: int = 0
    push_resends: int = 0
    ledger_rows: int = 0
    jobs_rerun: int = 0  # jobs that took more than one attempt: the fault's footprint on the work
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        def seconds(value: float | None) -> str:
            return f"{value:.1f} s" if value is not None else "–"

        return (f"{self.scenario:<30} sent {self.sent:>5}  acknowledged {self.acknowledged:>5}  lost {self.lost}  "
                f"duplicated {self.duplicated}  refused {self.refused}  unanswered {self.unanswered}  "
                f"intake back in {seconds(self.recover_s)}  backlog done in {seconds(self.caught_up_s)}  "
                f"settled in {self.settle_s:.1f} s  incidents {self.incidents}  "
                f"jobs re-run {self.jobs_rerun}  pushes {self.pushes} (resent {self.push_resends})  "
                f"ledger rows {self.ledger_rows}")


async def settle(conn: asyncpg.Connection, *, timeout_s: float = 180) -> float:
    """Wait until the job table is quiet (the workers' relay re-drives what is due): nothing pending, retrying
    or running, twice in a row. Returns the seconds it took; fails with the leftovers when it does not."""
    start = time.monotonic()
    quiet = 0
    while quiet < 2:
        busy = await conn.fetchval("SELECT count(*) FROM jobs WHERE state IN ('pending', 'retry', 'running')")
        quiet = quiet + 1 if busy == 0 else 0
        if time.monotonic() - start > timeout_s:
            rows = await conn.fetch("SELECT kind, state, attempts, run_after, lease_until, last_error FROM jobs "
                                    "WHERE state IN ('pending', 'retry', 'running') ORDER BY id LIMIT 10")
            raise AssertionError(f"the job table did not settle in {timeout_s} s: {busy} busy, e.g. "
                                 f"{[dict(r) for r in rows]}")
        await asyncio.sleep(0.5)
    return time.monotonic() - start


async def check(conn: asyncpg.Connection, load: dict[str, Any], push: PushService, figures: Figures) -> Figures:
    figures.sent = load["sent"]
    figures.acknowledged = len(load["acked"])
    figures.refused = len(load["refused"])
    figures.unanswered = len(load["unanswered"])
    await _reports(conn, load, figures)
    await _incidents(conn, figures)
    await _points(conn, figures)
    await _pushes(conn, push, figures)
    await _jobs(conn)
    figures.jobs_rerun = await conn.fetchval("SELECT count(*) FROM jobs WHERE attempts > 1")
    return figures


async def _reports(conn: asyncpg.Connection, load: dict[str, Any], figures: Figures) -> None:
    rows = await conn.fetch("""
        SELECT r.reporter_id, r.client_id::text AS client_id, r.id, r.state,
               array_agg(p.state) FILTER (WHERE p.id IS NOT NULL) AS photo_states
        FROM reports r LEFT JOIN photos p ON p.report_id = r.id
        GROUP BY r.id""")
    stored: dict[tuple[int, str], list[asyncpg.Record]] = defaultdict(list)
    for row in rows:
        stored[(row["reporter_id"], row["client_id"])].append(row)
    problems = []
    for ack in load["acked"]:
        found = stored.get((ack["member_id"], ack["client_id"]), [])
        if not found:
            figures.lost += 1
            continue
        if len(found) > 1:
            figures.duplicated += 1
        row = found[0]
        if row["id"] != ack["report_id"]:
            problems.append(f"report {ack['client_id']}: answered id {ack['report_id']}, stored {row['id']}")
        if row["state"] != "processed":
            problems.append(f"report {row['id']} is still {row['state']}")
        if any(s not in ("ready", "failed") for s in row["photo_states"] or []):
            problems.append(f"report {row['id']} has photos {row['photo_states']}")
        if ack["killer"] and row["photo_states"] != ["failed"]:
            problems.append(f"report {row['id']}: the decoder-killing photo is {row['photo_states']}")
    # A report the phone never heard back about may or may not be stored (it stays in the outbox), never twice.
    for item in load["unanswered"]:
        if len(stored.get((item["member_id"], item["client_id"]), [])) > 1:
            figures.duplicated += 1
    assert figures.lost == 0 and figures.duplicated == 0 and not problems, (figures, problems[:10])


async def _incidents(conn: asyncpg.Connection, figures: Figures) -> None:
    wrong = await conn.fetch("""
        SELECT i.id, i.report_count, count(r.id) AS reports
        FROM incidents i LEFT JOIN reports r ON r.incident_id = i.id
        GROUP BY i.id HAVING i.report_count <> count(r.id)""")
    assert not wrong, f"incidents whose report_count is wrong: {[dict(r) for r in wrong[:10]]}"
    figures.incidents = await conn.fetchval("SELECT count(*) FROM incidents")


def _first_report_points(weight: float) -> int:
    return int((Decimal(10) * Decimal(str(weight))).quantize(Decimal(1), rounding=ROUND_HALF_UP))


async def _points(conn: asyncpg.Connection, figures: Figures) -> None:
    # The materialised totals equal the ledger they are kept from.
    drift = await conn.fetch("""
        WITH ledger AS (
            SELECT member_id, to_char(local_day, 'YYYY') AS period, sum(amount) AS points, count(*) AS entries
            FROM points_ledger WHERE counts_toward_ranking GROUP BY 1, 2)
        SELECT coalesce(l.member_id, t.member_id) AS member_id, l.points, t.points AS total, l.entries,
               t.entries AS total_entries
        FROM ledger l FULL JOIN (SELECT * FROM ranking_totals WHERE period ~ '^[0-9]{4}$') t
             ON t.member_id = l.member_id AND t.period = l.period
        WHERE l.points IS DISTINCT FROM t.points OR l.entries IS DISTINCT FROM t.entries""")
    drift = [r for r in drift if not (r["points"] is None and r["total"] == 0 and r["total_entries"] == 0)]
    assert not drift, f"ranking totals differ from the ledger: {[dict(r) for r in drift[:10]]}"

    # The model: what each accepted incident owes, from the rows the load made (DESIGN §2d).
    incidents = await conn.fetch("""
        SELECT i.id, i.first_reporter_id, c.weight,
               EXISTS (SELECT 1 FROM flags f WHERE f.incident_id = i.id
                          OR f.report_id IN (SELECT id FROM reports WHERE incident_id = i.id)
                          OR f.photo_id IN (SELECT p.id FROM photos p JOIN reports r ON r.id = p.report_id
                                            WHERE r.incident_id = i.id)) AS flagged
        FROM incidents i JOIN categories c ON c.code = i.category
        WHERE i.state IN ('accepted', 'resolved', 'closed')""")
    reports = await conn.fetch("""
        SELECT r.id, r.incident_id, r.reporter_id, r.captured_at, r.received_at,
               EXISTS (SELECT 1 FROM photos p WHERE p.report_id = r.id AND p.reused_of_photo_id IS NOT NULL) AS reused
        FROM reports r JOIN incidents i ON i.id = r.incident_id
        WHERE i.state IN ('accepted', 'resolved', 'closed')
        ORDER BY r.incident_id, r.captured_at, r.id""")
    by_incident: dict[int, list[asyncpg.Record]] = defaultdict(list)
    for row in reports:
        by_incident[row["incident_id"]].append(row)
    ledger = await conn.fetch("SELECT member_id, reason, source_kind, source_id, amount, local_day "
                              "FROM points_ledger")
    figures.ledger_rows = len(ledger)
    assert {r["reason"] for r in ledger} <= {"first_report", "corroboration"}, "this load awards nothing else"

    # Awards are fixed when they are paid: a report that arrives later with an earlier capture time does not
    # move a corroboration already paid, nor the first reporter fixed at accept. So the model owes each
    # courier one award per incident (keyed by the incident), and a courier whose reports in it are partly
    # reused photos is checked for bounds only (which report counted decides whether it pays).
    intended: dict[int, int] = defaultdict(int)  # member → points the rules owe, before the daily cap
    exact: dict[int, set[tuple[str, int]]] = defaultdict(set)  # member → (reason, incident) owed
    allowed: dict[int, set[tuple[str, int]]] = defaultdict(set)  # … and what they may be paid
    unsure: set[int] = set()  # members whose rows a flag or a choice may withhold: bounds only
    paid_by_incident: dict[int, list[asyncpg.Record]] = defaultdict(list)
    report_incident = {r["id"]: r["incident_id"] for r in reports}
    reused_report = {r["id"]: r["reused"] for r in reports}
    for row in ledger:
        incident = row["source_id"] if row["source_kind"] == "incident" else report_incident.get(row["source_id"])
        assert incident is not None, f"a ledger row for something not accepted: {dict(row)}"
        assert not reused_report.get(row["source_id"], False) or row["source_kind"] != "report", \
            f"a corroboration paid for a reused photo: {dict(row)}"
        paid_by_incident[incident].append(row)
    for incident in incidents:
        rows = by_incident[incident["id"]]
        first = incident["first_reporter_id"]
        authors: dict[int, list[bool]] = defaultdict(list)  # courier → reused? of each report in the incident
        for r in rows:
            authors[r["reporter_id"]].append(r["reused"])
        assert first in authors, f"incident {incident['id']}: the first reporter sent none of its reports"
        if incident["flagged"]:
            unsure.update(authors)
        corroborations = [p for p in paid_by_incident[incident["id"]] if p["reason"] == "corroboration"]
        assert len(corroborations) <= MAX_CORROBORATIONS, f"incident {incident['id']}: {len(corroborations)}"
        assert len({p["member_id"] for p in corroborations}) == len(corroborations), "twice to one courier"
        others = [m for m in authors if m != first]
        if len(others) > MAX_CORROBORATIONS:  # which five is the product's choice: bounds only
            unsure.update(others)
        for member, reused in authors.items():
            reason, points = (("first_report", _first_report_points(incident["weight"])) if member == first
                              else ("corroboration", CORROBORATION))
            allowed[member].add((reason, incident["id"]))
            if all(reused):
                allowed[member].discard((reason, incident["id"]))
            elif not any(reused):
                intended[member] += points
                exact[member].add((reason, incident["id"]))
            else:
                unsure.add(member)

    actual: dict[int, set[tuple[str, int]]] = defaultdict(set)
    per_day: Counter[tuple[int, Any]] = Counter()
    for row in ledger:
        incident = row["source_id"] if row["source_kind"] == "incident" else report_incident[row["source_id"]]
        actual[row["member_id"]].add((row["reason"], incident))
        per_day[(row["member_id"], row["local_day"])] += row["amount"]
    over_cap = {k: v for k, v in per_day.items() if v > DAILY_CAP}
    assert not over_cap, f"over the daily cap: {over_cap}"
    wrong = []
    for member in set(intended) | set(actual):
        if actual[member] - allowed[member]:
            wrong.append((member, "paid what is not owed", sorted(actual[member] - allowed[member])[:5]))
        elif member not in unsure and intended[member] <= DAILY_CAP and actual[member] != exact[member]:
            wrong.append((member, "owed but not paid", sorted(exact[member] - actual[member])[:5]))
    assert not wrong, f"the ledger differs from the model: {wrong[:10]}"


async def _pushes(conn: asyncpg.Connection, push: PushService, figures: Figures) -> None:
    subscriptions = {r["endpoint"]: (r["id"], r["member_id"]) for r in await conn.fetch(
        "SELECT id, endpoint, member_id FROM push_subscriptions")}
    by_member: dict[int, list[str]] = defaultdict(list)
    for endpoint, (_, member) in subscriptions.items():
        by_member[member].append(endpoint)
    notifications = await conn.fetch("SELECT id, audience FROM notifications ORDER BY id")
    deliveries = {(r["notification_id"], r["target"]): r for r in await conn.fetch(
        "SELECT notification_id, target, state, attempts FROM deliveries WHERE channel = 'webpush'")}
    received: dict[tuple[int, str], list[Any]] = defaultdict(list)
    for message in push.received:
        received[(message.json["notification_id"], message.endpoint)].append(message)

    problems = []
    for notification in notifications:
        members = await _audience(conn, notification["audience"])
        for member in members:
            for endpoint in by_member.get(member, []):
                subscription_id = subscriptions[endpoint][0]
                delivery = deliveries.get((notification["id"], str(subscription_id)))
                got = received.get((notification["id"], endpoint), [])
                if delivery is None or delivery["state"] != "sent":
                    problems.append(f"notification {notification['id']} → subscription {subscription_id}: "
                                    f"{'no delivery' if delivery is None else delivery['state']}")
                elif not got:
                    problems.append(f"notification {notification['id']} never reached subscription {subscription_id}")
                elif len(got) > 1:
                    figures.push_resends += len(got) - 1
                    if len({m.headers.get("topic") for m in got}) != 1 or got[0].headers.get("topic") is None:
                        problems.append(f"notification {notification['id']} arrived {len(got)} times uncollapsed")
    strays = [key for key in received if (key[0], str(subscriptions.get(key[1], (None,))[0])) not in deliveries]
    figures.pushes = len(push.received)
    assert not problems and not strays, (problems[:10], strays[:10])


async def _audience(conn: asyncpg.Connection, audience: dict[str, Any]) -> set[int]:
    """Who a notification is for, from the area tree as DESIGN §5 says (not the product's query)."""
    members = set(audience.get("member_ids") or [])
    area = audience.get("area_id")
    roles = audience.get("roles") or []
    if area is not None and "grid_member" in roles:
        members |= {r["member_id"] for r in await conn.fetch(
            "SELECT ma.member_id FROM member_areas ma JOIN members m ON m.id = ma.member_id "
            "WHERE ma.area_id = $1 AND m.role = 'grid_member'", area)}
    if area is not None and "supervisor" in roles:
        # The supervisors of the area itself, else of its nearest ancestor that has some.
        while area is not None:
            found = {r["member_id"] for r in await conn.fetch(
                "SELECT ma.member_id FROM member_areas ma JOIN members m ON m.id = ma.member_id "
                "WHERE ma.area_id = $1 AND m.role = 'supervisor'", area)}
            if found:
                members |= found
                break
            area = await conn.fetchval("SELECT parent_id FROM areas WHERE id = $1", area)
    return members


async def _jobs(conn: asyncpg.Connection) -> None:
    stuck = await conn.fetchval("SELECT count(*) FROM jobs WHERE state = 'running' AND lease_until < now()")
    dead = await conn.fetch("SELECT id, kind, attempts, last_error FROM jobs WHERE state = 'dead'")
    assert stuck == 0, f"{stuck} jobs left running past their lease"
    assert not dead, f"dead jobs: {[dict(r) for r in dead[:10]]}"
