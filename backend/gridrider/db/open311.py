"""SQL for Open311: requests filed by city systems, tokens, and incidents read as service requests and updates."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from gridrider.db.incident_views import STAGE_DUE
from gridrider.db.pool import Connection, Pool


class FiledRequest(msgspec.Struct, frozen=True):
    token: str
    body_fingerprint: bytes


class TokenRow(msgspec.Struct, frozen=True):
    token: str
    incident_id: int | None  # None until process_report has run


class ServiceRequestRow(msgspec.Struct, frozen=True):
    id: int
    category: str
    category_zh: str
    category_en: str
    state: str
    reject_reason: str | None
    merged_into_id: int | None
    lat: float
    lon: float
    created_at: dt.datetime
    updated_at: dt.datetime
    expected_at: dt.datetime | None
    area_zh: str | None
    area_en: str | None
    origin_note: str | None  # only read for a key holder
    photo_id: int | None  # the first ready report photo, only read for a key holder


class UpdateRow(msgspec.Struct, frozen=True):
    id: int
    incident_id: int
    kind: str
    data: dict[str, Any]
    occurred_at: dt.datetime
    photo_id: int | None  # a ready proof photo of a resolution, only read for a key holder


OPEN311_REQUEST_INSERT_SQL = """
INSERT INTO open311_requests (report_id, api_key_id, token, client_ref, description, address_string, address_id,
                              media_url, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
"""
FILED_REQUEST_SQL = """
SELECT o.token, r.body_fingerprint FROM open311_requests o JOIN reports r ON r.id = o.report_id
WHERE o.report_id = $1
"""
# The report's incident moves with merges, so a token always resolves to where the hazard is worked on.
FILED_INCIDENT_SQL = """
SELECT o.token, r.incident_id FROM open311_requests o JOIN reports r ON r.id = o.report_id WHERE o.token = $1
"""

# $1 ids, $2 service codes, $3 states, $4/$5 requested between, $6 the key's subtree (NULL: public),
# $7 whether the caller holds a key (notes and photos are read only then), $8 limit.
SERVICE_REQUESTS_SQL = f"""
SELECT i.id, i.category, c.name_zh AS category_zh, c.name_en AS category_en, i.state, i.reject_reason,
       i.merged_into_id, i.lat, i.lon, i.created_at, i.updated_at, {STAGE_DUE} AS expected_at,
       a.name_zh AS area_zh, a.name_en AS area_en,
       CASE WHEN $7 THEN (SELECT r.note FROM reports r WHERE r.id = i.origin_report_id) END AS origin_note,
       CASE WHEN $7 THEN (SELECT p.id FROM photos p JOIN reports r ON r.id = p.report_id
                          WHERE r.incident_id = i.id AND p.role = 'report' AND p.state = 'ready'
                          ORDER BY r.captured_at, r.id, p.position LIMIT 1) END AS photo_id
FROM incidents i JOIN categories c ON c.code = i.category LEFT JOIN areas a ON a.id = i.area_id
WHERE ($1::bigint[] IS NULL OR i.id = ANY($1::bigint[]))
  AND ($2::text[] IS NULL OR i.category = ANY($2::text[]))
  AND ($3::text[] IS NULL OR i.state = ANY($3::text[]))
  AND ($4::timestamptz IS NULL OR i.created_at >= $4)
  AND ($5::timestamptz IS NULL OR i.created_at <= $5)
  AND ($6::text IS NULL OR a.path LIKE $6 || '%')
ORDER BY i.created_at DESC, i.id DESC
LIMIT $8
"""

# $1 event kinds, $2/$3 occurred between, $4 the key's subtree (NULL: public), $5 key holder, $6 limit.
# Oldest first: a city system follows changes by moving start_date to the last update it saw.
UPDATES_SQL = """
SELECT e.id, e.incident_id, e.kind, e.data, e.occurred_at,
       CASE WHEN $5 AND e.kind = 'resolve' THEN
           (SELECT p.id FROM photos p
            WHERE p.incident_id = e.incident_id AND p.role = 'proof' AND p.state = 'ready'
              AND p.id IN (SELECT jsonb_array_elements_text(coalesce(e.data -> 'proof_photo_ids', '[]'))::bigint)
            ORDER BY p.position, p.id LIMIT 1) END AS photo_id
FROM incident_events e JOIN incidents i ON i.id = e.incident_id LEFT JOIN areas a ON a.id = i.area_id
WHERE e.kind = ANY($1::text[]) AND e.occurred_at >= $2 AND e.occurred_at <= $3
  AND ($4::text IS NULL OR a.path LIKE $4 || '%')
ORDER BY e.occurred_at, e.id
LIMIT $6
"""


async def insert_request(conn: Connection, *, report_id: int, api_key_id: int, token: str, client_ref: str | None,
                         description: str | None, address_string: str | None, address_id: str | None,
                         media_url: str | None, now: dt.datetime) -> None:
    await conn.execute(OPEN311_REQUEST_INSERT_SQL, report_id, api_key_id, token, client_ref, description,
                       address_string, address_id, media_url, now)


async def filed_request(conn: Connection | Pool, report_id: int) -> FiledRequest | None:
    row = await conn.fetchrow(FILED_REQUEST_SQL, report_id)
    return FiledRequest(**row) if row else None


async def token(conn: Connection | Pool, value: str) -> TokenRow | None:
    row = await conn.fetchrow(FILED_INCIDENT_SQL, value)
    return TokenRow(**row) if row else None


async def service_requests(conn: Connection | Pool, *, ids: list[int] | None, codes: list[str] | None,
                           states: list[str] | None, start: dt.datetime | None, end: dt.datetime | None,
                           area_path: str | None, keyed: bool, limit: int) -> list[ServiceRequestRow]:
    rows = await conn.fetch(SERVICE_REQUESTS_SQL, ids, codes, states, start, end, area_path, keyed, limit)
    return [ServiceRequestRow(**r) for r in rows]


async def updates(conn: Connection | Pool, *, kinds: list[str], start: dt.datetime, end: dt.datetime,
                  area_path: str | None, keyed: bool, limit: int) -> list[UpdateRow]:
    rows = await conn.fetch(UPDATES_SQL, kinds, start, end, area_path, keyed, limit)
    return [UpdateRow(**r) for r in rows]
