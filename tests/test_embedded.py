"""The one-box default: generated secrets, embedded Redis and PostgreSQL."""

import asyncio
import stat

import pytest

from gridrider.config import SettingsError, load_settings
from gridrider.embedded import EmbeddedRedis, resolve_secrets


def test_secrets_are_generated_once_with_mode_0600(tmp_path):
    settings = load_settings({"GRIDRIDER_DATA_DIR": str(tmp_path)})
    first = resolve_secrets(settings, generate=True)
    assert set(first) == {"session_secret", "url_signing_secret", "vapid_private_key"}
    assert "BEGIN PRIVATE KEY" in first["vapid_private_key"]
    for name in first:
        path = tmp_path / "secrets" / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "secrets").stat().st_mode) == 0o700
    assert resolve_secrets(settings, generate=True) == first  # a second start reuses them


def test_secrets_from_the_environment_win(tmp_path):
    settings = load_settings({"GRIDRIDER_DATA_DIR": str(tmp_path), "GRIDRIDER_SESSION_SECRET": "e" * 40})
    found = resolve_secrets(settings, generate=True)
    assert "session_secret" not in found
    assert not (tmp_path / "secrets" / "session_secret").exists()


def test_a_deployment_without_secrets_fails_fast(tmp_path):
    settings = load_settings({"GRIDRIDER_DATA_DIR": str(tmp_path), "DATABASE_URL": "postgresql://db/gr"})
    with pytest.raises(SettingsError, match="GRIDRIDER_SESSION_SECRET"):
        resolve_secrets(settings, generate=False)


async def test_embedded_redis_answers_and_stops(tmp_path):
    from redis.asyncio import Redis

    server = EmbeddedRedis(tmp_path)
    url = await asyncio.to_thread(server.start)
    client = Redis.from_url(url)
    try:
        assert await client.ping()
        assert await client.config_get("save") == {"save": ""}  # nothing kept on disk
    finally:
        await client.aclose()
        server.stop()
    assert server.process is None
