"""The result store: one JSON file per run (schema version 1) plus a compressed sidecar of per-user ranks.

Layout: <results>/<dataset>/<model>/<run_id>.json and <run_id>.ranks.npz. Files are written to a temporary name
and renamed, so a killed run never leaves a half-written result. The run id is derived from variant, profile,
seed and config hash, so a finished run is found again without an index.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from eager_bench.errors import BenchError
from eager_bench.settings import RESULTS_RESERVED_DIRS

SCHEMA_VERSION = 1
REQUIRED_KEYS = ("schema_version", "run_id", "model", "variant", "dataset", "profile", "seed", "config",
                 "config_hash", "metrics", "n_test_users", "timing", "provenance")


@dataclass
class RunRecord:
    run_id: str
    model: str
    variant: str
    dataset: str
    profile: str
    seed: int
    config: dict[str, Any]
    config_hash: str
    metrics: dict[str, dict[str, float]]  # {"valid": {...}, "test": {...}}
    n_test_users: int
    timing: dict[str, Any]  # train_s, eval_s, peak_rss_mb (+ model-specific, e.g. seconds_per_epoch)
    provenance: dict[str, Any]
    training: dict[str, Any] = field(default_factory=dict)  # the model's own report (epochs, curves, ...)
    notes: list[str] = field(default_factory=list)  # declared deviations from the paper's setting
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_run_id(variant: str, profile: str, seed: int, config_hash: str) -> str:
    return f"{variant}-{profile}-s{seed}-{config_hash[:10]}"


def result_path(results_dir: Path, dataset: str, model: str, run_id: str) -> Path:
    return results_dir / dataset / model / f"{run_id}.json"


def ranks_path(json_path: Path) -> Path:
    return json_path.with_name(json_path.name[: -len(".json")] + ".ranks.npz")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path: Path, obj: Any) -> None:
    """A JSON document (indent 1, unknown types as str) written atomically: benchmarks and code-quality reports."""
    atomic_write_bytes(path, (json.dumps(obj, indent=1, default=str) + "\n").encode())


def write_run(results_dir: Path, record: RunRecord, ranks: dict[str, np.ndarray]) -> Path:
    """Sidecar first, JSON last: a JSON file on disk always has its ranks beside it."""
    path = result_path(results_dir, record.dataset, record.model, record.run_id)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{k: np.asarray(v) for k, v in ranks.items()})
    atomic_write_bytes(ranks_path(path), buffer.getvalue())
    text = json.dumps(record.to_dict(), indent=2, sort_keys=False, default=_jsonable) + "\n"
    atomic_write_bytes(path, text.encode())
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_run(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BenchError(f"{path}: unreadable result file ({exc})") from None
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise BenchError(f"{path}: result file lacks {', '.join(missing)}")
    if data["schema_version"] != SCHEMA_VERSION:
        raise BenchError(f"{path}: schema version {data['schema_version']}, this suite reads {SCHEMA_VERSION}")
    return data


def read_ranks(json_path: Path) -> dict[str, np.ndarray]:
    with np.load(ranks_path(json_path)) as data:
        return {k: data[k] for k in data.files}


def iter_results(results_dir: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every result file <dataset>/<model>/<run_id>.json under a results directory, in a stable order; the reserved
    folders are not datasets (a benchmark writes e.g. benchmarks/<name>/train_throughput.json at the same depth)."""
    if not results_dir.is_dir():
        return
    for path in sorted(results_dir.glob("*/*/*.json")):
        if path.relative_to(results_dir).parts[0] in RESULTS_RESERVED_DIRS:
            continue
        yield path, read_run(path)
