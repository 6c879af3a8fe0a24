"""A rider's points: balance, provisional points, this month's points and rank, the latest ledger rows — and
the older rows, page by page."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from gridrider.api.auth import roles
from gridrider.db.members import MemberRow
from gridrider.domain import points
from gridrider.domain.points import BadLedgerCursor, LedgerPage, PointsSummary
from gridrider.errors import FieldError, ValidationFailed
from gridrider.services import Services


class PointsController(Controller):
    path = "/api/v1/me/points"

    @get("/", operation_id="getMyPoints", opt=roles("courier"))
    async def my_points(self, me: NamedDependency[MemberRow], services: NamedDependency[Services]) -> PointsSummary:
        # One snapshot, so the balance, the month and the ledger page agree with each other.
        async with services.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            return await points.summary(conn, member_id=me.id, now=services.clock.now())

    @get("/ledger", operation_id="getMyLedger", opt=roles("courier"))
    async def my_ledger(
        self, me: NamedDependency[MemberRow], services: NamedDependency[Services],
        before: Annotated[str | None, QueryParameter(max_length=200)] = None,
    ) -> LedgerPage:
        """Older ledger rows, 50 a page, newest first: `before` is the summary's `ledger_next` or a page's `next`."""
        try:
            return await points.ledger_page(services.pool, member_id=me.id, before=before)
        except BadLedgerCursor:
            raise ValidationFailed(errors=[FieldError("before", "invalid", "翻页参数无效，请刷新后重试。")]) from None
