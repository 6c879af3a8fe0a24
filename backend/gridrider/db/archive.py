"""SQL of the archive job: which finished incidents may leave the hot tables, and moving them.

An incident leaves with everything hanging off it: its reports, their photos and its proof photos, its
audit events, verifications, escalations, notifications and their deliveries, the flags about any of
those, and the Open311 requests of its reports; incidents merged into it leave with it. What stays:
`points_ledger` (append-only; it names sources by id without a foreign key, and balances and rankings
are sums over it) and `report_keys` (idempotency is forever; it names the report by id, hot or archived).
"""

from __future__ import annotations

import datetime as dt

import msgspec

from gridrider.db.pool import Connection, Pool

# Every table whose rows move, with the rows of a set of incidents ($1, bigint[]) it holds. The order is
# the copy order: parents first, so their row locks (taken while copying) keep new children from being
# attached before the children are copied. Deletes run in the reverse order, children first.
# Each way in is its own UNION branch, so every branch probes an index (an OR across columns would make
# the planner read the whole photos or flags table for every batch).
_REPORTS = "SELECT r.id FROM reports r WHERE r.incident_id = ANY($1::bigint[])"
# Their proof photos and their reports' photos.
PHOTO_IDS_OF_INCIDENTS_SQL = """SELECT p.id FROM photos p WHERE p.incident_id = ANY($1::bigint[])
    UNION SELECT p.id FROM photos p JOIN reports r ON r.id = p.report_id WHERE r.incident_id = ANY($1::bigint[])"""
_FLAGS = f"""SELECT f.id FROM flags f WHERE f.incident_id = ANY($1::bigint[])
    UNION SELECT f.id FROM flags f WHERE f.report_id IN ({_REPORTS})
    UNION SELECT f.id FROM flags f WHERE f.photo_id IN ({PHOTO_IDS_OF_INCIDENTS_SQL})"""
_NOTIFICATIONS = "SELECT n.id FROM notifications n WHERE n.incident_id = ANY($1::bigint[])"
ROWS_OF_INCIDENTS: dict[str, str] = {
    "incidents": "id = ANY($1::bigint[])",
    "reports": "incident_id = ANY($1::bigint[])",
    "photos": f"id IN ({PHOTO_IDS_OF_INCIDENTS_SQL})",
    "notifications": "incident_id = ANY($1::bigint[])",
    "deliveries": f"notification_id IN ({_NOTIFICATIONS})",
    "incident_events": "incident_id = ANY($1::bigint[])",
    "verifications": "incident_id = ANY($1::bigint[])",
    "escalations": "incident_id = ANY($1::bigint[])",
    "flags": f"id IN ({_FLAGS})",
    "open311_requests": f"report_id IN ({_REPORTS})",
}
ARCHIVED_TABLES = tuple(ROWS_OF_INCIDENTS)

# Built once from the constants above (table names are ours, never input). FOR UPDATE while copying: a
# row changed between its copy and its delete would otherwise leave a stale copy behind.
COPY_SQL = {table: f"INSERT INTO archive.{table} SELECT * FROM {table} WHERE {where} FOR UPDATE"
            for table, where in ROWS_OF_INCIDENTS.items()}
DELETE_SQL = {table: f"DELETE FROM {table} WHERE {where}" for table, where in ROWS_OF_INCIDENTS.items()
              if table not in ("incidents", "reports")}
COUNT_SQL = {table: f"SELECT count(*) FROM {table} WHERE {where}" for table, where in ROWS_OF_INCIDENTS.items()}
# Incidents and reports point at each other (incidents.origin_report_id, reports.incident_id), both ON
# DELETE RESTRICT: one statement deletes both, and the foreign keys are checked once it has.
DELETE_INCIDENTS_AND_REPORTS_SQL = f"""
WITH reports_gone AS (DELETE FROM reports WHERE {ROWS_OF_INCIDENTS["reports"]} RETURNING 1),
incidents_gone AS (DELETE FROM incidents WHERE {ROWS_OF_INCIDENTS["incidents"]} RETURNING 1)
SELECT (SELECT count(*) FROM reports_gone) AS reports, (SELECT count(*) FROM incidents_gone) AS incidents
"""

# One page of archivable roots: finished before $1, oldest first after the page before ($2, $3)
# (incidents_finished_idx). The locking variant holds them until the batch commits: a reopen waits, and
# one that committed first drops the incident from the page.
ROOTS_PAGE_SQL = """
SELECT i.id, incident_finished_at(i) AS finished_at
FROM incidents i
WHERE incident_finished_at(i) < $1
  AND (incident_finished_at(i), i.id) > ($2::timestamptz, $3::bigint)
ORDER BY incident_finished_at(i), i.id
LIMIT $4
"""
ROOTS_PAGE_FOR_UPDATE_SQL = ROOTS_PAGE_SQL + "FOR UPDATE OF i"

# Each root with the incidents merged into it, transitively (a merge target was open when merged into,
# so a chain ends at one root and never loops; UNION guards anyway).
GROUPS_SQL = """
WITH RECURSIVE grp (root_id, id) AS (
    SELECT root, root FROM unnest($1::bigint[]) AS root
    UNION
    SELECT g.root_id, m.id FROM grp g JOIN incidents m ON m.merged_into_id = g.id
)
SELECT root_id, id FROM grp
"""
LOCK_INCIDENTS_SQL = "SELECT id FROM incidents WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE"

# Which of the incidents in $1 must stay hot, and why: a hot row outside the set points at it, at one of its
# reports or photos (moving it would break that row's foreign key, or the reference a person follows);
# its audit events are younger than the audit retention ($2); or a flag about it is still open (withheld
# points wait for a supervisor) or also concerns rows outside the set.
BLOCKED_SQL = f"""
WITH rep AS (SELECT r.id, r.incident_id FROM reports r WHERE r.incident_id = ANY($1::bigint[])),
pho AS (
    SELECT p.id, coalesce(p.incident_id, rep.incident_id) AS incident_id
    FROM photos p LEFT JOIN rep ON rep.id = p.report_id
    WHERE p.id IN ({PHOTO_IDS_OF_INCIDENTS_SQL})
),
fl AS (
    SELECT f.id, f.state, f.incident_id, f.report_id, f.photo_id FROM flags f
    WHERE {ROWS_OF_INCIDENTS["flags"]}
)
SELECT x.recurrence_of_id AS incident_id, 'recurrence_of' AS why
FROM incidents x WHERE x.recurrence_of_id = ANY($1::bigint[]) AND x.id <> ALL($1::bigint[])
UNION ALL
SELECT x.merged_into_id, 'merged_into'
FROM incidents x WHERE x.merged_into_id = ANY($1::bigint[]) AND x.id <> ALL($1::bigint[])
UNION ALL
SELECT rep.incident_id, 'origin_report'
FROM rep JOIN incidents x ON x.origin_report_id = rep.id WHERE x.id <> ALL($1::bigint[])
UNION ALL
SELECT pho.incident_id, 'reused_photo'
FROM pho JOIN photos q ON q.reused_of_photo_id = pho.id WHERE q.id NOT IN (SELECT id FROM pho)
UNION ALL
SELECT e.incident_id, 'recent_audit_events'
FROM incident_events e WHERE e.incident_id = ANY($1::bigint[]) AND e.occurred_at >= $2
UNION ALL
SELECT coalesce(CASE WHEN f.incident_id = ANY($1::bigint[]) THEN f.incident_id END, rep.incident_id, pho.incident_id),
       CASE WHEN f.state = 'open' THEN 'open_flag' ELSE 'flag_shared_with_hot_rows' END
FROM fl f LEFT JOIN rep ON rep.id = f.report_id LEFT JOIN pho ON pho.id = f.photo_id
WHERE f.state = 'open'
   OR (f.incident_id IS NOT NULL AND f.incident_id <> ALL($1::bigint[]))
   OR (f.report_id IS NOT NULL AND rep.id IS NULL)
   OR (f.photo_id IS NOT NULL AND pho.id IS NULL)
"""

# Column lists of each archived table and its archive twin, to refuse a move into a table that differs.
COLUMNS_SQL = """
SELECT n.nspname AS schema, c.relname AS table,
       array_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum) AS columns
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname IN ('public', 'archive') AND c.relname = ANY($1::text[]) AND c.relkind = 'r'
  AND a.attnum > 0 AND NOT a.attisdropped
GROUP BY n.nspname, c.relname
"""

# Sessions hold it for a whole run; any constant works, it only has to be the same in every worker.
ARCHIVE_LOCK_SQL = "SELECT pg_try_advisory_lock(hashtextextended('archive:incidents', 0))"
ARCHIVE_UNLOCK_SQL = "SELECT pg_advisory_unlock(hashtextextended('archive:incidents', 0))"


class FinishedIncident(msgspec.Struct, frozen=True):
    """An incident that could move (or lose its photos: db/retention.py), with when it finished."""

    id: int
    finished_at: dt.datetime


class Blocked(msgspec.Struct, frozen=True):
    incident_id: int
    why: str


class ArchiveTablesDiffer(Exception):
    """An archive table's columns differ from its hot table's; moving rows would misplace or lose values."""


async def roots_page(conn: Connection, *, finished_before: dt.datetime, after: tuple[dt.datetime, int], limit: int,
                     lock: bool) -> list[FinishedIncident]:
    sql = ROOTS_PAGE_FOR_UPDATE_SQL if lock else ROOTS_PAGE_SQL
    return [FinishedIncident(**r) for r in await conn.fetch(sql, finished_before, after[0], after[1], limit)]


async def groups(conn: Connection, root_ids: list[int]) -> dict[int, int]:
    """incident id → its root, for the roots and every incident merged into them."""
    return {r["id"]: r["root_id"] for r in await conn.fetch(GROUPS_SQL, root_ids)}


async def lock_incidents(conn: Connection, incident_ids: list[int]) -> None:
    await conn.execute(LOCK_INCIDENTS_SQL, incident_ids)


async def blocked(conn: Connection, incident_ids: list[int], *, audit_cutoff: dt.datetime) -> list[Blocked]:
    return [Blocked(**r) for r in await conn.fetch(BLOCKED_SQL, incident_ids, audit_cutoff)]


async def count_rows(conn: Connection, incident_ids: list[int]) -> dict[str, int]:
    return {table: await conn.fetchval(sql, incident_ids) for table, sql in COUNT_SQL.items()}


def _affected(status: str) -> int:
    # asyncpg returns the command tag: "INSERT 0 12", "DELETE 12".
    return int(status.rsplit(" ", 1)[-1])


async def move(conn: Connection, incident_ids: list[int]) -> dict[str, int]:
    """Copy the incidents' rows into the archive and delete them, in the caller's transaction; rows per table.

    Raises (so the transaction rolls back) if any table deleted a different number of rows than it copied.
    """
    copied = {table: _affected(await conn.execute(sql, incident_ids)) for table, sql in COPY_SQL.items()}
    deleted = {table: _affected(await conn.execute(DELETE_SQL[table], incident_ids))
               for table in reversed(ARCHIVED_TABLES) if table in DELETE_SQL}
    deleted.update(await conn.fetchrow(DELETE_INCIDENTS_AND_REPORTS_SQL, incident_ids))
    if deleted != copied:
        raise RuntimeError(f"archive: copied {copied} but deleted {deleted}; rolled back")
    return copied


async def check_archive_tables(conn: Connection | Pool) -> None:
    rows = await conn.fetch(COLUMNS_SQL, list(ARCHIVED_TABLES))
    found = {(r["schema"], r["table"]): r["columns"] for r in rows}
    for table in ARCHIVED_TABLES:
        hot, archived = found.get(("public", table)), found.get(("archive", table))
        if hot != archived:
            raise ArchiveTablesDiffer(
                f"archive.{table} columns {archived} differ from {table} columns {hot}: a migration that changes "
                f"{table} must change archive.{table} alike")


async def try_lock(conn: Connection) -> bool:
    return bool(await conn.fetchval(ARCHIVE_LOCK_SQL))


async def unlock(conn: Connection) -> None:
    await conn.execute(ARCHIVE_UNLOCK_SQL)
