"""Trie-constrained beam search for TIGER, vectorised over users and beams.

The valid codes become per-level node tables once: `allowed[l][node]` is the mask of level-l tokens that keep a
prefix valid and `child[l][node, token]` the node the prefix moves to. A beam step is then one table lookup on the
device for all users at once, so the search can never leave the set of valid IDs and needs no Python callback.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from transformers.cache_utils import DynamicCache, EncoderDecoderCache
from transformers.modeling_outputs import BaseModelOutput

from eager_bench.evaluation import NO_ITEM
from eager_bench.ranking import top_k


class CodeTable:
    """The valid codes of a tokenizer as per-level transition tables (node 0 of level 0 is the empty prefix)."""

    def __init__(self, codes: np.ndarray, items: np.ndarray, vocab_sizes: list[int]) -> None:
        codes = np.asarray(codes, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        self.levels = codes.shape[1]
        self.vocab_sizes = list(vocab_sizes)
        node = np.zeros(len(codes), dtype=np.int64)
        self.allowed: list[np.ndarray] = []
        self.child: list[np.ndarray] = []
        for level, size in enumerate(self.vocab_sizes):
            n_nodes = int(node.max()) + 1
            # A node at the next level is a distinct (parent node, token) pair.
            _, nxt = np.unique(node * size + codes[:, level], return_inverse=True)
            allowed = np.zeros((n_nodes, size), dtype=bool)
            allowed[node, codes[:, level]] = True
            child = np.zeros((n_nodes, size), dtype=np.int64)
            child[node, codes[:, level]] = nxt.reshape(-1)
            self.allowed.append(allowed)
            self.child.append(child)
            node = nxt.reshape(-1)
        self.leaf_item = np.full(int(node.max()) + 1, NO_ITEM, dtype=np.int64)
        self.leaf_item[node] = items

    def to(self, device: torch.device | str) -> "DeviceTable":
        return DeviceTable([torch.as_tensor(a, device=device) for a in self.allowed],
                           [torch.as_tensor(c, device=device) for c in self.child],
                           torch.as_tensor(self.leaf_item, device=device), self.vocab_sizes)


@dataclass
class DeviceTable:
    allowed: list[torch.Tensor]
    child: list[torch.Tensor]
    leaf_item: torch.Tensor
    vocab_sizes: list[int]


@dataclass
class BeamResult:
    items: np.ndarray  # [B, beam] item per final beam, best first; NO_ITEM where fewer valid IDs than beams
    codes: np.ndarray  # [B, beam, levels] the generated code (level-local tokens) of each beam
    scores: np.ndarray  # [B, beam] summed log-probabilities (-inf for padding beams)


def level_logits(model, hidden: torch.Tensor, start: int, size: int) -> torch.Tensor:
    """The LM head restricted to one level's token range: what T5's forward computes, for `size` columns only."""
    if model.config.scale_decoder_outputs:
        hidden = hidden * (model.config.d_model ** -0.5)
    return torch.nn.functional.linear(hidden, model.lm_head.weight[start:start + size]).float()


@torch.no_grad()
def constrained_beam_search(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, table: DeviceTable,
                            offsets: list[int], beam: int, start_token: int = 0) -> BeamResult:
    """Beam search over all levels of the ID; the encoder runs once per user and is shared by its beams.

    Each level's distribution is a softmax over that level's token range (as trained), masked to the children of the
    beam's prefix, so every finished beam is a valid ID; all levels, the collision token included, are scored.
    """
    batch = input_ids.shape[0]
    device = input_ids.device
    encoded = model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    # Self- and cross-attention keys/values are cached: the encoder projections are computed once per user and
    # each step feeds only the newest token; the cache is re-indexed to follow the surviving beams.
    cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
    user_of_row = torch.arange(batch, device=device)
    enc_rows, mask_rows = encoded, attention_mask
    node = torch.zeros(batch, 1, dtype=torch.long, device=device)
    score = torch.zeros(batch, 1, device=device)
    generated = torch.zeros(batch, 1, 0, dtype=torch.long, device=device)  # level-local tokens
    last = torch.full((batch, 1), start_token, dtype=torch.long, device=device)
    width = 1
    for level, size in enumerate(table.vocab_sizes):
        hidden = model.decoder(input_ids=last, encoder_hidden_states=enc_rows, encoder_attention_mask=mask_rows,
                               cache=cache, use_cache=True).last_hidden_state[:, -1]
        logp = torch.log_softmax(level_logits(model, hidden, offsets[level], size), dim=-1).view(batch, width, size)
        allowed = table.allowed[level][node]  # [batch, width, size]
        cand = (score.unsqueeze(-1) + logp).masked_fill(~allowed, float("-inf")).view(batch, width * size)
        new_width = min(beam, width * size)
        flat = top_k(cand, new_width)  # equal scores: the earlier (parent beam, token) first
        score = torch.gather(cand, 1, flat)
        parent, token = flat // size, flat % size
        node = table.child[level][node.gather(1, parent), token]
        generated = torch.cat([generated.gather(1, parent.unsqueeze(-1).expand(-1, -1, level)),
                               token.unsqueeze(-1)], dim=2)
        if level + 1 < len(table.vocab_sizes):
            rows = (torch.arange(batch, device=device).unsqueeze(1) * width + parent).reshape(-1)
            cache.self_attention_cache.reorder_cache(rows)
            if new_width != width:
                # Beams of one user share its encoder states, so the cross-attention cache and the encoder rows
                # only change when the number of beams per user does.
                cache.cross_attention_cache.reorder_cache(rows)
                user_of_row = user_of_row[rows]
                enc_rows, mask_rows = encoded[user_of_row], attention_mask[user_of_row]
        last = (token + offsets[level]).reshape(-1, 1)
        width = new_width
    items = table.leaf_item[node].masked_fill(torch.isinf(score), NO_ITEM)
    return BeamResult(items.cpu().numpy(), generated.cpu().numpy(), score.cpu().numpy())


def top_k_distinct(items: np.ndarray, k: int) -> np.ndarray:
    """First k distinct real items per row (beams are sorted best first), NO_ITEM-padded."""
    out = np.full((len(items), k), NO_ITEM, dtype=np.int64)
    for row, beams in enumerate(items):
        _, first = np.unique(beams, return_index=True)
        keep = beams[np.sort(first)]
        keep = keep[keep != NO_ITEM][:k]
        out[row, :len(keep)] = keep
    return out
