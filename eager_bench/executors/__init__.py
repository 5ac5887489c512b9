"""How `run --all` executes its grid: `local` (sequential, in this process) or `ray` (one Ray task per run).

Both take the planned grid and return the outcomes of the runs that finished, in grid order; a run that failed
is reported on the console and left out, so `len(outcomes) < len(items)` means some runs failed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from eager_bench.errors import BenchError
from eager_bench.grid import GridItem
from eager_bench.runner import RunOutcome

EXECUTORS = ("local", "ray")


def run_grid_with(executor: str, items: list[GridItem], results_dir: Path, data_dir: Path | None, device: str,
                  force: bool, console: Console, address: str | None = None, cpus_per_task: float = 1,
                  gpus_per_task: float | None = None, **options: Any) -> list[RunOutcome]:
    """Dispatch to the named executor.

    `address` (an existing Ray cluster) and the per-run resource requests only mean something to `ray`; the local
    executor runs one run at a time on whatever this process has.
    """
    if executor == "local":
        if address is not None:
            raise BenchError("--address needs --executor ray")
        from eager_bench.executors.local import run_grid_local

        return run_grid_local(items, results_dir, data_dir, device, force, console)
    if executor == "ray":
        from eager_bench.executors.ray_executor import run_grid_ray

        return run_grid_ray(items, results_dir, data_dir, device, force, console, address=address,
                            num_cpus_per_task=cpus_per_task, num_gpus_per_task=gpus_per_task, **options)
    raise BenchError(f"unknown executor {executor!r}; known: {', '.join(EXECUTORS)}")
