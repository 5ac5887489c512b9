"""The catalog study's figure: decode time, code-build time and decode memory against catalog size, log-log, with
each model's fitted law where it holds and the measured crossovers (PNG + PDF through the report package's
deterministic saver)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from eager_bench.report.plots import _save, plt  # Agg backend + fixed PDF/PNG metadata
from eager_bench.studies.catalog_models import MODELS

_PANELS = (("decode_ms_mean", "decode ms per user (mean)"), ("build_s", "code build seconds"),
           ("decode_peak_mb", "decode peak MB"))


def catalog_plot(result: dict[str, Any], stem: Path) -> list[Path]:
    """Measured points joined by a line (hollow where random stand-in codes replaced the fit); the fitted law dashed
    where it is read as the model's law (R^2 >= POWER_LAW_R2); measured crossovers as dotted verticals."""
    from eager_bench.studies.catalog import POWER_LAW_R2, described_law, is_measured

    rows = [r for r in result["rows"] if is_measured(r)]
    fig, axes = plt.subplots(1, len(_PANELS), figsize=(13.0, 4.2))
    for ax, (key, label) in zip(axes, _PANELS):
        for i, model in enumerate(MODELS):
            pts = sorted((r["items"], r[key], "stand-in" in str(r["status"])) for r in rows
                         if r["model"] == model and r[key] is not None and r[key] > 0)
            if not pts:
                continue
            x, y, stand_in = map(np.asarray, zip(*pts))
            color = plt.get_cmap("tab10")(i)
            fit = result["laws"].get(model, {}).get(key)
            read = fit is not None and fit.r2 >= POWER_LAW_R2
            ax.plot(x, y, color=color, lw=1, marker="o", ms=4,
                    label=f"{model} (a={fit.exponent:.2f}, R2 {fit.r2:.2f})" if fit is not None else model)
            if stand_in.any():
                ax.scatter(x[stand_in], y[stand_in], s=40, facecolors="white", edgecolors=color, zorder=3)
            grid = np.geomspace(x.min(), x.max(), 40)
            # decode: the law its reading describes (a fixed part plus a growing one for full ranking)
            law = described_law(result["laws"].get(model, {}), result["rows"], model) if key == "decode_ms_mean" \
                else (lambda n: fit.coefficient * n ** fit.exponent) if read else None
            if law is not None:
                ax.plot(grid, law(grid), color=color, lw=0.8, ls="--")
        if key == "decode_ms_mean":
            for c in result["crossovers"]:
                if c.measured_n is not None:
                    ax.axvline(c.measured_n, color="grey", ls=":", lw=1)
                    ax.annotate(f"{c.model}={c.reference}", (c.measured_n, ax.get_ylim()[0]), rotation=90,
                                fontsize=6, va="bottom", ha="right", color="grey")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("catalog size (items)")
        ax.set_ylabel(label)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle("Catalog axis, COST ONLY: random (untrained) weights on synthetic catalogs "
                 f"({result['threads']} torch thread(s)); dashed: fitted law (N^a, or t0 + c N^a for decode; R2 >= "
                 f"{POWER_LAW_R2}); hollow: random "
                 "stand-in codes; dotted: measured crossover", fontsize=9)
    fig.tight_layout()
    return _save(fig, stem)
