"""First-order Markov chain: score the next item by how often it followed the history's last item in training."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from eager_bench.errors import BenchError
from eager_bench.evaluation import NO_ITEM
from eager_bench.models.base import Recommender
from eager_bench.ranking import top_k
from eager_bench.split import Split


class Markov(Recommender):
    config_file: ClassVar[Path] = Path(__file__).with_suffix(".yaml")

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        if not 0.0 <= config["popularity_weight"] < 1.0:
            raise BenchError(f"Markov: popularity_weight must be in [0, 1), got {config['popularity_weight']}")

    def fit(self, split: Split) -> dict[str, Any]:
        rows, cols = [], []
        popularity = np.zeros(self.n_items + 1, dtype=np.float64)
        for seq in split.train:
            rows.append(seq[:-1])
            cols.append(seq[1:])
            np.add.at(popularity, seq, 1.0)
        r, c = np.concatenate(rows), np.concatenate(cols)
        size = self.n_items + 1
        self.transitions = sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(size, size))
        self.transitions.sum_duplicates()
        # Popularity, scaled below one transition count, breaks ties and fills rows with few successors.
        self.prior = self.config["popularity_weight"] * popularity / max(popularity.max(), 1.0)
        valid = self.evaluate_on(split.valid)
        return {"valid": valid.metrics, "transitions": int(self.transitions.nnz)}

    def recommend(self, histories: list[np.ndarray], k: int) -> np.ndarray:
        last = np.array([h[-1] if len(h) else 0 for h in histories], dtype=np.int64)
        scores = self.transitions[last, 1:].toarray() + self.prior[None, 1:]  # column 0 (padding) is no item
        # Ties (items with equal counts and popularity) go to the smaller item id, whatever the CPU's sort kernel.
        out = np.full((len(histories), k), NO_ITEM, dtype=np.int64)
        out[:, :min(k, self.n_items)] = top_k(scores, k) + 1
        return out

    def save(self, path: Path) -> None:
        sp.save_npz(path, self.transitions)

    def load(self, path: Path) -> None:
        self.transitions = sp.load_npz(path)
