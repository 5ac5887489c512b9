"""The one rule that turns scores into a ranking: higher score first, equal scores by the smaller id.

`argpartition`, `argsort` and `topk` leave equal scores in whatever order the CPU's sort kernel (its SIMD path, its
thread count) happens to produce, so a model whose scores tie would rank differently on an Intel and an AMD machine.
Every place that turns scores into a top-K or an order (score-based models, the RecBole bridge, beam search,
merges, k-means re-seeding) calls `top_k` instead, so a deterministic model gives bit-identical rankings on every
machine.

The result depends only on the score values: the k-th largest score of a row is a value, not a position, whatever
kernel computed it; every column scoring at least that value is a candidate, and the candidates are ordered by
(score descending, id ascending), a total order. NaN ranks as -inf (last).
"""

from __future__ import annotations

from typing import overload

import numpy as np
import torch



@overload
def top_k(scores: np.ndarray, k: int, ids: np.ndarray | None = None) -> np.ndarray: ...


@overload
def top_k(scores: torch.Tensor, k: int, ids: torch.Tensor | None = None) -> torch.Tensor: ...


def top_k(scores, k, ids=None):
    """Column indices [rows, min(k, columns)] of each row's k best scores, best first, ties by the smaller id.

    scores: [rows, columns] numpy array or torch tensor (a 1-d input is one row); the result has the same type.
    ids: the id each column stands for, [columns] or [rows, columns] (distinct within a row); default = the column
    index. Ties are broken by these ids, so a model whose columns are not item ids (RecBole's internal ids, a merge
    of two candidate lists) still ranks equal scores by item id.
    """
    if not isinstance(scores, torch.Tensor):
        # One implementation for both: torch's topk is ~10x faster than numpy's partition here, and exact (float64
        # stays float64; only values and a stable sort decide the result).
        ids = None if ids is None else torch.from_numpy(np.ascontiguousarray(ids))
        return top_k(torch.from_numpy(np.ascontiguousarray(scores)), k, ids).numpy()
    squeeze = scores.dim() == 1
    if squeeze:
        scores = scores[None, :]
        ids = None if ids is None else ids[None, :]
    if scores.dim() != 2:
        raise ValueError(f"top_k expects [rows, columns] scores, got shape {tuple(scores.shape)}")
    k = max(0, min(int(k), scores.shape[1]))
    if ids is None:
        out = _top_k_by_column(scores, k)
    else:
        # Reorder the columns by id (ids are distinct within a row), rank by column there, map back.
        perm = torch.sort(torch.as_tensor(ids, device=scores.device), dim=-1, stable=True).indices
        perm = perm.expand(scores.shape[0], -1) if perm.dim() == 1 else perm
        out = torch.gather(perm, 1, _top_k_by_column(torch.gather(scores, 1, perm), k))
    return out[0] if squeeze else out


def _top_k_by_column(scores: torch.Tensor, k: int) -> torch.Tensor:
    rows, n = scores.shape
    if k == 0 or rows == 0:
        return torch.zeros((rows, k), dtype=torch.long, device=scores.device)
    clean = scores.masked_fill(torch.isnan(scores), float("-inf"))
    kth = torch.topk(clean, k, dim=1).values[:, -1:]  # the k-th best value (topk's values do not depend on ties)
    width = int((clean >= kth).sum(dim=1).max())  # candidates: every column at least as good as the k-th best
    if width < n:
        cand = torch.topk(clean, width, dim=1).indices  # holds every such column (ties at its edge are below kth)
    else:
        cand = torch.arange(n, device=scores.device).expand(rows, n)
    cand = torch.sort(cand, dim=1).values  # by column index; the stable sort by score below keeps it within ties
    order = torch.sort(torch.gather(clean, 1, cand), dim=1, descending=True, stable=True).indices[:, :k]
    return torch.gather(cand, 1, order)
