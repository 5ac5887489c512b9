"""Item embeddings of a small SASRec (causal self-attention next-item model, full-softmax cross-entropy with the
output tied to the item table) trained on split.train only; the export is its item table rows 1..N."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn


class SASRecEncoder(nn.Module):
    def __init__(self, n_items: int, hidden: int, layers: int, heads: int, max_len: int, dropout: float) -> None:
        super().__init__()
        self.item = nn.Embedding(n_items + 1, hidden, padding_idx=0)
        self.position = nn.Embedding(max_len, hidden)
        layer = nn.TransformerEncoderLayer(hidden, heads, 4 * hidden, dropout, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden)
        self.drop = nn.Dropout(dropout)
        nn.init.normal_(self.item.weight, 0.0, 0.02)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """seq [B, L] left-padded with 0 -> logits over items 0..N for every position [B, L, N+1]."""
        length = seq.shape[1]
        x = self.drop(self.item(seq) * self.item.embedding_dim ** 0.5 + self.position.weight[:length])
        causal = torch.triu(torch.ones(length, length, dtype=torch.bool, device=seq.device), 1)
        h = self.norm(self.blocks(x, mask=causal, src_key_padding_mask=seq == 0))
        return h @ self.item.weight.T


def train_sasrec(split: Any, config: dict[str, Any], seed: int = 0, device: str = "cpu", show_progress: bool = True,
                 checkpoint: Path | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    max_len = int(config["max_len"])
    # Inputs s_1..s_{m-1}, targets s_2..s_m, most recent max_len, left-padded.
    inputs = np.zeros((len(split.train), max_len), dtype=np.int64)
    targets = np.zeros_like(inputs)
    for u, seq in enumerate(split.train):
        seq = np.asarray(seq, dtype=np.int64)[-(max_len + 1):]
        if len(seq) >= 2:
            inputs[u, -(len(seq) - 1):] = seq[:-1]
            targets[u, -(len(seq) - 1):] = seq[1:]
    keep = np.flatnonzero(targets.any(1))
    model = SASRecEncoder(split.n_items, int(config["hidden"]), int(config["layers"]), int(config["heads"]), max_len,
                          float(config["dropout"])).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=float(config["lr"]))
    loss_fn = nn.CrossEntropyLoss(ignore_index=0)
    losses, start = [], time.perf_counter()
    model.train()
    for step in range(int(config["steps"])):
        batch = rng.choice(keep, size=min(int(config["batch_size"]), len(keep)), replace=False)
        seq = torch.as_tensor(inputs[batch], device=device)
        logits = model(seq)
        loss = loss_fn(logits.reshape(-1, logits.shape[-1]), torch.as_tensor(targets[batch], device=device).view(-1))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    if checkpoint is not None:
        torch.save({"model": model.state_dict(), "config": config}, checkpoint)
    table = model.item.weight.detach()[1:].cpu().numpy().astype(np.float32)
    return table, {"steps": int(config["steps"]), "final_train_loss": round(float(np.mean(losses[-50:])), 4),
                   "seconds_per_step": round((time.perf_counter() - start) / max(1, len(losses)), 4),
                   "notes": ["small SASRec (CE over all items, tied output); not the tuned baseline's checkpoint"]}
