"""SQL for `members`."""

from __future__ import annotations

from gridrider.db.pool import Connection

MEMBER_INSERT_SQL = """
INSERT INTO members (role, display_name, pseudonym, phone, platform)
VALUES ($1, $2, $3, $4, $5)
RETURNING id
"""
MEMBERS_COUNT_SQL = "SELECT count(*) FROM members"


async def insert_member(
    conn: Connection, *, role: str, display_name: str, pseudonym: str, phone: str | None, platform: str | None,
) -> int:
    return await conn.fetchval(MEMBER_INSERT_SQL, role, display_name, pseudonym, phone, platform)


async def count_members(conn: Connection) -> int:
    return await conn.fetchval(MEMBERS_COUNT_SQL)
