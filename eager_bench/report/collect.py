"""Read result files (never a model) and keep the newest run per (model, variant, dataset, profile, seed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from eager_bench.data.registry import BENCHMARK_DATASETS
from eager_bench.results import iter_results, ranks_path, read_ranks

OURS = "EAGER"  # the model whose difference to the best baseline is tested
FULL_SIZE_PROFILES = ("cpu", "paper")  # smoke runs are for CI only and never mix into the leaderboard
METRICS = ("Recall@5", "NDCG@5", "Recall@10", "NDCG@10", "Recall@20", "NDCG@20")


@dataclass(frozen=True, order=True)
class RunKey:
    model: str
    variant: str
    dataset: str
    profile: str
    seed: int


@dataclass
class Run:
    key: RunKey
    path: Path
    record: dict[str, Any]
    _ranks: dict[str, np.ndarray] | None = field(default=None, repr=False)

    @property
    def test_metrics(self) -> dict[str, float]:
        return self.record["metrics"]["test"]

    @classmethod
    def from_file(cls, path: Path, record: dict[str, Any]) -> Run:
        key = RunKey(record["model"], record["variant"], record["dataset"], record["profile"], int(record["seed"]))
        return cls(key, path, record)

    def ranks(self) -> dict[str, np.ndarray] | None:
        """The per-user sidecar (users, test_ranks, ...) or None when it is missing."""
        if self._ranks is None and ranks_path(self.path).exists():
            self._ranks = read_ranks(self.path)
        return self._ranks


def _finished(record: dict[str, Any]) -> str:
    return str(record.get("provenance", {}).get("finished_at") or "")


def collect_runs(results_dir: Path, profiles: Iterable[str] | None = FULL_SIZE_PROFILES,
                 models: Iterable[str] | None = None, datasets: Iterable[str] | None = None) -> list[Run]:
    """The newest result per run key (by finish time, then path so ties are deterministic), filtered, sorted."""
    wanted_profiles = set(profiles) if profiles is not None else None
    wanted_models = set(models) if models is not None else None
    wanted_datasets = set(datasets) if datasets is not None else None
    newest: dict[RunKey, Run] = {}
    for path, record in iter_results(results_dir):
        run = Run.from_file(path, record)
        key = run.key
        if wanted_profiles is not None and key.profile not in wanted_profiles:
            continue
        if wanted_models is not None and key.model not in wanted_models:
            continue
        if wanted_datasets is not None and key.dataset not in wanted_datasets:
            continue
        current = newest.get(key)
        if current is None or (_finished(record), str(path)) > (_finished(current.record), str(current.path)):
            newest[key] = run
    return [newest[key] for key in sorted(newest)]


def dataset_order(names: Iterable[str]) -> list[str]:
    """Benchmark datasets in the paper's order, then any others alphabetically."""
    names = set(names)
    known = [d for d in BENCHMARK_DATASETS if d in names]
    return known + sorted(names - set(known), key=str.lower)


def model_order(names: Iterable[str]) -> list[str]:
    """Baselines alphabetically, ours last (where a reader looks for it)."""
    names = set(names)
    return sorted(names - {OURS}, key=str.lower) + ([OURS] if OURS in names else [])
