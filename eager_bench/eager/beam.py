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
from eager_bench.ranking import top_k

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
    table: torch.Tensor  # [B, k, k] log P(c2|c1) where the search expanded c1 for that user, else nan


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


def level2_log_probs(decoder: CodeDecoder, hidden: torch.Tensor, c1: torch.Tensor) -> torch.Tensor:
    """log P(c2 | c1) over the k children for hidden states [..., d] with parents c1 [...] -> [..., k].

    Grouped by parent (one small matmul per distinct c1) instead of gathering a [k, d] block per row, which would
    move k*d floats per beam through memory.
    """
    rows2 = decoder.level2_rows()
    flat_h, flat_c = hidden.reshape(-1, hidden.shape[-1]), c1.reshape(-1)
    logits = torch.empty(flat_c.shape[0], decoder.k, dtype=hidden.dtype, device=hidden.device)
    order = torch.argsort(flat_c)
    parents, counts = torch.unique_consecutive(flat_c[order], return_counts=True)
    for parent, rows in zip(parents.tolist(), torch.split(order, counts.tolist())):
        logits[rows] = flat_h[rows] @ rows2[parent].T
    return torch.log_softmax(logits, dim=-1).view(*c1.shape, decoder.k)


def _slice_cache(cache: list, rows: torch.Tensor) -> list:
    return [tuple(t[rows] for t in layer) for layer in cache]


@torch.no_grad()
def stream_search(decoder: CodeDecoder, index: StreamIndex, memory: torch.Tensor, pad: torch.Tensor | None,
                  width: int, k_out: int, chunk: int = 8) -> StreamResult:
    """Top-k_out distinct items of one stream for every user in the batch (see the module docstring)."""
    kb = index.k
    b, dev = memory.shape[0], memory.device
    h0, cache = decoder.bos_cache(memory, pad)
    logp1 = torch.log_softmax(h0 @ decoder.level1_rows().T, dim=-1)
    leaf_ok = (index.leaf_item != NO_ITEM).view(kb, kb)
    w = min(width, kb)
    level1 = logp1.masked_fill(~leaf_ok.any(1)[None], NEG_INF)
    c1 = top_k(level1, w)  # [B, W] best first, equal log-probabilities by the smaller code
    s1 = torch.gather(level1, 1, c1)
    keep = min(2 * k_out, w * kb)  # room for duplicate leaves, so k_out distinct items remain after dedup
    best = torch.full((b, keep), NEG_INF, device=dev)
    best_leaf = torch.zeros((b, keep), dtype=torch.long, device=dev)
    threshold = torch.full((b,), NEG_INF, device=dev)  # score of the k_out-th distinct item found so far
    table = torch.full((b, kb, kb), float("nan"), device=dev)  # log P(c2|c1) of expanded (user, c1), for re-scoring
    for start in range(0, w, chunk):
        active = torch.nonzero(s1[:, start] > threshold).flatten()
        if active.numel() == 0:
            break
        tok = c1[active, start:start + chunk]  # [A, c]
        h1 = decoder.step1_hidden(tok, _slice_cache(cache, active), pad[active] if pad is not None else None)
        logp2 = level2_log_probs(decoder, h1, tok)
        table[active[:, None], tok] = logp2
        logp2 = logp2.masked_fill(~leaf_ok[tok], NEG_INF)
        total = (s1[active, start:start + chunk, None] + logp2).flatten(1)  # [A, c*k]
        leaves = (tok[:, :, None] * kb + torch.arange(kb, device=dev)).flatten(1)
        pooled = torch.cat([best[active], total], dim=1)
        pos = top_k(pooled, keep)  # ties keep the earlier path (kept ones first, then leaf order)
        top = torch.gather(pooled, 1, pos)
        top_leaf = torch.gather(torch.cat([best_leaf[active], leaves], dim=1), 1, pos)
        best[active], best_leaf[active] = top, top_leaf
        _, distinct = first_distinct(index.leaf_item[top_leaf], top, k_out)
        threshold[active] = distinct[:, -1]
    items = index.leaf_item[best_leaf].masked_fill(torch.isinf(best), NO_ITEM)
    items, scores = first_distinct(items, best, k_out)
    return StreamResult(items, scores, logp1, cache, table)


@torch.no_grad()
def code_log_likelihood(decoder: CodeDecoder, index: StreamIndex, result: StreamResult, items: torch.Tensor,
                        pad: torch.Tensor | None) -> torch.Tensor:
    """Teacher-forced log P(c1(i)) + log P(c2(i)|c1(i)) of candidate items [B, C] under one stream, each item with
    its own (training) code of this stream; -inf for NO_ITEM. Level-2 distributions the beam search already computed
    are reused; the others are computed here."""
    real = items != NO_ITEM
    codes = index.codes[(items.clamp_min(1) - 1)]  # [B, C, 2]
    c1, c2 = codes[..., 0], codes[..., 1]
    rows = torch.arange(items.shape[0], device=items.device)[:, None].expand_as(c1)
    logp2 = result.table[rows, c1, c2]  # nan where (user, c1) was not expanded
    missing = torch.isnan(logp2) & real
    if missing.any():
        owner, col = torch.nonzero(missing, as_tuple=True)
        # A user's missing parents, deduplicated, each computed once.
        key = torch.unique(owner * index.k + c1[owner, col])
        u, parent = key // index.k, key % index.k
        sliced = _slice_cache(result.cache, u)
        h1 = decoder.step1_hidden(parent[:, None], sliced, pad[u] if pad is not None else None)
        result.table[u, parent] = level2_log_probs(decoder, h1, parent[:, None])[:, 0]
        logp2 = result.table[rows, c1, c2]
    score = torch.gather(result.logp1, 1, c1) + logp2
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
    order = top_k(scores, scores.shape[1], ids=items)  # equal scores: the smaller item id first
    items, scores = torch.gather(items, 1, order), torch.gather(scores, 1, order)
    return first_distinct(items, scores, k)[0]
