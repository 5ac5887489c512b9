"""The model x dataset x seed grid behind `run --all`: resumable (finished runs are cached), one bar for the grid."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from eager_bench.config import DEFAULT_VARIANT
from eager_bench.runner import RunOutcome, RunSpec, planned_path, run

SUMMARY_METRICS = ("Recall@5", "NDCG@5", "Recall@10", "NDCG@10")


@dataclass
class GridItem:
    spec: RunSpec
    path: Path
    cached: bool


def plan(models: list[str], datasets: list[str], seeds: list[int], profile: str, results_dir: Path,
         variants: list[str] | None = None) -> list[GridItem]:
    items = []
    for dataset in datasets:
        for model in models:
            for variant in variants or [DEFAULT_VARIANT]:
                for seed in seeds:
                    spec = RunSpec(model=model, dataset=dataset, profile=profile, seed=seed, variant=variant)
                    path = planned_path(spec, results_dir)
                    items.append(GridItem(spec, path, path.exists()))
    return items


def run_grid(items: list[GridItem], results_dir: Path, data_dir: Path | None, device: str, force: bool,
             console: Console, executor: Callable[..., RunOutcome] = run) -> list[RunOutcome]:
    outcomes = []
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        task = progress.add_task("grid", total=len(items))
        for item in items:
            label = f"{item.spec.model}/{item.spec.variant} on {item.spec.dataset} seed {item.spec.seed}"
            progress.update(task, description=label)
            start = time.perf_counter()
            outcome = executor(item.spec, data_dir=data_dir, results_dir=results_dir, force=force, device=device,
                               show_progress=True)
            state = "cached" if outcome.cached else f"{time.perf_counter() - start:.0f}s"
            progress.console.log(f"{label}: {state} -> {outcome.path}")
            outcomes.append(outcome)
            progress.advance(task)
    return outcomes


def summary_table(outcomes: list[RunOutcome]) -> Table:
    table = Table(title="test metrics (full ranking)")
    for column in ("dataset", "model", "variant", "seed", *SUMMARY_METRICS, "cached"):
        table.add_column(column)
    for outcome in outcomes:
        rec: dict[str, Any] = outcome.record
        test = rec["metrics"]["test"]
        table.add_row(rec["dataset"], rec["model"], rec["variant"], str(rec["seed"]),
                      *(f"{test[m]:.4f}" for m in SUMMARY_METRICS), "yes" if outcome.cached else "")
    return table
