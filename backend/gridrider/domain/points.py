"""Points follow outcomes (DESIGN.md §2d): awards at accept and resolve, penalties, reversals, caps.

Every function takes a connection already inside the caller's transaction and `now` from the
injectable clock. Each is idempotent through the ledger's UNIQUE (member, reason, source_kind,
source_id, cycle): calling it twice (a redelivered event) writes nothing twice.

Choices the design leaves open, made here:

- `first_report` = 10 × category weight rounded half up to an integer (1.25 → 13, 0.6 → 6); a
  result of 0 writes nothing. Source: the incident; cycle: the incident's current cycle. It is
  written only while the current cycle is accepted (accepted, resolved or closed), so each cycle
  accepted can award again, as the UNIQUE key intends.
- `corroboration` (+2): source the report, **cycle 0** — once per report for the incident's whole
  life, whatever cycle a (re)delivered event arrives in. One per courier (the courier's earliest
  report in the incident is the one that earns), at most 5 couriers per incident, the first
  reporter excluded. Written once the incident has been accepted in its current or an earlier
  cycle (accepted_at, or an `accept` event in its history, since a new cycle clears accepted_at)
  and is not rejected or merged.
- `resolve_bonus` (+5), `not_a_hazard` (−5): source the incident, cycle = the incident's cycle.
  The bonus does not wait for photos, but is not paid for a first report with a reused photo or a
  confirmed flag, and waits (unrecorded) while an open flag applies to that report.
- `reversal`: source_kind 'ledger', source_id = the reversed row, cycle 0.
- A report earns only when all its report photos are `ready` or `failed`. A photo marked reused
  (`photos.reused_of_photo_id`) makes the report earn 0 (no row, nothing withheld) unless a flag on
  that photo was cleared (the supervisor decided it was not reuse). A confirmed flag: nothing paid.
  An open flag: no row, and the amount is recorded on the oldest open flag naming the report
  (`flags.withheld_points`), to be paid as `flag_release` when it is cleared — so a report whose
  cleared flag carries withheld points is not paid again here. A flag applies to a report when it
  names the report or one of its photos, or names the incident (and no member, or the author).
- Daily cap: cap-counting rows are clipped to the room left in the member's Asia/Shanghai day of
  the write. An award clipped to nothing writes no row; it is remembered as a `points_capped`
  incident event so a later call on another day does not pay it after all ("the rest is lost").
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

import msgspec

from gridrider.clock import local_day, month_bounds
from gridrider.cursors import decode_cursor, encode_cursor
from gridrider.db import points as db
from gridrider.db.pool import Connection, Pool

DAILY_CAP = 100
FIRST_REPORT_BASE = 10
CORROBORATION_POINTS = 2
MAX_CORROBORATIONS = 5
RESOLVE_BONUS = 5
NOT_A_HAZARD_PENALTY = -5
LEDGER_PAGE = 50

# reason → (counts_toward_cap, counts_toward_ranking), the §2d table.
REASON_FLAGS: dict[str, tuple[bool, bool]] = {
    "first_report": (True, True),
    "corroboration": (True, True),
    "resolve_bonus": (True, True),
    "not_a_hazard": (False, True),
    "reversal": (False, True),
    "flag_release": (False, True),
    "redemption": (False, False),
    "adjustment": (False, True),
}

ACCEPTED_STATES = frozenset({"accepted", "resolved", "closed"})
DEAD_STATES = frozenset({"rejected", "merged"})
OPEN_STATES = frozenset({"unrouted", "dispatched", "accepted"})


def first_report_points(weight: Decimal | float | str) -> int:
    """10 × the category weight, rounded half up (weights are numeric(4,2), so this is exact)."""
    return int((Decimal(FIRST_REPORT_BASE) * Decimal(str(weight))).quantize(Decimal(1), rounding=ROUND_HALF_UP))


# ── writing rows ──────────────────────────────────────────────────────────────────────────────────


async def _write(conn: Connection, *, member_id: int, reason: str, amount: int, source_kind: str, source_id: int,
                 cycle: int, now: dt.datetime, note: str | None = None) -> int | None:
    cap, ranking = REASON_FLAGS[reason]
    return await db.insert_row(conn, member_id=member_id, reason=reason, amount=amount, source_kind=source_kind,
                               source_id=source_id, cycle=cycle, counts_toward_cap=cap, counts_toward_ranking=ranking,
                               local_day=local_day(now), note=note, now=now)


async def _award_capped(conn: Connection, *, incident_id: int, incident_cycle: int, member_id: int, reason: str,
                        amount: int, source_kind: str, source_id: int, cycle: int, now: dt.datetime) -> int:
    """Write a cap-counting award clipped to the day's room; the amount paid (0 when nothing was written).

    The caller holds the member's advisory lock (db.lock_members), so the room read here is not
    spent by a concurrent transaction before this row commits.
    """
    assert REASON_FLAGS[reason][0]
    key = {"member_id": member_id, "reason": reason, "source_kind": source_kind, "source_id": source_id,
           "cycle": cycle}
    if await db.row_exists(conn, **key) or await db.cap_lost_exists(conn, incident_id=incident_id, **key):
        return 0
    day = local_day(now)
    room = max(DAILY_CAP - await db.cap_used(conn, member_id, day), 0)
    paid = min(amount, room)
    if paid <= 0:
        await db.record_cap_lost(conn, incident_id=incident_id, incident_cycle=incident_cycle, amount=amount,
                                 day=day, now=now, **key)
        return 0
    note = f"clipped by the daily cap: {amount} → {paid}" if paid < amount else None
    written = await _write(conn, amount=paid, now=now, note=note, **key)
    return paid if written is not None else 0


async def _fix_first_reporter(conn: Connection, incident: db.IncidentForPoints) -> int | None:
    if incident.first_reporter_id is not None:
        return incident.first_reporter_id
    first = await db.earliest_courier_reporter(conn, incident.id)
    if first is not None:
        await db.fix_first_reporter(conn, incident.id, first)
    return first


# ── events ────────────────────────────────────────────────────────────────────────────────────────


async def on_accept(conn: Connection, *, incident_id: int, now: dt.datetime) -> None:
    """The incident was accepted (call after the state change, in the same transaction).

    Fixes the first reporter if not yet fixed, then pays what is ready.
    """
    await _settle(conn, incident_id=incident_id, now=now, event="accept")


async def award_ready_reports(conn: Connection, *, incident_id: int, now: dt.datetime) -> None:
    """Pay what is due and ready now (first_report, corroborations, a withheld resolve_bonus); safe any time.

    Call it when a report's photos finish, a flag clears, or a report is merged into an accepted
    incident. An incident that was never accepted, or is rejected or merged, pays nothing.
    """
    await _settle(conn, incident_id=incident_id, now=now, event=None)


async def on_resolve(conn: Connection, *, incident_id: int, now: dt.datetime) -> None:
    """`resolve_bonus` +5 to the first reporter (source the incident, its current cycle), within the cap.

    Call after the state change. Like every award it is not paid when the first reporter's report
    carries a reused photo or a confirmed flag, and is held back (no row) while an open flag applies;
    award_ready_reports pays it once that flag is cleared.
    """
    await _settle(conn, incident_id=incident_id, now=now, event="resolve")


def _earliest_per_courier(reports: list[db.ReportForPoints]) -> dict[int, db.ReportForPoints]:
    """Each courier's earliest report (the list is already in captured_at, received_at, id order)."""
    earliest: dict[int, db.ReportForPoints] = {}
    for report in reports:
        earliest.setdefault(report.reporter_id, report)
    return earliest


async def _settle(conn: Connection, *, incident_id: int, now: dt.datetime, event: str | None) -> None:
    await db.lock_incident(conn, incident_id)
    incident = await db.incident_for_points(conn, incident_id)
    if incident is None or incident.state in DEAD_STATES:
        return
    if event is not None:
        await _fix_first_reporter(conn, incident)
        incident = await db.incident_for_points(conn, incident_id)
        assert incident is not None
    if incident.first_reporter_id is None:
        return  # no courier report, or never accepted
    cycle_accepted = event is not None or incident.state in ACCEPTED_STATES
    cycle_resolved = event == "resolve" or incident.state in {"resolved", "closed"}
    if not (cycle_accepted or incident.ever_accepted):
        return  # never accepted yet: nothing is final
    first_id = incident.first_reporter_id
    paid_corroborators = await db.corroborated_members(conn, incident_id)
    withheld = await db.members_with_withheld_points(conn, incident_id)
    slots = MAX_CORROBORATIONS - len(paid_corroborators | (withheld - {first_id}))
    # With every corroboration slot taken only the first reporter can still be owed anything, so only
    # their reports are read: an incident many couriers report pays each later report in constant time.
    by_courier = _earliest_per_courier(
        await db.reports_for_points(conn, incident_id, reporter_id=first_id if slots <= 0 else None))

    # (report, reason, amount, source_kind, source_id, cycle), first reporter first, then couriers
    # in capture order
    due: list[tuple[db.ReportForPoints, str, int, str, int, int]] = []
    first_report = by_courier.get(first_id)
    if first_report is not None:
        if cycle_accepted and first_report.photos_done:
            due.append((first_report, "first_report", first_report_points(incident.weight), "incident",
                        incident.id, incident.cycle))
        if cycle_resolved:  # the bonus is for the fix, so it does not wait for photos
            due.append((first_report, "resolve_bonus", RESOLVE_BONUS, "incident", incident.id, incident.cycle))
    for member_id, report in by_courier.items():
        if member_id == first_id or member_id in paid_corroborators or member_id in withheld:
            continue
        if report.photos_done:
            due.append((report, "corroboration", CORROBORATION_POINTS, "report", report.id, 0))

    await db.lock_members(conn, [d[0].reporter_id for d in due])
    for report, reason, amount, source_kind, source_id, cycle in due:
        if reason == "corroboration" and slots <= 0:
            break  # later couriers (in capture order) find no slot left
        if report.confirmed_flag or report.reused or amount <= 0:
            continue  # nothing paid: confirmed gaming or a reused photo
        if report.open_flag:
            # Held back. Only a report's own award is recorded on its flag (paid as flag_release when
            # cleared); a held-back resolve_bonus is paid here once the flag is no longer open.
            if reason != "resolve_bonus" and report.open_report_flag_id is not None:
                await db.record_withheld(conn, report.open_report_flag_id, amount)
                if reason == "corroboration":
                    slots -= 1  # a withheld corroboration keeps its slot for its release
            continue
        if report.released_flag and reason != "resolve_bonus":
            continue  # already paid through flag_release when its flag was cleared
        paid = await _award_capped(conn, incident_id=incident.id, incident_cycle=incident.cycle,
                                   member_id=report.reporter_id, reason=reason, amount=amount,
                                   source_kind=source_kind, source_id=source_id, cycle=cycle, now=now)
        if reason == "corroboration" and paid > 0:
            slots -= 1


async def on_reject(conn: Connection, *, incident_id: int, reason: str, now: dt.datetime) -> None:
    """Fix the first reporter (a rejection before accept fixes it too); `not_a_hazard` costs them 5.

    A `not_a_hazard` rejection that ends a reopened cycle (cycle > 1) also reverses every earlier
    positive award of the incident not yet reversed, so the first reporter nets −5.
    """
    await db.lock_incident(conn, incident_id)
    incident = await db.incident_for_points(conn, incident_id)
    if incident is None:
        return
    first_id = await _fix_first_reporter(conn, incident)
    if reason != "not_a_hazard":
        return
    if first_id is not None:
        await _write(conn, member_id=first_id, reason="not_a_hazard", amount=NOT_A_HAZARD_PENALTY,
                     source_kind="incident", source_id=incident.id, cycle=incident.cycle, now=now)
    if incident.cycle > 1:
        for row in await db.unreversed_awards(conn, incident.id):
            await _write(conn, member_id=row.member_id, reason="reversal", amount=-row.amount, source_kind="ledger",
                         source_id=row.id, cycle=0, now=now,
                         note=f"{row.reason} reversed: cycle {incident.cycle} rejected as not_a_hazard")


async def on_appeal_upheld(conn: Connection, *, incident_id: int, cycle: int, now: dt.datetime) -> None:
    """Reverse the `not_a_hazard` penalty of that cycle (earlier reversed awards stay reversed)."""
    await db.lock_incident(conn, incident_id)
    for row in await db.penalty_rows(conn, incident_id, cycle):
        await _write(conn, member_id=row.member_id, reason="reversal", amount=-row.amount, source_kind="ledger",
                     source_id=row.id, cycle=0, now=now, note=f"appeal upheld (cycle {cycle})")


async def release_flag(conn: Connection, *, flag_id: int, member_id: int, amount: int, now: dt.datetime) -> int:
    """`flag_release`: pay a cleared flag's withheld amount (source the flag, cycle 0, outside the cap).

    The caller holds the member's advisory lock (db.lock_members). Idempotent through the ledger's
    UNIQUE key; the amount paid (0 when nothing was written).
    """
    if amount <= 0:
        return 0
    written = await _write(conn, member_id=member_id, reason="flag_release", amount=amount, source_kind="flag",
                           source_id=flag_id, cycle=0, now=now, note=f"flag {flag_id} cleared")
    return amount if written is not None else 0


# ── reading ───────────────────────────────────────────────────────────────────────────────────────


async def provisional_by_incident(conn: Connection | Pool, *, member_id: int) -> dict[int, int]:
    """Points the member would get from each open incident: computed, never stored.

    - not yet accepted (unrouted, dispatched): the first_report the member would get as the first
      reporter (the fixed one, else the earliest courier report now), or else +2 corroboration when
      they have none yet in the incident and fewer than 5 couriers have one;
    - accepted: the pending resolve_bonus when the member is the first reporter.
    Simplifications: the daily cap, open flags and pending photos are ignored; a member whose
    earliest report in the incident carries a reused photo expects nothing; the ≤5 limit counts
    only corroborations already paid, not couriers ahead of them still waiting.
    """
    expected: dict[int, int] = {}
    for row in await db.provisional_rows(conn, member_id):
        amount = 0
        if row.state == "accepted":
            if row.first_reporter_id == member_id and not row.has_resolve_bonus:
                amount = RESOLVE_BONUS
        elif not row.earliest_report_reused:
            first = row.first_reporter_id if row.first_reporter_id is not None else row.would_be_first_id
            if first == member_id:
                if not row.has_first_report:
                    amount = first_report_points(row.weight)
            elif not row.has_corroboration and row.corroborations < MAX_CORROBORATIONS:
                amount = CORROBORATION_POINTS
        if amount:
            expected[row.incident_id] = amount
    return expected


async def provisional(conn: Connection | Pool, *, member_id: int) -> int:
    """The member's provisional points in all: the sum of `provisional_by_incident`."""
    return sum((await provisional_by_incident(conn, member_id=member_id)).values())


# One ledger row as the rider sees it (the database's own shape).
LedgerEntry = db.LedgerEntryRow


class PointsSummary(msgspec.Struct, frozen=True):
    balance: int
    provisional: int
    month: str  # YYYY-MM, Asia/Shanghai
    month_points: int
    # 1 = best among the riders of the member's own areas' subtrees (every rider if they have none);
    # None when the member has no ranking row this month.
    rank: int | None
    ledger: list[LedgerEntry]
    # `GET /api/v1/me/points/ledger?before=` this for the older rows; None when `ledger` holds them all.
    ledger_next: str | None = None


class LedgerPage(msgspec.Struct, frozen=True):
    items: list[LedgerEntry]
    next: str | None  # the `before` of the page after this one; None on the last page


class BadLedgerCursor(ValueError):
    """A `before` that is not a cursor this API handed out."""


def ledger_cursor(entry: LedgerEntry) -> str:
    return encode_cursor([entry.created_at.isoformat(), entry.id])


def decode_ledger_cursor(cursor: str) -> tuple[dt.datetime, int]:
    try:
        at, row_id = decode_cursor(cursor)
        at, row_id = dt.datetime.fromisoformat(at), int(row_id)
    except (ValueError, TypeError, msgspec.DecodeError):
        raise BadLedgerCursor(cursor) from None
    if at.tzinfo is None or not 0 < row_id < 2**63:  # a bigint id, or PostgreSQL refuses it (a 500)
        raise BadLedgerCursor(cursor)
    return at, row_id


async def ledger_page(conn: Connection | Pool, *, member_id: int, before: str | None) -> LedgerPage:
    """LEDGER_PAGE rows, newest first, older than `before` (a cursor from an earlier page, or none)."""
    rows = await db.recent_ledger(conn, member_id, LEDGER_PAGE + 1,
                                  decode_ledger_cursor(before) if before else None)
    items = rows[:LEDGER_PAGE]
    return LedgerPage(items=items, next=ledger_cursor(items[-1]) if len(rows) > LEDGER_PAGE else None)


async def summary(conn: Connection, *, member_id: int, now: dt.datetime) -> PointsSummary:
    """Balance, provisional points, this month's points and rank, and the newest 50 ledger rows."""
    today = local_day(now)
    start, end = month_bounds(today.year, today.month)
    month_points, month_rows = await db.period_points(conn, member_id, start.date(), end.date())
    month = f"{today.year:04d}-{today.month:02d}"
    rank = await db.month_rank(conn, member_id, month) if month_rows else None
    page = await ledger_page(conn, member_id=member_id, before=None)
    return PointsSummary(
        balance=await db.balance(conn, member_id), provisional=await provisional(conn, member_id=member_id),
        month=month, month_points=month_points, rank=rank, ledger=page.items, ledger_next=page.next,
    )
