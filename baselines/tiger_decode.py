"""Trie-constrained beam search for TIGER, vectorised over users and beams.

The valid codes become per-level node tables once: `allowed[l][node]` is the mask of level-l tokens that keep a
prefix valid and `child[l][node, token]` the node the prefix moves to. A beam step is then one table lookup on the
device for all users at once, so the search can never leave the set of valid IDs and needs no Python callback.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from transformers.modeling_outputs import BaseModelOutput

from eager_bench.evaluation import NO_ITEM


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
    node = torch.zeros(batch, 1, dtype=torch.long, device=device)
    score = torch.zeros(batch, 1, device=device)
    generated = torch.zeros(batch, 1, 0, dtype=torch.long, device=device)  # level-local tokens
    width = 1
    for level, size in enumerate(table.vocab_sizes):
        rows = batch * width
        enc = encoded if width == 1 else encoded.repeat_interleave(width, dim=0)
        mask = attention_mask if width == 1 else attention_mask.repeat_interleave(width, dim=0)
        prefix = generated.reshape(rows, level) + torch.as_tensor(offsets[:level], device=device, dtype=torch.long)
        decoder_input = torch.cat([torch.full((rows, 1), start_token, dtype=torch.long, device=device), prefix], 1)
        logits = model(encoder_outputs=BaseModelOutput(last_hidden_state=enc), attention_mask=mask,
                       decoder_input_ids=decoder_input, use_cache=False).logits[:, -1,
                                                                                 offsets[level]:offsets[level] + size]
        logp = torch.log_softmax(logits.float(), dim=-1).view(batch, width, size)
        allowed = table.allowed[level][node]  # [batch, width, size]
        cand = (score.unsqueeze(-1) + logp).masked_fill(~allowed, float("-inf")).view(batch, width * size)
        new_width = min(beam, width * size)
        score, flat = cand.topk(new_width, dim=1)
        parent, token = flat // size, flat % size
        node = table.child[level][node.gather(1, parent), token]
        generated = torch.cat([generated.gather(1, parent.unsqueeze(-1).expand(-1, -1, level)),
                               token.unsqueeze(-1)], dim=2)
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
