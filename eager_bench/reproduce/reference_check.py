"""Reproduce step 1 (no training): committed full-size results against the papers' reported numbers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from eager_bench.config import DEFAULT_VARIANT
from eager_bench.report.collect import collect_runs
from eager_bench.report.reference import Reported
from eager_bench.reproduce.config import ReproduceConfig, RelTolerance
from eager_bench.report.stats import t_interval


@dataclass
class ReferenceRow:
    model: str
    dataset: str
    profile: str
    metric: str
    paper: Reported
    ours: float | None  # None: no committed result for this cell
    n_seeds: int
    tolerance: RelTolerance

    @property
    def ratio(self) -> float | None:
        return None if self.ours is None or self.paper.value == 0 else self.ours / self.paper.value

    @property
    def within(self) -> bool | None:
        if self.ratio is None:
            return None
        return abs(self.ratio - 1.0) <= self.tolerance.relative + 1e-12

    @property
    def name(self) -> str:
        return f"{self.model} {self.metric} on {self.dataset} ({self.profile})"


def reference_rows(results_dir: Path, reference: dict[tuple[str, str, str], Reported], config: ReproduceConfig,
                   profiles: list[str] | None = None, relative: float | None = None) -> list[ReferenceRow]:
    """One row per (reported cell, profile with results of that model); reported cells without any result of
    that model and dataset are listed once with `ours` None so the table shows what is missing."""
    profiles = profiles or config.reference_profiles
    runs = [r for r in collect_runs(results_dir, profiles) if r.key.variant == DEFAULT_VARIANT]
    grouped: dict[tuple[str, str, str], list[float]] = {}
    for run in runs:
        for metric, value in run.test_metrics.items():
            grouped.setdefault((run.key.model, run.key.dataset, run.key.profile, metric), []).append(value)
    rows = []
    for (model, dataset, metric), paper in sorted(reference.items()):
        found = False
        for profile in profiles:
            values = grouped.get((model, dataset, profile, metric))
            if not values:
                continue
            found = True
            tol = config.reference_tolerance(model, dataset, profile, metric)
            if relative is not None:
                tol = RelTolerance(relative, "--tolerance on the command line")
            rows.append(ReferenceRow(model, dataset, profile, metric, paper, t_interval(values).mean, len(values), tol))
        if not found:
            rows.append(ReferenceRow(model, dataset, "/".join(profiles), metric, paper, None, 0,
                                     config.reference_tolerance(model, dataset, profiles[0], metric)))
    return rows
