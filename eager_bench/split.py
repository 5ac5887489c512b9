"""The one shared leave-one-out split (RecBole's LS valid_and_test with TO order, group by user).

Per user with sequence s_1..s_n (file order = time order): test target s_n with history s_1..s_{n-1}; validation
target s_{n-1} with history s_1..s_{n-2}; training sequence s_1..s_{n-2} (every position >= 2 of it is a training
target for next-item models). Histories keep at most `max_history` most recent items.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from eager_bench.data.dataset import SequenceDataset
from eager_bench.errors import BenchError

MIN_SEQUENCE = 3  # one training item, one validation target, one test target


@dataclass
class EvalSet:
    """Histories (most recent last, truncated) and the single target of each user."""

    users: np.ndarray
    histories: list[np.ndarray]
    targets: np.ndarray

    def __len__(self) -> int:
        return len(self.targets)


@dataclass
class Split:
    dataset: str
    n_items: int
    max_history: int
    train: list[np.ndarray]  # per user: s_1..s_{n-2}, full length (models window it themselves)
    valid: EvalSet
    test: EvalSet
    fingerprint: str = field(default="")

    @property
    def n_users(self) -> int:
        return len(self.train)

    def train_pairs(self, max_history: int | None = None) -> tuple[list[np.ndarray], np.ndarray]:
        """Every (history prefix, next item) pair of the training sequences, as RecBole's augmentation does."""
        cap = max_history or self.max_history
        histories, targets = [], []
        for seq in self.train:
            for end in range(1, len(seq)):
                histories.append(seq[max(0, end - cap):end])
                targets.append(seq[end])
        return histories, np.asarray(targets, dtype=np.int64)


def _fingerprint(n_items: int, max_history: int, train: list[np.ndarray], valid: EvalSet, test: EvalSet) -> str:
    digest = hashlib.sha256(f"loo-v1|{n_items}|{max_history}|".encode())
    for seq in train:
        digest.update(np.asarray(seq, dtype=np.int64).tobytes() + b"|")
    for part in (valid, test):
        digest.update(part.targets.astype(np.int64).tobytes())
        for hist in part.histories:
            digest.update(np.asarray(hist, dtype=np.int64).tobytes() + b"|")
    return digest.hexdigest()


def leave_one_out(dataset: SequenceDataset, max_history: int = 50) -> Split:
    if max_history < 1:
        raise BenchError(f"max_history must be >= 1, got {max_history}")
    train, users = [], []
    valid_hist, valid_tgt, test_hist, test_tgt = [], [], [], []
    for user, seq in enumerate(dataset.sequences):
        seq = np.asarray(seq, dtype=np.int64)
        if len(seq) < MIN_SEQUENCE:
            raise BenchError(f"dataset {dataset.name}: user #{user} has {len(seq)} items, "
                             f"leave-one-out needs at least {MIN_SEQUENCE}")
        users.append(user)
        train.append(seq[:-2])
        valid_hist.append(seq[:-2][-max_history:])
        valid_tgt.append(seq[-2])
        test_hist.append(seq[:-1][-max_history:])
        test_tgt.append(seq[-1])
    user_ids = np.asarray(users, dtype=np.int64)
    valid = EvalSet(user_ids, valid_hist, np.asarray(valid_tgt, dtype=np.int64))
    test = EvalSet(user_ids.copy(), test_hist, np.asarray(test_tgt, dtype=np.int64))
    split = Split(dataset.name, dataset.n_items, max_history, train, valid, test)
    split.fingerprint = _fingerprint(dataset.n_items, max_history, train, valid, test)
    return split
