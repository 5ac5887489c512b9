"""The controls: random codes of the same shape as EAGER's tree (`random`) or TIGER's semantic IDs (`random-sid`).

Same k, depth and duplicate-filled leaves as `hkmeans`, but the padded, shuffled item list is laid onto the leaves
in order without any clustering, so a code says nothing about its item. `fill=False` keeps one leaf per item.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from eager_bench.errors import BenchError
from eager_bench.tokenizers.base import Tokenizer
from eager_bench.tokenizers.hkmeans import default_branch, disambiguate, tree_depth


class RandomTokenizer(Tokenizer):
    name = "random"

    def __init__(self, k: int | None = None, levels: int | None = None, fill: bool = True) -> None:
        super().__init__(k=k, levels=levels, fill=fill)
        self.leaf_codes: np.ndarray | None = None
        self.leaf_items: np.ndarray | None = None

    def fit(self, embeddings: np.ndarray, seed: int = 0) -> "RandomTokenizer":
        start = time.perf_counter()
        n = len(embeddings)
        k = int(self.params["k"] or default_branch(n))
        depth = int(self.params["levels"] or tree_depth(n, k))
        n_leaves = k ** depth
        if k < 2 or n_leaves < n:
            raise BenchError(f"random: k={k} with {depth} level(s) gives {n_leaves} leaves < {n} items")
        rng = np.random.default_rng(seed)
        powers = k ** np.arange(depth - 1, -1, -1)
        if self.params["fill"]:
            entries = np.concatenate([np.arange(n), rng.integers(0, n, n_leaves - n)])[rng.permutation(n_leaves)]
            leaves = np.arange(n_leaves)
        else:
            entries = np.arange(n)
            leaves = rng.choice(n_leaves, size=n, replace=False)
        leaf_codes = (leaves[:, None] // powers) % k
        first = np.full(n, len(entries), dtype=np.int64)
        np.minimum.at(first, entries, np.arange(len(entries)))  # lowest position wins, as in hkmeans
        self._set_codes(leaf_codes[first], [k] * depth)
        self.leaf_codes, self.leaf_items = leaf_codes, entries + 1
        self.info = {"branch": k, "depth": depth, "n_leaves": len(leaves), "build_s": time.perf_counter() - start}
        return self

    def valid_codes(self) -> tuple[np.ndarray, np.ndarray]:
        assert self.leaf_codes is not None and self.leaf_items is not None
        return self.leaf_codes, self.leaf_items

    def extra_state(self) -> dict[str, Any]:
        return {"leaf_codes": self.leaf_codes, "leaf_items": self.leaf_items}

    def restore_extra(self, extra: dict[str, Any]) -> None:
        self.leaf_codes = np.asarray(extra["leaf_codes"], dtype=np.int64)
        self.leaf_items = np.asarray(extra["leaf_items"], dtype=np.int64)


class RandomSemanticIDTokenizer(Tokenizer):
    """The control for TIGER's semantic IDs (`random-sid`): `levels` codes drawn uniformly from a codebook of
    `codebook_size` per item, plus the same collision token as rkmeans/rqvae, so the shape (levels, codebook,
    a 4th token numbering items that share a code) is TIGER's and the codes say nothing about the item. Also the
    catalog study's stand-in where a real fit would take too long: building it costs one pass over the items."""

    name = "random-sid"

    def __init__(self, levels: int = 3, codebook_size: int = 256) -> None:
        super().__init__(levels=levels, codebook_size=codebook_size)

    def fit(self, embeddings: np.ndarray, seed: int = 0) -> "RandomSemanticIDTokenizer":
        start = time.perf_counter()
        size, levels = int(self.params["codebook_size"]), int(self.params["levels"])
        if size < 2 or levels < 1:
            raise BenchError(f"random-sid: codebook_size must be >= 2 and levels >= 1, got {size} and {levels}")
        codes = np.random.default_rng(seed).integers(0, size, (len(embeddings), levels))
        full, largest = disambiguate(codes)
        self._set_codes(full, [size] * levels + [largest], semantic_levels=levels)
        self.info = {"branch": size, "depth": levels, "largest_collision_group": largest,
                     "build_s": time.perf_counter() - start}
        return self
