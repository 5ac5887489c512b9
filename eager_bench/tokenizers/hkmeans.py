"""EAGER's balanced hierarchical k-means tree (`hkmeans`) and a clean hierarchical k-means (`hkmeans-clean`).

`hkmeans` is faithful to the official lib/Tree_Model.py + lib/KmeansTree.py (EAGER.md §4.3):
- depth L = ceil(log_k N) unless `levels` is given, k^L leaves;
- the N items are padded to k^L entries with k^L - N items drawn uniformly with replacement, then shuffled, so every
  leaf holds an item and every path decodes (duplicate leaves);
- a node of exactly k entries is filled in its current (shuffled-position) order, unclustered; any larger node is
  split by balanced k-means into k children of exactly n/k (so with L = 2 only level 1 is a cluster id);
- an item's training code is its first leaf (lowest shuffled position), as `item_to_code[i][0]` in the code.
Fixed relative to the code: the distance function keeps all rows (the code drops n mod 4 of them).

`hkmeans-clean` clusters every level with plain k-means (no padding, no duplicate leaves) and appends one
disambiguation token numbering the items that share a path, so codes are unique.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch

from eager_bench.errors import BenchError
from eager_bench.tokenizers.base import Tokenizer
from eager_bench.tokenizers.kmeans import balanced_kmeans, kmeans

DEFAULT_BRANCH = 128  # train_rec.py:64


def default_branch(n_items: int) -> int:
    """EAGER's k = 128 where 128^2 >= N; else the smallest multiple of 16 with k^2 >= N (two levels);
    tiny catalogues (N <= 128) get ceil(sqrt(N)) so the tree still has two levels."""
    if n_items <= DEFAULT_BRANCH:
        return max(2, math.isqrt(n_items - 1) + 1)
    if n_items <= DEFAULT_BRANCH ** 2:
        return DEFAULT_BRANCH
    return 16 * math.ceil(math.sqrt(n_items) / 16)


def tree_depth(n_items: int, k: int) -> int:
    """ceil(log_k N) in integers (the float log of the code can be off by one at exact powers)."""
    depth, leaves = 1, k
    while leaves < n_items:
        depth, leaves = depth + 1, leaves * k
    return depth


def disambiguate(codes: np.ndarray) -> tuple[np.ndarray, int]:
    """Append a token numbering the items that share a code (0 for the first, in item order); returns
    (codes with the extra column, size of the largest group)."""
    _, inverse = np.unique(codes, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")
    rank = np.empty(len(codes), dtype=np.int64)
    sorted_groups = inverse[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_groups)) + 1]
    group_start = np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    rank[order] = np.arange(len(order)) - group_start
    return np.column_stack([codes, rank]), int(rank.max()) + 1


class HKMeansTokenizer(Tokenizer):
    """Balanced hierarchical k-means tree with duplicate-filled leaves (EAGER's official tokenizer)."""

    name = "hkmeans"

    def __init__(self, k: int | None = None, levels: int | None = None, max_iters: int = 100,
                 feature_ratio: float = 1.0, tol: float = 1e-6) -> None:
        super().__init__(k=k, levels=levels, max_iters=max_iters, feature_ratio=feature_ratio, tol=tol)
        self.leaf_items: np.ndarray | None = None  # [k^L] item of each leaf, leaves in code order

    def fit(self, embeddings: np.ndarray, seed: int = 0) -> "HKMeansTokenizer":
        start = time.perf_counter()
        x = torch.as_tensor(np.asarray(embeddings, dtype=np.float32))
        n = x.shape[0]
        k = int(self.params["k"] or default_branch(n))
        depth = int(self.params["levels"] or tree_depth(n, k))
        if k < 2 or k ** depth < n:
            raise BenchError(f"hkmeans: k={k} with {depth} level(s) gives {k ** depth} leaves < {n} items")
        n_leaves = k ** depth
        rng = np.random.default_rng(seed)
        gen = torch.Generator().manual_seed(seed)
        # Pad to k^L entries with items drawn with replacement, then shuffle (Tree_Model.py:88-92).
        entries = np.concatenate([np.arange(n), rng.integers(0, n, n_leaves - n)])[rng.permutation(n_leaves)]
        paths = np.zeros((n_leaves, depth), dtype=np.int64)
        n_dims = max(1, math.ceil(self.params["feature_ratio"] * x.shape[1]))
        stack: list[tuple[np.ndarray, int]] = [(np.arange(n_leaves), 0)]
        n_splits = 0
        while stack:
            positions, level = stack.pop()
            if len(positions) == k:
                # Filled in current order, unclustered (KmeansTree.py:177-179).
                paths[positions, level] = np.arange(k)
                continue
            dims = torch.randperm(x.shape[1], generator=gen)[:n_dims]
            labels = balanced_kmeans(x[torch.as_tensor(entries[positions])][:, dims], k,
                                     max_iters=int(self.params["max_iters"]), tol=float(self.params["tol"]),
                                     generator=gen).numpy()
            n_splits += 1
            paths[positions, level] = labels
            for c in range(k - 1, -1, -1):
                stack.append((positions[labels == c], level + 1))  # members keep ascending position order
        # Leaves in code order: leaf id = path read as a base-k number.
        leaf_id = paths @ (k ** np.arange(depth - 1, -1, -1))
        leaf_items = np.empty(n_leaves, dtype=np.int64)
        leaf_items[leaf_id] = entries + 1
        # Training code = the copy at the lowest shuffled position (item_to_code[i][0]).
        first = np.full(n, n_leaves, dtype=np.int64)
        np.minimum.at(first, entries, np.arange(n_leaves))
        self._set_codes(paths[first], [k] * depth)
        self.leaf_items = leaf_items
        self.info = {"branch": k, "depth": depth, "n_leaves": n_leaves, "kmeans_splits": n_splits,
                     "build_s": time.perf_counter() - start}
        return self

    def valid_codes(self) -> tuple[np.ndarray, np.ndarray]:
        assert self.leaf_items is not None
        k, depth = self.vocab_sizes[0], self.levels
        leaf = np.arange(len(self.leaf_items))
        codes = (leaf[:, None] // (k ** np.arange(depth - 1, -1, -1))) % k
        return codes, self.leaf_items

    def extra_state(self) -> dict[str, Any]:
        return {"leaf_items": self.leaf_items}

    def restore_extra(self, extra: dict[str, Any]) -> None:
        self.leaf_items = np.asarray(extra["leaf_items"], dtype=np.int64)


class CleanHKMeansTokenizer(Tokenizer):
    """Hierarchical k-means with every level clustered, no duplicate leaves, plus a disambiguation token."""

    name = "hkmeans-clean"

    def __init__(self, k: int | None = None, levels: int = 2, max_iters: int = 100) -> None:
        super().__init__(k=k, levels=levels, max_iters=max_iters)

    def fit(self, embeddings: np.ndarray, seed: int = 0) -> "CleanHKMeansTokenizer":
        start = time.perf_counter()
        x = np.asarray(embeddings, dtype=np.float32)
        n = len(x)
        k = int(self.params["k"] or default_branch(n))
        depth = int(self.params["levels"])
        if k < 2 or depth < 1:
            raise BenchError(f"hkmeans-clean: need k >= 2 and levels >= 1, got k={k}, levels={depth}")
        paths = np.zeros((n, depth), dtype=np.int64)
        stack: list[tuple[np.ndarray, int]] = [(np.arange(n), 0)]
        node = 0
        while stack:
            members, level = stack.pop()
            labels, _ = kmeans(x[members], k, seed=seed + node, max_iters=int(self.params["max_iters"]))
            node += 1
            paths[members, level] = labels
            if level + 1 < depth:
                for c in np.unique(labels)[::-1]:
                    stack.append((members[labels == c], level + 1))
        codes, largest = disambiguate(paths)
        self._set_codes(codes, [k] * depth + [largest], semantic_levels=depth)
        self.info = {"branch": k, "depth": depth, "kmeans_nodes": node, "largest_collision_group": largest,
                     "build_s": time.perf_counter() - start}
        return self
