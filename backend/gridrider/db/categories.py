"""SQL for `categories`."""

from __future__ import annotations

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


# Life-safety first (the PWA shows them in red at the top), then the admin's order.
CATEGORIES_LIST_SQL = """
SELECT code, name_zh, name_en, icon, severity, life_safety, enabled
FROM categories ORDER BY life_safety DESC, sort_order, code
"""


async def list_categories(conn: Connection | Pool) -> list[dict]:
    return [dict(r) for r in await conn.fetch(CATEGORIES_LIST_SQL)]
