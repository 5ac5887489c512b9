"""The `eager-bench` command line. It only parses arguments and calls library functions."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from eager_bench import settings
from eager_bench.config import PROFILES, parse_override
from eager_bench.errors import BenchError

app = typer.Typer(help="eager-bench: benchmark and reproducibility suite for generative sequential recommendation.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
data_app = typer.Typer(help="List, describe and download the benchmark datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
console = Console()
err_console = Console(stderr=True)

DataDir = typer.Option(None, "--data-dir", help=f"Folder with one sub-folder per dataset [env {settings.DATA_ENV}].")
ResultsDir = typer.Option(None, "--results-dir", help=f"Where result files go [env {settings.RESULTS_ENV}; "
                                                       "default ./results].")


@app.callback()
def _setup(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s", datefmt="[%X]",
                        handlers=[RichHandler(console=err_console, show_path=False)], force=True)


@data_app.command("list")
def data_list(data_dir: Optional[Path] = DataDir) -> None:
    """The datasets this suite knows, and those found in the data directory (folders, datasets.yaml, plugins)."""
    from eager_bench.data.registry import all_specs

    table = Table("dataset", "source", "description")
    for spec in all_specs(data_dir):
        table.add_row(spec.name, spec.kind, spec.description)
    console.print(table)


@data_app.command("stats")
def data_stats(dataset: str = typer.Option(..., "--dataset", "-d", help="Dataset name (see `data list`)."),
               as_json: bool = typer.Option(False, "--json", help="Print JSON."),
               data_dir: Optional[Path] = DataDir) -> None:
    """Users, items, interactions and average sequence length of a dataset (checksums verified)."""
    from eager_bench.data import load_dataset

    stats = load_dataset(dataset, data_dir).stats()
    if as_json:
        typer.echo(json.dumps(stats))
        return
    table = Table("statistic", "value", title=dataset)
    for key, value in stats.items():
        table.add_row(key, f"{value:,}" if isinstance(value, int) else str(value))
    console.print(table)


@data_app.command("download")
def data_download(dataset: list[str] = typer.Option(None, "--dataset", "-d", help="Dataset(s); default: all four."),
                  mirror: Optional[str] = typer.Option(None, "--mirror", help="Base URL laid out as "
                                                       "<mirror>/<Dataset>/<file> [env EAGER_BENCH_MIRROR]."),
                  force: bool = typer.Option(False, "--force", help="Download even if the file exists."),
                  data_dir: Optional[Path] = DataDir) -> None:
    """Fetch the public S3-Rec files into the data directory and verify their sha256 sums."""
    from eager_bench.data.download import download_dataset
    from eager_bench.data.registry import BENCHMARK_DATASETS, get_spec

    names = dataset or BENCHMARK_DATASETS
    for name in names:
        kind = get_spec(name, data_dir).kind
        if kind != "s3rec":
            raise BenchError(f"dataset {name} ({kind}) has nothing to download: only {', '.join(BENCHMARK_DATASETS)} "
                             "have a public source")
    root = settings.data_dir(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    for name in names:
        written = download_dataset(name, root, mirror=mirror, force=force)
        console.print(f"{name}: {len(written)} file(s) downloaded and verified in {root / name}")


@app.command("models")
def models_list() -> None:
    """Registered models (entry-point group `eager_bench.models`) and their variants."""
    from eager_bench.config import variant_names
    from eager_bench.models.registry import get_model_class, model_names

    table = Table("model", "class", "variants")
    for name in model_names():
        cls = get_model_class(name)
        table.add_row(name, f"{cls.__module__}.{cls.__name__}", ", ".join(variant_names(cls.config_file)))
    console.print(table)


def _check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise BenchError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    return profile


@app.command("run")
def run_cmd(model: Optional[str] = typer.Option(None, "--model", "-m", help="Model name (see `models`)."),
            dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="Dataset name (see `data list`)."),
            all_: bool = typer.Option(False, "--all", help="Every leaderboard row (each registered model, and each "
                                      "variant of a baseline, e.g. SASRec tuned) on every benchmark dataset."),
            ablations: bool = typer.Option(False, "--ablations", help="With --all: EAGER's ablation variants too."),
            models: list[str] = typer.Option(None, "--models", help="With --all: restrict to these models."),
            datasets: list[str] = typer.Option(None, "--datasets", help="With --all: restrict to these datasets."),
            profile: str = typer.Option("cpu", "--profile", "-p", help=f"One of {', '.join(PROFILES)}."),
            variant: str = typer.Option("default", "--variant", help="Named config variant of the model."),
            seed: int = typer.Option(0, "--seed", help="Random seed (single run)."),
            seeds: Optional[int] = typer.Option(None, "--seeds", help="With --all: seeds 0..N-1 for every cell "
                                                "(default: 3 for EAGER and SASRec tuned on Beauty and Toys, 1 "
                                                "elsewhere)."),
            config: Optional[Path] = typer.Option(None, "--config", help="YAML file overriding config keys."),
            overrides: list[str] = typer.Option(None, "--set", help="key=value config override (repeatable)."),
            device: str = typer.Option("cpu", "--device", help="cpu or cuda[:N]."),
            force: bool = typer.Option(False, "--force", help="Re-run even if a result with this config exists."),
            dry_run: bool = typer.Option(False, "--dry-run", help="List what would run or is cached, with each run's "
                                         "estimated wall time here (from earlier runs' timing); train nothing."),
            keep_going: bool = typer.Option(False, "--keep-going", help="With --all: finish the other runs when one "
                                            "fails, then name every failure."),
            no_report: bool = typer.Option(False, "--no-report", help="With --all: skip writing the report."),
            executor: str = typer.Option("local", "--executor", help="With --all: local (one run after another "
                                         "in this process) or ray (one Ray task per run)."),
            address: Optional[str] = typer.Option(None, "--address", help="With --executor ray: address of an "
                                                  "existing Ray cluster (auto, HOST:6379, ray://HOST:10001); "
                                                  "default: start a local Ray on this machine's cores."),
            cpus_per_task: float = typer.Option(1.0, "--cpus-per-task", help="With --executor ray: CPUs per run."),
            gpus_per_task: Optional[float] = typer.Option(None, "--gpus-per-task", help="With --executor ray: "
                                                          "GPUs per run (default 1 with --device cuda, else 0)."),
            data_dir: Optional[Path] = DataDir, results_dir: Optional[Path] = ResultsDir) -> None:
    """Train, select on validation, evaluate on test, and write a result file (or the whole grid with --all)."""
    from eager_bench.runner import RunSpec, run

    _check_profile(profile)
    results_root = settings.results_dir(results_dir)
    if all_:
        from eager_bench.data.registry import BENCHMARK_DATASETS, get_spec
        from eager_bench.grid import dry_run_table, leaderboard_rows, leaderboard_seeds, plan, run_grid, summary_table
        from eager_bench.models.registry import get_model_class, model_names

        model_list = models or model_names()
        dataset_list = datasets or BENCHMARK_DATASETS
        for name in model_list:
            get_model_class(name)
        for name in dataset_list:
            get_spec(name, data_dir)
        if seeds is not None and seeds < 1:
            raise BenchError(f"--seeds must be >= 1, got {seeds}")
        items = plan(model_list, dataset_list, list(range(seeds)) if seeds is not None else leaderboard_seeds,
                     profile, results_root,
                     rows=leaderboard_rows(model_list, ablations=ablations))
        if dry_run:
            from eager_bench.estimate import basis_lines, estimate_items, total_lines

            estimates = estimate_items(items, results_root, device=device, data_dir=data_dir)
            console.print(dry_run_table(items, estimates))
            lines = basis_lines(items, estimates)
            if lines:
                console.print("Where each estimate comes from:")
            for line in [*lines, *total_lines(items, estimates, device=device)]:
                console.print(line, highlight=False, soft_wrap=True)
            return
        if executor == "local":
            if address is not None:
                raise BenchError("--address needs --executor ray")
            outcomes = run_grid(items, results_root, data_dir, device, force, console, keep_going=keep_going)
        else:
            from eager_bench.executors import run_grid_with

            outcomes = run_grid_with(executor, items, results_root, data_dir, device, force, console,
                                     address=address, cpus_per_task=cpus_per_task, gpus_per_task=gpus_per_task)
        console.print(summary_table(outcomes))
        if len(outcomes) < len(items):
            raise BenchError(f"{len(items) - len(outcomes)} of {len(items)} runs failed (the FAILED lines above)")
        if not no_report:
            from eager_bench.report import build_report_for_grid

            build_report_for_grid(results_root, profile)
        return
    if not model or not dataset:
        raise BenchError("run needs --model and --dataset (or --all)")
    parsed = dict(parse_override(text) for text in overrides or [])
    spec = RunSpec(model=model, dataset=dataset, profile=profile, seed=seed, variant=variant, config_file=config,
                   overrides=parsed or None)
    if dry_run:
        from eager_bench.runner import planned_path

        path = planned_path(spec, results_root)
        console.print(f"{model} on {dataset} ({profile}, {variant}, seed {seed}): "
                      f"{'cached' if path.exists() else 'would run'} -> {path}")
        return
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # launched by torchrun: DDP inside the model, rank 0 writes
        from eager_bench.distributed import run_distributed

        outcome = run_distributed(spec, data_dir=data_dir, results_dir=results_root, force=force, device=device)
        if outcome is None:
            return
    else:
        outcome = run(spec, data_dir=data_dir, results_dir=results_root, force=force, device=device)
    test = outcome.record["metrics"]["test"]
    state = "cached" if outcome.cached else "written"
    console.print(f"{model} on {dataset} ({profile}, seed {seed}): Recall@5 {test['Recall@5']:.4f}  "
                  f"NDCG@5 {test['NDCG@5']:.4f}  Recall@10 {test['Recall@10']:.4f}  NDCG@10 {test['NDCG@10']:.4f}")
    console.print(f"result {state}: {outcome.path}")


def _register_command_modules() -> None:
    import importlib
    import pkgutil

    import eager_bench.commands as commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"eager_bench.commands.{info.name}").register(app)


_register_command_modules()


def main() -> None:
    try:
        app()
    except BenchError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
