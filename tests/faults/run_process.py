"""`gridrider api` / `gridrider worker` as the fault suite runs them: the product's own app and worker, built
from the environment like the CLI builds them, with three things only a test may inject:

- the clock: system time plus the offset (seconds) in the file FAULTS_CLOCK_FILE, re-read every 0.2 s, so a
  test can make every process's clock jump a day at once, as a host whose time is corrected does;
- the outbound network: the test's local push service (its host resolves to 127.0.0.1:FAULTS_PUSH_PORT and
  its CA in FAULTS_PUSH_CA is trusted), as `tests/push/conftest.py` does in-process;
- a photo that kills every decoder: bytes carrying FAULTS_DECODER_KILLER make the sandbox's child die of
  SIGSEGV, the way a decoder bug would, each time it is tried.

Usage: python -m tests.faults.run_process api|default|photos
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import ssl
import sys
import time
from pathlib import Path

DECODER_KILLER = b"FAULTS-DECODER-KILLER"


class OffsetClock:
    """The system clock moved by the number of seconds in a file (0 when the file is missing)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._offset = dt.timedelta()
        self._read_at = 0.0

    def now(self) -> dt.datetime:
        if time.monotonic() - self._read_at > 0.2:
            with contextlib.suppress(OSError, ValueError):
                self._offset = dt.timedelta(seconds=float(self._path.read_text() or 0))
            self._read_at = time.monotonic()
        return dt.datetime.now(dt.UTC) + self._offset


def push_network():
    from gridrider.push.network import PushNetwork

    host, port = os.environ["FAULTS_PUSH_HOST"], int(os.environ["FAULTS_PUSH_PORT"])

    async def resolve(name: str, wanted: int) -> list[tuple[str, int]]:
        if name == host and wanted == 443:
            return [("127.0.0.1", port)]
        raise OSError(f"{name} is not known in this test")

    return PushNetwork(resolve=resolve, address_allowed=lambda a: a == ipaddress.ip_address("127.0.0.1"),
                       ssl_context=ssl.create_default_context(cafile=os.environ["FAULTS_PUSH_CA"]),
                       extra_hosts=frozenset({host}))


def arm_decoder_killer() -> None:
    from gridrider.images import sandbox

    real_normalise = sandbox.PhotoSandbox.normalise

    async def normalise(self, data: bytes):
        if DECODER_KILLER in data:
            return await self.run(sandbox._crash_for_tests, data)
        return await real_normalise(self, data)

    sandbox.PhotoSandbox.normalise = normalise


def main(role: str) -> int:
    from gridrider.cli import _load, resolve_runtime

    settings = resolve_runtime(_load(), allow_embedded=False).settings
    clock = OffsetClock(Path(os.environ["FAULTS_CLOCK_FILE"]))
    network = push_network()
    if role == "api":
        import uvicorn

        from gridrider.app import create_app

        uvicorn.run(create_app(settings, clock=clock, push_network=network), host=settings.host, port=settings.port,
                    log_config=None, access_log=False, proxy_headers=True, server_header=False,
                    timeout_graceful_shutdown=5)
        return 0
    from gridrider.cli import use_uvloop
    from gridrider.jobs.queue import DEFAULT_QUEUE, PHOTOS_QUEUE
    from gridrider.jobs.worker import run_worker

    arm_decoder_killer()
    use_uvloop()
    queue = {"default": DEFAULT_QUEUE, "photos": PHOTOS_QUEUE}[role]
    run_worker(settings, queue=queue, clock=clock, push_network=network)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
