"""Bulk dropout: the same operation as nn.Dropout (drop rate, unbiased scale, eval = identity), reproducible under a
seed, and swapped into every nn.Dropout of a network."""

from __future__ import annotations

import torch
from torch import nn

from eager_bench.fast_dropout import BulkDropout, bulk_dropout, use_bulk_dropout


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


def test_functional_bulk_dropout_draws_the_module_s_mask():
    x = torch.randn(32, 50)
    torch.manual_seed(5)
    a = BulkDropout(0.1).train()(x)
    torch.manual_seed(5)
    b = bulk_dropout(x, 0.1)
    assert torch.equal(a, b)
    assert torch.equal(bulk_dropout(x, 0.1, training=False), x)


def _tiny_t5():
    from transformers import T5Config, T5ForConditionalGeneration
    torch.manual_seed(0)
    config = T5Config(vocab_size=40, d_model=16, d_kv=4, d_ff=32, num_layers=2, num_decoder_layers=2, num_heads=2,
                      dropout_rate=0.0, pad_token_id=0, decoder_start_token_id=0, use_cache=False)
    return T5ForConditionalGeneration(config)


def _t5_loss(model, dropout: float) -> torch.Tensor:
    for module in model.modules():  # attention-weight dropout only: the nn.Dropout modules stay at 0
        if hasattr(module, "relative_attention_num_buckets"):
            module.dropout = dropout
    ids = torch.tensor([[5, 6, 7, 8, 0, 0], [9, 10, 11, 12, 13, 14]])
    labels = torch.tensor([[3, 4, 5], [6, 7, 8]])
    return model.train()(input_ids=ids, attention_mask=(ids != 0).long(), labels=labels).loss


def test_t5_bulk_attention_is_sdpa_when_nothing_is_dropped_and_drops_in_training():
    from baselines.t5_attention import NAME, use_bulk_attention_dropout
    reference = _tiny_t5()
    bulk = _tiny_t5()
    use_bulk_attention_dropout(bulk)
    assert bulk.config._attn_implementation == NAME and bulk.encoder.config._attn_implementation == NAME
    # p = 1e-9 rounds to "keep every weight": the training path (own math, padding + causal + bias mask) must equal
    # sdpa without dropout, in the loss and in every gradient
    want = _t5_loss(reference, 0.0)
    got = _t5_loss(bulk, 1e-9)
    assert torch.allclose(got, want, atol=1e-6)
    want.backward()
    got.backward()
    for (name, p), (_, q) in zip(reference.named_parameters(), bulk.named_parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-5), name
    # a real rate drops weights: the loss moves, reproducibly under a seed
    torch.manual_seed(1)
    a = _t5_loss(bulk, 0.5).item()
    torch.manual_seed(1)
    b = _t5_loss(bulk, 0.5).item()
    assert a == b and abs(a - got.item()) > 1e-4
