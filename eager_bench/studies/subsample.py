"""Derived dataset views for the scaling study: `Beauty@users=0.25` = a seeded 25% of Beauty's users, items
re-indexed to 1..n over the items those users touched (so the catalog shrinks with the data, as in a smaller shop).

The view is registered in the dataset registry at run time (no file under eager_bench/data changes), so the normal
runner, split and result store handle it like any other dataset name."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from eager_bench.data.dataset import SequenceDataset
from eager_bench.errors import BenchError

_VIEW = re.compile(r"^(?P<base>[^@]+)@users=(?P<frac>[0-9.]+)$")
VIEW_SEED = 0  # one fixed user sample per fraction, so every model sees the same users


def view_name(base: str, fraction: float) -> str:
    return base if fraction >= 1.0 else f"{base}@users={fraction:g}"


def parse_view(name: str) -> tuple[str, float]:
    match = _VIEW.match(name)
    if not match:
        return name, 1.0
    frac = float(match["frac"])
    if not 0.0 < frac <= 1.0:
        raise BenchError(f"dataset {name!r}: users fraction must be in (0, 1], got {frac}")
    return match["base"], frac


def subsample_users(ds: SequenceDataset, fraction: float, seed: int = VIEW_SEED,
                    name: str | None = None) -> SequenceDataset:
    """A seeded `fraction` of the users (at least 2), items re-indexed in order of first id."""
    rng = np.random.default_rng(seed)
    n_keep = max(2, int(round(fraction * ds.n_users)))
    users = np.sort(rng.choice(ds.n_users, size=n_keep, replace=False))
    seqs = [np.asarray(ds.sequences[u], dtype=np.int64) for u in users]
    kept = np.unique(np.concatenate(seqs))  # old ids, ascending
    remap = np.zeros(ds.n_items + 1, dtype=np.int64)
    remap[kept] = np.arange(1, len(kept) + 1)
    records = None if ds.item_records is None else [ds.item_records[i - 1] for i in kept]
    attributes = {int(remap[i]): list(v) for i, v in ds.attributes.items() if i <= ds.n_items and remap[i] > 0}
    # file sums identify the parent files; the data digest then comes from the sequences themselves
    return SequenceDataset(name=name or view_name(ds.name, fraction), sequences=[remap[s] for s in seqs],
                           n_items=len(kept), item_records=records, attributes=attributes)


def register_view(name: str) -> str:
    """Make `name` loadable through `eager_bench.data.load_dataset` (no-op for a plain dataset name)."""
    from eager_bench.data import registry

    base, frac = parse_view(name)
    registry.get_spec(base)  # unknown base -> the registry's error
    if name == base or name in registry.DATASETS:
        return name

    def load(root: Path) -> SequenceDataset:
        return subsample_users(registry.load_dataset(base, root), frac, name=name)

    registry.DATASETS[name] = registry.DatasetSpec(name, "derived", f"{frac:g} of {base}'s users (study view)", load)
    return name
