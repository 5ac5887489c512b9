"""The one full-ranking evaluator: Recall@K, NDCG@K (K = 5, 10, 20) and MRR over ALL test users.

Input per user: a ranked list of distinct item ids over the whole catalogue (no sampled negatives), padded with
NO_ITEM where a model returns fewer items. With one target per user, Recall@K = HR@K and NDCG@K = 1/log2(rank+1)
when the target is at rank <= K, else 0; a user whose list misses the target scores 0. These are RecBole's
definitions (checked against RecBole's own full-sort evaluation in the baselines' tests).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eager_bench.errors import BenchError

NO_ITEM = -1
CUTOFFS = (5, 10, 20)
MAX_K = max(CUTOFFS)


@dataclass
class Evaluation:
    metrics: dict[str, float]
    ranks: np.ndarray  # 1-based rank of each user's target in its list; 0 = not in the list

    def __getitem__(self, key: str) -> float:
        return self.metrics[key]


def validate_rankings(rankings: np.ndarray, n_items: int) -> None:
    """Duplicate or out-of-range ids are an error, never silently scored."""
    if rankings.ndim != 2:
        raise BenchError(f"rankings must be a 2-d array [users, K], got shape {rankings.shape}")
    real = rankings != NO_ITEM
    if np.any(real & ((rankings < 1) | (rankings > n_items))):
        bad = rankings[real & ((rankings < 1) | (rankings > n_items))][0]
        raise BenchError(f"ranking contains item id {bad} outside 1..{n_items}")
    # A pad followed by a real item would silently shift ranks.
    if np.any(~real[:, :-1] & real[:, 1:]):
        raise BenchError("ranking has a real item after a NO_ITEM pad")
    ordered = np.sort(np.where(real, rankings, -np.arange(1, rankings.shape[1] + 1)), axis=1)
    dup_rows = np.flatnonzero(np.any(ordered[:, 1:] == ordered[:, :-1], axis=1))
    if dup_rows.size:
        row = dup_rows[0]
        values, counts = np.unique(rankings[row][real[row]], return_counts=True)
        raise BenchError(f"ranking of user row {row} repeats item {values[counts > 1][0]}")


def target_ranks(rankings: np.ndarray, targets: np.ndarray) -> np.ndarray:
    hits = rankings == targets[:, None]
    return np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, 0).astype(np.int64)


def metrics_from_ranks(ranks: np.ndarray, cutoffs: tuple[int, ...] = CUTOFFS) -> dict[str, float]:
    if ranks.size == 0:
        raise BenchError("no users to evaluate")
    found = ranks > 0
    gain = np.zeros(ranks.shape, dtype=np.float64)
    gain[found] = 1.0 / np.log2(ranks[found] + 1.0)
    out: dict[str, float] = {}
    for k in cutoffs:
        within = found & (ranks <= k)
        out[f"Recall@{k}"] = float(within.mean())
        out[f"NDCG@{k}"] = float(np.where(within, gain, 0.0).mean())
    reciprocal = np.zeros(ranks.shape, dtype=np.float64)
    reciprocal[found] = 1.0 / ranks[found]
    out["MRR"] = float(reciprocal.mean())
    return out


def evaluate(rankings: np.ndarray, targets: np.ndarray, n_items: int,
             cutoffs: tuple[int, ...] = CUTOFFS) -> Evaluation:
    rankings = np.asarray(rankings)
    targets = np.asarray(targets)
    if rankings.shape[0] != targets.shape[0]:
        raise BenchError(f"{rankings.shape[0]} ranked lists for {targets.shape[0]} users")
    validate_rankings(rankings, n_items)
    ranks = target_ranks(rankings, targets)
    return Evaluation(metrics_from_ranks(ranks, cutoffs), ranks)


def pad_rankings(lists: list[list[int]] | list[np.ndarray], length: int = MAX_K) -> np.ndarray:
    """Ragged per-user lists -> [users, length] array padded with NO_ITEM (longer lists are cut)."""
    out = np.full((len(lists), length), NO_ITEM, dtype=np.int64)
    for row, items in enumerate(lists):
        items = np.asarray(items, dtype=np.int64)[:length]
        out[row, : len(items)] = items
    return out
