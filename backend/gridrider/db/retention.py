"""SQL of the retention jobs: photos of long-finished incidents, personal data of long-deactivated members."""

from __future__ import annotations

import datetime as dt

import msgspec

from gridrider.db.archive import PHOTO_IDS_OF_INCIDENTS_SQL, FinishedIncident
from gridrider.db.pool import Connection

# One page of finished incidents, oldest first, after the (finished_at, id) the previous page ended at
# (incidents_finished_idx). FOR SHARE: a reopen waits until this page's photos are marked, and one that
# committed first takes the incident out of the page (the row is re-checked once locked).
FINISHED_INCIDENTS_PAGE_SQL = """
SELECT i.id, incident_finished_at(i) AS finished_at
FROM incidents i
WHERE incident_finished_at(i) < $1
  AND (incident_finished_at(i), i.id) > ($2::timestamptz, $3::bigint)
ORDER BY incident_finished_at(i), i.id
LIMIT $4
FOR SHARE OF i
"""
# The photos of those incidents (their reports' photos and their proof photos) still holding blobs.
PURGE_PHOTOS_SQL = f"""
UPDATE photos p SET state = 'purged', purged_at = $2
WHERE p.purged_at IS NULL AND p.id IN ({PHOTO_IDS_OF_INCIDENTS_SQL})
RETURNING p.original_key, p.display_key, p.thumb_key
"""
# Archived photos whose blobs outlived the archive age (only when it is the shorter of the two ages).
PURGE_ARCHIVED_PHOTOS_SQL = """
WITH due AS (
    SELECT p.id
    FROM archive.photos p
    LEFT JOIN archive.reports r ON r.id = p.report_id
    JOIN archive.incidents i ON i.id = coalesce(p.incident_id, r.incident_id)
    WHERE p.purged_at IS NULL AND coalesce(i.closed_at, i.updated_at) < $1
    ORDER BY p.id
    LIMIT $3
    FOR UPDATE OF p
)
UPDATE archive.photos p SET state = 'purged', purged_at = $2
FROM due WHERE p.id = due.id
RETURNING p.original_key, p.display_key, p.thumb_key
"""

# Deactivated before the cutoff and not re-enrolled since (a re-enrolment sets status back to active; the
# row lock makes whichever commits second see the other's outcome). Sessions and push subscriptions go:
# device names and browser endpoints say who someone was and are of no use to a member who cannot sign in.
PSEUDONYMISE_MEMBERS_SQL = """
WITH gone AS (
    UPDATE members SET display_name = NULL, phone = NULL, status = 'pseudonymised'
    WHERE status = 'deactivated' AND deactivated_at < $1
    RETURNING id
),
sessions_gone AS (DELETE FROM sessions WHERE member_id IN (SELECT id FROM gone) RETURNING 1),
subscriptions_gone AS (DELETE FROM push_subscriptions WHERE member_id IN (SELECT id FROM gone) RETURNING 1)
SELECT (SELECT count(*) FROM gone) AS members,
       (SELECT count(*) FROM sessions_gone) AS sessions,
       (SELECT count(*) FROM subscriptions_gone) AS push_subscriptions
"""


class Pseudonymised(msgspec.Struct, frozen=True):
    members: int
    sessions: int
    push_subscriptions: int


class Purged(msgspec.Struct, frozen=True):
    photos: int
    keys: list[str]  # the blobs to delete once the marks commit


def _purged(rows) -> Purged:
    keys = [key for r in rows for key in (r["original_key"], r["display_key"], r["thumb_key"]) if key]
    return Purged(photos=len(rows), keys=keys)


async def finished_incidents_page(conn: Connection, *, finished_before: dt.datetime, after: tuple[dt.datetime, int],
                                  limit: int) -> list[FinishedIncident]:
    rows = await conn.fetch(FINISHED_INCIDENTS_PAGE_SQL, finished_before, after[0], after[1], limit)
    return [FinishedIncident(**r) for r in rows]


async def purge_photos_of(conn: Connection, incident_ids: list[int], *, now: dt.datetime) -> Purged:
    """Mark the incidents' photos purged."""
    return _purged(await conn.fetch(PURGE_PHOTOS_SQL, incident_ids, now))


async def purge_archived_photos(conn: Connection, *, finished_before: dt.datetime, now: dt.datetime,
                                limit: int) -> Purged:
    return _purged(await conn.fetch(PURGE_ARCHIVED_PHOTOS_SQL, finished_before, now, limit))


async def pseudonymise_members(conn: Connection, *, deactivated_before: dt.datetime) -> Pseudonymised:
    return Pseudonymised(**await conn.fetchrow(PSEUDONYMISE_MEMBERS_SQL, deactivated_before))
