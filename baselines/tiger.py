"""TIGER (Rajput et al., NeurIPS 2023): generative retrieval over RQ-VAE semantic IDs with a T5 encoder-decoder.

A history is the flattened semantic IDs of its last `max_items` items (each level its own token range, the collision
token included), optionally after one hashed user token; the decoder generates the next item's ID token by token.
Training is teacher-forced on every training prefix; the checkpoint is selected on validation NDCG@10 and ranking is
a trie-constrained beam search (baselines.tiger_decode), so every emitted ID is a real item.
"""

from __future__ import annotations

import math
import resource
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from transformers import T5Config, T5ForConditionalGeneration

from baselines.t5_attention import use_bulk_attention_dropout
from baselines.tiger_decode import CodeTable, constrained_beam_search, level_logits, top_k_distinct
from eager_bench.compute import (DROPOUT_RNGS, PRECISIONS, apply_threads, autocast, resolve_dropout_rng,
                                  resolve_precision)
from eager_bench.errors import BenchError
from eager_bench.fast_dropout import use_bulk_dropout
from eager_bench.evaluation import NO_ITEM, evaluate
from eager_bench.models.base import Recommender
from eager_bench.distributed import all_reduce_sum, any_rank, barrier, current, loss_module, shard_rows
from eager_bench.models.training_state import atomic_save, load_training_state, save_training_state
from eager_bench.split import EvalSet, Split
from eager_bench.tokenizers.base import Tokenizer

PAD, EOS = 0, 1  # T5 starts decoding from the pad token
FIRST_CODE_TOKEN = 2
SCHEDULES = ("inverse_sqrt", "cosine", "constant")
# TIGER's Table 1 (test, full ranking), reported beside our numbers in the training report.
PAPER_TEST = {
    "Beauty": {"Recall@5": 0.0454, "NDCG@5": 0.0321, "Recall@10": 0.0648, "NDCG@10": 0.0384},
    "Sports_and_Outdoors": {"Recall@5": 0.0264, "NDCG@5": 0.0181, "Recall@10": 0.0400, "NDCG@10": 0.0225},
    "Toys_and_Games": {"Recall@5": 0.0521, "NDCG@5": 0.0371, "Recall@10": 0.0712, "NDCG@10": 0.0432},
}
OPTIMIZERS = ("adamw", "adafactor")


def build_semantic_ids(dataset, split: Split, config: dict[str, Any], seed: int, device: str = "cpu",
                       show_progress: bool = False) -> Tokenizer:
    """Item text -> embeddings -> semantic-ID tokenizer (both cached by their modules). Tests replace this seam."""
    from eager_bench.embeddings import item_embeddings
    from eager_bench.tokenizers import build_tokenizer

    embeddings = item_embeddings(dataset, split, config["embedding_source"], seed=seed,
                                 profile=config["embedding_profile"], device=device, show_progress=show_progress)
    params = {"profile": config["tokenizer_profile"], "device": device} if config["tokenizer"] == "rqvae" else {}
    return build_tokenizer(config["tokenizer"], embeddings, seed=seed, **params)


def user_bucket(users: np.ndarray, buckets: int) -> np.ndarray:
    """The paper's hashing trick: a fixed multiplicative hash of the user index into `buckets` tokens."""
    return (np.asarray(users, dtype=np.uint64) * np.uint64(2654435761) % np.uint64(2**32)).astype(np.int64) % buckets


class TIGER(Recommender):
    config_file: ClassVar[Path] = Path(__file__).with_suffix(".yaml")
    data_parallel: ClassVar[bool] = True
    eval_batch_size: ClassVar[int] = 256

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        for key in ("d_model", "d_kv", "num_heads", "d_ff", "num_layers", "num_decoder_layers", "batch_size",
                    "max_items", "max_steps", "eval_every", "beam_width", "valid_beam_width"):
            if config[key] < 1:
                raise BenchError(f"TIGER: {key} must be >= 1, got {config[key]}")
        if config["schedule"] not in SCHEDULES:
            raise BenchError(f"TIGER: schedule must be one of {', '.join(SCHEDULES)}, got {config['schedule']!r}")
        if config["optimizer"] not in OPTIMIZERS:
            raise BenchError(f"TIGER: optimizer must be one of {', '.join(OPTIMIZERS)}, got {config['optimizer']!r}")
        if config["dropout_rng"] not in DROPOUT_RNGS:
            raise BenchError(f"TIGER: dropout_rng must be one of {', '.join(DROPOUT_RNGS)}, "
                             f"got {config['dropout_rng']!r}")
        if config["precision"] not in PRECISIONS:
            raise BenchError(f"TIGER: precision must be one of {', '.join(PRECISIONS)}, got {config['precision']!r}")
        if not 0.0 <= config["dropout"] < 1.0:
            raise BenchError(f"TIGER: dropout must be in [0, 1), got {config['dropout']}")
        if config["user_buckets"] < 0 or config["valid_users"] < 0 or config["patience"] < 0:
            raise BenchError("TIGER: user_buckets, valid_users and patience must be >= 0")
        if config["lr"] <= 0:
            raise BenchError(f"TIGER: lr must be > 0, got {config['lr']}")

    def __init__(self, config: dict[str, Any], dataset, context) -> None:
        super().__init__(config, dataset, context)
        self.device = torch.device(context.device)
        self.tokenizer: Tokenizer | None = None
        self.model: T5ForConditionalGeneration | None = None

    # ----------------------------------------------------------------------------------------------- vocabulary
    def _setup_vocabulary(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        codes = np.asarray(tokenizer.codes, dtype=np.int64)
        if codes.shape[0] != self.n_items:
            raise BenchError(f"TIGER: tokenizer has codes for {codes.shape[0]} items, dataset has {self.n_items}")
        sizes = [int(v) for v in tokenizer.vocab_sizes]
        self.offsets = [FIRST_CODE_TOKEN + int(sum(sizes[:level])) for level in range(len(sizes))]
        self.levels = len(sizes)
        self.user_offset = FIRST_CODE_TOKEN + sum(sizes)
        buckets = self.config["user_buckets"]
        # One extra token stands for "user unknown" when recommend() is called without user ids.
        self.vocab_size = self.user_offset + (buckets + 1 if buckets else 0)
        # Row 0 (padding item) maps to PAD tokens, so padded history positions vanish under the attention mask.
        self.item_tokens = np.zeros((self.n_items + 1, self.levels), dtype=np.int64)
        self.item_tokens[1:] = codes + np.asarray(self.offsets)[None, :]
        valid, items = tokenizer.valid_codes()
        self.table = CodeTable(valid, items, sizes)
        self.device_table = self.table.to(self.device)

    def _new_model(self) -> T5ForConditionalGeneration:
        c = self.config
        t5 = T5Config(vocab_size=self.vocab_size, d_model=c["d_model"], d_kv=c["d_kv"], d_ff=c["d_ff"],
                      num_layers=c["num_layers"], num_decoder_layers=c["num_decoder_layers"],
                      num_heads=c["num_heads"], dropout_rate=c["dropout"], feed_forward_proj="relu",
                      pad_token_id=PAD, eos_token_id=EOS, decoder_start_token_id=PAD,
                      tie_word_embeddings=True, use_cache=False)
        model = T5ForConditionalGeneration(t5).to(self.device)
        if self.dropout_rng == "bulk":  # torch's CPU dropout draws one Bernoulli per element (eager_bench.fast_dropout)
            use_bulk_dropout(model)
            use_bulk_attention_dropout(model)  # and T5's attention-weight dropout, a functional call inside sdpa
        return model

    def _encode(self, histories: np.ndarray, lengths: np.ndarray, users: np.ndarray | None) -> tuple[torch.Tensor,
                                                                                                    torch.Tensor]:
        """[B, max_items] left-aligned item ids -> encoder tokens (user token first) and attention mask."""
        width = max(int(lengths.max()), 1)
        tokens = self.item_tokens[histories[:, :width]].reshape(len(histories), width * self.levels)
        if self.config["user_buckets"]:
            if users is None:
                user_tok = np.full(len(histories), self.user_offset + self.config["user_buckets"])
            else:
                user_tok = self.user_offset + user_bucket(users, self.config["user_buckets"])
            tokens = np.concatenate([user_tok[:, None], tokens], axis=1)
        ids = torch.as_tensor(tokens, device=self.device)
        return ids, (ids != PAD).long()

    def _pad_histories(self, histories: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        cap = self.config["max_items"]
        out = np.zeros((len(histories), cap), dtype=np.int64)
        lengths = np.zeros(len(histories), dtype=np.int64)
        for row, hist in enumerate(histories):
            hist = np.asarray(hist, dtype=np.int64)[-cap:]
            out[row, :len(hist)] = hist
            lengths[row] = len(hist)
        return out, lengths

    # -------------------------------------------------------------------------------------------------- training
    def _loss(self, histories: np.ndarray, lengths: np.ndarray, users: np.ndarray | None,
              targets: np.ndarray) -> torch.Tensor:
        input_ids, mask = self._encode(histories, lengths, users)
        labels = torch.as_tensor(self.item_tokens[targets], device=self.device)  # [B, levels]
        decoder_input = torch.cat([torch.full((len(labels), 1), PAD, dtype=torch.long, device=self.device),
                                   labels[:, :-1]], dim=1)
        encoded = self.model.encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state
        hidden = self.model.decoder(input_ids=decoder_input, encoder_hidden_states=encoded,
                                    encoder_attention_mask=mask).last_hidden_state
        # Position l predicts a level-l token: a softmax over that level's range only, as beam search scores it.
        loss = 0.0
        for level, size in enumerate(self.tokenizer.vocab_sizes):
            start = self.offsets[level]
            logits = level_logits(self.model, hidden[:, level], start, size)
            loss = loss + torch.nn.functional.cross_entropy(logits, labels[:, level] - start)
        return loss / self.levels

    def _optimizer(self) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
        c = self.config
        if c["optimizer"] == "adafactor":
            from transformers.optimization import Adafactor

            opt = Adafactor(self.model.parameters(), lr=c["lr"], scale_parameter=False, relative_step=False,
                            warmup_init=False, weight_decay=c["weight_decay"])
        else:
            opt = torch.optim.AdamW(self.model.parameters(), lr=c["lr"], weight_decay=c["weight_decay"])
        warmup, total, kind = max(c["warmup_steps"], 0), c["max_steps"], c["schedule"]
        # With a wall-clock budget, the cosine follows the larger of the step and the time fraction, so a run the
        # budget cuts still ends annealed (the cpu run cut at 1,413 of 3,000 steps ended at 60% of its peak).
        budget_s = 60.0 * c["max_train_minutes"] if c["anneal_to_budget"] else 0.0
        self._budget_elapsed_s = 0.0

        def factor(step: int) -> float:
            if kind == "inverse_sqrt":  # the paper: constant for `warmup` steps, then 1/sqrt decay
                return 1.0 if step < warmup else math.sqrt(warmup / step) if warmup else 1.0 / math.sqrt(step + 1)
            if step < warmup:
                return (step + 1) / warmup
            if kind == "cosine":
                done = (step - warmup) / max(total - warmup, 1)
                if budget_s:  # anneal by whichever runs out first, the steps or the wall-clock budget
                    done = max(done, self._budget_elapsed_s / budget_s)
                return 0.5 * (1 + math.cos(math.pi * min(1.0, done)))
            return 1.0

        return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)

    def _epoch_batches(self, lengths: np.ndarray, epoch: int) -> list[np.ndarray]:
        """Shuffled, length-bucketed batches: sort by length inside chunks of 50 batches so padding stays small."""
        rng = np.random.default_rng([self.context.seed, epoch])
        perm = rng.permutation(len(lengths))
        size = self.config["batch_size"]
        chunk = size * 50
        batches = []
        for start in range(0, len(perm), chunk):
            part = perm[start:start + chunk]
            part = part[np.argsort(lengths[part], kind="stable")]
            batches.extend(part[i:i + size] for i in range(0, len(part), size))
        order = rng.permutation(len(batches))
        return [batches[i] for i in order]

    def _checkpoint(self, name: str) -> Path:
        return self.context.checkpoint_path(name)

    def fit(self, split: Split) -> dict[str, Any]:
        c = self.config
        apply_threads(c["threads"])  # EAGER_BENCH_THREADS, else `threads`; 0 = every usable core
        self.precision = resolve_precision(c["precision"], str(self.context.device))
        self.dropout_rng = resolve_dropout_rng(c["dropout_rng"], str(self.device))
        # One process, or one rank of a torchrun job (same global batches everywhere, each rank its slice, DDP
        # averages gradients, rank 0 alone writes checkpoints).
        self.ddp = ddp = current(self.context.device)
        torch.manual_seed(self.context.seed)
        self._setup_vocabulary(build_semantic_ids(self.dataset, split, c, self.context.seed, self.context.device,
                                                  self.context.show_progress))
        self.model = self._new_model()
        optimizer, scheduler = self._optimizer()
        step_loss = loss_module(self.model, self._loss, ddp, find_unused_parameters=True)

        raw, targets = split.train_pairs(c["max_items"])
        users = np.repeat(np.arange(len(split.train)), [max(len(s) - 1, 0) for s in split.train])
        histories, lengths = self._pad_histories(raw)
        valid = self._valid_subset(split.valid)

        state = {"step": 0, "epoch": 0, "batch": 0, "best": -1.0, "best_step": 0, "curve": [], "bad_evals": 0,
                 "train_s": 0.0, "samples": 0, "stopped": "max_steps"}
        ckpt = self._checkpoint("checkpoint.pt")
        resumed = load_training_state(ckpt, self.model, optimizer, scheduler, self.device)
        resumed_at = None if resumed is None else resumed["step"]
        if resumed is not None:
            state = resumed
            self.context.logger.info("TIGER: resumed at step %d from %s", state["step"], ckpt)

        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        done = state["step"] >= c["max_steps"] or state["stopped"] in ("patience", "time_budget")
        progress = self._progress(c["max_steps"], state["step"])
        interval_start = time.perf_counter()
        while not done:
            batches = self._epoch_batches(lengths, state["epoch"])
            self.model.train()
            while state["batch"] < len(batches):
                batch = batches[state["batch"]]
                rows, share = shard_rows(torch.as_tensor(batch), ddp)
                idx = rows.numpy()
                with autocast(self.precision, str(self.context.device)):
                    loss = step_loss(histories[idx], lengths[idx], users[idx] if c["user_buckets"] else None,
                                     targets[idx]) * share
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if c["grad_clip"] > 0:
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), c["grad_clip"])
                optimizer.step()
                self._budget_elapsed_s = state["train_s"] + time.perf_counter() - interval_start
                scheduler.step()
                state["batch"] += 1
                state["step"] += 1
                state["samples"] += len(batch)
                if progress is not None:
                    progress[0].update(progress[1], advance=1, description=f"TIGER loss {loss.item():.3f}")
                over_time = bool(c["max_train_minutes"]) and any_rank(
                    state["train_s"] + time.perf_counter() - interval_start >= 60 * c["max_train_minutes"], ddp)
                if state["step"] % c["eval_every"] == 0 or state["step"] >= c["max_steps"] or over_time:
                    state["train_s"] += time.perf_counter() - interval_start
                    global_loss = float(all_reduce_sum(loss.detach(), ddp)) / ddp.world_size
                    done = self._evaluate_and_checkpoint(valid, state, optimizer, scheduler, global_loss)
                    interval_start = time.perf_counter()
                    self.model.train()
                    if done:
                        break
            else:
                state["epoch"] += 1
                state["batch"] = 0
        if progress is not None:
            progress[0].stop()

        self.model.load_state_dict(torch.load(self._checkpoint("best.pt"), map_location=self.device))
        self.model.eval()
        report = self._report(state, len(targets), resumed_at)
        report.update(self._measure_decoding(split.valid))
        return report

    def _progress(self, total: int, done: int):
        if not self.context.show_progress:
            return None
        from rich.progress import Progress

        bar = Progress(transient=True)
        bar.start()
        return bar, bar.add_task("TIGER", total=total, completed=done)

    def _valid_subset(self, valid: EvalSet) -> EvalSet:
        """Selection uses a fixed random subset of validation users (all when valid_users is 0)."""
        n = self.config["valid_users"]
        if not n or n >= len(valid):
            return valid
        pick = np.sort(np.random.default_rng(self.context.seed).choice(len(valid), n, replace=False))
        return EvalSet(valid.users[pick], [valid.histories[i] for i in pick], valid.targets[pick])

    def _evaluate_and_checkpoint(self, valid: EvalSet, state: dict[str, Any], optimizer, scheduler,
                                 loss: float) -> bool:
        c = self.config
        metrics = evaluate(self._rank_users(valid, 10, c["valid_beam_width"]), valid.targets, self.n_items).metrics
        score = metrics["NDCG@10"]
        state["curve"].append({"step": state["step"], "loss": round(loss, 4), "NDCG@10": round(score, 5),
                               "Recall@10": round(metrics["Recall@10"], 5)})
        self.context.logger.info("TIGER step %d loss %.4f valid NDCG@10 %.5f Recall@10 %.5f", state["step"], loss,
                                 score, metrics["Recall@10"])
        if score > state["best"]:
            state["best"], state["best_step"], state["bad_evals"] = score, state["step"], 0
            if self.ddp.is_main:
                atomic_save(self.model.state_dict(), self._checkpoint("best.pt"))
        else:
            state["bad_evals"] += 1
        done = state["step"] >= c["max_steps"]
        if c["patience"] and state["bad_evals"] >= c["patience"]:
            state["stopped"], done = "patience", True
        if c["max_train_minutes"] and state["train_s"] >= 60 * c["max_train_minutes"]:
            state["stopped"], done = "time_budget", True
        if self.ddp.is_main:
            save_training_state(self._checkpoint("checkpoint.pt"), self.model, optimizer, scheduler, state,
                                self.device)
        barrier(self.ddp)  # the other ranks may read best.pt next
        return done

    def _report(self, state: dict[str, Any], n_samples: int, resumed_at: int | None) -> dict[str, Any]:
        c = self.config
        samples_per_s = state["samples"] / state["train_s"] if state["train_s"] else 0.0
        tok = self.tokenizer
        codes = np.asarray(tok.codes)
        report = {
            "steps": state["step"], "epochs": round(state["samples"] / n_samples, 3), "best_step": state["best_step"],
            "resumed_at": resumed_at,
            "best_valid_NDCG@10_subset": round(state["best"], 5), "stopped_by": state["stopped"],
            "valid_curve": state["curve"], "train_samples": n_samples,
            "samples_per_s": round(samples_per_s, 1),
            "seconds_per_epoch": round(n_samples / samples_per_s, 1) if samples_per_s else None,
            "n_parameters": int(sum(p.numel() for p in self.model.parameters())),
            "vocab_size": self.vocab_size, "beam_width": c["beam_width"], "world_size": self.ddp.world_size,
            "precision": self.precision, "threads": torch.get_num_threads(), "dropout_rng": self.dropout_rng,
            "tokenizer": {"name": getattr(tok, "name", type(tok).__name__), "vocab_sizes": list(tok.vocab_sizes),
                          "level_usage": [int(len(np.unique(codes[:, lv]))) for lv in range(codes.shape[1])],
                          "unique_prefixes": int(len(np.unique(codes[:, :-1], axis=0))),
                          "max_collision_token": int(codes[:, -1].max())},
            "notes": self._notes(),
        }
        if self.dataset.name in PAPER_TEST:
            report["paper_test_metrics"] = PAPER_TEST[self.dataset.name]
        report["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        if self.device.type == "cuda":
            report["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated(self.device) / 2**20, 1)
        return report

    def _notes(self) -> list[str]:
        c = self.config
        notes = [
            f"Training precision {self.precision} (precision: {c['precision']}; bf16 = autocast matmuls, fp32 weights "
            f"and optimizer state); inference in fp32; dropout masks: {self.dropout_rng}.",
            f"Semantic IDs: {c['tokenizer']} on {c['embedding_source']} embeddings ({c['embedding_profile']} profile: "
            "all-MiniLM-L6-v2 384-d on title/brand/categories; no price, no Sentence-T5; Sports has no titles) "
            "instead of the paper's Sentence-T5 768-d on title/price/brand/category.",
            f"Constrained beam search over a trie of valid IDs (beam {c['beam_width']}); the paper filters invalid "
            "IDs instead, so our invalid-ID rate is 0 by construction.",
            "Each decoder position is trained and scored with a softmax over its own level's token range.",
            f"Checkpoint selected on validation NDCG@10 over {c['valid_users'] or 'all'} validation users "
            f"(beam {c['valid_beam_width']}), evaluated every {c['eval_every']} steps.",
        ]
        if c["user_buckets"] == 0:
            notes.append("No user token (the paper hashes users into 2000 tokens).")
        if c["optimizer"] == "adafactor":
            notes.append("Optimizer Adafactor assumed (T5X default; the paper does not name it).")
        if (c["d_model"], c["num_layers"], c["num_decoder_layers"], c["num_heads"], c["d_ff"]) != (128, 4, 4, 6, 1024):
            notes.append(f"Smaller seq2seq than the paper: d_model {c['d_model']}, {c['num_layers']}+"
                         f"{c['num_decoder_layers']} layers, {c['num_heads']}x{c['d_kv']} heads, FFN {c['d_ff']}.")
        if c["max_train_minutes"] and c["anneal_to_budget"] and c["schedule"] == "cosine":
            notes.append(f"Cosine schedule over the larger of the step fraction and the fraction of the "
                         f"{c['max_train_minutes']}-minute budget used, so a run the budget cuts ends annealed.")
        if c["max_steps"] * c["batch_size"] < 200_000 * 256:
            notes.append(f"Short schedule: {c['max_steps']} steps x batch {c['batch_size']} (paper: 200k x 256; "
                         f"{c['optimizer']} lr {c['lr']} {c['schedule']}).")
        return notes

    # ------------------------------------------------------------------------------------------------- ranking
    def _rank_users(self, eval_set: EvalSet, k: int, beam: int) -> np.ndarray:
        out = []
        users = eval_set.users if self.config["user_buckets"] else None
        for start in range(0, len(eval_set), self.eval_batch_size):
            stop = start + self.eval_batch_size
            out.append(self._recommend(eval_set.histories[start:stop], None if users is None else users[start:stop],
                                       k, beam))
        return np.concatenate(out, axis=0)

    def _recommend(self, histories: list[np.ndarray], users: np.ndarray | None, k: int, beam: int) -> np.ndarray:
        return top_k_distinct(self._beam(histories, users, beam).items, k)

    def _beam(self, histories: list[np.ndarray], users: np.ndarray | None, beam: int):
        self.model.eval()
        padded, lengths = self._pad_histories(histories)
        input_ids, mask = self._encode(padded, lengths, users)
        return constrained_beam_search(self.model, input_ids, mask, self.device_table, self.offsets, beam)

    def rank(self, eval_set: EvalSet, k: int = 20, progress: Any = None) -> np.ndarray:
        # Overridden so the hashed user token reaches the model (recommend() alone only sees histories).
        return self._rank_users(eval_set, k, self.config["beam_width"])

    def recommend(self, histories: list[np.ndarray], k: int) -> np.ndarray:
        return self._recommend(histories, None, k, self.config["beam_width"])

    def _measure_decoding(self, valid: EvalSet) -> dict[str, Any]:
        """Latency per user for several beam widths and the invalid-ID rate as judged by the tokenizer's decode."""
        n = min(self.config["latency_users"], len(valid))
        if n == 0:
            return {}
        hist = valid.histories[:n]
        users = valid.users[:n] if self.config["user_buckets"] else None
        latency, emitted, invalid = {}, 0, 0
        for beam in self.config["latency_beams"]:
            t0 = time.perf_counter()
            for start in range(0, n, self.eval_batch_size):
                res = self._beam(hist[start:start + self.eval_batch_size],
                                 None if users is None else users[start:start + self.eval_batch_size], beam)
                finite = np.isfinite(res.scores)
                decoded = self.tokenizer.decode(res.codes[finite])
                emitted += int(finite.sum())
                invalid += int((decoded == NO_ITEM).sum())
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            latency[str(beam)] = round(1000 * (time.perf_counter() - t0) / n, 3)
        return {"decode_ms_per_user": latency, "decode_batch_size": self.eval_batch_size, "decode_users": n,
                "invalid_id_rate": invalid / max(emitted, 1), "ids_emitted": emitted}
