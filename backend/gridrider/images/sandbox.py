"""Run the photo pipeline in child processes with memory and CPU limits (DESIGN §2 step 4).

A hostile or broken file may make Pillow or libjpeg/libpng/libwebp crash, allocate without bound
or spin. It must cost that child process, never the worker: each photo runs in a child process
limited by RLIMIT_AS (address space; an allocation over it raises MemoryError in the child, which
becomes `PhotoFailed('out_of_memory')`), RLIMIT_CPU (CPU seconds for this photo; SIGXCPU ends it
with `PhotoFailed('cpu_limit')`) and a wall-clock timeout in the parent (the child is killed:
`PhotoFailed('timeout')`). A child that dies (a segfault, an abort, the kernel's OOM killer) gives
`PhotoFailed('decoder_crashed')`, and the next photo gets a fresh child.

Design:

- `workers` lanes, each a `ProcessPoolExecutor` of ONE 'spawn' process. A pool whose process dies
  fails every task it holds, so one shared pool of N processes would fail N-1 innocent photos along
  with the hostile one; one process per lane pins a crash or a timeout to its own photo.
- 'spawn', not 'fork': the worker has an event loop, threads and open sockets, none of which a
  forked child may touch. (forkserver would make replacements cheaper but is process-wide state.)
- A lane is started on first use (or by `start()`), with a call that returns the child's pid, so a
  timed-out child is killed by its own pid, and the photo's time does not include the start-up.
- RLIMIT_CPU counts a process's whole life, so each call sets the soft limit to the CPU used so
  far plus `cpu_seconds`, and lifts it again afterwards. SIGXCPU raises in the child (Pillow
  decodes in a Python loop, so it is seen within one chunk); a C loop that never returns to
  Python is ended by the wall-clock timeout instead. Core dumps are disabled.
- glibc's allocator is told to keep photo-sized buffers (`tune_allocator`): without it every
  photo page-faults its buffers in again, which costs 10-15 ms of CPU per photo here.

Cost: starting a lane (spawn + importing Pillow and this package) takes about 0.1-0.3 s of wall
time; sending a 12 MB photo and its results through the pipe a few ms. Keep the sandbox for the
worker's life (one per worker process) and call `start()` when the worker starts, so the first
photo and every photo after a crash do not wait for Python to start. `gridrider bench images`
prints the current figures.
"""

from __future__ import annotations

import asyncio
import ctypes
import math
import multiprocessing
import os
import resource
import signal
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from gridrider.images import pipeline
from gridrider.images.pipeline import NormalisedPhoto, PhotoFailed

T = TypeVar("T")


class SandboxUnavailable(RuntimeError):
    """The sandbox could not start a child process: the worker's problem, not the photo's (retry)."""


# ── in the child ────────────────────────────────────────────────────────────────────────────────


class _CpuLimitExceeded(BaseException):
    """Raised by the SIGXCPU handler; a BaseException so no `except Exception` in Pillow eats it."""


_in_call = False


def _on_sigxcpu(signum: int, frame: object) -> None:
    if _in_call:
        raise _CpuLimitExceeded


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def tune_allocator() -> bool:
    """Keep photo-sized buffers in the heap between photos; True when glibc took the settings.

    By default glibc serves every allocation over its (dynamic) mmap threshold with a fresh mmap and
    gives freed heap tops back to the kernel, so each photo's decode, resize and encode buffers
    page-fault in again: about 3,500 minor faults per photo, 10-15 ms of a 25 ms budget on this
    kind of VM. With allocations up to 32 MB (glibc's maximum threshold) served from the heap and up
    to 64 MB of free heap kept, a photo faults about 60 times. Memory is still returned past 64 MB
    free, so one huge photo does not pin hundreds of MB in the child.
    """
    try:
        libc = ctypes.CDLL(None)
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 64 << 20))
    except (OSError, AttributeError):  # not glibc
        return False


def _child_init(memory_mb: int) -> None:
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    tune_allocator()
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    signal.signal(signal.SIGXCPU, _on_sigxcpu)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle


def _child_pid() -> int:
    return os.getpid()


def _cpu_used() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _call(fn: Callable[[bytes], Any], data: bytes, cpu_seconds: int) -> Any:
    global _in_call
    _soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    budget = math.ceil(_cpu_used()) + cpu_seconds
    if hard != resource.RLIM_INFINITY:
        budget = min(budget, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (budget, hard))
    _in_call = True
    try:
        return fn(data)
    except _CpuLimitExceeded:
        raise PhotoFailed("cpu_limit", f"over {cpu_seconds} s of CPU") from None
    except MemoryError:
        raise PhotoFailed("out_of_memory") from None
    finally:
        _in_call = False
        resource.setrlimit(resource.RLIMIT_CPU, (hard, hard))


# Functions a test runs through `PhotoSandbox.run` to prove the worker survives its children.


def _crash_for_tests(data: bytes) -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


def _allocate_for_tests(data: bytes) -> int:
    hog = bytearray(4 * 1024 * 1024 * 1024)
    return len(hog)


def _spin_for_tests(data: bytes) -> None:
    while True:
        pass


# ── in the worker ───────────────────────────────────────────────────────────────────────────────


class _Lane:
    """One single-process pool, and a pidfd for its child so a kill can never hit a reused pid."""

    def __init__(self, pool: ProcessPoolExecutor, pid: int) -> None:
        self.pool = pool
        self.pid = pid
        self._pidfd: int | None = None
        try:
            self._pidfd = os.pidfd_open(pid)
        except (AttributeError, OSError):  # not Linux >= 5.3: fall back to the pid
            self._pidfd = None

    def kill(self) -> None:
        try:
            if self._pidfd is not None:
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            else:
                os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def close(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None


class PhotoSandbox:
    """`normalise` in child processes with memory, CPU and wall-clock limits; see the module docstring."""

    def __init__(
        self, *, memory_mb: int = 1024, cpu_seconds: int = 20, timeout_s: float = 30.0, workers: int = 1
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.memory_mb = memory_mb
        self.cpu_seconds = cpu_seconds
        self.timeout_s = timeout_s
        self.workers = workers
        self._idle: asyncio.Queue[_Lane | None] = asyncio.Queue()
        for _ in range(workers):
            self._idle.put_nowait(None)  # None: a lane not started yet, or one dropped after a failure
        self._busy: set[_Lane] = set()
        self._closed = False
        self.lanes_started = 0  # for tests and the bench
        self.last_start_s = 0.0  # wall seconds the last lane took to start

    async def start(self) -> None:
        """Start every lane now rather than on the first photos (worker start-up)."""
        lanes: list[_Lane | None] = [await self._idle.get() for _ in range(self.workers)]
        try:
            for index, lane in enumerate(lanes):
                if lane is None:
                    lanes[index] = await self._start_lane()
        finally:
            for lane in lanes:
                self._idle.put_nowait(lane)

    async def normalise(self, data: bytes) -> NormalisedPhoto:
        return await self.run(pipeline.normalise, data)

    async def run(self, fn: Callable[[bytes], T], data: bytes) -> T:
        """`fn(data)` in a child process; `fn` must be a module-level function.

        Raises PhotoFailed for the photo (including decoder_crashed, timeout, cpu_limit,
        out_of_memory) and SandboxUnavailable when no child could be started or the sandbox closed.
        """
        if self._closed:
            raise SandboxUnavailable("the photo sandbox is closed")
        lane = await self._idle.get()
        try:
            if self._closed:  # closed while this call waited for a lane
                raise SandboxUnavailable("the photo sandbox is closed")
            if lane is None:
                lane = await self._start_lane()
            self._busy.add(lane)
            future = asyncio.get_running_loop().run_in_executor(lane.pool, _call, fn, data, self.cpu_seconds)
            try:
                return await asyncio.wait_for(future, self.timeout_s)
            except TimeoutError:
                self._drop(lane, kill=True)
                lane = None
                raise PhotoFailed("timeout", f"over {self.timeout_s:g} s") from None
            except BrokenProcessPool:
                self._drop(lane, kill=False)  # its child is dead (and already reaped by the pool)
                lane = None
                if self._closed:
                    raise SandboxUnavailable("the photo sandbox was closed during the call") from None
                raise PhotoFailed("decoder_crashed") from None
            except _CpuLimitExceeded:  # SIGXCPU landed after the photo's own code had returned
                raise PhotoFailed("cpu_limit", f"over {self.cpu_seconds} s of CPU") from None
            except asyncio.CancelledError:
                # The caller gave up; the child would go on with this photo and hold up the next one.
                self._drop(lane, kill=True)
                lane = None
                raise
        finally:
            if lane is not None:
                self._busy.discard(lane)
                if self._closed:
                    self._drop(lane, kill=False)
                    lane = None
            self._idle.put_nowait(lane)

    async def close(self) -> None:
        """Stop the idle children (waiting for them) and kill the busy ones (their calls fail)."""
        self._closed = True
        for lane in list(self._busy):
            self._drop(lane, kill=True)
        idle: list[_Lane] = []
        while not self._idle.empty():
            lane = self._idle.get_nowait()
            if lane is not None:
                idle.append(lane)
        for lane in idle:
            await asyncio.to_thread(lane.pool.shutdown, wait=True)
            lane.close()

    async def _start_lane(self) -> _Lane:
        began = time.perf_counter()
        pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_child_init,
            initargs=(self.memory_mb,),
        )
        try:
            # The first call also imports this module in the child, and with it Pillow and the pipeline.
            pid = await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(pool, _child_pid), 60)
        except (BrokenProcessPool, TimeoutError) as exc:
            pool.shutdown(wait=False, cancel_futures=True)
            raise SandboxUnavailable("could not start a photo sandbox process") from exc
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        self.lanes_started += 1
        self.last_start_s = time.perf_counter() - began
        return _Lane(pool, pid)

    def _drop(self, lane: _Lane, *, kill: bool) -> None:
        self._busy.discard(lane)
        if kill:
            lane.kill()
        lane.pool.shutdown(wait=False, cancel_futures=True)
        lane.close()
