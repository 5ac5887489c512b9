"""Log-log exponent fits for the scaling study: y = c * x^a  <=>  log y = a log x + log c (numpy.polyfit)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PowerLaw:
    exponent: float
    coefficient: float
    r2: float
    n_points: int


def fit_power_law(x: np.ndarray | list[float], y: np.ndarray | list[float]) -> PowerLaw | None:
    """Least-squares line in log-log space over the positive, finite pairs; None with fewer than 2 distinct x."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    x, y = x[ok], y[ok]
    if len(np.unique(x)) < 2:
        return None
    lx, ly = np.log(x), np.log(y)
    slope, intercept = np.polyfit(lx, ly, 1)
    resid = ly - (slope * lx + intercept)
    total = ((ly - ly.mean()) ** 2).sum()
    r2 = 1.0 - float((resid ** 2).sum() / total) if total > 0 else 1.0
    return PowerLaw(float(slope), float(np.exp(intercept)), r2, int(len(x)))
