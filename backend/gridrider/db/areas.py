"""SQL for `areas` and `member_areas`."""

from __future__ import annotations

from gridrider.db.pool import Connection

AREA_INSERT_SQL = """
INSERT INTO areas (code, level, parent_id, name_zh, name_en, polygon, bbox, area_m2, path)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8,
        COALESCE((SELECT path FROM areas WHERE id = $3), '') || $1 || '/')
RETURNING id
"""
AREAS_COUNT_SQL = "SELECT count(*) FROM areas"
MEMBER_AREA_INSERT_SQL = """
INSERT INTO member_areas (member_id, area_id) VALUES ($1, $2) ON CONFLICT DO NOTHING
"""


async def insert_area(
    conn: Connection, *, code: str, level: str, parent_id: int | None, name_zh: str, name_en: str,
    polygon: dict | None, bbox: list[float] | None, area_m2: float | None,
) -> int:
    return await conn.fetchval(AREA_INSERT_SQL, code, level, parent_id, name_zh, name_en, polygon, bbox, area_m2)


async def count_areas(conn: Connection) -> int:
    return await conn.fetchval(AREAS_COUNT_SQL)


async def add_member_area(conn: Connection, member_id: int, area_id: int) -> None:
    await conn.execute(MEMBER_AREA_INSERT_SQL, member_id, area_id)
