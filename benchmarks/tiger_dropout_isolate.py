"""Which switch of TIGER's fast path costs validation NDCG@10 at 300 updates: bf16 alone, or bulk dropout alone.

    python benchmarks/tiger_dropout_isolate.py bf16_only   # and bulk_only; writes results/benchmarks/tiger_isolate/

Quality only (run under load is fine; its throughput is not the benchmark's): compare each result's validation
NDCG@10 with the old path's in results/benchmarks/train_throughput.json (same seed, same 300 updates).
"""
import sys
from pathlib import Path
from eager_bench.runner import RunSpec, run
which = sys.argv[1]
paths = {"bf16_only": {"precision": "bf16", "threads": 1, "dropout_rng": "torch"},
         "bulk_only": {"precision": "fp32", "threads": 1, "dropout_rng": "bulk"}}
over = {"max_steps": 300, "eval_every": 300, "warmup_steps": 75, "max_train_minutes": 0.0, "latency_users": 0,
        **paths[which]}
out = run(RunSpec(model="TIGER", dataset="Beauty", profile="cpu", seed=0, overrides=over),
          results_dir=Path("results/benchmarks/tiger_isolate") / which, force=True, show_progress=False)
print(which, out.record["metrics"]["valid"]["NDCG@10"], out.record["training"]["samples_per_s"])
