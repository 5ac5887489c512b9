"""Most-popular baseline: every user gets the items most often seen in the training sequences."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from eager_bench.models.base import Recommender
from eager_bench.split import Split


class Popularity(Recommender):
    config_file: ClassVar[Path] = Path(__file__).with_suffix(".yaml")

    def fit(self, split: Split) -> dict[str, Any]:
        counts = np.zeros(self.n_items + 1, dtype=np.float64)
        for seq in split.train:
            np.add.at(counts, seq, 1.0)
        counts[0] = -np.inf
        # Stable sort: equal counts are ranked by item id, so the ranking is deterministic.
        self.order = np.argsort(-counts, kind="stable")
        valid = self.evaluate_on(split.valid)
        return {"valid": valid.metrics}

    def recommend(self, histories: list[np.ndarray], k: int) -> np.ndarray:
        return np.tile(self.order[:k], (len(histories), 1))

    def save(self, path: Path) -> None:
        np.save(path, self.order)

    def load(self, path: Path) -> None:
        self.order = np.load(path)
