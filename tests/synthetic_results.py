"""Synthetic result files for the report and reproduce tests: written through the real result store."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from eager_bench.evaluation import metrics_from_ranks
from eager_bench.results import RunRecord, make_run_id, write_run


def fake_run(results_dir: Path, model: str, dataset: str, ranks: np.ndarray, seed: int = 0, profile: str = "cpu",
             variant: str = "default", finished_at: str = "2026-01-01T00:00:00+00:00",
             config_hash: str = "0" * 64, valid_ranks: np.ndarray | None = None,
             config: dict | None = None) -> Path:
    """One result file and its ranks sidecar; validation ranks default to the test ranks."""
    ranks = np.asarray(ranks, dtype=np.int64)
    valid = ranks if valid_ranks is None else np.asarray(valid_ranks, dtype=np.int64)
    metrics = metrics_from_ranks(ranks)
    record = RunRecord(run_id=make_run_id(variant, profile, seed, config_hash), model=model, variant=variant,
                       dataset=dataset, profile=profile, seed=seed, config=dict(config or {}), config_hash=config_hash,
                       metrics={"valid": metrics_from_ranks(valid), "test": metrics}, n_test_users=len(ranks),
                       timing={"train_s": 0.0, "eval_s": 0.0}, provenance={"finished_at": finished_at})
    users = np.arange(len(ranks), dtype=np.int64)
    return write_run(results_dir, record, {"users": users, "test_ranks": ranks, "valid_ranks": valid})


def random_ranks(rng: np.random.Generator, n_users: int, hit_rate: float, k: int = 20) -> np.ndarray:
    """Each user's target lands at a uniform rank 1..k with probability hit_rate, else is not ranked (0)."""
    hit = rng.random(n_users) < hit_rate
    return np.where(hit, rng.integers(1, k + 1, n_users), 0)
