"""Anti-gaming (DESIGN.md §2d): flags raised on processed reports, and a supervisor's decision on them.

Detection runs for each processed courier report, in the job's transaction (jobs/pipeline.py), and
writes `flags` rows naming the rider and the report, so points.award_ready_reports withholds that
report's points (no row; the amount recorded on the flag) while the flag is open:

- `impossible_travel`: this report and the rider's previous one (capture order) imply a speed
  above MAX_SPEED_KMH. Pairs closer than MIN_TRAVEL_SECONDS in time or MIN_TRAVEL_METRES in space
  are ignored (GPS noise dominates there, and Δt = 0 would divide by zero).
- `capture_clock`: captured_at more than CLOCK_AHEAD_LIMIT after received_at (the phone's clock is
  set ahead), or more than CLOCK_BEHIND_LIMIT before it while the phone says it queued the report
  under NOT_QUEUED_SECONDS (a back-dated capture). A report without queued_for_s is not judged on
  the second rule: the phone said nothing about its queue.
- `burst`: more than BURST_LIMIT reports by the rider in the hour ending at this report's
  received_at; one flag per rider per hour (the SQL dedupes on the window's end).

`pair_collusion` is judged elsewhere: when a grid member accepts an incident, in the accept's
transaction (detect_pair_collusion, called by incident_actions before points.on_accept). For each
courier with a report in the incident, over the courier's reports received in the window before now:
at least `min_reports` of them, this member accepted at least `min_share` of them, and the median time
from receipt to that member's accept is at most `max_median_s` — a member who takes one rider's
reports faster and more often than chance would have it (thresholds in Settings, see PairCollusionRule).
The flag names the rider (member_id), their earliest report in the incident and the incident, so the
points that accept pays for it are withheld like any report flag's; the accept itself goes through.
One open flag per (rider, grid member): while it is open the pair is under review and is not flagged
again.

A decision (review API): `clear` pays what was withheld — a `flag_release` row for the recorded
amount, or, when nothing was recorded yet, a normal award of the incident (award_ready_reports);
`confirm` pays nothing and reverses what the report already earned (a flag raised after payment).
The decision, its reason and the amounts are kept on the flag (evidence.decision) and logged.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import msgspec

from gridrider.clock import local_day
from gridrider.config import Settings
from gridrider.db import gaming as db
from gridrider.db import points as db_points
from gridrider.db.pool import Connection
from gridrider.domain import points
from gridrider.domain.geo import haversine_m
from gridrider.errors import Conflict, NotFound
from gridrider.logging import get_logger

log = get_logger(__name__)

# A courier on an e-bike or motorbike in city traffic does not sustain more than this; faster means
# the positions (or the clock) were made up.
MAX_SPEED_KMH = 120.0
# Below this interval between two captures, GPS jitter and rounding of captured_at dominate the speed.
MIN_TRAVEL_SECONDS = 60.0
# Below this distance between two captures, the gap is within GPS/network position error.
MIN_TRAVEL_METRES = 500.0
# A phone clock this far ahead of the server's receipt cannot be drift or transit: it was set ahead.
CLOCK_AHEAD_LIMIT = dt.timedelta(minutes=2)
# A capture this much older than its receipt needs a queue to explain it…
CLOCK_BEHIND_LIMIT = dt.timedelta(minutes=10)
# …and a queue shorter than this (as the phone reports it) does not: the capture was back-dated.
NOT_QUEUED_SECONDS = 60
# More reports than this in one hour is more than a rider on deliveries can honestly see and mark.
BURST_LIMIT = 30
# The window `burst` counts over (ending at the report's received_at), also its dedupe period.
BURST_WINDOW = dt.timedelta(hours=1)

KINDS = ("impossible_travel", "capture_clock", "burst", "pair_collusion")


class PairCollusionRule(msgspec.Struct, frozen=True, kw_only=True):
    """The `pair_collusion` thresholds, from Settings (GRIDRIDER_PAIR_COLLUSION_*)."""

    min_share: float
    min_reports: int
    window: dt.timedelta
    max_median_s: float

    @classmethod
    def of(cls, settings: Settings) -> PairCollusionRule:
        return cls(min_share=settings.pair_collusion_min_share, min_reports=settings.pair_collusion_min_reports,
                   window=dt.timedelta(days=settings.pair_collusion_window_days),
                   max_median_s=float(settings.pair_collusion_max_median_s))

    def suspects(self, stats: db.PairStats) -> bool:
        # The share in decimal so "at least 60 %" of 10 is exactly 6 (0.6 × n in binary can land just above).
        return (stats.reports >= self.min_reports
                and stats.accepted >= Decimal(str(self.min_share)) * stats.reports
                and stats.median_s is not None and stats.median_s <= self.max_median_s)


# The settings' defaults, for callers that pass no Settings (the thresholds have one home: config.py).
DEFAULT_PAIR_COLLUSION = PairCollusionRule.of(Settings())


def travel_speed_kmh(distance_m: float, seconds: float) -> float | None:
    """The implied speed, or None for a pair too close in time or space to judge."""
    if seconds < MIN_TRAVEL_SECONDS or distance_m < MIN_TRAVEL_METRES:
        return None
    return distance_m / seconds * 3.6


async def detect(conn: Connection, *, report_id: int, now: dt.datetime) -> list[int]:
    """Raise the flags this report deserves (courier reports only); the new flags' ids. Idempotent."""
    report = await db.report_for_gaming(conn, report_id)
    if report is None or report.role != "courier":
        return []
    raised: list[int] = []

    previous = await db.previous_report(conn, report)
    if previous is not None:
        distance = haversine_m(previous.lat, previous.lon, report.lat, report.lon)
        seconds = abs((report.captured_at - previous.captured_at).total_seconds())
        speed = travel_speed_kmh(distance, seconds)
        if speed is not None and speed > MAX_SPEED_KMH:
            evidence = {"previous_report_id": previous.id, "distance_m": round(distance, 1),
                        "seconds": round(seconds, 1), "speed_kmh": round(speed, 1), "limit_kmh": MAX_SPEED_KMH}
            raised.append(await db.insert_report_flag(conn, kind="impossible_travel", report=report,
                                                      evidence=evidence, now=now))

    skew = report.captured_at - report.received_at  # positive: captured "after" it arrived
    clock_evidence: dict[str, Any] | None = None
    if skew > CLOCK_AHEAD_LIMIT:
        clock_evidence = {"rule": "ahead", "ahead_s": round(skew.total_seconds(), 1),
                          "limit_s": CLOCK_AHEAD_LIMIT.total_seconds()}
    elif -skew > CLOCK_BEHIND_LIMIT and report.queued_for_s is not None and report.queued_for_s < NOT_QUEUED_SECONDS:
        clock_evidence = {"rule": "not_queued", "behind_s": round(-skew.total_seconds(), 1),
                          "queued_for_s": report.queued_for_s, "limit_s": CLOCK_BEHIND_LIMIT.total_seconds()}
    if clock_evidence is not None:
        clock_evidence |= {"captured_at": report.captured_at.isoformat(), "received_at": report.received_at.isoformat()}
        raised.append(await db.insert_report_flag(conn, kind="capture_clock", report=report,
                                                  evidence=clock_evidence, now=now))

    count = await db.received_in_window(conn, report.reporter_id, report.received_at,
                                        report.received_at - BURST_WINDOW)
    if count > BURST_LIMIT:
        evidence = {"reports_in_window": count, "limit": BURST_LIMIT,
                    "window_start": (report.received_at - BURST_WINDOW).isoformat(),
                    "window_end": report.received_at.isoformat(),
                    "window_end_epoch": report.received_at.timestamp()}
        raised.append(await db.insert_burst_flag(conn, report=report, evidence=evidence, now=now))

    flags = [f for f in raised if f is not None]
    for flag_id in flags:
        log.info("gaming.flagged", flag_id=flag_id, report_id=report.id, member_id=report.reporter_id)
    return flags


async def detect_pair_collusion(conn: Connection, *, incident_id: int, grid_member_id: int, now: dt.datetime,
                                rule: PairCollusionRule = DEFAULT_PAIR_COLLUSION) -> list[int]:
    """Judge each courier of the incident the member has just accepted; the new flags' ids.

    Call after the accept's state change and `accept` event and before points.on_accept, in the same
    transaction, so the points that accept would pay are withheld on the new flag. Never raises for a
    suspect pair: the hazard is handled whatever the verdict.
    """
    start = now - rule.window
    raised: list[int] = []
    pseudonym: str | None = None
    for stats in await db.pair_stats(conn, incident_id=incident_id, grid_member_id=grid_member_id, start=start,
                                     now=now):
        if not rule.suspects(stats):
            continue
        assert stats.median_s is not None
        if pseudonym is None:
            pseudonym = await db.pseudonym_of(conn, grid_member_id)
        evidence = {"grid_member_id": grid_member_id, "grid_member_pseudonym": pseudonym,
                    "reports_in_window": stats.reports, "accepted_by_member": stats.accepted,
                    "share": round(stats.accepted / stats.reports, 3), "median_s": round(stats.median_s, 1),
                    "window_start": start.isoformat(), "window_end": now.isoformat(),
                    "window_days": rule.window / dt.timedelta(days=1), "min_share": rule.min_share,
                    "min_reports": rule.min_reports, "max_median_s": rule.max_median_s}
        flag_id = await db.insert_pair_flag(conn, rider_id=stats.rider_id, report_id=stats.report_id,
                                            incident_id=incident_id, grid_member_id=grid_member_id,
                                            evidence=evidence, now=now)
        if flag_id is not None:
            log.info("gaming.flagged", flag_id=flag_id, kind="pair_collusion", report_id=stats.report_id,
                     member_id=stats.rider_id, grid_member_id=grid_member_id)
            raised.append(flag_id)
    return raised


# ── decisions ─────────────────────────────────────────────────────────────────────────────────────


class FlagDecided(Conflict):
    """The flag was already cleared or confirmed (409)."""


async def _open_flag(conn: Connection, flag_id: int, scope: list[str] | None) -> db.FlagRow:
    """The flag, in scope (else 404), locked and still open (else 409).

    The incident's points lock is taken before the flag's row lock, in the order award_ready_reports
    takes them (it updates the flag when it records a withheld amount), so the two cannot deadlock.
    """
    flag = await db.flag_in_scope(conn, flag_id, scope)
    if flag is None:
        raise NotFound()
    if flag.incident_id is not None:
        await db_points.lock_incident(conn, flag.incident_id)
    state = await db.lock_flag(conn, flag_id)
    if state != "open":
        raise FlagDecided(f"flag {flag_id} is already {state}")
    flag = await db.flag_in_scope(conn, flag_id, scope)
    assert flag is not None
    return flag


async def clear(conn: Connection, *, flag_id: int, decider_id: int, scope: list[str] | None,
                now: dt.datetime) -> db.FlagRow:
    """Not gaming: the flag is cleared and what it held back is paid, exactly once."""
    flag = await _open_flag(conn, flag_id, scope)
    released = 0
    moved_to = None
    if flag.withheld_points > 0 and flag.report_id is not None:
        # Another open flag on the same report still holds the points back: they move onto it.
        moved_to = await db.next_open_report_flag(conn, flag.report_id, flag.id)
        if moved_to is not None:
            await db.move_withheld(conn, flag.id, moved_to, flag.withheld_points)
    decision = {"action": "clear", "withheld_points": flag.withheld_points, "moved_to_flag_id": moved_to}
    await db.decide_flag(conn, flag_id=flag.id, state="cleared", decided_by=decider_id, now=now, decision=decision)
    payee = flag.reporter_id if flag.reporter_id is not None else flag.member_id
    if moved_to is None and flag.withheld_points > 0 and payee is not None:
        await db_points.lock_members(conn, [payee])
        released = await points.release_flag(conn, flag_id=flag.id, member_id=payee,
                                             amount=flag.withheld_points, now=now)
    elif moved_to is None and flag.incident_id is not None:
        await points.award_ready_reports(conn, incident_id=flag.incident_id, now=now)
    log.info("gaming.flag_cleared", flag_id=flag.id, kind=flag.kind, member_id=flag.member_id, actor_id=decider_id,
             released=released, moved_to_flag_id=moved_to)
    row = await db.flag_in_scope(conn, flag.id, None)
    assert row is not None
    return row


async def confirm(conn: Connection, *, flag_id: int, decider_id: int, scope: list[str] | None, reason: str,
                  now: dt.datetime) -> db.FlagRow:
    """Gaming: the flag is confirmed, nothing it held back is paid, and what the report already earned
    (the flag came after payment) is reversed."""
    flag = await _open_flag(conn, flag_id, scope)
    reversed_rows: list[int] = []
    taken = 0
    if flag.report_id is not None:
        paid = await db.paid_for_report(conn, flag.report_id)
        await db_points.lock_members(conn, [r.member_id for r in paid])
        cap, ranking = points.REASON_FLAGS["reversal"]
        for row in paid:
            written = await db_points.insert_row(
                conn, member_id=row.member_id, reason="reversal", amount=-row.amount, source_kind="ledger",
                source_id=row.id, cycle=0, counts_toward_cap=cap, counts_toward_ranking=ranking,
                local_day=local_day(now), note=f"{row.reason} reversed: flag {flag.id} ({flag.kind}) confirmed",
                now=now)
            if written is not None:
                reversed_rows.append(row.id)
                taken += row.amount
    decision = {"action": "confirm", "reason": reason, "withheld_points": flag.withheld_points,
                "reversed_ledger_ids": reversed_rows, "reversed_points": taken}
    await db.decide_flag(conn, flag_id=flag.id, state="confirmed", decided_by=decider_id, now=now, decision=decision)
    log.info("gaming.flag_confirmed", flag_id=flag.id, kind=flag.kind, member_id=flag.member_id, actor_id=decider_id,
             reason=reason, reversed_points=taken)
    row = await db.flag_in_scope(conn, flag.id, None)
    assert row is not None
    return row
