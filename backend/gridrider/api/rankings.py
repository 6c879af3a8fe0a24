"""Rankings (issue 8): riders by ranking points, teams by how they handle their incidents.

- `GET /api/v1/rankings/riders?period=month|quarter|year&at=2026-11&scope=<area code>&platform=…&cursor=…`
  Riders enrolled in the caller's subtree (or `scope`, which must lie inside it), 50 a page, plus the
  caller's own row when the caller is a ranked rider. Riders see pseudonyms only; supervisors and
  admins also see names, member ids and open flags.
- `GET /api/v1/rankings/teams?period=…&at=…&scope=…` (supervisors, admins): one row per grid.

Periods and ranks: domain/rankings.py. A scope outside the caller's subtree: 404.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from gridrider.api.auth import ANY_MEMBER, roles, scope_paths
from gridrider.cursors import decode_cursor, encode_cursor
from gridrider.db.members import MemberRow
from gridrider.db.pool import Pool
from gridrider.domain import rankings
from gridrider.domain.rankings import PageCursor, RiderRank, TeamRank
from gridrider.errors import FieldError, ValidationFailed
from gridrider.services import Services

PAGE = 50
STAFF = frozenset({"supervisor", "admin"})
PLATFORMS = ("meituan", "eleme", "sf", "jd", "other")

# `scope` is a name Litestar reserves (the ASGI scope), hence the alias.
AreaScope = Annotated[str | None, QueryParameter(name="scope", max_length=64)]
PeriodKind = Annotated[str, QueryParameter(max_length=10)]
At = Annotated[str | None, QueryParameter(max_length=10)]


class RiderRankOut(msgspec.Struct, frozen=True, omit_defaults=True):
    rank: int
    top_percent: int
    pseudonym: str
    platform: str | None
    points: int
    reports: int
    accepted_reports: int
    first_discoveries: int
    corroborations: int
    acceptance_rate: float | None
    duplicate_rate: float | None
    median_accept_s: int | None
    # Staff only (absent for riders: another rider's name, id and flags are not theirs to see).
    member_id: int | None = None
    display_name: str | None = None
    open_flags: int | None = None

    @classmethod
    def of(cls, row: RiderRank, *, staff: bool) -> RiderRankOut:
        return cls(
            rank=row.rank, top_percent=row.top_percent, pseudonym=row.pseudonym, platform=row.platform,
            points=row.points, reports=row.reports, accepted_reports=row.accepted_reports,
            first_discoveries=row.first_discoveries, corroborations=row.corroborations,
            acceptance_rate=row.acceptance_rate, duplicate_rate=row.duplicate_rate,
            median_accept_s=row.median_accept_s,
            member_id=row.member_id if staff else None, display_name=row.display_name if staff else None,
            open_flags=row.open_flags if staff else None,
        )


class RiderRankingOut(msgspec.Struct, frozen=True):
    period: str
    start: dt.date
    end: dt.date
    scope: str | None
    ranked: int
    items: list[RiderRankOut]
    me: RiderRankOut | None
    next_cursor: str | None
    figures_refreshed_at: dt.datetime | None  # report figures are refreshed every minute; points are live


class TeamRankingOut(msgspec.Struct, frozen=True):
    period: str
    start: dt.date
    end: dt.date
    scope: str | None
    items: list[TeamRank]


def _encode_cursor(after: PageCursor | None) -> str | None:
    if after is None:
        return None
    return encode_cursor(after)


def _decode_cursor(cursor: str | None) -> PageCursor | None:
    if not cursor:
        return None
    try:
        after = decode_cursor(cursor, PageCursor)
        # Only what _encode_cursor makes: bigints the SQL can take, ranks and counts that can be.
        if not (-(2**63) <= after.points < 2**63 and 0 < after.member_id < 2**63 and 1 <= after.rank <= after.seen
                and after.seen < 2**31):
            raise ValueError(cursor)
        return after
    except (ValueError, TypeError, msgspec.DecodeError, msgspec.ValidationError):
        raise ValidationFailed(errors=[FieldError("cursor", "invalid", "分页参数无效。")]) from None


class RankingController(Controller):
    path = "/api/v1/rankings"

    @get("/riders", operation_id="rankRiders", opt=roles(*ANY_MEMBER))
    async def riders(
        self, me: NamedDependency[MemberRow], services: NamedDependency[Services], read_pool: NamedDependency[Pool],
        period: PeriodKind = "month", at: At = None, area: AreaScope = None,
        platform: Annotated[str | None, QueryParameter(max_length=16)] = None,
        cursor: Annotated[str | None, QueryParameter(max_length=100)] = None,
    ) -> RiderRankingOut:
        if platform is not None and platform not in PLATFORMS:
            raise ValidationFailed(errors=[FieldError("platform", "invalid", "平台筛选无效。")])
        wanted = rankings.period_of(period, at, services.clock.now())
        after = _decode_cursor(cursor)
        # One snapshot: the page, the counts behind its ranks and the caller's row agree. On the replica
        # when there is one (api/deps.provide_read_pool): `figures_refreshed_at` tells how fresh it is.
        async with read_pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            paths = await scope_paths(conn, me, area)
            result = await rankings.rider_ranking(
                conn, period=wanted, scope=paths, platform=platform, after=after, limit=PAGE,
                me_id=me.id if me.role == "courier" else None)
        staff = me.role in STAFF
        return RiderRankingOut(
            period=result.period, start=result.start, end=result.end, scope=area, ranked=result.ranked,
            items=[RiderRankOut.of(r, staff=staff) for r in result.items],
            me=RiderRankOut.of(result.me, staff=staff) if result.me else None,
            next_cursor=_encode_cursor(result.next_cursor), figures_refreshed_at=result.figures_refreshed_at,
        )


    @get("/teams", operation_id="rankTeams", opt=roles("supervisor", "admin"))
    async def teams(self, me: NamedDependency[MemberRow], services: NamedDependency[Services],
                    read_pool: NamedDependency[Pool], period: PeriodKind = "month", at: At = None,
                    area: AreaScope = None) -> TeamRankingOut:
        now = services.clock.now()
        wanted = rankings.period_of(period, at, now)
        # On the replica when there is one (api/deps.provide_read_pool).
        async with read_pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            paths = await scope_paths(conn, me, area)
            items = await rankings.team_ranking(conn, period=wanted, scope=paths, now=now)
        return TeamRankingOut(period=wanted.key, start=wanted.start, end=wanted.end - dt.timedelta(days=1),
                              scope=area, items=items)
