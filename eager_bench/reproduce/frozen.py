"""Reproduce step 2: retrain the guarded cells from scratch and compare with the numbers frozen from the same
model, dataset, profile, seed and overrides. `freeze` writes those numbers; nothing else does.

A trained cell's number is not the same on every machine (float reductions differ between instruction sets and
thread counts), so `freeze` also measures how far it moves under other kernels on this machine, and a cell's
tolerance may be stated as a multiple of that measured spread (tolerances.yaml, `spread_margin`)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from eager_bench import settings
from eager_bench.compute import THREADS_ENV, alternate_kernel_env, usable_cores
from eager_bench.errors import BenchError
from eager_bench.evaluation import MAX_K
from eager_bench.provenance import hardware, now_iso, package_versions
from eager_bench.reproduce.config import GuardedCell, ReproduceConfig
from eager_bench.results import atomic_write_bytes, read_ranks
from eager_bench.runner import RunSpec, prepare, run

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


@dataclass(frozen=True)
class KernelSetting:
    """One way of computing a cell: environment added to the process that trains it ({} = this process as it is)."""

    name: str
    env: dict[str, str] = field(default_factory=dict)


AS_CONFIGURED = KernelSetting("as configured")


def kernel_settings() -> list[KernelSetting]:
    """What a different machine could compute: this CPU's own kernels and one instruction-set level below (torch,
    MKL, oneDNN and numpy together), each at 1 and 2 torch threads (1 only on a one-core machine), beside the
    cell as configured (the number that is frozen and that CI's plain check reproduces)."""
    alternate = alternate_kernel_env()
    threads = [1, 2] if usable_cores() >= 2 else [1]
    out = [AS_CONFIGURED]
    out += [KernelSetting(f"native ISA, {t} thread{'s' if t > 1 else ''}", {THREADS_ENV: str(t)}) for t in threads]
    isa = alternate.get("ATEN_CPU_CAPABILITY")
    if isa:
        out += [KernelSetting(f"{isa} ISA, {t} thread{'s' if t > 1 else ''}", {**alternate, THREADS_ENV: str(t)})
                for t in threads]
    return out


def train_cell(cell: GuardedCell, data_dir: Path | None, device: str = "cpu") -> dict[str, Any]:
    """One from-scratch run of a guarded cell, written to a temporary results folder (never the committed one);
    returns what freezing and checking need: test metrics, hashes, the histogram of test ranks, the kernels used."""
    spec = RunSpec(model=cell.model, dataset=cell.dataset, profile=cell.profile, seed=cell.seed,
                   variant=cell.variant, overrides=cell.overrides or None)
    with tempfile.TemporaryDirectory(prefix="eager-bench-reproduce-results-") as tmp:
        outcome = run(spec, data_dir=data_dir, results_dir=Path(tmp), force=True, device=device,
                      show_progress=False)
        ranks = read_ranks(outcome.path)["test_ranks"]
    record = outcome.record
    return {"metrics": record["metrics"]["test"], "config_hash": record["config_hash"],
            "split_hash": record["provenance"].get("split_hash"),
            "data_sha256": record["provenance"].get("data_sha256"), "n_test_users": int(record["n_test_users"]),
            # ranks 0..MAX_K (0 = miss): every metric at every cutoff follows from it, so a test can ask what a
            # perturbed evaluator would have done to the frozen numbers
            "test_rank_counts": np.bincount(np.asarray(ranks, dtype=np.int64), minlength=MAX_K + 1).tolist(),
            "kernels": record["provenance"].get("hardware", {}).get("kernels", {})}


def train_cell_in(setting: KernelSetting, cell: GuardedCell, data_dir: Path | None, device: str = "cpu",
                  reuse_home: bool = False) -> dict[str, Any]:
    """train_cell under a kernel setting. The libraries read their instruction-set switches when they load, so any
    setting but AS_CONFIGURED runs in a fresh Python process (eager_bench.reproduce.worker)."""
    if not setting.env:
        with fresh_home(not reuse_home):
            return train_cell(cell, data_dir, device)
    payload = {"cell": _cell_id(cell), "data_dir": None if data_dir is None else str(data_dir), "device": device,
               "reuse_home": reuse_home}
    with tempfile.TemporaryDirectory(prefix="eager-bench-reproduce-worker-") as tmp:
        out = Path(tmp) / "cell.json"
        proc = subprocess.run([sys.executable, "-m", "eager_bench.reproduce.worker", json.dumps(payload), str(out)],
                              env={**os.environ, **setting.env}, capture_output=True, text=True)
        if proc.returncode != 0 or not out.is_file():
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise BenchError(f"{cell.key} under {setting.name}: the run failed (exit {proc.returncode}): {last}")
        return json.loads(out.read_text())


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


def settings_for(cell: GuardedCell, setups: list[KernelSetting]) -> list[KernelSetting]:
    """Drop a setting that only pins the thread count the cell's config already has: it would repeat the run as
    configured (which is repeated anyway)."""
    spec = RunSpec(model=cell.model, dataset=cell.dataset, profile=cell.profile, seed=cell.seed,
                   variant=cell.variant, overrides=cell.overrides or None)
    configured = str(prepare(spec)[1].get("threads", ""))
    return [s for s in setups if not (set(s.env) == {THREADS_ENV} and s.env[THREADS_ENV] == configured)]


def _spread(runs: list[dict[str, Any]]) -> dict[str, float]:
    return {m: max(r["metrics"][m] for r in runs) - min(r["metrics"][m] for r in runs) for m in runs[0]["metrics"]}


@dataclass
class FrozenCell:
    """What freezing one cell measured, for the command's summary."""

    cell: GuardedCell
    entry: dict[str, Any]
    metrics: list[str]

    @property
    def unstable(self) -> list[str]:
        """Metrics whose spread across kernel settings exceeds the tolerance the cell declares (a cell declared
        deterministic that is not, or a margin below 1)."""
        frozen, spread = self.entry["metrics"], self.entry["max_spread_across_kernels"]
        return [m for m in self.metrics if spread[m] > self.cell.allowed(frozen[m], spread[m]) + 1e-15]


def freeze(config: ReproduceConfig, cells: list[GuardedCell], data_dir: Path | None, repeats: int = 2,
           device: str = "cpu", reuse_home: bool = False, setups: list[KernelSetting] | None = None,
           on_done: Callable[[GuardedCell, str], None] | None = None) -> list[FrozenCell]:
    """Train each cell `repeats` times as configured and once under every other kernel setting, all from scratch;
    freeze the first run's metrics with the largest spread between repeats and across every run (what a different
    machine could compute: the tolerance's `spread_margin` scales it), and merge into the frozen file."""
    if repeats < 1:
        raise BenchError(f"--repeat must be >= 1, got {repeats}")
    setups = kernel_settings() if setups is None else setups
    if AS_CONFIGURED not in setups:
        setups = [AS_CONFIGURED, *setups]
    # cells no longer guarded (e.g. a cell whose overrides changed) leave the file: it holds what CI checks, no more
    entries = [e for e in read_frozen(config.frozen_file) if any(find_frozen([e], c) for c in config.guarded)]
    frozen_cells = []
    for cell in cells:
        per_setting: list[tuple[KernelSetting, dict[str, Any]]] = []
        for setting in settings_for(cell, setups):
            for _ in range(repeats if setting == AS_CONFIGURED else 1):
                per_setting.append((setting, train_cell_in(setting, cell, data_dir, device, reuse_home)))
                if on_done:
                    on_done(cell, setting.name)
        runs = [r for _, r in per_setting]
        first = runs[0]
        for setting, r in per_setting:
            for key in ("config_hash", "split_hash"):
                if r[key] != first[key]:
                    raise BenchError(f"{cell.key}: {key} under {setting.name} differs from the run as configured")
        repeated = [r for s, r in per_setting if s == AS_CONFIGURED]
        versions = package_versions()
        entry = {**_cell_id(cell), "config_hash": first["config_hash"], "split_hash": first["split_hash"],
                 "data_sha256": first["data_sha256"], "metrics": first["metrics"],
                 "n_test_users": first["n_test_users"], "test_rank_counts": first["test_rank_counts"],
                 "repeats": repeats, "max_spread_between_repeats": _spread(repeated),
                 "max_spread_across_kernels": _spread(runs),
                 "kernel_runs": [{"setting": s.name, "env": s.env, "metrics": r["metrics"],
                                  "torch_cpu_capability": r["kernels"].get("torch_cpu_capability"),
                                  "torch_threads": r["kernels"].get("torch_threads"),
                                  "numpy_simd": r["kernels"].get("numpy_simd")} for s, r in per_setting],
                 "frozen_on": {"cpu": hardware(device).get("cpu"), "created": now_iso()},
                 "frozen_with": {k: versions.get(k) for k in ("torch", "numpy", "scipy") if k in versions}}
        entries = [e for e in entries if {k: e.get(k) for k in _cell_id(cell)} != _cell_id(cell)] + [entry]
        frozen_cells.append(FrozenCell(cell, entry, config.metrics_of(cell)))
        _write_frozen(config.frozen_file, entries)  # after every cell: a killed freeze keeps the cells it finished
    return frozen_cells


def _write_frozen(path: Path, entries: list[dict[str, Any]]) -> None:
    entries = sorted(entries, key=lambda e: (e["model"], e["variant"], e["dataset"], e["profile"], e["seed"],
                                             json.dumps(e["overrides"], sort_keys=True)))
    atomic_write_bytes(path, (json.dumps({
        "schema_version": FROZEN_SCHEMA,
        "note": "written by `eager-bench reproduce --freeze`; never edit by hand",
        "cells": entries}, indent=2, sort_keys=True) + "\n").encode())


@dataclass
class FrozenRow:
    cell: GuardedCell
    metric: str
    frozen: float | None
    now: float | None
    problem: str = ""  # set when the cell cannot be compared (not frozen, config or split changed)
    spread: float = 0.0  # the frozen cell's measured spread across kernel settings

    @property
    def allowed(self) -> float | None:
        return None if self.frozen is None else self.cell.allowed(self.frozen, self.spread)

    @property
    def diff(self) -> float | None:
        return None if self.frozen is None or self.now is None else self.now - self.frozen

    @property
    def ok(self) -> bool:
        if self.problem or self.diff is None:
            return False
        return abs(self.diff) <= self.cell.allowed(self.frozen, self.spread) + 1e-15


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
            cell = GuardedCell(**{**cell.__dict__, "absolute": atol, "relative": 0.0, "spread_margin": 0.0,
                                  "reason": "--atol on the command line"})
        entry = find_frozen(entries, cell)
        if entry is None:
            result.rows += [FrozenRow(cell, m, None, None, f"not frozen; run `eager-bench reproduce --freeze "
                                                           f"--model {cell.model}`") for m in config.metrics_of(cell)]
            continue
        now = train_cell_in(AS_CONFIGURED, cell, data_dir, device, reuse_home)
        if on_done:
            on_done(cell, AS_CONFIGURED.name)
        problem = ""
        if now["config_hash"] != entry.get("config_hash"):
            problem = "config changed since the freeze (re-freeze if intended)"
        elif now["split_hash"] != entry.get("split_hash"):
            problem = "split fingerprint differs from the frozen one"
        spread = entry.get("max_spread_across_kernels") or {}
        for metric in config.metrics_of(cell):
            result.rows.append(FrozenRow(cell, metric, entry["metrics"].get(metric), now["metrics"].get(metric),
                                         problem, float(spread.get(metric, 0.0))))
    return result
