"""`eager-bench study tokenization|scaling|protocol`: run a study's points (finished runs reused) and write its table
+ plots."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from eager_bench import settings

study_app = typer.Typer(help="Studies: tokenization (code quality vs downstream), scaling (cost vs size) and "
                         "protocol (time vs asin item order).",
                        no_args_is_help=True)
console = Console(stderr=True)


def _command() -> str:
    return "eager-bench " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def _progress():
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                    transient=True)


@study_app.command("tokenization")
def tokenization(profile: str = typer.Option("cpu", "--profile", "-p", help="smoke (synthetic, seconds) | cpu "
                                             "(Beauty and Toys_and_Games)."),
                 datasets: list[str] = typer.Option(None, "--dataset", "-d", help="Dataset(s), repeatable "
                                                    "(default: the profile's)."),
                 downstream: bool = typer.Option(True, "--downstream/--no-downstream", help="Run missing EAGER "
                                                 "points (else: only reuse finished ones)."),
                 seed: int = typer.Option(0, "--seed", help="Seed of embeddings, tokenizers and EAGER."),
                 budget_minutes: float = typer.Option(0.0, "--budget-minutes", help="Start no new code-quality "
                                                      "point after this many minutes (0 = no limit); the rest are "
                                                      "listed as pending in the table."),
                 device: str = typer.Option("cpu", "--device", help="cpu or cuda[:N]."),
                 data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=f"Dataset folder (env "
                                                         f"{settings.DATA_ENV})."),
                 results_dir: Optional[Path] = typer.Option(None, "--results-dir", help="Result store (study runs "
                                                            "go to <results>/studies)."),
                 out: Optional[Path] = typer.Option(None, "--out", help="Where table and plots go (default: the "
                                                    "results folder).")) -> None:
    """Code quality of EAGER's hierarchical k-means over a (#branch, #length) grid and of the other tokenizers
    (both streams), plus EAGER's downstream Recall/NDCG@5/10 for the 2-level points; writes
    study_tokenization.md/.csv and plots, with the Spearman correlation of each quality metric with Recall@10."""
    from eager_bench.studies import tokenization as study

    with _progress() as progress:
        task = progress.add_task("tokenization study")
        target = out or settings.results_dir(results_dir)
        # the table is rewritten after every point, so an interrupted study leaves what it finished
        result = study.run_study(profile, results_dir, data_dir, datasets, downstream, seed, device,
                                 lambda text: progress.update(task, description=text),
                                 lambda partial: study.write_outputs(partial, target, _command()),
                                 budget_minutes)
    written = study.write_outputs(result, target, _command())
    for c in result["correlations"]:
        if c["spearman_recall@10"] is not None:
            typer.echo(f"{c['embedding']:>5} {c['metric']:<22} spearman(Recall@10) = {c['spearman_recall@10']:+.3f}"
                       f" (n={c['n']})")
    if result["missing"]:
        typer.echo(f"missing downstream points: {result['missing']}")
    typer.echo("wrote " + ", ".join(str(p) for p in written))


@study_app.command("scaling")
def scaling(profile: str = typer.Option("cpu", "--profile", "-p", help="smoke (synthetic, seconds) | cpu (Beauty "
                                        "subsamples, short runs)."),
            dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="Base dataset (default: the "
                                                  "profile's); views are named like Beauty@users=0.25."),
            models: list[str] = typer.Option(None, "--model", "-m", help="Model(s), repeatable (default: the "
                                             "profile's)."),
            execute: bool = typer.Option(True, "--run/--no-run", help="Run missing points (else: table from "
                                         "finished ones)."),
            device: str = typer.Option("cpu", "--device", help="cpu or cuda[:N]."),
            data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=f"Dataset folder (env "
                                                    f"{settings.DATA_ENV})."),
            results_dir: Optional[Path] = typer.Option(None, "--results-dir", help="Result store (study runs go "
                                                       "to <results>/studies)."),
            out: Optional[Path] = typer.Option(None, "--out", help="Where table and plots go (default: the results "
                                               "folder).")) -> None:
    """Every model on user subsamples (10-100%), plus depth and beam width for the generative models: training
    time per epoch, samples/s, peak memory, decode latency per user and quality; prints the fitted log-log
    exponents and writes study_scaling.md/.csv and log-log plots."""
    from eager_bench.studies import scaling as study

    with _progress() as progress:
        task = progress.add_task("scaling study")
        target = out or settings.results_dir(results_dir)
        result = study.run_study(profile, results_dir, data_dir, dataset, models, execute, device,
                                 lambda text: progress.update(task, description=text),
                                 lambda partial: study.write_outputs(partial, target, _command()))
    written = study.write_outputs(result, target, _command())
    for model, fits in result["exponents"].items():
        parts = [f"{name}: a={fit.exponent:.3f} (R^2 {fit.r2:.2f}, n={fit.n_points})"
                 for name, fit in fits.items() if fit is not None]
        typer.echo(f"{model:>10}  " + ("; ".join(parts) or "fewer than 2 sizes"))
    if result["missing"] or result["failed"]:
        typer.echo(f"missing points: {len(result['missing'])} (failed: {len(result['failed'])})")
    typer.echo("wrote " + ", ".join(str(p) for p in written))


@study_app.command("protocol")
def protocol(profile: str = typer.Option("cpu", "--profile", "-p", help="smoke (synthetic, seconds) | cpu (Beauty "
                                         "and Toys_and_Games)."),
             datasets: list[str] = typer.Option(None, "--dataset", "--datasets", "-d", help="Dataset(s), repeatable "
                                                "(default: the profile's; add Sports_and_Outdoors, Yelp as time "
                                                "allows)."),
             models: list[str] = typer.Option(None, "--model", "--models", "-m", help="Model(s), repeatable "
                                              "(default: Popularity Markov SASRec EAGER TIGER; SASRec means its "
                                              "tuned variant; MODEL/VARIANT names another)."),
             execute: bool = typer.Option(True, "--run/--no-run", help="Run missing points (else: the table from "
                                          "stored result files only, missing cells pending)."),
             budget_minutes: float = typer.Option(0.0, "--budget-minutes", help="Start no new run after this many "
                                                  "minutes (0 = no limit); the rest are listed as pending."),
             device: str = typer.Option("cpu", "--device", help="cpu or cuda[:N]."),
             data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=f"Dataset folder (env "
                                                     f"{settings.DATA_ENV})."),
             results_dir: Optional[Path] = typer.Option(None, "--results-dir", help="Result store (study runs go "
                                                        "to <results>/studies)."),
             reference: Optional[Path] = typer.Option(None, "--reference", help="reported_metrics.csv (default: "
                                                      "$EAGER_BENCH_REFERENCE or <data>/../reference/)."),
             out: Optional[Path] = typer.Option(None, "--out", help="Where table and plot go (default: the results "
                                                "folder).")) -> None:
    """Every model under both item orders, time (the files') and asin (each user's items sorted by product id,
    dataset view X@order=asin): ours (time), ours (asin), the paper's number, which order it is closer to, and a
    paired test between the orders per model; writes study_protocol.md/.csv and a plot."""
    from eager_bench.studies import protocol as study

    with _progress() as progress:
        task = progress.add_task("protocol study")
        target = out or settings.results_dir(results_dir)
        # the table is rewritten after every point, so an interrupted study leaves what it finished
        result = study.run_study(profile, results_dir, data_dir, datasets, models, execute, device,
                                 lambda text: progress.update(task, description=text),
                                 lambda partial: study.write_outputs(partial, target, _command()),
                                 budget_minutes, reference)
    written = study.write_outputs(result, target, _command())
    for t, a in study.pairs(result["points"]):
        cells = [f"{p.order} " + (" / ".join(f"{p.test[m]:.4f}" for m in study.METRICS) if p.status == "done"
                                  else p.status) for p in (t, a)]
        typer.echo(f"{t.dataset:>20} {t.model:<10} " + "   ".join(cells))
    pending = [p for p in result["points"] if p.status != "done"]
    if pending:
        typer.echo(f"not done: {len(pending)} point(s) (see the table)")
    typer.echo("wrote " + ", ".join(str(p) for p in written))


def register(app: typer.Typer) -> None:
    app.add_typer(study_app, name="study")
