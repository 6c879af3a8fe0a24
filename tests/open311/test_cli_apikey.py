"""`gridrider apikey create|list|revoke`: the key is printed once, stored only as a hash, and revocation bites."""

import asyncio

import pytest

from gridrider.cli import main
from tests.open311.conftest import BASE, HERE, assert_error


@pytest.fixture
def cli_env(monkeypatch, database_url, settings, db, demo):
    """The CLI reads its settings from the environment: this worker's database and the tests' secrets."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("GRIDRIDER_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("GRIDRIDER_SESSION_SECRET", settings.session_secret)
    monkeypatch.setenv("GRIDRIDER_URL_SIGNING_SECRET", settings.url_signing_secret)
    monkeypatch.setenv("GRIDRIDER_VAPID_PRIVATE_KEY", settings.vapid_private_key)
    monkeypatch.setenv("GRIDRIDER_LOG_LEVEL", "WARNING")


async def run(*argv: str) -> int:
    return await asyncio.to_thread(main, ["apikey", *argv])


async def test_create_list_use_and_revoke(cli_env, client, db, capsys):
    assert await run("create", "--name", "12345-hotline", "--area", "ZW-ZWZ-C02") == 0
    out = capsys.readouterr().out
    key = next(line.split()[1] for line in out.splitlines() if line.startswith("key: "))
    assert key.startswith("gr311_") and "only time the key is shown" in out
    stored = await db.fetchrow("SELECT * FROM api_keys")
    assert key.encode() not in stored["key_hash"] and len(stored["key_hash"]) == 32
    assert key not in str(dict(stored))
    member = await db.fetchrow("SELECT role, phone, display_name FROM members WHERE id = $1", stored["member_id"])
    assert dict(member) == {"role": "system", "phone": None, "display_name": "12345-hotline"}

    form = {"api_key": key, "service_code": "flooding", "lat": str(HERE[0]), "long": str(HERE[1])}
    assert (await client.post(f"{BASE}/requests.json", data=form)).status_code == 201

    assert await run("list") == 0
    listed = capsys.readouterr().out
    assert "12345-hotline  area ZW-ZWZ-C02" in listed and key[:10] in listed and key not in listed
    assert "live" in listed

    assert await run("revoke", "12345-hotline") == 0
    assert "revoked API key 12345-hotline" in capsys.readouterr().out
    assert_error(await client.post(f"{BASE}/requests.json", data=form), 403)
    assert await db.fetchval("SELECT status FROM members WHERE id = $1", stored["member_id"]) == "deactivated"
    assert await run("revoke", "12345-hotline") == 0
    assert "already revoked" in capsys.readouterr().out
    assert await run("list") == 0
    assert "revoked" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "message"), [
    (["create", "--name", "x", "--area", "NOWHERE"], "area 'NOWHERE' is unknown"),
    (["create", "--name", "bad name!", "--area", "ZW"], "name 'bad name!'"),
    (["revoke", "ghost"], "no key named 'ghost'"),
])
async def test_refusals_exit_non_zero(cli_env, db, capsys, argv, message):
    assert await run(*argv) == 1
    assert message in capsys.readouterr().err
    assert await db.fetchval("SELECT count(*) FROM api_keys") == 0


async def test_names_are_never_reused(cli_env, db, capsys):
    assert await run("create", "--name", "hotline", "--area", "ZW") == 0
    assert await run("revoke", "hotline") == 0
    assert await run("create", "--name", "hotline", "--area", "ZW") == 1
    assert "is taken" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["create", "--area", "ZW"], ["create", "--name", "x"], ["revoke"]])
async def test_missing_arguments_exit_2(cli_env, db, capsys, argv):
    assert await run(*argv) == 2
