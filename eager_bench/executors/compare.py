"""Wall-clock of one grid under the local and the Ray executor (fresh results folders, so nothing is cached).

    python -m eager_bench.executors.compare --models Popularity Markov --datasets Beauty Toys_and_Games --seeds 2

Ray's start-up is timed apart from the grid; the speed-up is reported with and without it.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from rich.console import Console

from eager_bench.executors.local import run_grid_local
from eager_bench.executors.ray_executor import import_ray, run_grid_ray, start_ray
from eager_bench.grid import plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["Popularity", "Markov"])
    parser.add_argument("--datasets", nargs="+", default=["Beauty", "Toys_and_Games"])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 2, help="CPUs of the local Ray")
    args = parser.parse_args()
    console = Console(stderr=True)
    seeds = list(range(args.seeds))
    timings = {}
    with tempfile.TemporaryDirectory() as tmp:
        local_dir, ray_dir = Path(tmp) / "local", Path(tmp) / "ray"
        start = time.perf_counter()
        local = run_grid_local(plan(args.models, args.datasets, seeds, args.profile, local_dir), local_dir, None,
                               "cpu", False, console)
        timings["local_s"] = time.perf_counter() - start
        start = time.perf_counter()
        start_ray(None, num_cpus=args.cpus)
        timings["ray_start_s"] = time.perf_counter() - start
        start = time.perf_counter()
        on_ray = run_grid_ray(plan(args.models, args.datasets, seeds, args.profile, ray_dir), ray_dir, None, "cpu",
                              False, console)
        timings["ray_grid_s"] = time.perf_counter() - start
        import_ray().shutdown()
        same = all(a.record["metrics"] == b.record["metrics"] for a, b in zip(local, on_ray))
    runs = len(local)
    report = {"runs": runs, "ray_runs": len(on_ray), "same_metrics": same, "ray_cpus": args.cpus,
              **{k: round(v, 1) for k, v in timings.items()},
              "speedup_grid": round(timings["local_s"] / timings["ray_grid_s"], 2),
              "speedup_with_start": round(timings["local_s"] / (timings["ray_grid_s"] + timings["ray_start_s"]), 2),
              "load_average": os.getloadavg()}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
