"""The hazard categories a rider picks from, and an admin's edits to them (DESIGN.md §2a).

Riders see only enabled categories; an admin may list all (`?all=true`), edit one (PATCH) or add one
(POST). A disabled category is refused at intake (§8) while its existing reports stay readable.
Intake and the merge pipeline read the table on every use, so an edit applies to the next report.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, get, patch, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter, QueryParameter

from gridrider.api.auth import ANY_MEMBER, roles
from gridrider.db import categories as db_categories
from gridrider.db.members import MemberRow
from gridrider.domain.categories import Category
from gridrider.errors import Conflict, FieldError, NotFound, ValidationFailed
from gridrider.jobs.queue import Tx
from gridrider.logging import get_logger
from gridrider.services import Services

log = get_logger(__name__)

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
Severity = Literal["low", "medium", "high", "critical"]
MergeRadius = Annotated[int, msgspec.Meta(ge=5, le=500)]
MergeWindowHours = Annotated[int, msgspec.Meta(ge=1, le=2160)]  # up to 90 days
Weight = Annotated[float, msgspec.Meta(ge=0.1, le=5.0)]  # two decimals at most (checked below; numeric(4, 2))
SortOrder = Annotated[int, msgspec.Meta(ge=-1_000_000, le=1_000_000)]
Icon = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9-]{0,39}$")]
NewCode = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{1,39}$")]
# Any string names a category in the path; one that does not exist is a 404 (the SQL takes it as a parameter).
# Only a NUL is refused first: PostgreSQL cannot hold one in text, and it would answer 500.
CategoryCode = Annotated[str, PathParameter(min_length=1, max_length=64, pattern=r"^[^\x00]+$")]

UNSET = msgspec.UNSET


class CategoryOut(msgspec.Struct, frozen=True):
    code: str
    name_zh: str
    name_en: str
    icon: str | None
    severity: str
    life_safety: bool
    enabled: bool
    merge_radius_m: int
    merge_window_hours: int
    weight: float
    sort_order: int
    updated_at: dt.datetime

    @classmethod
    def of(cls, row: dict[str, Any]) -> CategoryOut:
        return cls(
            code=row["code"], name_zh=row["name_zh"], name_en=row["name_en"], icon=row["icon"],
            severity=row["severity"], life_safety=row["life_safety"], enabled=row["enabled"],
            merge_radius_m=row["merge_radius_m"], merge_window_hours=_hours(row["merge_window"]),
            weight=round(float(row["weight"]), 2), sort_order=row["sort_order"], updated_at=row["updated_at"],
        )


class CategoryPatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Only the fields sent change; null is not a value for any of them."""

    name_zh: Name | msgspec.UnsetType = UNSET
    name_en: Name | msgspec.UnsetType = UNSET
    icon: Icon | msgspec.UnsetType = UNSET
    severity: Severity | msgspec.UnsetType = UNSET
    life_safety: bool | msgspec.UnsetType = UNSET
    merge_radius_m: MergeRadius | msgspec.UnsetType = UNSET
    merge_window_hours: MergeWindowHours | msgspec.UnsetType = UNSET
    weight: Weight | msgspec.UnsetType = UNSET
    enabled: bool | msgspec.UnsetType = UNSET
    sort_order: SortOrder | msgspec.UnsetType = UNSET


class CategoryIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    code: NewCode
    name_zh: Name
    name_en: Name
    severity: Severity
    life_safety: bool
    merge_radius_m: MergeRadius
    merge_window_hours: MergeWindowHours
    weight: Weight
    icon: Icon = "other"
    enabled: bool = True
    sort_order: SortOrder | None = None  # None: after every existing category


def _hours(window: dt.timedelta) -> int:
    return round(window.total_seconds() / 3600)


def _checked(fields: dict[str, Any]) -> dict[str, Any]:
    """What msgspec's constraints cannot say: names are not blank, weights have two decimals at most."""
    errors: list[FieldError] = []
    for name in ("name_zh", "name_en"):
        if name in fields:
            value = fields[name].strip()
            if not value or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
                errors.append(FieldError(name, "invalid_length", f"{name} 须为 1 到 40 个字符。"))
            fields[name] = value
    if "weight" in fields and round(fields["weight"], 2) != fields["weight"]:
        errors.append(FieldError("weight", "invalid", "权重最多保留两位小数。"))
    if errors:
        raise ValidationFailed(errors=errors)
    return fields


def _columns(fields: dict[str, Any]) -> dict[str, Any]:
    """API field names and values → the table's (merge_window_hours → merge_window)."""
    out = dict(fields)
    if "merge_window_hours" in out:
        out["merge_window"] = dt.timedelta(hours=out.pop("merge_window_hours"))
    return out


class CategoryController(Controller):
    path = "/api/v1/categories"

    @get("/", operation_id="listCategories", opt=roles(*ANY_MEMBER))
    async def list_categories(
        self, services: NamedDependency[Services], me: NamedDependency[MemberRow],
        include_all: Annotated[bool, QueryParameter(name="all")] = False,
    ) -> list[CategoryOut]:
        # Only an admin sees disabled categories, and only when asking; anyone else asking gets the enabled ones.
        rows = await db_categories.list_categories(services.pool, include_disabled=include_all and me.role == "admin")
        return [CategoryOut.of(c) for c in rows]

    @patch("/{code:str}", operation_id="updateCategory", opt=roles("admin"))
    async def update_category(self, tx: NamedDependency[Tx], me: NamedDependency[MemberRow],
                              services: NamedDependency[Services], code: CategoryCode,
                              data: JSONBody[CategoryPatch]) -> CategoryOut:
        current = await db_categories.category_for_update(tx.conn, code)
        if current is None:
            raise NotFound()
        sent = _checked({f: v for f in data.__struct_fields__ if (v := getattr(data, f)) is not UNSET})
        current_fields = {**current, "merge_window_hours": _hours(current["merge_window"]),
                          "weight": round(float(current["weight"]), 2)}
        changed = sorted(f for f, v in sent.items() if current_fields[f] != v)
        if not changed:
            return CategoryOut.of(current)
        updated = await db_categories.update_category(
            tx.conn, {**current, **_columns({f: sent[f] for f in changed})}, services.clock.now())
        # Field names only: category names are not personal data, but the log never needs the values.
        log.info("categories.updated", code=code, actor_id=me.id, fields=changed)
        return CategoryOut.of(updated)

    @post("/", operation_id="createCategory", opt=roles("admin"), status_code=201)
    async def create_category(self, tx: NamedDependency[Tx], me: NamedDependency[MemberRow],
                              services: NamedDependency[Services], data: JSONBody[CategoryIn]) -> CategoryOut:
        fields = _checked(msgspec.structs.asdict(data))
        fields = _columns(fields)
        if fields["sort_order"] is None:
            fields["sort_order"] = await db_categories.next_sort_order(tx.conn)
        row = await db_categories.insert_category(tx.conn, Category(**fields), services.clock.now())
        if row is None:
            raise Conflict(f"category {data.code} exists")
        log.info("categories.created", code=data.code, actor_id=me.id)
        return CategoryOut.of(row)
