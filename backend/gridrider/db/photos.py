"""SQL for `photos`: serving variants, the normalisation job, and the reused-photo lookup."""

from __future__ import annotations

import datetime as dt

import msgspec

from gridrider.db.pool import Connection, Pool

READY_VARIANT_SQL = """
SELECT CASE $2 WHEN 'thumb' THEN thumb_key ELSE display_key END AS key,
       CASE $2 WHEN 'thumb' THEN 'image/jpeg' ELSE display_type END AS content_type
FROM photos WHERE id = $1 AND state = 'ready'
"""


async def ready_variant(conn: Connection | Pool, photo_id: int, variant: str) -> tuple[str, str] | None:
    row = await conn.fetchrow(READY_VARIANT_SQL, photo_id, variant)
    return (row["key"], row["content_type"]) if row and row["key"] else None


class PendingPhoto(msgspec.Struct, frozen=True):
    id: int
    original_key: str


PENDING_PHOTOS_SQL = """
SELECT id, original_key FROM photos WHERE report_id = $1 AND state = 'pending' ORDER BY position FOR UPDATE
"""
PHOTO_READY_SQL = """
UPDATE photos SET state = 'ready', display_key = $2, display_type = $3, thumb_key = $4, width = $5, height = $6,
                  dhash = $7, processed_at = $8
WHERE id = $1 AND state = 'pending'
"""
PHOTO_FAILED_SQL = """
UPDATE photos SET state = 'failed', failure_reason = $2, processed_at = $3 WHERE id = $1 AND state = 'pending'
"""

REPORT_LOCK_SQL = "SELECT 1 FROM reports WHERE id = $1 FOR UPDATE"
# This report's hashed photos, once the report belongs to an incident.
REPORT_HASHED_PHOTOS_SQL = """
SELECT p.id, p.dhash, r.incident_id, r.reporter_id
FROM photos p JOIN reports r ON r.id = p.report_id
WHERE p.report_id = $1 AND p.dhash IS NOT NULL AND r.incident_id IS NOT NULL AND p.reused_of_photo_id IS NULL
"""

# Photos of OTHER incidents, uploaded since $3, within Hamming distance $4 of $1, found through the
# band indexes ($5..$8: the probe values of each band). Report photos compare with report photos,
# proof photos with proof photos.
SIMILAR_PHOTOS_SQL = """
SELECT p.id, coalesce(r.incident_id, p.incident_id) AS incident_id, bit_count(int8send(p.dhash # $1)) AS distance
FROM photos p LEFT JOIN reports r ON r.id = p.report_id
WHERE p.dhash IS NOT NULL AND p.created_at >= $3 AND p.role = $9
  AND ((((p.dhash >> 48) & 65535)::int) = ANY($5::int[])
       OR (((p.dhash >> 32) & 65535)::int) = ANY($6::int[])
       OR (((p.dhash >> 16) & 65535)::int) = ANY($7::int[])
       OR ((p.dhash & 65535)::int) = ANY($8::int[]))
  AND bit_count(int8send(p.dhash # $1)) <= $4
  AND coalesce(r.incident_id, p.incident_id) IS NOT NULL
  AND coalesce(r.incident_id, p.incident_id) <> $2
ORDER BY distance, p.id
LIMIT 1
"""
PHOTO_MARK_REUSED_SQL = "UPDATE photos SET reused_of_photo_id = $2 WHERE id = $1 AND reused_of_photo_id IS NULL"
REUSED_FLAG_INSERT_SQL = """
INSERT INTO flags (kind, member_id, report_id, incident_id, photo_id, evidence, created_at)
VALUES ('reused_photo', $1, $2, $3, $4, $5, $6)
"""


class HashedPhoto(msgspec.Struct, frozen=True):
    id: int
    dhash: int
    incident_id: int
    reporter_id: int


class SimilarPhoto(msgspec.Struct, frozen=True):
    id: int
    incident_id: int | None
    distance: int


PENDING_PROOF_PHOTOS_SQL = """
SELECT id, original_key FROM photos WHERE incident_id = $1 AND role = 'proof' AND state = 'pending'
ORDER BY position FOR UPDATE
"""


async def pending_photos(conn: Connection, report_id: int) -> list[PendingPhoto]:
    return [PendingPhoto(**r) for r in await conn.fetch(PENDING_PHOTOS_SQL, report_id)]


async def pending_proof_photos(conn: Connection, incident_id: int) -> list[PendingPhoto]:
    return [PendingPhoto(**r) for r in await conn.fetch(PENDING_PROOF_PHOTOS_SQL, incident_id)]


async def mark_photo_ready(conn: Connection, photo_id: int, *, display_key: str, display_type: str, thumb_key: str,
                           width: int, height: int, dhash: int, now: dt.datetime) -> None:
    await conn.execute(PHOTO_READY_SQL, photo_id, display_key, display_type, thumb_key, width, height, dhash, now)


async def mark_photo_failed(conn: Connection, photo_id: int, *, reason: str, now: dt.datetime) -> None:
    await conn.execute(PHOTO_FAILED_SQL, photo_id, reason, now)


async def lock_report(conn: Connection, report_id: int) -> None:
    await conn.execute(REPORT_LOCK_SQL, report_id)


async def report_hashed_photos(conn: Connection, report_id: int) -> list[HashedPhoto]:
    return [HashedPhoto(**r) for r in await conn.fetch(REPORT_HASHED_PHOTOS_SQL, report_id)]


async def most_similar_photo(conn: Connection, *, dhash: int, exclude_incident_id: int | None, since: dt.datetime,
                             max_distance: int, band_probes: list[list[int]], role: str) -> SimilarPhoto | None:
    row = await conn.fetchrow(SIMILAR_PHOTOS_SQL, dhash, exclude_incident_id, since, max_distance, *band_probes, role)
    return SimilarPhoto(**row) if row else None


async def flag_reused(conn: Connection, *, photo: HashedPhoto, report_id: int, similar: SimilarPhoto,
                      now: dt.datetime) -> None:
    await conn.execute(PHOTO_MARK_REUSED_SQL, photo.id, similar.id)
    await conn.execute(REUSED_FLAG_INSERT_SQL, photo.reporter_id, report_id, photo.incident_id, photo.id,
                       {"matched_photo_id": similar.id, "matched_incident_id": similar.incident_id,
                        "distance": similar.distance}, now)


async def incident_of_report(conn: Connection, report_id: int) -> int | None:
    return await conn.fetchval("SELECT incident_id FROM reports WHERE id = $1", report_id)


# An incident's hashed proof (after) photos not yet matched.
PROOF_HASHED_PHOTOS_SQL = """
SELECT p.id, p.dhash FROM photos p
WHERE p.incident_id = $1 AND p.role = 'proof' AND p.dhash IS NOT NULL AND p.reused_of_photo_id IS NULL
"""
REUSED_PROOF_FLAG_INSERT_SQL = """
INSERT INTO flags (kind, incident_id, photo_id, evidence, created_at) VALUES ('reused_proof_photo', $1, $2, $3, $4)
"""


async def proof_hashed_photos(conn: Connection, incident_id: int) -> list[tuple[int, int]]:
    return [(r["id"], r["dhash"]) for r in await conn.fetch(PROOF_HASHED_PHOTOS_SQL, incident_id)]


async def flag_reused_proof(conn: Connection, *, photo_id: int, incident_id: int, similar: SimilarPhoto,
                            now: dt.datetime) -> None:
    await conn.execute(PHOTO_MARK_REUSED_SQL, photo_id, similar.id)
    await conn.execute(REUSED_PROOF_FLAG_INSERT_SQL, incident_id, photo_id,
                       {"matched_photo_id": similar.id, "matched_incident_id": similar.incident_id,
                        "distance": similar.distance}, now)
