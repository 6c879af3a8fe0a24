"""Anti-gaming review (DESIGN.md §2d): supervisors decide the flags of riders in their subtree.

- `GET /api/v1/review` (supervisor, admin): open flags of riders with an area in the caller's subtree
  (admins: every open flag), newest first, with kind, evidence, rider pseudonym, report and incident.
- `POST /api/v1/review/flags/{id}/clear`: not gaming — cleared, and what it held back is paid.
- `POST /api/v1/review/flags/{id}/confirm` {reason}: gaming — confirmed, nothing paid, earlier
  payment for the report reversed.

Outside the caller's subtree: 404. A flag already decided: 409.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter

from gridrider.api.auth import roles, subtree_paths
from gridrider.api.schemas import RowId
from gridrider.db import gaming as db
from gridrider.db.members import MemberRow
from gridrider.domain import gaming
from gridrider.errors import FieldError, ValidationFailed
from gridrider.jobs.queue import Tx
from gridrider.services import Services

Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=500, pattern=r"^[^\x00]+$")]  # PostgreSQL holds no NUL


class ConfirmIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    reason: Reason


class FlagOut(msgspec.Struct, frozen=True):
    id: int
    kind: str
    state: str  # open, cleared, confirmed
    member_id: int | None
    member_pseudonym: str | None
    report_id: int | None
    incident_id: int | None
    photo_id: int | None
    evidence: dict[str, Any]
    withheld_points: int
    decided_by: int | None
    decided_at: dt.datetime | None
    created_at: dt.datetime

    @classmethod
    def of(cls, row: db.FlagRow) -> FlagOut:
        return cls(id=row.id, kind=row.kind, state=row.state, member_id=row.member_id,
                   member_pseudonym=row.member_pseudonym, report_id=row.report_id, incident_id=row.incident_id,
                   photo_id=row.photo_id, evidence=row.evidence, withheld_points=row.withheld_points,
                   decided_by=row.decided_by, decided_at=row.decided_at, created_at=row.created_at)


class ReviewController(Controller):
    path = "/api/v1/review"

    @get("/", operation_id="listReviewFlags", opt=roles("supervisor", "admin"))
    async def list_flags(self, me: NamedDependency[MemberRow], services: NamedDependency[Services],
                         limit: Annotated[int, QueryParameter(ge=1, le=500)] = 200) -> list[FlagOut]:
        rows = await db.open_flags(services.pool, scope=subtree_paths(me), limit=limit)
        return [FlagOut.of(r) for r in rows]

    @post("/flags/{flag_id:int}/clear", operation_id="clearFlag", opt=roles("supervisor", "admin"), status_code=200)
    async def clear(self, tx: NamedDependency[Tx], me: NamedDependency[MemberRow],
                    services: NamedDependency[Services], flag_id: RowId) -> FlagOut:
        row = await gaming.clear(tx.conn, flag_id=flag_id, decider_id=me.id, scope=subtree_paths(me),
                                 now=services.clock.now())
        return FlagOut.of(row)

    @post("/flags/{flag_id:int}/confirm", operation_id="confirmFlag", opt=roles("supervisor", "admin"),
          status_code=200)
    async def confirm(self, tx: NamedDependency[Tx], me: NamedDependency[MemberRow],
                      services: NamedDependency[Services], flag_id: RowId, data: JSONBody[ConfirmIn]) -> FlagOut:
        reason = data.reason.strip()
        if not reason:
            raise ValidationFailed(errors=[FieldError("reason", "required", "请填写确认理由。")])
        row = await gaming.confirm(tx.conn, flag_id=flag_id, decider_id=me.id, scope=subtree_paths(me),
                                   reason=reason, now=services.clock.now())
        return FlagOut.of(row)
