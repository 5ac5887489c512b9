"""Most-popular baseline: every user gets the items most often seen in the training sequences."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from eager_bench.evaluation import NO_ITEM
from eager_bench.models.base import Recommender
from eager_bench.ranking import top_k
from eager_bench.split import Split


class Popularity(Recommender):
    config_file: ClassVar[Path] = Path(__file__).with_suffix(".yaml")

    def fit(self, split: Split) -> dict[str, Any]:
        counts = np.zeros(self.n_items + 1, dtype=np.float64)
        for seq in split.train:
            np.add.at(counts, seq, 1.0)
        # Equal counts are ranked by item id (the suite's one tie rule), so the ranking is the same on every CPU.
        self.order = top_k(counts[1:], self.n_items) + 1  # column 0 is the padding id, never an item
        valid = self.evaluate_on(split.valid)
        return {"valid": valid.metrics}

    def recommend(self, histories: list[np.ndarray], k: int) -> np.ndarray:
        out = np.full((len(histories), k), NO_ITEM, dtype=np.int64)
        out[:, :min(k, self.n_items)] = self.order[:k]
        return out

    def save(self, path: Path) -> None:
        np.save(path, self.order)

    def load(self, path: Path) -> None:
        self.order = np.load(path)
