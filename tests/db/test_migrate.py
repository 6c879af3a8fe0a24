"""The migration runner: from empty, idempotent, safe when two processes start together."""

import asyncio
import uuid

import asyncpg
import pytest

from gridrider.db.migrate import MigrationError, available_migrations, migrate, schema_is_current
from gridrider.db.pool import connect


@pytest.fixture
async def empty_database(postgres_server_url):
    from tests.conftest import _with_database

    name = f"gridrider_migrate_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(_with_database(postgres_server_url, "postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    yield _with_database(postgres_server_url, name)
    await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    await admin.close()


async def test_from_empty_applies_every_migration_and_is_current(empty_database):
    conn = await connect(empty_database)
    try:
        assert not await schema_is_current(conn)
        applied = await migrate(conn)
        assert applied == [m.version for m in available_migrations()]
        assert await schema_is_current(conn)
        assert await conn.fetchval("SELECT to_regclass('jobs') IS NOT NULL")
    finally:
        await conn.close()


async def test_a_second_run_applies_nothing(empty_database):
    conn = await connect(empty_database)
    try:
        await migrate(conn)
        assert await migrate(conn) == []
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(available_migrations())
    finally:
        await conn.close()


async def test_two_concurrent_runs_apply_each_migration_once(empty_database):
    first, second = await connect(empty_database), await connect(empty_database)
    try:
        results = await asyncio.gather(migrate(first), migrate(second))
        assert sorted(results[0] + results[1]) == [m.version for m in available_migrations()]
        assert await first.fetchval("SELECT count(*) FROM schema_migrations") == len(available_migrations())
    finally:
        await first.close()
        await second.close()


async def test_an_edited_migration_is_refused(empty_database, tmp_path):
    (tmp_path / "0001_first.sql").write_text("CREATE TABLE t1 (id int);")
    conn = await connect(empty_database)
    try:
        await migrate(conn, tmp_path)
        (tmp_path / "0001_first.sql").write_text("CREATE TABLE t1 (id bigint);")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await migrate(conn, tmp_path)
    finally:
        await conn.close()


async def test_a_failing_migration_leaves_nothing_half_done(empty_database, tmp_path):
    (tmp_path / "0001_first.sql").write_text("CREATE TABLE t1 (id int);")
    (tmp_path / "0002_broken.sql").write_text("CREATE TABLE t2 (id int); SELECT no_such_function();")
    conn = await connect(empty_database)
    try:
        with pytest.raises(asyncpg.UndefinedFunctionError):
            await migrate(conn, tmp_path)
        assert await conn.fetchval("SELECT to_regclass('t1') IS NOT NULL")
        assert await conn.fetchval("SELECT to_regclass('t2') IS NULL")
        assert await conn.fetchval("SELECT max(version) FROM schema_migrations") == 1
        # The lock was released: another run can proceed (and fails on the same broken file, not on a lock).
        with pytest.raises(asyncpg.UndefinedFunctionError):
            await asyncio.wait_for(migrate(conn, tmp_path), 10)
    finally:
        await conn.close()
