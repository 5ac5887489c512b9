"""Which switch of TIGER's fast path costs validation NDCG@10 at 300 updates: bf16 alone, or bulk dropout alone.

    python benchmarks/tiger_dropout_isolate.py bf16_only   # and bulk_only; writes results/benchmarks/tiger_isolate/

Quality only (run under load is fine; its throughput is not the benchmark's): compare each result's validation
NDCG@10 with the old path's in results/benchmarks/train_throughput.json (same seed, same update budget: the
benchmark's own `budget`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from train_throughput import budget  # this folder is on sys.path when the script is run

from eager_bench.runner import RunSpec, run

SWITCHES = {"bf16_only": {"precision": "bf16", "threads": 1, "dropout_rng": "torch"},
            "bulk_only": {"precision": "fp32", "threads": 1, "dropout_rng": "bulk"}}


def main(which: str) -> None:
    variant, overrides = budget("TIGER", None)
    out = run(RunSpec(model="TIGER", dataset="Beauty", profile="cpu", seed=0, variant=variant,
                      overrides={**overrides, **SWITCHES[which]}),
              results_dir=Path("results/benchmarks/tiger_isolate") / which, force=True, show_progress=False)
    print(which, out.record["metrics"]["valid"]["NDCG@10"], out.record["training"]["samples_per_s"])


if __name__ == "__main__":
    main(sys.argv[1])
