"""Clustering primitives shared by the tokenizers: EAGER's balanced k-means and a plain seeded k-means.

`balanced_kmeans` follows the official `kmeans_equal` (lib/KmeansTree.py): forgy init by grouping a random
permutation, then per iteration every point ranks the centroids by squared L2 distance and the clusters, visited in
a random order, each take the n/k still unassigned points that rank them highest, updating their centroid at once.
Unlike the official chunked distance function it keeps every row (the code drops the last n mod 4 rows).
"""

from __future__ import annotations

import numpy as np
import torch

from eager_bench.ranking import top_k


def squared_distances(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """[n, k] squared L2 distances over all rows (the official code silently drops n mod 4 of them)."""
    return (x.pow(2).sum(1, keepdim=True) - 2.0 * x @ centroids.T + centroids.pow(2).sum(1)).clamp_min_(0.0)


def balanced_kmeans(x: torch.Tensor, k: int, max_iters: int = 100, tol: float = 1e-6,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Labels [n] in 0..k-1 with exactly n/k points per cluster (n must be a multiple of k)."""
    n = x.shape[0]
    if n % k:
        raise ValueError(f"balanced k-means needs n divisible by k, got n={n}, k={k}")
    size = n // k
    x = x.float()
    centroids = x[torch.randperm(n, generator=generator)].view(k, size, -1).mean(1)
    labels = torch.full((n,), -1, dtype=torch.int64)
    index = torch.arange(n)
    taken = torch.iinfo(torch.int64).max
    for _ in range(max_iters):
        # rank[c, i] = position of cluster c in point i's preference list (0 = nearest), one row per cluster
        # (numpy's SIMD argsort is ~3x faster than torch's here)
        # stable: a point equidistant from two centroids prefers the lower cluster index on every CPU
        prefs = np.argsort(squared_distances(x, centroids).numpy(), axis=1, kind="stable")
        rank_np = np.empty((k, n), dtype=np.int64)
        np.put_along_axis(rank_np.T, prefs, np.arange(k)[None, :], axis=1)
        rank = torch.from_numpy(rank_np)
        previous = centroids.clone()
        free = torch.ones(n, dtype=torch.bool)
        for c in torch.randperm(k, generator=generator).tolist():
            # The `size` free points ranking c highest; ties go to the lower index (the code's argsort is
            # unstable there), which the key rank * n + index makes unique and deterministic.
            key = rank[c] * n + index
            key[~free] = taken
            chosen = torch.topk(key, size, largest=False, sorted=False).indices
            labels[chosen] = c
            free[chosen] = False
            centroids[c] = x[chosen].mean(0)
        shift = torch.linalg.vector_norm(centroids - previous, dim=1).sum()
        if float(shift) ** 2 < tol:
            break
    return labels


def kmeans(x: np.ndarray, k: int, seed: int = 0, max_iters: int = 100,
           tol: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """Plain Lloyd k-means with k-means++ init, in torch (scikit-learn's was ~10x slower on the shared 2-core
    machine); empty clusters are re-seeded with the points farthest from their centroid. Returns (labels [n],
    centroids [k, d]); k is capped at n, and k >= n gives every point its own cluster."""
    data = torch.as_tensor(np.asarray(x, dtype=np.float32))
    n = len(data)
    k = min(k, n)
    if k == n:
        # One cluster per distinct point (identical points must still share a cluster).
        unique, inverse = np.unique(data.numpy(), axis=0, return_inverse=True)
        return inverse.reshape(-1).astype(np.int64), unique
    gen = torch.Generator().manual_seed(seed)
    # k-means++: each next centroid drawn with probability proportional to the squared distance to the nearest one.
    centroids = torch.empty(k, data.shape[1])
    centroids[0] = data[torch.randint(n, (1,), generator=gen)]
    nearest = squared_distances(data, centroids[:1]).squeeze(1)
    for j in range(1, k):
        weights = nearest.clamp_min(0) + 1e-12
        centroids[j] = data[torch.multinomial(weights, 1, generator=gen)]
        nearest = torch.minimum(nearest, squared_distances(data, centroids[j:j + 1]).squeeze(1))
    labels = torch.zeros(n, dtype=torch.int64)
    for _ in range(max_iters):
        dist = squared_distances(data, centroids)
        best, labels = dist.min(1)
        counts = torch.bincount(labels, minlength=k)
        sums = torch.zeros_like(centroids).index_add_(0, labels, data)
        updated = sums / counts.clamp_min(1).unsqueeze(1).float()
        empty = torch.nonzero(counts == 0).flatten()
        if len(empty):
            updated[empty] = data[top_k(best, len(empty))]  # duplicate points tie: the lower index first
        shift = (updated - centroids).pow(2).sum()
        centroids = updated
        if float(shift) <= tol * float(centroids.pow(2).sum().clamp_min(1e-12)) and not len(empty):
            break
    labels = squared_distances(data, centroids).argmin(1)
    return labels.numpy().astype(np.int64), centroids.numpy()
