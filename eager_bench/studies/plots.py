"""Study figures (PNG + PDF, deterministic metadata via the report package's saver)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from eager_bench.report.plots import _save, plt  # Agg backend + fixed PDF/PNG metadata

_SHOWN = ("collision_rate", "duplicate_leaf_share", "code_entropy_ratio", "prefix_utilisation", "coherence_l1_lift")


def quality_vs_config(rows: list[dict[str, Any]], stem: Path) -> list[Path]:
    """One panel per metric: a bar per (dataset, embedding, tokenizer/branch/length) point."""
    labels = [f"{r['dataset'][:6]}/{r['embedding']}/{r['tokenizer']} k{r['branch']}L{r['levels']}" for r in rows]
    fig, axes = plt.subplots(len(_SHOWN), 1, figsize=(max(8.0, 0.28 * len(rows)), 2.2 * len(_SHOWN)), sharex=True)
    for ax, metric in zip(axes, _SHOWN):
        values = [np.nan if r[metric] is None else r[metric] for r in rows]
        colors = ["tab:blue" if r["embedding"] == "text" else "tab:orange" for r in rows]
        ax.bar(range(len(rows)), values, color=colors)
        ax.set_ylabel(metric, fontsize=7)
    axes[-1].set_xticks(range(len(rows)), labels, rotation=90, fontsize=6)
    axes[0].set_title("Code quality per tokenizer point (blue: text stream, orange: DIN stream)")
    return _save(fig, stem)


def quality_vs_recall(correlations: list[dict[str, Any]], stem: Path) -> list[Path]:
    """Scatter of each metric against EAGER Recall@10, one colour per dataset (the rho in the panel title is taken
    within datasets), random-code controls as crosses."""
    metrics = sorted({c["metric"] for c in correlations})
    embs = sorted({c["embedding"] for c in correlations})
    datasets = sorted({g for c in correlations for g in c["groups"]})
    fig, axes = plt.subplots(len(embs), len(metrics), figsize=(2.4 * len(metrics), 2.7 * len(embs)), squeeze=False)
    for i, emb in enumerate(embs):
        for j, metric in enumerate(metrics):
            ax = axes[i][j]
            c = next(c for c in correlations if c["embedding"] == emb and c["metric"] == metric)
            for x, y, group, kind in zip(c["x"], c["y"], c["groups"], c["tokenizers"]):
                color = plt.get_cmap("tab10")(datasets.index(group) % 10)
                ax.scatter([x], [y], s=18, color=color, marker="o" if kind == "hkmeans" else "x")
            rho = "n/a" if c["spearman_recall@10"] is None else f"{c['spearman_recall@10']:.2f}"
            ax.set_title(f"{emb}: {metric}\nrho={rho} (n={c['n']})", fontsize=7)
            ax.tick_params(labelsize=6)
            if j == 0:
                ax.set_ylabel("EAGER Recall@10", fontsize=7)
    handles = [plt.Line2D([], [], ls="", marker="o", color=plt.get_cmap("tab10")(i % 10), label=d)
               for i, d in enumerate(datasets)]
    handles.append(plt.Line2D([], [], ls="", marker="x", color="grey", label="control codes (random)"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return _save(fig, stem)


def loglog(series: dict[str, tuple[list[float], list[float]]], fits: dict[str, Any], xlabel: str, ylabel: str,
           stem: Path) -> list[Path]:
    """Points per series on log-log axes with the fitted line and exponent in the legend."""
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    for i, (name, (x, y)) in enumerate(sorted(series.items())):
        color = plt.get_cmap("tab10")(i % 10)
        fit = fits.get(name)
        label = name if fit is None else f"{name} (a={fit.exponent:.2f})"
        ax.scatter(x, y, color=color, s=16, label=label)
        if fit is not None:
            grid = np.geomspace(min(x), max(x), 20)
            ax.plot(grid, fit.coefficient * grid ** fit.exponent, color=color, lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    return _save(fig, stem)
