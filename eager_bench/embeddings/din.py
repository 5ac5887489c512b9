"""EAGER's behaviour embeddings: the DIN of the official code (EAGER.md §4.1), trained on split.train only.

Model: item table (N+1) x 96, N(0, 1e-4) init, padding row zero; attention unit on [q, u, q-u, q*u] -> 64 -> Dice ->
Dropout -> 16 -> 1 (no softmax); the 19 history slots pooled by attention-weighted sums over the windows
`feature_groups` (oldest first), concatenated with the candidate embedding, then the MLP 200 -> 80 -> 1 with
BatchNorm + Dice + Dropout, xavier-normal init. Loss: sampled softmax over the positive and 60 uniform negatives with
logQ correction (negative logit s - log(n_eff / (N - 1)), negatives equal to the positive masked out).
Adam(amsgrad) with lr = lr0 * min((t+1)/W, exp((1/3)(W-t-1)/W)), floored at lr_min.
Data: windows of 19 history items + label over each user's training sequence; the first min_seq_len - 1 items are
never labels (the code's 15-slot left padding). Export: the item table rows 1..N (raw, not normalised).

Same function, cheaper: W [q, u, q-u, q*u] = (W_q + W_d) q + (W_u - W_d) u + W_p (q*u), so the q and u parts are
computed once per candidate and per history slot instead of once per (candidate, slot) pair.
Deviations (declared): chronological order (the code uses file order); fixed step count, no test-based checkpoint
choice (the code picked DIN checkpoints on test); the `cpu` profile trains far fewer steps than the code.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from eager_bench.errors import BenchError

log = logging.getLogger(__name__)


class Dice(nn.Module):
    """Data-adaptive activation: p = sigmoid(BN(x)); out = alpha (1 - p) x + p x (BN eps 1e-9, alpha ~ U(0,1))."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(features, eps=1e-9)
        self.alpha = nn.Parameter(torch.rand(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(self.bn(x))
        return self.alpha * (1 - p) * x + p * x


class DIN(nn.Module):
    def __init__(self, n_items: int, dim: int, feature_groups: list[int], dropout: float) -> None:
        super().__init__()
        self.item = nn.Embedding(n_items + 1, dim, padding_idx=0)
        nn.init.normal_(self.item.weight, 0.0, 1e-4)
        with torch.no_grad():
            self.item.weight[0].zero_()
        self.att_in = nn.Linear(4 * dim, 64)
        self.att_dice = Dice(64)
        self.att_drop = nn.Dropout(dropout)
        self.att_mid = nn.Linear(64, 16)
        self.att_out = nn.Linear(16, 1)
        groups = len(feature_groups)
        window = torch.zeros(groups, sum(feature_groups))
        start = 0
        for g, width in enumerate(feature_groups):
            window[g, start:start + width] = 1.0
            start += width
        self.register_buffer("window", window)
        self.mlp = nn.Sequential(nn.Linear((groups + 1) * dim, 200), nn.BatchNorm1d(200), Dice(200),
                                 nn.Dropout(dropout), nn.Linear(200, 80), nn.BatchNorm1d(80), Dice(80),
                                 nn.Dropout(dropout), nn.Linear(80, 1))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, history: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """history [B, S] (0 = padding), candidates [B, C] -> scores [B, C]."""
        b, s = history.shape
        c = candidates.shape[1]
        h = self.item(history)  # [B, S, d]
        q = self.item(candidates)  # [B, C, d]
        d = h.shape[-1]
        w_q, w_u, w_d, w_p = self.att_in.weight.split(d, dim=1)
        pre = (q @ (w_q + w_d).T).unsqueeze(2) + (h @ (w_u - w_d).T).unsqueeze(1) \
            + (q.unsqueeze(2) * h.unsqueeze(1)) @ w_p.T + self.att_in.bias  # [B, C, S, 64]
        valid = (history > 0).unsqueeze(1).expand(b, c, s)
        # Only real history slots pass through the attention MLP (its Dice BatchNorm sees no padding).
        hidden = self.att_out(self.att_mid(self.att_drop(self.att_dice(pre[valid])))).squeeze(-1)
        weights = torch.zeros(b, c, s, dtype=hidden.dtype, device=hidden.device)
        weights[valid] = hidden
        pooled = torch.einsum("gs,bcs,bsd->bcgd", self.window, weights, h)  # window sums of weighted slots
        features = torch.cat([pooled.reshape(b, c, -1), q], dim=-1).reshape(b * c, -1)
        return self.mlp(features).view(b, c)


def training_windows(train: list[np.ndarray], seq_len: int, min_seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """(histories [M, seq_len-1] left-padded with 0, labels [M]) over every label position >= min_seq_len-1."""
    hist_len = seq_len - 1
    histories, labels = [], []
    for seq in train:
        seq = np.asarray(seq, dtype=np.int64)
        padded = np.concatenate([np.zeros(hist_len, dtype=np.int64), seq])
        for p in range(min_seq_len - 1, len(seq)):
            histories.append(padded[p:p + hist_len])
            labels.append(seq[p])
    if not labels:
        raise BenchError(f"DIN: no training window (every training sequence is shorter than {min_seq_len})")
    return np.stack(histories), np.asarray(labels, dtype=np.int64)


def _left_pad(histories: list[np.ndarray], length: int) -> np.ndarray:
    out = np.zeros((len(histories), length), dtype=np.int64)
    for i, h in enumerate(histories):
        h = np.asarray(h, dtype=np.int64)[-length:]
        if len(h):
            out[i, -len(h):] = h
    return out


def sampled_softmax_loss(model: DIN, history: torch.Tensor, labels: torch.Tensor, n_items: int, negatives: int,
                         generator: torch.Generator) -> torch.Tensor:
    b = len(labels)
    sampled = torch.randint(1, n_items + 1, (b, negatives), generator=generator).to(labels.device)
    candidates = torch.cat([labels[:, None], sampled], dim=1)
    effective = torch.ones_like(candidates, dtype=torch.bool)
    effective[:, 1:] = sampled != labels[:, None]
    n_eff = effective[:, 1:].sum(1, keepdim=True).clamp_min(1).float()
    log_q = torch.zeros(candidates.shape, device=labels.device)
    log_q[:, 1:] = torch.log(n_eff / (n_items - 1))
    logits = model(history, candidates) - log_q
    logits = logits.masked_fill(~effective, -1e9)
    return (torch.logsumexp(logits, dim=1) - logits[:, 0]).mean()


def _lr(step: int, config: dict[str, Any]) -> float:
    warm = max(1, int(config["warmup_steps"]))
    lr = float(config["lr"]) * min((step + 1) / warm, math.exp((1 / 3) * (warm - step - 1) / warm))
    return max(lr, float(config["lr_min"]))


def train_din(split: Any, config: dict[str, Any], seed: int = 0, device: str = "cpu", show_progress: bool = True,
              checkpoint: Path | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Train on split.train; returns (item table [n_items, emb_dim], training report). Resumes from `checkpoint`."""
    if sum(config["feature_groups"]) != config["seq_len"] - 1:
        raise BenchError(f"DIN: feature_groups sum to {sum(config['feature_groups'])}, need seq_len-1 = "
                         f"{config['seq_len'] - 1}")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    n_items = split.n_items
    histories, labels = training_windows(split.train, int(config["seq_len"]), int(config["min_seq_len"]))
    model = DIN(n_items, int(config["emb_dim"]), list(config["feature_groups"]), float(config["dropout"])).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=_lr(0, config), amsgrad=True)
    steps, batch = int(config["steps"]), int(config["batch_size"])
    step, losses, start = 0, [], time.perf_counter()
    if checkpoint is not None and checkpoint.is_file():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        step, losses = int(state["step"]), list(state["losses"])
        gen.set_state(state["generator"])
        log.info("DIN: resuming from %s at step %d", checkpoint, step)
    rng = np.random.default_rng([seed, step])
    order = rng.permutation(len(labels))
    cursor = 0
    model.train()
    progress = None
    if show_progress:
        from rich.progress import Progress

        progress = Progress(transient=True)
        progress.start()
        task = progress.add_task("DIN", total=steps, completed=step)
    try:
        while step < steps:
            if cursor + batch > len(order):  # reshuffle every epoch (generate_training_batches.py)
                order, cursor = rng.permutation(len(labels)), 0
            idx = order[cursor:cursor + batch]
            cursor += batch
            for group in optimiser.param_groups:
                group["lr"] = _lr(step, config)
            loss = sampled_softmax_loss(model, torch.as_tensor(histories[idx], device=device),
                                        torch.as_tensor(labels[idx], device=device), n_items,
                                        int(config["negatives"]), gen)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            step += 1
            losses.append(float(loss.detach()))
            if progress is not None:
                progress.update(task, completed=step, description=f"DIN loss {np.mean(losses[-50:]):.3f}")
            if checkpoint is not None and (step % int(config["checkpoint_every"]) == 0 or step == steps):
                tmp = checkpoint.with_suffix(".tmp")
                torch.save({"model": model.state_dict(), "optimiser": optimiser.state_dict(), "step": step,
                            "losses": losses, "generator": gen.get_state(), "config": config}, tmp)
                tmp.replace(checkpoint)
    finally:
        if progress is not None:
            progress.stop()
    seconds = time.perf_counter() - start
    valid_loss = _valid_loss(model, split, config, n_items, seed, device)
    table = model.item.weight.detach()[1:].cpu().numpy().astype(np.float32)
    chunk = max(1, len(losses) // 20)
    curve = [round(float(np.mean(losses[i:i + chunk])), 4) for i in range(0, len(losses), chunk)]
    return table, {"steps": steps, "train_loss_curve": curve, "final_train_loss": round(float(np.mean(losses[-100:])), 4),
                   "valid_sampled_loss": valid_loss, "train_windows": int(len(labels)),
                   "seconds_per_step": round(seconds / max(1, len(losses)), 4),
                   "notes": ["fixed step count, final checkpoint (the code chose DIN checkpoints on test)",
                             "chronological sequences (the code used file order)"]}


@torch.no_grad()
def _valid_loss(model: DIN, split: Any, config: dict[str, Any], n_items: int, seed: int, device: str) -> float:
    """Sampled-softmax loss on the validation targets of the first `valid_users` users (a sanity signal only)."""
    model.eval()
    users = min(int(config["valid_users"]), len(split.valid))
    history = torch.as_tensor(_left_pad(split.valid.histories[:users], int(config["seq_len"]) - 1), device=device)
    labels = torch.as_tensor(split.valid.targets[:users], device=device)
    gen = torch.Generator().manual_seed(seed + 1)
    losses = [float(sampled_softmax_loss(model, history[i:i + 256], labels[i:i + 256], n_items,
                                         int(config["negatives"]), gen)) * len(labels[i:i + 256])
              for i in range(0, users, 256)]
    model.train()
    return round(sum(losses) / max(1, users), 4)
