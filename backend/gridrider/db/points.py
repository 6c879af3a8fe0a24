"""SQL for `points_ledger` (DESIGN.md §2d): awards, penalties, reversals, and what a rider sees.

Every write is `INSERT … ON CONFLICT DO NOTHING` on the ledger's UNIQUE (member, reason, source_kind,
source_id, cycle), so a redelivered event writes nothing twice. Times come from the caller (the
injectable clock), never from SQL `now()`.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import msgspec

from gridrider.db.pool import Connection, Pool

# ── locks ─────────────────────────────────────────────────────────────────────────────────────────

# Awards of one incident are computed one transaction at a time (the ≤5 corroborations, "one per
# courier"). An advisory lock rather than a row lock on the incident, so a photo job that already
# holds its report's row lock cannot deadlock with a merge that holds the incident and moves reports.
INCIDENT_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtextextended('points:incident:' || $1::bigint, 0))"
# One member's daily room is read and used by one transaction at a time; callers take these in
# ascending member order (after the incident lock) so two awarding transactions cannot deadlock.
MEMBER_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtextextended('points:member:' || $1::bigint, 0))"


async def lock_incident(conn: Connection, incident_id: int) -> None:
    await conn.execute(INCIDENT_LOCK_SQL, incident_id)


async def lock_members(conn: Connection, member_ids: list[int]) -> None:
    for member_id in sorted(set(member_ids)):
        await conn.execute(MEMBER_LOCK_SQL, member_id)


# ── incidents and their reports ───────────────────────────────────────────────────────────────────


class IncidentForPoints(msgspec.Struct, frozen=True):
    id: int
    state: str
    cycle: int
    category: str
    weight: Decimal
    first_reporter_id: int | None
    ever_accepted: bool


# Accepted in this cycle (accepted_at is set while it lasts) or an earlier one (a new cycle clears
# accepted_at; the workflow's `accept` event stays in the audit trail).
INCIDENT_FOR_POINTS_SQL = """
SELECT i.id, i.state, i.cycle, i.category, c.weight, i.first_reporter_id,
       (i.accepted_at IS NOT NULL
        OR EXISTS (SELECT 1 FROM incident_events e WHERE e.incident_id = i.id AND e.kind = 'accept')) AS ever_accepted
FROM incidents i JOIN categories c ON c.code = i.category
WHERE i.id = $1
"""


async def incident_for_points(conn: Connection, incident_id: int) -> IncidentForPoints | None:
    row = await conn.fetchrow(INCIDENT_FOR_POINTS_SQL, incident_id)
    return IncidentForPoints(**row) if row else None


# The earliest capture among the incident's reports by couriers (never `system`, nor staff);
# ties by received_at, then id.
EARLIEST_COURIER_REPORTER_SQL = """
SELECT r.reporter_id
FROM reports r JOIN members m ON m.id = r.reporter_id
WHERE r.incident_id = $1 AND m.role = 'courier'
ORDER BY r.captured_at, r.received_at, r.id
LIMIT 1
"""
# Fixed once: a later, earlier-captured report never changes it.
FIX_FIRST_REPORTER_SQL = """
UPDATE incidents SET first_reporter_id = $2 WHERE id = $1 AND first_reporter_id IS NULL
"""


async def earliest_courier_reporter(conn: Connection, incident_id: int) -> int | None:
    return await conn.fetchval(EARLIEST_COURIER_REPORTER_SQL, incident_id)


async def fix_first_reporter(conn: Connection, incident_id: int, member_id: int) -> None:
    await conn.execute(FIX_FIRST_REPORTER_SQL, incident_id, member_id)


class ReportForPoints(msgspec.Struct, frozen=True):
    id: int
    reporter_id: int
    photos_done: bool        # every report photo is ready or failed (or there is none)
    reused: bool             # a photo is marked reused and no flag on that photo was cleared
    open_flag: bool          # an open flag applies to this report
    open_report_flag_id: int | None  # the oldest open flag naming this report (where withheld points are recorded)
    released_flag: bool      # a cleared flag on this report had withheld points (paid as flag_release)
    confirmed_flag: bool     # a confirmed flag applies: nothing is paid


# A flag applies to a report when it names the report, one of its photos, or (naming no report) the
# report's incident and either no member or the report's author. Member-only flags name no points.
# Three EXISTS, one per way of naming, so each uses its own index on flags: written as one OR inside a
# single EXISTS, PostgreSQL scanned every flag once per report — 1.2 s for an incident of 290 reports
# with 4,900 flags, under the incident's points lock (found by the fault suite's soak).
def _flag_applies(state: str) -> str:
    assert state in ("open", "confirmed")  # written into the SQL text: only these constants
    return f"""(
       EXISTS (SELECT 1 FROM flags f WHERE f.report_id = r.id AND f.state = '{state}')
    OR EXISTS (SELECT 1 FROM photos p JOIN flags f ON f.photo_id = p.id
               WHERE p.report_id = r.id AND f.state = '{state}')
    OR EXISTS (SELECT 1 FROM flags f
               WHERE f.incident_id = r.incident_id AND f.report_id IS NULL AND f.state = '{state}'
                 AND (f.member_id IS NULL OR f.member_id = r.reporter_id)))"""


# Courier reports of an incident in first-reporter order (captured_at, received_at, id); $2, when not
# null, keeps only that courier's (the first reporter's, once no corroboration can be paid any more).
REPORTS_FOR_POINTS_SQL = f"""
SELECT r.id, r.reporter_id,
       NOT EXISTS (SELECT 1 FROM photos p WHERE p.report_id = r.id AND p.role = 'report' AND p.state = 'pending')
           AS photos_done,
       EXISTS (SELECT 1 FROM photos p
               WHERE p.report_id = r.id AND p.reused_of_photo_id IS NOT NULL
                 AND NOT EXISTS (SELECT 1 FROM flags f WHERE f.photo_id = p.id AND f.state = 'cleared')) AS reused,
       {_flag_applies('open')} AS open_flag,
       (SELECT min(f.id) FROM flags f WHERE f.state = 'open' AND f.report_id = r.id) AS open_report_flag_id,
       EXISTS (SELECT 1 FROM flags f WHERE f.state = 'cleared' AND f.withheld_points > 0 AND f.report_id = r.id)
           AS released_flag,
       {_flag_applies('confirmed')} AS confirmed_flag
FROM reports r JOIN members m ON m.id = r.reporter_id
WHERE r.incident_id = $1 AND m.role = 'courier' AND ($2::bigint IS NULL OR r.reporter_id = $2)
ORDER BY r.captured_at, r.received_at, r.id
"""


async def reports_for_points(conn: Connection, incident_id: int, *, reporter_id: int | None = None,
                             ) -> list[ReportForPoints]:
    return [ReportForPoints(**r) for r in await conn.fetch(REPORTS_FOR_POINTS_SQL, incident_id, reporter_id)]


# Couriers already paid a corroboration for a report now in this incident.
CORROBORATED_MEMBERS_SQL = """
SELECT DISTINCT l.member_id
FROM points_ledger l JOIN reports r ON r.id = l.source_id
WHERE l.reason = 'corroboration' AND l.source_kind = 'report' AND r.incident_id = $1
"""


async def corroborated_members(conn: Connection, incident_id: int) -> set[int]:
    return {r["member_id"] for r in await conn.fetch(CORROBORATED_MEMBERS_SQL, incident_id)}


# Idempotent: the same withheld award recorded twice stays one amount.
RECORD_WITHHELD_SQL = "UPDATE flags SET withheld_points = $2 WHERE id = $1 AND state = 'open'"
WITHHELD_REPORT_MEMBERS_SQL = """
SELECT DISTINCT r.reporter_id
FROM flags f JOIN reports r ON r.id = f.report_id
WHERE r.incident_id = $1 AND f.withheld_points > 0 AND f.state IN ('open', 'cleared')
"""


async def record_withheld(conn: Connection, flag_id: int, amount: int) -> None:
    await conn.execute(RECORD_WITHHELD_SQL, flag_id, amount)


async def members_with_withheld_points(conn: Connection, incident_id: int) -> set[int]:
    """Reporters of this incident whose award sits on a flag (open, or cleared and so paid as flag_release)."""
    return {r["reporter_id"] for r in await conn.fetch(WITHHELD_REPORT_MEMBERS_SQL, incident_id)}


# ── ledger rows ───────────────────────────────────────────────────────────────────────────────────

LEDGER_INSERT_SQL = """
INSERT INTO points_ledger (member_id, reason, amount, source_kind, source_id, cycle, counts_toward_cap,
                           counts_toward_ranking, local_day, note, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT ON CONSTRAINT points_ledger_once_per_source DO NOTHING
RETURNING id
"""
LEDGER_ROW_EXISTS_SQL = """
SELECT EXISTS (SELECT 1 FROM points_ledger
               WHERE member_id = $1 AND reason = $2 AND source_kind = $3 AND source_id = $4 AND cycle = $5)
"""
CAP_USED_SQL = """
SELECT coalesce(sum(amount), 0) FROM points_ledger WHERE member_id = $1 AND local_day = $2 AND counts_toward_cap
"""


async def insert_row(conn: Connection, *, member_id: int, reason: str, amount: int, source_kind: str,
                     source_id: int, cycle: int, counts_toward_cap: bool, counts_toward_ranking: bool,
                     local_day: dt.date, note: str | None, now: dt.datetime) -> int | None:
    """The new row's id, or None when the row already existed."""
    return await conn.fetchval(LEDGER_INSERT_SQL, member_id, reason, amount, source_kind, source_id, cycle,
                               counts_toward_cap, counts_toward_ranking, local_day, note, now)


async def row_exists(conn: Connection, *, member_id: int, reason: str, source_kind: str, source_id: int,
                     cycle: int) -> bool:
    return await conn.fetchval(LEDGER_ROW_EXISTS_SQL, member_id, reason, source_kind, source_id, cycle)


async def cap_used(conn: Connection, member_id: int, day: dt.date) -> int:
    return int(await conn.fetchval(CAP_USED_SQL, member_id, day))


# An award clipped to nothing writes no ledger row, so "the rest is lost" is remembered in the
# incident's audit trail; a later call (a photo finishing on another day) must not pay it then.
CAP_LOST_EXISTS_SQL = """
SELECT EXISTS (SELECT 1 FROM incident_events
               WHERE incident_id = $1 AND kind = 'points_capped'
                 AND data @> jsonb_build_object('member_id', $2::bigint, 'reason', $3::text,
                                                'source_kind', $4::text, 'source_id', $5::bigint,
                                                'cycle', $6::int))
"""
CAP_LOST_INSERT_SQL = """
INSERT INTO incident_events (incident_id, cycle, kind, actor_id, data, occurred_at)
VALUES ($1, $2, 'points_capped', NULL,
        jsonb_build_object('member_id', $3::bigint, 'reason', $4::text, 'source_kind', $5::text,
                           'source_id', $6::bigint, 'cycle', $7::int, 'amount', $8::int, 'local_day', $9::text),
        $10)
"""


async def cap_lost_exists(conn: Connection, *, incident_id: int, member_id: int, reason: str, source_kind: str,
                          source_id: int, cycle: int) -> bool:
    return await conn.fetchval(CAP_LOST_EXISTS_SQL, incident_id, member_id, reason, source_kind, source_id, cycle)


async def record_cap_lost(conn: Connection, *, incident_id: int, incident_cycle: int, member_id: int, reason: str,
                          source_kind: str, source_id: int, cycle: int, amount: int, day: dt.date,
                          now: dt.datetime) -> None:
    await conn.execute(CAP_LOST_INSERT_SQL, incident_id, incident_cycle, member_id, reason, source_kind, source_id,
                       cycle, amount, day.isoformat(), now)


class LedgerRef(msgspec.Struct, frozen=True):
    id: int
    member_id: int
    reason: str
    amount: int


# Positive awards of an incident nobody has reversed yet: its first_report and resolve_bonus rows
# (every cycle), corroborations of the reports now in it, and flag_release rows of its flags.
UNREVERSED_AWARDS_SQL = """
SELECT l.id, l.member_id, l.reason, l.amount
FROM points_ledger l
WHERE l.amount > 0
  AND ((l.reason IN ('first_report', 'resolve_bonus') AND l.source_kind = 'incident' AND l.source_id = $1)
       OR (l.reason = 'corroboration' AND l.source_kind = 'report'
           AND l.source_id IN (SELECT r.id FROM reports r WHERE r.incident_id = $1))
       OR (l.reason = 'flag_release' AND l.source_kind = 'flag'
           AND l.source_id IN (SELECT f.id FROM flags f LEFT JOIN reports r ON r.id = f.report_id
                               WHERE f.incident_id = $1 OR r.incident_id = $1)))
  AND NOT EXISTS (SELECT 1 FROM points_ledger x
                  WHERE x.reason = 'reversal' AND x.source_kind = 'ledger' AND x.source_id = l.id)
ORDER BY l.id
"""
PENALTY_ROW_SQL = """
SELECT id, member_id, reason, amount FROM points_ledger
WHERE reason = 'not_a_hazard' AND source_kind = 'incident' AND source_id = $1 AND cycle = $2
ORDER BY id
"""


async def unreversed_awards(conn: Connection, incident_id: int) -> list[LedgerRef]:
    return [LedgerRef(**r) for r in await conn.fetch(UNREVERSED_AWARDS_SQL, incident_id)]


async def penalty_rows(conn: Connection, incident_id: int, cycle: int) -> list[LedgerRef]:
    return [LedgerRef(**r) for r in await conn.fetch(PENALTY_ROW_SQL, incident_id, cycle)]


# ── what a rider sees ─────────────────────────────────────────────────────────────────────────────

class ProvisionalRow(msgspec.Struct, frozen=True):
    incident_id: int
    state: str
    cycle: int
    weight: Decimal
    first_reporter_id: int | None
    would_be_first_id: int | None
    earliest_report_reused: bool
    has_first_report: bool
    has_resolve_bonus: bool
    has_corroboration: bool
    corroborations: int


# Open incidents the member (a courier) has reports in, with what is already paid.
PROVISIONAL_SQL = """
SELECT i.id AS incident_id, i.state, i.cycle, c.weight, i.first_reporter_id,
       (SELECT r.reporter_id FROM reports r JOIN members m ON m.id = r.reporter_id
        WHERE r.incident_id = i.id AND m.role = 'courier'
        ORDER BY r.captured_at, r.received_at, r.id LIMIT 1) AS would_be_first_id,
       coalesce((SELECT EXISTS (SELECT 1 FROM photos p WHERE p.report_id = r.id AND p.reused_of_photo_id IS NOT NULL)
                 FROM reports r WHERE r.incident_id = i.id AND r.reporter_id = $1
                 ORDER BY r.captured_at, r.received_at, r.id LIMIT 1), false) AS earliest_report_reused,
       EXISTS (SELECT 1 FROM points_ledger l WHERE l.member_id = $1 AND l.reason = 'first_report'
               AND l.source_kind = 'incident' AND l.source_id = i.id AND l.cycle = i.cycle) AS has_first_report,
       EXISTS (SELECT 1 FROM points_ledger l WHERE l.member_id = $1 AND l.reason = 'resolve_bonus'
               AND l.source_kind = 'incident' AND l.source_id = i.id AND l.cycle = i.cycle) AS has_resolve_bonus,
       EXISTS (SELECT 1 FROM points_ledger l JOIN reports r ON r.id = l.source_id
               WHERE l.member_id = $1 AND l.reason = 'corroboration' AND l.source_kind = 'report'
                 AND r.incident_id = i.id) AS has_corroboration,
       (SELECT count(DISTINCT l.member_id) FROM points_ledger l JOIN reports r ON r.id = l.source_id
        WHERE l.reason = 'corroboration' AND l.source_kind = 'report' AND r.incident_id = i.id) AS corroborations
FROM incidents i JOIN categories c ON c.code = i.category
WHERE i.state IN ('unrouted', 'dispatched', 'accepted')
  AND EXISTS (SELECT 1 FROM members m WHERE m.id = $1 AND m.role = 'courier')
  AND i.id IN (SELECT r.incident_id FROM reports r WHERE r.reporter_id = $1 AND r.incident_id IS NOT NULL)
ORDER BY i.id
"""


async def provisional_rows(conn: Connection | Pool, member_id: int) -> list[ProvisionalRow]:
    return [ProvisionalRow(**r) for r in await conn.fetch(PROVISIONAL_SQL, member_id)]


BALANCE_SQL = "SELECT coalesce(sum(amount), 0) FROM points_ledger WHERE member_id = $1"
# Rankings count every row dated in the period except redemptions ($2 ≤ local_day < $3).
PERIOD_POINTS_SQL = """
SELECT coalesce(sum(amount), 0) AS points, count(*) AS rows
FROM points_ledger
WHERE member_id = $1 AND counts_toward_ranking AND reason <> 'redemption' AND local_day >= $2 AND local_day < $3
"""
# The rider's rank in the month among the riders of their own areas' subtrees (every rider when they
# have none): 1 + those with strictly more points, from the same ranking_totals the rankings page
# reads (migration 0008), so the strip on the phone and the ranking page agree. NULL when unranked.
RANK_SQL = """
WITH mine AS (
    SELECT t.points, ARRAY(SELECT $2 || ':' || a.path FROM member_areas ma JOIN areas a ON a.id = ma.area_id
                           WHERE ma.member_id = t.member_id) AS keys
    FROM ranking_totals t WHERE t.period = $2 AND t.member_id = $1 AND t.ranked
)
SELECT 1 + (SELECT count(*) FROM ranking_totals t
            WHERE t.period = $2 AND t.ranked AND t.points > mine.points
              AND (cardinality(mine.keys) = 0 OR t.scope_keys && mine.keys))
FROM mine
"""


async def balance(conn: Connection | Pool, member_id: int) -> int:
    return int(await conn.fetchval(BALANCE_SQL, member_id))


async def period_points(conn: Connection | Pool, member_id: int, start: dt.date, end: dt.date) -> tuple[int, int]:
    row = await conn.fetchrow(PERIOD_POINTS_SQL, member_id, start, end)
    return int(row["points"]), int(row["rows"])


async def month_rank(conn: Connection | Pool, member_id: int, month: str) -> int | None:
    """`month` as ranking_totals keys it: YYYY-MM."""
    return await conn.fetchval(RANK_SQL, member_id, month)


class LedgerEntryRow(msgspec.Struct, frozen=True):
    id: int
    reason: str
    amount: int
    created_at: dt.datetime
    incident_id: int | None
    cycle: int
    note: str | None


# The incident a row is about: its source incident, its source report's incident, and for a reversal
# or a flag_release the incident behind the reversed row or the flag.
RECENT_LEDGER_SQL = """
SELECT l.id, l.reason, l.amount, l.created_at, l.cycle, l.note,
       CASE l.source_kind
           WHEN 'incident' THEN l.source_id
           WHEN 'report' THEN r.incident_id
           WHEN 'ledger' THEN CASE o.source_kind WHEN 'incident' THEN o.source_id
                                                 WHEN 'report' THEN orep.incident_id END
           WHEN 'flag' THEN coalesce(f.incident_id, frep.incident_id)
       END AS incident_id
FROM points_ledger l
LEFT JOIN reports r ON l.source_kind = 'report' AND r.id = l.source_id
LEFT JOIN points_ledger o ON l.source_kind = 'ledger' AND o.id = l.source_id
LEFT JOIN reports orep ON o.source_kind = 'report' AND orep.id = o.source_id
LEFT JOIN flags f ON l.source_kind = 'flag' AND f.id = l.source_id
LEFT JOIN reports frep ON frep.id = f.report_id
WHERE l.member_id = $1 AND ($3::timestamptz IS NULL OR (l.created_at, l.id) < ($3, $4::bigint))
ORDER BY l.created_at DESC, l.id DESC
LIMIT $2
"""


async def recent_ledger(conn: Connection | Pool, member_id: int, limit: int,
                        before: tuple[dt.datetime, int] | None = None) -> list[LedgerEntryRow]:
    """The member's newest rows, or with `before` (created_at, id) of a row the ones older than it."""
    at, row_id = before if before is not None else (None, None)
    return [LedgerEntryRow(**r) for r in await conn.fetch(RECENT_LEDGER_SQL, member_id, limit, at, row_id)]
