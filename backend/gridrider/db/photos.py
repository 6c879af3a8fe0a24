"""SQL for serving `photos` variants."""

from __future__ import annotations

from gridrider.db.pool import Connection, Pool

READY_VARIANT_SQL = """
SELECT CASE $2 WHEN 'thumb' THEN thumb_key ELSE display_key END AS key,
       CASE $2 WHEN 'thumb' THEN 'image/jpeg' ELSE display_type END AS content_type
FROM photos WHERE id = $1 AND state = 'ready'
"""


async def ready_variant(conn: Connection | Pool, photo_id: int, variant: str) -> tuple[str, str] | None:
    row = await conn.fetchrow(READY_VARIANT_SQL, photo_id, variant)
    return (row["key"], row["content_type"]) if row and row["key"] else None
