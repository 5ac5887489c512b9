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


@dataclass
class OffsetPowerLaw:
    """y = offset + coefficient * x^exponent: a fixed part that does not grow (a full-ranking model's user encoder,
    a beam search's decoder steps) plus a part that does. A plain log-log line bends where the fixed part dominates,
    so on a wide axis its R^2 says more about the offset than about how the growing part scales."""
    exponent: float
    coefficient: float
    offset: float
    r2: float  # in log space, like PowerLaw's
    n_points: int


def fit_offset_power_law(x: np.ndarray | list[float], y: np.ndarray | list[float],
                         max_exponent: float = 2.0) -> OffsetPowerLaw | None:
    """Least squares on log y - log(offset + c x^a) (scipy.optimize.least_squares, offset and c >= 0, a in [0,
    max_exponent]); None with fewer than 4 distinct x (three parameters need a residual to say anything)."""
    from scipy.optimize import least_squares

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    x, y = x[ok], y[ok]
    if len(np.unique(x)) < 4:
        return None
    ly, scale = np.log(y), float(x.max())
    xs = x / scale  # keeps c near the data's own magnitude whatever the exponent

    def residual(p: np.ndarray) -> np.ndarray:
        offset, coef, exponent = np.exp(p[0]), np.exp(p[1]), p[2]
        return np.log(offset + coef * xs ** exponent) - ly

    best = None
    for start in (0.25, 0.5, 1.0):  # a few starts: the surface has a flat valley where the offset dominates
        p0 = np.array([np.log(y.min() / 2), np.log(y.max()), start])
        fit = least_squares(residual, p0, bounds=([-np.inf, -np.inf, 0.0], [np.inf, np.inf, max_exponent]))
        if best is None or fit.cost < best.cost:
            best = fit
    assert best is not None
    offset, coef, exponent = float(np.exp(best.x[0])), float(np.exp(best.x[1])), float(best.x[2])
    total = float(((ly - ly.mean()) ** 2).sum())
    r2 = 1.0 - float((best.fun ** 2).sum()) / total if total > 0 else 1.0
    return OffsetPowerLaw(exponent, coef / scale ** exponent, offset, r2, int(len(x)))
