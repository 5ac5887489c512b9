"""`eager-bench report`: leaderboard, ablation table and plots from the result files (nothing is trained; model
classes are loaded only to resolve today's config of each result, which marks results of older configs as stale)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from eager_bench import settings
from eager_bench.config import PROFILES
from eager_bench.errors import BenchError

console = Console()


def split_list(values: list[str] | None) -> list[str]:
    """Accept both repeated options and comma-separated lists (`--format md,csv`)."""
    return [part.strip() for value in values or [] for part in value.split(",") if part.strip()]


def check_profiles(profiles: list[str]) -> list[str]:
    unknown = [p for p in profiles if p not in PROFILES]
    if unknown:
        raise BenchError(f"unknown profile(s) {', '.join(unknown)}; known: {', '.join(PROFILES)}")
    return profiles


def report(formats: list[str] = typer.Option(None, "--format", "-f",
                                             help="Table formats, comma-separated or repeated: md, csv, tex "
                                                  "(default: all three)."),
           out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default: the results folder)."),
           results_dir: Optional[Path] = typer.Option(None, "--results-dir",
                                                      help=f"Folder of result files (env {settings.RESULTS_ENV}; "
                                                           "default ./results)."),
           profiles: list[str] = typer.Option(None, "--profile", "-p",
                                              help="Profiles to include, comma-separated or repeated (default: the "
                                                   "full-size profiles cpu,paper; smoke never mixes in)."),
           reference: Optional[Path] = typer.Option(None, "--reference",
                                                    help="reported_metrics.csv (env EAGER_BENCH_REFERENCE; default "
                                                         "<data dir>/../reference/reported_metrics.csv)."),
           no_plots: bool = typer.Option(False, "--no-plots", help="Tables only.")) -> None:
    """Write results/leaderboard.{md,csv,tex}, results/ablations.* and results/plots/ from the newest result per
    (model, variant, dataset, profile, seed): mean ± 95% t-interval over seeds, the paper's number and ratio, and
    Holm-corrected paired tests of EAGER against the best baseline."""
    from eager_bench.report import FORMATS, build_report
    from eager_bench.report.collect import FULL_SIZE_PROFILES

    root = settings.results_dir(results_dir)
    chosen = check_profiles(split_list(profiles)) or list(FULL_SIZE_PROFILES)
    written = build_report(root, split_list(formats) or list(FORMATS), out, chosen, reference,
                           plots=not no_plots, strict=True)
    for path in written:
        console.print(f"wrote {path}")


def register(app: typer.Typer) -> None:
    app.command("report")(report)
