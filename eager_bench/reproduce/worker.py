"""One guarded cell trained in a process of its own, so that kernel switches set in its environment
(ATEN_CPU_CAPABILITY, MKL_ENABLE_INSTRUCTIONS, ONEDNN_MAX_CPU_ISA, NPY_DISABLE_CPU_FEATURES, EAGER_BENCH_THREADS)
take effect: the libraries read them when they load. Started by `reproduce --freeze`, not by users:

    python -m eager_bench.reproduce.worker '<cell as JSON>' OUT.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from eager_bench.errors import BenchError
from eager_bench.reproduce.config import GuardedCell
from eager_bench.reproduce.frozen import AS_CONFIGURED, train_cell_in
from eager_bench.results import write_json


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m eager_bench.reproduce.worker '<cell JSON>' OUT.json", file=sys.stderr)
        return 2
    payload, out = json.loads(args[0]), Path(args[1])
    cell = GuardedCell(**payload["cell"], absolute=0.0, relative=0.0, reason="worker")
    data_dir = Path(payload["data_dir"]) if payload.get("data_dir") else None
    try:
        write_json(out, train_cell_in(AS_CONFIGURED, cell, data_dir, payload.get("device", "cpu"),
                                      bool(payload.get("reuse_home"))))
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
