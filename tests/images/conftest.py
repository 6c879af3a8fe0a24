"""The photo job's sandbox for the hostile-input tests, the `fuzz` marker, and a closing line that
says what the photo fuzzing run did (or that it did not run).

A skipped or passed test is one dot among thousands in CI's output; the fuzzing run's figures
(executions, executions/s) and, above all, a run that did not happen (atheris missing) must be seen.
The figures travel as the test's user_properties, which pytest-xdist carries back to the controller.
"""

from __future__ import annotations

import pytest

from gridrider.jobs.photos import SandboxHolder

FUZZ_STATS = "photo_fuzz"


@pytest.fixture(scope="module")
async def job_sandbox():
    """The sandbox the photo job makes (same class, same limits), started once per test module."""
    holder = SandboxHolder()
    await holder.warm_up()
    yield holder.get()
    await holder.close()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fuzz: a coverage-guided fuzzing run (atheris) in a subprocess")


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    lines = []
    for outcome in ("passed", "failed", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            nodeid = getattr(report, "nodeid", "")
            if "test_fuzz_photos.py" not in nodeid or getattr(report, "when", "call") not in ("call", "setup"):
                continue
            stats = dict(getattr(report, "user_properties", ())).get(FUZZ_STATS)
            if stats:
                lines.append(f"photo fuzzing ({outcome}): {stats}")
            elif outcome == "skipped" and "test_atheris" in nodeid:
                reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
                lines.append(f"photo fuzzing DID NOT RUN: {reason}")
    if lines:
        terminalreporter.write_sep("-", "photo fuzzing")
        for line in lines:
            terminalreporter.write_line(line)
