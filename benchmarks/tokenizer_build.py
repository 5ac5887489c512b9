"""Timing benchmark of the tokenizers on a dataset's cached item embeddings (default: Beauty, text, 12,101 x 384).

    PYTHONPATH=. python benchmarks/tokenizer_build.py --dataset Beauty --embedding text --tokenizers hkmeans rqvae

(Named tokenizer_build, not tokenizers: a script's folder comes first on sys.path, and benchmarks/tokenizers.py
shadowed the Hugging Face `tokenizers` package that TIGER imports.)

Fits each tokenizer from scratch (no tokenizer cache; the embeddings come from their cache) and prints one JSON line
per fit with its wall and CPU time, the torch thread count and the load average, since this machine is shared.
With --output, the rows and their provenance (commit, packages, hardware) are also written there (atomic write).
Targets (issue 4): hkmeans on Beauty <= 30 s; RQ-VAE in the cpu profile <= 10 min.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from eager_bench.embeddings import item_embeddings
from eager_bench.provenance import measurement_context
from eager_bench.results import write_json
from eager_bench.tokenizers import build_tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="Beauty")
    parser.add_argument("--embedding", default="text")
    parser.add_argument("--tokenizers", nargs="+", default=["hkmeans", "hkmeans-clean", "rkmeans", "random", "rqvae"])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=None, help="also write the rows here as one JSON file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    emb = item_embeddings(args.dataset, None, args.embedding, seed=args.seed, profile=args.profile,
                          show_progress=False)
    rows = []
    for name in args.tokenizers:
        params = {"profile": args.profile} if name == "rqvae" else {}
        load_before = os.getloadavg()[0]
        start, cpu_start = time.perf_counter(), time.process_time()
        tok = build_tokenizer(name, emb, seed=args.seed, use_cache=False, **params)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        rows.append({"tokenizer": name, "dataset": args.dataset, "embedding": args.embedding,
                     "shape": list(emb.shape), "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                     "threads": args.threads, "load_avg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                     "info": {k: v for k, v in tok.info.items() if k not in ("cache_path",)}})
        print(json.dumps(rows[-1], default=str), flush=True)
    if args.output is not None:
        record = {"benchmark": "tokenizer build time", "targets": {"hkmeans Beauty text": "<= 30 s",
                                                                   "rqvae cpu profile": "<= 10 min"},
                  "rows": rows, "provenance": measurement_context()}
        write_json(args.output, record)


if __name__ == "__main__":
    main()
