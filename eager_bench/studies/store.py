"""Find-or-run for study points: a point already in the main result store (e.g. the leaderboard's own run) or in
the study store (<results>/studies, kept apart so study variations never enter the leaderboard) is reused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eager_bench import settings
from eager_bench.results import read_run
from eager_bench.runner import RunOutcome, RunSpec, planned_path, run


def study_root(results_dir: Path | None) -> Path:
    return settings.results_dir(results_dir) / "studies"


def cached_outcome(spec: RunSpec, results_dir: Path | None) -> RunOutcome | None:
    """The point's stored result (the main store first), or None."""
    for root in (settings.results_dir(results_dir), study_root(results_dir)):
        path = planned_path(spec, root)
        if path.exists():
            return RunOutcome(path, read_run(path), cached=True)
    return None


def cached_record(spec: RunSpec, results_dir: Path | None) -> dict[str, Any] | None:
    hit = cached_outcome(spec, results_dir)
    return None if hit is None else hit.record


def find_or_run(spec: RunSpec, results_dir: Path | None, data_dir: Path | None, device: str = "cpu",
                execute: bool = True) -> RunOutcome | None:
    """The point's result file and record; None when it is not stored and `execute` is False."""
    hit = cached_outcome(spec, results_dir)
    if hit is not None or not execute:
        return hit
    return run(spec, data_dir=data_dir, results_dir=study_root(results_dir), device=device, show_progress=False)


