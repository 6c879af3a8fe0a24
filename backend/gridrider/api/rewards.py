"""The rewards catalogue and redemptions (DESIGN.md §2d): riders redeem, supervisors of their area decide.

- `GET /api/v1/rewards` (everyone signed in): enabled rewards; supervisors and admins see all.
- `POST /api/v1/rewards`, `PATCH /api/v1/rewards/{id}` (supervisor, admin): the catalogue is global.
- `POST /api/v1/redemptions` (courier) {reward_id}: a pending redemption; `GET /api/v1/me/redemptions`.
- `GET /api/v1/redemptions?state=…` (supervisor, admin): riders with an area in the caller's subtree.
- `POST /api/v1/redemptions/{id}/approve`, `/decline` {reason}: the same scope (outside it: 404).

Refusals are 409 problems whose `detail` is shown: `insufficient_points` (with `balance` and `cost`),
`reward_unavailable`, `already_decided`.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, ClassVar

import msgspec
from litestar import Controller, Request, Response, get, patch, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter

from gridrider.api.auth import ANY_MEMBER, roles, subtree_paths
from gridrider.api.problems import PROBLEM_MEDIA_TYPE, Problem, request_language
from gridrider.api.schemas import RowId
from gridrider.db import redemptions as db
from gridrider.db.members import MemberRow
from gridrider.domain import redemptions
from gridrider.domain.redemptions import InsufficientPoints, RedemptionRefused
from gridrider.errors import FieldError, NotFound, ValidationFailed, message_for
from gridrider.jobs.queue import Tx
from gridrider.logging import get_logger
from gridrider.services import Services

log = get_logger(__name__)

UNSET = msgspec.UNSET
PG_INT_MAX = 2**31 - 1

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=80)]
Cost = Annotated[int, msgspec.Meta(ge=1, le=PG_INT_MAX)]
Stock = Annotated[int, msgspec.Meta(ge=0, le=PG_INT_MAX)]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=500, pattern=r"^[^\x00]+$")]  # PostgreSQL holds no NUL
SUPERVISING = frozenset({"supervisor", "admin"})


class RewardIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name_zh: Name
    cost: Cost
    name_en: Name | None = None
    stock: Stock | None = None  # None: unlimited
    enabled: bool = True


class RewardPatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Only the fields sent change; name_en and stock accept null (no English name; unlimited)."""

    name_zh: Name | msgspec.UnsetType = UNSET
    name_en: Name | msgspec.UnsetType | None = UNSET
    cost: Cost | msgspec.UnsetType = UNSET
    stock: Stock | msgspec.UnsetType | None = UNSET
    enabled: bool | msgspec.UnsetType = UNSET


class RewardOut(msgspec.Struct, frozen=True):
    id: int
    name_zh: str
    name_en: str | None
    cost: int
    stock: int | None
    enabled: bool

    @classmethod
    def of(cls, row: db.RewardRow) -> RewardOut:
        return cls(id=row.id, name_zh=row.name_zh, name_en=row.name_en, cost=row.cost, stock=row.stock,
                   enabled=row.enabled)


class RedemptionIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    reward_id: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]


class DeclineIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    reason: Reason


class RedemptionOut(msgspec.Struct, frozen=True):
    id: int
    member_id: int
    member_pseudonym: str
    member_display_name: str | None  # supervisors' views only
    reward_id: int
    reward_name_zh: str
    reward_name_en: str | None
    cost: int
    state: str  # pending, approved, rejected (declined), fulfilled
    reason: str | None
    decided_at: dt.datetime | None
    created_at: dt.datetime

    @classmethod
    def of(cls, row: db.RedemptionRow, *, supervisor_view: bool) -> RedemptionOut:
        return cls(id=row.id, member_id=row.member_id, member_pseudonym=row.member_pseudonym,
                   member_display_name=row.member_display_name if supervisor_view else None,
                   reward_id=row.reward_id, reward_name_zh=row.reward_name_zh, reward_name_en=row.reward_name_en,
                   cost=row.cost, state=row.state, reason=row.reason, decided_at=row.decided_at,
                   created_at=row.created_at)


class RefusalProblem(Problem, omit_defaults=True):
    """A problem+json 409 with the refusal's detail and, for insufficient_points, both numbers."""

    balance: int | None = None
    cost: int | None = None


def handle_refusal(request: Request[Any, Any, Any], exc: RedemptionRefused) -> Response[RefusalProblem]:
    lang = request_language(request)
    body = RefusalProblem(
        type=f"https://gridrider.invalid/problems/{exc.code}", title=message_for(exc.code, lang), status=exc.status,
        code=exc.code, detail=exc.detail or "",
        balance=exc.balance if isinstance(exc, InsufficientPoints) else None,
        cost=exc.cost if isinstance(exc, InsufficientPoints) else None,
    )
    return Response(body, status_code=exc.status, media_type=PROBLEM_MEDIA_TYPE, headers={"Content-Language": lang})


def _clean_names(fields: dict[str, Any]) -> dict[str, Any]:
    errors: list[FieldError] = []
    for name in ("name_zh", "name_en"):
        if isinstance(fields.get(name), str):
            value = fields[name].strip()
            if not value or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
                errors.append(FieldError(name, "invalid", f"{name} 须为 1 到 80 个字符。"))
            fields[name] = value
    if errors:
        raise ValidationFailed(errors=errors)
    return fields


class RewardController(Controller):
    path = "/api/v1"
    exception_handlers: ClassVar = {RedemptionRefused: handle_refusal}  # its 409s carry their detail

    # ── catalogue ──

    @get("/rewards", operation_id="listRewards", opt=roles(*ANY_MEMBER))
    async def list_rewards(self, me: NamedDependency[MemberRow],
                           services: NamedDependency[Services]) -> list[RewardOut]:
        rows = await db.list_rewards(services.pool, enabled_only=me.role not in SUPERVISING)
        return [RewardOut.of(r) for r in rows]

    @post("/rewards", operation_id="createReward", opt=roles("supervisor", "admin"), status_code=201)
    async def create_reward(self, tx: NamedDependency[Tx], me: NamedDependency[MemberRow],
                            services: NamedDependency[Services], data: JSONBody[RewardIn]) -> RewardOut:
        fields = _clean_names(msgspec.structs.asdict(data))
        row = await db.insert_reward(tx.conn, now=services.clock.now(), **fields)
        log.info("rewards.created", reward_id=row.id, actor_id=me.id)
        return RewardOut.of(row)

    @patch("/rewards/{reward_id:int}", operation_id="updateReward", opt=roles("supervisor", "admin"))
    async def update_reward(self, tx: NamedDependency[Tx], me: NamedDependency[MemberRow], reward_id: RowId,
                            data: JSONBody[RewardPatch]) -> RewardOut:
        current = await db.reward_for_update(tx.conn, reward_id)
        if current is None:
            raise NotFound()
        sent = _clean_names({f: v for f in data.__struct_fields__ if (v := getattr(data, f)) is not UNSET})
        changed = sorted(f for f, v in sent.items() if getattr(current, f) != v)
        if not changed:
            return RewardOut.of(current)
        updated = await db.update_reward(tx.conn, msgspec.structs.replace(current, **{f: sent[f] for f in changed}))
        log.info("rewards.updated", reward_id=reward_id, actor_id=me.id, fields=changed)
        return RewardOut.of(updated)

    # ── a rider's redemptions ──

    @post("/redemptions", operation_id="createRedemption", opt=roles("courier"), status_code=201)
    async def create_redemption(self, tx: NamedDependency[Tx], me: NamedDependency[MemberRow],
                                services: NamedDependency[Services], data: JSONBody[RedemptionIn]) -> RedemptionOut:
        redemption_id = await redemptions.request(tx.conn, member_id=me.id, reward_id=data.reward_id,
                                                  now=services.clock.now())
        row = await db.redemption_by_id(tx.conn, redemption_id)
        assert row is not None
        return RedemptionOut.of(row, supervisor_view=False)

    @get("/me/redemptions", operation_id="listMyRedemptions", opt=roles("courier"))
    async def my_redemptions(self, me: NamedDependency[MemberRow], services: NamedDependency[Services],
                             limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50) -> list[RedemptionOut]:
        rows = await db.my_redemptions(services.pool, me.id, limit)
        return [RedemptionOut.of(r, supervisor_view=False) for r in rows]

    # ── supervisors ──

    @get("/redemptions", operation_id="listRedemptions", opt=roles("supervisor", "admin"))
    async def list_redemptions(
        self, me: NamedDependency[MemberRow], services: NamedDependency[Services],
        wanted: Annotated[str | None, QueryParameter(name="state", max_length=20)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 100,
    ) -> list[RedemptionOut]:
        if wanted is not None and wanted not in redemptions.STATES:
            raise ValidationFailed(errors=[FieldError("state", "invalid", "状态筛选无效。")])
        rows = await db.scoped_redemptions(services.pool, state=wanted, scope=subtree_paths(me), limit=limit)
        return [RedemptionOut.of(r, supervisor_view=True) for r in rows]

    @post("/redemptions/{redemption_id:int}/approve", operation_id="approveRedemption",
          opt=roles("supervisor", "admin"), status_code=200)
    async def approve(self, tx: NamedDependency[Tx], me: NamedDependency[MemberRow],
                      services: NamedDependency[Services], redemption_id: RowId) -> RedemptionOut:
        row = await redemptions.approve(tx.conn, redemption_id=redemption_id, approver_id=me.id,
                                        scope=subtree_paths(me), now=services.clock.now())
        log.info("redemptions.approved", redemption_id=redemption_id, actor_id=me.id)
        return RedemptionOut.of(row, supervisor_view=True)

    @post("/redemptions/{redemption_id:int}/decline", operation_id="declineRedemption",
          opt=roles("supervisor", "admin"), status_code=200)
    async def decline(self, tx: NamedDependency[Tx], me: NamedDependency[MemberRow],
                      services: NamedDependency[Services], redemption_id: RowId,
                      data: JSONBody[DeclineIn]) -> RedemptionOut:
        reason = data.reason.strip()
        if not reason:
            raise ValidationFailed(errors=[FieldError("reason", "required", "请填写拒绝理由。")])
        row = await redemptions.decline(tx.conn, redemption_id=redemption_id, decider_id=me.id,
                                        scope=subtree_paths(me), reason=reason, now=services.clock.now())
        log.info("redemptions.declined", redemption_id=redemption_id, actor_id=me.id)
        return RedemptionOut.of(row, supervisor_view=True)
