"""Training batches without padding work for RecBole's sequential models: length-bucketed batches, each trimmed to
its longest sequence.

RecBole pads every training sequence to MAX_ITEM_LIST_LENGTH (50) on the right, and its SASRec and BERT4Rec mask
padding out of attention and read the output at position ITEM_SEQ_LEN - 1 (SASRec) or at the masked positions
(BERT4Rec). So cutting the all-padding columns off a batch changes no output of a real position: the same numbers up
to float summation order, at a fraction of the work (Beauty's training sequences: median length 4, 90th percentile
12). Trimming pays only when the sequences of a batch are of similar length, hence the bucketing: each epoch, a
seeded permutation is cut into pools of `pool` batches, each pool is sorted by length and cut into batches, and the
batches are visited in a seeded random order (eager_bench.length_buckets). Every instance is still seen once per
epoch; what changes is which instances share a batch (batches of similar length), a declared option
(`length_buckets`) measured at equal updates in benchmarks/train_throughput.py.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np
import torch

from eager_bench.length_buckets import bucketed_batches


class LengthBucketBatchSampler(torch.utils.data.Sampler):
    """Batches of indices into the training rows, grouped by sequence length (see the module docstring)."""

    def __init__(self, lengths: np.ndarray, batch_size: int, seed: int, pool: int = 50, floor: int = 1) -> None:
        # Sort key max(length, floor): with floor 2, BERT4Rec's length-1 instances (which never carry a target, see
        # BERT4Rec.guard_loss) share batches with length-2 ones instead of filling target-less batches of their own.
        self.lengths = np.maximum(np.asarray(lengths), int(floor))
        self.batch_size, self.seed, self.pool = int(batch_size), int(seed), int(pool)
        self.epoch = 0  # advanced by every pass, so epoch e's batches depend on (seed, e) only

    def batches(self, epoch: int) -> list[np.ndarray]:
        return bucketed_batches(self.lengths, self.batch_size, self.seed, epoch, self.pool)

    def __iter__(self) -> Iterator[list[int]]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        for batch in self.batches(epoch):
            yield batch.tolist()

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)


def trimmed(inner: Callable[[Any], Any], length_field: str, width: int) -> Callable[[Any], Any]:
    """collate_fn whose batches lose the padding columns after their longest sequence: every [B, width] field (the
    item sequence, BERT4Rec's masked copy of it) is cut to [B, max(length_field)]."""

    def collate(index: Any) -> Any:
        batch = inner(index)
        longest = int(batch[length_field].max())
        if longest < width:
            for field in list(batch.interaction):
                value = batch.interaction[field]
                if value.dim() == 2 and value.shape[1] == width:
                    batch.interaction[field] = value[:, :longest]
        return batch

    return collate


def install(loader: Any, length_field: str, width: int, seed: int, pool: int = 50,
            floor: int = 1) -> LengthBucketBatchSampler:
    """Make a RecBole TrainDataLoader (a torch DataLoader over row indices) yield bucketed, trimmed batches."""
    lengths = loader._dataset.inter_feat[length_field].numpy()
    sampler = LengthBucketBatchSampler(lengths, loader.step, seed, pool, floor)
    # torch.utils.data.DataLoader refuses to have its batch_sampler replaced after __init__; RecBole builds the
    # loader for us, so go round that guard (the DataLoader reads batch_sampler when an epoch's iterator starts).
    object.__setattr__(loader, "batch_sampler", sampler)
    loader.collate_fn = trimmed(loader.collate_fn, length_field, width)
    return sampler
