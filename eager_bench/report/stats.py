"""Statistics of the report: t-intervals over seeds, per-user metrics, a paired test and Holm's correction.

The paired test is the Wilcoxon signed-rank test (scipy) on per-user metric values: the same test users are
scored by two models, so the pairing removes the between-user variance that dominates top-K metrics. With several
seeds, each user's value is first averaged over that model's seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats

from eager_bench.errors import BenchError

CONFIDENCE = 0.95
ALPHA = 0.05
TEST_NAME = "two-sided Wilcoxon signed-rank test on per-user values, seeds averaged per user"


@dataclass(frozen=True)
class Interval:
    """Mean of the per-seed values and the half-width of its t-interval (None with a single seed)."""

    mean: float
    half_width: float | None
    n: int

    @property
    def low(self) -> float | None:
        return None if self.half_width is None else self.mean - self.half_width

    @property
    def high(self) -> float | None:
        return None if self.half_width is None else self.mean + self.half_width


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """Student-t confidence interval of the mean; seeds are few, so a normal interval would be too narrow."""
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        raise BenchError("t_interval needs at least one value")
    mean = float(data.mean())
    if data.size == 1:
        return Interval(mean, None, 1)
    sem = float(data.std(ddof=1)) / math.sqrt(data.size)
    quantile = float(stats.t.ppf(0.5 + confidence / 2, df=data.size - 1))
    return Interval(mean, quantile * sem, int(data.size))


def parse_metric(metric: str) -> tuple[str, int]:
    name, _, cutoff = metric.partition("@")
    if name not in ("Recall", "NDCG") or not cutoff.isdigit():
        raise BenchError(f"per-user values exist for Recall@K and NDCG@K only, not {metric!r}")
    return name, int(cutoff)


def per_user(ranks: np.ndarray, metric: str) -> np.ndarray:
    """Per-user value of Recall@K or NDCG@K from 1-based target ranks (0 = not ranked), as the evaluator defines."""
    name, k = parse_metric(metric)
    ranks = np.asarray(ranks, dtype=np.int64)
    hit = (ranks > 0) & (ranks <= k)
    if name == "Recall":
        return hit.astype(np.float64)
    gain = np.zeros(ranks.shape, dtype=np.float64)
    gain[hit] = 1.0 / np.log2(ranks[hit] + 1.0)
    return gain


def paired_p_value(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided p-value that per-user values a and b differ in location. Identical inputs give p = 1."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise BenchError(f"paired test needs the same users on both sides ({a.shape} vs {b.shape})")
    diff = a - b
    if not np.any(diff != 0):
        return 1.0  # no user differs: there is nothing to test, and scipy would warn
    return float(stats.wilcoxon(a, b, zero_method="wilcox", alternative="two-sided").pvalue)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1), in the input order."""
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if m == 0:
        return []
    order = np.argsort(p, kind="stable")
    scaled = p[order] * (m - np.arange(m))
    adjusted_sorted = np.minimum(np.maximum.accumulate(scaled), 1.0)
    adjusted = np.empty(m, dtype=np.float64)
    adjusted[order] = adjusted_sorted
    return adjusted.tolist()
