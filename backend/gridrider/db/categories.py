"""SQL for `categories`."""

from __future__ import annotations

import datetime as dt

from gridrider.db.pool import Connection, Pool
from gridrider.domain.categories import Category

CATEGORY_INSERT_MISSING_SQL = """
INSERT INTO categories (code, name_zh, name_en, icon, severity, life_safety, merge_radius_m, merge_window,
                        weight, enabled, sort_order, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, now())
ON CONFLICT (code) DO NOTHING
"""


async def insert_missing_categories(conn: Connection, categories: tuple[Category, ...]) -> int:
    """Add categories that do not exist yet; an admin's edits to existing ones are never overwritten."""
    added = 0
    for c in categories:
        status = await conn.execute(
            CATEGORY_INSERT_MISSING_SQL, c.code, c.name_zh, c.name_en, c.icon, c.severity, c.life_safety,
            c.merge_radius_m, c.merge_window, c.weight, c.enabled, c.sort_order,
        )
        added += status == "INSERT 0 1"
    return added


_CATEGORY_COLUMNS = """
code, name_zh, name_en, icon, severity, life_safety, merge_radius_m, merge_window, weight::float8 AS weight,
enabled, sort_order, updated_at
"""
# Life-safety first (the PWA shows them in red at the top), then the admin's order.
CATEGORIES_LIST_SQL = f"""
SELECT {_CATEGORY_COLUMNS} FROM categories
WHERE enabled OR $1::boolean
ORDER BY life_safety DESC, sort_order, code
"""
CATEGORY_FOR_UPDATE_SQL = f"SELECT {_CATEGORY_COLUMNS} FROM categories WHERE code = $1 FOR UPDATE"
CATEGORY_UPDATE_SQL = f"""
UPDATE categories
SET name_zh = $2, name_en = $3, icon = $4, severity = $5, life_safety = $6, merge_radius_m = $7, merge_window = $8,
    weight = $9, enabled = $10, sort_order = $11, updated_at = $12
WHERE code = $1
RETURNING {_CATEGORY_COLUMNS}
"""
CATEGORY_INSERT_SQL = f"""
INSERT INTO categories (code, name_zh, name_en, icon, severity, life_safety, merge_radius_m, merge_window,
                        weight, enabled, sort_order, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (code) DO NOTHING
RETURNING {_CATEGORY_COLUMNS}
"""


async def list_categories(conn: Connection | Pool, *, include_disabled: bool = False) -> list[dict]:
    return [dict(r) for r in await conn.fetch(CATEGORIES_LIST_SQL, include_disabled)]


async def category_for_update(conn: Connection, code: str) -> dict | None:
    """One category, row-locked until the transaction ends (two admins' edits apply one after the other)."""
    row = await conn.fetchrow(CATEGORY_FOR_UPDATE_SQL, code)
    return dict(row) if row else None


async def update_category(conn: Connection, row: dict, now: dt.datetime) -> dict:
    updated = await conn.fetchrow(
        CATEGORY_UPDATE_SQL, row["code"], row["name_zh"], row["name_en"], row["icon"], row["severity"],
        row["life_safety"], row["merge_radius_m"], row["merge_window"], row["weight"], row["enabled"],
        row["sort_order"], now,
    )
    return dict(updated)


async def next_sort_order(conn: Connection) -> int:
    """A sort order after every existing category's (a new category goes last in its group)."""
    return await conn.fetchval("SELECT COALESCE(max(sort_order), 0) + 10 FROM categories")


async def insert_category(conn: Connection, c: Category, now: dt.datetime) -> dict | None:
    """The new category, or None when one with that code exists already."""
    row = await conn.fetchrow(
        CATEGORY_INSERT_SQL, c.code, c.name_zh, c.name_en, c.icon, c.severity, c.life_safety, c.merge_radius_m,
        c.merge_window, c.weight, c.enabled, c.sort_order, now,
    )
    return dict(row) if row else None
