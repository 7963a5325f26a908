"""pytest's header says which hypothesis profile the property tests run, and how many examples."""

from __future__ import annotations

import os

import pytest


def pytest_report_header(config: pytest.Config) -> str:
    profile = os.environ.get("HYPOTHESIS_PROFILE", "ci")
    seed = config.getoption("hypothesis_seed", default=None)
    drawn = f"seed {seed}" if seed is not None else ("derandomized" if profile == "ci" else "random seeds")
    return f"tests/hostile: hypothesis profile {profile!r} ({drawn}); see test_properties.py for the counts"
