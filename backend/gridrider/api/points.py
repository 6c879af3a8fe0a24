"""A rider's points: balance, provisional points, this month's points and rank, and the latest ledger rows."""

from __future__ import annotations

from litestar import Controller, get
from litestar.di import NamedDependency

from gridrider.api.auth import roles
from gridrider.db.members import MemberRow
from gridrider.domain import points
from gridrider.domain.points import PointsSummary
from gridrider.services import Services


class PointsController(Controller):
    path = "/api/v1/me/points"

    @get("/", operation_id="getMyPoints", opt=roles("courier"))
    async def my_points(self, me: NamedDependency[MemberRow], services: NamedDependency[Services]) -> PointsSummary:
        # One snapshot, so the balance, the month and the ledger page agree with each other.
        async with services.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            return await points.summary(conn, member_id=me.id, now=services.clock.now())
