"""The model x dataset x variant x seed grid behind `run --all` and `ablate`: resumable (a finished run is found
again by config hash + seed and reused), one bar for the grid (models show their own per-run bars), a summary."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from eager_bench.config import DEFAULT_VARIANT
from eager_bench.errors import BenchError
from eager_bench.runner import RunOutcome, RunSpec, planned_path, run

SUMMARY_METRICS = ("Recall@5", "NDCG@5", "Recall@10", "NDCG@10")
log = logging.getLogger("eager_bench")


@dataclass
class GridItem:
    spec: RunSpec
    path: Path
    cached: bool

    @property
    def label(self) -> str:
        s = self.spec
        return f"{s.model}/{s.variant} on {s.dataset} ({s.profile}) seed {s.seed}"


def plan(models: list[str], datasets: list[str], seeds: list[int], profile: str, results_dir: Path,
         variants: list[str] | None = None, overrides: dict[str, Any] | None = None) -> list[GridItem]:
    """Every run of the grid with its result path; a path that exists is a finished run (same config and seed).

    Resolving each config here means an unknown model, variant or bad config fails before anything trains.
    """
    items = []
    for dataset in datasets:
        for model in models:
            for variant in variants or [DEFAULT_VARIANT]:
                for seed in seeds:
                    spec = RunSpec(model=model, dataset=dataset, profile=profile, seed=seed, variant=variant,
                                   overrides=overrides)
                    path = planned_path(spec, results_dir)
                    items.append(GridItem(spec, path, path.exists()))
    return items


def dry_run_table(items: list[GridItem]) -> Table:
    cached = sum(item.cached for item in items)
    table = Table(title=f"{len(items)} run(s): {cached} cached, {len(items) - cached} to run")
    for column in ("dataset", "model", "variant", "profile", "seed", "state", "result file"):
        table.add_column(column)
    for item in items:
        s = item.spec
        table.add_row(s.dataset, s.model, s.variant, s.profile, str(s.seed), "cached" if item.cached else "to run",
                      str(item.path))
    return table


def run_grid(items: list[GridItem], results_dir: Path, data_dir: Path | None, device: str, force: bool,
             console: Console, executor: Callable[..., RunOutcome] = run,
             keep_going: bool = False) -> list[RunOutcome]:
    """Run (or reuse) every item in order. With `keep_going` a failed run is logged, the rest still run, and a
    BenchError naming every failure is raised at the end."""
    outcomes: list[RunOutcome] = []
    failures: list[str] = []
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        task = progress.add_task("grid", total=len(items))
        for item in items:
            progress.update(task, description=item.label)
            start = time.perf_counter()
            try:
                outcome = executor(item.spec, data_dir=data_dir, results_dir=results_dir, force=force,
                                   device=device, show_progress=True)
            except BenchError as exc:
                if not keep_going:
                    raise
                failures.append(f"{item.label}: {exc}")
                progress.console.log(f"[red]{item.label}: failed[/] ({exc})")
                progress.advance(task)
                continue
            state = "cached" if outcome.cached else f"{time.perf_counter() - start:.0f}s"
            progress.console.log(f"{item.label}: {state} -> {outcome.path}")
            outcomes.append(outcome)
            progress.advance(task)
        progress.update(task, description="grid")
    if failures:
        raise BenchError(f"{len(failures)} of {len(items)} run(s) failed: " + "; ".join(failures))
    return outcomes


def _short(metric: str) -> str:
    return metric.replace("Recall", "R").replace("NDCG", "N")


def summary_table(outcomes: list[RunOutcome]) -> Table:
    """Compact enough for an 80-column CI log: profile in the title, variant beside the model."""
    fresh = sum(not o.cached for o in outcomes)
    profiles = sorted({o.record["profile"] for o in outcomes})
    title = f"test, {', '.join(profiles) or '-'}: {fresh} trained, {len(outcomes) - fresh} reused"
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), collapse_padding=True, pad_edge=False, title=title)
    for column in ("dataset", "model", "seed", *map(_short, SUMMARY_METRICS), "train s", "state"):
        table.add_column(column, justify="left" if column in ("dataset", "model", "state") else "right",
                         overflow="fold")
    for outcome in sorted(outcomes, key=lambda o: (o.record["dataset"], o.record["model"], o.record["variant"],
                                                   o.record["seed"])):
        rec: dict[str, Any] = outcome.record
        test = rec["metrics"]["test"]
        train_s = rec.get("timing", {}).get("train_s")
        model = rec["model"] if rec["variant"] == DEFAULT_VARIANT else f"{rec['model']}/{rec['variant']}"
        table.add_row(rec["dataset"], model, str(rec["seed"]), *(f"{test[m]:.4f}" for m in SUMMARY_METRICS),
                      "" if train_s is None else f"{train_s:.0f}", "cached" if outcome.cached else "new")
    return table
