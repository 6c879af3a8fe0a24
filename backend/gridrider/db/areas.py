"""SQL for `areas` and `member_areas`."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import asyncpg
import msgspec

from gridrider.db.pool import Connection, Pool
from gridrider.domain import area_import
from gridrider.domain.area_import import AreaImportConflict, AreaImportReport, AreaRecord, ExistingArea

# created_at/updated_at: the caller's clock when it has one (imports); the demo seed passes none.
AREA_INSERT_SQL = """
INSERT INTO areas (code, level, parent_id, name_zh, name_en, polygon, bbox, area_m2, path, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8,
        COALESCE((SELECT path FROM areas WHERE id = $3), '') || $1 || '/',
        COALESCE($9::timestamptz, now()), COALESCE($9::timestamptz, now()))
RETURNING id
"""
# The path is rebuilt from the (possibly new) parent; the trigger checks it and refuses to move an area
# with children, which the import has already ruled out.
AREA_IMPORT_UPDATE_SQL = """
UPDATE areas
SET parent_id = $2, name_zh = $3, name_en = $4, polygon = $5, bbox = $6, area_m2 = $7, updated_at = $8,
    path = COALESCE((SELECT p.path FROM areas p WHERE p.id = $2), '') || code || '/'
WHERE id = $1
"""
# Other writers of `areas` wait until the import commits, so it applies to exactly what it validated;
# readers (routing, scoping) go on meanwhile.
AREAS_LOCK_FOR_IMPORT_SQL = "LOCK TABLE areas IN SHARE ROW EXCLUSIVE MODE"
AREAS_FOR_IMPORT_SQL = """
SELECT a.id, a.code, a.level, p.code AS parent_code, a.name_zh, a.name_en, a.polygon,
       EXISTS (SELECT 1 FROM areas c WHERE c.parent_id = a.id) AS has_children
FROM areas a LEFT JOIN areas p ON p.id = a.parent_id
"""
AREAS_LATEST_CHANGE_SQL = "SELECT max(updated_at) FROM areas"
# A member's subtrees (paths); NULL = everything (admins). An empty array matches nothing.
AREAS_LIST_SQL = """
SELECT a.code, a.level, p.code AS parent_code, a.name_zh, a.name_en, a.polygon IS NOT NULL AS has_polygon
FROM areas a LEFT JOIN areas p ON p.id = a.parent_id
WHERE $1::text[] IS NULL OR EXISTS (SELECT 1 FROM unnest($1::text[]) AS s(path) WHERE a.path LIKE s.path || '%')
ORDER BY a.path
"""
AREAS_COUNT_SQL = "SELECT count(*) FROM areas"
# Areas by code that lie inside one of the given subtrees (paths); None = no restriction (admins).
AREAS_IN_SUBTREES_SQL = """
SELECT id, code, level, path FROM areas
WHERE code = ANY($1::text[])
  AND ($2::text[] IS NULL OR EXISTS (SELECT 1 FROM unnest($2::text[]) AS p(path) WHERE areas.path LIKE p.path || '%'))
"""
MEMBER_AREA_INSERT_SQL = """
INSERT INTO member_areas (member_id, area_id) VALUES ($1, $2) ON CONFLICT DO NOTHING
"""


async def insert_area(
    conn: Connection, *, code: str, level: str, parent_id: int | None, name_zh: str, name_en: str,
    polygon: dict | None, bbox: list[float] | None, area_m2: float | None, now: dt.datetime | None = None,
) -> int:
    return await conn.fetchval(AREA_INSERT_SQL, code, level, parent_id, name_zh, name_en, polygon, bbox, area_m2,
                               now)


class AreaRef(msgspec.Struct, frozen=True):
    id: int
    code: str
    level: str
    path: str


async def areas_in_subtrees(conn: Connection, codes: list[str], subtree_paths: list[str] | None) -> list[AreaRef]:
    return [AreaRef(**r) for r in await conn.fetch(AREAS_IN_SUBTREES_SQL, codes, subtree_paths)]


async def count_areas(conn: Connection) -> int:
    return await conn.fetchval(AREAS_COUNT_SQL)


async def add_member_area(conn: Connection, member_id: int, area_id: int) -> None:
    await conn.execute(MEMBER_AREA_INSERT_SQL, member_id, area_id)


class AreaListed(msgspec.Struct, frozen=True):
    code: str
    level: str
    parent_code: str | None
    name_zh: str
    name_en: str | None
    has_polygon: bool


# The polygons of a subtree for the supervisors' map (the PWA draws them as SVG), one level or all.
AREA_SHAPES_SQL = """
SELECT a.code, a.level, p.code AS parent_code, a.name_zh, a.name_en, a.polygon
FROM areas a LEFT JOIN areas p ON p.id = a.parent_id
WHERE a.polygon IS NOT NULL AND ($2::text IS NULL OR a.level = $2)
  AND ($1::text[] IS NULL OR EXISTS (SELECT 1 FROM unnest($1::text[]) AS s(path) WHERE a.path LIKE s.path || '%'))
ORDER BY a.path
"""


async def area_shapes(conn: Connection | Pool, subtree_paths: list[str] | None, level: str | None) -> list[dict]:
    return [dict(r) for r in await conn.fetch(AREA_SHAPES_SQL, subtree_paths, level)]


async def list_areas(conn: Connection | Pool, subtree_paths: list[str] | None) -> list[AreaListed]:
    return [AreaListed(**r) for r in await conn.fetch(AREAS_LIST_SQL, subtree_paths)]


# ── import (domain/area_import.py checks; this writes) ────────────────────────────────────────────


async def areas_for_import(conn: Connection) -> list[ExistingArea]:
    return [ExistingArea(**r) for r in await conn.fetch(AREAS_FOR_IMPORT_SQL)]


async def import_areas(conn: Connection, features: list[Any], *, now: dt.datetime, dry_run: bool,
                       strict: bool) -> AreaImportReport:
    """Check the features against the areas stored, then (unless refused or a dry run) write them.

    Call inside a transaction: every area is written or none is.
    """
    if not dry_run:
        await conn.execute(AREAS_LOCK_FOR_IMPORT_SQL)
    existing = await areas_for_import(conn)
    # Geometry checks on a city's worth of polygons take a while; keep the event loop free.
    plan = await asyncio.to_thread(area_import.plan_import, features, existing, strict=strict, dry_run=dry_run)
    if plan.report.refused or dry_run or not plan.writes:
        return plan.report
    # Routing notices changed areas by `count(*), max(updated_at)`: an in-place update stamped no later
    # than the newest stamp (a clock behind the table's, two imports in one tick) would go unnoticed.
    latest = await conn.fetchval(AREAS_LATEST_CHANGE_SQL)
    stamp = now if latest is None or now > latest else latest + dt.timedelta(microseconds=1)
    ids = {a.code: a.id for a in existing}
    try:
        for record in plan.writes:
            ids[record.code] = await _write(conn, record, ids, stamp)
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise AreaImportConflict(f"{type(exc).__name__}: {exc}") from None
    return msgspec.structs.replace(plan.report, applied=True)


async def _write(conn: Connection, record: AreaRecord, ids: dict[str, int], now: dt.datetime) -> int:
    parent_id = ids[record.parent_code] if record.parent_code else None
    if record.action == "created":
        return await insert_area(conn, code=record.code, level=record.level, parent_id=parent_id,
                                 name_zh=record.name_zh, name_en=record.name_en, polygon=record.polygon,
                                 bbox=record.bbox, area_m2=record.area_m2, now=now)
    area_id = ids[record.code]
    await conn.execute(AREA_IMPORT_UPDATE_SQL, area_id, parent_id, record.name_zh, record.name_en, record.polygon,
                       record.bbox, record.area_m2, now)
    return area_id
