"""Security suites of issue 12: the authorisation matrix and schema fuzzing."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # Registered here rather than in pyproject.toml so this suite stays self-contained.
    config.addinivalue_line(
        "markers", "fuzz: schema-driven fuzzing; bounded for CI, GRIDRIDER_FUZZ_EXAMPLES raises the bound for a soak")
