"""EAGER's network: one encoder shared by both streams, one code decoder per stream, the STT transfer decoder.

Layout follows the official code (EAGER.md §4.4-4.5): the encoder reads item IDs (not codes), each stream with its
own ID rows but the same Transformer layers; each decoder reads `[BOS, c1, k + c1*k + c2, CLS]` (level-2 tokens are
parent-specific, one row per leaf), its logits are tied to its input embeddings, and the last position (CLS) is the
summary token used by GCT and STT. Post-LN layers, GELU, dropout 0.1, init std 0.02 as BertConfig's defaults.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

STREAMS = ("behavior", "semantic")


class Embed(nn.Module):
    """Token + learned absolute position, then LayerNorm and dropout (BERT embeddings)."""

    def __init__(self, n_tokens: int, n_positions: int, d_model: int, dropout: float) -> None:
        super().__init__()
        self.tokens = nn.Embedding(n_tokens, d_model)
        self.positions = nn.Embedding(n_positions, d_model)
        self.norm = nn.LayerNorm(d_model, eps=1e-12)
        self.dropout = nn.Dropout(dropout)

    def forward(self, ids: torch.Tensor, position: int | None = None, first: int = 0) -> torch.Tensor:
        """Positions first..first+L-1 along the last axis, or every token at `position` (cached decoding). A
        left-padded history cut to its last L columns passes first = max_history - L, so every item keeps the
        position it has in the full-width row."""
        if position is None:
            pos = self.positions(torch.arange(first, first + ids.shape[-1], device=ids.device))
        else:
            pos = self.positions.weight[position]
        return self.dropout(self.norm(self.tokens(ids) + pos))


def _layer(d_model: int, heads: int, ffn: int, dropout: float, decoder: bool) -> nn.Module:
    cls = nn.TransformerDecoderLayer if decoder else nn.TransformerEncoderLayer
    return cls(d_model, heads, ffn, dropout, activation="gelu", batch_first=True, norm_first=False,
               layer_norm_eps=1e-12)


class CodeDecoder(nn.Module):
    """One stream's decoder over the 2-level code; token rows: [0,k) level 1, [k, k+k^2) leaves, BOS, PAD, CLS."""

    def __init__(self, branch: int, d_model: int, heads: int, ffn: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.k = branch
        self.bos, self.pad, self.cls = branch + branch ** 2, branch + branch ** 2 + 1, branch + branch ** 2 + 2
        self.embed = Embed(branch + branch ** 2 + 3, 5, d_model, dropout)
        self.layers = nn.TransformerDecoder(_layer(d_model, heads, ffn, dropout, True), layers)
        self.register_buffer("causal", torch.triu(torch.full((4, 4), float("-inf")), 1), persistent=False)

    def inputs(self, codes: torch.Tensor) -> torch.Tensor:
        """[B, 2] codes -> [B, 4] decoder token ids [BOS, c1, k + c1*k + c2, CLS]."""
        b = codes.shape[0]
        bos = torch.full((b, 1), self.bos, dtype=torch.long, device=codes.device)
        cls = torch.full((b, 1), self.cls, dtype=torch.long, device=codes.device)
        leaf = self.k + codes[:, 0] * self.k + codes[:, 1]
        return torch.cat([bos, codes[:, :1], leaf[:, None], cls], dim=1)

    def forward(self, codes: torch.Tensor, memory: torch.Tensor,
                memory_pad: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher-forced hidden states [B, 4, d] for the given codes."""
        x = self.embed(self.inputs(codes))
        # tgt_is_causal states what the mask is, so torch does not compare it on every call (a host sync).
        return self.layers(x, memory, tgt_mask=self.causal, memory_key_padding_mask=memory_pad, tgt_is_causal=True)

    def level1_rows(self) -> torch.Tensor:
        return self.embed.tokens.weight[: self.k]

    def level2_rows(self) -> torch.Tensor:
        """[k, k, d]: row [c1, c2] is leaf (c1, c2)'s token embedding."""
        return self.embed.tokens.weight[self.k: self.k + self.k ** 2].view(self.k, self.k, -1)

    def code_logits(self, hidden: torch.Tensor, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Level-1 logits over k tokens and level-2 logits over the k children of the true c1 (tied weights)."""
        logits1 = hidden[:, 0] @ self.level1_rows().T
        logits2 = torch.einsum("bd,bjd->bj", hidden[:, 1], self.level2_rows()[codes[:, 0]])
        return logits1, logits2

    # --- cached inference: the BOS position and the memory projections are shared by every beam of a user ---

    def bos_cache(self, memory: torch.Tensor, memory_pad: torch.Tensor | None) -> tuple[torch.Tensor, list]:
        """Run position 0 (BOS) for each user once: its hidden state and, per layer, what position 1 needs."""
        x = self.embed(torch.full((memory.shape[0], 1), self.bos, dtype=torch.long, device=memory.device))
        cache = []
        for layer in self.layers.layers:
            d = x.shape[-1]
            w, b = layer.self_attn.in_proj_weight, layer.self_attn.in_proj_bias
            k0 = F.linear(x, w[d:2 * d], b[d:2 * d])
            v0 = F.linear(x, w[2 * d:], b[2 * d:])
            cw, cb = layer.multihead_attn.in_proj_weight, layer.multihead_attn.in_proj_bias
            km = F.linear(memory, cw[d:2 * d], cb[d:2 * d])
            vm = F.linear(memory, cw[2 * d:], cb[2 * d:])
            cache.append((k0, v0, km, vm))
            x = layer(x, memory, memory_key_padding_mask=memory_pad)
        return x[:, 0], cache

    def step1_hidden(self, tokens: torch.Tensor, cache: list, memory_pad: torch.Tensor | None) -> torch.Tensor:
        """Hidden states at position 1 for level-1 tokens [U, c] (c continuations per user; eval mode, no dropout).

        `cache`/`memory_pad` are `bos_cache`'s output for the same U users. Same arithmetic as
        nn.TransformerDecoderLayer (post-LN) restricted to the one new position; a test checks it against the full
        forward. Returns [U, c, d].
        """
        u, c = tokens.shape
        x = self.embed(tokens, position=1)  # [U, c, d]
        for layer, (k0, v0, km, vm) in zip(self.layers.layers, cache):
            sa = layer.self_attn
            d, h = x.shape[-1], sa.num_heads
            q1, k1, v1 = F.linear(x, sa.in_proj_weight, sa.in_proj_bias).chunk(3, dim=-1)
            # Each continuation attends to the user's BOS position and to itself (causal, two keys).
            keys = torch.stack([k0.expand(u, c, d), k1], dim=2).view(u * c, 2, d)
            values = torch.stack([v0.expand(u, c, d), v1], dim=2).view(u * c, 2, d)
            a = _attend(q1.reshape(u * c, 1, d), keys, values, h, None).view(u, c, d)
            x = layer.norm1(x + sa.out_proj(a))
            ca = layer.multihead_attn
            q = F.linear(x, ca.in_proj_weight[:d], ca.in_proj_bias[:d])
            x = layer.norm2(x + ca.out_proj(_attend(q, km, vm, h, memory_pad)))
            x = layer.norm3(x + layer.linear2(layer.activation(layer.linear1(x))))
        return x


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, pad: torch.Tensor | None) -> torch.Tensor:
    m, lq, d = q.shape
    split = lambda t: t.view(m, t.shape[1], heads, d // heads).transpose(1, 2)  # noqa: E731
    mask = None if pad is None else ~pad[:, None, None, :]
    out = F.scaled_dot_product_attention(split(q), split(k), split(v), attn_mask=mask)
    return out.transpose(1, 2).reshape(m, lq, d)


def sinusoid(n: int, d: int) -> torch.Tensor:
    """fairseq-style sinusoidal positions with position 0 as the padding position (zero), as the code's table."""
    half = d // 2
    freq = torch.exp(torch.arange(half, dtype=torch.float) * -(math.log(10000.0) / (half - 1)))
    pos = torch.arange(n, dtype=torch.float)[:, None] * freq[None]
    table = torch.cat([torch.sin(pos), torch.cos(pos)], dim=1)
    table[0] = 0.0
    return table


class TransferHead(nn.Module):
    """STT: a 1-layer bidirectional decoder over [start, c1, c2] cross-attending one guide token (semantic summary)."""

    def __init__(self, d_model: int, guide_dim: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.guide_proj = nn.Linear(guide_dim, d_model)
        self.decoder = nn.TransformerDecoderLayer(d_model, heads, ffn, 0.0, batch_first=True, norm_first=False)
        self.score = nn.Linear(d_model, 1)
        self.start = nn.Parameter(torch.zeros(d_model))
        self.mask = nn.Parameter(torch.zeros(d_model))
        self.register_buffer("positions", sinusoid(3, d_model), persistent=False)

    def forward(self, tokens: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        return self.decoder(tokens, self.guide_proj(guide)[:, None])


class EagerNet(nn.Module):
    """The whole trainable model. `streams` lists the active streams (one or both)."""

    def __init__(self, n_items: int, branch: dict[str, int], target_dims: dict[str, int], streams: list[str],
                 d_model: int, heads: int, ffn: int, encoder_layers: int, decoder_layers: int, dropout: float,
                 max_history: int, transfer: bool, transfer_ffn: int) -> None:
        super().__init__()
        self.n_items, self.streams = n_items, list(streams)
        # Per-stream ID rows (stream s, item i -> s*(N+1)+i, item 0 = that stream's trainable PAD). Unlike the code,
        # no item lands on a frozen padding row (its semantic item N-1 did).
        self.encoder_embed = Embed(len(STREAMS) * (n_items + 1), max_history, d_model, dropout)
        self.encoder = nn.TransformerEncoder(_layer(d_model, heads, ffn, dropout, False), encoder_layers,
                                             enable_nested_tensor=False)
        self.decoders = nn.ModuleDict({s: CodeDecoder(branch[s], d_model, heads, ffn, decoder_layers, dropout)
                                       for s in self.streams})
        # GCT projection (fc_proj1): summary -> the pretrained target space; the semantic one also feeds STT.
        self.projections = nn.ModuleDict({s: nn.Linear(d_model, target_dims[s]) for s in self.streams})
        self.transfer = TransferHead(d_model, target_dims["semantic"], heads, transfer_ffn) if transfer else None
        self.apply(_init)

    def encode(self, history: torch.Tensor, stream: str, mask_padding: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """history [B, L] left-padded item ids (0 = pad) -> memory [B, L, d] and its padding mask (or None)."""
        offset = STREAMS.index(stream) * (self.n_items + 1)
        pad = (history == 0) if mask_padding else None
        if pad is not None:
            pad = pad & ~pad.all(dim=1, keepdim=True)  # never mask a whole row
        memory = self.encoder(self.encoder_embed(history + offset), src_key_padding_mask=pad)
        return memory, pad


def _init(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.MultiheadAttention):
        nn.init.normal_(module.in_proj_weight, std=0.02)
        nn.init.zeros_(module.in_proj_bias)
