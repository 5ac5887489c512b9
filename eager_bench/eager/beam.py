"""Batched beam search over a stream's 2-level codes, and the merge of both streams' lists.

The official code re-runs the whole model per step with each history copied 100 times (EAGER.md §6). Here the
encoder runs once per user, the BOS position and the memory projections once per user (`CodeDecoder.bos_cache`), and
only the one new position is computed per beam. Level-1 candidates are expanded best first in chunks; a user stops
expanding once its next level-1 log-probability is below its `keep`-th best full path, because log P(c1) + log P(c2|c1)
<= log P(c1). That returns exactly the top-`keep` paths of a width-`width` beam search, with far less work.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from eager_bench.eager.network import CodeDecoder
from eager_bench.evaluation import NO_ITEM

NEG_INF = float("-inf")


@dataclass
class StreamIndex:
    """A stream's code table on the model's device: training code per item and the item of every valid leaf."""

    k: int
    codes: torch.Tensor  # [N, 2]; row i-1 = code of item i (the training code / the code used for re-scoring)
    leaf_item: torch.Tensor  # [k*k]; item of leaf c1*k+c2, NO_ITEM where the leaf decodes to nothing

    @classmethod
    def build(cls, k: int, codes, valid_codes, valid_items, device: str) -> "StreamIndex":
        leaf = torch.full((k * k,), NO_ITEM, dtype=torch.long)
        vc = torch.as_tensor(valid_codes, dtype=torch.long)
        leaf[vc[:, 0] * k + vc[:, 1]] = torch.as_tensor(valid_items, dtype=torch.long)
        return cls(k, torch.as_tensor(codes, dtype=torch.long).to(device), leaf.to(device))


@dataclass
class StreamResult:
    items: torch.Tensor  # [B, K] distinct items best first, NO_ITEM-padded
    scores: torch.Tensor  # [B, K] log P(c1) + log P(c2|c1), -inf on pads
    logp1: torch.Tensor  # [B, k] level-1 log-probabilities (for re-scoring)
    cache: list  # CodeDecoder.bos_cache output (for re-scoring)


def first_distinct(items: torch.Tensor, scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, the first k distinct real items in the given order (duplicate leaves dropped), NO_ITEM-padded."""
    n = items.shape[1]
    earlier = torch.tril(torch.ones(n, n, dtype=torch.bool, device=items.device), -1)
    dup = ((items[:, :, None] == items[:, None, :]) & earlier).any(-1)
    bad = dup | (items == NO_ITEM) | torch.isinf(scores)
    order = torch.argsort(bad.to(torch.int8), dim=1, stable=True)[:, :k]
    out_items = torch.gather(items, 1, order)
    out_scores = torch.gather(scores, 1, order)
    drop = torch.gather(bad, 1, order)
    out_items = out_items.masked_fill(drop, NO_ITEM)
    out_scores = out_scores.masked_fill(drop, NEG_INF)
    if out_items.shape[1] < k:
        pad = k - out_items.shape[1]
        out_items = torch.nn.functional.pad(out_items, (0, pad), value=NO_ITEM)
        out_scores = torch.nn.functional.pad(out_scores, (0, pad), value=NEG_INF)
    return out_items, out_scores


def _slice_cache(cache: list, rows: torch.Tensor) -> list:
    return [tuple(t[rows] for t in layer) for layer in cache]


@torch.no_grad()
def stream_search(decoder: CodeDecoder, index: StreamIndex, memory: torch.Tensor, pad: torch.Tensor | None,
                  width: int, k_out: int, chunk: int = 8) -> StreamResult:
    """Top-k_out distinct items of one stream for every user in the batch (see the module docstring)."""
    kb = index.k
    b = memory.shape[0]
    h0, cache = decoder.bos_cache(memory, pad)
    logp1 = torch.log_softmax(h0 @ decoder.level1_rows().T, dim=-1)
    leaf_ok = (index.leaf_item != NO_ITEM).view(kb, kb)
    logp1_valid = logp1.masked_fill(~leaf_ok.any(1)[None], NEG_INF)
    w = min(width, kb)
    s1, c1 = torch.topk(logp1_valid, w, dim=1)  # [B, W] best first
    keep = min(2 * k_out, w * kb)  # room for duplicate leaves, so k_out distinct items remain after dedup
    best = torch.full((b, keep), NEG_INF, device=memory.device)
    best_leaf = torch.zeros((b, keep), dtype=torch.long, device=memory.device)
    rows2 = decoder.level2_rows()
    for start in range(0, w, chunk):
        active = torch.nonzero(s1[:, start] > best[:, -1]).flatten()
        if active.numel() == 0:
            break
        tok = c1[active, start:start + chunk]  # [A, c]
        h1 = decoder.step1_hidden(tok, _slice_cache(cache, active), pad[active] if pad is not None else None)
        logp2 = torch.log_softmax(torch.einsum("acd,acjd->acj", h1, rows2[tok]), dim=-1)
        logp2 = logp2.masked_fill(~leaf_ok[tok], NEG_INF)
        total = (s1[active, start:start + chunk, None] + logp2).flatten(1)  # [A, c*k]
        leaves = (tok[:, :, None] * kb + torch.arange(kb, device=tok.device)).flatten(1)
        merged = torch.cat([best[active], total], dim=1)
        merged_leaf = torch.cat([best_leaf[active], leaves], dim=1)
        top, pos = torch.topk(merged, keep, dim=1)
        best[active] = top
        best_leaf[active] = torch.gather(merged_leaf, 1, pos)
    items = index.leaf_item[best_leaf].masked_fill(torch.isinf(best), NO_ITEM)
    items, scores = first_distinct(items, best, k_out)
    return StreamResult(items, scores, logp1, cache)


@torch.no_grad()
def code_log_likelihood(decoder: CodeDecoder, index: StreamIndex, result: StreamResult, items: torch.Tensor,
                        pad: torch.Tensor | None) -> torch.Tensor:
    """Teacher-forced log P(c1(i)) + log P(c2(i)|c1(i)) of candidate items [B, C] under one stream, each item with
    its own (training) code of this stream; -inf for NO_ITEM."""
    real = items != NO_ITEM
    codes = index.codes[(items.clamp_min(1) - 1)]  # [B, C, 2]
    c1, c2 = codes[..., 0], codes[..., 1]
    h1 = decoder.step1_hidden(c1, result.cache, pad)
    logp2 = torch.log_softmax(torch.einsum("bcd,bcjd->bcj", h1, decoder.level2_rows()[c1]), dim=-1)
    score = torch.gather(result.logp1, 1, c1) + torch.gather(logp2, 2, c2[..., None])[..., 0]
    return score.masked_fill(~real, NEG_INF)


def merge(results: dict[str, StreamResult], rescored: torch.Tensor | None, k: int) -> torch.Tensor:
    """Merge the streams' lists into k distinct items.

    rescored given ("code_sum", the code's rule): it holds, for the concatenated candidates, the sum of both
    decoders' teacher-forced log-likelihoods; else ("paper_confidence") each candidate keeps the confidence
    (log-probability) its own stream gave it, an item found by both streams its higher one.
    """
    items = torch.cat([r.items for r in results.values()], dim=1)
    scores = rescored if rescored is not None else torch.cat([r.scores for r in results.values()], dim=1)
    scores = scores.masked_fill(items == NO_ITEM, NEG_INF)
    order = torch.argsort(scores, dim=1, descending=True, stable=True)
    items, scores = torch.gather(items, 1, order), torch.gather(scores, 1, order)
    return first_distinct(items, scores, k)[0]
