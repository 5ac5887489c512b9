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
from eager_bench.results import result_path
from eager_bench.runner import RunOutcome, RunSpec, prepare, run

SUMMARY_METRICS = ("Recall@5", "NDCG@5", "Recall@10", "NDCG@10")
OURS = "EAGER"  # its named variants are the ablation table's rows (`ablate`), not leaderboard rows
# The headline cells the leaderboard carries with confidence intervals and paired tests: EAGER and the strongest
# baseline on the datasets of the paper's ablation (Table 3). Every other cell gets one seed: each extra seed costs
# a full run. `run --all --seeds N` gives N seeds to every cell instead.
SEEDED_ROWS = frozenset({(OURS, DEFAULT_VARIANT), ("SASRec", "tuned")})
SEEDED_DATASETS = ("Beauty", "Toys_and_Games")
HEADLINE_SEEDS = 3
log = logging.getLogger("eager_bench")


@dataclass
class GridItem:
    spec: RunSpec
    path: Path
    cached: bool
    config: dict[str, Any] | None = None  # the resolved config (what the run id hashes)

    @property
    def run_id(self) -> str:
        return self.path.name[: -len(".json")]

    @property
    def label(self) -> str:
        s = self.spec
        return f"{s.model}/{s.variant} on {s.dataset} ({s.profile}) seed {s.seed}"


def leaderboard_rows(models: list[str], ablations: bool = False) -> list[tuple[str, str]]:
    """(model, variant) of every row the leaderboard shows: each model's `default` and every named variant of a
    baseline (e.g. SASRec `tuned`: leaving a stronger baseline out would flatter EAGER); EAGER's own variants are
    the ablation table's rows and come only with `ablations`."""
    from eager_bench.config import variant_names
    from eager_bench.models.registry import get_model_class

    rows = []
    for model in models:
        names = variant_names(get_model_class(model).config_file)
        variants = [DEFAULT_VARIANT] + [v for v in names if v != DEFAULT_VARIANT and (model != OURS or ablations)]
        rows += [(model, variant) for variant in variants]
    return rows


def leaderboard_seeds(model: str, variant: str, dataset: str) -> list[int]:
    """The seeds `run --all` plans for one leaderboard cell when --seeds is not given."""
    seeded = (model, variant) in SEEDED_ROWS and dataset in SEEDED_DATASETS
    return list(range(HEADLINE_SEEDS if seeded else 1))


def plan(models: list[str], datasets: list[str], seeds: list[int] | Callable[[str, str, str], list[int]],
         profile: str, results_dir: Path,
         variants: list[str] | None = None, overrides: dict[str, Any] | None = None,
         rows: list[tuple[str, str]] | None = None) -> list[GridItem]:
    """Every run of the grid with its result path; a path that exists is a finished run (same config and seed).

    The (model, variant) pairs are `rows` when given (see leaderboard_rows), else every model with each of
    `variants` (default: `default`). `seeds` is one list for every cell or a function of (model, variant, dataset)
    (see leaderboard_seeds). Resolving each config here means an unknown model, variant or bad config fails before
    anything trains.
    """
    pairs = rows if rows is not None else [(m, v) for m in models for v in variants or [DEFAULT_VARIANT]]
    items = []
    for dataset in datasets:
        for model, variant in pairs:
            for seed in (seeds(model, variant, dataset) if callable(seeds) else seeds):
                spec = RunSpec(model=model, dataset=dataset, profile=profile, seed=seed, variant=variant,
                               overrides=overrides)
                _, config, _, run_id = prepare(spec)
                path = result_path(results_dir, dataset, model, run_id)
                items.append(GridItem(spec, path, path.exists(), config))
    return items


def dry_run_table(items: list[GridItem], estimates: list[Any] | None = None) -> Table:
    """One line per run: what it is, cached or to run, its run id and (with `estimates`, eager_bench.estimate)
    its estimated wall time on this machine (estimate.basis_lines says where each number comes from)."""
    from eager_bench.estimate import format_duration

    cached = sum(item.cached for item in items)
    profiles = ", ".join(sorted({item.spec.profile for item in items})) or "-"
    table = Table(title=f"{len(items)} run(s): {cached} cached, {len(items) - cached} to run (profile {profiles})",
                  box=box.SIMPLE_HEAD, padding=(0, 1), collapse_padding=True, pad_edge=False)
    columns = ["dataset", "model", "variant", "seed", "state", "run id"]
    if estimates is not None:
        columns.append("estimate")
    for column in columns:
        table.add_column(column, overflow="fold", justify="right" if column in ("seed", "estimate") else "left")
    for i, item in enumerate(items):
        s = item.spec
        cells = [s.dataset, s.model, s.variant, str(s.seed), "cached" if item.cached else "to run", item.run_id]
        if estimates is not None:
            cells.append("-" if item.cached else format_duration(estimates[i].seconds))
        table.add_row(*cells)
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
