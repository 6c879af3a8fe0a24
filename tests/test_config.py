import os
import subprocess
import sys
from pathlib import Path

import pytest

from gridrider.config import SettingsError, load_settings


def test_defaults_listen_on_loopback_and_derive_the_public_url():
    settings = load_settings({})
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.public_url == "http://127.0.0.1:8000"
    assert settings.data_dir == Path("./var")
    assert settings.database_url is None and settings.redis_url is None


def test_environment_values_are_parsed():
    settings = load_settings({
        "DATABASE_URL": "postgresql://u:p@db:5432/gr", "REDIS_URL": "redis://cache:6379/2",
        "GRIDRIDER_PORT": "9000", "GRIDRIDER_PUBLIC_URL": "https://grid.example.cn/", "GRIDRIDER_DATA_DIR": "/srv/gr",
    })
    assert settings.port == 9000
    assert settings.public_url == "https://grid.example.cn"
    assert settings.data_dir == Path("/srv/gr")


def test_a_read_replica_is_optional():
    assert load_settings({"DATABASE_URL": "postgresql://u:p@db:5432/gr"}).database_replica_url is None
    settings = load_settings({"DATABASE_URL": "postgresql://u:p@db:5432/gr",
                              "DATABASE_REPLICA_URL": " postgresql://u:p@db-replica:5432/gr "})
    assert settings.database_replica_url == "postgresql://u:p@db-replica:5432/gr"


@pytest.mark.parametrize(
    ("env", "names", "says"),
    [
        ({"GRIDRIDER_PORT": "eighty"}, "GRIDRIDER_PORT", "whole number"),
        ({"GRIDRIDER_PORT": "70000"}, "GRIDRIDER_PORT", "between 1 and 65535"),
        ({"DATABASE_URL": "mysql://root@db/x"}, "DATABASE_URL", "postgres"),
        ({"DATABASE_URL": "postgresql://db/gr", "DATABASE_REPLICA_URL": "db-replica:5432"}, "DATABASE_REPLICA_URL",
         "postgres"),
        ({"DATABASE_REPLICA_URL": "postgresql://db-replica/gr"}, "DATABASE_REPLICA_URL", "needs DATABASE_URL"),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL", "redis"),
        ({"GRIDRIDER_PUBLIC_URL": "grid.example.cn"}, "GRIDRIDER_PUBLIC_URL", "http"),
        ({"GRIDRIDER_SESSION_SECRET": "short"}, "GRIDRIDER_SESSION_SECRET", "too short"),
        ({"GRIDRIDER_VAPID_PRIVATE_KEY": "not a pem"}, "GRIDRIDER_VAPID_PRIVATE_KEY", "PEM"),
        ({"GRIDRIDER_LOG_LEVEL": "loud"}, "GRIDRIDER_LOG_LEVEL", "debug, info"),
        ({"GRIDRIDER_JOB_BACKOFF_S": "-1"}, "GRIDRIDER_JOB_BACKOFF_S", "between 0 and 3600"),
        ({"GRIDRIDER_API_DB_POOL_SIZE": "1"}, "GRIDRIDER_API_DB_POOL_SIZE", "between 2 and 1000"),
        ({"GRIDRIDER_SESSION_SECRET_FILE": "/nonexistent/secret"}, "GRIDRIDER_SESSION_SECRET_FILE", "cannot read"),
    ],
)
def test_a_bad_value_names_the_setting_and_the_problem(env, names, says):
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    assert str(caught.value).startswith(names)
    assert says in str(caught.value)


def test_a_password_in_a_bad_url_is_not_echoed():
    with pytest.raises(SettingsError) as caught:
        load_settings({"DATABASE_URL": "mysql://admin:hunter2@db/x"})
    assert "hunter2" not in str(caught.value)


def test_secret_from_a_file(tmp_path):
    secret = tmp_path / "session"
    secret.write_text("k" * 40 + "\n")
    assert load_settings({"GRIDRIDER_SESSION_SECRET_FILE": str(secret)}).session_secret == "k" * 40


def test_server_urls_and_their_passwords_from_files(tmp_path):
    files = {}
    for name, url in (("DATABASE_URL", "postgresql://gr:s3cret@db/gr"),
                      ("DATABASE_REPLICA_URL", "postgresql://gr:s3cret@replica/gr"),
                      ("REDIS_URL", "redis://:s3cret@redis:6379/0")):
        (tmp_path / name).write_text(url + "\n")
        files[f"{name}_FILE"] = str(tmp_path / name)
    settings = load_settings(files)
    assert (settings.database_url, settings.database_replica_url, settings.redis_url) == (
        "postgresql://gr:s3cret@db/gr", "postgresql://gr:s3cret@replica/gr", "redis://:s3cret@redis:6379/0")
    # The variable itself wins over its file; a bad URL in a file is refused like one in the variable.
    assert load_settings({**files, "REDIS_URL": "redis://other:6379/1"}).redis_url == "redis://other:6379/1"
    (tmp_path / "REDIS_URL").write_text("redis-host:6379")
    with pytest.raises(SettingsError, match=r"^REDIS_URL: expected a redis"):
        load_settings(files)


def test_the_command_fails_with_one_line_and_no_traceback(tmp_path):
    env = {**os.environ, "GRIDRIDER_PORT": "not-a-port", "GRIDRIDER_DATA_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "gridrider", "migrate"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "gridrider: setting error: GRIDRIDER_PORT: expected a whole number, got 'not-a-port'"
    ]
    assert "Traceback" not in result.stderr + result.stdout


def test_every_setting_is_listed_in_env_example():
    from gridrider.config import _ENV

    example = (Path(__file__).parents[1] / "deploy" / "env.example").read_text()
    for name in _ENV:
        assert f"{name}=" in example, name
