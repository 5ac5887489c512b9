"""One interface for every model: fit on the shared split (selecting on validation), recommend top-K, checkpoint."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from eager_bench.data.dataset import SequenceDataset
from eager_bench.evaluation import MAX_K, Evaluation, evaluate
from eager_bench.split import EvalSet, Split


@dataclass
class RunContext:
    """What the runner gives a model besides its config: where to write, which seed and device, how to report."""

    run_dir: Path  # checkpoints and logs of this run (outside the repository)
    seed: int
    device: str = "cpu"
    show_progress: bool = True
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("eager_bench.model"))

    def checkpoint_path(self, name: str = "checkpoint.pt") -> Path:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        return self.run_dir / name


class Recommender(ABC):
    """Subclass, give it a YAML config beside its module, and register it under the `eager_bench.models` entry point.

    `recommend` returns, for each history, up to k distinct item ids (1..n_items) best first, padded with
    evaluation.NO_ITEM; the runner and the evaluator do the rest.
    """

    config_file: ClassVar[Path | None] = None
    eval_batch_size: ClassVar[int] = 1024
    # True when fit trains data-parallel under torchrun (eager_bench.distributed); the others refuse to be launched
    # that way rather than train N identical copies.
    data_parallel: ClassVar[bool] = False

    def __init__(self, config: dict[str, Any], dataset: SequenceDataset, context: RunContext) -> None:
        self.config = config
        self.dataset = dataset
        self.n_items = dataset.n_items
        self.context = context

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        """Raise BenchError naming the key for values the model cannot use (beyond type checks)."""

    @abstractmethod
    def fit(self, split: Split) -> dict[str, Any]:
        """Train on split.train, select on split.valid (never test); return a training report for the result file."""

    @abstractmethod
    def recommend(self, histories: list[np.ndarray], k: int) -> np.ndarray:
        """[len(histories), k] ranked item ids, NO_ITEM-padded."""

    def save(self, path: Path) -> None:  # pragma: no cover - models without state need nothing
        """Write what `load` needs to recommend again."""

    def load(self, path: Path) -> None:  # pragma: no cover
        """Restore what `save` wrote."""

    def rank(self, eval_set: EvalSet, k: int = MAX_K, progress: Any = None) -> np.ndarray:
        """Rank every user of an evaluation set in batches."""
        out = []
        task = progress.add_task("ranking", total=len(eval_set)) if progress is not None else None
        for start in range(0, len(eval_set), self.eval_batch_size):
            batch = eval_set.histories[start:start + self.eval_batch_size]
            out.append(np.asarray(self.recommend(batch, k), dtype=np.int64))
            if task is not None:
                progress.advance(task, len(batch))
        if task is not None:
            progress.remove_task(task)
        return np.concatenate(out, axis=0)

    def evaluate_on(self, eval_set: EvalSet, k: int = MAX_K) -> Evaluation:
        return evaluate(self.rank(eval_set, k), eval_set.targets, self.n_items)
