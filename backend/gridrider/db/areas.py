"""SQL for `areas` and `member_areas`."""

from __future__ import annotations

import msgspec

from gridrider.db.pool import Connection

AREA_INSERT_SQL = """
INSERT INTO areas (code, level, parent_id, name_zh, name_en, polygon, bbox, area_m2, path)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8,
        COALESCE((SELECT path FROM areas WHERE id = $3), '') || $1 || '/')
RETURNING id
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
    polygon: dict | None, bbox: list[float] | None, area_m2: float | None,
) -> int:
    return await conn.fetchval(AREA_INSERT_SQL, code, level, parent_id, name_zh, name_en, polygon, bbox, area_m2)


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
