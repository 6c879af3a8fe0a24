"""After the clock jumps: run the deadline pass as several workers would, and check its escalations against
DESIGN §2c written out here — an overdue stage escalates to the highest level owed now (level 1 at the due
time, one more per 24 h, per hour for life-safety, no higher than the county), that level only, once."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from typing import Any

from gridrider.db.pool import connect, create_pool
from gridrider.jobs.deadlines import run_deadline_pass
from gridrider.jobs.queue import arq_redis
from gridrider.services import Services
from tests.conftest import make_settings
from tests.faults.stack import Stack


class JumpedClock:
    def __init__(self, offset_s: float) -> None:
        self.offset = dt.timedelta(seconds=offset_s)

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset


async def run_deadline_passes(stack: Stack, offset_s: float, *, concurrent: int) -> None:
    settings = make_settings(stack.root / "data", stack.database_url, f"redis://127.0.0.1:{stack.redis.port}/0",
                             stack.vapid_pem)
    pool = await create_pool(stack.database_url, min_size=1, max_size=concurrent + 1)
    redis = arq_redis(settings.redis_url)
    try:
        services = Services(settings=settings, clock=JumpedClock(offset_s), pool=pool, redis=redis, blobs=None)
        await asyncio.gather(*(run_deadline_pass(services) for _ in range(concurrent)))
    finally:
        await redis.aclose()
        await pool.close()


def expected_level(overdue: dt.timedelta, *, life_safety: bool, levels_above: int) -> int:
    step = dt.timedelta(hours=1) if life_safety else dt.timedelta(hours=24)
    return min(levels_above, 1 + int(overdue / step))


async def check_escalations(stack: Stack, offset_s: float) -> dict[str, Any]:
    """Each incident still waiting to be accepted and overdue has exactly one accept-stage escalation, at the
    level owed; every escalation was alerted by exactly one notification. Returns a count per level."""
    now = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset_s)
    conn = await connect(stack.database_url)
    try:
        rows = await conn.fetch("""
            SELECT i.id, i.accept_due_at, c.life_safety, a.path,
                   coalesce(array_agg(e.level ORDER BY e.level) FILTER (WHERE e.level IS NOT NULL), '{}') AS levels
            FROM incidents i JOIN categories c ON c.code = i.category JOIN areas a ON a.id = i.area_id
            LEFT JOIN escalations e ON e.incident_id = i.id AND e.cycle = i.cycle AND e.stage = 'accept'
            WHERE i.state = 'dispatched'
            GROUP BY i.id, c.life_safety, a.path""")
        escalations = await conn.fetchval("SELECT count(*) FROM escalations")
        alerts = await conn.fetchval("SELECT count(*) FROM notifications WHERE event = 'incident_escalated'")
    finally:
        await conn.close()
    wrong = []
    levels: Counter[str] = Counter()
    for row in rows:
        if row["accept_due_at"] > now:
            if row["levels"]:
                wrong.append((row["id"], "escalated before its due time", row["levels"]))
            continue
        levels_above = len([code for code in row["path"].split("/") if code]) - 1
        want = expected_level(now - row["accept_due_at"], life_safety=row["life_safety"], levels_above=levels_above)
        if list(row["levels"]) != [want]:
            wrong.append((row["id"], f"want only level {want}", list(row["levels"])))
        levels[f"level {want}{' (life-safety)' if row['life_safety'] else ''}"] += 1
    assert not wrong, f"escalations differ from the rule: {wrong[:10]}"
    assert alerts == escalations, f"{escalations} escalations but {alerts} escalation alerts"
    assert levels, "nothing was overdue after the jump: the scenario tested nothing"
    return dict(sorted(levels.items()))
