"""Readers for the S3-Rec file layout (interactions, attributes, aligned item text), with checksum checks."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from eager_bench.data.dataset import SequenceDataset
from eager_bench.errors import BenchError

INTERACTIONS = "{name}.txt"
ATTRIBUTES = "{name}_item2attributes.json"
ITEM_TEXT = "{name}.items.jsonl"
ALIGNMENT = "{name}.alignment.json"
REQUIRED = (INTERACTIONS, ATTRIBUTES, ITEM_TEXT)


def known_checksums() -> dict[str, str]:
    """sha256 sums kept in the package: relative path ('Beauty/Beauty.txt') -> hex digest."""
    text = resources.files("eager_bench.data").joinpath("SHA256SUMS").read_text()
    sums = {}
    for line in text.splitlines():
        if line.strip():
            digest, rel = line.split()
            sums[rel] = digest
    return sums


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def dataset_files(name: str) -> list[str]:
    return [pattern.format(name=name) for pattern in REQUIRED]


def verify_file(root: Path, name: str, filename: str) -> str:
    path = root / name / filename
    if not path.is_file():
        raise BenchError(f"missing data file {path} (run `eager-bench data download --dataset {name}` "
                         f"or point --data-dir / EAGER_BENCH_DATA at the folder holding {name}/)")
    actual = sha256_file(path)
    expected = known_checksums().get(f"{name}/{filename}")
    if expected is not None and actual != expected:
        raise BenchError(f"checksum mismatch for {path}: sha256 {actual[:12]}..., expected {expected[:12]}...")
    return actual


def parse_interactions(path: Path) -> tuple[list[np.ndarray], int]:
    """`user item item ...` per line, in time order. Returns sequences in user order and the item count."""
    sequences: list[np.ndarray] = []
    max_item = 0
    with path.open() as handle:
        for line_no, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            try:
                ids = [int(f) for f in fields]
            except ValueError:
                bad = next(f for f in fields if not f.lstrip("-").isdigit())
                raise BenchError(f"{path}:{line_no}: non-integer id {bad!r}") from None
            if len(ids) < 2:
                raise BenchError(f"{path}:{line_no}: user {ids[0]} has no items")
            items = np.asarray(ids[1:], dtype=np.int64)
            if items.min() < 1:
                raise BenchError(f"{path}:{line_no}: item ids must be >= 1, found {items.min()}")
            max_item = max(max_item, int(items.max()))
            sequences.append(items)
    if not sequences:
        raise BenchError(f"{path}: empty interactions file")
    return sequences, max_item


def parse_attributes(path: Path) -> dict[int, list[int]]:
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BenchError(f"{path}: malformed JSON ({exc.msg} at line {exc.lineno})") from None
    return {int(k): [int(a) for a in v] for k, v in raw.items()}


def parse_item_records(path: Path, n_items: int) -> list[dict[str, Any]]:
    records: list[dict[str, Any] | None] = [None] * n_items
    with path.open() as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                item = int(record["id"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                raise BenchError(f"{path}:{line_no}: malformed item record (need a JSON object with an 'id')") from None
            if not 1 <= item <= n_items:
                raise BenchError(f"{path}:{line_no}: item id {item} outside 1..{n_items}")
            records[item - 1] = record
    missing = [i + 1 for i, r in enumerate(records) if r is None]
    if missing:
        raise BenchError(f"{path}: no text record for {len(missing)} item(s), first {missing[0]}")
    return records  # type: ignore[return-value]


def load_s3rec(root: Path, name: str) -> SequenceDataset:
    if not root.is_dir():
        raise BenchError(f"data directory {root} does not exist (set --data-dir or EAGER_BENCH_DATA)")
    sums = {f"{name}/{f}": verify_file(root, name, f) for f in dataset_files(name)}
    folder = root / name
    sequences, n_items = parse_interactions(folder / INTERACTIONS.format(name=name))
    attributes = parse_attributes(folder / ATTRIBUTES.format(name=name))
    records = parse_item_records(folder / ITEM_TEXT.format(name=name), n_items)
    return SequenceDataset(name=name, sequences=sequences, n_items=n_items, item_records=records,
                           attributes=attributes, file_sha256=sums)
