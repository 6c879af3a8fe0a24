"""The schema carries the rules: comments everywhere, append-only ledger, idempotency keys."""

import asyncpg
import pytest

from gridrider.clock import local_day
from tests.factories import make_member, make_report

MISSING_COMMENTS_SQL = """
SELECT c.relname AS missing
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public'
  AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND c.relname <> 'schema_migrations'
  AND obj_description(c.oid, 'pg_class') IS NULL
UNION ALL
SELECT c.relname || '.' || a.attname
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE n.nspname = 'public'
  AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND c.relname <> 'schema_migrations'
  AND col_description(c.oid, a.attnum) IS NULL
ORDER BY 1
"""


async def test_every_table_and_column_has_a_comment(db):
    assert [r["missing"] for r in await db.fetch(MISSING_COMMENTS_SQL)] == []


async def test_every_time_column_is_timestamptz(db):
    rows = await db.fetch(
        """SELECT table_name || '.' || column_name AS col FROM information_schema.columns
           WHERE table_schema = 'public' AND data_type IN ('timestamp without time zone', 'time without time zone')"""
    )
    assert [r["col"] for r in rows] == []


async def _ledger_row(db, clock) -> int:
    member = await make_member(db)
    return await db.fetchval(
        """INSERT INTO points_ledger (member_id, reason, amount, source_kind, source_id, cycle,
                                      counts_toward_cap, counts_toward_ranking, local_day, created_at)
           VALUES ($1, 'adjustment', 7, 'decision', 1, 0, false, true, $2, $3) RETURNING id""",
        member, local_day(clock.now()), clock.now(),
    )


async def test_the_ledger_refuses_update(db, clock):
    row = await _ledger_row(db, clock)
    with pytest.raises(asyncpg.RestrictViolationError, match="points_ledger is append-only"):
        await db.execute("UPDATE points_ledger SET amount = 700 WHERE id = $1", row)
    assert await db.fetchval("SELECT amount FROM points_ledger WHERE id = $1", row) == 7


async def test_the_ledger_refuses_delete_and_truncate(db, clock):
    row = await _ledger_row(db, clock)
    with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
        await db.execute("DELETE FROM points_ledger WHERE id = $1", row)
    with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
        await db.execute("TRUNCATE points_ledger")
    assert await db.fetchval("SELECT count(*) FROM points_ledger") == 1


async def test_a_redelivered_award_is_written_once(db, clock):
    member = await make_member(db)
    insert = """INSERT INTO points_ledger (member_id, reason, amount, source_kind, source_id, cycle,
                                           counts_toward_cap, counts_toward_ranking, local_day, created_at)
                VALUES ($1, 'corroboration', 2, 'report', 9, 1, true, true, $2, $3)
                ON CONFLICT DO NOTHING"""
    for _ in range(2):
        await db.execute(insert, member, local_day(clock.now()), clock.now())
    assert await db.fetchval("SELECT sum(amount) FROM points_ledger WHERE member_id = $1", member) == 2


async def test_report_keys_make_client_id_unique_per_reporter(db, clock):
    member = await make_member(db)
    report = await make_report(db, clock, reporter_id=member)
    client_id = await db.fetchval("SELECT client_id FROM reports WHERE id = $1", report)
    await db.execute("INSERT INTO report_keys (reporter_id, client_id, report_id) VALUES ($1, $2, $3)",
                     member, client_id, report)
    with pytest.raises(asyncpg.UniqueViolationError):
        await db.execute("INSERT INTO report_keys (reporter_id, client_id, report_id) VALUES ($1, $2, $3)",
                         member, client_id, report)
