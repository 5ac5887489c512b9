"""The evaluator against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from eager_bench.errors import BenchError
from eager_bench.evaluation import NO_ITEM, evaluate, metrics_from_ranks, pad_rankings


def test_hand_computed_single_user_hits() -> None:
    # Target 7 at rank 3 of a 20-item list: Recall@5 = 1, NDCG@5 = 1/log2(4) = 0.5, MRR = 1/3.
    ranking = np.array([[3, 9, 7] + list(range(10, 27))])
    result = evaluate(ranking, np.array([7]), n_items=30)
    assert result["Recall@5"] == 1.0
    assert result["NDCG@5"] == pytest.approx(0.5)
    assert result["MRR"] == pytest.approx(1 / 3)
    assert result.ranks.tolist() == [3]


def test_average_over_all_users_including_misses_and_empty_lists() -> None:
    rankings = pad_rankings([[1, 2, 3, 4, 5, 6], [5, 4], [], list(range(1, 21))], length=20)
    targets = np.array([6, 4, 9, 12])
    result = evaluate(rankings, targets, n_items=25)
    # ranks: 6, 2, miss (empty list), 12
    assert result.ranks.tolist() == [6, 2, 0, 12]
    assert result["Recall@5"] == pytest.approx(1 / 4)
    assert result["Recall@10"] == pytest.approx(2 / 4)
    assert result["Recall@20"] == pytest.approx(3 / 4)
    assert result["NDCG@5"] == pytest.approx((1 / math.log2(3)) / 4)
    assert result["NDCG@10"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(7)) / 4)
    assert result["NDCG@20"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(7) + 1 / math.log2(13)) / 4)
    assert result["MRR"] == pytest.approx((1 / 6 + 1 / 2 + 1 / 12) / 4)


def test_target_exactly_at_cutoff_counts_and_one_past_does_not() -> None:
    result = metrics_from_ranks(np.array([5, 6]))
    assert result["Recall@5"] == 0.5
    assert result["NDCG@5"] == pytest.approx((1 / math.log2(6)) / 2)


def test_short_lists_tie_with_long_lists_when_target_is_early() -> None:
    short = evaluate(pad_rankings([[4, 2]]), np.array([2]), 10)
    long = evaluate(np.array([[4, 2, 1, 3, 5, 6, 7, 8, 9, 10]]), np.array([2]), 10)
    assert short.metrics == long.metrics


@pytest.mark.parametrize(
    "ranking, message",
    [
        ([[1, 2, 2]], "repeats item 2"),
        ([[1, 0, 3]], "outside 1..5"),
        ([[1, 6, 3]], "outside 1..5"),
        ([[1, NO_ITEM, 3]], "after a NO_ITEM pad"),
    ],
)
def test_invalid_rankings_are_errors(ranking: list[list[int]], message: str) -> None:
    with pytest.raises(BenchError, match=message):
        evaluate(np.array(ranking), np.array([1]), n_items=5)


def test_user_count_mismatch_is_an_error() -> None:
    with pytest.raises(BenchError, match="2 ranked lists for 1 users"):
        evaluate(np.array([[1], [2]]), np.array([1]), n_items=5)
