"""EAGER (KDD'24) as a benchmark model: two-stream generation + GCT + STT, validation-selected, resumable.

Inputs per stream come from the shared pipeline: pretrained item embeddings (DIN behavior, MiniLM text) and EAGER's
balanced hierarchical k-means tree over them (`eager_bench.embeddings`, `eager_bench.tokenizers`). Everything the
official code does differently from the paper is a config key (see model.yaml and EAGER.md §7); `notes` in the
result names the setting behind each number.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from eager_bench.compute import (DROPOUT_RNGS, PRECISIONS, apply_threads, autocast, resolve_dropout_rng,
                                  resolve_precision)
from eager_bench.distributed import all_reduce_sum, any_rank, barrier, current, loss_module, shard_rows
from eager_bench.eager.beam import StreamIndex, code_log_likelihood, merge, stream_search
from eager_bench.eager.losses import gct_loss, generation_loss, stt_loss
from eager_bench.eager.network import STREAMS, EagerNet
from eager_bench.errors import BenchError
from eager_bench.fast_dropout import use_bulk_dropout
from eager_bench.length_buckets import bucketed_batches
from eager_bench.evaluation import NO_ITEM, evaluate
from eager_bench.models.base import Recommender
from eager_bench.models.training_state import TrainingHalted, load_training_state, save_training_state
from eager_bench.split import Split

log = logging.getLogger(__name__)

EMBEDDING_KIND = {"behavior": "din", "semantic": "text"}  # the streams' embeddings unless configured otherwise
BEHAVIOR_EMBEDDINGS = ("din", "cooc")  # `behavior_embedding`: EAGER's DIN, or the co-occurrence SVD control


def embedding_kind(config: dict[str, Any], stream: str) -> str:
    """The item-embedding kind (eager_bench.embeddings) a stream's tree is built from."""
    return str(config.get("behavior_embedding", "din")) if stream == "behavior" else EMBEDDING_KIND[stream]


def embedding_overrides(config: dict[str, Any], stream: str) -> dict[str, Any] | None:
    """Overrides of the embedding trainer's profile a stream's tree is built from (None: the profile as it is)."""
    if embedding_kind(config, stream) == "din" and config.get("din_select_on", "loss") != "loss":
        return {"select_on": config["din_select_on"]}
    return None


CHOICES = {"stream": STREAMS, "gct_loss": ("infonce", "smooth_l1"), "stt_quirks": ("fixed", "faithful"),
           "ranking": ("code_sum", "paper_confidence"), "windows": ("prefixes", "faithful"),
           "lr_schedule": ("inverse_sqrt", "cosine"), "tokenizer": ("hkmeans", "random"), "precision": PRECISIONS,
           "dropout_rng": DROPOUT_RNGS, "behavior_embedding": BEHAVIOR_EMBEDDINGS,
           "din_select_on": ("loss", "neighbours"), "arch": ("code", "paper_text")}
FAITHFUL_MIN_TARGET = 4  # the code's windows: 0-based positions < min_seq_len - 1 = 4 are never targets


def stream_inputs(dataset, split: Split, stream: str, branch: int, seed: int, profile: str,
                  device: str, tokenizer: str, kind: str | None = None,
                  overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The stream's pretrained item embeddings (`kind`, default EMBEDDING_KIND[stream]) and its 2-level codes,
    plus the embedding's quality line (tests replace this with small stand-ins). `random` keeps the tree's shape
    but deals items to leaves at random: the control for "do the codes matter"."""
    from eager_bench.data.text_source import semantic_kind
    from eager_bench.embeddings import embedding_record, quality_line
    from eager_bench.tokenizers import build_tokenizer

    kind = kind or EMBEDDING_KIND[stream]
    if kind == "text":
        kind = semantic_kind(dataset)  # attribute embeddings where the dataset has no item text
    emb, record = embedding_record(dataset, split, kind, seed=seed, profile=profile, device=device,
                                   overrides=overrides, show_progress=False)
    emb = np.asarray(emb, dtype=np.float32)
    tok = build_tokenizer(tokenizer, emb, seed=seed, k=branch, levels=2)
    valid_codes, valid_items = tok.valid_codes()
    return {"embeddings": emb, "codes": np.asarray(tok.codes), "valid_codes": np.asarray(valid_codes),
            "valid_items": np.asarray(valid_items), "quality": quality_line(record)}


def linear_warmup(step: int, warmup: int, init_lr: float, lr: float) -> float:
    """Factor of lr during warm-up: linear from init_lr at update 0 to lr at update `warmup`."""
    return (init_lr + step * (lr - init_lr) / warmup) / lr


def inverse_sqrt(step: int, warmup: int, init_lr: float, lr: float) -> float:
    """fairseq's inverse_sqrt schedule as a factor of lr: linear init_lr -> lr over `warmup` updates, then decay."""
    if step < warmup:
        return linear_warmup(step, warmup, init_lr, lr)
    return math.sqrt(warmup / max(step, 1))


def cosine(step: int, warmup: int, init_lr: float, lr: float, total: int) -> float:
    """The same linear warm-up, then a half cosine from lr to 0 at update `total`: a fixed budget ends annealed,
    so its last validations sit on a plateau instead of a still-rising inverse-sqrt curve."""
    if step < warmup:
        return linear_warmup(step, warmup, init_lr, lr)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def lr_factor(config: dict[str, Any]) -> Callable[[int], float]:
    """Multiplier of the peak learning rate at each update, from the config's `lr_schedule`."""
    warmup, init_lr, lr = config["warmup_steps"], config["warmup_init_lr"], config["lr"]
    if config["lr_schedule"] == "cosine":
        return lambda step: cosine(step, warmup, init_lr, lr, config["steps"])
    return lambda step: inverse_sqrt(step, warmup, init_lr, lr)


def time_to_fraction(curve: list[dict[str, Any]], fraction: float = 0.95) -> dict[str, Any] | None:
    """When validation NDCG@10 first reached `fraction` of the run's best (>= its final value, so stricter than the
    final), in wall minutes of training plus the validations up to and including that one."""
    if not curve:
        return None
    best = max(point["NDCG@10"] for point in curve)
    eval_s = 0.0
    for point in curve:
        eval_s += point["eval_s"]  # this validation included: the level is known once it has finished
        if point["NDCG@10"] >= fraction * best:
            return {"fraction": fraction, "of_best_valid_ndcg10": best, "step": point["step"],
                    "valid_ndcg10": point["NDCG@10"], "minutes": round((point["train_s"] + eval_s) / 60, 2)}
    return None  # unreachable: the best point itself qualifies


def pad_left(histories: list[np.ndarray], length: int) -> np.ndarray:
    out = np.zeros((len(histories), length), dtype=np.int64)
    for row, hist in enumerate(histories):
        hist = np.asarray(hist, dtype=np.int64)[-length:]
        if len(hist):
            out[row, length - len(hist):] = hist
    return out


class EAGER(Recommender):
    config_file: ClassVar[Path] = Path(__file__).with_suffix(".yaml")
    data_parallel: ClassVar[bool] = True

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        for key, allowed in CHOICES.items():
            if config[key] not in allowed:
                raise BenchError(f"EAGER: {key} must be one of {', '.join(allowed)}, got {config[key]!r}")
        if config["transfer"] and not config["two_stream"]:
            raise BenchError("EAGER: transfer (STT) needs two_stream: the semantic summary guides the behavior code")
        if config["length_buckets"] and not config["mask_padding"]:
            raise BenchError("EAGER: length_buckets needs mask_padding: true (with attended PAD tokens, as in the code, "
                             "the padding is part of what the encoder computes and cannot be cut)")
        if config["beam_width"] < 20:
            raise BenchError(f"EAGER: beam_width must be >= 20 (the largest cut-off), got {config['beam_width']}")
        for key in ("steps", "batch_size", "eval_every", "max_history", "d_model", "heads"):
            if config[key] < 1:
                raise BenchError(f"EAGER: {key} must be >= 1, got {config[key]}")
        if config["d_model"] % config["heads"]:
            raise BenchError(f"EAGER: d_model {config['d_model']} is not divisible by heads {config['heads']}")

    def __init__(self, config: dict[str, Any], dataset, context) -> None:
        super().__init__(config, dataset, context)
        self.streams = list(STREAMS) if config["two_stream"] else [config["stream"]]
        self.eval_batch_size = int(config["eval_batch_size"])
        self.device = torch.device(context.device)
        self.branch = self._branch(dataset.name)

    def _branch(self, name: str) -> int:
        k = int(self.config["branch"]) or int(self.config["branch_by_dataset"].get(name, 0))
        if not k:  # unknown dataset: the smallest k with k^2 >= N, capped at the code's 128
            k = min(128, math.ceil(math.sqrt(self.n_items)))
        if k * k < self.n_items:
            raise BenchError(f"EAGER: branch {k} gives {k * k} leaves < {self.n_items} items of {name}; "
                             f"2-level codes need branch^2 >= n_items (set --set branch=...)")
        return k

    # ------------------------------------------------------------------ data

    def _instances(self, split: Split) -> tuple[np.ndarray, np.ndarray]:
        """(history [M, L], target [M]): every prefix of split.train, or the code's windows (targets from pos 4)."""
        first = FAITHFUL_MIN_TARGET if self.config["windows"] == "faithful" else 1
        length = self.config["max_history"]
        hist, tgt = [], []
        for seq in split.train:
            for end in range(first, len(seq)):
                hist.append(seq[max(0, end - length):end])
                tgt.append(seq[end])
        if not tgt:
            raise BenchError(f"EAGER: no training instances in {split.dataset} with windows={self.config['windows']}")
        return pad_left(hist, length), np.asarray(tgt, dtype=np.int64)

    def _prepare(self, split: Split | None, inputs: dict[str, dict[str, Any]] | None = None) -> None:
        """Embeddings, codes, code index and network; `inputs` (stream -> stream_inputs' dict) skips building them
        (cost studies on synthetic catalogs)."""
        cfg = self.config
        self.inputs = inputs if inputs is not None else {
            s: stream_inputs(self.dataset, split, s, self.branch, self.context.seed, cfg["pretrain_profile"],
                             self.context.device, cfg["tokenizer"], embedding_kind(cfg, s),
                             embedding_overrides(cfg, s))
            for s in self.streams}
        for s, v in self.inputs.items():
            if v.get("quality"):
                log.info("EAGER %s stream: %s", s, v["quality"])
        self.index = {s: StreamIndex.build(self.branch, v["codes"], v["valid_codes"], v["valid_items"],
                                           self.device) for s, v in self.inputs.items()}
        self.targets = {s: torch.as_tensor(v["embeddings"], device=self.device) for s, v in self.inputs.items()}
        dims = {s: int(v["embeddings"].shape[1]) for s, v in self.inputs.items()}
        dims.setdefault("semantic", 1)
        self.net = EagerNet(self.n_items, {s: self.branch for s in self.streams}, dims, self.streams,
                            cfg["d_model"], cfg["heads"], cfg["ffn"], cfg["encoder_layers"], cfg["decoder_layers"],
                            cfg["dropout"], cfg["max_history"], cfg["transfer"], cfg["transfer_ffn"]).to(self.device)
        # torch's CPU dropout draws one Bernoulli per element (~16% of the fp32 step); bulk draws 16-bit uniforms
        self.dropout_rng = resolve_dropout_rng(cfg["dropout_rng"], str(self.device))
        if self.dropout_rng == "bulk":
            use_bulk_dropout(self.net)

    # ------------------------------------------------------------------ training

    def _loss(self, hist: torch.Tensor, tgt: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        cfg, net = self.config, self.net
        parts: dict[str, torch.Tensor] = {}
        # The code runs the semantic stream first: its summary guides the behavior stream's STT.
        order = [s for s in ("semantic", "behavior") if s in self.streams]
        b = hist.shape[0]
        rows = torch.cat([hist + STREAMS.index(s) * (self.n_items + 1) for s in order])  # one shared-encoder pass
        pad = (rows == 0) | (rows % (self.n_items + 1) == 0) if cfg["mask_padding"] else None
        if pad is not None:
            pad = pad & ~pad.all(dim=1, keepdim=True)
        # A batch cut to its longest history (length_buckets) keeps every item at its full-width position.
        first = int(cfg["max_history"]) - rows.shape[1]
        memory_all = net.encoder(net.encoder_embed(rows, first=first), src_key_padding_mask=pad)
        guide = None
        total = torch.zeros((), device=hist.device)
        negatives = None
        if cfg["contrastive"] and cfg["gct_loss"] == "infonce":
            negatives = torch.randperm(self.n_items, device=hist.device)[: cfg["gct_negatives"]]
        for i, s in enumerate(order):
            memory = memory_all[i * b:(i + 1) * b]
            mpad = pad[i * b:(i + 1) * b] if pad is not None else None
            codes = self.index[s].codes[tgt - 1]
            hidden = net.decoders[s](codes, memory, mpad)
            parts[f"gen_{s}"] = generation_loss(net.decoders[s], hidden, codes)
            total = total + parts[f"gen_{s}"]
            query = net.projections[s](F.normalize(hidden[:, 3], dim=-1))  # projection after L2-norm (fc_proj1)
            if cfg["contrastive"]:
                parts[f"gct_{s}"] = gct_loss(query, self.targets[s], tgt - 1, negatives, cfg["gct_loss"],
                                             cfg["gct_tau"])
                total = total + cfg[f"gct_weight_{s}"] * parts[f"gct_{s}"]
            if s == "semantic":
                guide = query
            if s == "behavior" and cfg["transfer"]:
                recon, recog = stt_loss(net.transfer, net.decoders[s], codes, guide, cfg["stt_quirks"] == "faithful")
                parts["stt_recon"], parts["stt_recog"] = recon, recog
                total = total + recon + recog
        return total, parts

    def _epoch_batches(self, hist: np.ndarray, seed: int, epoch: int) -> tuple[list[np.ndarray], list[int]]:
        """An epoch's batches (row indices) and the first column each keeps: a seeded shuffle cut into consecutive
        batches, every column kept; or, with length_buckets, batches of similar history length
        (eager_bench.length_buckets), each losing its leading all-PAD columns."""
        bs = int(self.config["batch_size"])
        if not self.config["length_buckets"]:
            perm = np.random.default_rng([seed, epoch]).permutation(len(hist))
            batches = [perm[i:i + bs] for i in range(0, len(perm), bs)]
            return batches, [0] * len(batches)
        lengths = (hist > 0).sum(axis=1)
        batches = bucketed_batches(lengths, bs, seed, epoch)
        return batches, [hist.shape[1] - int(lengths[b].max()) for b in batches]

    def _loss_total(self, hist: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        return self._loss_impl(hist, tgt)[0]

    def fit(self, split: Split) -> dict[str, Any]:
        cfg, ctx = self.config, self.context
        apply_threads(cfg["threads"])  # EAGER_BENCH_THREADS, else `threads`; 0 = every usable core
        self.precision = resolve_precision(cfg["precision"], str(self.device))
        # One process, or one rank of a torchrun job: then every rank draws the same global batches and keeps its
        # slice, DDP averages the gradients, and rank 0 alone writes checkpoints.
        self.ddp = ddp = current(ctx.device)
        torch.manual_seed(ctx.seed)
        self._prepare(split)
        hist_np, tgt_np = self._instances(split)
        hist = torch.as_tensor(hist_np, device=self.device)
        tgt = torch.as_tensor(tgt_np, device=self.device)
        n, bs = len(tgt_np), int(cfg["batch_size"])
        per_epoch = math.ceil(n / bs)
        fused = self.device.type == "cuda"
        opt = torch.optim.AdamW(self.net.parameters(), lr=cfg["lr"], betas=(0.9, 0.999), eps=1e-8,
                                weight_decay=cfg["weight_decay"], amsgrad=False, fused=fused)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(cfg))
        state = {"step": 0, "best": -1.0, "best_step": 0, "best_state": None, "curve": [], "losses": [],
                 "train_s": 0.0}
        ckpt = ctx.checkpoint_path("eager.pt")
        resumed = load_training_state(ckpt, self.net, opt, sched, self.device)
        resumed_at = None if resumed is None else resumed["step"]
        if resumed is not None:
            state = resumed
            ctx.logger.info("EAGER: resumed from %s at step %d", ckpt, state["step"])

        def save() -> None:
            # The open loss-log window travels with the checkpoint, so a resume between two log lines logs the same
            # mean as an uninterrupted run (a resume at 2,750 had logged 50 updates' sum divided by 100).
            state["log_window"] = [float(all_reduce_sum(running, ddp)), window_steps]
            if ddp.is_main:
                save_training_state(ckpt, self.net, opt, sched, state, self.device)
            barrier(ddp)

        steps, halt = int(cfg["steps"]), int(cfg["halt_after_steps"])
        batches, starts, batches_epoch = [], [], -1
        # Optional: fuse the step's many small kernels (a GPU step is launch-bound at this model size).
        self._loss_impl = torch.compile(self._loss) if cfg["compile"] else self._loss
        # Some parameters get no gradient in some settings (the semantic projection when GCT is off: STT detaches
        # its guide), which DDP must be told about.
        step_loss = loss_module(self.net, self._loss_total, ddp, find_unused_parameters=True)
        # Sum of this rank's losses since the last log line, and how many updates it holds. A checkpoint from before
        # the window was saved (no "log_window") resumes with an empty window: its first line is the mean of fewer
        # updates, never a sum divided by too many.
        saved_sum, window_steps = state.get("log_window", [0.0, 0])
        running = torch.full((), float(saved_sum) / ddp.world_size, device=self.device)
        t0 = time.perf_counter()
        wall_start = t0
        budget_s = float(cfg["max_train_minutes"]) * 60.0
        t_start_step = state["step"]
        self.net.train()
        while state["step"] < steps:
            step = state["step"]
            epoch, pos = divmod(step, per_epoch)
            if epoch != batches_epoch:  # the order of an epoch depends on (seed, epoch) only, so a resume replays it
                batches, starts = self._epoch_batches(hist_np, ctx.seed, epoch)
                batches_epoch = epoch
            idx, start = torch.as_tensor(batches[pos], device=self.device), starts[pos]
            mine, share = shard_rows(idx, ddp)  # every loss term is a mean over rows
            with autocast(self.precision, str(self.device)):
                loss = step_loss(hist[mine][:, start:], tgt[mine]) * share
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running += loss.detach()
            window_steps += 1
            state["step"] = step + 1
            done = state["step"]
            if done % cfg["log_every"] == 0:  # summed over ranks, each rank's part scaled by world/global batch
                mean_loss = float(all_reduce_sum(running, ddp)) / ddp.world_size / window_steps
                state["losses"].append([done, round(mean_loss, 5)])
                running.zero_()
                window_steps = 0
                ctx.logger.info("EAGER step %d loss %.4f", done, state["losses"][-1][1])
            # A wall-clock budget (validation included) for fixed-time hardware slots; the last state is validated.
            out_of_time = budget_s > 0 and any_rank(time.perf_counter() - wall_start >= budget_s, ddp)
            if done % cfg["eval_every"] == 0 or done == steps or out_of_time:
                state["train_s"] += time.perf_counter() - t0
                ndcg = self._validate(split, state)
                t0 = time.perf_counter()
                ctx.logger.info("EAGER step %d valid NDCG@10 %.5f (best %.5f @ %d)", done, ndcg, state["best"],
                                state["best_step"])
                save()
                if out_of_time:
                    state["stopped_by_budget"] = f"max_train_minutes={cfg['max_train_minutes']} reached at step {done}"
                    ctx.logger.info("EAGER: %s", state["stopped_by_budget"])
                    break
            elif done % cfg["checkpoint_every"] == 0:
                save()
            if halt and done == halt:
                state["train_s"] += time.perf_counter() - t0
                save()
                raise TrainingHalted(f"halted after step {done} (halt_after_steps)")
        state["train_s"] += time.perf_counter() - t0
        if state["best_state"] is not None:
            self.net.load_state_dict(state["best_state"])
        self.net.eval()
        trained = max(state["step"] - t_start_step, 0)
        return self._report(state, n, per_epoch, trained, resumed_at)

    @torch.no_grad()
    def _validate(self, split: Split, state: dict[str, Any]) -> float:
        self.net.eval()
        t = time.perf_counter()
        metrics = evaluate(self.rank(split.valid), split.valid.targets, split.n_items).metrics
        elapsed = time.perf_counter() - t
        self.net.train()
        ndcg = float(metrics["NDCG@10"])
        state["curve"].append({"step": state["step"], "NDCG@10": round(ndcg, 6),
                               "Recall@10": round(float(metrics["Recall@10"]), 6),
                               "train_s": round(state["train_s"], 1), "eval_s": round(elapsed, 2)})
        if ndcg > state["best"]:
            state["best"], state["best_step"] = ndcg, state["step"]
            state["best_state"] = {k: v.detach().to("cpu", copy=True) for k, v in self.net.state_dict().items()}
        return ndcg

    def _report(self, state: dict[str, Any], n: int, per_epoch: int, trained: int,
                resumed_at: int | None) -> dict[str, Any]:
        cfg = self.config
        sps = state["step"] / state["train_s"] if state["train_s"] > 0 else 0.0
        notes = [
            f"streams: {', '.join(self.streams)}; GCT {'on (' + cfg['gct_loss'] + ')' if cfg['contrastive'] else 'off'};"
            f" STT {'on (quirks ' + cfg['stt_quirks'] + ')' if cfg['transfer'] else 'off'}; ranking {cfg['ranking']}"
            f" (beam width {cfg['beam_width']})",
            (f"branch k={self.branch} (2-level balanced hierarchical k-means codes, duplicate leaves deduplicated)"
             if cfg["tokenizer"] == "hkmeans" else
             f"branch k={self.branch}: RANDOM 2-level codes (tokenizer control: items dealt to leaves at random)"),
            f"architecture {cfg['arch']!r} (code = the released code's sizes and GCT weights; paper_text = the "
            "paper's section 4.1)",
            "semantic embeddings: all-MiniLM-L6-v2 384-d text (paper: Sentence-T5 768-d); behavior: "
            + ("DIN 96-d" if embedding_kind(cfg, "behavior") == "din" else
               "co-occurrence PPMI SVD 96-d (declared alternative to the paper's DIN)")
            + f" (eager_bench.embeddings profile {cfg['pretrain_profile']!r}, trained on split.train only)",
            *[f"{s} stream {v['quality']}" for s, v in self.inputs.items() if v.get("quality")],
            f"warm-up {cfg['warmup_steps']} updates (code: 2000), then {cfg['lr_schedule']} decay (code: inverse_sqrt);"
            f" eval batch {cfg['eval_batch_size']}",
            "checkpoint selected on VALIDATION NDCG@10 (the official code selects on test)",
            ("training instances: every prefix of split.train (TIGER/P5-style), history cap "
             f"{cfg['max_history']}" if cfg["windows"] == "prefixes" else
             f"training instances: the code's windows (targets from position 5), history cap {cfg['max_history']}"),
            f"{state['step']} updates of batch {cfg['batch_size']} (paper/code: 60000)",
            ("padding: masked in attention (the code attends its left PAD as a token)" if cfg["mask_padding"] else
             "padding: attended as a learned PAD token (the code)")
            + ("; training batches length-bucketed and cut to their longest history" if cfg["length_buckets"] else ""),
            f"training precision {self.precision} (precision: {cfg['precision']}; bf16 = autocast matmuls, fp32 "
            f"weights and optimizer state); inference in fp32; dropout masks: {self.dropout_rng}",
        ]
        if state.get("stopped_by_budget"):
            notes.append(f"training stopped by the time budget: {state['stopped_by_budget']} of {cfg['steps']}")
        return {"steps": state["step"], "epochs": round(state["step"] / per_epoch, 2), "instances": n,
                "best_step": state["best_step"], "best_valid_ndcg10": state["best"], "valid_curve": state["curve"],
                "losses": state["losses"], "samples_per_s": round(sps * cfg["batch_size"], 1),
                "steps_per_s": round(sps, 3), "seconds_per_epoch": round(per_epoch / sps, 2) if sps else None,
                "branch": self.branch, "streams": self.streams, "world_size": self.ddp.world_size,
                "precision": self.precision, "threads": torch.get_num_threads(), "dropout_rng": self.dropout_rng,
                "time_to_95pct_of_best_valid": time_to_fraction(state["curve"]), "resumed_at": resumed_at,
                "inputs_sha256": self.inputs_digest(), "notes": notes}

    def inputs_digest(self) -> dict[str, dict[str, str]]:
        """sha256 (16 hex) of each stream's item embeddings (float32) and codes: two results whose configs agree
        were trained on the same codes only if these agree too (a DIN or text encoder that computed differently on
        another CPU would otherwise go unseen; the ablation table relies on equal inputs)."""
        def sha(array: np.ndarray, dtype: type) -> str:
            return hashlib.sha256(np.ascontiguousarray(array, dtype=dtype).tobytes()).hexdigest()[:16]

        return {s: {"embeddings": sha(v["embeddings"], np.float32), "codes": sha(v["codes"], np.int64)}
                for s, v in self.inputs.items()}

    # ------------------------------------------------------------------ inference

    @torch.no_grad()
    def recommend(self, histories: list[np.ndarray], k: int) -> np.ndarray:
        cfg, net = self.config, self.net
        net.eval()
        hist = torch.as_tensor(pad_left(histories, cfg["max_history"]), device=self.device)
        results, pads = {}, {}
        for s in self.streams:
            memory, pads[s] = net.encode(hist, s, cfg["mask_padding"])
            results[s] = stream_search(net.decoders[s], self.index[s], memory, pads[s], cfg["beam_width"], k,
                                       cfg["beam_chunk"])
        if len(self.streams) == 1:
            items = results[self.streams[0]].items
        else:
            rescored = None
            if cfg["ranking"] == "code_sum":
                cand = torch.cat([r.items for r in results.values()], dim=1)
                rescored = sum(code_log_likelihood(net.decoders[s], self.index[s], results[s], cand, pads[s])
                               for s in self.streams)
            items = merge(results, rescored, k)
        out = items.cpu().numpy()
        assert out.shape[1] == k and not np.any(out == 0)
        return np.where(out > 0, out, NO_ITEM)

    def save(self, path: Path) -> None:
        torch.save(self.net.state_dict(), path)

    def load(self, path: Path) -> None:
        self.net.load_state_dict(torch.load(path, map_location=self.device))
