"""SQL for `members`, `member_areas`, `sessions` and `enrolments`."""

from __future__ import annotations

import datetime as dt

import msgspec

from gridrider.db.pool import Connection, Pool


class MemberRow(msgspec.Struct, frozen=True):
    id: int
    role: str
    display_name: str | None
    pseudonym: str
    phone: str | None
    platform: str | None
    status: str
    privacy_accepted_at: dt.datetime | None
    # Materialised paths of the member's areas; a supervisor's subtree is every area below them.
    area_paths: list[str]
    area_codes: list[str]


_MEMBER_COLUMNS = """
m.id, m.role, m.display_name, m.pseudonym, m.phone, m.platform, m.status, m.privacy_accepted_at,
COALESCE(array_agg(a.path ORDER BY a.path) FILTER (WHERE a.id IS NOT NULL), '{}') AS area_paths,
COALESCE(array_agg(a.code ORDER BY a.path) FILTER (WHERE a.id IS NOT NULL), '{}') AS area_codes
"""

MEMBER_BY_ID_SQL = f"""
SELECT {_MEMBER_COLUMNS}
FROM members m LEFT JOIN member_areas ma ON ma.member_id = m.id LEFT JOIN areas a ON a.id = ma.area_id
WHERE m.id = $1
GROUP BY m.id
"""

MEMBER_BY_PHONE_SQL = f"""
SELECT {_MEMBER_COLUMNS}
FROM members m LEFT JOIN member_areas ma ON ma.member_id = m.id LEFT JOIN areas a ON a.id = ma.area_id
WHERE m.phone = $1
GROUP BY m.id
"""

# The session's member, only while the session is live and the member active.
MEMBER_BY_SESSION_SQL = f"""
SELECT s.id AS session_id, s.last_seen_at, {_MEMBER_COLUMNS}
FROM sessions s
JOIN members m ON m.id = s.member_id
LEFT JOIN member_areas ma ON ma.member_id = m.id LEFT JOIN areas a ON a.id = ma.area_id
WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > $2 AND m.status = 'active'
GROUP BY s.id, m.id
"""

MEMBER_INSERT_SQL = """
INSERT INTO members (role, display_name, pseudonym, phone, platform)
VALUES ($1, $2, $3, $4, $5)
RETURNING id
"""
MEMBER_REACTIVATE_SQL = """
UPDATE members SET role = $2, display_name = $3, platform = $4, status = 'active', deactivated_at = NULL
WHERE id = $1
"""
MEMBER_DEACTIVATE_SQL = """
UPDATE members SET status = 'deactivated', deactivated_at = $2 WHERE id = $1 AND status = 'active'
"""
MEMBER_ACCEPT_PRIVACY_SQL = "UPDATE members SET privacy_accepted_at = $2 WHERE id = $1 AND privacy_accepted_at IS NULL"
MEMBERS_COUNT_SQL = "SELECT count(*) FROM members"
MEMBER_AREAS_DELETE_SQL = "DELETE FROM member_areas WHERE member_id = $1 AND area_id <> ALL($2::bigint[])"
MEMBER_AREAS_ADD_SQL = """
INSERT INTO member_areas (member_id, area_id) SELECT $1, unnest($2::bigint[]) ON CONFLICT DO NOTHING
"""

SESSION_INSERT_SQL = """
INSERT INTO sessions (member_id, token_hash, device, created_at, last_seen_at, expires_at)
VALUES ($1, $2, $3, $4, $4, $5) RETURNING id
"""
SESSION_TOUCH_SQL = "UPDATE sessions SET last_seen_at = $2, expires_at = $3 WHERE id = $1"
SESSION_REVOKE_SQL = "UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL"
SESSIONS_REVOKE_ALL_SQL = "UPDATE sessions SET revoked_at = $2 WHERE member_id = $1 AND revoked_at IS NULL"

# One page of the member list, newest first (ids follow creation). The page is chosen first and only its
# rows get their areas and last sighting, so a county's tens of thousands of riders cost one backward
# walk of the primary key, never an aggregate over all of them.
# $1: subtrees (LIKE patterns) a member needs an area in, NULL for everyone (an admin without `area`);
# $2 role, $3 status; $4 a pattern for pseudonym or name (ILIKE, wildcards in the text escaped) and $5 one
# for the phone's last digits — a member matching either is listed; $6 the id the previous page ended
# at, $7 how many rows. Area codes hold no LIKE wildcards (a CHECK on areas.code), so paths are patterns.
# The system account (Open311 intake) is no one to manage and never listed.
MEMBER_LIST_SQL = """
WITH page AS (
    SELECT m.id, m.role, m.display_name, m.pseudonym, m.phone, m.platform, m.status, m.privacy_accepted_at,
           m.created_at
    FROM members m
    WHERE m.role <> 'system'
      AND ($1::text[] IS NULL OR EXISTS (
              SELECT 1 FROM member_areas w JOIN areas wa ON wa.id = w.area_id
              WHERE w.member_id = m.id AND wa.path LIKE ANY ($1::text[])))
      AND ($2::text IS NULL OR m.role = $2)
      AND ($3::text IS NULL OR m.status = $3)
      AND (($4::text IS NULL AND $5::text IS NULL)
           OR m.pseudonym ILIKE $4 OR m.display_name ILIKE $4 OR m.phone LIKE $5)
      AND ($6::bigint IS NULL OR m.id < $6)
    ORDER BY m.id DESC
    LIMIT $7
)
SELECT p.*, coalesce(ar.area_paths, '{}') AS area_paths, coalesce(ar.area_codes, '{}') AS area_codes,
       (SELECT max(s.last_seen_at) FROM sessions s WHERE s.member_id = p.id) AS last_seen_at
FROM page p
LEFT JOIN LATERAL (
    SELECT array_agg(a.path ORDER BY a.path) AS area_paths, array_agg(a.code ORDER BY a.path) AS area_codes
    FROM member_areas ma JOIN areas a ON a.id = ma.area_id
    WHERE ma.member_id = p.id
) ar ON true
ORDER BY p.id DESC
"""

ENROLMENT_INSERT_SQL = """
INSERT INTO enrolments (code_hash, member_id, role, area_ids, created_by, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id
"""
# A new code for a member retires the codes handed out before it (a lost printout stays useless).
ENROLMENTS_RETIRE_SQL = """
UPDATE enrolments SET superseded_at = $2
WHERE member_id = $1 AND used_at IS NULL AND superseded_at IS NULL
"""
ENROLMENT_BY_CODE_SQL = """
SELECT e.id, e.member_id, e.expires_at, e.used_at, e.superseded_at, e.failed_attempts, e.locked_at, m.phone,
       m.status
FROM enrolments e JOIN members m ON m.id = e.member_id
WHERE e.code_hash = $1
FOR UPDATE OF e
"""
ENROLMENT_FAILED_ATTEMPT_SQL = """
UPDATE enrolments SET failed_attempts = failed_attempts + 1,
                      locked_at = CASE WHEN failed_attempts + 1 >= $2 THEN $3::timestamptz END
WHERE id = $1
RETURNING failed_attempts
"""
ENROLMENT_USE_SQL = "UPDATE enrolments SET used_at = $2 WHERE id = $1"


class EnrolmentRow(msgspec.Struct, frozen=True):
    id: int
    member_id: int
    expires_at: dt.datetime
    used_at: dt.datetime | None
    superseded_at: dt.datetime | None
    failed_attempts: int
    locked_at: dt.datetime | None
    phone: str | None
    status: str


class SessionMember(msgspec.Struct, frozen=True):
    session_id: int
    last_seen_at: dt.datetime
    member: MemberRow


class MemberListQuery(msgspec.Struct, frozen=True):
    within_paths: list[str] | None  # members with an area in one of these subtrees; None: everyone
    role: str | None = None
    status: str | None = None
    text: str | None = None  # a piece of the pseudonym or the name, matched case-insensitively
    phone_suffix: str | None = None  # the phone's last digits; a member matching this or `text` is listed
    before_id: int | None = None  # the last id of the previous page
    limit: int = 50


class MemberListed(msgspec.Struct, frozen=True):
    member: MemberRow  # with ALL the member's areas (whether the caller may act on them depends on all)
    last_seen_at: dt.datetime | None  # the latest use of any of their sessions; None: never signed in
    created_at: dt.datetime


def _like_escaped(text: str) -> str:
    """`text` as a LIKE pattern matching itself: its wildcards and the escape character taken literally."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _member(row) -> MemberRow:
    return MemberRow(**{f: row[f] for f in MemberRow.__struct_fields__})


async def member_by_id(conn: Connection | Pool, member_id: int) -> MemberRow | None:
    row = await conn.fetchrow(MEMBER_BY_ID_SQL, member_id)
    return _member(row) if row else None


async def member_by_phone(conn: Connection | Pool, phone: str) -> MemberRow | None:
    row = await conn.fetchrow(MEMBER_BY_PHONE_SQL, phone)
    return _member(row) if row else None


async def member_by_session(conn: Connection | Pool, token_hash: bytes, now: dt.datetime) -> SessionMember | None:
    row = await conn.fetchrow(MEMBER_BY_SESSION_SQL, token_hash, now)
    return SessionMember(row["session_id"], row["last_seen_at"], _member(row)) if row else None


async def insert_member(
    conn: Connection, *, role: str, display_name: str, pseudonym: str, phone: str | None, platform: str | None,
) -> int:
    return await conn.fetchval(MEMBER_INSERT_SQL, role, display_name, pseudonym, phone, platform)


async def reactivate_member(conn: Connection, member_id: int, *, role: str, display_name: str,
                            platform: str | None) -> None:
    await conn.execute(MEMBER_REACTIVATE_SQL, member_id, role, display_name, platform)


async def deactivate_member(conn: Connection, member_id: int, now: dt.datetime) -> bool:
    return await conn.execute(MEMBER_DEACTIVATE_SQL, member_id, now) == "UPDATE 1"


async def accept_privacy(conn: Connection, member_id: int, now: dt.datetime) -> None:
    await conn.execute(MEMBER_ACCEPT_PRIVACY_SQL, member_id, now)


async def count_members(conn: Connection) -> int:
    return await conn.fetchval(MEMBERS_COUNT_SQL)


async def replace_member_areas(conn: Connection, member_id: int, area_ids: list[int]) -> None:
    await conn.execute(MEMBER_AREAS_DELETE_SQL, member_id, area_ids)
    await conn.execute(MEMBER_AREAS_ADD_SQL, member_id, area_ids)


async def insert_session(conn: Connection, *, member_id: int, token_hash: bytes, device: str | None,
                         now: dt.datetime, expires_at: dt.datetime) -> int:
    return await conn.fetchval(SESSION_INSERT_SQL, member_id, token_hash, device, now, expires_at)


async def touch_session(conn: Connection | Pool, session_id: int, *, now: dt.datetime, expires_at: dt.datetime) -> None:
    await conn.execute(SESSION_TOUCH_SQL, session_id, now, expires_at)


async def revoke_session(conn: Connection, session_id: int, now: dt.datetime) -> None:
    await conn.execute(SESSION_REVOKE_SQL, session_id, now)


async def revoke_all_sessions(conn: Connection, member_id: int, now: dt.datetime) -> int:
    return int((await conn.execute(SESSIONS_REVOKE_ALL_SQL, member_id, now)).split()[-1])


async def insert_enrolment(conn: Connection, *, code_hash: bytes, member_id: int, role: str, area_ids: list[int],
                           created_by: int | None, now: dt.datetime, expires_at: dt.datetime) -> int:
    await conn.execute(ENROLMENTS_RETIRE_SQL, member_id, now)
    return await conn.fetchval(ENROLMENT_INSERT_SQL, code_hash, member_id, role, area_ids, created_by, now, expires_at)


async def enrolment_by_code_for_update(conn: Connection, code_hash: bytes) -> EnrolmentRow | None:
    row = await conn.fetchrow(ENROLMENT_BY_CODE_SQL, code_hash)
    return EnrolmentRow(**row) if row else None


async def record_failed_attempt(conn: Connection, enrolment_id: int, *, lock_after: int, now: dt.datetime) -> int:
    return await conn.fetchval(ENROLMENT_FAILED_ATTEMPT_SQL, enrolment_id, lock_after, now)


async def use_enrolment(conn: Connection, enrolment_id: int, now: dt.datetime) -> None:
    await conn.execute(ENROLMENT_USE_SQL, enrolment_id, now)


async def list_members(conn: Connection | Pool, query: MemberListQuery) -> list[MemberListed]:
    text = f"%{_like_escaped(query.text)}%" if query.text is not None else None
    phone = f"%{_like_escaped(query.phone_suffix)}" if query.phone_suffix is not None else None
    within = None if query.within_paths is None else [path + "%" for path in query.within_paths]
    rows = await conn.fetch(MEMBER_LIST_SQL, within, query.role, query.status, text, phone, query.before_id,
                            query.limit)
    return [MemberListed(member=_member(r), last_seen_at=r["last_seen_at"], created_at=r["created_at"]) for r in rows]
