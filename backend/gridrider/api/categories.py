"""The hazard categories a rider picks from."""

from __future__ import annotations

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency

from gridrider.api.auth import ANY_MEMBER, roles
from gridrider.db import categories as db_categories
from gridrider.services import Services


class CategoryOut(msgspec.Struct, frozen=True):
    code: str
    name_zh: str
    name_en: str
    icon: str
    severity: str
    life_safety: bool
    enabled: bool


class CategoryController(Controller):
    path = "/api/v1/categories"

    @get("/", operation_id="listCategories", opt=roles(*ANY_MEMBER))
    async def list_categories(self, services: NamedDependency[Services]) -> list[CategoryOut]:
        return [CategoryOut(**c) for c in await db_categories.list_categories(services.pool)]
