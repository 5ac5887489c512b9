"""Time EAGER's full-ranking inference (both streams' beam search + code_sum merge) over all test users.

    python -m eager_bench.eager.bench --dataset Beauty [--checkpoint RUN_DIR/eager.pt] [--device cpu]
        [--threads 2] [--beam-width 32] [--output results/benchmarks/eager_ranking_Beauty.json]

Target (issue 6): all 22,363 Beauty test users in <= 60 s on the 2-core CPU machine. With --output the timing is
written with its provenance (commit, packages, hardware, load average), atomically.

Without a checkpoint the weights are random and the codes a random filled table: the level-1 distributions are then
flat, so the pruned beam search expands the most candidates (a pessimistic timing). With the checkpoint of a finished
run, the real codes are rebuilt through the shared pipeline (cached) and the trained weights loaded.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from eager_bench.config import resolve_config
from eager_bench.data import load_dataset
from eager_bench.eager import model as eager_model
from eager_bench.eager.model import EAGER
from eager_bench.models.base import RunContext
from eager_bench.provenance import measurement_context
from eager_bench.results import write_json
from eager_bench.split import leave_one_out


def random_inputs(dataset, split, stream, branch, seed, profile, device, tokenizer="hkmeans", kind=None):
    rng = np.random.default_rng([seed, len(stream)])
    n = dataset.n_items
    leaves = rng.permutation(branch * branch)
    owner = np.concatenate([np.arange(1, n + 1), rng.integers(1, n + 1, branch * branch - n)])
    codes = np.stack([leaves // branch, leaves % branch], axis=1)
    dim = 96 if stream == "behavior" else 384
    return {"embeddings": rng.normal(size=(n, dim)).astype(np.float32), "codes": codes[:n], "valid_codes": codes,
            "valid_items": owner}


def time_ranking(dataset_name: str, checkpoint: Path | None = None, device: str = "cpu", profile: str = "cpu",
                 users: int | None = None, threads: int = 0, beam_width: int | None = None) -> dict[str, float]:
    if threads:
        torch.set_num_threads(threads)
    ds = load_dataset(dataset_name)
    split = leave_one_out(ds, 50)
    cfg = resolve_config(EAGER.config_file, profile, overrides={"beam_width": beam_width} if beam_width else None)
    model = EAGER(cfg, ds, RunContext(run_dir=Path("/nonexistent"), seed=0, device=device, show_progress=False))
    if checkpoint is None:
        eager_model.stream_inputs = random_inputs
    model._prepare(split)
    if checkpoint is not None:
        state = torch.load(checkpoint, map_location=device, weights_only=False)["state"]["best_state"]
        model.net.load_state_dict(state)
    model.net.eval()
    test = split.test
    if users:
        test = type(test)(test.users[:users], test.histories[:users], test.targets[:users])
    t = time.perf_counter()
    ranks = model.rank(test, 20)
    seconds = time.perf_counter() - t
    assert ranks.shape == (len(test), 20)
    return {"users": len(test), "seconds": round(seconds, 2), "users_per_s": round(len(test) / seconds, 1),
            "threads": torch.get_num_threads(), "beam_width": cfg["beam_width"], "trained": checkpoint is not None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="Beauty")
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--users", type=int, default=None)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--beam-width", type=int, default=None)
    parser.add_argument("--output", type=Path, default=None, help="also write the timing here (JSON)")
    args = parser.parse_args()
    timing = time_ranking(args.dataset, args.checkpoint, args.device, users=args.users, threads=args.threads,
                          beam_width=args.beam_width)
    print(timing)
    if args.output is not None:
        record = {"benchmark": "EAGER full-ranking inference (both streams' beams + merge)", "dataset": args.dataset,
                  "target": "all Beauty test users <= 60 s on the 2-core CPU machine",
                  "checkpoint": str(args.checkpoint) if args.checkpoint else None, **timing,
                  "provenance": measurement_context(args.device)}
        write_json(args.output, record)


if __name__ == "__main__":
    main()
