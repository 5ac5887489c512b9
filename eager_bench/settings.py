"""Where things live: the data directory, the cache/run directory outside the repository, the results directory.

Precedence for each: explicit argument (CLI flag) > environment variable > default.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "EAGER_BENCH_DATA"
HOME_ENV = "EAGER_BENCH_HOME"
RESULTS_ENV = "EAGER_BENCH_RESULTS"
MIRROR_ENV = "EAGER_BENCH_MIRROR"
# Folders under a results directory that hold no run records (benchmark outputs, plots, study runs read by their own
# study, the reference freeze, tokenizer reports): a dataset may not take one of these names.
RESULTS_RESERVED_DIRS = frozenset({"benchmarks", "plots", "reference", "studies", "tokenizers"})


def data_dir(explicit: str | Path | None = None) -> Path:
    """The directory holding one sub-folder per dataset (S3-Rec layout)."""
    if explicit is not None:
        return Path(explicit).expanduser()
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    return Path.home() / ".cache" / "eager-bench" / "data"


def home_dir() -> Path:
    """Cache and run directory (checkpoints, logs, embeddings): never inside the repository."""
    root = Path(os.environ.get(HOME_ENV) or Path.home() / ".cache" / "eager-bench").expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def cache_dir(kind: str) -> Path:
    path = home_dir() / "cache" / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir() -> Path:
    path = home_dir() / "runs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def results_dir(explicit: str | Path | None = None) -> Path:
    if explicit is not None:
        return Path(explicit).expanduser()
    if os.environ.get(RESULTS_ENV):
        return Path(os.environ[RESULTS_ENV]).expanduser()
    return Path.cwd() / "results"
