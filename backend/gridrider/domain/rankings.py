"""Rankings (issue 8, DESIGN.md §2d): which period a request means, and how ranks are counted.

- A period is an Asia/Shanghai month (`2026-11`), quarter (`2026-Q4`) or year (`2026`); its key is
  the `ranking_totals.period` the database keeps in step with the ledger (migration 0008).
- Rank is competition ranking: 1 + the riders in the scope with strictly more points (ties share a
  rank). `top_percent` is the rank as a share of the riders ranked in the scope, rounded up — "top
  3%" — so a newcomer in a big county sees where they stand and that they can climb (as Waze shows).
"""

from __future__ import annotations

import datetime as dt
import math
import re

import msgspec

from gridrider.clock import SHANGHAI, local_day
from gridrider.db import rankings as db
from gridrider.db.pool import Connection, Pool
from gridrider.errors import FieldError, ValidationFailed

PERIOD_KINDS = ("month", "quarter", "year")
_AT = re.compile(r"^(?P<year>\d{4})(?:-(?:(?P<month>\d{2})|Q(?P<quarter>[1-4])))?$")


class Period(msgspec.Struct, frozen=True):
    kind: str      # month, quarter, year
    key: str       # ranking_totals.period: 2026-11, 2026-Q4, 2026
    start: dt.date  # first day (Asia/Shanghai)
    end: dt.date    # day after the last

    def bounds(self) -> tuple[dt.datetime, dt.datetime]:
        """[start, end) as instants: 00:00 Asia/Shanghai of the first day and of the day after."""
        return (dt.datetime.combine(self.start, dt.time(0), tzinfo=SHANGHAI),
                dt.datetime.combine(self.end, dt.time(0), tzinfo=SHANGHAI))


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(errors=[FieldError(field, "invalid", message)])


def period_of(kind: str, at: str | None, now: dt.datetime) -> Period:
    """The period of `kind` that holds `at` (YYYY, YYYY-MM or YYYY-Qn; default: today in Shanghai).

    `at` may name a finer or equal period (a month for a quarter); a coarser one is refused — a year
    does not say which month.
    """
    if kind not in PERIOD_KINDS:
        raise _invalid("period", "排行周期只能是 month、quarter 或 year。")
    if at is None:
        today = local_day(now)
        year, month = today.year, today.month
    else:
        match = _AT.match(at)
        if not match:
            raise _invalid("at", "时间格式应为 2026、2026-11 或 2026-Q4。")
        year = int(match["year"])
        if match["month"]:
            month = int(match["month"])
            if not 1 <= month <= 12:
                raise _invalid("at", "月份无效。")
        elif match["quarter"]:
            if kind == "month":
                raise _invalid("at", "按月排行需要指定月份，例如 2026-11。")
            month = 3 * int(match["quarter"]) - 2
        else:
            if kind != "year":
                raise _invalid("at", "请指定月份，例如 2026-11。")
            month = 1
        if not 2000 <= year <= 2999:
            raise _invalid("at", "年份超出范围。")
    if kind == "month":
        first, months, key = month, 1, f"{year:04d}-{month:02d}"
    elif kind == "quarter":
        quarter = (month - 1) // 3 + 1
        first, months, key = 3 * quarter - 2, 3, f"{year:04d}-Q{quarter}"
    else:
        first, months, key = 1, 12, f"{year:04d}"
    start = dt.date(year, first, 1)
    after = first - 1 + months
    end = dt.date(year + after // 12, after % 12 + 1, 1)
    return Period(kind=kind, key=key, start=start, end=end)


def top_percent(rank: int, ranked: int) -> int:
    """Rank as a share of the ranked riders, rounded up: rank 1 of 200 → 1 (top 1%), 200 of 200 → 100."""
    return max(1, math.ceil(100 * rank / ranked)) if ranked else 100


class PageCursor(msgspec.Struct, frozen=True, array_like=True):
    """Where the next page starts: the last row's points and member, its rank and how many rows came
    before it and with it — so a later page numbers its rows without counting the scope again."""
    points: int
    member_id: int
    rank: int
    seen: int


def page_ranks(points: list[int], after: PageCursor | None) -> list[int]:
    """Competition ranks of one page of rows in points order: a row's rank is 1 + the rows before it
    with more points, i.e. the position of the first row with its points (ties share a rank)."""
    seen = after.seen if after else 0
    ranks: list[int] = []
    for i, value in enumerate(points):
        if i > 0 and value == points[i - 1]:
            ranks.append(ranks[-1])
        elif i == 0 and after is not None and value == after.points:
            ranks.append(after.rank)
        else:
            ranks.append(seen + i + 1)
    return ranks


# ── riders ────────────────────────────────────────────────────────────────────────────────────────


class RiderRank(msgspec.Struct, frozen=True):
    rank: int
    top_percent: int
    member_id: int
    pseudonym: str
    display_name: str | None
    platform: str | None
    points: int
    reports: int
    accepted_reports: int
    first_discoveries: int
    corroborations: int
    acceptance_rate: float | None  # accepted / reports received in the period
    duplicate_rate: float | None   # reports that joined an incident someone else started / processed reports
    median_accept_s: int | None    # report received → incident accepted
    open_flags: int


class RiderRanking(msgspec.Struct, frozen=True):
    period: str
    start: dt.date
    end: dt.date  # the period's last day
    ranked: int   # riders with ranking points in the period and scope
    items: list[RiderRank]
    me: RiderRank | None  # the caller's own row, when the caller is a ranked rider
    next_cursor: PageCursor | None
    # Points, first discoveries and corroborations are live; report figures are as of this refresh.
    figures_refreshed_at: dt.datetime | None


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _rider_rank(total: db.RiderTotal, rank: int, ranked: int, figures: db.RiderFigures) -> RiderRank:
    return RiderRank(
        rank=rank, top_percent=top_percent(rank, ranked), member_id=total.member_id, pseudonym=total.pseudonym,
        display_name=total.display_name, platform=total.platform, points=total.points, reports=figures.reports,
        accepted_reports=figures.accepted_reports, first_discoveries=total.first_reports,
        corroborations=total.corroborations, acceptance_rate=_rate(figures.accepted_reports, figures.reports),
        duplicate_rate=_rate(figures.duplicates, figures.reports),
        median_accept_s=round(figures.median_accept_s) if figures.median_accept_s is not None else None,
        open_flags=figures.open_flags,
    )


async def rider_ranking(conn: Connection, *, period: Period, scope: list[str] | None, platform: str | None,
                        after: PageCursor | None, limit: int, me_id: int | None) -> RiderRanking:
    """One page of riders in points order, each with their figures, plus `me_id`'s own row.

    Runs in the caller's (read-only) transaction. Ranks across pages come from the cursor, so they are
    the ranks as of the first page: a rider overtaken between two clicks may show on both.
    """
    ranked = await db.ranked_riders(conn, period=period.key, scope=scope, platform=platform)
    if scope is not None and len(scope) == 1 and platform is None \
            and ranked == await db.ranked_riders(conn, period=period.key, scope=None, platform=None):
        # A scope holding every ranked rider (a county supervisor's, with one county) is no filter.
        scope = None
    rows = await db.rider_page(conn, period=period.key, scope=scope, platform=platform,
                               after=(after.points, after.member_id) if after else None, limit=limit + 1)
    more, rows = len(rows) > limit, rows[:limit]
    mine = await db.rider_total(conn, period=period.key, scope=scope, platform=platform, member_id=me_id) \
        if me_id is not None else None
    wanted = [r.member_id for r in rows] + ([mine.member_id] if mine else [])
    figures = await db.rider_figures(conn, wanted, period.key) if wanted else {}
    ranks = page_ranks([r.points for r in rows], after)
    items = [_rider_rank(r, rank, ranked, figures[r.member_id]) for r, rank in zip(rows, ranks, strict=True)]
    me = None
    if mine is not None:
        above = await db.riders_above(conn, period=period.key, scope=scope, platform=platform, points=mine.points)
        me = _rider_rank(mine, above + 1, ranked, figures[mine.member_id])
    seen = (after.seen if after else 0) + len(rows)
    return RiderRanking(
        period=period.key, start=period.start, end=period.end - dt.timedelta(days=1), ranked=ranked,
        items=items, me=me,
        next_cursor=PageCursor(rows[-1].points, rows[-1].member_id, ranks[-1], seen) if more else None,
        figures_refreshed_at=await db.report_stats_refreshed_at(conn),
    )


# How far behind the report-figures refresh keeps its watermarks: a report or incident change that
# commits up to this long after the time it carries is still seen.
REFRESH_MARGIN = dt.timedelta(minutes=5)


async def refresh_report_figures(conn: Connection, *, now: dt.datetime) -> int:
    """Recompute the report figures of riders whose reports or incidents changed (a cron, every minute)."""
    return await db.refresh_report_stats(conn, now=now, margin=REFRESH_MARGIN)


# ── teams ─────────────────────────────────────────────────────────────────────────────────────────


class TeamRank(msgspec.Struct, frozen=True):
    rank: int
    area_code: str
    name_zh: str
    name_en: str | None
    incidents: int              # routed to the grid and created in the period (merged ones excepted)
    accept_on_time_rate: float | None
    resolve_on_time_rate: float | None
    completion_rate: float | None  # resolved or closed / not rejected
    rejection_rate: float | None   # rejected / all
    transfers: int
    reused_proof_photos: int       # a team gaming its own deadline with an old photo shows here


def _team_key(row: TeamRank) -> tuple:
    # Completion first, then acceptance on time, then volume; a grid with nothing to judge goes last.
    def desc(value: float | None) -> float:
        return -value if value is not None else 1.0

    return (desc(row.completion_rate), desc(row.accept_on_time_rate), -row.incidents, row.area_code)


async def team_ranking(conn: Connection | Pool, *, period: Period, scope: list[str] | None,
                       now: dt.datetime) -> list[TeamRank]:
    """Every grid in the scope, best first; ties (same completion, on-time and volume) share a rank."""
    start, end = period.bounds()
    rows = await db.team_rows(conn, scope=scope, start=start, end=end, now=now)
    unranked = [TeamRank(
        rank=0, area_code=r.code, name_zh=r.name_zh, name_en=r.name_en, incidents=r.incidents,
        accept_on_time_rate=_rate(r.accept_on_time, r.accept_judged),
        resolve_on_time_rate=_rate(r.resolve_on_time, r.resolve_judged),
        completion_rate=_rate(r.completed, r.eligible), rejection_rate=_rate(r.rejected, r.incidents),
        transfers=r.transfers, reused_proof_photos=r.reused_proof_photos,
    ) for r in rows]
    unranked.sort(key=_team_key)
    ranked: list[TeamRank] = []
    for i, row in enumerate(unranked):
        same = ranked and _team_key(row)[:3] == _team_key(ranked[-1])[:3]
        ranked.append(msgspec.structs.replace(row, rank=ranked[-1].rank if same else i + 1))
    return ranked
