"""Shared fixtures. `../shared/data` (real GLUE files and corpus text) sits beside the repo."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def _quiet_progress(monkeypatch):
    # Progress bars and logs stay quiet in tests, as under CI.
    monkeypatch.setenv("CI", os.environ.get("CI", "true"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_DATA} (clone the repo beside shared/)")
    return SHARED_DATA
