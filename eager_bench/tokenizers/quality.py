"""Code-quality metrics of a fitted tokenizer (the tokenization study and `eager-bench tokenize` call this).

All statistics use each item's training code (one per item), except `duplicate_leaf_share`, which counts valid codes:
- utilisation[l]: distinct level-l tokens used / vocab_sizes[l];
- prefix_utilisation[l]: distinct length-(l+1) prefixes / (distinct length-l prefixes x vocab_sizes[l]), i.e. how
  much of each parent's branch is used (parent-specific tokens, as in EAGER's decoder);
- collision_rate: share of items whose semantic code (before any disambiguation token) another item also has;
- duplicate_leaf_share: share of valid codes that decode to an item already decoded by another code;
- entropy[l]: Shannon entropy (bits) of the level-l tokens over items; code_entropy: of the full semantic code
  (at most log2(n_items), reached when codes are unique);
- coherence[l]: mean cosine similarity between the source embeddings of two different items that share the
  length-(l+1) prefix (clusters of one item skipped, pairs weighted equally); coherence_baseline: the same over
  all item pairs, so coherence above it means the clusters group similar items.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from eager_bench.tokenizers.base import Tokenizer


def _groups(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(group id per row, size per group) for identical rows."""
    if codes.shape[1] == 0:
        return np.zeros(len(codes), dtype=np.int64), np.array([len(codes)])
    _, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    return inverse.reshape(-1), counts


def _entropy_bits(labels: np.ndarray) -> float:
    p = np.bincount(labels) / len(labels)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum()) + 0.0  # + 0.0 turns -0.0 into 0.0


def _pair_cosine(unit: torch.Tensor, groups: np.ndarray, sizes: np.ndarray) -> float | None:
    """Mean cosine over pairs of distinct items within the same group: sum_g (|S_g|^2 - n_g) / sum_g n_g (n_g - 1)."""
    sums = torch.zeros(len(sizes), unit.shape[1], dtype=torch.float64).index_add_(0, torch.as_tensor(groups), unit)
    n = torch.as_tensor(sizes, dtype=torch.float64)
    pairs = float((n * (n - 1)).sum())
    if pairs == 0:
        return None
    return float((sums.pow(2).sum(1) - n).sum() / pairs)


def code_quality(tok: Tokenizer, embeddings: np.ndarray) -> dict[str, Any]:
    codes = tok.codes
    assert codes is not None
    n = len(codes)
    sem = tok.semantic_levels or tok.levels
    valid, valid_items = tok.valid_codes()
    x = torch.as_tensor(np.asarray(embeddings, dtype=np.float64))
    unit = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
    utilisation, prefix_util, entropy, coherence = [], [], [], []
    for level in range(tok.levels):
        utilisation.append(len(np.unique(codes[:, level])) / tok.vocab_sizes[level])
        parents = len(_groups(codes[:, :level])[1])
        prefix_util.append(len(_groups(codes[:, :level + 1])[1]) / (parents * tok.vocab_sizes[level]))
        entropy.append(_entropy_bits(codes[:, level]))
        if level < sem:
            coherence.append(_pair_cosine(unit, *_groups(codes[:, :level + 1])))
    sem_groups, sem_sizes = _groups(codes[:, :sem])
    shared = sem_sizes[sem_groups] > 1
    return {
        "tokenizer": tok.name,
        "params": {k: v for k, v in tok.params.items() if k != "device"},
        "levels": tok.levels,
        "semantic_levels": sem,
        "branch": int(tok.info.get("branch", tok.vocab_sizes[0])),
        "vocab_sizes": list(tok.vocab_sizes),
        "n_items": n,
        "n_valid_codes": int(len(valid)),
        "utilisation": [round(u, 4) for u in utilisation],
        "prefix_utilisation": [round(u, 4) for u in prefix_util],
        "collision_rate": round(float(shared.mean()), 4),
        "largest_collision_group": int(sem_sizes.max()),
        "duplicate_leaf_share": round(float((len(valid) - len(np.unique(valid_items))) / len(valid)), 4),
        "entropy": [round(e, 3) for e in entropy],
        "code_entropy": round(_entropy_bits(sem_groups), 3),
        "max_entropy": round(float(np.log2(n)), 3),
        "coherence": [None if c is None else round(c, 4) for c in coherence],
        "coherence_baseline": round(float(_pair_cosine(unit, np.zeros(n, dtype=np.int64), np.array([n]))), 4),
        "build_s": round(float(tok.info.get("build_s", float("nan"))), 2),
        "cached": bool(tok.info.get("cached", False)),
        "build_info": {k: v for k, v in tok.info.items() if k not in ("build_s", "cached", "cache_path")},
    }
