"""EAGER's training losses: generation (TSG), global contrastive task (GCT), semantic-guided transfer task (STT).

Official-code behaviour with citations is in EAGER.md §4.5-4.7 and §5.1; every paper-vs-code choice is a parameter.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from eager_bench.eager.network import CodeDecoder, TransferHead


def generation_loss(decoder: CodeDecoder, hidden: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """(CE over the k level-1 tokens + CE over the k children of the true c1) / 2, batch mean."""
    logits1, logits2 = decoder.code_logits(hidden, codes)
    return (F.cross_entropy(logits1, codes[:, 0]) + F.cross_entropy(logits2, codes[:, 1])) / 2


def gct_loss(query: torch.Tensor, targets: torch.Tensor, target_ids: torch.Tensor, negative_ids: torch.Tensor,
             kind: str, tau: float) -> torch.Tensor:
    """Pull the projected summary towards the target item's pretrained embedding.

    query [B, d2] = projection of the L2-normalised summary; targets [N, d2] pretrained item embeddings (row i-1 =
    item i, no gradient); target_ids [B] 0-based rows; negative_ids [M] rows shared by the whole batch (may contain a
    positive, as in the code). "infonce": cosine logits / tau, positive first (the code); "smooth_l1": the paper's
    positive-only metric on the L2-normalised pair.
    """
    pos = targets[target_ids]
    if kind == "smooth_l1":
        return F.smooth_l1_loss(F.normalize(query, dim=-1), F.normalize(pos, dim=-1))
    q = F.normalize(query, dim=-1)
    pos_logit = (q * F.normalize(pos, dim=-1)).sum(-1, keepdim=True)
    neg_logit = q @ F.normalize(targets[negative_ids], dim=-1).T
    logits = torch.cat([pos_logit, neg_logit], dim=1) / tau
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))


def _slot(index: torch.Tensor) -> torch.Tensor:
    """[B] slot numbers -> [B, 3, 1] boolean selector (one_hot would range-check on the host: a GPU sync)."""
    return (index[:, None] == torch.arange(3, device=index.device))[..., None]


def stt_loss(head: TransferHead, decoder: CodeDecoder, codes: torch.Tensor, guide: torch.Tensor, faithful: bool,
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked behavior-token reconstruction + corrupted-code recognition, guided by the detached semantic summary.

    codes [B, 2] behavior codes; guide [B, d_text] projected semantic summary. faithful=True copies the code's quirks
    (c2 slot fed the level-1 row c2, one mask/corruption coin per batch, positions added twice to the recognition
    inputs, the masked sequence as the recognition positive, positive also among the reconstruction candidates);
    faithful=False is the clean version (level-2 row, a coin per sample, positions once, unmasked positive).
    Returns (L_recon, L_recog).
    """
    b, k, dev = codes.shape[0], decoder.k, codes.device
    guide = guide.detach()
    rows = decoder.embed.tokens.weight
    leaf = k + codes[:, 0] * k + codes[:, 1]
    slot2 = rows[codes[:, 1]] if faithful else rows[leaf]
    x = torch.stack([head.start.expand(b, -1), rows[codes[:, 0]], slot2], dim=1)  # [B, 3, d]
    pos = head.positions.to(x.dtype)

    # Reconstruction: mask slot 1 (c1) or slot 2 (c2) and predict it among that level's k candidates.
    if faithful:
        masked = torch.full((b,), 1 + int(torch.randint(2, (1,), generator=generator, device=dev)), device=dev)
    else:
        masked = 1 + torch.randint(2, (b,), generator=generator, device=dev)
    at = _slot(masked)
    x_masked = torch.where(at, head.mask.expand(b, 3, -1), x) + pos
    r = head(x_masked, guide)[torch.arange(b, device=dev), masked]  # [B, d]
    detached = rows.detach()
    level1 = masked == 1
    cand = torch.where(level1[:, None, None], detached[:k].expand(b, k, -1),
                       detached[k:k + k * k].view(k, k, -1)[codes[:, 0]])  # siblings for level 2
    logits = torch.einsum("bd,bkd->bk", r, cand)  # dot product, temperature 1
    truth = torch.where(level1, codes[:, 0], codes[:, 1])
    if faithful:
        positive = torch.where(level1[:, None], detached[codes[:, 0]], detached[leaf])
        logits = torch.cat([(r * positive).sum(-1, keepdim=True), logits], dim=1)
        truth = torch.zeros_like(truth)
    recon = F.cross_entropy(logits, truth)

    # Recognition: replace one slot by a random token of that level; the start slot's output scores real vs fake.
    if faithful:
        corrupt = torch.full((b,), 1 + int(torch.randint(2, (1,), generator=generator, device=dev)), device=dev)
    else:
        corrupt = 1 + torch.randint(2, (b,), generator=generator, device=dev)
    low = torch.where(corrupt == 1, 0, k)
    span = torch.where(corrupt == 1, k, k * k)
    fake = low + (torch.rand(b, generator=generator, device=dev) * span).long().clamp_max(span - 1)
    at = _slot(corrupt)
    # The code corrupts its masked, position-added input in place and adds positions again to both copies.
    base = x_masked if faithful else x
    x_pos, x_neg = base + pos, torch.where(at, rows[fake][:, None].expand(b, 3, -1), base) + pos
    # One pass over both copies (the STT decoder has no dropout, so this equals two separate passes).
    logit = head.score(head(torch.cat([x_pos, x_neg]), torch.cat([guide, guide]))[:, 0])[:, 0]
    label = torch.cat([torch.ones(b, device=dev), torch.zeros(b, device=dev)])
    return recon, F.binary_cross_entropy_with_logits(logit, label)
