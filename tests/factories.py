"""Rows for tests, inserted with plain SQL (the product's own insert paths come with their issues)."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid

import asyncpg

from gridrider.clock import Clock
from gridrider.domain.geo import cell_of

Db = asyncpg.Connection | asyncpg.Pool


async def make_member(conn: Db, *, role: str = "courier", phone: str | None = None) -> int:
    suffix = uuid.uuid4().hex[:8]
    return await conn.fetchval(
        "INSERT INTO members (role, display_name, pseudonym, phone) VALUES ($1, $2, $3, $4) RETURNING id",
        role, f"test {suffix}", f"p-{suffix}", phone or f"139{int(suffix, 16) % 10**8:08d}",
    )


async def make_report(conn: Db, clock: Clock, *, reporter_id: int, category: str = "garbage_pileup",
                      lat: float = 42.38, lon: float = 122.53, captured_at: dt.datetime | None = None) -> int:
    return await conn.fetchval(
        """INSERT INTO reports (reporter_id, client_id, category, lat, lon, accuracy_m, position_source, cell,
                                captured_at, received_at, body_fingerprint)
           VALUES ($1, $2, $3, $4, $5, 8, 'gps', $6, $7, $8, $9) RETURNING id""",
        reporter_id, uuid.uuid4(), category, lat, lon, cell_of(lat, lon), captured_at or clock.now(), clock.now(),
        hashlib.sha256(uuid.uuid4().bytes).digest(),
    )


async def make_photo(conn: Db, *, report_id: int, original_key: str,
                     position: int = 0) -> int:
    return await conn.fetchval(
        """INSERT INTO photos (report_id, role, position, original_key, upload_sha256, content_type, bytes)
           VALUES ($1, 'report', $2, $3, $4, 'image/jpeg', 1000) RETURNING id""",
        report_id, position, original_key, hashlib.sha256(original_key.encode()).digest(),
    )
