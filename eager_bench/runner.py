"""One run: data -> split -> model (fit, selected on validation) -> evaluator on test -> result store."""

from __future__ import annotations

import logging
import os
import random
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eager_bench import settings
from eager_bench.compute import apply_threads
from eager_bench.config import DEFAULT_VARIANT, config_hash, hashed_config, resolve_config
from eager_bench.data import load_dataset
from eager_bench.data.notes import collecting
from eager_bench.errors import BenchError
from eager_bench.evaluation import MAX_K, evaluate
from eager_bench.models.base import RunContext
from eager_bench.models.registry import get_model_class
from eager_bench.provenance import git_state, hardware, now_iso, package_versions
from eager_bench.results import RunRecord, make_run_id, result_path, write_run
from eager_bench.split import Split, leave_one_out

SPLIT_MAX_HISTORY = 50  # the shared split's history cap (RecBole's MAX_ITEM_LIST_LENGTH default)
log = logging.getLogger("eager_bench")


@dataclass
class RunSpec:
    model: str
    dataset: str
    profile: str = "cpu"
    seed: int = 0
    variant: str = DEFAULT_VARIANT
    config_file: Path | None = None
    overrides: dict[str, Any] | None = None


@dataclass
class RunOutcome:
    path: Path
    record: dict[str, Any]
    cached: bool


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:
        pass


def peak_rss_mb() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return usage / (1024 * 1024) if sys.platform == "darwin" else usage / 1024


def process_cpu_s() -> float:
    """User + system CPU seconds of this process, all threads included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def prepare(spec: RunSpec) -> tuple[type, dict[str, Any], str, str]:
    """Resolve the model class, config, config hash and run id without touching data (for --dry-run)."""
    cls = get_model_class(spec.model)
    config = resolve_config(cls.config_file, spec.profile, spec.variant, spec.config_file, spec.overrides)
    cls.validate_config(config)
    digest = config_hash({"model": spec.model, "variant": spec.variant,
                          "config": hashed_config(cls.config_file, config),
                          "split": {"protocol": "leave-one-out", "max_history": SPLIT_MAX_HISTORY}})
    return cls, config, digest, make_run_id(spec.variant, spec.profile, spec.seed, digest)


def planned_path(spec: RunSpec, results_dir: Path) -> Path:
    _, _, _, run_id = prepare(spec)
    return result_path(results_dir, spec.dataset, spec.model, run_id)


def build_split(dataset_name: str, data_dir: Path | None) -> tuple[Any, Split]:
    dataset = load_dataset(dataset_name, data_dir)
    return dataset, leave_one_out(dataset, SPLIT_MAX_HISTORY)


def _is_user_dataset(dataset_name: str, data_dir: Path | None) -> bool:
    from eager_bench.data.registry import get_spec

    return get_spec(dataset_name, data_dir).kind in ("user", "plugin")


def _check_same_data(dataset_name: str, data_dir: Path | None, record: dict[str, Any], path: Path) -> None:
    """A finished result is found by dataset name and config; for a user's dataset (whose files are not pinned by
    SHA256SUMS) it is reused only if it was computed on the files there now."""
    if not _is_user_dataset(dataset_name, data_dir):
        return  # benchmark datasets are checked against SHA256SUMS on every load; builtin ones are generated
    now = load_dataset(dataset_name, data_dir).data_sha256()
    then = record.get("provenance", {}).get("data_sha256")
    if then != now:
        raise BenchError(f"{path}: computed on other files of {dataset_name} (data_sha256 {str(then)[:12]}, now "
                         f"{now[:12]}); rerun with --force, or give the changed data a new name")


def run(spec: RunSpec, data_dir: Path | None = None, results_dir: Path | None = None, force: bool = False,
        device: str = "cpu", show_progress: bool = True) -> RunOutcome:
    results_root = settings.results_dir(results_dir)
    cls, config, digest, run_id = prepare(spec)
    path = result_path(results_root, spec.dataset, spec.model, run_id)
    if path.exists() and not force:
        from eager_bench.results import read_run

        record = read_run(path)
        _check_same_data(spec.dataset, data_dir, record, path)
        return RunOutcome(path, record, cached=True)
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise BenchError(f"--device {device}: no CUDA device is available on this machine")

    started = now_iso()
    # The code that runs is the code at start: a commit made while a long run trains must not be credited with it.
    git_at_start = git_state()
    dataset, split = build_split(spec.dataset, data_dir)
    run_dir = settings.runs_dir() / spec.dataset / spec.model / run_id
    if _is_user_dataset(spec.dataset, data_dir):
        # a user's files can change under the same name: checkpoints of other files must never be resumed
        run_dir = run_dir.with_name(f"{run_id}-data{dataset.data_sha256()[:10]}")
    context = RunContext(run_dir=run_dir, seed=spec.seed, device=device, show_progress=show_progress,
                         logger=logging.getLogger(f"eager_bench.{spec.model}"))
    seed_everything(spec.seed)
    # One threads policy for every model (EAGER_BENCH_THREADS, else the model's `threads`, 0 = every usable core);
    # models that train set it again in fit, under torchrun or a Ray worker too.
    apply_threads(int(config.get("threads", 0)))
    model = cls(config, dataset, context)

    load_before = os.getloadavg()[0]
    t0, cpu0 = time.perf_counter(), process_cpu_s()
    with collecting() as data_notes:  # what the data forced on the model (e.g. attributes for absent item text)
        training = model.fit(split) or {}
    train_s, fit_cpu_s = time.perf_counter() - t0, process_cpu_s() - cpu0

    t1 = time.perf_counter()
    valid_rank = model.rank(split.valid, MAX_K)
    valid = evaluate(valid_rank, split.valid.targets, split.n_items)
    test_rank = model.rank(split.test, MAX_K)
    test = evaluate(test_rank, split.test.targets, split.n_items)
    eval_s = time.perf_counter() - t1

    # CPU seconds next to wall seconds, and the machine's load: a shared machine's timing means little without them
    timing = {"train_s": round(train_s, 3), "fit_cpu_s": round(fit_cpu_s, 3), "eval_s": round(eval_s, 3),
              "peak_rss_mb": round(peak_rss_mb(), 1),
              "load_avg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]}
    for key in ("seconds_per_epoch", "epochs", "steps", "samples_per_s"):
        if key in training:
            timing[key] = training[key]
    if training.get("resumed_at") is not None:
        # train_s is this process's share only; the per-epoch / per-step rates come from the checkpointed history
        timing["resumed_at"] = training["resumed_at"]
    git_at_end = git_state()
    provenance = {**git_at_start, **({"git_at_end": git_at_end} if git_at_end != git_at_start else {}),
                  "data_sha256": dataset.data_sha256(), "data_files": dataset.file_sha256,
                  "split_hash": split.fingerprint, "data_order": dataset.order,
                  "packages": package_versions(), "hardware": hardware(device),
                  "command": " ".join(sys.argv), "started_at": started, "finished_at": now_iso()}
    notes = list(training.pop("notes", [])) + data_notes
    record = RunRecord(run_id=run_id, model=spec.model, variant=spec.variant, dataset=spec.dataset,
                       profile=spec.profile, seed=spec.seed, config=config, config_hash=digest,
                       metrics={"valid": valid.metrics, "test": test.metrics}, n_test_users=len(split.test),
                       timing=timing, provenance=provenance, training=training, notes=notes)
    written = write_run(results_root, record, {"users": split.test.users, "test_ranks": test.ranks,
                                                "valid_ranks": valid.ranks})
    return RunOutcome(written, record.to_dict(), cached=False)
