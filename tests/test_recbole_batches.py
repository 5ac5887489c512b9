"""Length-bucketed, trimmed RecBole training batches: every instance once per epoch, similar lengths per batch, and
the same loss as the padded batch (padding is masked in SASRec and BERT4Rec)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from baselines.bert4rec import BERT4Rec
from baselines import recbole_compat  # noqa: F401  (before recbole)
from recbole.data.interaction import Interaction
from baselines.recbole_batches import LengthBucketBatchSampler
from baselines.sasrec import SASRec
from eager_bench.config import resolve_config
from eager_bench.data import load_dataset
from eager_bench.models.base import RunContext
from eager_bench.split import leave_one_out


def test_every_instance_once_per_epoch_in_batches_of_similar_length():
    lengths = np.random.default_rng(0).integers(1, 51, size=1000)
    sampler = LengthBucketBatchSampler(lengths, batch_size=32, seed=7, pool=5)
    first, second = list(sampler), list(sampler)
    assert len(first) == len(sampler) == 32
    for epoch in (first, second):
        flat = np.concatenate(epoch)
        assert np.array_equal(np.sort(flat), np.arange(1000))  # each row exactly once
    assert first != second  # reshuffled every epoch
    assert [b.tolist() for b in sampler.batches(0)] == first  # epoch e depends on (seed, e) only
    spread = np.mean([np.ptp(lengths[b]) for b in first])
    assert spread < 0.5 * np.mean([np.ptp(lengths[b]) for b in np.array_split(np.arange(1000), 32)])


@pytest.mark.parametrize("cls, variant", [(SASRec, "tuned"), (BERT4Rec, "default")])
def test_a_trimmed_batch_gives_the_padded_batch_loss(cls, variant, tmp_path: Path):
    dataset = load_dataset("synthetic", None)
    split = leave_one_out(dataset, 50)
    config = resolve_config(cls.config_file, "smoke", variant, overrides={"length_buckets": True})
    model = cls(config, dataset, RunContext(run_dir=tmp_path, seed=0, show_progress=False))
    model._build(split)
    loader = model.train_data
    trimmed = next(iter(loader))
    width = model.max_len
    seq_field = model.net.ITEM_SEQ
    longest = int(trimmed[model.net.ITEM_SEQ_LEN].max())
    assert trimmed[seq_field].shape[1] == longest < width
    # the batch as RecBole would have made it: every trimmed sequence field padded back to the full width
    padded = Interaction({field: torch.nn.functional.pad(value, (0, width - longest))
                          if value.dim() == 2 and field in (seq_field, getattr(model.net, "MASK_ITEM_SEQ", None))
                          else value.clone() for field, value in trimmed.interaction.items()})
    assert padded[seq_field].shape[1] == width and trimmed[seq_field].shape[1] == longest
    model.net.eval()  # no dropout: the two must agree up to float summation order
    with torch.no_grad():
        a = model.net.calculate_loss(trimmed)
        b = model.net.calculate_loss(padded)
    assert torch.allclose(a, b, rtol=1e-5, atol=1e-6), (a, b)


def test_length_floor_mixes_length_one_instances_with_longer_ones():
    # 300 length-1 rows, 300 length-2 rows: without a floor the buckets hold batches of length-1 rows only
    lengths = np.array([1] * 300 + [2] * 300)
    plain = LengthBucketBatchSampler(lengths, batch_size=32, seed=3, pool=20)
    floored = LengthBucketBatchSampler(lengths, batch_size=32, seed=3, pool=20, floor=2)
    assert any((lengths[b] == 1).all() for b in plain.batches(0))
    assert not any((lengths[b] == 1).all() for b in floored.batches(0))
    flat = np.concatenate(floored.batches(0))
    assert np.array_equal(np.sort(flat), np.arange(600))


def test_bert4rec_batch_without_a_masked_target_adds_loss_zero_not_nan(tmp_path: Path):
    dataset = load_dataset("synthetic", None)
    split = leave_one_out(dataset, 50)
    config = resolve_config(BERT4Rec.config_file, "smoke", "default", overrides={"length_buckets": True})
    model = BERT4Rec(config, dataset, RunContext(run_dir=tmp_path, seed=0, show_progress=False))
    model._build(split)
    batch = next(iter(model.train_data))
    with torch.no_grad():
        assert torch.isfinite(model.net.calculate_loss(batch))
        # RecBole reads MASK_INDEX 0 as padding: a batch whose only masked position is the first has no target
        empty = batch.interaction.copy()
        empty[model.net.MASK_INDEX] = torch.zeros_like(batch[model.net.MASK_INDEX])
        loss = model.net.calculate_loss(Interaction(empty))
    assert float(loss) == 0.0
    assert model.targetless_batches == 1
    assert any("no masked target" in n for n in model.variant_notes())
