"""T5 attention whose attention-weight dropout draws its mask in bulk (eager_bench.fast_dropout).

transformers' T5 runs attention through `scaled_dot_product_attention` (the `sdpa` implementation). With
`dropout_p > 0` on CPU that call takes torch's math path and draws one Bernoulli per attention weight: after the
nn.Dropout modules were replaced by bulk masks, `bernoulli_` was still 31% of TIGER's bf16 training step
(torch.profiler, Beauty, cpu profile). This registers one more attention implementation through transformers' own
extension point (`AttentionInterface`, with the `sdpa` mask format): at inference, or with dropout 0, it IS the sdpa
call; in training it computes the same softmax(QK^T * scale + bias + mask) V with the dropout mask drawn in bulk.
Like bulk dropout elsewhere it is a different, equally valid random draw, declared by `dropout_rng: bulk`.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AttentionInterface, PreTrainedModel
from transformers.integrations.sdpa_attention import create_position_bias_mask, sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from eager_bench.fast_dropout import bulk_dropout

NAME = "sdpa_bulk_dropout"


def sdpa_bulk_dropout_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                                attention_mask: torch.Tensor | None, dropout: float = 0.0,
                                scaling: float | None = None, is_causal: bool | None = None,
                                position_bias: torch.Tensor | None = None, **kwargs) -> tuple[torch.Tensor, None]:
    if dropout == 0.0 or not module.training:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=0.0, scaling=scaling,
                                      is_causal=is_causal, position_bias=position_bias, **kwargs)
    # T5 always passes its relative-position bias (zeros in layers without one); the library folds bias, padding mask
    # and causality into one additive mask, as its sdpa path does
    causal = query.shape[2] > 1 and attention_mask is None and (is_causal if is_causal is not None
                                                                else getattr(module, "is_causal", True))
    mask = create_position_bias_mask(position_bias, attention_mask, causal, query, key)
    scale = query.shape[-1] ** -0.5 if scaling is None else scaling
    scores = torch.matmul(query, key.transpose(2, 3)) * scale + mask
    weights = bulk_dropout(torch.softmax(scores, dim=-1), dropout, training=True)
    out = torch.matmul(weights.to(value.dtype), value)
    return out.transpose(1, 2).contiguous(), None


def use_bulk_attention_dropout(model: PreTrainedModel) -> None:
    """Switch a T5 model from `sdpa` to the same attention with bulk attention dropout."""
    AttentionInterface.register(NAME, sdpa_bulk_dropout_attention)  # registering again replaces the same entry
    AttentionMaskInterface.register(NAME, sdpa_mask)
    model.set_attn_implementation(NAME)
