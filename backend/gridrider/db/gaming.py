"""SQL for anti-gaming flags (DESIGN.md §2d): detection reads and writes, and the supervisors' review.

Flag writes are `INSERT … SELECT … WHERE NOT EXISTS`, so a redelivered job raises nothing twice.
Times come from the caller (the injectable clock), never from SQL `now()`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from gridrider.db.pool import Connection, Pool

# ── detection ─────────────────────────────────────────────────────────────────────────────────────


class ReportForGaming(msgspec.Struct, frozen=True):
    id: int
    reporter_id: int
    role: str
    incident_id: int | None
    lat: float
    lon: float
    captured_at: dt.datetime
    received_at: dt.datetime
    queued_for_s: int | None


REPORT_FOR_GAMING_SQL = """
SELECT r.id, r.reporter_id, m.role, r.incident_id, r.lat, r.lon, r.captured_at, r.received_at, r.queued_for_s
FROM reports r JOIN members m ON m.id = r.reporter_id
WHERE r.id = $1
"""
# The same rider's report just before this one in capture order (ties by received_at, then id).
PREVIOUS_REPORT_SQL = """
SELECT p.id, p.reporter_id, 'courier' AS role, p.incident_id, p.lat, p.lon, p.captured_at, p.received_at,
       p.queued_for_s
FROM reports p
WHERE p.reporter_id = $1 AND p.id <> $2
  AND (p.captured_at, p.received_at, p.id) < ($3::timestamptz, $4::timestamptz, $2::bigint)
ORDER BY p.captured_at DESC, p.received_at DESC, p.id DESC
LIMIT 1
"""
# Reports by the rider received in the window ($3, $2] (the hour ending at this report's received_at).
RECEIVED_IN_WINDOW_SQL = """
SELECT count(*) FROM reports WHERE reporter_id = $1 AND received_at <= $2 AND received_at > $3
"""
# One flag of a kind per report.
INSERT_REPORT_FLAG_SQL = """
INSERT INTO flags (kind, member_id, report_id, incident_id, evidence, created_at)
SELECT $1, $2, $3, $4, $5, $6
WHERE NOT EXISTS (SELECT 1 FROM flags WHERE kind = $1 AND report_id = $3)
RETURNING id
"""
# One burst flag per rider per hour: none when the rider already has one whose window ended less than
# an hour before this one ends ($5 = window end; evidence.window_end_epoch is the window end in seconds).
INSERT_BURST_FLAG_SQL = """
INSERT INTO flags (kind, member_id, report_id, incident_id, evidence, created_at)
SELECT 'burst', $1, $2, $3, $4, $6
WHERE NOT EXISTS (
    SELECT 1 FROM flags f
    WHERE f.kind = 'burst' AND f.member_id = $1
      AND abs((f.evidence->>'window_end_epoch')::double precision - extract(epoch FROM $5::timestamptz)) < 3600)
RETURNING id
"""
# Serialises one rider's burst checks, so two reports processed at once cannot both raise the hour's flag.
MEMBER_GAMING_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtextextended('gaming:member:' || $1::bigint, 0))"


async def report_for_gaming(conn: Connection, report_id: int) -> ReportForGaming | None:
    row = await conn.fetchrow(REPORT_FOR_GAMING_SQL, report_id)
    return ReportForGaming(**row) if row else None


async def previous_report(conn: Connection, report: ReportForGaming) -> ReportForGaming | None:
    row = await conn.fetchrow(PREVIOUS_REPORT_SQL, report.reporter_id, report.id, report.captured_at,
                              report.received_at)
    return ReportForGaming(**row) if row else None


async def received_in_window(conn: Connection, member_id: int, end: dt.datetime, start: dt.datetime) -> int:
    return int(await conn.fetchval(RECEIVED_IN_WINDOW_SQL, member_id, end, start))


async def insert_report_flag(conn: Connection, *, kind: str, report: ReportForGaming, evidence: dict[str, Any],
                             now: dt.datetime) -> int | None:
    """The new flag's id, or None when this report already carries a flag of this kind."""
    return await conn.fetchval(INSERT_REPORT_FLAG_SQL, kind, report.reporter_id, report.id, report.incident_id,
                               evidence, now)


async def insert_burst_flag(conn: Connection, *, report: ReportForGaming, evidence: dict[str, Any],
                            now: dt.datetime) -> int | None:
    await conn.execute(MEMBER_GAMING_LOCK_SQL, report.reporter_id)
    return await conn.fetchval(INSERT_BURST_FLAG_SQL, report.reporter_id, report.id, report.incident_id, evidence,
                               report.received_at, now)


# `pair_collusion`, judged when a grid member accepts an incident ($1 the incident, $2 the member,
# window ($3, $4] of receipt times, $4 = now). For each courier with a report in the incident: their
# earliest report there (the one that earns, in capture order), and over all their reports received in
# the window, how many exist and how many were accepted by this member, with the median seconds from
# receipt to that accept. A report counts as accepted by whoever made the first `accept` of its
# incident at or after the report arrived (the accept that answered it; a report merged into an
# incident accepted earlier was answered by nobody). The current accept is already an event in the
# caller's transaction, so it counts. Report reads go through reports_reporter_received_idx.
PAIR_STATS_SQL = """
WITH riders AS (
    SELECT DISTINCT ON (r.reporter_id) r.reporter_id, r.id AS report_id
    FROM reports r JOIN members m ON m.id = r.reporter_id
    WHERE r.incident_id = $1 AND m.role = 'courier'
    ORDER BY r.reporter_id, r.captured_at, r.received_at, r.id
)
SELECT riders.reporter_id AS rider_id, riders.report_id,
       count(w.id) AS reports,
       count(*) FILTER (WHERE a.actor_id = $2) AS accepted,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM a.occurred_at - w.received_at)::double precision)
           FILTER (WHERE a.actor_id = $2) AS median_s
FROM riders
LEFT JOIN reports w ON w.reporter_id = riders.reporter_id AND w.received_at > $3 AND w.received_at <= $4
LEFT JOIN LATERAL (
    SELECT e.actor_id, e.occurred_at FROM incident_events e
    WHERE e.incident_id = w.incident_id AND e.kind = 'accept' AND e.occurred_at >= w.received_at
      AND e.occurred_at <= $4
    ORDER BY e.occurred_at, e.id
    LIMIT 1) a ON true
GROUP BY riders.reporter_id, riders.report_id
ORDER BY riders.reporter_id
"""
# One open pair_collusion flag per (rider, grid member): none while one for the pair is still open.
INSERT_PAIR_FLAG_SQL = """
INSERT INTO flags (kind, member_id, report_id, incident_id, evidence, created_at)
SELECT 'pair_collusion', $1, $2, $3, $4, $6
WHERE NOT EXISTS (
    SELECT 1 FROM flags f
    WHERE f.kind = 'pair_collusion' AND f.member_id = $1 AND f.state = 'open'
      AND (f.evidence->>'grid_member_id')::bigint = $5)
RETURNING id
"""
# Serialises the check-then-insert above for one pair, so two accepts committing at once cannot both
# raise it. Its own key: nothing else takes it, so it cannot deadlock with the report pipeline's locks.
PAIR_LOCK_SQL = """
SELECT pg_advisory_xact_lock(hashtextextended('gaming:pair:' || $1::bigint || ':' || $2::bigint, 0))
"""
PSEUDONYM_SQL = "SELECT pseudonym FROM members WHERE id = $1"


class PairStats(msgspec.Struct, frozen=True):
    rider_id: int
    report_id: int  # the rider's earliest report in the accepted incident, the one its points are for
    reports: int  # the rider's reports received in the window
    accepted: int  # …of which this grid member accepted
    median_s: float | None  # median receipt → accept seconds over those; None when there are none


async def pair_stats(conn: Connection, *, incident_id: int, grid_member_id: int, start: dt.datetime,
                     now: dt.datetime) -> list[PairStats]:
    rows = await conn.fetch(PAIR_STATS_SQL, incident_id, grid_member_id, start, now)
    return [PairStats(**r) for r in rows]


async def insert_pair_flag(conn: Connection, *, rider_id: int, report_id: int, incident_id: int,
                           grid_member_id: int, evidence: dict[str, Any], now: dt.datetime) -> int | None:
    """The new flag's id, or None while the pair already has an open one."""
    await conn.execute(PAIR_LOCK_SQL, rider_id, grid_member_id)
    return await conn.fetchval(INSERT_PAIR_FLAG_SQL, rider_id, report_id, incident_id, evidence, grid_member_id,
                               now)


async def pseudonym_of(conn: Connection, member_id: int) -> str | None:
    return await conn.fetchval(PSEUDONYM_SQL, member_id)


# ── review ────────────────────────────────────────────────────────────────────────────────────────


class FlagRow(msgspec.Struct, frozen=True):
    id: int
    kind: str
    state: str
    member_id: int | None
    member_pseudonym: str | None
    report_id: int | None
    reporter_id: int | None  # the flagged report's author
    incident_id: int | None  # the flag's incident, else its report's
    photo_id: int | None
    evidence: dict[str, Any]
    withheld_points: int
    decided_by: int | None
    decided_at: dt.datetime | None
    created_at: dt.datetime


_FLAG_SELECT = """
SELECT f.id, f.kind, f.state, f.member_id, m.pseudonym AS member_pseudonym, f.report_id, r.reporter_id,
       coalesce(f.incident_id, r.incident_id) AS incident_id, f.photo_id, f.evidence, f.withheld_points,
       f.decided_by, f.decided_at, f.created_at
FROM flags f
LEFT JOIN members m ON m.id = f.member_id
LEFT JOIN reports r ON r.id = f.report_id
"""
# The flagged rider has an area inside one of the caller's subtrees ($N NULL = everything, for admins).
_IN_SCOPE = """
($SCOPE::text[] IS NULL OR EXISTS (
    SELECT 1 FROM member_areas ma JOIN areas a ON a.id = ma.area_id
    WHERE ma.member_id = f.member_id
      AND EXISTS (SELECT 1 FROM unnest($SCOPE::text[]) AS s(path) WHERE a.path LIKE s.path || '%')))
"""
OPEN_FLAGS_SQL = f"""
{_FLAG_SELECT}
WHERE f.state = 'open' AND {_IN_SCOPE.replace('$SCOPE', '$1')}
ORDER BY f.created_at DESC, f.id DESC
LIMIT $2
"""
FLAG_IN_SCOPE_SQL = f"{_FLAG_SELECT} WHERE f.id = $1 AND {_IN_SCOPE.replace('$SCOPE', '$2')}"
LOCK_FLAG_SQL = "SELECT state FROM flags WHERE id = $1 FOR UPDATE"
DECIDE_FLAG_SQL = """
UPDATE flags SET state = $2, decided_by = $3, decided_at = $4,
                 evidence = evidence || jsonb_build_object('decision', $5::jsonb)
WHERE id = $1 AND state = 'open'
RETURNING id
"""
# Another open flag naming the same report, oldest first (where its withheld points belong while it is open).
NEXT_OPEN_REPORT_FLAG_SQL = """
SELECT id FROM flags WHERE report_id = $1 AND state = 'open' AND id <> $2 ORDER BY id LIMIT 1
"""
MOVE_WITHHELD_SQL = """
WITH moved AS (UPDATE flags SET withheld_points = 0 WHERE id = $1 RETURNING $3::int AS amount)
UPDATE flags SET withheld_points = greatest(withheld_points, (SELECT amount FROM moved)) WHERE id = $2
"""


async def open_flags(conn: Connection | Pool, *, scope: list[str] | None, limit: int) -> list[FlagRow]:
    return [FlagRow(**r) for r in await conn.fetch(OPEN_FLAGS_SQL, scope, limit)]


async def flag_in_scope(conn: Connection | Pool, flag_id: int, scope: list[str] | None) -> FlagRow | None:
    row = await conn.fetchrow(FLAG_IN_SCOPE_SQL, flag_id, scope)
    return FlagRow(**row) if row else None


async def lock_flag(conn: Connection, flag_id: int) -> str | None:
    """Row-lock the flag; its state now."""
    return await conn.fetchval(LOCK_FLAG_SQL, flag_id)


async def decide_flag(conn: Connection, *, flag_id: int, state: str, decided_by: int, now: dt.datetime,
                      decision: dict[str, Any]) -> bool:
    return await conn.fetchval(DECIDE_FLAG_SQL, flag_id, state, decided_by, now, decision) is not None


async def next_open_report_flag(conn: Connection, report_id: int, flag_id: int) -> int | None:
    return await conn.fetchval(NEXT_OPEN_REPORT_FLAG_SQL, report_id, flag_id)


async def move_withheld(conn: Connection, from_flag: int, to_flag: int, amount: int) -> None:
    await conn.execute(MOVE_WITHHELD_SQL, from_flag, to_flag, amount)


class PaidRow(msgspec.Struct, frozen=True):
    id: int
    member_id: int
    reason: str
    amount: int


# Positive rows a report earned and nobody has reversed: its corroboration; the first_report and
# resolve_bonus of its incident when its author is the first reporter and this is their earliest
# report there (the one that earned); flag_release rows of flags naming it.
PAID_FOR_REPORT_SQL = """
WITH rep AS (SELECT r.id, r.reporter_id, r.incident_id FROM reports r WHERE r.id = $1),
earning AS (
    SELECT rep.id FROM rep JOIN incidents i ON i.id = rep.incident_id
    WHERE i.first_reporter_id = rep.reporter_id
      AND rep.id = (SELECT e.id FROM reports e WHERE e.incident_id = rep.incident_id AND e.reporter_id = rep.reporter_id
                    ORDER BY e.captured_at, e.received_at, e.id LIMIT 1))
SELECT l.id, l.member_id, l.reason, l.amount
FROM points_ledger l, rep
WHERE l.amount > 0 AND l.member_id = rep.reporter_id
  AND ((l.reason = 'corroboration' AND l.source_kind = 'report' AND l.source_id = rep.id)
       OR (l.reason IN ('first_report', 'resolve_bonus') AND l.source_kind = 'incident'
           AND l.source_id = rep.incident_id AND EXISTS (SELECT 1 FROM earning))
       OR (l.reason = 'flag_release' AND l.source_kind = 'flag'
           AND l.source_id IN (SELECT f.id FROM flags f WHERE f.report_id = rep.id)))
  AND NOT EXISTS (SELECT 1 FROM points_ledger x
                  WHERE x.reason = 'reversal' AND x.source_kind = 'ledger' AND x.source_id = l.id)
ORDER BY l.id
"""


async def paid_for_report(conn: Connection, report_id: int) -> list[PaidRow]:
    return [PaidRow(**r) for r in await conn.fetch(PAID_FOR_REPORT_SQL, report_id)]
