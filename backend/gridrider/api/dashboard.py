"""`GET /api/v1/dashboard?scope=&from=&to=` (supervisor, admin): the 总览 figures of UX.md's Supervisor page.

Range: incidents created from 00:00 Asia/Shanghai of `from` to 24:00 of `to` (both YYYY-MM-DD,
inclusive, at most 366 days); by default the current Shanghai month up to today, read from the
injected clock. Only `to` given: from the first day of its month. Bad dates → 422 `date_invalid`,
days outside 2000–2099 → 422 `date_out_of_range`, `from` after `to` → 422 `date_range_reversed`,
more than 366 days → 422 `date_range_too_long`.

Scope: the caller's subtrees (every area under their own; admins: everything), narrowed by `scope`
to one area and its subtree; a `scope` outside the caller's subtrees answers exactly like an unknown
code, 404 `area_not_found`, so its existence does not leak.

What each figure means:

- `incidents`, `by_state`, `by_category`: incidents of the range in scope, merged ones included
  (so both breakdowns add up to `incidents`); every state is listed, categories only when they have
  incidents. Stage times and states are those of each incident's current cycle.
- `on_time.<stage>` (dispatch, accept, resolve): among the incidents of the range, a stage is
  *judged* once its outcome is known — it finished, it carries an overdue mark, or the incident still
  waits in it past its due time (by `now`). It is *on time* when it finished no later than its due
  time and carries no overdue mark. A stage cut short by a rejection or a merge before it finished,
  without an overdue mark, is not judged (nobody was late, nobody was on time). `rate` =
  on_time / judged, null when nothing was judged. Dispatch at creation (routed) or at a reopen
  counts as on time, as DESIGN §2c says it is met then; a complex-case approval that moved the
  resolve due time (and cleared the mark) is judged against the new time.
- `completion`: `completed` = incidents of the range now resolved or closed; `eligible` = incidents
  of the range minus merged ones (duplicates, counted in their target) and rejected ones (not a
  hazard, not locatable or out of scope: nothing to complete). `rate` = completed / eligible.
- `overdue`: incidents in scope overdue *now*, whatever the range — a supervisor must see last
  month's stuck incident too: open (unrouted, dispatched or accepted) with the due time of the stage
  they wait in at or before now. `count` is all of them; `incidents` the 50 most overdue, with
  `overdue_s` = now − due time.
- `durations` (median seconds and sample size): creation→dispatch (first cycle only, since a reopen
  restarts dispatch; routed incidents count 0 s), dispatch→accept, accept→resolve, over the incidents
  of the range that went through both ends.
- `hotspots`: the 20 H3 resolution-9 cells with most incidents of the range (merged ones left out:
  their hazard is counted where it was merged), with the cell's centre; `recurrences`: the cells of
  the range's incidents re-reported within 7 days of a resolution (`recurrence_of_id` set), most first.
- `riders`: couriers (not the Open311 system account) with a report *received* in the range, and
  reports and riders per delivery platform. Scoped through the incident a report belongs to; an
  unscoped admin view also counts reports not yet processed into an incident.
- `alerts`: deliveries per channel (webpush, wecom, sms, stream) of the notifications raised in the
  range about incidents in scope, by delivery state (sent, failed, pending, gone, skipped); an
  unscoped admin view also counts notifications about no incident.

All figures are read in one read-only REPEATABLE READ transaction, so they agree with each other.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import h3
import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from gridrider.api.auth import roles, scope_paths
from gridrider.api.day_range import day_range
from gridrider.clock import local_day, local_day_start
from gridrider.db import dashboard as db
from gridrider.db.members import MemberRow
from gridrider.db.pool import Pool
from gridrider.domain.workflow import STATES_ALL
from gridrider.services import Services

# ── response ─────────────────────────────────────────────────────────────────────────────────────


class StageOnTime(msgspec.Struct, frozen=True):
    judged: int
    on_time: int
    rate: float | None  # on_time / judged, 4 decimals


class OnTime(msgspec.Struct, frozen=True):
    dispatch: StageOnTime
    accept: StageOnTime
    resolve: StageOnTime


class Completion(msgspec.Struct, frozen=True):
    completed: int  # resolved or closed
    eligible: int  # neither merged nor rejected
    rate: float | None


class Durations(msgspec.Struct, frozen=True):
    # The database's own rows (median seconds and how many were measured), as they are.
    creation_to_dispatch: db.DurationRow
    dispatch_to_accept: db.DurationRow
    accept_to_resolve: db.DurationRow


class OverdueIncident(msgspec.Struct, frozen=True):
    id: int
    category: str
    area_code: str | None
    stage: str  # dispatch, accept or resolve
    due_at: dt.datetime
    overdue_s: int


class Overdue(msgspec.Struct, frozen=True):
    count: int
    incidents: list[OverdueIncident]


class CellFigure(msgspec.Struct, frozen=True):
    cell: str  # H3 index, hexadecimal
    lat: float  # centre of the cell, WGS-84
    lon: float
    incidents: int
    recurrences: int


class PlatformFigure(msgspec.Struct, frozen=True):
    platform: str | None  # NULL: a courier enrolled without one
    riders: int
    reports: int


class Riders(msgspec.Struct, frozen=True):
    active: int
    by_platform: list[PlatformFigure]


class ChannelFigure(msgspec.Struct, frozen=True):
    channel: str
    sent: int
    failed: int
    pending: int
    gone: int
    skipped: int


class DashboardOut(msgspec.Struct, frozen=True):
    scope: str | None
    from_: dt.date = msgspec.field(name="from")
    to: dt.date
    now: dt.datetime
    incidents: int
    by_state: dict[str, int]
    by_category: dict[str, int]
    on_time: OnTime
    completion: Completion
    durations: Durations
    overdue: Overdue
    hotspots: list[CellFigure]
    recurrences: list[CellFigure]
    riders: Riders
    alerts: list[ChannelFigure]


# ── the range ────────────────────────────────────────────────────────────────────────────────────


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _cell(row: db.CellRow) -> CellFigure:
    index = h3.int_to_str(row.cell)
    lat, lon = h3.cell_to_latlng(index)
    return CellFigure(cell=index, lat=round(lat, 6), lon=round(lon, 6), incidents=row.incidents,
                      recurrences=row.recurrences)


class DashboardController(Controller):
    path = "/api/v1/dashboard"

    @get("/", operation_id="getDashboard", opt=roles("supervisor", "admin"))
    async def dashboard(
        self, me: NamedDependency[MemberRow], services: NamedDependency[Services], read_pool: NamedDependency[Pool],
        # `scope` is a name Litestar reserves (the ASGI scope) and `from` a Python keyword, hence the aliases;
        # the dates are parsed here, not by Litestar, to answer with precise codes.
        area_scope: Annotated[str | None, QueryParameter(name="scope", max_length=64)] = None,
        raw_from: Annotated[str | None, QueryParameter(name="from")] = None,
        raw_to: Annotated[str | None, QueryParameter(name="to")] = None,
    ) -> DashboardOut:
        now = services.clock.now()
        first, last = day_range(raw_from, raw_to, local_day(now))
        start, end = local_day_start(first), local_day_start(last + dt.timedelta(days=1))
        # The replica when there is one (api/deps.provide_read_pool: figures may lag by seconds).
        async with read_pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            paths = await scope_paths(conn, me, area_scope)
            figures = await db.figures(conn, paths=paths, start=start, end=end, now=now)

        by_state = {state: figures.by_state.get(state, 0) for state in STATES_ALL}
        total = sum(by_state.values())
        completed = by_state["resolved"] + by_state["closed"]
        eligible = total - by_state["merged"] - by_state["rejected"]
        on_time = {stage: StageOnTime(judged=row.judged, on_time=row.on_time, rate=_rate(row.on_time, row.judged))
                   for stage, row in figures.stages.items()}
        recurring = sorted((c for c in figures.cells if c.recurrences and c.recurrence_rank <= db.HOTSPOT_LIMIT),
                           key=lambda c: c.recurrence_rank)
        return DashboardOut(
            scope=area_scope, from_=first, to=last, now=now, incidents=total, by_state=by_state,
            by_category=figures.by_category, on_time=OnTime(**on_time),
            completion=Completion(completed=completed, eligible=eligible, rate=_rate(completed, eligible)),
            durations=Durations(**figures.durations),
            overdue=Overdue(count=figures.overdue_total, incidents=[
                OverdueIncident(id=r.id, category=r.category, area_code=r.area_code, stage=r.stage, due_at=r.due_at,
                                overdue_s=r.overdue_s) for r in figures.overdue]),
            hotspots=[_cell(c) for c in figures.cells if c.hot_rank <= db.HOTSPOT_LIMIT],
            recurrences=[_cell(c) for c in recurring],
            riders=Riders(active=figures.active_riders, by_platform=[
                PlatformFigure(platform=p.platform, riders=p.riders, reports=p.reports) for p in figures.platforms]),
            alerts=[ChannelFigure(channel=c.channel, sent=c.sent, failed=c.failed, pending=c.pending, gone=c.gone,
                                  skipped=c.skipped) for c in figures.channels],
        )
