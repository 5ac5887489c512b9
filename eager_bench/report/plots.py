"""Figures of the report (PNG + PDF): grouped bars with CI whiskers, ablation bars, ours-vs-paper scatter."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: CI and servers have no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from eager_bench.config import DEFAULT_VARIANT  # noqa: E402
from eager_bench.report.collect import OURS  # noqa: E402
from eager_bench.report.board import Board  # noqa: E402

# Fixed metadata so the same board gives the same files (PDF otherwise embeds its creation date).
_META = {"png": {"Software": None}, "pdf": {"CreationDate": None, "Creator": None, "Producer": None}}


def _save(fig: plt.Figure, stem: Path) -> list[Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for ext in ("png", "pdf"):
        path = stem.with_suffix(f".{ext}")
        fig.savefig(path, dpi=150, bbox_inches="tight", metadata=_META[ext])
        out.append(path)
    plt.close(fig)
    return out


def _bars(board: Board, profile: str, title: str) -> plt.Figure:
    datasets = [d for p, d in board.sections if p == profile]
    # The leaderboard figure compares models, baseline variants included (dropping a tuned baseline would flatter
    # EAGER); EAGER's own variants have their own ablation figure.
    rows = [r for r in board.rows[profile]
            if board.kind == "ablation" or r.model != OURS or r.variant == DEFAULT_VARIANT]
    metrics = list(board.metrics)
    fig, axes = plt.subplots(len(datasets), 1, figsize=(max(8.0, 1.3 * len(metrics) + 0.35 * len(rows) * 2),
                                                        3.2 * len(datasets)), squeeze=False)
    width = 0.8 / max(len(rows), 1)
    colors = plt.get_cmap("tab10")
    x = np.arange(len(metrics))
    for ax, dataset in zip(axes[:, 0], datasets):
        for i, row in enumerate(rows):
            cells = [board.cell(profile, dataset, row, m) for m in metrics]
            means = [c.interval.mean if c else np.nan for c in cells]
            errs = [c.interval.half_width if c and c.interval.half_width is not None else 0.0 for c in cells]
            ax.bar(x + (i - (len(rows) - 1) / 2) * width, means, width, yerr=errs, capsize=2,
                   label=(row.variant if board.kind == "ablation" else row.label)
                   + (" ‡ stale" if board.stale_anywhere(profile, row) else ""), color=colors(i % 10),
                   error_kw={"elinewidth": 0.8})
        ax.set_title(f"{dataset} (profile {profile})", fontsize=11)
        ax.set_xticks(x, metrics, fontsize=9)
        ax.set_ylabel("test value", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
    fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    return fig


def bar_plots(board: Board, out_dir: Path, stem: str) -> list[Path]:
    """One figure per profile: a panel per dataset, a bar group per metric, whiskers = 95% t-interval."""
    out = []
    what = "mean over seeds, whiskers: 95% t-interval" if board.kind == "leaderboard" else \
        "EAGER ablations, whiskers: 95% t-interval"
    for profile in board.rows:
        if any(p == profile for p, _ in board.sections):
            out += _save(_bars(board, profile, what), out_dir / f"{stem}_{profile}")
    return out


def paper_scatter(board: Board, out_dir: Path, stem: str = "ours_vs_paper") -> list[Path]:
    """Ours (y) against the paper (x) for every cell with a reported number; the dashed line is y = x."""
    points = [(row, dataset, metric, cell) for (profile, dataset, row, metric), cell in sorted(
        board.cells.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2].label, kv[0][3]))
        if cell.reported is not None]
    if not points:
        return []

    def name(row, cell) -> str:  # a stale result's points get their own legend entry
        return f"{row.label} ‡ stale" if cell.stale else row.label

    models = sorted({name(row, cell) for row, _, _, cell in points})
    datasets = sorted({d for _, d, _, _ in points})
    markers = "osD^vP*X"
    colors = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    for row, dataset, metric, cell in points:
        ax.scatter(cell.reported.value, cell.interval.mean, color=colors(models.index(name(row, cell)) % 10),
                   marker=markers[datasets.index(dataset) % len(markers)], s=36, alpha=0.85)
    top = max(max(c.reported.value, c.interval.mean) for *_, c in points) * 1.1
    ax.plot([0, top], [0, top], linestyle="--", color="grey", linewidth=1, label="y = x")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_aspect("equal")
    ax.set_xlabel("paper (reported)")
    ax.set_ylabel("ours (mean over seeds)")
    ax.set_title("Ours vs paper, all reported Recall/NDCG cells")
    handles = [plt.Line2D([], [], color=colors(i % 10), marker="o", linestyle="", label=m)
               for i, m in enumerate(models)]
    handles += [plt.Line2D([], [], color="black", marker=markers[i % len(markers)], linestyle="", label=d)
                for i, d in enumerate(datasets)]
    handles.append(plt.Line2D([], [], color="grey", linestyle="--", label="y = x"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=9, frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, out_dir / stem)


def curve_plots(board: Board, out_dir: Path, stem: str = "valid_curves") -> list[Path]:
    """One figure per profile, a panel per dataset: each trained leaderboard run's validation NDCG@10 against the
    fraction of its own training done (epochs and updates on one axis), so a curve still rising at 1.0 shows a
    cell that measures the budget (the table "Validation curves at the end" gives the numbers)."""
    ends = board.curve_ends()
    out = []
    for profile in board.rows:
        panels = [(dataset, lines) for p, dataset in board.sections if p == profile
                  if (lines := [(row, run.key.seed, end) for q, d, row, run, end in ends if (q, d) == (p, dataset)])]
        if not panels:
            continue
        labels = sorted({row.label for _, lines in panels for row, _, _ in lines})
        colors = plt.get_cmap("tab10")
        fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
        for ax, (dataset, lines) in zip(axes[0], panels):
            for row, seed, end in lines:
                last = end.last_at
                xs = [x / last for x, _ in end.points]
                ys = [v for _, v in end.points]
                ax.plot(xs, ys, marker=".", linewidth=1.2, color=colors(labels.index(row.label) % 10),
                        linestyle="-" if seed == 0 else ":", label=row.label if seed == 0 else None)
            ax.set_title(f"{dataset} (profile {profile})", fontsize=10)
            ax.set_xlabel("fraction of the run's training", fontsize=9)
            ax.set_xlim(0, 1.02)
            ax.grid(alpha=0.3)
        axes[0, 0].set_ylabel("validation NDCG@10", fontsize=9)
        handles = [plt.Line2D([], [], color=colors(i % 10), label=label) for i, label in enumerate(labels)]
        handles.append(plt.Line2D([], [], color="grey", linestyle=":", label="seeds > 0"))
        axes[0, -1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
        fig.suptitle("Validation curves (TIGER: its validation subset)", fontsize=11)
        fig.tight_layout()
        out += _save(fig, out_dir / f"{stem}_{profile}")
    return out
