"""A user's folder in RecBole's atomic-file layout: `<stem>.inter` (tab-separated, header `name:type`, with
`user_id:token`, `item_id:token` and `timestamp:float`; other columns are ignored) and optional `<stem>.item`
(`item_id:token` plus text fields: every `token` / `token_seq` column becomes part of the item's text).

Ids are re-indexed: users and items in order of first appearance in the `.inter` file (row order), and each
user's interactions ordered by timestamp, equal timestamps keeping file order. Files are read row by row with the
csv module so every problem is reported with its line; pandas does the grouping.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from eager_bench.data.assemble import every_record, user_dataset
from eager_bench.data.dataset import SequenceDataset
from eager_bench.data.s3rec_folder import min_sequence
from eager_bench.errors import BenchError

INTER_COLUMNS = {"user_id": "token", "item_id": "token", "timestamp": "float"}
TEXT_TYPES = ("token", "token_seq")
RULE = ("RecBole atomic: users and items in order of first appearance in the .inter file (item i+1 = items[i]); "
        "a user's interactions by timestamp, ties in file order")


def _rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of every non-blank line; tabs only, no quoting (RecBole's own reader)."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        for fields in reader:
            if fields and any(f.strip() for f in fields):
                yield reader.line_num, fields


def _header(path: Path, rows: Iterator[tuple[int, list[str]]]) -> tuple[int, list[tuple[str, str]]]:
    """The header's line number and its [(name, type)]."""
    first = next(rows, None)
    if first is None:
        raise BenchError(f"{path}: empty file (need a header line of name:type columns)")
    line_no, fields = first
    columns = []
    for field in fields:
        name, sep, kind = field.strip().partition(":")
        if not sep or not name or not kind:
            raise BenchError(f"{path}:{line_no}: header column {field!r} is not name:type (e.g. item_id:token)")
        columns.append((name, kind))
    names = [name for name, _ in columns]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise BenchError(f"{path}:{line_no}: column {duplicate!r} appears twice in the header")
    return line_no, columns


def _fields(path: Path, line_no: int, fields: list[str], width: int) -> list[str]:
    if len(fields) != width:
        raise BenchError(f"{path}:{line_no}: {len(fields)} tab-separated field(s), the header has {width}")
    return fields


def read_inter(path: Path) -> tuple[list[str], list[str], list[np.ndarray]]:
    """Raw user ids, raw item ids (item i+1 = items[i]) and each user's item sequence in contiguous ids."""
    rows = _rows(path)
    header_line, columns = _header(path, rows)
    names = [name for name, _ in columns]
    absent = [f"{n}:{t}" for n, t in INTER_COLUMNS.items() if n not in names]
    if absent:
        raise BenchError(f"{path}:{header_line}: missing column {', '.join(absent)} "
                         f"(the header has {', '.join(names)})")
    at = {name: names.index(name) for name in INTER_COLUMNS}
    users, items, stamps, lines = [], [], [], []
    for line_no, fields in rows:
        fields = _fields(path, line_no, fields, len(columns))
        user, item, stamp = fields[at["user_id"]], fields[at["item_id"]], fields[at["timestamp"]]
        for column, value in (("user_id", user), ("item_id", item)):
            if not value.strip():
                raise BenchError(f"{path}:{line_no}: empty {column}")
        try:
            parsed = float(stamp)
        except ValueError:
            parsed = math.nan
        if not math.isfinite(parsed):
            raise BenchError(f"{path}:{line_no}: timestamp {stamp!r} is not a number")
        users.append(user)
        items.append(item)
        stamps.append(parsed)
        lines.append(line_no)
    if not users:
        raise BenchError(f"{path}: no interactions (only a header)")
    user_codes, user_ids = pd.factorize(pd.Series(users), sort=False)  # first appearance = the re-index rule
    item_codes, item_ids = pd.factorize(pd.Series(items), sort=False)
    counts = np.bincount(user_codes)
    short = np.flatnonzero(counts < min_sequence())
    if len(short):
        first_row = int(np.flatnonzero(user_codes == short[0])[0])
        raise BenchError(f"{path}:{lines[first_row]}: user {user_ids[short[0]]!r} has {counts[short[0]]} "
                         f"interaction(s); leave-one-out needs at least {min_sequence()} (drop shorter users first)")
    # lexsort: last key first. By user, then timestamp, then file row: the stable tie-break.
    order = np.lexsort((np.arange(len(users)), np.asarray(stamps), user_codes))
    ordered = item_codes[order].astype(np.int64) + 1
    sequences = np.split(ordered, np.cumsum(counts)[:-1])
    return [str(u) for u in user_ids], [str(i) for i in item_ids], sequences


def read_items(path: Path, index: dict[str, int], raw_items: list[str], inter: Path) -> list[dict[str, Any]]:
    """One record per item of the `.inter` file; `text` joins the item's token / token_seq fields as
    'field: value; ...'. Rows of items never interacted with are skipped; an item with no row is an error."""
    rows = _rows(path)
    header_line, columns = _header(path, rows)
    names = [name for name, _ in columns]
    if "item_id" not in names:
        raise BenchError(f"{path}:{header_line}: missing column item_id:token (the header has {', '.join(names)})")
    id_at = names.index("item_id")
    text_at = [(i, name) for i, (name, kind) in enumerate(columns) if i != id_at and kind in TEXT_TYPES]
    if not text_at:
        raise BenchError(f"{path}:{header_line}: no text field (a token or token_seq column besides item_id)")
    records: list[dict[str, Any] | None] = [None] * len(raw_items)
    for line_no, fields in rows:
        fields = _fields(path, line_no, fields, len(columns))
        raw = fields[id_at]
        if raw not in index:
            continue
        item = index[raw]
        if records[item - 1] is not None:
            raise BenchError(f"{path}:{line_no}: a second row for item {raw!r}")
        text = "; ".join(f"{name}: {fields[i].strip()}" for i, name in text_at if fields[i].strip())
        records[item - 1] = {"id": item, "raw_id": raw, "text": text,
                             **{name: fields[i] for i, (name, _) in enumerate(columns) if i != id_at}}
    return every_record(records, raw_items, path, inter, "row")


def read_recbole_folder(name: str, folder: Path, stem: str) -> SequenceDataset:
    inter = folder / f"{stem}.inter"
    item_path = folder / f"{stem}.item"
    users, items, sequences = read_inter(inter)
    read, missing = [inter], {}
    records = None
    if item_path.is_file():
        records = read_items(item_path, {raw: i + 1 for i, raw in enumerate(items)}, items, inter)
        read.append(item_path)
    else:
        missing["text"] = item_path
    return user_dataset(name, "recbole", folder, read, RULE, users, items, sequences, records, {}, missing)
