"""The default executor: the grid's runs one after another in this process (eager_bench.grid.run_grid)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from eager_bench.grid import GridItem, run_grid
from eager_bench.runner import RunOutcome


def run_grid_local(items: list[GridItem], results_dir: Path, data_dir: Path | None, device: str, force: bool,
                   console: Console) -> list[RunOutcome]:
    return run_grid(items, results_dir, data_dir, device, force, console)
