"""TIGER's semantic IDs: an RQ-VAE (`rqvae`) and residual k-means (`rkmeans`), each with a 4th collision token.

RQ-VAE (TIGER.md §4.1): MLP encoder in -> 512 -> 256 -> 128 -> 32 (ReLU), mirrored decoder, `levels` residual
codebooks of `codebook_size` x 32, straight-through estimator, loss ||x - x^||^2 + sum_d ||sg[r_d] - e_d||^2 +
beta ||r_d - sg[e_d]||^2 with beta = 0.25, codebooks initialised by k-means on the first training batch.
Declared deviations: AdamW (lr 1e-3) instead of Adagrad (lr 0.4), which collapses in public re-implementations;
inputs standardised per dimension; far fewer epochs than the paper's 20k outside the `paper` profile; dead codes
(unused during an epoch) are re-seeded from random residuals of that epoch's last batch, and the resets are counted.
Collisions: items sharing the 3 learned tokens get a 4th token 0, 1, 2, ... (in item order), others 0.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import nn

from eager_bench.errors import BenchError
from eager_bench.tokenizers.base import Tokenizer
from eager_bench.tokenizers.hkmeans import disambiguate
from eager_bench.tokenizers.kmeans import kmeans, squared_distances

EPOCHS = {"smoke": 5, "cpu": 300, "paper": 20000}


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _standardise(x: np.ndarray) -> np.ndarray:
    return ((x - x.mean(0)) / (x.std(0) + 1e-8)).astype(np.float32)


class ResidualQuantizer(nn.Module):
    def __init__(self, levels: int, size: int, dim: int) -> None:
        super().__init__()
        self.codebooks = nn.Parameter(torch.randn(levels, size, dim) * 0.01)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """(quantised z, codes [B, levels], codebook + commitment terms per level, residual per level)."""
        residual, quantised = z, torch.zeros_like(z)
        codes, terms, residuals = [], [], []
        for book in self.codebooks:
            residuals.append(residual)
            idx = squared_distances(residual.detach(), book.detach()).argmin(1)
            e = book[idx]
            terms.append(torch.stack([((residual.detach() - e) ** 2).sum(1).mean(),
                                      ((residual - e.detach()) ** 2).sum(1).mean()]))
            codes.append(idx)
            quantised = quantised + e
            residual = residual - e.detach()
        return quantised, torch.stack(codes, 1), torch.stack(terms), residuals


class RQVAE(nn.Module):
    def __init__(self, in_dim: int, hidden: list[int], latent: int, levels: int, size: int) -> None:
        super().__init__()
        self.encoder = _mlp([in_dim, *hidden, latent])
        self.decoder = _mlp([latent, *hidden[::-1], in_dim])
        self.quantizer = ResidualQuantizer(levels, size, latent)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        z = self.encoder(x)
        quantised, codes, terms, residuals = self.quantizer(z)
        x_hat = self.decoder(z + (quantised - z).detach())  # straight-through estimator
        return x_hat, codes, terms, residuals


class RQVAETokenizer(Tokenizer):
    name = "rqvae"

    def __init__(self, profile: str = "cpu", epochs: int | None = None, levels: int = 3, codebook_size: int = 256,
                 latent_dim: int = 32, hidden: tuple[int, ...] = (512, 256, 128), beta: float = 0.25,
                 lr: float = 1e-3, weight_decay: float = 1e-4, batch_size: int = 1024, standardize: bool = True,
                 dead_code_reset: bool = True, device: str = "cpu") -> None:
        if profile not in EPOCHS:
            raise BenchError(f"rqvae: unknown profile {profile!r}; known: {', '.join(EPOCHS)}")
        super().__init__(profile=profile, epochs=epochs, levels=levels, codebook_size=codebook_size,
                         latent_dim=latent_dim, hidden=list(hidden), beta=beta, lr=lr, weight_decay=weight_decay,
                         batch_size=batch_size, standardize=standardize, dead_code_reset=dead_code_reset,
                         device=device)

    def fit(self, embeddings: np.ndarray, seed: int = 0, progress: Any = None) -> "RQVAETokenizer":
        p = self.params
        start = time.perf_counter()
        x_np = np.asarray(embeddings, dtype=np.float32)
        if p["standardize"]:
            x_np = _standardise(x_np)
        device = torch.device(p["device"])
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        x = torch.as_tensor(x_np).to(device)
        model = RQVAE(x.shape[1], list(p["hidden"]), int(p["latent_dim"]), int(p["levels"]),
                      int(p["codebook_size"])).to(device)
        optimiser = torch.optim.AdamW(model.parameters(), lr=float(p["lr"]), weight_decay=float(p["weight_decay"]))
        epochs = int(p["epochs"] or EPOCHS[p["profile"]])
        size, levels = int(p["codebook_size"]), int(p["levels"])
        batch = min(int(p["batch_size"]), len(x))
        resets, history = 0, []
        for epoch in range(epochs):
            order = torch.randperm(len(x), generator=gen).to(device)
            used = torch.zeros(levels, size, dtype=torch.bool, device=device)
            totals = np.zeros(3)
            for b, lo in enumerate(range(0, len(x), batch)):
                xb = x[order[lo:lo + batch]]
                if epoch == 0 and b == 0:
                    self._kmeans_init(model, xb, seed)
                x_hat, codes, terms, residuals = model(xb)
                recon = ((x_hat - xb) ** 2).sum(1).mean()
                quant = terms[:, 0].sum() + float(p["beta"]) * terms[:, 1].sum()
                loss = recon + quant
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                for level in range(levels):
                    used[level, codes[:, level]] = True
                totals += [float(loss.detach()), float(recon.detach()), float(quant.detach())]
            if p["dead_code_reset"] and epoch < epochs - 1:
                resets += self._reset_dead(model, used, residuals, gen)
            history.append(totals / max(1, b + 1))
            if progress is not None:
                progress(epoch + 1, epochs)
        model.eval()
        with torch.no_grad():
            codes = torch.cat([model(x[lo:lo + 4096])[1] for lo in range(0, len(x), 4096)]).cpu().numpy()
        full, largest = disambiguate(codes)
        self._set_codes(full, [size] * levels + [largest], semantic_levels=levels)
        self.info = {"branch": size, "depth": levels, "epochs": epochs, "dead_code_resets": resets,
                     "largest_collision_group": largest, "final_loss": float(history[-1][0]),
                     "final_recon": float(history[-1][1]), "final_quant": float(history[-1][2]),
                     "build_s": time.perf_counter() - start}
        return self

    @torch.no_grad()
    def _kmeans_init(self, model: RQVAE, xb: torch.Tensor, seed: int) -> None:
        residual = model.encoder(xb)
        for level, book in enumerate(model.quantizer.codebooks):
            _, centroids = kmeans(residual.cpu().numpy(), book.shape[0], seed=seed + level)
            book[: len(centroids)] = torch.as_tensor(centroids, device=book.device)
            idx = squared_distances(residual, book).argmin(1)
            residual = residual - book[idx]

    @torch.no_grad()
    def _reset_dead(self, model: RQVAE, used: torch.Tensor, residuals: list[torch.Tensor],
                    gen: torch.Generator) -> int:
        count = 0
        for level, book in enumerate(model.quantizer.codebooks):
            dead = torch.nonzero(~used[level]).flatten()
            if len(dead):
                pool = residuals[level].detach()
                pick = torch.randint(len(pool), (len(dead),), generator=gen).to(pool.device)
                book[dead] = pool[pick]
                count += len(dead)
        return count


class ResidualKMeansTokenizer(Tokenizer):
    """Residual k-means: k-means on the embeddings, then on the residuals, `levels` times; plus a collision token."""

    name = "rkmeans"

    def __init__(self, levels: int = 3, codebook_size: int = 256, max_iters: int = 50,
                 standardize: bool = False) -> None:
        super().__init__(levels=levels, codebook_size=codebook_size, max_iters=max_iters, standardize=standardize)

    def fit(self, embeddings: np.ndarray, seed: int = 0) -> "ResidualKMeansTokenizer":
        start = time.perf_counter()
        residual = np.asarray(embeddings, dtype=np.float32)
        if self.params["standardize"]:
            residual = _standardise(residual)
        size, levels = int(self.params["codebook_size"]), int(self.params["levels"])
        columns = []
        for level in range(levels):
            labels, centroids = kmeans(residual, size, seed=seed + level, max_iters=int(self.params["max_iters"]))
            columns.append(labels)
            residual = residual - centroids[labels]
        full, largest = disambiguate(np.column_stack(columns))
        self._set_codes(full, [size] * levels + [largest], semantic_levels=levels)
        self.info = {"branch": size, "depth": levels, "largest_collision_group": largest,
                     "residual_norm": float(np.linalg.norm(residual, axis=1).mean()),
                     "build_s": time.perf_counter() - start}
        return self
