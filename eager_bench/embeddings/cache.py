"""On-disk cache of item-embedding matrices: <name>.npy plus a <name>.json record beside it (outside the repo)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from eager_bench import settings


def digest(*parts: Any) -> str:
    """Short stable hash of JSON-able parts (strings, numbers, lists, dicts)."""
    payload = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def entry(dataset: str, kind: str, key: str) -> Path:
    """Path stem of a cache entry; `.npy` holds the matrix, `.json` what produced it."""
    return settings.cache_dir("embeddings") / f"{dataset}-{kind}-{key}"


def file(stem: Path, extension: str) -> Path:
    """`stem` + extension. Not Path.with_suffix: a view name such as Beauty@users=0.25 has a dot, and with_suffix
    would cut the stem there, so every user fraction would share one cache file."""
    return stem.with_name(stem.name + extension)


def load(stem: Path) -> tuple[np.ndarray, dict[str, Any]] | None:
    matrix, record = file(stem, ".npy"), file(stem, ".json")
    if not (matrix.is_file() and record.is_file()):
        return None
    return np.load(matrix), json.loads(record.read_text())


def store(stem: Path, matrix: np.ndarray, record: dict[str, Any]) -> None:
    """Atomic write: the record goes last, so a matrix without its record is never read as a hit."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    tmp = stem.parent / f".{stem.name}.{os.getpid()}.npy"
    np.save(tmp, np.ascontiguousarray(matrix, dtype=np.float32))
    tmp.replace(file(stem, ".npy"))
    tmp_json = stem.parent / f".{stem.name}.{os.getpid()}.json"
    tmp_json.write_text(json.dumps(record, indent=1, default=str))
    tmp_json.replace(file(stem, ".json"))
