"""The last step of reading a user dataset: file sums for provenance, the saved raw-id mapping, the dataset.

Both readers (S3-Rec and RecBole atomic) hand over sequences already in contiguous ids (items 1..n, users 0..u-1 in
the order the reader states); this module records which raw id each contiguous id stands for, so results can be
mapped back to the user's own ids.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from eager_bench import settings
from eager_bench.data.dataset import SequenceDataset
from eager_bench.data.s3rec import sha256_file
from eager_bench.errors import BenchError

ID_MAP_VERSION = "ids-v1"


def file_sums(folder: Path, paths: Sequence[Path]) -> dict[str, str]:
    """sha256 of every file read, keyed like the benchmark's ('<folder>/<file>'); recorded, never checked."""
    return {f"{folder.name}/{path.name}": sha256_file(path) for path in paths}


def every_record(records: list[dict[str, Any] | None], raw_items: Sequence[Any], path: Path, source: Path,
                 what: str) -> list[dict[str, Any]]:
    """The item records of both readers, one per item of the interactions: a missing one is an error (text for some
    items only would give the rest a placeholder text without anyone noticing)."""
    absent = [raw_items[i] for i, r in enumerate(records) if r is None]
    if absent:
        raise BenchError(f"{path}: no {what} for {len(absent)} of the {len(raw_items)} items in {source.name}, "
                         f"first {absent[0]!r}")
    return records  # type: ignore[return-value]


def _atomic_write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write beside the target and rename, so a killed process never leaves a half-written map."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w") as out:
            json.dump(payload, out)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_id_map(name: str, fmt: str, rule: str, sums: dict[str, str], users: Sequence[Any],
                items: Sequence[Any]) -> Path:
    """users[u] is the raw id of user #u, items[i] the raw id of item i+1. The file name carries the digest of the
    input files (the first 16 hex digits of the results' provenance data_sha256), so two versions of a folder never
    share a map and rereading the same files rewrites the same one."""
    digest = SequenceDataset(name, [], 0, file_sha256=sums).data_sha256()[:16]
    path = settings.cache_dir("datasets") / f"{name}-{digest}.ids.json"
    _atomic_write_json(path, {"version": ID_MAP_VERSION, "dataset": name, "format": fmt, "rule": rule,
                              "files": sums, "users": [_plain(u) for u in users],
                              "items": [_plain(i) for i in items]})
    return path


def _plain(value: Any) -> Any:
    """numpy scalars -> Python ones (json cannot write np.int64)."""
    return value.item() if isinstance(value, np.generic) else value


def user_dataset(name: str, fmt: str, folder: Path, read: Sequence[Path], rule: str, users: Sequence[Any],
                 items: Sequence[Any], sequences: list[np.ndarray], item_records: list[dict[str, Any]] | None,
                 attributes: dict[int, list[int]], missing: dict[str, Path]) -> SequenceDataset:
    sums = file_sums(folder, read)
    id_map = save_id_map(name, fmt, rule, sums, users, items)
    return SequenceDataset(name=name, sequences=sequences, n_items=len(items), item_records=item_records,
                           attributes=attributes, file_sha256=sums,
                           missing={kind: str(path) for kind, path in missing.items()},
                           origin={"format": fmt, "folder": str(folder), "id_map": str(id_map)})
