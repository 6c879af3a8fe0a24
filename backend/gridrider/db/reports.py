"""SQL for `reports`, `report_keys`, `photos` and the categories intake reads."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid

import msgspec

from gridrider.db.pool import Connection, Pool
from gridrider.domain.reports import CategoryInfo


class PhotoRow(msgspec.Struct, frozen=True):
    id: int
    position: int
    state: str
    content_type: str
    bytes: int
    width: int | None
    height: int | None
    failure_reason: str | None


class ReportRow(msgspec.Struct, frozen=True):
    id: int
    reporter_id: int
    client_id: uuid.UUID
    category: str
    lat: float
    lon: float
    accuracy_m: float | None
    position_source: str
    captured_at: dt.datetime
    received_at: dt.datetime
    queued_for_s: int | None
    note: str | None
    state: str
    flags: list[str]
    body_fingerprint: bytes
    incident_id: int | None
    incident_state: str | None
    earns_incident_points: bool  # the rider's earliest report in its incident: the incident's awards land here
    points_final: int
    photos: list[PhotoRow]


CATEGORY_INFO_SQL = "SELECT code, enabled, life_safety FROM categories WHERE code = $1"

REPORT_KEY_SQL = "SELECT report_id FROM report_keys WHERE reporter_id = $1 AND client_id = $2"

# Concurrent identical uploads: the second insert waits for the first to commit, then does nothing.
REPORT_INSERT_SQL = """
INSERT INTO reports (reporter_id, client_id, category, lat, lon, accuracy_m, position_source, cell, captured_at,
                     received_at, queued_for_s, note, flags, body_fingerprint)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
ON CONFLICT (reporter_id, client_id) DO NOTHING
RETURNING id
"""
REPORT_KEY_INSERT_SQL = """
INSERT INTO report_keys (reporter_id, client_id, report_id, created_at) VALUES ($1, $2, $3, $4)
"""
PHOTO_INSERT_SQL = """
INSERT INTO photos (report_id, role, position, original_key, upload_sha256, content_type, bytes, width, height,
                    created_at)
VALUES ($1, 'report', $2, $3, $4, $5, $6, $7, $8, $9)
"""

_REPORT_SELECT = """
SELECT r.id, r.reporter_id, r.client_id, r.category, r.lat, r.lon, r.accuracy_m, r.position_source, r.captured_at,
       r.received_at, r.queued_for_s, r.note, r.state, r.flags, r.body_fingerprint, r.incident_id,
       i.state AS incident_state,
       coalesce(r.id = own.first_id, false) AS earns_incident_points,
       -- What the ledger paid for this report (DESIGN §2d): its corroboration, a release of a flag on it,
       -- and — on the rider's earliest report in the incident — the incident's first_report,
       -- resolve_bonus or not_a_hazard; each with its reversals.
       (SELECT coalesce(sum(l.amount), 0)::int
        FROM points_ledger l LEFT JOIN points_ledger o ON l.source_kind = 'ledger' AND o.id = l.source_id
        WHERE l.member_id = r.reporter_id AND l.reason <> 'redemption'
          AND ((coalesce(o.source_kind, l.source_kind) = 'report' AND coalesce(o.source_id, l.source_id) = r.id)
               OR (coalesce(o.source_kind, l.source_kind) = 'incident'
                   AND coalesce(o.source_id, l.source_id) = r.incident_id AND r.id = own.first_id)
               OR (l.source_kind = 'flag' AND l.source_id IN (SELECT f.id FROM flags f WHERE f.report_id = r.id)))
       ) AS points_final,
       COALESCE((SELECT json_agg(json_build_object(
                    'id', p.id, 'position', p.position, 'state', p.state, 'content_type', p.content_type,
                    'bytes', p.bytes, 'width', p.width, 'height', p.height, 'failure_reason', p.failure_reason)
                  ORDER BY p.position)
                 FROM photos p WHERE p.report_id = r.id), '[]') AS photos
FROM reports r LEFT JOIN incidents i ON i.id = r.incident_id
LEFT JOIN LATERAL (SELECT r2.id AS first_id FROM reports r2
                   WHERE r2.incident_id = r.incident_id AND r2.reporter_id = r.reporter_id
                   ORDER BY r2.captured_at, r2.received_at, r2.id LIMIT 1) own ON true
"""
# Scoped by reporter in SQL: someone else's report is simply not found.
OWN_REPORT_SQL = _REPORT_SELECT + "WHERE r.id = $1 AND r.reporter_id = $2"
OWN_REPORTS_PAGE_SQL = _REPORT_SELECT + """
WHERE r.reporter_id = $1 AND ($2::bigint IS NULL OR r.id < $2)
ORDER BY r.id DESC
LIMIT $3
"""


def _report(row) -> ReportRow:
    data = dict(row)
    data["photos"] = [PhotoRow(**p) for p in data["photos"]]
    data["flags"] = list(data["flags"])
    return ReportRow(**data)


async def category_info(conn: Connection | Pool, code: str) -> CategoryInfo | None:
    row = await conn.fetchrow(CATEGORY_INFO_SQL, code)
    return CategoryInfo(**row) if row else None


async def report_id_for_key(conn: Connection | Pool, reporter_id: int, client_id: uuid.UUID) -> int | None:
    return await conn.fetchval(REPORT_KEY_SQL, reporter_id, client_id)


async def insert_report(
    conn: Connection, *, reporter_id: int, client_id: uuid.UUID, category: str, lat: float, lon: float,
    accuracy_m: float | None, position_source: str, cell: int, captured_at: dt.datetime, received_at: dt.datetime,
    queued_for_s: int | None, note: str | None, flags: list[str], body_fingerprint: bytes,
) -> int | None:
    """The new report's id, or None when the same (reporter, client_id) already exists."""
    report_id = await conn.fetchval(
        REPORT_INSERT_SQL, reporter_id, client_id, category, lat, lon, accuracy_m, position_source, cell,
        captured_at, received_at, queued_for_s, note, flags, body_fingerprint,
    )
    if report_id is not None:
        await conn.execute(REPORT_KEY_INSERT_SQL, reporter_id, client_id, report_id, received_at)
    return report_id


async def insert_photo(
    conn: Connection, *, report_id: int, position: int, original_key: str, upload_sha256: bytes, content_type: str,
    size: int, width: int, height: int, now: dt.datetime,
) -> None:
    await conn.execute(PHOTO_INSERT_SQL, report_id, position, original_key, upload_sha256, content_type, size,
                       width, height, now)


PROOF_PHOTO_INSERT_SQL = """
INSERT INTO photos (incident_id, role, position, original_key, upload_sha256, content_type, bytes, width, height,
                    created_at)
VALUES ($1, 'proof', $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING id
"""


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


async def insert_proof_photo(
    conn: Connection, *, incident_id: int, position: int, original_key: str, upload_sha256: bytes,
    content_type: str, size: int, width: int, height: int, now: dt.datetime,
) -> int:
    """A grid member's after-photo, decoded by the same pipeline as report photos."""
    return await conn.fetchval(PROOF_PHOTO_INSERT_SQL, incident_id, position, original_key, upload_sha256,
                               content_type, size, width, height, now)


async def own_report(conn: Connection | Pool, report_id: int, reporter_id: int) -> ReportRow | None:
    row = await conn.fetchrow(OWN_REPORT_SQL, report_id, reporter_id)
    return _report(row) if row else None


async def own_reports_page(conn: Connection | Pool, reporter_id: int, *, before_id: int | None,
                           limit: int) -> list[ReportRow]:
    return [_report(r) for r in await conn.fetch(OWN_REPORTS_PAGE_SQL, reporter_id, before_id, limit)]
