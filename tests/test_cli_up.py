"""`gridrider up` on a fresh data dir: embedded servers, demo data, ready, Ctrl-C stops everything."""

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import asyncpg
import psutil
import pytest

from gridrider.embedded import free_loopback_port

pytestmark = pytest.mark.slow


class Up:
    """A running `gridrider up --demo`, its terminal output collected as it comes."""

    def __init__(self, data_dir, port) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env.update(GRIDRIDER_DATA_DIR=str(data_dir), GRIDRIDER_PORT=str(port))
        self.port = port
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gridrider", "up", "--demo"], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self.lines.extend(self.process.stdout), daemon=True)
        self._reader.start()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        """Until the terminal says it is up, and /readyz agrees."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output
            if "gridrider is up" in self.output:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=5) as reply:
                    assert reply.status == 200
                return
            time.sleep(0.1)
        raise AssertionError(f"gridrider up never became ready:\n{self.output}")

    def ctrl_c(self) -> str:
        os.killpg(self.process.pid, signal.SIGINT)  # what a terminal sends to the whole foreground group
        self.process.wait(60)
        self._reader.join(10)
        return self.output


def _everything_it_started(up: Up, data_dir) -> set[int]:
    pids = {p.pid for p in psutil.Process(up.process.pid).children(recursive=True)}
    postmaster = data_dir / "pg" / "postmaster.pid"
    pids.add(int(postmaster.read_text().split()[0]))  # pg_ctl detaches the postmaster from us
    return pids


def _count_areas(data_dir) -> int:
    async def count() -> int:
        conn = await asyncpg.connect(f"postgresql://postgres@/gridrider?host={data_dir / 'pg'}")
        try:
            return await conn.fetchval("SELECT count(*) FROM areas")
        finally:
            await conn.close()

    return asyncio.run(count())


def test_up_twice_keeps_the_data_and_ctrl_c_leaves_nothing_running(tmp_path):
    data_dir = tmp_path / "var"
    port = free_loopback_port()

    first = Up(data_dir, port)
    first.wait_ready()
    started = _everything_it_started(first, data_dir)
    assert _count_areas(data_dir) == 154
    output = first.ctrl_c()
    assert first.process.returncode == 0, output
    assert "demo: seeded 154 areas (136 grids)" in output
    time.sleep(0.5)
    assert [pid for pid in started if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"] == []

    second = Up(data_dir, port)
    second.wait_ready()
    assert _count_areas(data_dir) == 154
    output = second.ctrl_c()
    assert "already has areas or members; nothing seeded" in output
    assert "Traceback" not in output
