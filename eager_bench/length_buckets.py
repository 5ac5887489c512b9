"""Length-bucketed training batches: the batches of one epoch grouped by sequence length, so that each can be cut to
its longest sequence without padding work.

Each epoch, a permutation seeded by (seed, epoch) is cut into pools of `pool` batches, each pool is sorted by length
and cut into batches, and the batches are visited in a seeded random order. Every instance is still seen once per
epoch and an epoch depends on (seed, epoch) only, so a resumed run replays it; what changes against a plain shuffle is
which instances share a batch (ones of similar length). Used by RecBole's models (baselines/recbole_batches.py) and
EAGER (`length_buckets`).
"""

from __future__ import annotations

import numpy as np


def bucketed_batches(lengths: np.ndarray, batch_size: int, seed: int, epoch: int,
                     pool: int = 50) -> list[np.ndarray]:
    """Epoch `epoch`'s batches (index arrays into `lengths`, the sort keys), ceil(n / batch_size) of them."""
    keys = np.asarray(lengths)
    rng = np.random.default_rng([int(seed), int(epoch)])
    perm = rng.permutation(len(keys))
    span = int(pool) * int(batch_size)
    out: list[np.ndarray] = []
    for start in range(0, len(perm), span):
        chunk = perm[start:start + span]
        chunk = chunk[np.argsort(keys[chunk], kind="stable")]
        out += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [out[i] for i in rng.permutation(len(out))]
