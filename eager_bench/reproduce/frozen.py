"""Reproduce step 2: retrain the guarded cells from scratch and compare with the numbers frozen from the same
model, dataset, profile, seed and overrides. `freeze` writes those numbers; nothing else does."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from eager_bench import settings
from eager_bench.errors import BenchError
from eager_bench.provenance import package_versions
from eager_bench.reproduce.config import GuardedCell, ReproduceConfig
from eager_bench.runner import RunOutcome, RunSpec, run

FROZEN_SCHEMA = 1


@contextlib.contextmanager
def fresh_home(enabled: bool = True) -> Iterator[None]:
    """A throw-away EAGER_BENCH_HOME: no checkpoint or cache from an earlier run can stand in for retraining."""
    if not enabled:
        yield
        return
    previous = os.environ.get(settings.HOME_ENV)
    with tempfile.TemporaryDirectory(prefix="eager-bench-reproduce-") as tmp:
        os.environ[settings.HOME_ENV] = tmp
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop(settings.HOME_ENV, None)
            else:
                os.environ[settings.HOME_ENV] = previous


def train_cell(cell: GuardedCell, data_dir: Path | None, device: str = "cpu") -> RunOutcome:
    """One from-scratch run of a guarded cell, written to a temporary results folder (never the committed one)."""
    spec = RunSpec(model=cell.model, dataset=cell.dataset, profile=cell.profile, seed=cell.seed,
                   variant=cell.variant, overrides=cell.overrides or None)
    with tempfile.TemporaryDirectory(prefix="eager-bench-reproduce-results-") as tmp:
        return run(spec, data_dir=data_dir, results_dir=Path(tmp), force=True, device=device, show_progress=False)


def _cell_id(cell: GuardedCell) -> dict[str, Any]:
    return {"model": cell.model, "variant": cell.variant, "dataset": cell.dataset, "profile": cell.profile,
            "seed": cell.seed, "overrides": cell.overrides}


def read_frozen(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BenchError(f"{path}: malformed frozen reference ({exc})") from None
    if data.get("schema_version") != FROZEN_SCHEMA:
        raise BenchError(f"{path}: frozen reference schema {data.get('schema_version')}, expected {FROZEN_SCHEMA}")
    return list(data.get("cells", []))


def find_frozen(entries: list[dict[str, Any]], cell: GuardedCell) -> dict[str, Any] | None:
    wanted = _cell_id(cell)
    for entry in entries:
        if {k: entry.get(k) for k in wanted} == wanted:
            return entry
    return None


def freeze(config: ReproduceConfig, cells: list[GuardedCell], data_dir: Path | None, repeats: int = 2,
           device: str = "cpu", reuse_home: bool = False,
           on_done: Callable[[GuardedCell, int], None] | None = None) -> Path:
    """Train each cell `repeats` times from scratch, record the first run's metrics and the largest difference
    between repeats (the CPU non-determinism the tolerance must cover), and merge into the frozen file."""
    if repeats < 1:
        raise BenchError(f"--repeat must be >= 1, got {repeats}")
    entries = read_frozen(config.frozen_file)
    for cell in cells:
        outcomes = []
        for i in range(repeats):
            with fresh_home(not reuse_home):
                outcomes.append(train_cell(cell, data_dir, device))
            if on_done:
                on_done(cell, i)
        first = outcomes[0].record
        test = first["metrics"]["test"]
        spread = {m: max(abs(o.record["metrics"]["test"][m] - test[m]) for o in outcomes) for m in test}
        versions = package_versions()
        entry = {**_cell_id(cell), "config_hash": first["config_hash"],
                 "split_hash": first["provenance"].get("split_hash"),
                 "data_sha256": first["provenance"].get("data_sha256"), "metrics": test, "repeats": repeats,
                 "max_spread_between_repeats": spread,
                 "frozen_with": {k: versions.get(k) for k in ("torch", "numpy", "scipy") if k in versions}}
        entries = [e for e in entries if {k: e.get(k) for k in _cell_id(cell)} != _cell_id(cell)] + [entry]
    entries.sort(key=lambda e: (e["model"], e["variant"], e["dataset"], e["profile"], e["seed"],
                                json.dumps(e["overrides"], sort_keys=True)))
    config.frozen_file.parent.mkdir(parents=True, exist_ok=True)
    config.frozen_file.write_text(json.dumps({
        "schema_version": FROZEN_SCHEMA,
        "note": "written by `eager-bench reproduce --freeze`; never edit by hand",
        "cells": entries}, indent=2, sort_keys=True) + "\n")
    return config.frozen_file


@dataclass
class FrozenRow:
    cell: GuardedCell
    metric: str
    frozen: float | None
    now: float | None
    problem: str = ""  # set when the cell cannot be compared (not frozen, config or split changed)

    @property
    def diff(self) -> float | None:
        return None if self.frozen is None or self.now is None else self.now - self.frozen

    @property
    def ok(self) -> bool:
        if self.problem or self.diff is None:
            return False
        return abs(self.diff) <= self.cell.allowed(self.frozen) + 1e-15


@dataclass
class FrozenResult:
    rows: list[FrozenRow] = field(default_factory=list)

    @property
    def failures(self) -> list[str]:
        out = []
        for row in self.rows:
            if not row.ok:
                what = row.problem or f"{row.now:.6f} vs frozen {row.frozen:.6f}"
                out.append(f"{row.cell.key} {row.metric}: {what}")
        return out


def check_frozen(config: ReproduceConfig, cells: list[GuardedCell], data_dir: Path | None, device: str = "cpu",
                 reuse_home: bool = False, atol: float | None = None,
                 on_done: Callable[[GuardedCell, int], None] | None = None) -> FrozenResult:
    entries = read_frozen(config.frozen_file)
    result = FrozenResult()
    for cell in cells:
        if atol is not None:
            cell = GuardedCell(**{**cell.__dict__, "absolute": atol, "relative": 0.0,
                                  "reason": "--atol on the command line"})
        entry = find_frozen(entries, cell)
        if entry is None:
            result.rows += [FrozenRow(cell, m, None, None, f"not frozen; run `eager-bench reproduce --freeze "
                                                           f"--model {cell.model}`") for m in config.frozen_metrics]
            continue
        with fresh_home(not reuse_home):
            record = train_cell(cell, data_dir, device).record
        if on_done:
            on_done(cell, 0)
        problem = ""
        if record["config_hash"] != entry.get("config_hash"):
            problem = "config changed since the freeze (re-freeze if intended)"
        elif record["provenance"].get("split_hash") != entry.get("split_hash"):
            problem = "split fingerprint differs from the frozen one"
        for metric in config.frozen_metrics:
            result.rows.append(FrozenRow(cell, metric, entry["metrics"].get(metric),
                                         record["metrics"]["test"].get(metric), problem))
    return result
