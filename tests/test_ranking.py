"""The one tie rule (higher score first, then the smaller id) on hand-made ties, and every score-based ranker using it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eager_bench.data.dataset import SequenceDataset
from eager_bench.eager.beam import StreamResult, merge
from eager_bench.evaluation import NO_ITEM
from eager_bench.models.base import RunContext
from eager_bench.models.markov import Markov
from eager_bench.models.popularity import Popularity
from eager_bench.ranking import top_k
from eager_bench.split import leave_one_out


def reference(scores: np.ndarray, k: int, ids: np.ndarray | None = None) -> np.ndarray:
    """The rule written out the slow way: sort each row's columns by (-score, id)."""
    ids = np.arange(scores.shape[1]) if ids is None else ids
    return np.array([sorted(range(scores.shape[1]), key=lambda j: (-row[j], ids[j]))[:k] for row in scores])


def test_hand_made_ties_rank_the_smaller_id_first():
    scores = np.array([[1.0, 3.0, 3.0, 2.0, 3.0, 0.0],
                       [5.0, 5.0, 5.0, 5.0, 5.0, 5.0]])
    assert top_k(scores, 4).tolist() == [[1, 2, 4, 3], [0, 1, 2, 3]]
    assert top_k(torch.tensor(scores), 4).tolist() == [[1, 2, 4, 3], [0, 1, 2, 3]]
    # Columns standing for other ids: equal scores go to the smaller id, not the earlier column.
    ids = np.array([10, 2, 7, 1, 3, 4])
    assert top_k(scores, 4, ids).tolist() == [[1, 4, 2, 3], [3, 1, 4, 5]]
    assert top_k(torch.tensor(scores), 4, torch.tensor(ids)).tolist() == [[1, 4, 2, 3], [3, 1, 4, 5]]


def test_nan_ranks_last_and_k_is_capped():
    scores = np.array([[np.nan, 1.0, -np.inf, 1.0]])
    assert top_k(scores, 10).tolist() == [[1, 3, 0, 2]]  # NaN ranks as -inf: tied with column 2, smaller id first
    assert top_k(scores[0], 2).tolist() == [1, 3]  # a 1-d input is one row
    assert top_k(np.zeros((0, 5)), 3).shape == (0, 3)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_random_ties_match_the_rule(backend):
    rng = np.random.default_rng(0)
    for _ in range(200):
        rows, n = int(rng.integers(1, 5)), int(rng.integers(1, 60))
        k = int(rng.integers(1, n + 3))
        scores = rng.integers(0, 4, size=(rows, n)).astype(np.float64)  # few distinct values: ties everywhere
        ids = rng.permutation(n) + 1
        got = top_k(scores if backend == "numpy" else torch.tensor(scores), k,
                    ids if backend == "numpy" else torch.tensor(ids))
        assert np.array_equal(np.asarray(got), reference(scores, min(k, n), ids))


def _tied_dataset() -> SequenceDataset:
    # Items 1-6; every item is seen equally often and every transition once, so only the tie rule orders them.
    seqs = [np.array(s) for s in ([1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1], [2, 4, 6, 1, 3, 5], [5, 3, 1, 6, 4, 2])]
    return SequenceDataset("ties", seqs, n_items=6)


def test_popularity_and_markov_break_equal_scores_by_item_id(tmp_path):
    dataset = _tied_dataset()
    split = leave_one_out(dataset, 50)
    context = RunContext(run_dir=tmp_path, seed=0)
    popularity = Popularity({}, dataset, context)
    popularity.fit(split)
    counts = np.bincount(np.concatenate(split.train), minlength=7)[1:]
    expected = sorted(range(1, 7), key=lambda i: (-counts[i - 1], i))
    assert popularity.recommend([np.array([1])], 6)[0].tolist() == expected

    markov = Markov({"popularity_weight": 0.0}, dataset, context)
    markov.fit(split)
    # With no popularity prior every unseen successor scores 0: they must come in item-id order.
    ranked = markov.recommend([np.array([3])], 6)[0].tolist()
    row = markov.transitions[3].toarray()[0]
    assert ranked == sorted(range(1, 7), key=lambda i: (-row[i], i))


def test_merge_breaks_equal_scores_by_item_id():
    def stream(items, scores):
        t = torch.tensor([items])
        return StreamResult(t, torch.tensor([scores], dtype=torch.float32), torch.zeros(1, 2), [],
                            torch.zeros(1, 2, 2))

    results = {"behavior": stream([9, 4, NO_ITEM], [-1.0, -2.0, float("-inf")]),
               "semantic": stream([3, 9, 7], [-1.0, -1.0, -2.0])}
    # 9 (-1, twice) and 3 (-1) tie: 3 first; then 4 and 7 tie at -2: 4 first.
    assert merge(results, None, 4)[0].tolist() == [3, 9, 4, 7]
