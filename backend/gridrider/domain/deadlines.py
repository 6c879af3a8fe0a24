"""The minute-by-minute deadline pass (DESIGN.md §2c): close, mark overdue stages, escalate.

- a resolved incident with no reopen for 7 days is closed;
- each overdue stage (dispatch, accept, resolve) is marked once, at the first pass after its due time;
- escalation from the due time: level 1 (the area one level above the incident's owners — the grid's
  community, or for an unrouted incident the parent of the area that owns it) at due, level k at
  due + (k−1) × 24 h (× 1 h for life-safety), up to the county; each level at most once per stage and
  cycle; after a pause only the highest level now owed is sent.

Time comes from the caller's clock, never SQL now(), so tests move the clock instead of sleeping.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from gridrider.db.pool import Connection
from gridrider.domain import notifications

CLOSE_AFTER = dt.timedelta(days=7)
STEP = dt.timedelta(hours=24)
STEP_LIFE_SAFETY = dt.timedelta(hours=1)
STAGES = {"unrouted": "dispatch", "dispatched": "accept", "accepted": "resolve"}

CLOSE_SQL = """
UPDATE incidents SET state = 'closed', closed_at = $1, updated_at = $1
WHERE state = 'resolved' AND resolved_at <= $2
RETURNING id, cycle
"""
MARK_OVERDUE_SQL = {
    "dispatch": """UPDATE incidents SET dispatch_overdue_at = $1 WHERE state = 'unrouted' AND dispatch_due_at <= $1
                   AND dispatch_overdue_at IS NULL RETURNING id, cycle""",
    "accept": """UPDATE incidents SET accept_overdue_at = $1 WHERE state = 'dispatched' AND accept_due_at <= $1
                 AND accept_overdue_at IS NULL RETURNING id, cycle""",
    "resolve": """UPDATE incidents SET resolve_overdue_at = $1 WHERE state = 'accepted' AND resolve_due_at <= $1
                  AND resolve_overdue_at IS NULL RETURNING id, cycle""",
}
EVENT_SQL = """
INSERT INTO incident_events (incident_id, cycle, kind, actor_id, data, occurred_at)
SELECT id, cycle, $2, NULL, $3, $4 FROM unnest($1::bigint[], $5::int[]) AS t(id, cycle)
"""
OVERDUE_SQL = """
SELECT i.id, i.cycle, i.state, c.life_safety, a.path,
       CASE i.state WHEN 'unrouted' THEN i.dispatch_due_at WHEN 'dispatched' THEN i.accept_due_at
                    ELSE i.resolve_due_at END AS due_at,
       (SELECT max(e.level) FROM escalations e
        WHERE e.incident_id = i.id AND e.cycle = i.cycle
          AND e.stage = CASE i.state WHEN 'unrouted' THEN 'dispatch' WHEN 'dispatched' THEN 'accept'
                                     ELSE 'resolve' END) AS last_level
FROM incidents i JOIN categories c ON c.code = i.category JOIN areas a ON a.id = i.area_id
WHERE (i.state = 'unrouted' AND i.dispatch_due_at <= $1)
   OR (i.state = 'dispatched' AND i.accept_due_at <= $1)
   OR (i.state = 'accepted' AND i.resolve_due_at <= $1)
ORDER BY i.id
FOR UPDATE OF i SKIP LOCKED
"""
AREA_BY_CODE_SQL = "SELECT id FROM areas WHERE code = $1"
ESCALATION_INSERT_SQL = """
INSERT INTO escalations (incident_id, cycle, stage, level, area_id, sent_at) VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT DO NOTHING RETURNING level
"""
# Life-safety incidents a grid has not accepted: 15 minutes after they reached it (each dispatch,
# transfer or reopen restarts that clock) its members are texted, 15 minutes later its supervisors.
UNACCEPTED_SQL = """
SELECT i.id, i.cycle, i.area_id, i.reached_grid_at FROM incidents i JOIN categories c ON c.code = i.category
WHERE i.state = 'dispatched' AND c.life_safety AND i.reached_grid_at <= $1 AND i.reached_grid_at > $2
"""
UNACCEPTED_STEPS = ((dt.timedelta(minutes=15), "members"), (dt.timedelta(minutes=30), "supervisors"))
DEADLINE_LOCK_SQL = "SELECT pg_try_advisory_xact_lock(hashtextextended('deadline-pass', 0))"


@dataclasses.dataclass
class PassResult:
    closed: int = 0
    marked: int = 0
    escalated: int = 0
    reminded: int = 0  # life-safety "still not accepted" reminders
    notifications: list[int] = dataclasses.field(default_factory=list)
    skipped: bool = False  # another process is running the pass


def owed_level(due_at: dt.datetime, now: dt.datetime, *, life_safety: bool, max_level: int) -> int:
    """The highest escalation level owed now (0 before the due time)."""
    if now < due_at or max_level < 1:
        return 0
    step = STEP_LIFE_SAFETY if life_safety else STEP
    return min(max_level, 1 + int((now - due_at) / step))


def ancestors(path: str) -> list[str]:
    """Codes above the area, nearest first: '/ZW/ZW-ZWZ/ZW-ZWZ-C02/G/' → [C02, ZWZ, ZW]."""
    codes = [code for code in path.split("/") if code]
    return list(reversed(codes[:-1]))


async def run_pass(conn: Connection, now: dt.datetime) -> PassResult:
    """One pass, inside the caller's transaction; the caller enqueues `notify` for the notifications."""
    result = PassResult()
    if not await conn.fetchval(DEADLINE_LOCK_SQL):
        result.skipped = True
        return result
    closed = await conn.fetch(CLOSE_SQL, now, now - CLOSE_AFTER)
    if closed:
        await conn.execute(EVENT_SQL, [r["id"] for r in closed], "close", {"automatic": True}, now,
                           [r["cycle"] for r in closed])
    result.closed = len(closed)
    for stage, sql in MARK_OVERDUE_SQL.items():
        marked = await conn.fetch(sql, now)
        if marked:
            await conn.execute(EVENT_SQL, [r["id"] for r in marked], "overdue", {"stage": stage}, now,
                               [r["cycle"] for r in marked])
        result.marked += len(marked)
    for row in await conn.fetch(OVERDUE_SQL, now):
        above = ancestors(row["path"])
        level = owed_level(row["due_at"], now, life_safety=row["life_safety"], max_level=len(above))
        if level <= (row["last_level"] or 0):
            continue
        stage = STAGES[row["state"]]
        area_id = await conn.fetchval(AREA_BY_CODE_SQL, above[level - 1])
        if await conn.fetchval(ESCALATION_INSERT_SQL, row["id"], row["cycle"], stage, level, area_id, now) is None:
            continue
        await conn.execute(EVENT_SQL, [row["id"]], "escalated", {"stage": stage, "level": level,
                                                                  "area_code": above[level - 1]}, now, [row["cycle"]])
        notification = await notifications.record(
            conn, event=notifications.INCIDENT_ESCALATED, incident_id=row["id"],
            audience=notifications.supervisors_audience(area_id), payload={"stage": stage, "level": level},
            dedupe_key=f"escalation:{row['id']}:{row['cycle']}:{stage}:{level}", now=now)
        if notification is not None:
            result.notifications.append(notification)
        result.escalated += 1
    # Older than 2 h: long reminded (and escalated); a pass that was down that long does not text late.
    for row in await conn.fetch(UNACCEPTED_SQL, now - UNACCEPTED_STEPS[0][0], now - dt.timedelta(hours=2)):
        for after, who in UNACCEPTED_STEPS:
            if now - row["reached_grid_at"] < after:
                continue
            audience = notifications.grid_audience(row["area_id"]) if who == "members" \
                else notifications.supervisors_audience(row["area_id"])
            # The reach time in the key: a transfer or reopen starts a new clock with its own reminders.
            notification = await notifications.record(
                conn, event=notifications.LIFE_SAFETY_UNACCEPTED, incident_id=row["id"], audience=audience,
                payload={"minutes": int(after.total_seconds() // 60), "to": who},
                dedupe_key=f"unaccepted:{row['id']}:{row['reached_grid_at'].timestamp():.0f}:{who}", now=now)
            if notification is not None:
                result.notifications.append(notification)
                result.reminded += 1
    return result
