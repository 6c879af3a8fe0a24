"""Which blob keys rows still reference (view `blob_references`)."""

from __future__ import annotations

from gridrider.db.pool import Connection

UNREFERENCED_BLOB_KEYS_SQL = """
SELECT k.key FROM unnest($1::text[]) AS k(key)
WHERE NOT EXISTS (SELECT 1 FROM blob_references r WHERE r.key = k.key)
"""


async def unreferenced_blob_keys(conn: Connection, keys: list[str]) -> list[str]:
    return [r["key"] for r in await conn.fetch(UNREFERENCED_BLOB_KEYS_SQL, keys)]
