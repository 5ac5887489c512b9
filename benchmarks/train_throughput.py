"""Training throughput of every trained model: the old path against the default path, side by side in one run.

    python benchmarks/train_throughput.py --dataset Beauty --models EAGER SASRec BERT4Rec TIGER DIN \
        --output results/benchmarks/train_throughput.json

For each model, two runs through the runner at the model's `cpu` profile size, same seed, same number of updates:
  old = precision fp32, 1 torch thread (the path of the committed cpu results);
  new = precision auto (bf16 autocast where the CPU has AMX / AVX512_BF16, fp32 elsewhere), every usable core, and
        less waste where it is the model's default: EAGER's bulk dropout masks, SASRec's length-bucketed batches
        trimmed to their longest, BERT4Rec's loss at its real mask slots (TIGER keeps torch dropout, as it trains),
        and for every model the allocator policy that keeps freed buffers mapped (eager_bench.allocator; old path:
        glibc's own). Each run is its own fresh process.
DIN (EAGER's behaviour-embedding trainer, not a runner model) at its paper size (batch 128, 60 negatives): old = the
forward as it was before the algebraic rewrite (every candidate x slot pair, padding included, and the G x d window
features), fp32, 1 thread, torch dropout; new = the current DIN, precision auto, every core, bulk dropout; quality =
per-user validation sampled-softmax loss at equal steps (same negatives), paired the same way.
A file that exists already keeps the rows of models not measured in this run (each row has its own provenance).
Throughput is the model's own training samples/s (training loop only: no validation, no embedding or tokenizer
stage). Quality at equal updates: validation NDCG@10 of both runs, per user from the result files' rank sidecars,
and their paired difference with a bootstrap 95% interval and a Wilcoxon test; "within noise" means the interval
contains 0. The CPU, its bf16 units, the load average around each run and the commit are recorded: run it on a quiet
machine (one process per core at most), a timing under load means little.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

from eager_bench import settings
from eager_bench.allocator import ALLOCATOR_ENV, allocator_report
from eager_bench.compute import bf16_matrix_units, resolve_precision, usable_cores
from eager_bench.config import parse_override
from eager_bench.embeddings.din import DIN
from eager_bench.errors import BenchError
from eager_bench.provenance import measurement_context
from eager_bench.results import read_ranks, write_json
from eager_bench.runner import RunSpec, peak_rss_mb, prepare, run

PATHS: dict[str, dict[str, Any]] = {"old": {"precision": "fp32", "threads": 1},
                                    "new": {"precision": "auto", "threads": 0}}
# Less waste on the hot path, per model (old path: off): EAGER's bulk dropout masks, RecBole's length-bucketed
# batches trimmed to their longest sequence.
WASTE: dict[str, dict[str, dict[str, Any]]] = {
    "EAGER": {"old": {"dropout_rng": "torch"}, "new": {"dropout_rng": "auto"}},
    "TIGER": {"old": {"dropout_rng": "torch"}, "new": {"dropout_rng": "torch"}},  # bulk costs TIGER quality (tiger_isolate)
    "SASRec": {"old": {"length_buckets": False}, "new": {"length_buckets": True}},
    # BERT4Rec's default is unbucketed: buckets changed what one epoch learns (results/benchmarks/bert4rec_bf16_only)
    "BERT4Rec": {"old": {"length_buckets": False, "loss_slots": "all"},
                 "new": {"length_buckets": False, "loss_slots": "masked"}},
}
# Machine settings of each path (not config keys): the old path keeps glibc's own allocator behaviour, the new one
# the default policy (eager_bench.allocator). Each run is a fresh process, so neither inherits the other's.
PATH_ENV: dict[str, dict[str, str]] = {"old": {ALLOCATOR_ENV: "system"}, "new": {ALLOCATOR_ENV: "tuned"}}
DEFAULT_UPDATES = {"EAGER": 400, "TIGER": 300, "DIN": 300}  # RecBole models: one epoch
DIN_PATHS: dict[str, dict[str, Any]] = {"old": {"precision": "fp32", "threads": 1, "dropout_rng": "torch"},
                                        "new": {"precision": "auto", "threads": 0, "dropout_rng": "auto"}}


class NaiveDIN(DIN):
    """DIN's forward before the rewrite in eager_bench/embeddings/din.py (the same function, computed the long way):
    the attention unit on a [B, C, S] grid of every (candidate, slot) pair, then the window sums as G x d features
    into the MLP's first layer."""

    def forward(self, history: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        b, s = history.shape
        c = candidates.shape[1]
        h, q = self.item(history), self.item(candidates)
        d = h.shape[-1]
        w_q, w_u, w_d, w_p = self.att_in.weight.split(d, dim=1)
        pre = (q @ (w_q + w_d).T).unsqueeze(2) + (h @ (w_u - w_d).T).unsqueeze(1) \
            + (q.unsqueeze(2) * h.unsqueeze(1)) @ w_p.T + self.att_in.bias  # [B, C, S, 64]
        valid = (history > 0).unsqueeze(1).expand(b, c, s)
        hidden = self.att_out(self.att_mid(self.att_drop(self.att_dice(pre[valid])))).squeeze(-1)
        weights = torch.zeros(b, c, s, dtype=hidden.dtype, device=hidden.device)
        weights[valid] = hidden
        pooled = torch.einsum("gs,bcs,bsd->bcgd", self.window, weights, h)
        features = torch.cat([pooled.reshape(b, c, -1), q], dim=-1).reshape(b * c, -1)
        return self.mlp(features).view(b, c)


def din_run(dataset: str, path: str, updates: int | None, seed: int) -> dict[str, Any]:
    """One DIN training at paper size for `updates` steps; the row and the per-user validation losses."""
    from eager_bench.data import load_dataset
    from eager_bench.embeddings.behaviour import behaviour_config
    from eager_bench.embeddings.din import fit_din, valid_losses
    from eager_bench.embeddings.quality import neighbour_hit_rate
    from eager_bench.split import leave_one_out

    u = updates or DEFAULT_UPDATES["DIN"]
    config = behaviour_config("din", "paper", {"steps": u, "warmup_steps": max(1, u // 4), "valid_every": 0,
                                               "checkpoint_every": u, **DIN_PATHS[path]})
    split = leave_one_out(load_dataset(dataset))
    load_before = os.getloadavg()[0]
    model, table, report = fit_din(split, config, seed=seed, show_progress=False,
                                   network=NaiveDIN if path == "old" else DIN)
    losses = valid_losses(model, split, config, split.n_items, seed, "cpu")
    seconds = report["seconds_per_step"] * report["steps"]
    return {"model": "DIN", "variant": "paper size", "path": path, **DIN_PATHS[path],
            "forward": "naive (pre-rewrite)" if path == "old" else "current",
            "precision_used": report["precision"], "threads_used": report["threads"],
            "samples_per_s": round(u * int(config["batch_size"]) / seconds, 1), "seconds_per_step": report["seconds_per_step"],
            "updates": u, "train_s": round(seconds, 2), "valid_sampled_loss": round(float(losses.mean()), 5),
            "neighbour_hit_rate": round(neighbour_hit_rate(table, split), 5),
            "load_avg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)], "_valid_losses": losses}


def budget(model: str, updates: int | None) -> tuple[str, dict[str, Any]]:
    """(variant, overrides) that fix the number of updates and validate once, at the end."""
    if model == "EAGER":
        u = updates or DEFAULT_UPDATES["EAGER"]
        return "default", {"steps": u, "eval_every": u, "checkpoint_every": u, "warmup_steps": max(1, u // 4),
                           "log_every": min(50, u), "max_train_minutes": 0.0}
    if model == "TIGER":
        u = updates or DEFAULT_UPDATES["TIGER"]
        return "default", {"max_steps": u, "eval_every": u, "warmup_steps": max(1, u // 4),
                           "max_train_minutes": 0.0, "latency_users": 0}
    if model in ("SASRec", "BERT4Rec"):
        # one epoch; SASRec with the full-softmax loss (`tuned`), the variant whose CE over all items dominates
        return ("tuned" if model == "SASRec" else "default"), {"epochs": 1, "stopping_step": 1,
                                                                 "max_train_minutes": 0.0}
    raise SystemExit(f"no throughput budget for model {model!r}")


def measured_run(model: str, dataset: str, path: str, updates: int | None, seed: int,
                 results: Path, new_set: dict[str, Any] | None = None) -> tuple[dict[str, Any], np.ndarray]:
    """One run of `path` in a fresh process and its per-user validation quality (DIN: sampled loss; the others:
    NDCG@10). A fresh process per run: the allocator policy and torch's thread pool are per process, and an earlier
    run's heap must not speed up or slow down the next one."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_measured_run_here, model, dataset, path, updates, seed, results, new_set).result()


def _measured_run_here(model: str, dataset: str, path: str, updates: int | None, seed: int,
                       results: Path, new_set: dict[str, Any] | None) -> tuple[dict[str, Any], np.ndarray]:
    os.environ.update(PATH_ENV[path])
    if model == "DIN":
        row = din_run(dataset, path, updates, seed)
        quality = row.pop("_valid_losses")
    else:
        row = one_run(model, dataset, path, updates, seed, results, new_set)
        quality = per_user_ndcg10(row.pop("_valid_ranks"))
    # peak resident memory of the whole run (data, embeddings, training, validation): the allocator keeps more
    row["allocator"], row["max_rss_mib"] = allocator_report(), round(peak_rss_mb())
    return row, quality


def per_user_ndcg10(valid_ranks: np.ndarray) -> np.ndarray:
    ranks = np.asarray(valid_ranks)
    gain = np.zeros(ranks.shape, dtype=np.float64)
    hit = (ranks > 0) & (ranks <= 10)
    gain[hit] = 1.0 / np.log2(ranks[hit] + 1.0)
    return gain


def paired(a: np.ndarray, b: np.ndarray, seed: int = 0, resamples: int = 2000) -> dict[str, Any]:
    diff = b - a
    rng = np.random.default_rng(seed)
    means = np.array([diff[rng.integers(0, len(diff), len(diff))].mean() for _ in range(resamples)])
    low, high = np.quantile(means, [0.025, 0.975])
    changed = diff[diff != 0]
    p = float(stats.wilcoxon(changed).pvalue) if len(changed) else 1.0
    return {"mean_diff": float(diff.mean()), "ci95": [float(low), float(high)], "wilcoxon_p": p,
            "users_changed": int(len(changed)), "within_noise": bool(low <= 0.0 <= high)}


def path_overrides(model: str, path: str, new_set: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a path sets on top of the cpu profile: precision and threads, its waste switches, and (new path only)
    the `--new-set` keys, e.g. a declared option measured against the old path."""
    return {**PATHS[path], **WASTE.get(model, {}).get(path, {}), **((new_set or {}) if path == "new" else {})}


def one_run(model: str, dataset: str, path: str, updates: int | None, seed: int, results: Path,
            new_set: dict[str, Any] | None = None) -> dict[str, Any]:
    variant, overrides = budget(model, updates)
    spec = RunSpec(model=model, dataset=dataset, profile="cpu", seed=seed, variant=variant,
                   overrides={**overrides, **path_overrides(model, path, new_set)})
    _, _, _, run_id = prepare(spec)
    shutil.rmtree(settings.runs_dir() / dataset / model / run_id, ignore_errors=True)  # never resume an old run
    load_before = os.getloadavg()[0]
    outcome = run(spec, results_dir=results, force=True, show_progress=False)
    record, training = outcome.record, outcome.record["training"]
    ranks = read_ranks(outcome.path)
    return {"model": model, "variant": variant, "path": path, **path_overrides(model, path, new_set),
            "precision_used": training.get("precision"), "threads_used": training.get("threads"),
            "samples_per_s": training.get("samples_per_s"), "seconds_per_epoch": training.get("seconds_per_epoch"),
            "updates": training.get("steps", training.get("epochs")), "train_s": record["timing"]["train_s"],
            "valid_NDCG@10": record["metrics"]["valid"]["NDCG@10"],
            "load_avg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "config_hash": record["config_hash"], "_valid_ranks": ranks["valid_ranks"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="Beauty")
    parser.add_argument("--models", nargs="+", default=["EAGER", "SASRec", "BERT4Rec", "TIGER"],
                        help="models to measure (also DIN); a re-run replaces only their rows in --output")
    parser.add_argument("--updates", type=int, default=None, help="updates per run for EAGER, TIGER and DIN "
                        "(default " + ", ".join(f"{m} {u}" for m, u in DEFAULT_UPDATES.items()) + "); RecBole: 1 epoch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=None, help="write the rows and their provenance here")
    parser.add_argument("--seed-noise", action="store_true",
                        help="one more old-path run per model at seed + 1: the quality difference that training "
                             "randomness alone makes, against which new - old is judged (a path with other random "
                             "draws, e.g. bulk dropout masks, differs like another seed does)")
    parser.add_argument("--new-set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="config keys of the new path only (every model measured, DIN excepted), e.g. "
                             "mask_padding=true length_buckets=true: a declared option against the old path")
    args = parser.parse_args()
    try:
        new_set = dict(parse_override(item) for item in args.new_set)
    except BenchError as exc:
        raise SystemExit(f"error: {exc}") from None
    rows = []
    if args.output is not None and args.output.is_file():  # keep the rows of models not measured now
        earlier = json.loads(args.output.read_text())
        rows = [dict(r, provenance=r.get("provenance", earlier.get("provenance"))) for r in earlier["rows"]
                if r["model"] not in args.models]
    with tempfile.TemporaryDirectory(prefix="eager-bench-throughput-") as tmp:
        for model in args.models:
            old, old_quality = measured_run(model, args.dataset, "old", args.updates, args.seed, Path(tmp))
            new, new_quality = measured_run(model, args.dataset, "new", args.updates, args.seed, Path(tmp), new_set)
            # DIN: a loss, lower is better (new - old < 0 is an improvement); the others: NDCG@10
            quality_key = "valid_sampled_loss_new_minus_old" if model == "DIN" else "valid_NDCG@10_new_minus_old"
            quality = paired(old_quality, new_quality)
            noise = None
            if args.seed_noise:
                _, other_quality = measured_run(model, args.dataset, "old", args.updates, args.seed + 1, Path(tmp))
                noise = paired(old_quality, other_quality)
            row = {"model": model, "old": old, "new": new,
                   "speedup": round(new["samples_per_s"] / old["samples_per_s"], 3)
                   if old["samples_per_s"] and new["samples_per_s"] else None,
                   quality_key: quality, "provenance": measurement_context()}
            if noise is not None:  # training randomness: the old path at another seed, same updates
                row["seed_noise_old_seed1_minus_seed0"] = noise
                row["within_seed_noise"] = bool(abs(quality["mean_diff"]) <= abs(noise["mean_diff"]))
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.output is not None:  # after every model: a killed benchmark keeps what it measured
                write_json(args.output, _record(args, new_set, rows))


def _record(args: argparse.Namespace, new_set: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"benchmark": "training throughput, old path (fp32, 1 thread) vs default path (precision auto, all "
                         "cores), equal updates, cpu-profile model sizes",
            "dataset": args.dataset, "new_path_set": new_set,
            "cpu_bf16_matrix_units": bf16_matrix_units(),
            "auto_precision_here": resolve_precision("auto", "cpu"), "usable_cores": usable_cores(),
            "quality_rule": "validation NDCG@10 per user, paired new - old; within noise = bootstrap 95% CI of the "
                            "mean difference (2000 resamples) contains 0. That interval holds the two trained models "
                            "fixed; with --seed-noise the row also has the difference one more seed of the old path "
                            "makes, and within_seed_noise = |new - old| <= |seed 1 - seed 0|",
            "targets (issue 22)": {"this kind of CPU without bf16 units": "EAGER >= 2x, SASRec/BERT4Rec >= 2x per "
                                   "epoch, TIGER >= 1.5x, DIN >= 1.5x",
                                   "with AMX or AVX512_BF16": "EAGER >= 3x, SASRec/BERT4Rec >= 3x, TIGER >= 2x"},
            "rows": rows}


if __name__ == "__main__":
    main()
