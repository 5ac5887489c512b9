"""Find-or-run for study points: a point already in the main result store (e.g. the leaderboard's own run) or in
the study store (<results>/studies, kept apart so study variations never enter the leaderboard) is reused."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from eager_bench import settings
from eager_bench.errors import BenchError
from eager_bench.results import read_run
from eager_bench.runner import RunOutcome, RunSpec, planned_path, prepare, run


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


def stale_outcome(spec: RunSpec, results_dir: Path | None) -> tuple[RunOutcome, str] | None:
    """The point's closest result of an older config, with its differences as `key old -> today`, or None.

    Closest: same model, dataset, variant, profile and seed, and every key the point sets (`spec.overrides`: its
    knob and budget) equal to the point's, so only the model's own defaults have moved since; then the fewest
    differing keys, then the newest.

    For showing a study without re-running it (`--no-run`): such a point is marked stale wherever it is shown,
    never silently taken for today's config."""
    from eager_bench.config import hashed_config, model_spec
    from eager_bench.report.current import differences

    cls, config, _, run_id = prepare(spec)
    today = hashed_config(cls.config_file, config)
    neutral = dict(model_spec(cls.config_file)["hash_neutral"])
    prefix = run_id.rsplit("-", 1)[0] + "-"  # <variant>-<profile>-s<seed>-
    candidates: list[tuple[int, float, RunOutcome, list[str]]] = []
    for root in (settings.results_dir(results_dir), study_root(results_dir)):
        folder = planned_path(spec, root).parent
        for path in sorted(folder.glob(prefix + "*.json")) if folder.is_dir() else []:
            if path.stem == run_id:
                continue
            try:
                record = read_run(path)
            except BenchError:
                continue  # a damaged file is no stand-in; `report` names it
            diffs = differences(dict(record.get("config") or {}), today, neutral)
            if any(d.split(" ", 1)[0] in (spec.overrides or {}) for d in diffs):
                continue  # another point of the study (or another budget), not an older config of this one
            candidates.append((len(diffs), -_created(record), RunOutcome(path, record, cached=True), diffs))
    if not candidates:
        return None
    _, _, outcome, diffs = min(candidates, key=lambda c: (c[0], c[1], str(c[2].path)))
    return outcome, ", ".join(diffs) or "config hash differs (split protocol or variant)"


def _created(record: dict[str, Any]) -> float:
    """The record's creation time as a POSIX timestamp (0 when it has none)."""
    try:
        return datetime.fromisoformat(str(record["provenance"]["created"])).timestamp()
    except (KeyError, TypeError, ValueError):
        return 0.0
