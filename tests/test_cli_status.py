"""`gridrider status`, run as an operator runs it: queues, dead jobs, overdue counts, Redis, and its exit code."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys

import pytest


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def status(tmp_path, **env: str | None) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("GRIDRIDER_")}
    full.update({"GRIDRIDER_DATA_DIR": str(tmp_path)})
    for name, value in env.items():
        if value is None:
            full.pop(name, None)
        else:
            full[name] = value
    return await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "gridrider", "status"], env=full,
                                   capture_output=True, text=True, timeout=60)


@pytest.fixture
def servers(database_url, redis_url) -> dict[str, str]:
    return {"DATABASE_URL": database_url, "REDIS_URL": redis_url}


async def test_a_healthy_deployment_exits_0(tmp_path, db, servers):
    await db.execute("INSERT INTO jobs (kind, state, run_after) VALUES ('notify', 'pending', now() - interval '90 s')")
    result = await status(tmp_path, **servers)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "redis: answers" in out
    assert "database: answers" in out
    row = next(line for line in out.splitlines() if line.strip().startswith("notify"))
    assert row.split()[1:5] == ["1", "0", "0", "0"]  # pending running retry dead
    assert row.split()[-1] in ("90s", "91s", "92s")  # oldest waiting since due
    assert "dead jobs: none" in out
    assert "overdue incidents: dispatch 0, accept 0, resolve 0" in out
    assert out.strip().endswith("status: healthy")


async def test_a_dead_job_is_listed_and_exits_1(tmp_path, db, servers):
    for n in range(12):
        await db.execute(
            "INSERT INTO jobs (kind, state, attempts, max_attempts, last_error, updated_at) "
            "VALUES ('process_report', 'dead', 8, 8, $1, now() - make_interval(mins => $2))",
            f"ValueError: boom {n}\nthe second line stays in the database", n)
    result = await status(tmp_path, **servers)
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "dead jobs (10 most recent of 12):" in out
    listed = [line for line in out.splitlines() if "attempts=8" in line]
    assert len(listed) == 10
    assert "process_report" in listed[0] and listed[0].endswith("ValueError: boom 0")  # newest first
    assert "second line" not in out
    assert out.strip().endswith("status: UNHEALTHY (12 dead job(s))")


async def test_an_unreachable_database_exits_1_without_echoing_its_password(tmp_path, servers):
    url = f"postgresql://gridrider:hunter2secret@127.0.0.1:{closed_port()}/gridrider"
    result = await status(tmp_path, DATABASE_URL=url, REDIS_URL=servers["REDIS_URL"])
    assert result.returncode == 1, result.stdout + result.stderr
    assert "database: UNREACHABLE" in result.stdout
    assert "hunter2secret" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


async def test_redis_that_does_not_answer_is_unhealthy(tmp_path, db, servers):
    result = await status(tmp_path, DATABASE_URL=servers["DATABASE_URL"], REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "redis: NOT ANSWERING" in result.stdout
    assert "status: UNHEALTHY (redis not answering)" in result.stdout


async def test_without_server_urls_it_is_a_setting_error(tmp_path):
    # `status` inspects a running deployment; it never starts embedded servers of its own.
    result = await status(tmp_path, DATABASE_URL=None, REDIS_URL=None)
    assert result.returncode == 2
    assert result.stderr.startswith("gridrider: setting error: DATABASE_URL and REDIS_URL")
