"""`gridrider bench <name>`: benchmarks that print the machine, their fixed load and their figures.

They live outside `make test` (speed goals are measured, never asserted in tests). Each one uses
DATABASE_URL / REDIS_URL when set, else the embedded servers in a throw-away data dir.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable

BENCHES: dict[str, Callable[[list[str]], int]] = {}


def bench(name: str) -> Callable[[Callable[[list[str]], int]], Callable[[list[str]], int]]:
    def register(fn: Callable[[list[str]], int]) -> Callable[[list[str]], int]:
        BENCHES[name] = fn
        return fn

    return register


def machine_line() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"machine: {model}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def run_bench(name: str, rest: list[str]) -> int:
    from gridrider.bench import images, intake, jobs, merge  # noqa: F401  (registers their benches)

    if name in ("--list", "list"):
        print(" ".join(sorted(BENCHES)))
        return 0
    if name not in BENCHES:
        print(f"unknown bench {name!r}; known: {', '.join(sorted(BENCHES))}")
        return 2
    return BENCHES[name](rest)
