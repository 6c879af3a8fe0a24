"""Fuzz the worker's decode-and-rebuild with atheris, seeded by the hostile corpus; replay what it found.

The run happens in a subprocess (tests/images/fuzz_target.py: atheris.Setup/Fuzz own the process and
leave through sys.exit), in-process there so atheris sees coverage, under the limits the photo job's
sandbox has (measured in a real sandbox child and compared before the first input). At least
FUZZ_RUNS executions, bounded in time; executions and executions/s are printed at the end of the
session (tests/images/conftest.py).

Any input that crashed, hung or leaked a payload is copied to tests/images/regressions/ (small files,
to commit) and the test fails; `test_regression_case_is_handled_cleanly` replays every file there
through intake's sniffing and the worker's sandbox, like a corpus item, from then on.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gridrider.images.sandbox import PhotoSandbox
from tests.images import fuzz_target
from tests.images.conftest import FUZZ_STATS
from tests.images.hostile_corpus import corpus
from tests.images.test_hostile_photos import normalised_in

ROOT = Path(__file__).resolve().parents[2]
REGRESSIONS = Path(__file__).resolve().parent / "regressions"
# The floor for CI. ~190-380 executions/s on this 2-core machine (the lower figure with the
# rest of the suite running beside it): 20,000 runs take 1-2 minutes.
FUZZ_RUNS = int(os.environ.get("GRIDRIDER_FUZZ_RUNS", "20000"))
# libFuzzer stops by itself after this, between inputs; the subprocess is killed a minute later at
# the latest (one input may take up to the sandbox's CPU limit). Together within the 4-minute bound.
FUZZ_MAX_TOTAL_S = int(os.environ.get("GRIDRIDER_FUZZ_SECONDS", "170"))
# libFuzzer's names for what it writes: a crash or uncaught exception, a run over -timeout, a run
# over -rss_limit_mb, a leak. (slow-unit-* files are reports, not findings.)
FINDINGS = ("crash-", "timeout-", "oom-", "leak-")


def regression_files() -> list:
    found = sorted(path for path in REGRESSIONS.glob("*") if path.is_file() and path.suffix == ".bin")
    return [pytest.param(path, id=path.name) for path in found] or [
        pytest.param(None, id="none-yet", marks=pytest.mark.skip(reason="no fuzzing regression saved yet"))
    ]


def write_seeds(folder: Path) -> int:
    folder.mkdir()
    seeds = [item for item in corpus() if item.seed]
    for item in seeds:
        (folder / item.name.replace("/", "_")).write_bytes(item.data)
    return len(seeds)


def save_findings(artifacts: Path) -> list[str]:
    """Copy what libFuzzer wrote as findings into regressions/, named by content; their descriptions."""
    saved = []
    for artifact in sorted(artifacts.iterdir()):
        if artifact.name.startswith(FINDINGS):
            data = artifact.read_bytes()
            kind = artifact.name.split("-")[0]
            target = REGRESSIONS / f"{kind}-{hashlib.sha1(data).hexdigest()[:16]}.bin"  # a name, not a signature
            REGRESSIONS.mkdir(exist_ok=True)
            shutil.copyfile(artifact, target)
            saved.append(f"{target.relative_to(ROOT)} ({len(data)} bytes)")
    return saved


@pytest.mark.fuzz
async def test_atheris_run_over_normalise_finds_no_crash_hang_or_leak(
    job_sandbox: PhotoSandbox, tmp_path: Path, record_property,
) -> None:
    pytest.importorskip("atheris", reason="atheris is not installed (pip install -r requirements-test.lock)")
    seeds, artifacts = tmp_path / "seeds", tmp_path / "artifacts"
    seed_count = await asyncio.to_thread(write_seeds, seeds)
    artifacts.mkdir()
    limits = await job_sandbox.run(fuzz_target.pillow_limits, b"")  # measured in the job's own sandbox child

    command = [
        sys.executable, "-m", "tests.images.fuzz_target", str(seeds), "--artifacts", str(artifacts),
        "--limits", json.dumps(limits), "--memory-mb", str(job_sandbox.memory_mb),
        "--cpu-seconds", str(job_sandbox.cpu_seconds), "--",
        f"-runs={FUZZ_RUNS}", f"-max_total_time={FUZZ_MAX_TOTAL_S}",
        f"-timeout={math.ceil(job_sandbox.timeout_s)}", "-print_final_stats=1", "-seed=20261127",
    ]
    # In a thread: the run takes minutes, and the event loop the tests share need not stand still.
    done = await asyncio.to_thread(subprocess.run, command, cwd=ROOT, capture_output=True, text=True,
                                   errors="replace", timeout=FUZZ_MAX_TOTAL_S + 60, check=False)
    output = done.stdout + done.stderr
    saved = await asyncio.to_thread(save_findings, artifacts)

    executed = re.search(r"stat::number_of_executed_units:\s*(\d+)", output)
    rate = re.search(r"stat::average_exec_per_sec:\s*(\d+)", output)
    seconds = re.search(r"Done \d+ runs in (\d+) second", output)
    stats = (f"{executed.group(1) if executed else '?'} executions in {seconds.group(1) if seconds else '?'} s, "
             f"{rate.group(1) if rate else '?'} executions/s, from {seed_count} corpus seeds, "
             f"exit {done.returncode}")
    record_property(FUZZ_STATS, stats)
    print(f"photo fuzzing: {stats}")

    assert not saved, ("the fuzzer found inputs the worker must survive; saved as regression cases:\n"
                       + "\n".join(saved) + "\n" + output[-6000:])
    assert done.returncode == 0, output[-6000:]
    assert executed is not None and int(executed.group(1)) >= FUZZ_RUNS, (
        f"only {stats} within {FUZZ_MAX_TOTAL_S} s\n" + output[-3000:])


@pytest.mark.parametrize("path", regression_files())
async def test_regression_case_is_handled_cleanly(job_sandbox: PhotoSandbox, path: Path) -> None:
    data = await asyncio.to_thread(path.read_bytes)
    # Intake's sniffing runs in the API's process; here in a sandbox child, so a native crash fails
    # this test instead of ending the test run.
    intake = await job_sandbox.run(fuzz_target.sniff_outcome, data)
    assert intake == "accepted" or intake.startswith("photo_"), intake
    assert await normalised_in(job_sandbox, data)  # a derivative checked clean, or a clean failure


@pytest.mark.fuzz
async def test_the_harness_refuses_to_fuzz_under_other_limits(job_sandbox: PhotoSandbox, tmp_path: Path) -> None:
    pytest.importorskip("atheris", reason="atheris is not installed (pip install -r requirements-test.lock)")
    limits = await job_sandbox.run(fuzz_target.pillow_limits, b"")
    other = {**limits, "Image.MAX_IMAGE_PIXELS": None}  # as if someone switched Pillow's bomb check off
    command = [sys.executable, "-m", "tests.images.fuzz_target", str(tmp_path), "--artifacts", str(tmp_path),
               "--limits", json.dumps(other), "--memory-mb", str(job_sandbox.memory_mb), "--cpu-seconds", "1",
               "--", "-runs=1"]
    done = await asyncio.to_thread(subprocess.run, command, cwd=ROOT, capture_output=True, text=True, timeout=120,
                                   check=False)
    assert done.returncode == 3 and "limits differ" in done.stderr, done.stderr[-2000:]
