"""EAGER's full-size training step on Beauty's shapes, timed under each precision and thread count (and with
torch.compile), plus a torch.profiler table of the step: where the time of one update goes.

    python benchmarks/eager_step.py --dataset Beauty --steps 30 [--profile-ops] [--output FILE]

Speed only: the embeddings the codes are built from come from the `smoke` pretrain profile (the network's shapes do
not depend on how well the DIN trained), the step is the real one (EAGER._loss: both streams, GCT, STT; AdamW).
Each setting runs in a fresh process: torch keeps its first thread count and compiled graphs per process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# (precision, threads, torch.compile, dropout masks); the first is the committed cpu runs' path
SETTINGS = [("fp32", 1, False, "torch"), ("fp32", 2, False, "torch"), ("fp32", 1, False, "bulk"),
            ("fp32", 2, False, "bulk"), ("bf16", 1, False, "torch"), ("bf16", 2, False, "torch"),
            ("bf16", 2, False, "bulk"), ("bf16", 2, True, "bulk")]


def measure(dataset: str, precision: str, threads: int, compile_: bool, dropout_rng: str, steps: int, warmup: int,
            profile_ops: bool) -> dict[str, Any]:
    import numpy as np
    import torch

    from eager_bench.compute import autocast
    from eager_bench.config import resolve_config
    from eager_bench.eager.model import EAGER
    from eager_bench.models.base import RunContext
    from eager_bench.runner import build_split

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    config = resolve_config(EAGER.config_file, "cpu", overrides={"pretrain_profile": "smoke",
                                                                 "dropout_rng": dropout_rng})
    ds, split = build_split(dataset, None)
    model = EAGER(config, ds, RunContext(run_dir=Path("/tmp/eager-step-bench"), seed=0, show_progress=False))
    model._prepare(split)
    hist_np, tgt_np = model._instances(split)
    hist, tgt = torch.as_tensor(hist_np), torch.as_tensor(tgt_np)
    net, bs = model.net, int(config["batch_size"])
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4, weight_decay=config["weight_decay"])
    loss_fn = torch.compile(model._loss_total) if compile_ else model._loss_total
    model._loss_impl = model._loss
    rng = np.random.default_rng(0)
    net.train()

    def step() -> None:
        idx = torch.as_tensor(rng.integers(0, len(tgt), bs))
        with autocast(precision):
            loss = loss_fn(hist[idx], tgt[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    elapsed = time.perf_counter() - start
    out: dict[str, Any] = {"precision": precision, "threads": threads, "compile": compile_,
                           "dropout_rng": dropout_rng, "steps": steps,
                           "updates_per_s": round(steps / elapsed, 3), "load_avg_1min": round(os.getloadavg()[0], 2)}
    if profile_ops:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(5):
                step()
        total = sum(e.self_cpu_time_total for e in prof.key_averages())
        out["top_ops"] = [{"op": e.key, "self_share": round(e.self_cpu_time_total / total, 4)}
                          for e in sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:15]]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="Beauty")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--profile-ops", action="store_true", help="add a torch.profiler top-ops table per setting")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: 'precision,threads,compile'
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    if args.one:
        precision, threads, compile_, dropout_rng = args.one.split(",")
        print(json.dumps(measure(args.dataset, precision, int(threads), compile_ == "1", dropout_rng, args.steps,
                                 args.warmup, args.profile_ops)))
        return
    rows = []
    for precision, threads, compile_, dropout_rng in SETTINGS:
        cmd = [sys.executable, __file__, "--dataset", args.dataset, "--steps", str(args.steps), "--warmup",
               str(args.warmup), "--one", f"{precision},{threads},{int(compile_)},{dropout_rng}"]
        if args.profile_ops:
            cmd.append("--profile-ops")
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{precision}/{threads}/{compile_}/{dropout_rng}: "
                             f"{done.stderr.strip().splitlines()[-1]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "top_ops"}), flush=True)
    base = rows[0]["updates_per_s"]
    for row in rows:
        row["ratio_to_fp32_1_thread"] = round(row["updates_per_s"] / base, 3)
    if args.output is not None:
        from eager_bench.provenance import measurement_context
        from eager_bench.results import write_json

        write_json(args.output, {"benchmark": "EAGER training step, Beauty shapes, cpu profile size", "rows": rows,
                                 "provenance": measurement_context()})


if __name__ == "__main__":
    main()
