"""API keys of city systems: made once, stored only as a keyed hash, each filing as its own `system` member.

One system member per key (not one shared): the idempotency record (reporter, client_id) is then per
city system, so two systems that number their requests alike can never replay each other's; the
incident history names which system filed; revoking one key deactivates exactly its member.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import secrets

import asyncpg
import msgspec
import shapely
from shapely.geometry import shape

from gridrider.db import apikeys as db_apikeys
from gridrider.db import areas as db_areas
from gridrider.db import members as db_members
from gridrider.db.apikeys import ApiKeyRow
from gridrider.db.pool import Connection, Pool
from gridrider.domain.geo import M_PER_DEG_LAT
from gridrider.domain.routing import GAP_TOLERANCE_M
from gridrider.domain.secrets import keyed_hash
from gridrider.open311.errors import KeyRejected

# A recognisable prefix, so a key pasted into a chat or a repository can be spotted and revoked.
KEY_PREFIX = "gr311_"
SHOWN_PREFIX_CHARS = 10
MAX_KEY_CHARS = 100
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class ApiKeyError(Exception):
    """A refused CLI request (bad name, unknown area, name in use); the message is for the operator."""


class CreatedKey(msgspec.Struct, frozen=True):
    key: str  # shown once, never stored
    row: ApiKeyRow


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def system_pseudonym(name: str) -> str:
    """What grid members see as the reporter of a request this key filed."""
    return f"open311:{name}"


async def create_key(conn: Connection, *, name: str, area_code: str, secret: str, now: dt.datetime) -> CreatedKey:
    """A new key and its system member, in the caller's transaction."""
    if not NAME_RE.match(name):
        raise ApiKeyError(f"name {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    areas = await db_areas.areas_in_subtrees(conn, [area_code], None)
    if not areas:
        raise ApiKeyError(f"area {area_code!r} is unknown")
    if await db_apikeys.key_by_name(conn, name) is not None:
        raise ApiKeyError(f"name {name!r} is taken (names are never reused, even after revocation)")
    key = new_api_key()
    try:
        async with conn.transaction():  # a savepoint: a lost race on the name leaves the caller's work intact
            member_id = await db_members.insert_member(conn, role="system", display_name=name,
                                                       pseudonym=system_pseudonym(name), phone=None, platform=None)
            await db_apikeys.insert_key(conn, name=name, area_id=areas[0].id, member_id=member_id,
                                        key_hash=keyed_hash(secret, key), key_prefix=key[:SHOWN_PREFIX_CHARS],
                                        now=now)
    except asyncpg.UniqueViolationError:
        raise ApiKeyError(f"name {name!r} is taken") from None
    row = await db_apikeys.key_by_name(conn, name)
    assert row is not None
    return CreatedKey(key=key, row=row)


async def revoke_key(conn: Connection, *, name: str, now: dt.datetime) -> tuple[ApiKeyRow, bool]:
    """Revoke the key and deactivate its system member; (the key, whether it was live until now)."""
    row = await db_apikeys.key_by_name(conn, name)
    if row is None:
        raise ApiKeyError(f"no key named {name!r}")
    revoked = await db_apikeys.revoke_key(conn, row.id, now)
    if revoked:
        await db_members.deactivate_member(conn, row.member_id, now)
    return row, revoked


async def authenticate(conn: Connection | Pool, secret: str, raw: str | None) -> ApiKeyRow | None:
    """The live key `raw` names; None when no key was given; KeyRejected for a wrong or revoked one."""
    if raw is None or raw == "":
        return None
    if len(raw) > MAX_KEY_CHARS:
        raise KeyRejected()
    found = await db_apikeys.key_by_hash(conn, keyed_hash(secret, raw))
    if found is None or found.revoked_at is not None:
        raise KeyRejected()
    return found


async def within_area(conn: Connection | Pool, key: ApiKeyRow, lat: float, lon: float) -> bool:
    """Whether the point lies in (or within the routing's 30 m gap tolerance of) a polygon of the key's subtree.

    Measured against the polygons themselves rather than through routing, because routing hands a point
    outside every polygon to the county as a last resort — which would let a county key file anywhere.
    """
    m_per_deg_lon = M_PER_DEG_LAT * max(math.cos(math.radians(lat)), 1e-6)
    candidates = await db_apikeys.subtree_polygons_near(
        conn, area_path=key.area_path, lat=lat, lon=lon, margin_lat_deg=GAP_TOLERANCE_M / M_PER_DEG_LAT,
        margin_lon_deg=GAP_TOLERANCE_M / m_per_deg_lon)
    point = shapely.Point(lon * m_per_deg_lon, lat * M_PER_DEG_LAT)
    for candidate in candidates:
        polygon = shapely.transform(shape(candidate.polygon), lambda xy: xy * [m_per_deg_lon, M_PER_DEG_LAT])
        if polygon.distance(point) <= GAP_TOLERANCE_M:
            return True
    return False
