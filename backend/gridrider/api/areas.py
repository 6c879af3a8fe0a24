"""The area tree (DESIGN.md §3): a supervisor lists their subtree; an admin imports the city's GeoJSON.

POST /import takes the file as the body (the same checks and writes as `gridrider areas import`,
domain/area_import.py describes the file). Every problem is reported, nothing is written unless the
file passes, and then everything is written in one transaction. Routing picks the new polygons up by
itself (jobs/pipeline.py rebuilds its index when the areas' count or newest `updated_at` moves).
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import QueryParameter

from gridrider.api.auth import roles, scope_paths, subtree_paths
from gridrider.api.problems import Problem, problem_response, request_language
from gridrider.db import areas as db_areas
from gridrider.db.areas import AreaListed
from gridrider.db.members import MemberRow
from gridrider.domain.area_import import AreaImportReport, decode_feature_collection
from gridrider.logging import get_logger
from gridrider.services import Services

log = get_logger(__name__)

# A county's grids are a few thousand polygons of a few hundred vertices: a few MB of GeoJSON.
MAX_IMPORT_BODY = 20 * 1024 * 1024


class AreaImportProblem(Problem, omit_defaults=True):
    """The refusal, in the usual problem+json shape, with the whole report beside the blocking errors."""

    report: AreaImportReport | None = None


class AreaShape(msgspec.Struct, frozen=True):
    code: str
    level: str
    parent_code: str | None
    name_zh: str
    name_en: str | None


class AreaFeature(msgspec.Struct, frozen=True):
    geometry: dict[str, Any]  # GeoJSON Polygon or MultiPolygon, WGS-84 (lon, lat)
    properties: AreaShape
    type: str = "Feature"


class AreaShapes(msgspec.Struct, frozen=True):
    features: list[AreaFeature]
    type: str = "FeatureCollection"


class AreaController(Controller):
    path = "/api/v1/areas"

    @get("/shapes", operation_id="areaShapes", opt=roles("admin", "supervisor"))
    async def shapes(
        self, services: NamedDependency[Services], me: NamedDependency[MemberRow],
        # `scope` is a name Litestar reserves (the ASGI scope), hence the alias.
        area: Annotated[str | None, QueryParameter(name="scope", max_length=64)] = None,
        level: Annotated[str | None, QueryParameter(pattern="^(county|street|community|grid)$")] = None,
    ) -> AreaShapes:
        """The polygons of the caller's subtree (or `scope` inside it) as GeoJSON, for the map."""
        paths = await scope_paths(services.pool, me, area)
        rows = await db_areas.area_shapes(services.pool, paths, level)
        return AreaShapes(features=[AreaFeature(geometry=r.pop("polygon"), properties=AreaShape(**r)) for r in rows])

    @get("/", operation_id="listAreas", opt=roles("admin", "supervisor"))
    async def list_areas(self, services: NamedDependency[Services],
                         me: NamedDependency[MemberRow]) -> list[AreaListed]:
        # Scoped in SQL: an admin sees every area, a supervisor the subtrees of their own areas.
        return await db_areas.list_areas(services.pool, subtree_paths(me))

    @post("/import", operation_id="importAreas", opt=roles("admin"), request_max_body_size=MAX_IMPORT_BODY,
          responses={422: ResponseSpec(AreaImportProblem, description="Refused: the report says why.")})
    async def import_areas(
        self, request: Request[Any, Any, Any], services: NamedDependency[Services], me: NamedDependency[MemberRow],
        dry_run: Annotated[bool, QueryParameter()] = False, strict: Annotated[bool, QueryParameter()] = False,
    ) -> Response[AreaImportReport]:
        # The body is read before a connection is taken: a slow upload must not hold one.
        features = decode_feature_collection(await request.body())
        lang = request_language(request)
        async with services.pool.acquire() as conn, conn.transaction():
            report = await db_areas.import_areas(conn, features, now=services.clock.now(), dry_run=dry_run,
                                                 strict=strict)
        log.info("areas.import", actor_id=me.id, applied=report.applied, dry_run=dry_run, strict=strict,
                 created=report.created, updated=report.updated, errors=report.errors, warnings=report.warnings)
        if report.refused:
            refusal = problem_response(request, status=422, code="areas_import_invalid",
                                       errors=report.field_errors(lang))
            refusal.content = AreaImportProblem(**msgspec.structs.asdict(refusal.content),
                                                report=report.in_language(lang))
            return refusal  # type: ignore[return-value]
        status = 201 if report.applied and report.created else 200
        return Response(report.in_language(lang), status_code=status)
