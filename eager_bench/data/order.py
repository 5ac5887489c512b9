"""The order of each user's items, a dataset-level option: `time` (the files' order, the default everywhere) or
`asin` (each user's items sorted by the item's product id).

`asin` is what a file-order reading of the raw 2014 review files gives: those files hold consecutive lines of one
product (grouped by `asin`), and the official EAGER code reads them in file order with every timestamp zeroed
(reference EAGER.md §3.2). The key is the item record's `asin` (Amazon) or `business_id` (Yelp) from
`<Name>.items.jsonl`, compared as strings (code-point order, as `sorted()` orders them). Ties: the sort is stable, so
items with equal keys keep their time (file) order. On the four benchmark files every item has its own key, so
equal keys within a user occur only for a repeated item (Yelp's repeat visits), whose order cannot matter.

A non-default order is a dataset *view* named `<dataset>@order=asin` (any dataset the registry resolves: a
benchmark, builtin or user dataset), so
- results of the two orders live in different result folders (`results/<dataset>@order=asin/...`) and the view
  name is the result's `dataset` field;
- the split fingerprint differs (it hashes the ordered sequences), and so does `provenance.data_sha256` (the
  order is folded into the data digest; time-order digests are unchanged);
- `SequenceDataset.order` says which order a loaded dataset has (`data stats` prints it).

`time` has no view name: `Beauty` is the time order, and `Beauty@order=time` is refused, so one order never gets
two result folders. The reordered dataset keeps its base's `name`, item records and ids: a model's per-dataset
settings (EAGER's branch, the text template) are those of the base, so the order is the only difference. Caches
that depend on the sequences (DIN, SASRec item tables) key on the split fingerprint; the item-text embeddings do not
depend on the order and are shared with the base.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from eager_bench.data.dataset import SequenceDataset
from eager_bench.errors import BenchError

if TYPE_CHECKING:
    from eager_bench.data.spec import DatasetSpec

TIME, ASIN = "time", "asin"
ORDERS = (TIME, ASIN)
DEFAULT_ORDER = TIME
KEY_FIELDS = ("asin", "business_id")  # the first one every item record has is the sort key
MARK = "@order="
_VIEW = re.compile(r"^(?P<base>.+)@order=(?P<order>[^@]*)$")
RULE = ("asin order: each user's items sorted by the item record's {field} (string order), a stable sort "
        "(equal keys keep their time order)")


def view_name(base: str, order: str) -> str:
    """The dataset name of `base` in `order` (`base` itself for the default, time)."""
    check_order(order)
    return base if order == DEFAULT_ORDER else f"{base}{MARK}{order}"


def check_order(order: str) -> str:
    if order not in ORDERS:
        raise BenchError(f"unknown order {order!r}; known: {', '.join(ORDERS)}")
    return order


def parse_order(name: str) -> tuple[str, str]:
    """(base dataset name, order): `Beauty@order=asin` -> ('Beauty', 'asin'); a plain name -> (name, 'time')."""
    match = _VIEW.match(name)
    if not match:
        return name, DEFAULT_ORDER
    base, order = match["base"], match["order"]
    if order not in ORDERS:
        raise BenchError(f"dataset {name!r}: unknown order {order!r}; known: {', '.join(ORDERS)}")
    if order == DEFAULT_ORDER:
        raise BenchError(f"dataset {name!r}: time is the files' order and the default; name the dataset {base!r}")
    return base, order


def order_of(name: str) -> str:
    return parse_order(name)[1]


def named_order(name: str) -> str:
    """The order a dataset name states, unvalidated (for labels of names already in result files)."""
    match = _VIEW.match(name)
    return match["order"] if match else DEFAULT_ORDER


def key_field(dataset: SequenceDataset) -> str:
    """The record field the asin order sorts by; BenchError naming what is missing when no field fits."""
    records = dataset.item_records
    if not records:
        where = dataset.missing.get("text", f"{dataset.name}.items.jsonl")
        raise BenchError(f"dataset {dataset.name}: order=asin needs item records with {' or '.join(KEY_FIELDS)} "
                         f"({where} is absent)")
    for name in KEY_FIELDS:
        if all(record.get(name) not in (None, "") for record in records):
            return name
    for name in KEY_FIELDS:
        if any(record.get(name) not in (None, "") for record in records):
            first = next(i + 1 for i, record in enumerate(records) if record.get(name) in (None, ""))
            raise BenchError(f"dataset {dataset.name}: order=asin: item {first} has no {name!r} in its record")
    raise BenchError(f"dataset {dataset.name}: order=asin needs an {' or '.join(repr(f) for f in KEY_FIELDS)} "
                     "field in every item record (<Name>.items.jsonl)")


def key_ranks(dataset: SequenceDataset, field: str) -> np.ndarray:
    """rank[i] = position of item i's key in string order (equal keys share a rank); rank[0] (padding) = -1."""
    keys = [str(record[field]) for record in dataset.item_records or []]
    distinct = sorted(set(keys))
    position = {key: rank for rank, key in enumerate(distinct)}
    return np.asarray([-1] + [position[key] for key in keys], dtype=np.int64)


def reorder(dataset: SequenceDataset, order: str) -> SequenceDataset:
    """`dataset` with each user's items in `order` (a new object; the base is not changed)."""
    check_order(order)
    if order == dataset.order:
        return dataset
    if dataset.order != DEFAULT_ORDER:
        raise BenchError(f"dataset {dataset.name} is already in {dataset.order} order")
    if order == DEFAULT_ORDER:
        return dataset
    field = key_field(dataset)
    rank = key_ranks(dataset, field)
    sequences = []
    for seq in dataset.sequences:
        seq = np.asarray(seq, dtype=np.int64)
        sequences.append(seq[np.argsort(rank[seq], kind="stable")])
    return replace(dataset, sequences=sequences, order=order,
                   origin={**dataset.origin, "order": order, "order_key": field,
                           "order_rule": RULE.format(field=field)})


def order_spec(name: str, data_dir: str | Path | None = None) -> DatasetSpec | None:
    """The spec of an order view `<base>@order=<order>`, or None when `name` is not one."""
    from eager_bench.data import registry
    from eager_bench.data.spec import DatasetSpec

    if MARK not in name:
        return None
    base, order = parse_order(name)
    base_spec = registry.get_spec(base, data_dir)  # unknown base -> the registry's one-line error

    def load(root: Path) -> SequenceDataset:
        dataset = reorder(registry.load_dataset(base, root), order)
        dataset.origin = {**dataset.origin, "view": name}  # `data stats` names the view beside the base's name
        return dataset

    # A view of a user's folder stays a user dataset, so the runner's changed-files check and per-data run
    # folders still apply; a view of a benchmark or builtin dataset is "derived".
    kind = base_spec.kind if base_spec.kind in ("user", "plugin") else "derived"
    return DatasetSpec(name, kind, f"{base} with each user's items in {order} order ({base_spec.description})",
                       load, folder=base_spec.folder)
