"""Seeded synthetic catalogs of any size for the catalog-axis cost study: clustered-Gaussian item embeddings
(96-d behavior-like, 384-d unit-norm text-like, each a low-dimensional latent projected up) and user histories whose length distribution and popularity skew
follow a real dataset (Beauty by default), read through the data layer.

Every part (popularity, histories, each embedding) draws from its own seeded stream, so a part is the same whichever
other parts a caller asks for, and a 10^6-item catalog never holds more than the parts it needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eager_bench.errors import BenchError
from eager_bench.studies.powerlaw import fit_power_law

EMBEDDING_DIMS = {"behavior": 96, "text": 384}  # EAGER's DIN width and all-MiniLM-L6-v2's
LATENT_DIMS = {"behavior": 16, "text": 32}  # intrinsic dimension of the clusters before the projection
_PART = {"popularity": 1, "histories": 2, "behavior": 3, "text": 4}
_CHUNK = 65_536  # rows generated at a time: a 10^6 x 384 matrix never has a second full-size temporary
# Beauty's numbers (22,363 users, 12,101 items; measured with this suite's loader), used when its files are absent:
# history length >= 5 (5-core), mean 8.88; rank-frequency Zipf exponent 0.764 over all items (R^2 0.97).
DEFAULT_MIN_LENGTH, DEFAULT_MEAN_LENGTH, DEFAULT_MAX_LENGTH = 5, 8.88, 204
DEFAULT_ZIPF = 0.764


@dataclass(frozen=True)
class HistoryStats:
    """What the synthetic histories copy: lengths to resample and the popularity skew."""

    source: str  # where the numbers came from, printed in the study's table
    lengths: np.ndarray  # history lengths to resample (the real dataset's, or a stand-in with its statistics)
    zipf_exponent: float  # popularity of the item at rank r is proportional to r^-zipf_exponent
    zipf_r2: float | None  # of the rank-frequency fit (None for the fixed defaults)


def zipf_fit(counts: np.ndarray) -> tuple[float, float]:
    """(exponent s, R^2) of count ~ rank^-s over every item with a positive count, ranks by descending count."""
    ranked = np.sort(np.asarray(counts, dtype=float))[::-1]
    ranked = ranked[ranked > 0]
    fit = fit_power_law(np.arange(1, len(ranked) + 1), ranked)
    if fit is None:
        raise BenchError("zipf fit needs at least 2 items with interactions")
    return -fit.exponent, fit.r2


def default_stats() -> HistoryStats:
    """A shifted geometric with Beauty's minimum and mean length (a fixed draw, so it is the same every run)."""
    rng = np.random.default_rng(0)
    extra = rng.geometric(1.0 / (DEFAULT_MEAN_LENGTH - DEFAULT_MIN_LENGTH + 1), size=22_363) - 1
    lengths = np.minimum(DEFAULT_MIN_LENGTH + extra, DEFAULT_MAX_LENGTH)
    return HistoryStats("fixed defaults (Beauty's statistics; data directory absent)", lengths, DEFAULT_ZIPF, None)


def source_stats(dataset: str = "Beauty", data_dir: Path | None = None) -> HistoryStats:
    """History lengths and the Zipf exponent of `dataset`; the fixed defaults where its files cannot be read."""
    from eager_bench.data import load_dataset

    try:
        ds = load_dataset(dataset, data_dir)
    except BenchError:
        return default_stats()
    counts = np.bincount(np.concatenate(ds.sequences), minlength=ds.n_items + 1)[1:]
    s, r2 = zipf_fit(counts)
    lengths = np.array([len(seq) for seq in ds.sequences], dtype=np.int64)
    return HistoryStats(f"{dataset} ({ds.n_users} users, {ds.n_items} items; eager_bench data layer)", lengths, s, r2)


@dataclass(frozen=True)
class SyntheticCatalog:
    n_items: int
    stats: HistoryStats
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_items < 2:
            raise BenchError(f"synthetic catalog needs >= 2 items, got {self.n_items}")

    def _rng(self, part: str) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.n_items, _PART[part]])

    def popularity(self) -> np.ndarray:
        """[N] probability of items 1..N: Zipf over ranks, ranks dealt to items at random (popularity is not id)."""
        rank = self._rng("popularity").permutation(self.n_items) + 1
        weight = rank.astype(float) ** -self.stats.zipf_exponent
        return weight / weight.sum()

    def histories(self, n_users: int) -> list[np.ndarray]:
        """n_users histories of item ids 1..N: lengths resampled from the source, items drawn by popularity."""
        if n_users < 1:
            raise BenchError(f"synthetic histories need >= 1 user, got {n_users}")
        rng = self._rng("histories")
        lengths = rng.choice(self.stats.lengths, size=n_users)
        items = rng.choice(self.n_items, size=int(lengths.sum()), p=self.popularity()) + 1
        return np.split(items.astype(np.int64), np.cumsum(lengths)[:-1])

    def embeddings(self, kind: str) -> np.ndarray:
        """[N, d] float32: clustered Gaussians (ceil(sqrt N) clusters, as many as EAGER's level-1 nodes) in a
        low-dimensional latent space, mapped to d by a fixed random projection plus a little isotropic noise; `text`
        rows are unit-norm like sentence-transformer outputs. Real item embeddings have a low intrinsic dimension:
        isotropic 384-d clusters instead give residual k-means degenerate cells (163 items on one code at 3*10^4)."""
        if kind not in EMBEDDING_DIMS:
            raise BenchError(f"unknown embedding kind {kind!r}; known: {', '.join(EMBEDDING_DIMS)}")
        dim, latent, rng = EMBEDDING_DIMS[kind], LATENT_DIMS[kind], self._rng(kind)
        n_clusters = max(2, math.isqrt(self.n_items - 1) + 1)
        centers = rng.standard_normal((n_clusters, latent), dtype=np.float32)
        projection = rng.standard_normal((latent, dim), dtype=np.float32) / np.float32(np.sqrt(latent))
        cluster = rng.integers(n_clusters, size=self.n_items)
        out = np.empty((self.n_items, dim), dtype=np.float32)
        for lo in range(0, self.n_items, _CHUNK):
            rows = cluster[lo:lo + _CHUNK]
            z = centers[rows] + np.float32(0.5) * rng.standard_normal((len(rows), latent), dtype=np.float32)
            block = z @ projection
            block += np.float32(0.05) * rng.standard_normal(block.shape, dtype=np.float32)
            if kind == "text":
                block /= np.linalg.norm(block, axis=1, keepdims=True)
            out[lo:lo + len(rows)] = block
        return out
