"""TIGER cost benchmarks: constrained decode latency vs beam width, and one training step, at Beauty's catalogue size.

Run with timings: `pytest tests/benchmarks/test_tiger_bench.py --benchmark-enable --benchmark-columns=mean,stddev`
(`--device`-free: CPU; set TIGER_BENCH_DEVICE=cuda to time a GPU). Without --benchmark-enable each runs once as a
test. The model is untrained, which does not change the work done per step; per-user latency = mean / users.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from transformers import T5Config, T5ForConditionalGeneration

from baselines.tiger_decode import CodeTable, constrained_beam_search, level_logits

DEVICE = os.environ.get("TIGER_BENCH_DEVICE", "cpu")
pytestmark = pytest.mark.slow  # paper-shape models at Beauty's catalogue size: tens of seconds on a loaded 2-core CPU
USERS = 32
N_ITEMS = 12_101  # Beauty
SIZES = [256, 256, 256]
SHAPES = {
    "paper": dict(d_model=128, d_kv=64, num_heads=6, d_ff=1024, num_layers=4, num_decoder_layers=4),
    "cpu": dict(d_model=128, d_kv=32, num_heads=4, d_ff=512, num_layers=2, num_decoder_layers=2),
}


def _codes(seed: int = 0) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(N_ITEMS, 3))
    collision = np.zeros(N_ITEMS, dtype=np.int64)
    seen: dict[tuple[int, ...], int] = {}
    for row, prefix in enumerate(map(tuple, base.tolist())):
        collision[row] = seen.get(prefix, 0)
        seen[prefix] = collision[row] + 1
    return np.concatenate([base, collision[:, None]], 1), SIZES + [int(collision.max()) + 1]


def _model(shape: str, vocab: int) -> T5ForConditionalGeneration:
    torch.manual_seed(0)
    return T5ForConditionalGeneration(T5Config(vocab_size=vocab, feed_forward_proj="relu", decoder_start_token_id=0,
                                               **SHAPES[shape])).to(DEVICE)


@pytest.fixture(scope="module")
def setup():
    codes, sizes = _codes()
    offsets = list(2 + np.cumsum([0] + sizes[:-1]))
    vocab = 2 + sum(sizes) + 2001
    table = CodeTable(codes, np.arange(1, N_ITEMS + 1), sizes)
    lookup = {tuple(c): i + 1 for i, c in enumerate(codes.tolist())}
    # 21 input tokens = user token + 5 items (about Beauty's mean history).
    inputs = torch.randint(2, 2 + sum(sizes), (USERS, 21), device=DEVICE)
    return table.to(DEVICE), offsets, vocab, inputs, lookup


@pytest.mark.parametrize("shape", ["cpu", "paper"])
@pytest.mark.parametrize("beam", [10, 20, 50])
def test_decode_latency(benchmark, setup, shape, beam):
    table, offsets, vocab, inputs, lookup = setup
    model = _model(shape, vocab).eval()
    mask = torch.ones_like(inputs)
    benchmark.extra_info.update({"users": USERS, "beam": beam, "shape": shape, "device": DEVICE})
    res = benchmark.pedantic(constrained_beam_search, args=(model, inputs, mask, table, offsets, beam),
                             rounds=3, iterations=1, warmup_rounds=1)
    finite = np.isfinite(res.scores)
    assert finite.all()  # 12k valid IDs: every beam finds one
    emitted = [lookup.get(tuple(c)) for c in res.codes[finite].tolist()]
    assert None not in emitted  # invalid-ID rate 0
    assert (np.asarray(emitted) == res.items[finite]).all()


@pytest.mark.parametrize("shape", ["cpu", "paper"])
def test_train_step(benchmark, setup, shape):
    table, offsets, vocab, inputs, _ = setup
    model = _model(shape, vocab).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    mask = torch.ones_like(inputs)
    labels = torch.randint(0, 256, (USERS, 4), device=DEVICE)
    dec_in = torch.cat([torch.zeros(USERS, 1, dtype=torch.long, device=DEVICE), labels[:, :3] + 2], 1)

    def step() -> float:
        enc = model.encoder(input_ids=inputs, attention_mask=mask).last_hidden_state
        hid = model.decoder(input_ids=dec_in, encoder_hidden_states=enc, encoder_attention_mask=mask).last_hidden_state
        loss = sum(torch.nn.functional.cross_entropy(level_logits(model, hid[:, lv], offsets[lv], 256), labels[:, lv])
                   for lv in range(3))
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    benchmark.extra_info.update({"batch": USERS, "shape": shape, "device": DEVICE})
    assert np.isfinite(benchmark.pedantic(step, rounds=3, iterations=1, warmup_rounds=1))
