"""Shared fixtures: the data directory (../shared/data beside the checkout, or EAGER_BENCH_DATA), isolated caches."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path:
    return Path(os.environ.get("EAGER_BENCH_DATA") or REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = shared_data_dir()
    if not (path / "Beauty" / "Beauty.txt").is_file():
        pytest.fail(f"benchmark data not found at {path}: set EAGER_BENCH_DATA")
    return path


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Runs and caches of a test go to a temporary EAGER_BENCH_HOME unless the test suite shares one on purpose."""
    home = Path(os.environ.get("EAGER_BENCH_TEST_HOME") or tmp_path_factory.getbasetemp() / "home")
    monkeypatch.setenv("EAGER_BENCH_HOME", str(home))
    return home
