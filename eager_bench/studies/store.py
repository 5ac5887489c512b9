"""Find-or-run for study points: a point already in the main result store (e.g. the leaderboard's own run) or in
the study store (<results>/studies, kept apart so study variations never enter the leaderboard) is reused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eager_bench import settings
from eager_bench.results import read_run
from eager_bench.runner import RunSpec, planned_path, run


def study_root(results_dir: Path | None) -> Path:
    return settings.results_dir(results_dir) / "studies"


def cached_path(spec: RunSpec, results_dir: Path | None) -> Path | None:
    """Where the point's result file is stored (the main store first), or None."""
    for root in (settings.results_dir(results_dir), study_root(results_dir)):
        path = planned_path(spec, root)
        if path.exists():
            return path
    return None


def cached_record(spec: RunSpec, results_dir: Path | None) -> dict[str, Any] | None:
    path = cached_path(spec, results_dir)
    return None if path is None else read_run(path)


def find_or_run(spec: RunSpec, results_dir: Path | None, data_dir: Path | None, device: str = "cpu",
                execute: bool = True) -> dict[str, Any] | None:
    """The point's result record; None when it is not stored and `execute` is False."""
    hit = cached_record(spec, results_dir)
    if hit is not None or not execute:
        return hit
    return run(spec, data_dir=data_dir, results_dir=study_root(results_dir), device=device,
               show_progress=False).record


