"""Bulk dropout: the same operation as nn.Dropout (drop rate, unbiased scale, eval = identity), reproducible under a
seed, and swapped into every nn.Dropout of a network."""

from __future__ import annotations

import torch
from torch import nn

from eager_bench.fast_dropout import BulkDropout, use_bulk_dropout


def test_drop_rate_and_scale_match_nn_dropout():
    x = torch.ones(400, 1000)
    layer = BulkDropout(0.1).train()
    y = layer(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.9) < 0.002  # 400k draws: 3 sigma is ~0.0014
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / (1 - layer.p)))
    assert abs(y.mean().item() - 1.0) < 0.003  # unbiased: E[output] = input
    assert layer.p == 6554 / 65536  # 0.1 quantised to 16 bits


def test_eval_is_identity_and_a_seed_reproduces_the_mask():
    x = torch.randn(64, 33)
    layer = BulkDropout(0.5)
    assert torch.equal(layer.eval()(x), x)
    layer.train()
    torch.manual_seed(3)
    a = layer(x)
    torch.manual_seed(3)
    b = layer(x)
    assert torch.equal(a, b) and not torch.equal(a, x)


def test_every_dropout_module_of_a_transformer_is_swapped_and_gradients_flow():
    net = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32, 0.2, batch_first=True), 2)
    assert use_bulk_dropout(net) == 6  # per layer: dropout, dropout1, dropout2
    assert not any(type(m) is nn.Dropout for m in net.modules())
    x = torch.randn(4, 5, 16, requires_grad=True)
    net.train()(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
