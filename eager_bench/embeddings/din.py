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

from eager_bench.compute import (DROPOUT_RNGS, PRECISIONS, apply_threads, autocast, resolve_dropout_rng,
                                  resolve_precision)
from eager_bench.embeddings.quality import neighbour_hit_rate
from eager_bench.errors import BenchError
from eager_bench.fast_dropout import use_bulk_dropout
from eager_bench.models.training_state import (TrainingHalted, read_training_state, restore_training_state,
                                               save_training_state)

log = logging.getLogger(__name__)
# What picks the exported table: the sampled validation loss scores the whole network (attention + MLP), which on
# Beauty overfits within two epochs (validation loss 9.14 at step 1,000, 11.67 at 4,000 while the training loss
# halves); the neighbour hit rate scores the item table itself, on the held-out (last training item, validation
# target) pairs of eager_bench.embeddings.quality.
SELECT_ON = ("loss", "neighbours")
CHECKPOINT_FORMAT = 2  # 2: training_state.py's format plus the sampling order (1: model/optimiser only, inexact)


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
        # window of each history slot, oldest first
        self.register_buffer("slot_group", window.argmax(dim=0), persistent=False)
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
        # Only real history slots pass through the attention unit (its Dice BatchNorm sees no padding), and only
        # they are computed: about half of Beauty's 19 slots are padding.
        rows, slots = (history > 0).nonzero(as_tuple=True)  # [V] real (example, slot) pairs
        h_real = h[rows, slots]  # [V, d]
        q_real = q[rows]  # [V, C, d]
        pre = (q @ (w_q + w_d).T)[rows] + (h_real @ (w_u - w_d).T).unsqueeze(1) \
            + (q_real * h_real.unsqueeze(1)) @ w_p.T + self.att_in.bias  # [V, C, 64]
        hidden = self.att_out(self.att_mid(self.att_drop(self.att_dice(pre.reshape(-1, pre.shape[-1])))))
        weights = torch.zeros(b, s, c, dtype=hidden.dtype, device=hidden.device)
        weights[rows, slots] = hidden.view(-1, c)
        # The MLP's first layer on [window sums of weighted slots (G x d), q] without building those G x d
        # features: the windows partition the slots, so W_g (sum_{s in g} a_s h_s) = sum_s a_s (W_{g(s)} h_s), and
        # W_{g(s)} h_s is computed once per slot, not once per (candidate, window).
        first = self.mlp[0]
        w_groups = first.weight[:, :-d].view(first.out_features, -1, d)  # [200, G, d]
        per_slot = torch.einsum("bsd,osd->bso", h, w_groups[:, self.slot_group])  # [B, S, 200]
        z = weights.transpose(1, 2).to(per_slot.dtype) @ per_slot + q @ first.weight[:, -d:].T + first.bias
        return self.mlp[1:](z.reshape(b * c, -1)).view(b, c)


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


def sampled_softmax_loss(model: Any, history: torch.Tensor, labels: torch.Tensor, n_items: int, negatives: int,
                         generator: torch.Generator, reduce: bool = True) -> torch.Tensor:
    b = len(labels)
    sampled = torch.randint(1, n_items + 1, (b, negatives), generator=generator).to(labels.device)
    candidates = torch.cat([labels[:, None], sampled], dim=1)
    effective = torch.ones_like(candidates, dtype=torch.bool)
    effective[:, 1:] = sampled != labels[:, None]
    n_eff = effective[:, 1:].sum(1, keepdim=True).clamp_min(1).float()
    log_q = torch.zeros(candidates.shape, device=labels.device)
    log_q[:, 1:] = torch.log(n_eff / (n_items - 1))
    logits = model(history, candidates).float() - log_q  # loss in fp32 under bf16 autocast
    logits = logits.masked_fill(~effective, -1e9)
    per_example = torch.logsumexp(logits, dim=1) - logits[:, 0]
    return per_example.mean() if reduce else per_example


def _lr(step: int, config: dict[str, Any]) -> float:
    warm = max(1, int(config["warmup_steps"]))
    lr = float(config["lr"]) * min((step + 1) / warm, math.exp((1 / 3) * (warm - step - 1) / warm))
    return max(lr, float(config["lr_min"]))


def validate(config: dict[str, Any]) -> None:
    if sum(config["feature_groups"]) != config["seq_len"] - 1:
        raise BenchError(f"DIN: feature_groups sum to {sum(config['feature_groups'])}, need seq_len-1 = "
                         f"{config['seq_len'] - 1}")
    if config["precision"] not in PRECISIONS:
        raise BenchError(f"DIN: precision must be one of {', '.join(PRECISIONS)}, got {config['precision']!r}")
    if config["dropout_rng"] not in DROPOUT_RNGS:
        raise BenchError(f"DIN: dropout_rng must be one of {', '.join(DROPOUT_RNGS)}, got {config['dropout_rng']!r}")
    for key in ("valid_every", "patience"):
        if int(config[key]) < 0:
            raise BenchError(f"DIN: {key} must be >= 0, got {config[key]}")
    if config["select_on"] not in SELECT_ON:
        raise BenchError(f"DIN: select_on must be one of {', '.join(SELECT_ON)}, got {config['select_on']!r}")


def train_din(split: Any, config: dict[str, Any], seed: int = 0, device: str = "cpu", show_progress: bool = True,
              checkpoint: Path | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Train on split.train; returns (item table [n_items, emb_dim], training report). Resumes from `checkpoint`.
    See fit_din."""
    _, table, report = fit_din(split, config, seed, device, show_progress, checkpoint)
    return table, report


def fit_din(split: Any, config: dict[str, Any], seed: int = 0, device: str = "cpu", show_progress: bool = True,
            checkpoint: Path | None = None, network: type[DIN] = DIN,
            halt_after: int = 0) -> tuple[DIN, np.ndarray, dict[str, Any]]:
    """(trained model as it ended, exported item table [n_items, emb_dim], report).

    A killed run resumes from `checkpoint` exactly (model, optimizer, torch and sampling RNGs, the epoch's shuffled
    order and position); `halt_after` > 0 is the testing aid that stops as if killed after that step, leaving it.

    With `valid_every` > 0 the sampled validation loss and the item table's neighbour hit rate are measured every that
    many steps and the table of the best one by `select_on` is exported (selection on validation); `patience` > 0
    stops after that many validations without a new best. With `valid_every` 0 the last step's table is exported (the
    older behaviour)."""
    validate(config)
    threads = apply_threads(int(config["threads"]))
    precision = resolve_precision(str(config["precision"]), device)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    n_items = split.n_items
    histories, labels = training_windows(split.train, int(config["seq_len"]), int(config["min_seq_len"]))
    model = network(n_items, int(config["emb_dim"]), list(config["feature_groups"]), float(config["dropout"])).to(device)
    dropout_rng = resolve_dropout_rng(str(config["dropout_rng"]), device)
    if dropout_rng == "bulk":
        use_bulk_dropout(model)
    optimiser = torch.optim.Adam(model.parameters(), lr=_lr(0, config), amsgrad=True)
    steps, batch = int(config["steps"]), int(config["batch_size"])
    valid_every, patience = int(config["valid_every"]), int(config["patience"])
    step, losses, start = 0, [], time.perf_counter()
    select_on = str(config["select_on"])
    valid_curve: list[tuple[int, float]] = []  # (step, sampled validation loss)
    neighbour_curve: list[tuple[int, float]] = []  # (step, neighbour hit rate of the item table)
    best: dict[str, Any] = {"step": 0, "loss": math.inf, "neighbours": -math.inf, "table": None}
    rng = np.random.default_rng([seed, 0])  # the stream earlier tables were trained with: cached tables stay valid
    order, cursor = rng.permutation(len(labels)), 0
    state = _resume(checkpoint, model, optimiser, device)
    if state is not None:
        step, losses = int(state["step"]), list(state["losses"])
        gen.set_state(state["generator"])
        rng.bit_generator.state = state["numpy_rng"]
        order, cursor = np.asarray(state["order"]), int(state["cursor"])
        valid_curve = [tuple(v) for v in state["valid_curve"]]
        neighbour_curve = [tuple(v) for v in state["neighbour_curve"]]
        best = state["best"]
        log.info("DIN: resuming from %s at step %d", checkpoint, step)
    stopped_by = "step budget"
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
            with autocast(precision, device):
                loss = sampled_softmax_loss(model, torch.as_tensor(histories[idx], device=device),
                                            torch.as_tensor(labels[idx], device=device), n_items,
                                            int(config["negatives"]), gen)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            step += 1
            losses.append(float(loss.detach()))
            stop = False
            if valid_every and (step % valid_every == 0 or step == steps):
                value = _valid_loss(model, split, config, n_items, seed, device)
                now = model.item.weight.detach()[1:].float().cpu()
                hits = round(neighbour_hit_rate(now.numpy(), split), 5)
                valid_curve.append((step, value))
                neighbour_curve.append((step, hits))
                if _better(value, hits, best, select_on):
                    best = {"step": step, "loss": value, "neighbours": hits, "table": now.clone()}
                elif patience and step - best["step"] >= patience * valid_every:
                    stopped_by, stop = f"no new best validation {_criterion(select_on)} for {patience} validations", True
                log.info("DIN step %d: valid sampled loss %.4f, next-item neighbour hit rate %.4f (best %s at %d)",
                         step, value, hits, _criterion(select_on), best["step"])
            if progress is not None:
                progress.update(task, completed=step, description=f"DIN loss {np.mean(losses[-50:]):.3f}")
            halt = bool(halt_after) and step == halt_after and step < steps
            if checkpoint is not None and (step % int(config["checkpoint_every"]) == 0 or step == steps or stop
                                           or halt):
                save_training_state(checkpoint, model, optimiser, None,
                                    {"format": CHECKPOINT_FORMAT, "step": step, "losses": losses,
                                     "generator": gen.get_state(), "numpy_rng": rng.bit_generator.state,
                                     "order": order, "cursor": cursor, "valid_curve": valid_curve,
                                     "neighbour_curve": neighbour_curve, "best": best}, torch.device(device))
            if halt:
                raise TrainingHalted(f"DIN halted after step {step} (halt_after)")
            if stop:
                break
    finally:
        if progress is not None:
            progress.stop()
    seconds = time.perf_counter() - start
    if best["table"] is not None:
        table = best["table"].numpy().astype(np.float32)
        valid_loss, chosen = best["loss"], f"validation-best ({_criterion(select_on)}) step {best['step']} of {step}"
    else:
        table = model.item.weight.detach()[1:].cpu().numpy().astype(np.float32)
        valid_loss, chosen = _valid_loss(model, split, config, n_items, seed, device), f"last step {step}"
    chunk = max(1, len(losses) // 20)
    curve = [round(float(np.mean(losses[i:i + chunk])), 4) for i in range(0, len(losses), chunk)]
    return model, table, {"steps": step, "step_budget": steps, "stopped_by": stopped_by, "exported": chosen,
                   "train_loss_curve": curve, "final_train_loss": round(float(np.mean(losses[-100:])), 4),
                   "valid_sampled_loss": valid_loss, "valid_priors": valid_priors(split, config, seed, device),
                   "valid_curve": [[int(a), float(b)] for a, b in valid_curve],
                   **({"valid_neighbour_curve": [[int(a), float(b)] for a, b in neighbour_curve]}
                      if neighbour_curve else {}),
                   "train_windows": int(len(labels)), "epochs": round(step * batch / len(labels), 2),
                   "seconds_per_step": round(seconds / max(1, len(losses)), 4), "precision": precision,
                   "threads": threads, "dropout_rng": dropout_rng,
                   "notes": [f"exported the item table of the {chosen} (selected on validation; the code chose DIN "
                             "checkpoints on test)" if valid_every else
                             "fixed step count, final checkpoint (the code chose DIN checkpoints on test)",
                             "chronological sequences (the code used file order)"]}


def _resume(checkpoint: Path | None, model: DIN, optimiser: torch.optim.Optimizer,
            device: str) -> dict[str, Any] | None:
    """The loop state of a resumable checkpoint (model, optimizer and torch RNG restored), or None to start fresh.
    A checkpoint of the older format (no sampling-order state, so it could not resume exactly) is set aside."""
    saved = read_training_state(checkpoint, torch.device(device)) if checkpoint is not None else None
    if saved is None:
        return None
    if (saved.get("state") or {}).get("format") != CHECKPOINT_FORMAT:
        log.warning("DIN: %s is an older checkpoint format that cannot resume exactly; training from step 0",
                    checkpoint)
        return None
    return restore_training_state(saved, model, optimiser, None, torch.device(device))


@torch.no_grad()
def valid_losses(model: Any, split: Any, config: dict[str, Any], n_items: int, seed: int, device: str) -> np.ndarray:
    """Per-user sampled-softmax loss on the validation targets of the first `valid_users` users; the negatives come
    from a fixed generator, so every call (every checkpoint, every prior) sees the same ones. `model` is a DIN or any
    function (history, candidates) -> scores."""
    is_module = isinstance(model, nn.Module)
    if is_module:
        model.eval()
    users = min(int(config["valid_users"]), len(split.valid))
    history = torch.as_tensor(_left_pad(split.valid.histories[:users], int(config["seq_len"]) - 1), device=device)
    labels = torch.as_tensor(split.valid.targets[:users], device=device)
    gen = torch.Generator().manual_seed(seed + 1)
    losses = [sampled_softmax_loss(model, history[i:i + 256], labels[i:i + 256], n_items, int(config["negatives"]),
                                   gen, reduce=False).cpu().numpy() for i in range(0, users, 256)]
    if is_module:
        model.train()
    return np.concatenate(losses).astype(np.float64) if losses else np.zeros(0)


def _better(loss: float, hits: float, best: dict[str, Any], select_on: str) -> bool:
    """Whether a validation (its sampled loss and neighbour hit rate) beats the best so far by `select_on`."""
    return loss < best["loss"] if select_on == "loss" else hits > best["neighbours"]


def _criterion(select_on: str) -> str:
    return "sampled loss" if select_on == "loss" else "neighbour hit rate"


def _valid_loss(model: Any, split: Any, config: dict[str, Any], n_items: int, seed: int, device: str) -> float:
    return round(float(valid_losses(model, split, config, n_items, seed, device).mean()), 4)


def valid_priors(split: Any, config: dict[str, Any], seed: int, device: str = "cpu") -> dict[str, float]:
    """The validation loss of two behaviour-free scorers on the same targets and negatives: the training
    popularity prior (score = log count) and a uniform guess (log N with this estimator)."""
    counts = np.bincount(np.concatenate([np.asarray(s, dtype=np.int64) for s in split.train]),
                         minlength=split.n_items + 1).astype(np.float64)
    log_pop = torch.as_tensor(np.log(np.maximum(counts, 0.5)), dtype=torch.float32, device=device)
    n = split.n_items
    return {"popularity": _valid_loss(lambda h, c: log_pop[c], split, config, n, seed, device),
            "uniform": _valid_loss(lambda h, c: torch.zeros(c.shape, device=c.device), split, config, n, seed,
                                   device)}
