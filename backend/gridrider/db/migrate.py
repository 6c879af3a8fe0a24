"""Forward-only numbered SQL migrations, applied in order under an advisory lock.

Files are `migrations/NNNN_name.sql`; each runs in its own transaction and is recorded with its
checksum in `schema_migrations`. A file that changed after it was applied stops the run: merged
migrations are never edited, a new numbered file is added instead.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import asyncpg
import msgspec

from gridrider.logging import get_logger

log = get_logger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any constant works; it only has to be the same in every process that migrates this database.
MIGRATION_LOCK_KEY = 0x67726964_72696472  # "gridridr"
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

CREATE_SCHEMA_MIGRATIONS_SQL = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE schema_migrations IS 'Migrations applied to this database, one row per numbered SQL file.';
COMMENT ON COLUMN schema_migrations.version IS 'The NNNN number of the migration file.';
COMMENT ON COLUMN schema_migrations.name IS 'The file name after the number.';
COMMENT ON COLUMN schema_migrations.checksum IS 'SHA-256 of the file when applied; a later change is refused.';
COMMENT ON COLUMN schema_migrations.applied_at IS 'When the migration was applied.';
"""
APPLIED_MIGRATIONS_SQL = "SELECT version, name, checksum FROM schema_migrations ORDER BY version"
RECORD_MIGRATION_SQL = "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)"
LATEST_APPLIED_SQL = "SELECT max(version) FROM schema_migrations"


class Migration(msgspec.Struct, frozen=True):
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


class MigrationError(Exception):
    pass


def available_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.sql")
        found.append(Migration(int(match[1]), match[2], path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a number")
    return found


async def migrate(conn: asyncpg.Connection, directory: Path = MIGRATIONS_DIR) -> list[int]:
    """Apply every pending migration; returns the versions applied by this call."""
    migrations = available_migrations(directory)
    applied_now: list[int] = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await conn.execute(CREATE_SCHEMA_MIGRATIONS_SQL)
        applied = {r["version"]: r for r in await conn.fetch(APPLIED_MIGRATIONS_SQL)}
        for migration in migrations:
            done = applied.get(migration.version)
            if done is not None:
                if done["checksum"] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version:04d}_{migration.name} changed after it was applied; "
                        "add a new migration instead of editing this one"
                    )
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(RECORD_MIGRATION_SQL, migration.version, migration.name, migration.checksum)
            applied_now.append(migration.version)
            log.info("migrate.applied", version=migration.version, name=migration.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    return applied_now


async def schema_is_current(conn: asyncpg.Connection, directory: Path = MIGRATIONS_DIR) -> bool:
    """True when the newest migration file has been applied (readiness)."""
    try:
        latest = await conn.fetchval(LATEST_APPLIED_SQL)
    except asyncpg.UndefinedTableError:
        return False
    migrations = available_migrations(directory)
    return bool(migrations) and latest == migrations[-1].version


async def migrate_and_seed_defaults(conn: asyncpg.Connection, directory: Path = MIGRATIONS_DIR) -> list[int]:
    """What `gridrider migrate` does: apply migrations, then add default categories that are missing."""
    from gridrider.db.categories import insert_missing_categories
    from gridrider.domain.categories import DEFAULT_CATEGORIES

    applied = await migrate(conn, directory)
    await insert_missing_categories(conn, DEFAULT_CATEGORIES)
    return applied
