"""Invariants of the shared leave-one-out split, on the real Beauty and Yelp files and on small data."""

from __future__ import annotations

import numpy as np
import pytest

from eager_bench.data import load_dataset
from eager_bench.data.dataset import SequenceDataset
from eager_bench.errors import BenchError
from eager_bench.split import leave_one_out


@pytest.fixture(scope="module")
def beauty(data_dir):
    return load_dataset("Beauty", data_dir)


def test_targets_are_last_and_second_to_last(beauty) -> None:
    split = leave_one_out(beauty)
    for user in (0, 1, 100, len(beauty.sequences) - 1):
        seq = beauty.sequences[user]
        assert split.test.targets[user] == seq[-1]
        assert split.valid.targets[user] == seq[-2]
        assert np.array_equal(split.train[user], seq[:-2])
        # The test history includes the validation item.
        assert split.test.histories[user][-1] == seq[-2]


def test_every_user_once_in_valid_and_test_and_counts_add_up(beauty) -> None:
    split = leave_one_out(beauty)
    assert len(np.unique(split.valid.users)) == len(split.valid) == beauty.n_users
    assert len(np.unique(split.test.users)) == len(split.test) == beauty.n_users
    n_train = sum(len(s) for s in split.train)
    assert n_train + len(split.valid) + len(split.test) == beauty.n_interactions == 198_502
    histories, targets = split.train_pairs()
    assert len(targets) == 198_502 - 3 * 22_363  # RecBole's 131,413 augmented training samples


def test_no_eval_target_is_a_training_target_of_that_user(beauty) -> None:
    # Amazon sequences never repeat an item, so this holds by item id, not only by position.
    split = leave_one_out(beauty)
    for user, train in enumerate(split.train):
        assert split.test.targets[user] not in set(train[1:].tolist())
        assert split.valid.targets[user] not in set(train[1:].tolist())
        assert split.test.targets[user] not in set(split.test.histories[user].tolist())


def test_yelp_repeats_are_kept_and_held_out_by_position(data_dir) -> None:
    yelp = load_dataset("Yelp", data_dir)
    split = leave_one_out(yelp)
    assert sum(len(s) for s in split.train) + 2 * yelp.n_users == yelp.n_interactions
    for user in range(0, yelp.n_users, 997):
        assert split.test.targets[user] == yelp.sequences[user][-1]


def test_history_cap_and_fingerprint(beauty) -> None:
    capped = leave_one_out(beauty, max_history=5)
    assert max(len(h) for h in capped.test.histories) == 5
    assert leave_one_out(beauty).fingerprint == leave_one_out(beauty).fingerprint
    assert capped.fingerprint != leave_one_out(beauty).fingerprint


def test_split_rejects_too_short_sequences() -> None:
    tiny = SequenceDataset("tiny", [np.array([1, 2])], n_items=2)
    with pytest.raises(BenchError, match="at least 3"):
        leave_one_out(tiny)
