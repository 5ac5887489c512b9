"""`eager-bench study tokenization|scaling|protocol|catalog`: run a study's points (finished runs reused) and write its
table + plots."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from eager_bench import settings
from eager_bench.errors import BenchError

study_app = typer.Typer(help="Studies: tokenization (code quality vs downstream), scaling (cost vs size), "
                         "protocol (time vs asin item order) and catalog (decode cost vs catalog size, 10^3-10^6).",
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


@study_app.command("catalog")
def catalog(profile: str = typer.Option("cpu", "--profile", "-p", help="smoke (1e3-1e4 items, 32 users, seconds) | "
                                        "cpu (1e3, 3e3, 1e4, 3e4, 1e5, 3e5, 1e6 items, 4096 users)."),
            sizes: list[str] = typer.Option(None, "--sizes", help="Catalog sizes, comma-separated or repeated "
                                            "(e.g. 1e4,1e5); each >= 100 (default: the profile's)."),
            models: list[str] = typer.Option(None, "--models", "--model", "-m", help="Models, comma-separated or "
                                             "repeated: SASRec BERT4Rec EAGER TIGER (default: all four)."),
            users: Optional[int] = typer.Option(None, "--users", help="Users timed per point (default: the "
                                                "profile's)."),
            threads: Optional[int] = typer.Option(None, "--threads", help="Torch threads, fixed for the whole "
                                                  "study; 0 = EAGER_BENCH_THREADS or every usable core."),
            batch: Optional[int] = typer.Option(None, "--batch", help="Users per ranking call; 0 = each model's "
                                                "evaluation batch (EAGER/SASRec/BERT4Rec 1024, TIGER 256)."),
            seed: Optional[int] = typer.Option(None, "--seed", help="Seed of catalogs, histories and weights."),
            max_gb: Optional[float] = typer.Option(None, "--max-gb", help="Memory a point may need (estimated) "
                                                   "before its batch is halved or it is skipped; 0 = 60% of what "
                                                   "is available at its start."),
            source: Optional[str] = typer.Option(None, "--source", help="Dataset whose history lengths and "
                                                 "popularity skew are copied (default Beauty; fixed defaults when "
                                                 "its files are absent)."),
            tiger_tokenizer: Optional[str] = typer.Option(None, "--tiger-tokenizer", help="rkmeans (default) | "
                                                          "rqvae: TIGER's semantic IDs."),
            max_build_s: Optional[float] = typer.Option(None, "--max-build-s", help="A code fit predicted (power law "
                                                        "over the model's earlier sizes) to take longer gets random "
                                                        "codes of its shape instead; 0 = no limit (default: the "
                                                        "profile's, cpu 1500)."),
            fresh: bool = typer.Option(False, "--fresh", help="Measure every point again (default: keep points of "
                                       "the earlier result file measured under the same settings and machine)."),
            execute: bool = typer.Option(True, "--run/--no-run", help="Measure missing points (else: redraw tables "
                                         "and plot from the earlier result file, measuring nothing)."),
            data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=f"Dataset folder (env "
                                                    f"{settings.DATA_ENV})."),
            out: Optional[Path] = typer.Option(None, "--out", help="Where table and plot go (default: the results "
                                               "folder).")) -> None:
    """Cost only, random weights: per synthetic catalog size and model, code-building time/memory (EAGER's
    hierarchical k-means trees, TIGER's semantic IDs), per-user decode time (mean, p95) and peak memory against
    SASRec/BERT4Rec full scoring; fits log-log exponents and the crossover size, writes study_catalog.md/.csv/.json
    and a log-log plot."""
    from eager_bench.studies import catalog as study

    plan = study.resolve_plan(profile, sizes, models, users, threads, batch, seed, max_gb, source, tiger_tokenizer,
                              max_build_s)
    target = out or settings.results_dir()
    if fresh and not execute:
        raise BenchError("--fresh with --no-run: nothing would be measured and nothing kept; give one of them")
    previous = None if fresh else study.load_previous(study.output_stem(target, plan.name).with_suffix(".json"))
    with _progress() as progress:
        task = progress.add_task("catalog study")
        # the table is rewritten after every point, so an interrupted study leaves what it finished
        result = study.run_study(plan, data_dir, lambda text: progress.update(task, description=text),
                                 lambda partial: study.write_outputs(partial, target, _command(), plot=False),
                                 previous, measure=execute)
    written = study.write_outputs(result, target, _command())
    for model, fits in result["laws"].items():
        parts = [f"{name}: a={fit.exponent:.3f} (R^2 {fit.r2:.2f}, n={fit.n_points})"
                 for name, fit in fits.items() if fit is not None]
        typer.echo(f"{model:>10}  " + ("; ".join(parts) or "fewer than 2 sizes"))
    if result["reused"]:
        typer.echo(f"reused {len(result['reused'])} points of the earlier result (same settings and machine)")
    for c in result["crossovers"]:
        typer.echo(f"{c.model} vs {c.reference}: {c.measured} (laws: {c.verdict})")
    typer.echo("wrote " + ", ".join(str(p) for p in written))


def register(app: typer.Typer) -> None:
    app.add_typer(study_app, name="study")
