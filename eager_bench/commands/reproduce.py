"""`eager-bench reproduce`: reference check against the papers, frozen-reference re-runs, and `--check` for CI."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from eager_bench import settings
from eager_bench.errors import BenchError

console = Console()


def _reference_table(rows, enforce: bool) -> Table:
    table = Table(title="(1) committed full-size results vs the paper" + ("" if enforce else " (informative)"),
                  box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("model", "dataset", "profile", "metric", "seeds", "ours", "paper", "ratio", "tolerance",
                   "within"):
        table.add_column(column, justify="right" if column in ("ours", "paper", "ratio", "seeds") else "left")
    for row in rows:
        within = "" if row.within is None else ("yes" if row.within else "[red]no[/]")
        table.add_row(row.model, row.dataset, row.profile, row.metric, str(row.n_seeds),
                      "missing" if row.ours is None else f"{row.ours:.4f}", f"{row.paper.value:.4f}",
                      "" if row.ratio is None else f"{row.ratio:.2f}", f"±{100 * row.tolerance.relative:.0f}%",
                      within)
    return table


def _frozen_table(result) -> Table:
    table = Table(title="(2) from-scratch re-runs vs frozen numbers", box=box.SIMPLE_HEAD, pad_edge=False)
    numeric = ("frozen", "now", "difference", "kernel spread", "allowed")
    for column in ("cell", "metric", *numeric, "ok"):
        table.add_column(column, justify="right" if column in numeric else "left")
    for row in result.rows:
        table.add_row(row.cell.key, row.metric, "" if row.frozen is None else f"{row.frozen:.6f}",
                      "" if row.now is None else f"{row.now:.6f}", "" if row.diff is None else f"{row.diff:+.2e}",
                      f"{row.spread:.1e}", "" if row.allowed is None else f"{row.allowed:.1e}",
                      "yes" if row.ok else f"[red]no[/] {row.problem}")
    return table


def _freeze_table(frozen) -> Table:
    """Per frozen cell and metric: the number, its spread between repeats and across kernel settings, and the
    tolerance that follows (tolerances.yaml: absolute + relative * value + spread_margin * kernel spread)."""
    table = Table(title="frozen: measured spreads and the tolerances they give", box=box.SIMPLE_HEAD, pad_edge=False)
    numeric = ("frozen", "repeat spread", "kernel spread", "runs", "allowed")
    for column in ("cell", "metric", *numeric, "ok"):
        table.add_column(column, justify="right" if column in numeric else "left")
    for item in frozen:
        entry = item.entry
        for metric in item.metrics:
            value, spread = entry["metrics"][metric], entry["max_spread_across_kernels"][metric]
            table.add_row(item.cell.key, metric, f"{value:.6f}", f"{entry['max_spread_between_repeats'][metric]:.1e}",
                          f"{spread:.1e}", str(len(entry["kernel_runs"])), f"{item.cell.allowed(value, spread):.1e}",
                          "[red]unstable[/]" if metric in item.unstable else "yes")
    return table


def reproduce(check: bool = typer.Option(False, "--check", help="Exit 1 naming every guarded cell outside its "
                                                                 "tolerance (for CI)."),
              profiles: list[str] = typer.Option(None, "--profile", "-p",
                                                 help="Profiles of the reference check, repeatable (default: the "
                                                      "config's, cpu and paper)."),
              tolerance: Optional[float] = typer.Option(None, "--tolerance",
                                                        help="Relative tolerance for every reference-check cell, "
                                                             "instead of the config's (e.g. 0.1)."),
              atol: Optional[float] = typer.Option(None, "--atol", help="Absolute tolerance for every frozen cell, "
                                                                        "instead of the config's."),
              freeze_: bool = typer.Option(False, "--freeze", help="Retrain the guarded cells and (re)write the "
                                                                   "frozen numbers; the only way they are made."),
              repeat: int = typer.Option(2, "--repeat", help="With --freeze: runs per cell as configured, besides "
                                                             "one run under each other kernel setting (native and "
                                                             "one lower instruction set, 1 and 2 threads); the "
                                                             "spreads are recorded to size the tolerance."),
              models: list[str] = typer.Option(None, "--model", "-m", help="Only the guarded cells of these "
                                                                           "model(s), repeatable."),
              skip_rerun: bool = typer.Option(False, "--skip-rerun", help="Reference check only (no training)."),
              reuse_home: bool = typer.Option(False, "--reuse-home",
                                              help="Re-run inside the usual EAGER_BENCH_HOME (reuses caches and "
                                                   "checkpoints; faster, but not a from-scratch reproduction)."),
              config_file: Optional[Path] = typer.Option(None, "--config", help="Tolerance file (default: "
                                                                                "eager_bench/reproduce/"
                                                                                "tolerances.yaml)."),
              frozen_file: Optional[Path] = typer.Option(None, "--frozen", help="Frozen numbers (default: the "
                                                                                "config's frozen.file)."),
              reference: Optional[Path] = typer.Option(None, "--reference", help="reported_metrics.csv (env "
                                                                                 "EAGER_BENCH_REFERENCE)."),
              device: str = typer.Option("cpu", "--device", help="cpu or cuda[:N]; frozen numbers are CPU ones."),
              data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=f"Dataset folder (env "
                                                                               f"{settings.DATA_ENV})."),
              results_dir: Optional[Path] = typer.Option(None, "--results-dir",
                                                         help=f"Committed result files (env {settings.RESULTS_ENV}; "
                                                              "default ./results).")) -> None:
    """(1) Compare every committed full-size result with the paper's number (ours, paper, ratio, within the
    tolerance of eager_bench/reproduce/tolerances.yaml); (2) retrain the guarded cells from scratch with their fixed
    seed and compare Recall@5/NDCG@5 with the frozen numbers; (3) with --check, exit 1 naming the failing cells."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from eager_bench.report.reference import load_reference
    from eager_bench.reproduce import check_frozen, freeze, load_config, reference_rows

    config = load_config(config_file)
    if frozen_file is not None:
        config.frozen_file = frozen_file
    cells = [c for c in config.guarded if not models or c.model in models]
    if models and not cells:
        raise BenchError(f"no guarded cell of model(s) {', '.join(models)} in {config.path}")
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console)

    if freeze_:
        from eager_bench.reproduce.frozen import AS_CONFIGURED, kernel_settings, settings_for

        setups = kernel_settings()
        total = sum(repeat + len([s for s in settings_for(c, setups) if s != AS_CONFIGURED]) for c in cells)
        with progress:
            task = progress.add_task("freezing", total=total)
            frozen = freeze(config, cells, data_dir, repeat, device, reuse_home, setups,
                            on_done=lambda cell, name: progress.update(task, advance=1,
                                                                       description=f"{cell.key}: {name}"))
        console.print(_freeze_table(frozen))
        console.print(f"froze {len(cells)} cell(s) into {config.frozen_file}")
        unstable = [f"{item.cell.key} {m}" for item in frozen for m in item.unstable]
        if unstable:
            console.print(f"[bold red]spread across kernel settings exceeds the declared tolerance:[/] "
                          f"{'; '.join(unstable)}", soft_wrap=True)
            raise typer.Exit(1)
        return

    failures: list[str] = []
    rows = reference_rows(settings.results_dir(results_dir), load_reference(reference, required=True), config,
                          profiles or None, tolerance)
    if any(r.ours is not None for r in rows):
        console.print(_reference_table(rows, config.enforce_reference))
    else:
        console.print("(1) reference check: no committed full-size result of a model the papers report "
                      f"(profiles {', '.join(profiles or config.reference_profiles)})")
    if config.enforce_reference:
        failures += [f"{r.name}: ratio {r.ratio:.2f} outside ±{100 * r.tolerance.relative:.0f}%"
                     for r in rows if r.within is False]

    if not skip_rerun:
        with progress:
            task = progress.add_task("re-running", total=len(cells))
            result = check_frozen(config, cells, data_dir, device, reuse_home, atol,
                                  on_done=lambda cell, _: progress.update(task, advance=1, description=cell.key))
        console.print(_frozen_table(result))
        failures += result.failures
    if failures:
        console.print(f"[bold red]{len(failures)} cell(s) fail:[/]")
        for line in failures:
            console.print(f"  {line}", highlight=False, soft_wrap=True)
        if check:
            raise typer.Exit(1)
    elif not skip_rerun:
        console.print("[green]every guarded cell is within its tolerance[/]")


def register(app: typer.Typer) -> None:
    app.command("reproduce")(reproduce)
