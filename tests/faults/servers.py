"""Servers the fault suite owns and breaks: a PostgreSQL cluster it can stop with `-m immediate`, a Redis it
can `SHUTDOWN NOSAVE`, and a TCP proxy in front of each that can swallow traffic for a while (a blackhole).

Nothing here is shared with the rest of the suite: every fault test starts its own, on free loopback ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from gridrider.embedded import EmbeddedRedis, free_loopback_port


class PostgresServer:
    """A PostgreSQL cluster from the `pgserver` wheel's binaries, on a TCP port that survives restarts."""

    def __init__(self) -> None:
        # Not under pytest's temporary folder: as root, the server runs as pgserver's own user, who must be
        # able to reach its data directory, and every new pytest session makes /tmp/pytest-of-root 0700
        # again (a session started beside a running soak locked its PostgreSQL out). A short path also keeps
        # the Unix socket under its ~107-byte limit.
        self.root = Path(tempfile.mkdtemp(prefix="gr-faults-pg-"))
        self.root.chmod(0o755)
        self.pgdata = self.root / "pgdata"
        self.port = free_loopback_port()
        self.socket_dir = self.root / "socket"
        self.socket_dir.mkdir()
        self.socket_dir.chmod(0o777)
        self.log = self.root / "postgres.log"
        self.system_user: str | None = None

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def init(self) -> None:
        """initdb (pgserver knows how to do that as a non-root user when we are root), then start on our port."""
        import pgserver

        # pgserver initialises the cluster and starts it on a socket of its own; we stop that and run it ourselves.
        server = pgserver.get_server(self.pgdata, cleanup_mode=None)
        self.system_user = server.system_user
        self._pg_ctl("-m", "fast", "-w", "stop")
        if self.system_user is not None:
            shutil.chown(self.root, self.system_user)
            self.log.touch()
            shutil.chown(self.log, self.system_user)
        self.start()

    def start(self) -> None:
        options = (f"-h 127.0.0.1 -p {self.port} -k {self.socket_dir} -c max_connections=200 "
                   "-c shared_buffers=64MB")
        self._pg_ctl("-w", "-t", "60", "-o", options, "-l", str(self.log), "start")

    def stop(self, mode: str = "fast") -> None:
        """`immediate`: every server process quits at once without a checkpoint, as a crash would."""
        self._pg_ctl("-m", mode, "-w", "stop")

    def running(self) -> bool:
        return subprocess.run([self._bin("pg_ctl"), "-D", str(self.pgdata), "status"], user=self.system_user,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):
            if self.running():
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    @staticmethod
    def _bin(name: str) -> str:
        from pgserver._commands import POSTGRES_BIN_PATH

        return str(POSTGRES_BIN_PATH / name)

    def _pg_ctl(self, *args: str) -> None:
        done = subprocess.run([self._bin("pg_ctl"), "-D", str(self.pgdata), *args], user=self.system_user,
                              capture_output=True, text=True, timeout=90)
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl {' '.join(args)}: exit {done.returncode}: {done.stdout} {done.stderr}")


class RedisServer(EmbeddedRedis):
    """The embedded redis-server (no persistence, as ours in production keeps the queue only as a cache of the
    job table), restartable on the same port after `SHUTDOWN NOSAVE`."""

    def shutdown_nosave(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), 2) as sock:
            sock.sendall(b"SHUTDOWN NOSAVE\r\n")
            with contextlib.suppress(OSError):
                sock.recv(64)
        assert self.process is not None
        self.process.wait(10)
        self.process = None


class BlackholeProxy:
    """A TCP proxy on 127.0.0.1 in a thread of its own. `blackhole(s)` makes it swallow traffic for s seconds
    in both directions and leave new connections unanswered, as a dropped route does: nothing is refused or
    reset, bytes just stop arriving, and what was sent arrives late once the route is back (TCP's retransmits)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self._until = 0.0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="blackhole-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> int:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._on_connection, "127.0.0.1", 0), self._loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def blackhole(self, seconds: float) -> None:
        self._until = time.monotonic() + seconds

    def close(self) -> None:
        async def stop() -> None:
            assert self._server is not None
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _hold(self) -> None:
        while time.monotonic() < self._until:
            await asyncio.sleep(0.02)

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._hold()
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            except OSError:
                writer.close()
                return
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer),
                                 return_exceptions=True)
        finally:
            writer.close()
            self._tasks.discard(task)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self._hold()
                writer.write(data)
                await writer.drain()
        finally:
            with contextlib.suppress(OSError):
                writer.close()

