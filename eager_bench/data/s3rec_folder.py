"""A user's folder in the S3-Rec layout: `<stem>.txt` (`user item item ...` per line, in time order), optional
`<stem>_item2attributes.json` ({item: [attribute, ...]}) and optional `<stem>.items.jsonl` (one JSON object per item
with its raw `id` and a `text`, or `title`/`name` and `categories`).

Ids are re-indexed: items in ascending numeric order of their raw id (a file already using 1..n keeps its ids),
users in line order. Unlike the benchmark reader, no checksum list applies: the files' sums are only recorded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from eager_bench.data.assemble import every_record, user_dataset
from eager_bench.data.dataset import SequenceDataset
from eager_bench.errors import BenchError

RULE = "S3-Rec: items in ascending order of their raw integer id (item i+1 = items[i]); users in line order"


def min_sequence() -> int:
    from eager_bench.split import MIN_SEQUENCE  # the split's own minimum, so the two can never disagree

    return MIN_SEQUENCE


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def parse_lines(path: Path) -> tuple[list[int], list[np.ndarray]]:
    """Raw user ids and raw item sequences, one per non-blank line, every problem named by file and line."""
    users: list[int] = []
    sequences: list[np.ndarray] = []
    first_line: dict[int, int] = {}
    need = min_sequence()
    with path.open() as handle:
        for line_no, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            ids = [_int(f) for f in fields]
            if None in ids:
                bad = fields[ids.index(None)]
                raise BenchError(f"{path}:{line_no}: non-integer id {bad!r} (S3-Rec lines are integer ids)")
            user, items = ids[0], ids[1:]
            if not items:
                raise BenchError(f"{path}:{line_no}: user {user} has no items")
            if len(items) < need:
                raise BenchError(f"{path}:{line_no}: user {user} has {len(items)} item(s); leave-one-out needs "
                                 f"at least {need} (drop shorter users first)")
            if user in first_line:
                raise BenchError(f"{path}:{line_no}: user {user} already has line {first_line[user]} "
                                 "(one line per user)")
            first_line[user] = line_no
            users.append(user)
            sequences.append(np.asarray(items, dtype=np.int64))
    if not sequences:
        raise BenchError(f"{path}: no interactions (one line per user: `user item item ...`)")
    return users, sequences


def parse_attributes(path: Path, index: dict[int, int]) -> dict[int, list[int]]:
    """{raw item: [attribute, ...]} -> {item id: [attribute id, ...]}; attribute values (integers or strings) are
    numbered in order of first appearance; items that never occur in the interactions are left out."""
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BenchError(f"{path}:{exc.lineno}: malformed JSON ({exc.msg})") from None
    if not isinstance(raw, dict):
        raise BenchError(f"{path}: expected a JSON object {{item id: [attribute, ...]}}")
    vocab: dict[Any, int] = {}
    out: dict[int, list[int]] = {}
    for key, values in raw.items():
        item = _int(key)
        if item is None:
            raise BenchError(f"{path}: key {key!r} is not an integer item id")
        if not isinstance(values, list) or not all(isinstance(v, (int, str)) and not isinstance(v, bool)
                                                   for v in values):
            raise BenchError(f"{path}: item {key}: attributes must be a list of integers or strings")
        if item in index:
            out[index[item]] = [vocab.setdefault(v, len(vocab) + 1) for v in values]
    return out


def parse_records(path: Path, index: dict[int, int], raw_items: np.ndarray,
                  interactions: Path) -> list[dict[str, Any]]:
    """One record per item of the interactions (by raw `id`), re-keyed to the contiguous id; `raw_id` keeps the
    user's own. Records of items that never occur are skipped; a missing one is an error (text for some items only
    would give the rest an 'item N' placeholder text without anyone noticing)."""
    records: list[dict[str, Any] | None] = [None] * len(raw_items)
    with path.open() as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            raw = record.get("id") if isinstance(record, dict) else None
            if isinstance(raw, str):
                raw = _int(raw)
            if not isinstance(raw, int) or isinstance(raw, bool):
                raise BenchError(f"{path}:{line_no}: malformed item record (need a JSON object with an integer 'id')")
            if raw not in index:
                continue
            item = index[raw]
            if records[item - 1] is not None:
                raise BenchError(f"{path}:{line_no}: a second record for item {raw}")
            records[item - 1] = {**record, "id": item, "raw_id": raw}
    return every_record(records, [int(i) for i in raw_items], path, interactions, "record")


def read_s3rec_folder(name: str, folder: Path, stem: str) -> SequenceDataset:
    interactions = folder / f"{stem}.txt"
    attributes_path = folder / f"{stem}_item2attributes.json"
    text_path = folder / f"{stem}.items.jsonl"
    users, raw_sequences = parse_lines(interactions)
    raw_items = np.unique(np.concatenate(raw_sequences))  # ascending: the re-index rule
    sequences = [np.searchsorted(raw_items, seq).astype(np.int64) + 1 for seq in raw_sequences]
    index = {int(raw): i + 1 for i, raw in enumerate(raw_items)}
    read, missing = [interactions], {}
    attributes: dict[int, list[int]] = {}
    if attributes_path.is_file():
        attributes = parse_attributes(attributes_path, index)
        read.append(attributes_path)
    else:
        missing["attributes"] = attributes_path
    records = None
    if text_path.is_file():
        records = parse_records(text_path, index, raw_items, interactions)
        read.append(text_path)
    else:
        missing["text"] = text_path
    return user_dataset(name, "s3rec", folder, read, RULE, users, [int(i) for i in raw_items], sequences, records,
                        attributes, missing)
