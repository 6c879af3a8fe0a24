"""The backup/restore rehearsal of docs/operations.md, run for real: pg_dump of a migrated database with data,
pg_restore into a scratch database, and the restored copy checked row for row and served by the API."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from gridrider.app import create_app
from gridrider.db.migrate import APPLIED_MIGRATIONS_SQL
from gridrider.jobs.archive import archive_incidents_now
from tests.conftest import _with_database, make_settings
from tests.factories import make_member
from tests.jobs.aged_incidents import make_incident

PGSERVER_BIN = Path(__import__("pgserver").__file__).parent / "pginstall" / "bin"
REPO = Path(__file__).resolve().parents[2]

# Every table of both schemas the product writes to; a table a dump silently skipped would show up here.
TABLES_SQL = """SELECT schemaname, tablename FROM pg_tables WHERE schemaname IN ('public', 'archive')
                ORDER BY 1, 2"""
# Restored sequences must continue where the source stopped, or the first insert after a restore collides.
SEQUENCES_SQL = """SELECT schemaname, sequencename, last_value FROM pg_sequences
                   WHERE schemaname IN ('public', 'archive') ORDER BY 1, 2"""
# The append-only and ranking triggers are restored in pg_restore's post-data section; missing ones would
# leave a database that accepts edits to the ledger.
TRIGGERS_SQL = """SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
                  WHERE NOT t.tgisinternal ORDER BY 1, 2"""
LEDGER_SQL = """SELECT count(*), coalesce(sum(amount), 0), coalesce(sum(amount) FILTER (WHERE counts_toward_ranking), 0)
                FROM points_ledger"""
RANKING_SQL = "SELECT count(*), coalesce(sum(points), 0) FROM ranking_totals"


def _client_for(binary: str, server_major: int) -> str:
    """The pg_dump/pg_restore of the server's own major version: an older pg_dump refuses a newer server, and a
    newer one writes archives an older pg_restore cannot read."""
    candidates = [Path(f"/usr/lib/postgresql/{server_major}/bin") / binary, PGSERVER_BIN / binary]
    on_path = shutil.which(binary)
    if on_path:
        candidates.append(Path(on_path))
    for path in candidates:
        if not path.is_file():
            continue
        version = subprocess.run([str(path), "--version"], capture_output=True, text=True, check=True).stdout
        found = re.search(r"\) (\d+)", version)
        if found and int(found[1]) == server_major:
            return str(path)
    pytest.fail(f"no {binary} for PostgreSQL {server_major} (looked at {', '.join(map(str, candidates))})")


def _run(argv: list[str], **kwargs) -> tuple[subprocess.CompletedProcess, float]:
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    elapsed = time.perf_counter() - started
    assert done.returncode == 0, f"{argv[0]} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done, elapsed


async def _inventory(conn: asyncpg.Connection) -> dict[str, object]:
    tables = await conn.fetch(TABLES_SQL)
    counts = {f"{s}.{t}": await conn.fetchval(f'SELECT count(*) FROM "{s}"."{t}"') for s, t in tables}
    return {
        "counts": counts,
        "ledger": tuple(await conn.fetchrow(LEDGER_SQL)),
        "ranking": tuple(await conn.fetchrow(RANKING_SQL)),
        "migrations": [tuple(r) for r in await conn.fetch(APPLIED_MIGRATIONS_SQL)],
        "applied_at": [r[0] for r in await conn.fetch("SELECT applied_at FROM schema_migrations ORDER BY version")],
        "sequences": [tuple(r) for r in await conn.fetch(SEQUENCES_SQL)],
        "triggers": [tuple(r) for r in await conn.fetch(TRIGGERS_SQL)],
    }


async def test_pg_dump_and_pg_restore_into_a_scratch_database_give_back_a_working_copy(
        services, settings, clock, db, demo, redis, database_url, tmp_path, vapid_pem):
    # ── data: the demo hierarchy, incidents with everything hanging off them, one of them archived ──
    rider = await make_member(db)
    blobs = services.blobs
    await make_incident(db, clock, blobs, reporter=rider, state="closed")
    await make_incident(db, clock, blobs, reporter=rider, state="rejected")
    clock.advance(days=settings.archive_after_days + 1)
    await make_incident(db, clock, blobs, reporter=rider, state="dispatched")
    run = await archive_incidents_now(db, settings, clock.now())
    assert len(run.incidents) == 2, run
    async with db.acquire() as conn:
        source = await _inventory(conn)
    assert source["counts"]["archive.incidents"] >= 1 and source["counts"]["public.incidents"] >= 1
    assert source["ledger"][0] >= 3

    async with db.acquire() as conn:
        server_major = int(await conn.fetchval("SHOW server_version_num")) // 10000
    pg_dump, pg_restore = _client_for("pg_dump", server_major), _client_for("pg_restore", server_major)

    # A name of this process's own: parallel workers and a crashed earlier run never meet.
    scratch = f"gridrider_restore_{os.getpid()}"
    scratch_url = _with_database(database_url, scratch)
    admin_url = _with_database(database_url, "postgres")
    dump = tmp_path / "gridrider.dump"

    _, dump_s = _run([pg_dump, "--format=custom", f"--file={dump}", f"--dbname={database_url}"])
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{scratch}"')
        try:
            # --no-owner: the restoring role owns everything, as on a fresh server whose roles differ.
            _, restore_s = _run([pg_restore, "--no-owner", "--exit-on-error", f"--dbname={scratch_url}", str(dump)])

            restored_conn = await asyncpg.connect(scratch_url)
            try:
                restored = await _inventory(restored_conn)
            finally:
                await restored_conn.close()
            assert restored["counts"] == source["counts"]
            assert restored["ledger"] == source["ledger"]
            assert restored["ranking"] == source["ranking"]
            assert restored["migrations"] == source["migrations"]  # versions, names and checksums
            assert restored["sequences"] == source["sequences"]
            assert restored["triggers"] == source["triggers"]

            # The real command, as an operator runs it after a restore: nothing to apply, nothing changed.
            env = {**os.environ, "DATABASE_URL": scratch_url, "GRIDRIDER_DATA_DIR": str(tmp_path / "migrate-data")}
            migrated, _ = _run([sys.executable, "-m", "gridrider", "migrate"], env=env, cwd=REPO, timeout=120)
            assert "none (up to date)" in migrated.stdout, migrated.stdout
            check = await asyncpg.connect(scratch_url)
            try:
                after = await _inventory(check)
            finally:
                await check.close()
            assert after["applied_at"] == source["applied_at"]
            assert after["counts"] == source["counts"]  # the default categories were all there already

            app = create_app(make_settings(tmp_path / "api-data", scratch_url, settings.redis_url, vapid_pem),
                             clock=clock)
            async with AsyncTestClient(app=app) as client:
                ready = await client.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json() == {"status": "ok", "database": "ok", "redis": "ok"}

            rows = sum(source["counts"].values())
            print(f"\nrestore rehearsal: PostgreSQL {server_major}, {len(source['counts'])} tables, {rows} rows, "
                  f"{len(source['migrations'])} migrations; dump {dump.stat().st_size / 1024:.1f} KiB "
                  f"(custom format) in {dump_s:.2f} s, pg_restore in {restore_s:.2f} s")
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
    finally:
        await admin.close()
