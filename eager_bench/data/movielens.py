"""ml-100k as shipped inside RecBole's wheel: a small real dataset (943 users, 1,682 movies with titles) for tests."""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from eager_bench.data.dataset import SequenceDataset
from eager_bench.errors import BenchError


def _example_dir() -> Path:
    try:
        root = resources.files("recbole") / "dataset_example" / "ml-100k"
    except ModuleNotFoundError:
        raise BenchError("dataset ml-100k needs the recbole package (pip install recbole==1.2.1)") from None
    return Path(str(root))


def load_ml100k() -> SequenceDataset:
    folder = _example_dir()
    inter_path, item_path = folder / "ml-100k.inter", folder / "ml-100k.item"
    inter = pd.read_csv(inter_path, sep="\t")
    inter.columns = [c.split(":")[0] for c in inter.columns]
    # Stable sort keeps file order among equal timestamps, so the sequence order is reproducible.
    inter = inter.sort_values(["user_id", "timestamp"], kind="stable")
    items = pd.read_csv(item_path, sep="\t", dtype=str, keep_default_na=False)
    items.columns = [c.split(":")[0] for c in items.columns]
    n_items = int(items["item_id"].astype(int).max())
    if sorted(items["item_id"].astype(int)) != list(range(1, n_items + 1)):
        raise BenchError(f"{item_path}: item ids are not contiguous 1..{n_items}")
    sequences = [group["item_id"].to_numpy(dtype=np.int64) for _, group in inter.groupby("user_id", sort=True)]
    records = [None] * n_items
    for item_id, title, year, genres in zip(items["item_id"], items["movie_title"], items["release_year"],
                                           items["class"]):
        records[int(item_id) - 1] = {"id": int(item_id), "title": title, "year": year, "categories": genres.split()}
    sums = {f"ml-100k/{p.name}": hashlib.sha256(p.read_bytes()).hexdigest() for p in (inter_path, item_path)}
    return SequenceDataset(name="ml-100k", sequences=sequences, n_items=n_items, item_records=records,
                           file_sha256=sums)
