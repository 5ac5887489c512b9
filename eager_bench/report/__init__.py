"""The report: leaderboard and ablation tables (Markdown, CSV, LaTeX) and plots, from result files alone.

Every number comes from `eager_bench.results` files and their per-user rank sidecars. Whether a file is of today's
config is asked of runner.prepare (report.current: each model's config is resolved, no model is built or trained);
stale files are marked, or left out where a current one stands for the same row, and listed either way.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable

from eager_bench.config import DEFAULT_VARIANT
from eager_bench.errors import BenchError
from eager_bench.report.board import Board, build_ablation, build_leaderboard
from eager_bench.report.collect import FULL_SIZE_PROFILES, OURS, collect
from eager_bench.report.reference import REFERENCE_ENV, load_ablation_reference, load_reference, reference_path
from eager_bench.report.tables import to_csv, to_latex, to_markdown

FORMATS = ("md", "csv", "tex")
__all__ = ["build_report", "build_report_for_grid", "build_ablation_report", "write_tables", "FORMATS"]


def write_tables(board: Board, out_dir: Path, stem: str, formats: Iterable[str]) -> list[Path]:
    renderers = {"md": to_markdown, "csv": to_csv, "tex": to_latex}
    written = []
    for fmt in formats:
        path = out_dir / f"{stem}.{fmt}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(renderers[fmt](board))
        written.append(path)
    return written


def stem_for(base: str, profiles: Iterable[str] | None) -> str:
    """`leaderboard` for full-size profiles; `leaderboard_smoke` etc. otherwise, so a CI smoke report never
    overwrites the committed full-size tables."""
    chosen = sorted(set(profiles)) if profiles is not None else None
    if chosen is not None and set(chosen) <= set(FULL_SIZE_PROFILES):
        return base
    return f"{base}_{'_'.join(chosen) if chosen else 'all'}"


def check_formats(formats: Iterable[str]) -> list[str]:
    formats = list(formats)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise BenchError(f"unknown report format(s) {', '.join(unknown) or '(none)'}; known: {', '.join(FORMATS)}")
    return formats


def build_report(results_dir: Path, formats: Iterable[str] = FORMATS, out_dir: Path | None = None,
                 profiles: Iterable[str] | None = FULL_SIZE_PROFILES, reference: Path | None = None,
                 plots: bool = True, ablations: bool = True, strict: bool = False,
                 check_current: bool = True) -> list[Path]:
    """Write leaderboard.{md,csv,tex}, ablations.* and plots/ from one result per run; return the paths.

    With `check_current` (report.current) a result of today's config is preferred to a stale one, a row never
    mixes the two, and stale results are marked and listed; without it the newest result of each run counts.
    When no result file matches the profile filter nothing is written: with `strict` that is a BenchError (the
    `report` command), otherwise a logged warning (the hook after `run --all`, whose grid may be smoke-only).
    """
    formats = check_formats(formats)
    results_dir = Path(results_dir)
    out_dir = Path(out_dir) if out_dir is not None else results_dir
    profiles = list(profiles) if profiles is not None else None
    currency = None
    if check_current:
        from eager_bench.report.current import checker

        currency = checker()
    collection = collect(results_dir, profiles, currency=currency)
    runs = collection.runs
    if not runs:
        which = f" with profile {', '.join(profiles)}" if profiles else ""
        message = (f"no result files{which} under {results_dir}; run `eager-bench run` first "
                   "or choose another --profile")
        if strict:
            raise BenchError(message)
        logging.getLogger("eager_bench").warning("report not written: %s", message)
        return []
    if not (papers := reference_path(reference)).is_file():
        # Tables without the papers' numbers are legitimate (a user without the reference files), but written over
        # committed tables they would silently drop every ratio: say so.
        logging.getLogger("eager_bench").warning(
            "the papers' numbers are left out: %s does not exist (set $%s, or $EAGER_BENCH_DATA to the data folder "
            "beside reference/)", papers, REFERENCE_ENV)
    board = build_leaderboard(runs, load_reference(reference), excluded=collection.excluded)
    written = write_tables(board, out_dir, stem_for("leaderboard", profiles), formats)
    ablation = build_ablation(runs, excluded=collection.excluded,
                              reference=load_ablation_reference(metrics_path=reference)) if ablations else None
    if ablation is not None and not any(row.variant != DEFAULT_VARIANT for rows in ablation.rows.values()
                                        for row in rows):
        ablation = None  # EAGER's default alone is no ablation
    if ablation is not None:
        written += write_tables(ablation, out_dir, stem_for("ablations", profiles), formats)
    if plots:
        from eager_bench.report.plots import bar_plots, curve_plots, paper_scatter

        written += bar_plots(board, out_dir / "plots", "leaderboard")
        written += curve_plots(board, out_dir / "plots", stem_for("valid_curves", profiles))
        written += paper_scatter(board, out_dir / "plots", stem_for("ours_vs_paper", profiles))
        if ablation is not None:
            written += bar_plots(ablation, out_dir / "plots", "ablations")
    return written


def build_report_for_grid(results_dir: Path, profile: str) -> list[Path]:
    """What `run --all --profile P` writes after its grid: the full-size report (cpu + paper) when P is full-size,
    else leaderboard_P.* beside it, so a smoke grid never replaces the committed tables."""
    profiles = list(FULL_SIZE_PROFILES) if profile in FULL_SIZE_PROFILES else [profile]
    return build_report(results_dir, profiles=profiles)


def build_ablation_report(results_dir: Path, formats: Iterable[str] = FORMATS, out_dir: Path | None = None,
                          profiles: Iterable[str] | None = FULL_SIZE_PROFILES, datasets: Iterable[str] | None = None,
                          model: str = OURS, plots: bool = True, check_current: bool = True) -> list[Path]:
    """Only the ablation table (+ plot) of `model`'s variants (stale results treated as in build_report)."""
    formats = check_formats(formats)
    out_dir = Path(out_dir) if out_dir is not None else Path(results_dir)
    profiles = list(profiles) if profiles is not None else None
    currency = None
    if check_current:
        from eager_bench.report.current import checker

        currency = checker()
    collection = collect(Path(results_dir), profiles, models=[model], datasets=datasets, currency=currency)
    runs = collection.runs
    if not runs:
        raise BenchError(f"no {model} result files under {results_dir} match the filter")
    board = build_ablation(runs, model=model, excluded=collection.excluded, reference=load_ablation_reference())
    written = write_tables(board, out_dir, stem_for("ablations", profiles), formats)
    if plots:
        from eager_bench.report.plots import bar_plots

        written += bar_plots(board, out_dir / "plots", "ablations")
    return written
