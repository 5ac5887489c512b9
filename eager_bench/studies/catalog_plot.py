"""The catalog study's figure: decode time, code-build time and decode memory against catalog size, log-log, with
each model's fitted law and the in-range crossovers (PNG + PDF through the report package's deterministic saver)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from eager_bench.report.plots import _save, plt  # Agg backend + fixed PDF/PNG metadata
from eager_bench.studies.catalog_models import MODELS

_PANELS = (("decode_ms_mean", "decode ms per user (mean)"), ("build_s", "code build seconds"),
           ("decode_peak_mb", "decode peak MB"))


def catalog_plot(result: dict[str, Any], stem: Path) -> list[Path]:
    rows = [r for r in result["rows"] if str(r["status"]).startswith("ok")]
    fig, axes = plt.subplots(1, len(_PANELS), figsize=(13.0, 4.2))
    for ax, (key, label) in zip(axes, _PANELS):
        for i, model in enumerate(MODELS):
            pts = [(r["items"], r[key]) for r in rows if r["model"] == model and r[key] is not None and r[key] > 0]
            if not pts:
                continue
            x, y = map(np.asarray, zip(*pts))
            color = plt.get_cmap("tab10")(i)
            fit = result["laws"].get(model, {}).get(key)
            ax.scatter(x, y, color=color, s=16, label=model if fit is None else f"{model} (a={fit.exponent:.2f})")
            if fit is not None:
                grid = np.geomspace(x.min(), x.max(), 20)
                ax.plot(grid, fit.coefficient * grid ** fit.exponent, color=color, lw=1)
        if key == "decode_ms_mean":
            for c in result["crossovers"]:
                if c.in_range:
                    ax.axvline(c.n, color="grey", ls=":", lw=1)
                    ax.annotate(f"{c.model}={c.reference}", (c.n, ax.get_ylim()[0]), rotation=90, fontsize=6,
                                va="bottom", ha="right", color="grey")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("catalog size (items)")
        ax.set_ylabel(label)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle("Catalog axis, COST ONLY: random (untrained) weights on synthetic catalogs "
                 f"({result['threads']} torch thread(s))", fontsize=9)
    fig.tight_layout()
    return _save(fig, stem)
