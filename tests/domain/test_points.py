"""Points (DESIGN.md §2d) on real PostgreSQL: every row of the ledger table this module writes, the
daily cap on Asia/Shanghai days, withheld and reused-photo awards, the first reporter, and the summary."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest
from litestar.testing import AsyncTestClient

from gridrider.clock import SHANGHAI
from gridrider.domain import points
from gridrider.domain.points import first_report_points
from tests.conftest import issue_code, sign_in
from tests.factories import make_member, make_photo, make_report

# ── rows for the tests ────────────────────────────────────────────────────────────────────────────


async def new_incident(conn, clock, *, category: str = "garbage_pileup", state: str = "dispatched",
                       cycle: int = 1) -> int:
    now = clock.now()
    return await conn.fetchval(
        """INSERT INTO incidents (category, lat, lon, cell, state, cycle, last_captured_at, dispatched_at, accepted_at,
                                  resolved_at, closed_at, reject_reason, created_at)
           VALUES ($1, 42.38, 122.53, 0, $2::text, $3, $4::timestamptz, $4::timestamptz,
                   CASE WHEN $2::text IN ('accepted', 'resolved', 'closed') THEN $4::timestamptz END,
                   CASE WHEN $2::text IN ('resolved', 'closed') THEN $4::timestamptz END,
                   CASE WHEN $2::text = 'closed' THEN $4::timestamptz END,
                   CASE WHEN $2::text = 'rejected' THEN 'not_a_hazard' END, $4::timestamptz)
           RETURNING id""",
        category, state, cycle, now,
    )


async def set_state(conn, clock, incident_id: int, state: str, *, cycle: int | None = None,
                    reject_reason: str | None = None) -> None:
    """Move the incident; a new `cycle` clears the stage times, as the workflow's new cycle does."""
    now = clock.now()
    await conn.execute(
        """UPDATE incidents SET state = $2::text, cycle = coalesce($3::int, cycle), reject_reason = $4::text,
                  dispatched_at = CASE WHEN $2::text = 'dispatched' THEN $5::timestamptz ELSE dispatched_at END,
                  accepted_at = CASE WHEN $2::text = 'accepted' THEN $5::timestamptz
                                     WHEN $3::int IS NOT NULL THEN NULL ELSE accepted_at END,
                  resolved_at = CASE WHEN $2::text = 'resolved' THEN $5::timestamptz
                                     WHEN $3::int IS NOT NULL THEN NULL ELSE resolved_at END,
                  closed_at = CASE WHEN $2::text = 'closed' THEN $5::timestamptz
                                   WHEN $3::int IS NOT NULL THEN NULL ELSE closed_at END
           WHERE id = $1""",
        incident_id, state, cycle, reject_reason, now,
    )


async def add_report(conn, clock, incident_id: int, reporter_id: int, *, minutes_ago: float = 0,
                     photos: tuple[str, ...] = ("ready",), category: str | None = None) -> int:
    """A report in the incident, captured `minutes_ago`, with photos in the given states."""
    if category is None:
        category = await conn.fetchval("SELECT category FROM incidents WHERE id = $1", incident_id)
    report_id = await make_report(conn, clock, reporter_id=reporter_id, category=category,
                                  captured_at=clock.now() - dt.timedelta(minutes=minutes_ago))
    await conn.execute("UPDATE reports SET incident_id = $2, state = 'processed', processed_at = $3 WHERE id = $1",
                       report_id, incident_id, clock.now())
    for position, state in enumerate(photos):
        photo_id = await make_photo(conn, report_id=report_id, original_key=f"o-{uuid.uuid4().hex}", position=position)
        if state != "pending":
            await set_photo(conn, photo_id, state)
    return report_id


async def set_photo(conn, photo_id: int, state: str) -> None:
    if state == "ready":
        await conn.execute("UPDATE photos SET state = 'ready', display_key = $2, thumb_key = $3 WHERE id = $1",
                           photo_id, f"d-{photo_id}", f"t-{photo_id}")
    elif state == "failed":
        await conn.execute("UPDATE photos SET state = 'failed', failure_reason = 'undecodable' WHERE id = $1",
                           photo_id)
    else:
        raise AssertionError(state)


async def mark_reused(conn, clock, report_id: int) -> int:
    """Mark the report's first photo reused the way photo_reuse does (the photo column and an open flag)."""
    other_incident = await new_incident(conn, clock)
    donor = await add_report(conn, clock, other_incident, await make_member(conn))
    donor_photo = await conn.fetchval("SELECT id FROM photos WHERE report_id = $1", donor)
    photo, reporter, incident = await conn.fetchrow(
        """SELECT p.id, r.reporter_id, r.incident_id FROM photos p JOIN reports r ON r.id = p.report_id
           WHERE p.report_id = $1 ORDER BY p.position LIMIT 1""", report_id)
    await conn.execute("UPDATE photos SET reused_of_photo_id = $2 WHERE id = $1", photo, donor_photo)
    return await conn.fetchval(
        """INSERT INTO flags (kind, member_id, report_id, incident_id, photo_id, created_at)
           VALUES ('reused_photo', $1, $2, $3, $4, $5) RETURNING id""", reporter, report_id, incident, photo,
        clock.now())


async def rows(conn, member_id: int | None = None) -> list[tuple]:
    """(member, reason, amount, source_kind, source_id, cycle) in write order."""
    records = await conn.fetch(
        """SELECT member_id, reason, amount, source_kind, source_id, cycle FROM points_ledger
           WHERE $1::bigint IS NULL OR member_id = $1 ORDER BY id""", member_id)
    return [tuple(r) for r in records]


async def balance(conn, member_id: int) -> int:
    return await conn.fetchval("SELECT coalesce(sum(amount), 0) FROM points_ledger WHERE member_id = $1", member_id)


async def accept(conn, clock, incident_id: int) -> None:
    """As the workflow accepts: the state, its `accept` event, then points."""
    async with conn.transaction():
        await set_state(conn, clock, incident_id, "accepted")
        await conn.execute("""INSERT INTO incident_events (incident_id, cycle, kind, occurred_at)
                              SELECT id, cycle, 'accept', $2 FROM incidents WHERE id = $1""", incident_id, clock.now())
        await points.on_accept(conn, incident_id=incident_id, now=clock.now())


async def resolve(conn, clock, incident_id: int) -> None:
    async with conn.transaction():
        await set_state(conn, clock, incident_id, "resolved")
        await points.on_resolve(conn, incident_id=incident_id, now=clock.now())


async def reject(conn, clock, incident_id: int, reason: str) -> None:
    async with conn.transaction():
        await set_state(conn, clock, incident_id, "rejected", reject_reason=reason)
        await points.on_reject(conn, incident_id=incident_id, reason=reason, now=clock.now())


async def award(conn, clock, incident_id: int) -> None:
    async with conn.transaction():
        await points.award_ready_reports(conn, incident_id=incident_id, now=clock.now())


# ── first_report ──────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(("weight", "points_"), [("1.5", 15), ("0.6", 6), ("2.0", 20), ("1.25", 13), ("0.04", 0),
                                                 ("0.05", 1)])
def test_first_report_is_ten_times_the_weight_rounded_half_up(weight, points_):
    assert first_report_points(weight) == points_


@pytest.mark.parametrize(("category", "amount"), [("flooding", 15), ("streetlight_out", 6),
                                                  ("missing_manhole_cover", 20)])
async def test_first_report_pays_ten_times_the_category_weight_at_accept(db, clock, category, amount):
    async with db.acquire() as conn:
        rider = await make_member(conn)
        incident = await new_incident(conn, clock, category=category)
        await add_report(conn, clock, incident, rider)
        await accept(conn, clock, incident)
        assert await rows(conn) == [(rider, "first_report", amount, "incident", incident, 1)]
        row = await conn.fetchrow("SELECT * FROM points_ledger")
        assert (row["counts_toward_cap"], row["counts_toward_ranking"]) == (True, True)
        assert row["created_at"] == clock.now() and row["local_day"] == dt.date(2026, 11, 26)
        assert await conn.fetchval("SELECT first_reporter_id FROM incidents WHERE id = $1", incident) == rider


async def test_first_report_counts_per_cycle_so_a_reaccepted_cycle_awards_again(db, clock):
    async with db.acquire() as conn:
        rider = await make_member(conn)
        incident = await new_incident(conn, clock, category="flooding")
        await add_report(conn, clock, incident, rider)
        await accept(conn, clock, incident)
        await set_state(conn, clock, incident, "dispatched", cycle=2)  # reopened
        await award(conn, clock, incident)  # nothing: cycle 2 is not accepted yet
        assert [r[5] for r in await rows(conn)] == [1]
        await accept(conn, clock, incident)
        assert [(r[1], r[5]) for r in await rows(conn)] == [("first_report", 1), ("first_report", 2)]


async def test_nothing_is_paid_before_accept(db, clock):
    async with db.acquire() as conn:
        rider, other = await make_member(conn), await make_member(conn)
        incident = await new_incident(conn, clock)
        await add_report(conn, clock, incident, rider)
        await add_report(conn, clock, incident, other)
        await award(conn, clock, incident)
        assert await rows(conn) == []


# ── corroboration ─────────────────────────────────────────────────────────────────────────────────


async def test_corroboration_is_two_points_one_per_courier_at_most_five_first_reporter_excluded(db, clock):
    async with db.acquire() as conn:
        first = await make_member(conn)
        incident = await new_incident(conn, clock)
        await add_report(conn, clock, incident, first, minutes_ago=100)
        await add_report(conn, clock, incident, first, minutes_ago=90)  # the first reporter again: nothing more
        others = [await make_member(conn) for _ in range(7)]
        reports = {}
        for i, courier in enumerate(others):
            reports[courier] = await add_report(conn, clock, incident, courier, minutes_ago=80 - i)
        twice = others[0]
        await add_report(conn, clock, incident, twice, minutes_ago=10)  # a second report: still one award
        await accept(conn, clock, incident)
        await award(conn, clock, incident)  # called again: nothing more

        written = await rows(conn)
        assert written[0] == (first, "first_report", 8, "incident", incident, 1)
        corroborations = written[1:]
        # The five earliest-captured other couriers, each for their earliest report, source the report, cycle 0.
        assert corroborations == [(c, "corroboration", 2, "report", reports[c], 0) for c in others[:5]]
        assert await rows(conn, others[5]) == [] and await rows(conn, others[6]) == []


async def test_with_every_corroboration_slot_taken_the_first_reporter_is_still_paid_when_their_photo_finishes(
        db, clock):
    async with db.acquire() as conn:
        first = await make_member(conn)
        incident = await new_incident(conn, clock)
        first_report = await add_report(conn, clock, incident, first, minutes_ago=100, photos=("pending",))
        others = [await make_member(conn) for _ in range(6)]
        for i, courier in enumerate(others):
            await add_report(conn, clock, incident, courier, minutes_ago=80 - i)
        await accept(conn, clock, incident)
        assert [r[0] for r in await rows(conn)] == others[:5]  # five corroborations; the first report waits

        late = await make_member(conn)
        await add_report(conn, clock, incident, late)  # merged after every slot was taken
        photo = await conn.fetchval("SELECT id FROM photos WHERE report_id = $1", first_report)
        await set_photo(conn, photo, "ready")
        await award(conn, clock, incident)
        assert await rows(conn, first) == [(first, "first_report", 8, "incident", incident, 1)]
        assert await rows(conn, others[5]) == [] and await rows(conn, late) == []


async def test_a_flag_naming_only_the_incident_applies_to_every_report_or_to_its_member_only(db, clock):
    async with db.acquire() as conn:
        first, other = await make_member(conn), await make_member(conn)
        everyone = await new_incident(conn, clock)
        for member in (first, other):
            await add_report(conn, clock, everyone, member)
        await conn.execute("""INSERT INTO flags (kind, incident_id, state, decided_at, created_at)
                              VALUES ('burst', $1, 'confirmed', $2, $2)""", everyone, clock.now())
        await accept(conn, clock, everyone)
        assert await rows(conn) == []

        one_member = await new_incident(conn, clock)
        await add_report(conn, clock, one_member, first, minutes_ago=5)
        other_report = await add_report(conn, clock, one_member, other)
        await conn.execute("""INSERT INTO flags (kind, member_id, incident_id, state, decided_at, created_at)
                              VALUES ('burst', $1, $2, 'confirmed', $3, $3)""", first, one_member, clock.now())
        await accept(conn, clock, one_member)
        assert await rows(conn) == [(other, "corroboration", 2, "report", other_report, 0)]


async def test_a_corroboration_merged_after_accept_earns_when_awarded_again(db, clock):
    async with db.acquire() as conn:
        first, late = await make_member(conn), await make_member(conn)
        incident = await new_incident(conn, clock)
        await add_report(conn, clock, incident, first)
        await accept(conn, clock, incident)
        clock.advance(hours=2)
        report = await add_report(conn, clock, incident, late)  # merged in by process_report after accept
        await award(conn, clock, incident)
        await award(conn, clock, incident)
        assert await rows(conn, late) == [(late, "corroboration", 2, "report", report, 0)]


async def test_a_corroboration_is_not_paid_twice_in_a_later_cycle(db, clock):
    async with db.acquire() as conn:
        first, other = await make_member(conn), await make_member(conn)
        incident = await new_incident(conn, clock)
        await add_report(conn, clock, incident, first)
        await add_report(conn, clock, incident, other)
        await accept(conn, clock, incident)
        await set_state(conn, clock, incident, "dispatched", cycle=2)
        await accept(conn, clock, incident)
        assert [r[1] for r in await rows(conn, other)] == ["corroboration"]
        assert [(r[1], r[5]) for r in await rows(conn, first)] == [("first_report", 1), ("first_report", 2)]


async def test_between_cycles_only_an_incident_accepted_before_pays_a_late_corroboration(db, clock):
    async with db.acquire() as conn:
        first, late = await make_member(conn), await make_member(conn)
        reopened = await new_incident(conn, clock)
        await add_report(conn, clock, reopened, first)
        await accept(conn, clock, reopened)
        await resolve(conn, clock, reopened)
        await set_state(conn, clock, reopened, "dispatched", cycle=2)  # accepted_at cleared by the new cycle
        report = await add_report(conn, clock, reopened, late)
        await award(conn, clock, reopened)
        assert await rows(conn, late) == [(late, "corroboration", 2, "report", report, 0)]
        assert [(r[1], r[5]) for r in await rows(conn, first)] == [("first_report", 1), ("resolve_bonus", 1)]

        never = await new_incident(conn, clock)
        await add_report(conn, clock, never, first)
        await reject(conn, clock, never, "cannot_locate")  # fixes the first reporter
        await set_state(conn, clock, never, "dispatched", cycle=2)  # appeal upheld
        late_report = await add_report(conn, clock, never, late)
        await award(conn, clock, never)
        assert len(await rows(conn)) == 3  # nothing new: `never` was never accepted
        await accept(conn, clock, never)
        assert [(r[1], r[4], r[5]) for r in await rows(conn)][3:] == [
            ("first_report", never, 2), ("corroboration", late_report, 0)]


# ── photos ────────────────────────────────────────────────────────────────────────────────────────


async def test_a_photo_finishing_after_accept_earns_then(db, clock):
    async with db.acquire() as conn:
        first, other = await make_member(conn), await make_member(conn)
        incident = await new_incident(conn, clock)
        first_report = await add_report(conn, clock, incident, first, minutes_ago=5, photos=("ready", "pending"))
        other_report = await add_report(conn, clock, incident, other, photos=("pending",))
        await accept(conn, clock, incident)
        assert await rows(conn) == []  # both wait for their photos
        assert await conn.fetchval("SELECT first_reporter_id FROM incidents WHERE id = $1", incident) == first

        pending = await conn.fetchval("SELECT id FROM photos WHERE report_id = $1 AND state = 'pending'", first_report)
        await set_photo(conn, pending, "ready")
        await award(conn, clock, incident)
        assert [r[1] for r in await rows(conn)] == ["first_report"]

        pending = await conn.fetchval("SELECT id FROM photos WHERE report_id = $1", other_report)
        await set_photo(conn, pending, "failed")  # a photo that fails alone does not hold the report back
        await award(conn, clock, incident)
        assert await rows(conn, other) == [(other, "corroboration", 2, "report", other_report, 0)]


async def test_a_report_without_photos_earns_at_accept(db, clock):
    async with db.acquire() as conn:
        rider = await make_member(conn)
        incident = await new_incident(conn, clock)
        await add_report(conn, clock, incident, rider, photos=())
        await accept(conn, clock, incident)
        assert [r[1] for r in await rows(conn)] == ["first_report"]


async def test_a_reused_photo_earns_nothing(db, clock):
    async with db.acquire() as conn:
        first, cheat = await make_member(conn), await make_member(conn)
        incident = await new_incident(conn, clock)
        first_report = await add_report(conn, clock, incident, first, minutes_ago=5)
        cheat_report = await add_report(conn, clock, incident, cheat)
        await mark_reused(conn, clock, first_report)
        flag = await mark_reused(conn, clock, cheat_report)
        assert await points.provisional(conn, member_id=first) == 0
        assert await points.provisional(conn, member_id=cheat) == 0
        await accept(conn, clock, incident)
        await resolve(conn, clock, incident)
        assert await rows(conn) == []
        # Earning 0 is not withholding: nothing is waiting on the flag to be released.
        assert await conn.fetchval("SELECT withheld_points FROM flags WHERE id = $1", flag) == 0


async def test_a_reused_photo_flag_cleared_as_not_reuse_lets_the_report_earn(db, clock):
    async with db.acquire() as conn:
        first, other = await make_member(conn), await make_member(conn)
        incident = await new_incident(conn, clock)
        await add_report(conn, clock, incident, first, minutes_ago=5)
        report = await add_report(conn, clock, incident, other)
        flag = await mark_reused(conn, clock, report)
        await accept(conn, clock, incident)
        assert await rows(conn, other) == []
        await conn.execute("UPDATE flags SET state = 'cleared', decided_at = $2 WHERE id = $1", flag, clock.now())
        await award(conn, clock, incident)
        assert await rows(conn, other) == [(other, "corroboration", 2, "report", report, 0)]


# ── flags ─────────────────────────────────────────────────────────────────────────────────────────


async def test_an_open_flag_withholds_and_records_the_amount_on_the_flag(db, clock):
    async with db.acquire() as conn:
        first, other = await make_member(conn), await make_member(conn)
        incident = await new_incident(conn, clock, category="flooding")
        first_report = await add_report(conn, clock, incident, first, minutes_ago=5)
        other_report = await add_report(conn, clock, incident, other)
        flags = {}
        for member, report in ((first, first_report), (other, other_report)):
            flags[member] = await conn.fetchval(
                """INSERT INTO flags (kind, member_id, report_id, incident_id, created_at)
                   VALUES ('burst', $1, $2, $3, $4) RETURNING id""", member, report, incident, clock.now())
        await accept(conn, clock, incident)
        await accept(conn, clock, incident)
        await resolve(conn, clock, incident)
        assert await rows(conn) == []
        withheld = dict(await conn.fetch("SELECT id, withheld_points FROM flags"))
        assert withheld == {flags[first]: 15, flags[other]: 2}  # resolve_bonus is held back, not recorded

        # Cleared: the recorded amounts are the clearing path's flag_release; awarding again pays only
        # what was not recorded (the held-back resolve_bonus), never the award a second time.
        await conn.execute("UPDATE flags SET state = 'cleared', decided_at = $1", clock.now())
        await award(conn, clock, incident)
        assert await rows(conn) == [(first, "resolve_bonus", 5, "incident", incident, 1)]


async def test_a_confirmed_flag_pays_nothing(db, clock):
    async with db.acquire() as conn:
        rider = await make_member(conn)
        incident = await new_incident(conn, clock)
        report = await add_report(conn, clock, incident, rider)
        await conn.execute("""INSERT INTO flags (kind, report_id, state, decided_at, created_at)
                              VALUES ('burst', $1, 'confirmed', $2, $2)""", report, clock.now())
        await accept(conn, clock, incident)
        assert await rows(conn) == []


# ── resolve_bonus, redelivery ─────────────────────────────────────────────────────────────────────


async def test_resolve_bonus_goes_to_the_first_reporter_and_redelivered_events_write_nothing_twice(db, clock):
    async with db.acquire() as conn:
        first, other = await make_member(conn), await make_member(conn)
        incident = await new_incident(conn, clock)
        await add_report(conn, clock, incident, first, minutes_ago=5)
        other_report = await add_report(conn, clock, incident, other)
        await accept(conn, clock, incident)
        async with conn.transaction():  # redelivered accept
            await points.on_accept(conn, incident_id=incident, now=clock.now())
        clock.advance(days=1)
        await resolve(conn, clock, incident)
        async with conn.transaction():  # redelivered resolve
            await points.on_resolve(conn, incident_id=incident, now=clock.now())
        await award(conn, clock, incident)
        assert await rows(conn) == [
            (first, "first_report", 8, "incident", incident, 1),
            (other, "corroboration", 2, "report", other_report, 0),
            (first, "resolve_bonus", 5, "incident", incident, 1),
        ]
        bonus = await conn.fetchrow("SELECT * FROM points_ledger WHERE reason = 'resolve_bonus'")
        assert (bonus["counts_toward_cap"], bonus["counts_toward_ranking"], bonus["local_day"]) == (
            True, True, dt.date(2026, 11, 27))


# ── not_a_hazard, reversals, appeals ──────────────────────────────────────────────────────────────


async def test_not_a_hazard_costs_the_first_reporter_five_and_fixes_them_before_accept(db, clock):
    async with db.acquire() as conn:
        first, other = await make_member(conn), await make_member(conn)
        incident = await new_incident(conn, clock)
        await add_report(conn, clock, incident, other, minutes_ago=1)
        await add_report(conn, clock, incident, first, minutes_ago=2)
        await reject(conn, clock, incident, "not_a_hazard")
        async with conn.transaction():  # redelivered
            await points.on_reject(conn, incident_id=incident, reason="not_a_hazard", now=clock.now())
        assert await conn.fetchval("SELECT first_reporter_id FROM incidents WHERE id = $1", incident) == first
        assert await rows(conn) == [(first, "not_a_hazard", -5, "incident", incident, 1)]
        row = await conn.fetchrow("SELECT * FROM points_ledger")
        assert (row["counts_toward_cap"], row["counts_toward_ranking"]) == (False, True)


async def test_other_rejections_cost_nothing_but_still_fix_the_first_reporter(db, clock):
    async with db.acquire() as conn:
        first = await make_member(conn)
        incident = await new_incident(conn, clock)
        await add_report(conn, clock, incident, first)
        await reject(conn, clock, incident, "cannot_locate")
        assert await rows(conn) == []
        assert await conn.fetchval("SELECT first_reporter_id FROM incidents WHERE id = $1", incident) == first


async def test_rejection_before_accept_fixes_the_first_reporter_for_later_cycles(db, clock):
    async with db.acquire() as conn:
        first, earlier = await make_member(conn), await make_member(conn)
        incident = await new_incident(conn, clock)
        await add_report(conn, clock, incident, first)
        await reject(conn, clock, incident, "out_of_scope")
        await add_report(conn, clock, incident, earlier, minutes_ago=60)  # captured earlier, arrives later
        await set_state(conn, clock, incident, "dispatched", cycle=2)  # appeal upheld
        await accept(conn, clock, incident)
        assert await conn.fetchval("SELECT first_reporter_id FROM incidents WHERE id = $1", incident) == first
        assert [r[:2] for r in await rows(conn)] == [(first, "first_report"), (earlier, "corroboration")]


async def test_a_reopened_cycle_rejected_as_not_a_hazard_reverses_earlier_awards(db, clock):
    async with db.acquire() as conn:
        first, other = await make_member(conn), await make_member(conn)
        incident = await new_incident(conn, clock, category="flooding")
        await add_report(conn, clock, incident, first, minutes_ago=5)
        await add_report(conn, clock, incident, other)
        await accept(conn, clock, incident)
        await resolve(conn, clock, incident)
        clock.advance(days=2)
        await set_state(conn, clock, incident, "dispatched", cycle=2)  # reopened
        await accept(conn, clock, incident)  # cycle 2 pays its own first_report
        assert await balance(conn, first) == 15 + 5 + 15 and await balance(conn, other) == 2
        awarded = {r["id"]: r["amount"] for r in await conn.fetch("SELECT id, amount FROM points_ledger")}

        clock.advance(hours=3)
        await reject(conn, clock, incident, "not_a_hazard")
        async with conn.transaction():  # redelivered
            await points.on_reject(conn, incident_id=incident, reason="not_a_hazard", now=clock.now())

        assert await balance(conn, first) == -5 and await balance(conn, other) == 0
        reversals = await conn.fetch("SELECT * FROM points_ledger WHERE reason = 'reversal' ORDER BY source_id")
        assert {r["source_id"]: -r["amount"] for r in reversals} == awarded
        assert all(r["source_kind"] == "ledger" and r["cycle"] == 0 and not r["counts_toward_cap"]
                   and r["counts_toward_ranking"] for r in reversals)
        assert (first, "not_a_hazard", -5, "incident", incident, 2) in await rows(conn, first)


async def test_a_first_cycle_not_a_hazard_keeps_earlier_awards(db, clock):
    async with db.acquire() as conn:
        first = await make_member(conn)
        incident = await new_incident(conn, clock)
        await add_report(conn, clock, incident, first)
        await accept(conn, clock, incident)
        await reject(conn, clock, incident, "not_a_hazard")
        assert [r[1] for r in await rows(conn)] == ["first_report", "not_a_hazard"]
        assert await balance(conn, first) == 8 - 5


async def test_an_upheld_appeal_reverses_the_penalty(db, clock):
    async with db.acquire() as conn:
        first = await make_member(conn)
        incident = await new_incident(conn, clock)
        await add_report(conn, clock, incident, first)
        await reject(conn, clock, incident, "not_a_hazard")
        penalty = await conn.fetchval("SELECT id FROM points_ledger WHERE reason = 'not_a_hazard'")
        clock.advance(days=1)
        for _ in range(2):  # the second is a redelivery
            async with conn.transaction():
                await set_state(conn, clock, incident, "dispatched", cycle=2)
                await points.on_appeal_upheld(conn, incident_id=incident, cycle=1, now=clock.now())
        assert await rows(conn) == [(first, "not_a_hazard", -5, "incident", incident, 1),
                                    (first, "reversal", 5, "ledger", penalty, 0)]
        assert await balance(conn, first) == 0


# ── the first reporter ────────────────────────────────────────────────────────────────────────────


async def test_the_system_role_never_earns_nor_is_first_reporter(db, clock):
    async with db.acquire() as conn:
        system = await conn.fetchval(
            "INSERT INTO members (role, pseudonym) VALUES ('system', 'open311') RETURNING id")
        rider, other = await make_member(conn), await make_member(conn)
        incident = await new_incident(conn, clock)
        await add_report(conn, clock, incident, system, minutes_ago=60)  # earliest capture of all
        await add_report(conn, clock, incident, rider, minutes_ago=10)
        await add_report(conn, clock, incident, other, minutes_ago=5)
        await accept(conn, clock, incident)
        await resolve(conn, clock, incident)
        assert await conn.fetchval("SELECT first_reporter_id FROM incidents WHERE id = $1", incident) == rider
        assert await rows(conn, system) == []
        assert [r[1] for r in await rows(conn)] == ["first_report", "corroboration", "resolve_bonus"]


async def test_a_system_only_incident_pays_and_costs_nobody(db, clock):
    async with db.acquire() as conn:
        system = await conn.fetchval(
            "INSERT INTO members (role, pseudonym) VALUES ('system', 'open311') RETURNING id")
        incident = await new_incident(conn, clock)
        await add_report(conn, clock, incident, system)
        await accept(conn, clock, incident)
        await reject(conn, clock, incident, "not_a_hazard")
        assert await rows(conn) == []
        assert await conn.fetchval("SELECT first_reporter_id FROM incidents WHERE id = $1", incident) is None


async def test_first_reporter_ties_break_by_received_at_then_id(db, clock):
    async with db.acquire() as conn:
        a, b, c = [await make_member(conn) for _ in range(3)]
        incident = await new_incident(conn, clock)
        captured = clock.now() - dt.timedelta(minutes=30)
        for member, received_offset in ((a, 2), (b, 1), (c, 1)):
            report = await add_report(conn, clock, incident, member)
            await conn.execute("UPDATE reports SET captured_at = $2, received_at = $3 WHERE id = $1",
                               report, captured, clock.now() + dt.timedelta(minutes=received_offset))
        await accept(conn, clock, incident)
        assert await conn.fetchval("SELECT first_reporter_id FROM incidents WHERE id = $1", incident) == b


async def test_the_first_reporter_fixed_at_accept_does_not_change(db, clock):
    async with db.acquire() as conn:
        first, earlier = await make_member(conn), await make_member(conn)
        incident = await new_incident(conn, clock, category="flooding")
        await add_report(conn, clock, incident, first, minutes_ago=5)
        await accept(conn, clock, incident)
        clock.advance(hours=1)
        late = await add_report(conn, clock, incident, earlier, minutes_ago=600)  # offline, captured long before
        await award(conn, clock, incident)
        await accept(conn, clock, incident)  # even a redelivered accept keeps it
        await resolve(conn, clock, incident)
        assert await conn.fetchval("SELECT first_reporter_id FROM incidents WHERE id = $1", incident) == first
        assert await rows(conn) == [
            (first, "first_report", 15, "incident", incident, 1),
            (earlier, "corroboration", 2, "report", late, 0),
            (first, "resolve_bonus", 5, "incident", incident, 1),
        ]


# ── the daily cap ─────────────────────────────────────────────────────────────────────────────────


async def _first_report_incident(conn, clock, rider: int, category: str = "flooding") -> int:
    incident = await new_incident(conn, clock, category=category)
    await add_report(conn, clock, incident, rider)
    return incident


async def test_the_daily_cap_clips_on_the_shanghai_day_and_the_next_day_has_room(db, clock):
    async with db.acquire() as conn:
        rider = await make_member(conn)
        clock.set(dt.datetime(2026, 11, 26, 23, 0, tzinfo=SHANGHAI))  # 15:00 UTC
        for _ in range(6):
            await accept(conn, clock, await _first_report_incident(conn, clock, rider))  # 6 × 15 = 90
        crossing = await _first_report_incident(conn, clock, rider)
        await accept(conn, clock, crossing)  # 15 → clipped to 10
        clipped = await conn.fetchrow("SELECT amount, note FROM points_ledger WHERE source_id = $1", crossing)
        assert clipped["amount"] == 10 and "15 → 10" in clipped["note"]

        full = await _first_report_incident(conn, clock, rider)
        await accept(conn, clock, full)  # no room: no row, the award is lost
        await resolve(conn, clock, full)
        assert await conn.fetchval("SELECT count(*) FROM points_ledger WHERE source_id = $1", full) == 0
        assert await balance(conn, rider) == 100

        # 00:30 in Shanghai is still 16:30 UTC of the same UTC day: the Shanghai day decides.
        clock.set(dt.datetime(2026, 11, 27, 0, 30, tzinfo=SHANGHAI))
        await award(conn, clock, full)  # a later call does not pay what the cap took
        assert await conn.fetchval("SELECT count(*) FROM points_ledger WHERE source_id = $1", full) == 0
        await accept(conn, clock, await _first_report_incident(conn, clock, rider))
        assert await balance(conn, rider) == 115
        days = await conn.fetch("SELECT local_day, sum(amount) AS s FROM points_ledger GROUP BY 1 ORDER BY 1")
        assert [(d["local_day"], d["s"]) for d in days] == [(dt.date(2026, 11, 26), 100), (dt.date(2026, 11, 27), 15)]


async def test_penalties_and_reversals_neither_use_nor_free_the_cap(db, clock):
    async with db.acquire() as conn:
        rider = await make_member(conn)
        for _ in range(5):
            await accept(conn, clock, await _first_report_incident(conn, clock, rider, "missing_manhole_cover"))
        assert await balance(conn, rider) == 100
        penalised = await _first_report_incident(conn, clock, rider)
        await reject(conn, clock, penalised, "not_a_hazard")  # −5 is written although the day is full
        assert await balance(conn, rider) == 95
        await accept(conn, clock, await _first_report_incident(conn, clock, rider))  # the −5 freed no room
        assert await balance(conn, rider) == 95


async def test_concurrent_awards_cannot_both_use_the_same_room(db, clock):
    async with db.acquire() as conn:
        rider = await make_member(conn)
        for _ in range(6):
            await accept(conn, clock, await _first_report_incident(conn, clock, rider))  # 90
        a = await _first_report_incident(conn, clock, rider)
        b = await _first_report_incident(conn, clock, rider)
        for incident in (a, b):
            await set_state(conn, clock, incident, "accepted")

    async def accept_in_own_transaction(incident: int, hold: float) -> None:
        async with db.acquire() as own, own.transaction():
            await points.on_accept(own, incident_id=incident, now=clock.now())
            await asyncio.sleep(hold)  # keep the member lock while the other transaction tries

    await asyncio.gather(accept_in_own_transaction(a, 0.3), accept_in_own_transaction(b, 0.0))
    async with db.acquire() as conn:
        assert await balance(conn, rider) == 100


# ── provisional, summary, rank ────────────────────────────────────────────────────────────────────


async def test_provisional_counts_what_open_incidents_would_pay(db, clock):
    async with db.acquire() as conn:
        a, b = await make_member(conn), await make_member(conn)
        waiting = await new_incident(conn, clock, category="flooding")  # dispatched
        await add_report(conn, clock, waiting, a, minutes_ago=5)
        await add_report(conn, clock, waiting, b)
        accepted = await new_incident(conn, clock, category="garbage_pileup")
        await add_report(conn, clock, accepted, a)
        await accept(conn, clock, accepted)
        done = await new_incident(conn, clock, category="streetlight_out")
        await add_report(conn, clock, done, a)
        await accept(conn, clock, done)
        await resolve(conn, clock, done)
        rejected = await new_incident(conn, clock, state="rejected")
        await add_report(conn, clock, rejected, a)

        # a: would be first reporter of `waiting` (15) + pending resolve_bonus of `accepted` (5).
        assert await points.provisional(conn, member_id=a) == 15 + 5
        assert await points.provisional(conn, member_id=b) == 2
        assert await rows(conn, b) == []  # computed, never stored


async def _area(conn, code: str, parent: int | None = None) -> int:
    return await conn.fetchval(
        "INSERT INTO areas (code, level, parent_id, name_zh) VALUES ($1, $2, $3, $1) RETURNING id",
        code, "county" if parent is None else "grid", parent)


async def _give(conn, member: int, amount: int, when: dt.datetime, reason: str = "adjustment") -> None:
    source_kind = {"adjustment": "decision", "redemption": "redemption"}[reason]
    await conn.execute(
        """INSERT INTO points_ledger (member_id, reason, amount, source_kind, source_id, counts_toward_cap,
                                      counts_toward_ranking, local_day, created_at)
           VALUES ($1, $2, $3, $4, $5, false, $6, $7, $8)""",
        member, reason, amount, source_kind, int(uuid.uuid4().int % 10**9), reason != "redemption",
        when.astimezone(SHANGHAI).date(), when)


async def test_summary_balance_month_rank_and_ledger(db, clock):
    async with db.acquire() as conn:
        county = await _area(conn, "T")
        g1, g2 = await _area(conn, "T-G1", county), await _area(conn, "T-G2", county)
        me, peer, elsewhere, loner, idle = [await make_member(conn) for _ in range(5)]
        grid_member = await make_member(conn, role="grid_member")
        for member, area in ((me, g1), (peer, g1), (peer, g2), (elsewhere, g2), (grid_member, g1)):
            await conn.execute("INSERT INTO member_areas (member_id, area_id) VALUES ($1, $2)", member, area)

        incident = await new_incident(conn, clock, category="flooding")
        await add_report(conn, clock, incident, me)
        await accept(conn, clock, incident)  # +15 today
        last_month = dt.datetime(2026, 10, 31, 23, 30, tzinfo=SHANGHAI)
        await _give(conn, me, 40, last_month)  # counts in the balance, not in November
        await _give(conn, me, -30, clock.now() - dt.timedelta(hours=1), reason="redemption")  # not in rankings
        await _give(conn, peer, 20, clock.now())
        await _give(conn, elsewhere, 50, clock.now())  # shares no area with me
        await _give(conn, grid_member, 90, clock.now())  # not a courier
        await _give(conn, loner, 16, clock.now())
        open_one = await new_incident(conn, clock, category="streetlight_out")
        await add_report(conn, clock, open_one, me)

        mine = await points.summary(conn, member_id=me, now=clock.now())
        assert (mine.balance, mine.provisional, mine.month, mine.month_points, mine.rank) == (
            15 + 40 - 30, 6 + 5, "2026-11", 15, 2)  # provisional: first of open_one, resolve of incident
        assert [(e.reason, e.amount, e.incident_id) for e in mine.ledger] == [
            ("first_report", 15, incident), ("redemption", -30, None), ("adjustment", 40, None)]
        assert mine.ledger[0].created_at == clock.now()

        # No areas: ranked among every courier (50, 20, 16, 15 → third).
        assert (await points.summary(conn, member_id=loner, now=clock.now())).rank == 3
        # No points this month: no rank.
        assert (await points.summary(conn, member_id=idle, now=clock.now())).rank is None
        # The month is Shanghai's: on 1 December 00:30 (still 30 November in UTC) November is over.
        december = await points.summary(conn, member_id=me,
                                        now=dt.datetime(2026, 12, 1, 0, 30, tzinfo=SHANGHAI).astimezone(dt.UTC))
        assert (december.month, december.month_points, december.rank) == ("2026-12", 0, None)


async def test_summary_ledger_is_newest_first_and_at_most_fifty(db, clock):
    async with db.acquire() as conn:
        me = await make_member(conn)
        for i in range(55):
            await _give(conn, me, i + 1, clock.now() + dt.timedelta(minutes=i))
        mine = await points.summary(conn, member_id=me, now=clock.now())
        assert len(mine.ledger) == 50
        assert [e.amount for e in mine.ledger[:3]] == [55, 54, 53]
        assert mine.balance == sum(range(1, 56))


async def test_the_whole_ledger_pages_back_fifty_at_a_time_newest_first(db, clock):
    async with db.acquire() as conn:
        me, someone = await make_member(conn), await make_member(conn)
        start = clock.now()
        for i in range(105):  # rows 50–59 share one instant: the first page ends among them (at 55)
            await _give(conn, me, i + 1, start + dt.timedelta(minutes=50 if 50 <= i < 60 else i))
        await _give(conn, someone, 999, start)
        summary = await points.summary(conn, member_id=me, now=clock.now())
        assert summary.ledger_next is not None
        pages = [summary.ledger]
        cursor = summary.ledger_next
        while cursor is not None:
            page = await points.ledger_page(conn, member_id=me, before=cursor)
            pages.append(page.items)
            cursor = page.next
        assert [len(p) for p in pages] == [50, 50, 5]
        amounts = [e.amount for page in pages for e in page]
        assert sorted(amounts, reverse=True) == list(range(105, 0, -1))  # every row once, none of someone's
        times = [(e.created_at, e.id) for page in pages for e in page]
        assert times == sorted(times, reverse=True)
        # A rider with fifty rows or fewer has no next page.
        assert (await points.summary(conn, member_id=someone, now=clock.now())).ledger_next is None


async def test_a_reversal_in_the_ledger_names_its_incident(db, clock):
    async with db.acquire() as conn:
        first, other = await make_member(conn), await make_member(conn)
        incident = await new_incident(conn, clock)
        await add_report(conn, clock, incident, first, minutes_ago=1)
        await add_report(conn, clock, incident, other)
        await accept(conn, clock, incident)
        await set_state(conn, clock, incident, "dispatched", cycle=2)
        clock.advance(minutes=5)
        await reject(conn, clock, incident, "not_a_hazard")
        entries = (await points.summary(conn, member_id=other, now=clock.now())).ledger
        assert [(e.reason, e.amount, e.incident_id) for e in entries] == [
            ("reversal", -2, incident), ("corroboration", 2, incident)]


# ── API ───────────────────────────────────────────────────────────────────────────────────────────


@pytest.fixture
async def points_client(settings, clock, db, redis, monkeypatch):
    """The app with PointsController registered (app.py registers it once the controller lands there)."""
    import gridrider.app as app_module
    from gridrider.api.points import PointsController

    if PointsController not in app_module.API_CONTROLLERS:
        monkeypatch.setattr(app_module, "API_CONTROLLERS", [*app_module.API_CONTROLLERS, PointsController])
    async with AsyncTestClient(app=app_module.create_app(settings, clock=clock)) as client:
        yield client


async def test_get_my_points(points_client, db, settings, clock, demo):
    grid = "ZW-ZWZ-C02-G01"
    code = await issue_code(db, settings, clock, role="courier", phone="13977770000", areas=[grid],
                            platform="meituan")
    rider = await sign_in(points_client, code, "13977770000")
    async with db.acquire() as conn:
        incident = await new_incident(conn, clock, category="flooding")
        await add_report(conn, clock, incident, rider.member_id)
        await accept(conn, clock, incident)

    reply = await points_client.get("/api/v1/me/points", headers=rider.headers)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["balance"], body["provisional"], body["month"], body["month_points"], body["rank"]) == (
        15, 5, "2026-11", 15, 1)
    assert [(e["reason"], e["amount"], e["incident_id"]) for e in body["ledger"]] == [
        ("first_report", 15, incident)]

    assert body["ledger_next"] is None
    # junk, [], a naive time, an id past bigint
    for before in ("not-a-cursor", "W10", "WyIyMDI2LTExLTI2VDEwOjAwOjAwIiwgMV0",
                   "WyIyMDI2LTExLTI2VDEwOjAwOjAwKzAwOjAwIiwxMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwXQ"):
        reply = await points_client.get("/api/v1/me/points/ledger", params={"before": before}, headers=rider.headers)
        assert (reply.status_code, reply.json()["code"], reply.json()["errors"][0]["field"]) == (
            422, "validation_failed", "before")
    reply = await points_client.get("/api/v1/me/points/ledger", headers=rider.headers)
    assert (reply.status_code, [e["reason"] for e in reply.json()["items"]], reply.json()["next"]) == (
        200, ["first_report"], None)

    code = await issue_code(db, settings, clock, role="grid_member", phone="13977771111", areas=[grid])
    grid_member = await sign_in(points_client, code, "13977771111")
    assert (await points_client.get("/api/v1/me/points/ledger", headers=grid_member.headers)).status_code == 403
    assert (await points_client.get("/api/v1/me/points", headers=grid_member.headers)).status_code == 403
    assert (await points_client.get("/api/v1/me/points")).status_code == 401
