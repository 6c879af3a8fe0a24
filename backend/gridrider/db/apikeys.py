"""SQL for `api_keys`: the city systems that file and read through Open311, each as its own system member."""

from __future__ import annotations

import datetime as dt

import msgspec

from gridrider.db.pool import Connection, Pool


class ApiKeyRow(msgspec.Struct, frozen=True):
    id: int
    name: str
    member_id: int
    area_id: int
    area_code: str
    area_path: str
    key_prefix: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None


class AreaPolygon(msgspec.Struct, frozen=True):
    code: str
    polygon: dict


_KEY_COLUMNS = """
k.id, k.name, k.member_id, k.area_id, a.code AS area_code, a.path AS area_path, k.key_prefix, k.created_at,
k.revoked_at
"""

API_KEY_BY_HASH_SQL = f"SELECT {_KEY_COLUMNS} FROM api_keys k JOIN areas a ON a.id = k.area_id WHERE k.key_hash = $1"
API_KEY_BY_NAME_SQL = f"SELECT {_KEY_COLUMNS} FROM api_keys k JOIN areas a ON a.id = k.area_id WHERE k.name = $1"
API_KEYS_LIST_SQL = f"SELECT {_KEY_COLUMNS} FROM api_keys k JOIN areas a ON a.id = k.area_id ORDER BY k.name"
API_KEY_INSERT_SQL = """
INSERT INTO api_keys (name, area_id, member_id, key_hash, key_prefix, created_at)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id
"""
API_KEY_REVOKE_SQL = "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL"

# The key's subtree polygons near a point ($2 lat, $3 lon): bounding boxes ({min_lon, min_lat, max_lon,
# max_lat}) widened by the tolerance in degrees ($4 lat, $5 lon) pick the few candidates; the exact
# distance is measured in Python.
SUBTREE_POLYGONS_NEAR_SQL = """
SELECT code, polygon FROM areas
WHERE path LIKE $1 || '%' AND polygon IS NOT NULL
  AND bbox[2] - $4 <= $2 AND $2 <= bbox[4] + $4
  AND bbox[1] - $5 <= $3 AND $3 <= bbox[3] + $5
"""


async def key_by_hash(conn: Connection | Pool, key_hash: bytes) -> ApiKeyRow | None:
    row = await conn.fetchrow(API_KEY_BY_HASH_SQL, key_hash)
    return ApiKeyRow(**row) if row else None


async def key_by_name(conn: Connection | Pool, name: str) -> ApiKeyRow | None:
    row = await conn.fetchrow(API_KEY_BY_NAME_SQL, name)
    return ApiKeyRow(**row) if row else None


async def list_keys(conn: Connection | Pool) -> list[ApiKeyRow]:
    return [ApiKeyRow(**r) for r in await conn.fetch(API_KEYS_LIST_SQL)]


async def insert_key(conn: Connection, *, name: str, area_id: int, member_id: int, key_hash: bytes, key_prefix: str,
                     now: dt.datetime) -> int:
    """The new key's id; raises asyncpg.UniqueViolationError when the name is taken."""
    return await conn.fetchval(API_KEY_INSERT_SQL, name, area_id, member_id, key_hash, key_prefix, now)


async def revoke_key(conn: Connection, key_id: int, now: dt.datetime) -> bool:
    """False when the key was already revoked."""
    return await conn.execute(API_KEY_REVOKE_SQL, key_id, now) == "UPDATE 1"


async def subtree_polygons_near(conn: Connection | Pool, *, area_path: str, lat: float, lon: float,
                                margin_lat_deg: float, margin_lon_deg: float) -> list[AreaPolygon]:
    rows = await conn.fetch(SUBTREE_POLYGONS_NEAR_SQL, area_path, lat, lon, margin_lat_deg, margin_lon_deg)
    return [AreaPolygon(**r) for r in rows]
